"""SAM2 scoring and mining: our scorer vs a naive design (one ``set_image`` per call), same model, same inputs, same run.

Rows:
- ``sam_encodes_per_step`` / ``sam_step_wall``: one simulated GRPO step, 16 images x 8 responses (box,
  2 positives, 0-2 negatives). Ours: :func:`counterfactual_reward` through one :class:`SamScorer`
  (encode each image once, decode full + base prompt sets). The naive design
  (a reward manager that calls SAM2's predictor directly): per response, ``identify_confused_regions`` (5 probe points, ``set_image``
  inside the sampling loop) and then ``compute_segmentation_mask`` (``set_image`` + ``predict``).
- ``mining_images_per_s``: :func:`mine_confused_regions` vs a naive ``identify_confused_regions_fast``
  loop (``set_image`` per row, then 5 single-point ``predict`` calls), on rows that share images (two
  rows per image, as RefCOCO has several expressions per image).

CPU (default): SAM 2.1 Hiera-T, random weights, fp32. The naive step costs ~6 encodes per response, so
it is measured for real on ``BASELINE_RESPONSES`` responses and extrapolated linearly to 128 (each
response is independent in that design; said in the row's note); its encode COUNT is exact for all 128
(the naive control flow run with a counting stand-in for the predictor).

GPU: ``SEGZERO_BENCH_DEVICE=cuda`` uses SAM 2.1 Hiera-L (random weights, bf16 autocast), measures both
designs in full, and adds encode ms/image, decode ms/prompt set and peak GPU memory rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.common import BenchRow, device_name
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG

STEP_IMAGES = 16
RESPONSES_PER_IMAGE = 8
NAIVE_SAMPLES = 5
BASELINE_RESPONSES = int(os.environ.get("SEGZERO_BENCH_SAM_BASELINE_RESPONSES", "1"))
MINING_IMAGES = int(os.environ.get("SEGZERO_BENCH_SAM_MINING_IMAGES", "2"))
ROWS_PER_IMAGE = 2


@dataclass
class Response:
    box: tuple[float, float, float, float]
    points_pos: list[tuple[float, float]]
    points_neg: list[tuple[float, float]]


def _responses(scene, rng: np.random.Generator, n: int) -> list[Response]:
    """Rollouts around the truth: jittered box and positives; 0-2 negatives, some on look-alikes."""
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox

    x1, y1, x2, y2 = mask_bbox(scene.target_mask)
    centres = inscribed_circle_centres(scene.target_mask, n=2)
    h, w = scene.target_mask.shape
    out = []
    for _ in range(n):
        j = rng.normal(0, 6, size=4)
        box = (x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3])
        pos = [(cx + rng.normal(0, 3), cy + rng.normal(0, 3)) for cx, cy in centres]
        negs = []
        for k in range(int(rng.integers(0, 3))):
            if k < len(scene.distractor_masks):
                ys, xs = np.nonzero(scene.distractor_masks[k])
                i = int(rng.integers(0, len(xs)))
                negs.append((float(xs[i]), float(ys[i])))
            else:
                negs.append((float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1))))
        out.append(Response(box, pos, negs))
    return out


class _CountingPredictor:
    """Stand-in for SAM2ImagePredictor that only counts calls (to count the naive design's encodes exactly)."""

    def __init__(self) -> None:
        self.set_image_calls = 0
        self._hw = (0, 0)

    def set_image(self, image: np.ndarray) -> None:
        self.set_image_calls += 1
        self._hw = image.shape[:2]

    def predict(self, multimask_output: bool = True, **_: object):
        n = 3 if multimask_output else 1
        return np.zeros((n, *self._hw), np.float32), np.full(n, 0.6, np.float32), None


def _naive_identify_confused_regions(predictor, image, gt_mask, rng, num_samples=NAIVE_SAMPLES, margin=100):
    """Naive online ``identify_confused_regions``: ``set_image`` INSIDE the sampling loop.
    (Its ``mask & (gt == 0)`` on float masks would raise; we cast to bool.)"""
    h, w = gt_mask.shape
    confused = np.zeros((h, w), np.float32)
    ys, xs = np.nonzero(gt_mask)
    lo_x, hi_x = max(0, xs.min() - margin), min(w, xs.max() + margin)
    lo_y, hi_y = max(0, ys.min() - margin), min(h, ys.max() + margin)
    for _ in range(num_samples):
        for _ in range(10):
            x, y = int(rng.integers(lo_x, hi_x)), int(rng.integers(lo_y, hi_y))
            if not gt_mask[y, x]:
                break
        else:
            continue
        predictor.set_image(image)
        masks, scores, _ = predictor.predict(
            point_coords=np.array([[x, y]]), point_labels=np.array([1]), multimask_output=True
        )
        for mask, score in zip(masks, scores, strict=True):
            if score > 0.5:
                confused += (mask.astype(bool) & ~gt_mask).astype(np.float32)
    return confused


def _naive_segmentation_mask(predictor, image, resp: Response) -> np.ndarray:
    """Naive ``compute_segmentation_mask``: one ``set_image`` per response, then ``predict``."""
    pts = resp.points_pos + resp.points_neg
    labels = [1] * len(resp.points_pos) + [0] * len(resp.points_neg)
    predictor.set_image(image)
    masks, _, _ = predictor.predict(
        point_coords=np.asarray(pts),
        point_labels=np.asarray(labels),
        box=np.asarray(resp.box),
        multimask_output=False,
    )
    return masks[0]


def _naive_step(predictor, work, rng) -> None:
    for scene, responses in work:
        for resp in responses:
            _naive_identify_confused_regions(predictor, scene.image, scene.target_mask, rng)
            _naive_segmentation_mask(predictor, scene.image, resp)


def _our_step(scorer, work) -> None:
    from segzero_plus.sam.counterfactual import counterfactual_reward

    for scene, responses in work:
        for resp in responses:
            counterfactual_reward(
                scorer,
                scene.scene_id,
                scene.image,
                resp.box,
                resp.points_pos,
                resp.points_neg,
                scene.target_mask,
            )


def _naive_mining(predictor, rows, rng) -> None:
    """Naive ``generate_confused_regions_dataset`` loop with ``identify_confused_regions_fast``."""
    for scene in rows:
        gt = scene.target_mask
        h, w = gt.shape
        ys, xs = np.nonzero(gt)
        margin = 80
        x_range = (max(0, xs.min() - margin), min(w, xs.max() + margin))
        y_range = (max(0, ys.min() - margin), min(h, ys.max() + margin))
        confused = np.zeros((h, w), np.float32)
        predictor.set_image(scene.image)
        for _ in range(NAIVE_SAMPLES):
            for _ in range(5):
                x, y = int(rng.integers(*x_range)), int(rng.integers(*y_range))
                if not gt[y, x]:
                    break
            else:
                continue
            masks, scores, _ = predictor.predict(
                point_coords=np.array([[x, y]]), point_labels=np.array([1]), multimask_output=True
            )
            for mask, score in zip(masks, scores, strict=True):
                if score > 0.5:
                    confused += (mask.astype(bool) & ~gt).astype(np.float32)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _step_rows(model, device: str, where: str, autocast) -> list[BenchRow]:
    """One simulated GRPO step: ours for real; the naive design's encodes counted for all responses, its
    wall time measured on a subset on CPU (all on GPU) and scaled linearly."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from segzero_plus.data.scenes import generate_scenes
    from segzero_plus.sam.scorer import PromptSet, SamScorer

    on_gpu = device.startswith("cuda")
    scenes = generate_scenes(STEP_IMAGES, seed=11, sizes=((840, 840),))
    rng = np.random.default_rng(0)
    work = [(s, _responses(s, rng, RESPONSES_PER_IMAGE)) for s in scenes]
    n_responses = STEP_IMAGES * RESPONSES_PER_IMAGE

    scorer = SamScorer(model, cache_size=2 * STEP_IMAGES)
    if on_gpu:  # warm-up (kernels, allocator) on another image
        scorer.score("warm", scenes[0].image[::-1].copy(), [PromptSet.make(None, [(5, 5)])])
        scorer.reset_stats()
        scorer.clear_cache()
    ours_wall = _timed(lambda: _our_step(scorer, work), device)
    ours_encodes = scorer.stats.images_encoded
    ours_decodes = scorer.stats.prompt_sets_decoded

    counter = _CountingPredictor()
    _naive_step(counter, work, np.random.default_rng(1))
    predictor = SAM2ImagePredictor(model)
    measured = n_responses if on_gpu else BASELINE_RESPONSES
    subset = [(work[0][0], work[0][1][:measured])] if measured < n_responses else work
    with autocast:
        naive_measured = _timed(lambda: _naive_step(predictor, subset, np.random.default_rng(1)), device)
    extrapolated = (
        ""
        if measured == n_responses
        else f"; naive measured on {measured} of {n_responses} responses ({naive_measured:.1f} s) and scaled linearly"
    )
    return [
        BenchRow(
            "sam_encodes_per_step",
            float(ours_encodes),
            float(counter.set_image_calls),
            "count",
            where,
            f"simulated GRPO step {STEP_IMAGES} images x {RESPONSES_PER_IMAGE} responses; ours = unique images "
            f"(+{ours_decodes} decodes: full + base per response with negatives); naive = {NAIVE_SAMPLES} probe "
            "set_image + 1 mask set_image per response (exact count of its control flow)",
        ),
        BenchRow(
            "sam_step_wall",
            ours_wall,
            naive_measured * n_responses / measured,
            "s",
            where,
            f"same step, random weights; ours measured in full{extrapolated}",
        ),
    ]


def _mining_row(model, device: str, where: str, autocast) -> BenchRow:
    """Mining throughput on the same images, two rows per image: ours vs the naive loop."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from segzero_plus.data.scenes import generate_scenes
    from segzero_plus.sam.mining import mine_confused_regions
    from segzero_plus.sam.scorer import SamScorer

    mining_scenes = generate_scenes(MINING_IMAGES, seed=12, sizes=((840, 840),))
    mining_rows = [s for s in mining_scenes for _ in range(ROWS_PER_IMAGE)]
    miner = SamScorer(model, cache_size=4)

    def ours_mining() -> None:
        for i, s in enumerate(mining_rows):
            mine_confused_regions(
                miner, s.scene_id, s.image, s.target_mask, distractor_masks=s.distractor_masks, seed=[0, i]
            )

    ours_mining_wall = _timed(ours_mining, device)
    predictor = SAM2ImagePredictor(model)
    with autocast:
        naive_mining_wall = _timed(
            lambda: _naive_mining(predictor, mining_rows, np.random.default_rng(2)), device
        )
    return BenchRow(
        "mining_images_per_s",
        MINING_IMAGES / ours_mining_wall,
        MINING_IMAGES / naive_mining_wall,
        "images/s",
        where,
        f"{MINING_IMAGES} images x {ROWS_PER_IMAGE} rows; ours: 1 encode per image, oracle FP + "
        f"{NAIVE_SAMPLES} probes in one batched call + distractors ({miner.stats.images_encoded} encodes); "
        f"naive: set_image per row + {NAIVE_SAMPLES} single predicts",
        higher_is_better=True,
    )


def run() -> list[BenchRow]:
    from segzero_plus.sam.build import build_sam2_model

    device = os.environ.get("SEGZERO_BENCH_DEVICE", "cpu")
    on_gpu = device.startswith("cuda")
    config = os.environ.get("SEGZERO_BENCH_SAM_CONFIG", DEFAULT_SAM_CONFIG if on_gpu else "sam2.1_hiera_t")
    where = (
        f"{torch.cuda.get_device_name()} ({config}, bf16)" if on_gpu else f"{device_name()} ({config}, fp32)"
    )
    model = build_sam2_model(config, None, device=device, seed=0)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else torch.autocast("cpu", enabled=False)
    )
    rows = [*_step_rows(model, device, where, autocast), _mining_row(model, device, where, autocast)]
    if on_gpu:
        from segzero_plus.data.scenes import generate_scenes

        rows += _gpu_rows(model, generate_scenes(STEP_IMAGES, seed=11, sizes=((840, 840),)), where)
    return rows


def _gpu_rows(model, scenes, where: str) -> list[BenchRow]:
    """Hiera-L encode ms/image and decode ms/prompt set (batched vs one-at-a-time), peak memory."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from segzero_plus.sam.scorer import PromptSet, SamScorer

    torch.cuda.reset_peak_memory_stats()
    scorer = SamScorer(model, cache_size=64)
    enc = _timed(lambda: [scorer.encode(f"e{i}", s.image) for i, s in enumerate(scenes)], "cuda") / len(
        scenes
    )
    predictor = SAM2ImagePredictor(model)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        set_img = _timed(lambda: [predictor.set_image(s.image) for s in scenes], "cuda") / len(scenes)
    prompts = [
        PromptSet.make((100, 100, 500, 500), [(200 + i, 220), (300, 310 + i)], [(120 + i, 110)])
        for i in range(64)
    ]
    batched = _timed(lambda: scorer.score("e0", None, prompts), "cuda") / len(prompts)
    single = _timed(lambda: [scorer.score("e0", None, [p]) for p in prompts], "cuda") / len(prompts)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    return [
        BenchRow(
            "sam_gpu_encode_ms",
            1000 * enc,
            1000 * set_img,
            "ms/image",
            where,
            "ours: SamScorer.encode (GPU preprocessing); baseline: SAM2ImagePredictor.set_image, 840x840",
        ),
        BenchRow(
            "sam_gpu_decode_ms",
            1000 * batched,
            1000 * single,
            "ms/prompt set",
            where,
            "64 prompt sets (box + 2 pos + 1 neg) of one image: one batched call vs one call each, "
            "incl. upsampling to 840x840",
        ),
        BenchRow(
            "sam_gpu_peak_memory",
            peak_gib,
            peak_gib,
            "GiB",
            where,
            "torch.cuda.max_memory_allocated over encode of 16 images (cache kept) and the decodes",
        ),
    ]
