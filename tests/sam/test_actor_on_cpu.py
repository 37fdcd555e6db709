"""The shared SAM scorer actor: one process for all reward workers, survives being killed mid-run;
Ray-parallel mining equals in-process mining. One local Ray (2 CPUs) for the module."""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from segzero_plus.sam.actor import (  # noqa: E402
    SamScorerClient,
    SamUnavailableError,
    get_scorer_actor,
)
from segzero_plus.sam.scorer import PromptSet  # noqa: E402
from segzero_plus.sam.spec import ScorerSpec  # noqa: E402
from segzero_plus.testing.agreement import MAX_FLIPPED_SHARE  # noqa: E402

pytestmark = pytest.mark.slow
NAMESPACE = "segzero_plus_tests"


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def spec(tiny_sam_checkpoint):
    config_name, path = tiny_sam_checkpoint
    return ScorerSpec(config_name=config_name, checkpoint=str(path), device="cpu", torch_threads=1)


def _make_worker_class():
    """A stand-in for verl's RewardLoopWorker: holds a client, scores on request. Defined in a function
    so Ray ships it by value (test modules are not importable in Ray workers)."""

    @ray.remote(num_cpus=0)
    class RewardWorker:
        def __init__(self, spec, name):
            import torch

            torch.set_num_threads(1)
            self.client = SamScorerClient(
                spec, name=name, namespace=NAMESPACE, call_timeout_s=60, retry_delay_s=0.5
            )

        def score(self, key, image, prompts):
            res = self.client.score(key, image, prompts)
            return [r.mask.sum() for r in res]

        def score_loop(self, key, image, prompts, n, min_seconds=0.0):
            """At least ``n`` calls, and calls until ``min_seconds`` have passed."""
            outcomes = []
            start = time.monotonic()
            while len(outcomes) < n or time.monotonic() - start < min_seconds:
                try:
                    res = self.client.score(key, image, prompts)
                    outcomes.append(("ok", int(res[0].mask.sum())))
                except SamUnavailableError as exc:  # the reward code scores the sample 0
                    outcomes.append(("zero", str(exc)))
            return outcomes, self.client.retries, self.client.failures

        def scorer_pid(self):
            return self.client.ping()

    return RewardWorker


def test_two_workers_share_one_scorer(ray_local, spec, scenes):
    name = "scorer-share"
    Worker = _make_worker_class()
    workers = [Worker.remote(spec, name) for _ in range(2)]
    image = scenes[0].image
    h, w = image.shape[:2]
    prompts = [
        PromptSet.make((10, 10, w - 10, h - 10), [(w / 2, h / 2)], [(20, 20)]),
        PromptSet.make(None, [(5, 5)]),
    ]
    pids = ray.get([wk.scorer_pid.remote() for wk in workers])
    assert pids[0] == pids[1]  # one scorer process for both workers
    masks = ray.get([wk.score.remote("shared-image", image, prompts) for wk in workers for _ in range(3)])
    # the actor batches concurrent calls as they arrive, so the six answers may come from different
    # decoder batches: equal up to pixels at the logit threshold
    slack = MAX_FLIPPED_SHARE * h * w
    assert all(abs(int(a) - int(b)) <= slack for m in masks for a, b in zip(m, masks[0], strict=True))
    handle = ray.get_actor(name, namespace=NAMESPACE)
    stats = ray.get(handle.stats.remote())
    assert stats["images_encoded"] == 1  # the shared image was encoded once
    assert stats["prompt_sets_decoded"] == 6 * len(prompts)
    assert stats["requests"] == 6 and stats["pid"] == pids[0]
    # get_if_exists: asking again returns the same actor, not a second one
    assert ray.get(get_scorer_actor(spec, name=name, namespace=NAMESPACE).ping.remote()) == pids[0]
    ray.kill(handle, no_restart=True)


def test_client_ships_each_image_once_and_resends_when_the_actor_lacks_it(ray_local, spec, scenes):
    name = "scorer-deliver"
    image = scenes[1].image
    h, w = image.shape[:2]
    prompts = [PromptSet.make((5, 5, w - 5, h - 5), [(w / 2, h / 2)], [(8, 8)])]
    client = SamScorerClient(spec, name=name, namespace=NAMESPACE, call_timeout_s=60, retry_delay_s=0.1)
    sent: list[object] = []
    call = client._call

    def spy(method, args, what, retry_args=None):
        sent.append(args[1])
        return call(method, args, what, retry_args)

    client._call = spy
    first = client.score("img-a", image, prompts)
    again = client.score("img-a", image, prompts)
    assert sent[0] is image and sent[1] is None  # the second response of the group ships no image
    assert np.array_equal(first[0].mask, again[0].mask) and client.retries == 0

    # a client that believes "img-b" was delivered (the actor restarted or evicted it) still scores it:
    # the first try finds no embedding, the retry carries the image
    stale = SamScorerClient(spec, name=name, namespace=NAMESPACE, call_timeout_s=60, retry_delay_s=0.1)
    stale._delivered.put("img-b", None)
    recovered = stale.score("img-b", image, prompts)
    assert stale.retries == 1 and stale.failures == 0
    assert np.array_equal(recovered[0].mask, first[0].mask)
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)


def test_killed_scorer_gives_a_retried_call_or_a_logged_zero(ray_local, spec, scenes, caplog):
    name = "scorer-kill"
    Worker = _make_worker_class()
    worker = Worker.remote(spec, name)
    image = scenes[1].image
    prompts = [PromptSet.make(None, [(30, 30)])]
    first_pid = ray.get(worker.scorer_pid.remote())
    # the loop keeps calling for 6 s and the kill comes at 1 s, so calls follow the kill whether it lands
    # mid-call or between calls: each such call meets a dead/restarting actor or (image already delivered)
    # a restarted one with an empty cache, and must be retried. At least 2 calls: on a loaded machine one
    # call (retried across the restart) can outlast the 6 s, and the restarted scorer must serve a new one
    run = worker.score_loop.remote("img", image, prompts, 2, 6.0)
    time.sleep(1.0)
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=False)  # Ray restarts it
    outcomes, retries, failures = ray.get(run, timeout=180)  # the worker did not crash
    assert {kind for kind, _ in outcomes} <= {"ok", "zero"}
    assert outcomes[-1][0] == "ok"  # the restarted scorer serves again
    assert retries + failures >= 1  # the kill hit a call: it was retried (or scored 0 with a log)
    new_pid = ray.get(worker.scorer_pid.remote())
    assert new_pid != first_pid

    # gone for good (no restart): the retry re-resolves the name and a fresh scorer is created
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    outcomes, retries, _ = ray.get(worker.score_loop.remote("img", image, prompts, 2), timeout=120)
    assert [kind for kind, _ in outcomes] == ["ok", "ok"] and retries >= 1
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)


def test_client_in_driver_logs_and_raises_after_one_retry(ray_local, spec, caplog):
    client = SamScorerClient(
        spec, name="scorer-broken", namespace=NAMESPACE, call_timeout_s=60, retry_delay_s=0.1
    )
    bad_image = np.zeros((8, 8), np.uint8)  # not (H, W, 3): the scorer raises, twice
    with caplog.at_level(logging.WARNING), pytest.raises(SamUnavailableError, match="failed twice"):
        client.score("bad", bad_image, [PromptSet.make(None, [(1, 1)])])
    assert client.retries == 1 and client.failures == 1
    assert "retrying once" in caplog.text
    # the actor survived the bad request and serves good ones
    good = client.score("good", np.zeros((32, 32, 3), np.uint8), [PromptSet.make(None, [(1, 1)])])
    assert good[0].masks.shape == (1, 32, 32)
    ray.kill(client.handle, no_restart=True)


def test_ray_parallel_mining_equals_in_process(ray_local, tiny_sam_checkpoint, scenes, tmp_path):
    from segzero_plus.data.io import write_rows
    from segzero_plus.data.mining import mine_parquet
    from segzero_plus.data.scenes import encode_png
    from segzero_plus.data.schema import TRAINING_SCHEMA
    from segzero_plus.data.training import training_row
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
    from segzero_plus.masks import encode_rle

    rows = [
        training_row(
            row_id=s.scene_id,
            index=i,
            query=s.expression,
            image_png=encode_png(s.image),
            model_hw=s.image.shape[:2],
            orig_hw=s.image.shape[:2],
            bbox=mask_bbox(s.target_mask),
            points=inscribed_circle_centres(s.target_mask, 2),
            mask_rle=encode_rle(s.target_mask),
            distractor_rles=[encode_rle(m) for m in s.distractor_masks],
            image_id=s.scene_id,
        )
        for i, s in enumerate(scenes[4:8])
    ]
    src = tmp_path / "train.parquet"
    write_rows(rows, TRAINING_SCHEMA, src)
    config_name, ckpt = tiny_sam_checkpoint
    kwargs = dict(
        config_name=config_name, checkpoint=ckpt, device="cpu", shard_rows=1, progress=False, torch_threads=1
    )
    local = mine_parquet(src, tmp_path / "local.parquet", num_workers=0, **kwargs)
    parallel = mine_parquet(src, tmp_path / "ray.parquet", num_workers=2, **kwargs)
    assert parallel["images_encoded_now"] == local["images_encoded_now"] == 4
    # exact, by construction: every shard is the same computation in either place (same rows, decoder
    # batches and one torch thread), not two code paths
    assert parallel["coverage"] == local["coverage"]
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local.parquet"))


def test_the_actor_name_is_keyed_by_the_spec(ray_local, spec):
    """A later job (or another experiment) asking for other SAM weights gets its own scorer."""
    import dataclasses

    from segzero_plus.sam.actor import scorer_actor_name

    other = dataclasses.replace(spec, checkpoint=None)  # random weights, e.g. a smoke test's
    assert scorer_actor_name(spec) != scorer_actor_name(other)
    assert scorer_actor_name(spec) == scorer_actor_name(dataclasses.replace(spec))


def test_a_scorer_that_needs_a_gpu_fails_loudly_without_one(ray_local, spec):
    import dataclasses

    client = SamScorerClient(
        dataclasses.replace(spec, require_gpu=True), name="scorer-gpu", namespace=NAMESPACE, call_timeout_s=60
    )
    with pytest.raises(SamUnavailableError, match="NoGpuVisibleError"):
        client.check_started()


def test_the_scorer_ends_with_the_worker_that_created_it(ray_local, spec):
    """Not detached: when the job's reward workers end, their scorer is freed (nothing lingers on a
    persistent cluster for the next job to pick up)."""
    name = "scorer-owned"
    worker = _make_worker_class().remote(spec, name)
    ray.get(worker.scorer_pid.remote())
    assert ray.get_actor(name, namespace=NAMESPACE)
    ray.kill(worker)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.5)
    pytest.fail("the scorer outlived the worker that created it")
