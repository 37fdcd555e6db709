"""The reward manager on the path verl 0.9.1's v1 trainer really takes: verl's own AgentLoopManagerTQ /
AgentLoopWorkerTQ (with a real TransferQueue on a local Ray) generate rollouts through verl's
LLMServerClient and GlobalRequestLoadBalancer, served by the tiny Qwen2.5-VL (the only stand-in: vLLM's
server, :mod:`segzero_plus.testing.rollout_server`); each finished rollout is scored by
``AgentLoopWorker._compute_score`` on a random verl RewardLoopWorker running our manager; prompts are
submitted and the batch is sampled by the trainer's own methods (``PPOTrainer._next_train_batch``,
``_submit_batch_to_rollout``, ``_build_replay_buffer`` + ``ReplayBuffer.sample``)."""

from __future__ import annotations

import io
import json
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.schema import TRAINING_SCHEMA, to_ground_truth
from segzero_plus.data.training import TrainingOptions
from segzero_plus.rewards import total_reward
from segzero_plus.testing.answers import crafted_answers
from segzero_plus.testing.configs import tiny_training_config
from segzero_plus.testing.rollout_server import image_digest
from segzero_plus.train.options import ManagerOptions
from segzero_plus.train.step_log import step_log_actor_name

N_PROMPTS, N_ROLLOUTS = 2, 4
KINDS = ("exact", "shifted", "malformed")  # scripted; the 4th rollout of each prompt is sampled freely


@pytest.fixture(scope="module")
def rows(scenes):
    square = [s for s in scenes if s.image.shape[:2] == (336, 336)][:N_PROMPTS]
    return scenes_to_training_rows(
        square, TrainingOptions(template="negative_point", resize=None, data_source="lookalike")
    )


def _config(tiny_qwen_dir, parquet):
    return tiny_training_config(
        tiny_qwen_dir,
        parquet,
        f"data.train_batch_size={N_PROMPTS}",
        f"actor_rollout_ref.rollout.n={N_ROLLOUTS}",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=2",
    )


def _scripts(rows) -> dict[str, list[str]]:
    """Image digest -> the scripted answers of its row, in :data:`KINDS` order."""
    scripts = {}
    for row in rows:
        answers = crafted_answers(row)
        scripts[image_digest(Image.open(io.BytesIO(row["images"][0]["bytes"])))] = [answers[k] for k in KINDS]
    return scripts


def _trainer_step(cfg, dataset, agent_loops):
    """Submit one step's prompts and sample them back with the v1 trainer's own methods, bound to a
    namespace holding what those methods read; returns the sampled batch's KV metadata."""
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.utils.dataset.rl_dataset import collate_fn

    trainer = types.SimpleNamespace(
        config=cfg,
        global_steps=1,
        trainer_mode="sync",
        train_dataloader=StatefulDataLoader(dataset, batch_size=N_PROMPTS, collate_fn=collate_fn),
        train_dataloader_it=None,
        agent_loop_manager=agent_loops,
    )
    for method in ("_fetch_one_gen_batch", "_add_prompts_to_generate", "_resolve_filter_groups_metric"):
        setattr(trainer, method, types.MethodType(getattr(PPOTrainer, method), trainer))
    PPOTrainer._submit_batch_to_rollout(trainer, PPOTrainer._next_train_batch(trainer))
    batch, _ = PPOTrainer._build_replay_buffer(trainer).sample(
        global_steps=1, partition_id="train", batch_size=N_PROMPTS
    )
    return batch


def _read_back(tq, batch) -> dict[str, list]:
    fields = tq.kv_batch_get(
        keys=batch.keys,
        partition_id="train",
        select_fields=["responses", "rm_scores", "extra_fields", "index"],
    )
    n = len(batch.keys)
    return {
        "rows": [int(fields["index"][i]) for i in range(n)],
        "responses": [fields["responses"][i].tolist() for i in range(n)],
        "scores": [float(fields["rm_scores"][i].sum()) for i in range(n)],
        "extra": [dict(fields["extra_fields"][i]) for i in range(n)],
    }


@pytest.fixture(scope="module")
def streamed(rows, tiny_qwen_dir, tmp_path_factory):
    """One training step's rollouts through verl's streaming path: (config, sampled batch fields, step log)."""
    ray = pytest.importorskip("ray")
    import transfer_queue as tq
    from verl.experimental.reward_loop import RewardLoopManager
    from verl.trainer.ppo.v1 import AgentLoopManagerTQ
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import GlobalRequestLoadBalancer

    from segzero_plus.testing.rollout_server import TinyQwenRolloutServer
    from segzero_plus.train.rollouts import load_rlhf_dataset

    tmp = tmp_path_factory.mktemp("stream")
    parquet = tmp / "train_negative_point.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), parquet)
    cfg = _config(tiny_qwen_dir, parquet)
    log = tmp / "checkpoints" / "reward_terms.jsonl"
    # logical CPUs only: every actor here asks for 0 or 1, the work is throttled by one torch thread each
    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    try:
        server = (
            ray.remote(TinyQwenRolloutServer).options(num_cpus=0).remote(str(tiny_qwen_dir), _scripts(rows))
        )
        balancer = ray.remote(GlobalRequestLoadBalancer).remote({"tiny-qwen": server})
        rewards = RewardLoopManager(cfg)
        tq.init()
        agent_loops = AgentLoopManagerTQ.create(
            config=cfg,
            llm_client=LLMServerClient(cfg, load_balancer_handle=balancer),
            reward_loop_worker_handles=rewards.reward_loop_worker_handles,
        )
        batch = _trainer_step(cfg, load_rlhf_dataset(cfg.data, tiny_qwen_dir, parquet), agent_loops)
        sampled = _read_back(tq, batch)
        sampled["served"] = ray.get(server.stats.remote())["requests"]
        sampled["log_written"] = _wait_for(lambda: log.exists() and log.read_text().strip())
        for worker in rewards.reward_loop_workers:  # the job ends: the step log actor goes with its owner
            ray.kill(worker)
        sampled["log_actor_freed"] = _wait_for(lambda: not _actor_exists(ray, step_log_actor_name(log)))
    finally:
        tq.close()
        ray.shutdown()
    return cfg, sampled, log


def _wait_for(condition, timeout_s: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def _actor_exists(ray, name: str) -> bool:
    try:
        ray.get_actor(name, namespace="segzero_plus")
        return True
    except ValueError:
        return False


def _decode(tiny_qwen_dir, ids):
    from verl.utils import hf_tokenizer

    return hf_tokenizer(str(tiny_qwen_dir)).decode(ids, skip_special_tokens=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_streaming_path_scores_the_ground_truth_highest(streamed, rows, tiny_qwen_dir):
    cfg, sampled, _ = streamed
    options = ManagerOptions.from_config(cfg)
    assert sampled["served"] == N_PROMPTS * N_ROLLOUTS == len(sampled["scores"])
    by_row: dict[int, dict[str, tuple[float, str]]] = {}
    for row, ids, score, extra in zip(
        sampled["rows"], sampled["responses"], sampled["scores"], sampled["extra"], strict=True
    ):
        info = extra["reward_extra_info"]
        text = _decode(tiny_qwen_dir, ids)
        assert info["reward_error"] == 0.0, (text, info)
        assert score == pytest.approx(info["score"], abs=1e-6)
        answers = crafted_answers(rows[row])
        kind = next((k for k in ("exact", "shifted") if answers[k] == text), None)
        if kind is None:  # the byte-level tokenizer may re-space the malformed text; match its start
            kind = "malformed" if text.startswith(answers["malformed"][:20]) else "sampled"
        by_row.setdefault(row, {})[kind] = (score, text)
    for i, row in enumerate(rows):
        kinds = by_row[i]
        assert set(kinds) == {*KINDS, "sampled"}, kinds
        gt = to_ground_truth(row["reward_model"]["ground_truth"])
        exact = total_reward(kinds["exact"][1], gt, options.reward)["score"]
        assert kinds["exact"][0] == pytest.approx(exact, abs=1e-6)
        # the ground truth earns every positive term (box IoU and L1, points, both formats) and the most
        assert exact >= sum(
            options.reward.weights[k] for k in ("think_format", "seg_format", "bbox_iou", "bbox_l1", "point")
        )
        assert kinds["exact"][0] > kinds["shifted"][0] > kinds["malformed"][0] == 0.0
    sampled_scores = [s for i in by_row for k, (s, _) in by_row[i].items() if k == "sampled"]
    assert len(sampled_scores) == N_PROMPTS and max(sampled_scores) < min(
        by_row[i]["exact"][0] for i in range(N_PROMPTS)
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_reward_terms_of_the_step_reach_the_step_log(streamed):
    from segzero_plus.reporting.curves import read_log

    _, sampled, log = streamed
    assert sampled["log_written"] and sampled["log_actor_freed"]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1]
    record = records[0]
    infos = [extra["reward_extra_info"] for extra in sampled["extra"]]
    assert record["reward/samples"] == len(infos) == N_PROMPTS * N_ROLLOUTS
    for key in ("score", "bbox_iou", "point", "negative_point", "parse_error", "reward_error", "sam_failed"):
        assert record[f"reward/{key}"] == pytest.approx(np.mean([info[key] for info in infos]), abs=1e-9), key
    assert record["reward/parse_error"] >= 0.25  # the malformed answer of every prompt
    series = read_log(log)  # what `segzero-plus report --curves` plots
    assert series["reward/score"] == {1: pytest.approx(record["reward/score"])}
