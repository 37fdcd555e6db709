"""The shared SAM actor through its Ray client: ship each image once per key vs with every response.

Rows (one simulated GRPO step, 16 images x 8 responses at 840x840, scored one response at a time through
:func:`counterfactual_reward` as a reward worker does):
- ``sam_client_mib_per_step``: image bytes the client put on the wire (pickled ``np.ndarray`` payloads,
  counted at the call), ours vs a client that sends the image with every call (the design before the
  once-per-key change). Exact for this run.
- ``sam_client_step_wall``: wall time of the same step for both clients, each against its own fresh actor
  (same model, same cache size; both encode each image once, so the difference is transport); best of
  ``ROUNDS`` rounds, each on new images, alternating which client goes first.

CPU only (local Ray, 2 CPUs), SAM2 ``tiny_test`` random weights so the decoder does not hide the transport.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.bench_sam import RESPONSES_PER_IMAGE, STEP_IMAGES, _responses
from benchmarks.common import BenchRow, device_name
from segzero_plus.sam.actor import SamScorerClient
from segzero_plus.sam.spec import ScorerSpec

NAMESPACE = "segzero_plus_bench"
SAM_CONFIG = "tiny_test"
ROUNDS = 2


class CountingClient(SamScorerClient):
    """The production client, counting the image bytes each ``score`` call carries."""

    shipped_bytes = 0

    def _call(self, method, args, what, retry_args=None):
        if method == "score" and args[1] is not None:
            self.shipped_bytes += args[1].nbytes
        return super()._call(method, args, what, retry_args)


class ShipEveryCallClient(CountingClient):
    """The baseline: never remembers a delivery, so every call carries the image."""

    def _mark_delivered(self, image_key, image) -> None:
        return None


def _step(client, work) -> float:
    from segzero_plus.sam.counterfactual import counterfactual_reward

    t0 = time.perf_counter()
    for scene, responses in work:
        for r in responses:
            terms = counterfactual_reward(
                client, scene.scene_id, scene.image, r.box, r.points_pos, r.points_neg, scene.target_mask
            )
            if terms["sam_failed"]:
                raise RuntimeError(f"SAM call failed in the benchmark for {scene.scene_id}")
    return time.perf_counter() - t0


def run() -> list[BenchRow]:
    import ray

    from segzero_plus.data.scenes import generate_scenes
    from segzero_plus.testing.tiny_models import ensure_tiny_sam

    config_name, checkpoint = ensure_tiny_sam(SAM_CONFIG)
    spec = ScorerSpec(
        config_name=config_name, checkpoint=str(checkpoint), device="cpu", torch_threads=1, cache_size=64
    )
    rounds = []  # fresh images each round, as each training step brings new prompts
    for k in range(ROUNDS):
        scenes = generate_scenes(STEP_IMAGES, seed=11 + k, sizes=((840, 840),))
        rng = np.random.default_rng(k)
        rounds.append([(s, _responses(s, rng, RESPONSES_PER_IMAGE)) for s in scenes])

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE)
    try:
        ours = CountingClient(spec, name="bench-once", namespace=NAMESPACE)
        baseline = ShipEveryCallClient(spec, name="bench-every", namespace=NAMESPACE)
        for client in (ours, baseline):  # actor start and model load are not part of the step
            client.ping()
        walls: dict[int, list[float]] = {id(ours): [], id(baseline): []}
        for k, work in enumerate(rounds):  # alternate which client goes first
            for client in (baseline, ours) if k % 2 == 0 else (ours, baseline):
                walls[id(client)].append(_step(client, work))
        for client in (ours, baseline):
            ray.kill(client.handle, no_restart=True)
    finally:
        if started:
            ray.shutdown()
    ours_wall, baseline_wall = min(walls[id(ours)]), min(walls[id(baseline)])

    where = f"{device_name()} (Ray local, sam2 {SAM_CONFIG})"
    n = STEP_IMAGES * RESPONSES_PER_IMAGE
    layout = f"{STEP_IMAGES} images x {RESPONSES_PER_IMAGE} responses, 840x840 RGB"
    return [
        BenchRow(
            "sam_client_mib_per_step",
            ours.shipped_bytes / ROUNDS / 2**20,
            baseline.shipped_bytes / ROUNDS / 2**20,
            "MiB",
            where,
            f"image bytes sent to the shared SAM actor in one step ({layout}); ours: once per image key; "
            f"baseline: with each of the {n} calls",
        ),
        BenchRow(
            "sam_client_step_wall",
            ours_wall,
            baseline_wall,
            "s",
            where,
            f"same step through SamScorerClient, one response at a time (full + base prompt sets), each "
            f"client against its own actor; best of {ROUNDS} alternating rounds on new images; retries: ours {ours.retries}, baseline {baseline.retries}",
        ),
    ]
