"""Reward cost for one GRPO batch: 16 prompts x 8 rollouts on 840x840 masks, ours vs naive terms.

Rows:
- ``reward_batch_128``: the full reward (parse, format, box, point, negative terms) of 128 responses.
  Ours: ``total_reward`` with one fresh ``GroundTruth`` per prompt (its caches are built inside the
  timing). Baseline: the same parse/format/box terms with a naive point term (an ``np.argwhere`` scan
  of the mask for every positive point off the mask) and the additive negative term.
- ``reward_batch_128_whole_lookalike``: the same with the whole look-alike as the confused region (the
  ground truth's distractor mask, no mined mask): the negative term labels components that reach far
  beyond the target's box.
- ``reward_point_term_128``: the point term alone on the same parsed answers (ours includes building
  each prompt's boundary index; both give the same 0/1 values, checked here).

Inputs are seeded: targets are ellipses of 60-260 px radius next to a look-alike whose near side is the
confused region; the 8 rollouts per prompt mix good, sloppy, near-miss, far-off and broken answers.
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np

from benchmarks.common import BenchRow, best_of, device_name
from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
from segzero_plus.parsing import Answer, parse_answer
from segzero_plus.rewards import (
    GroundTruth,
    RewardConfig,
    box_iou_reward,
    box_l1_reward,
    negative_point_reward_additive,
    point_reward,
    seg_format_strict,
    think_format_strict,
    total_reward,
)

SIZE = 840
N_PROMPTS = 16
N_ROLLOUTS = 8


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    ys, xs = np.ogrid[0:SIZE, 0:SIZE]
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def make_samples(seed: int = 0) -> list[dict]:
    """16 prompts: target mask, look-alike (distractor), confused region, GT box and points."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(N_PROMPTS):
        rx, ry = rng.uniform(60, 260), rng.uniform(60, 260)
        cx, cy = rng.uniform(rx + 5, SIZE - rx - 5), rng.uniform(ry + 5, SIZE - ry - 5)
        target = _ellipse(cx, cy, rx, ry)
        side = 1 if cx < SIZE / 2 else -1
        look_alike = _ellipse(cx + side * (rx + 0.6 * rx + 10), cy, 0.6 * rx, 0.6 * ry) & ~target
        near_side = _ellipse(cx, cy, rx + 60, ry + 60)
        confused = look_alike & near_side
        bbox = mask_bbox(target)
        samples.append(
            {
                "mask": target,
                "distractors": [look_alike],
                "look_alike": look_alike,
                "confused": confused,
                "bbox": bbox,
                "points": inscribed_circle_centres(target, 2),
            }
        )
    return samples


def make_responses(sample: dict, rng: np.random.Generator) -> list[str]:
    """8 rollouts: good x2, near misses x3 (one in the old format), far-off, sloppy, truncated."""
    x1, y1, x2, y2 = sample["bbox"]
    (ax, ay), (bx, by) = sample["points"]
    ys, xs = np.nonzero(sample["confused"])
    k = int(rng.integers(len(xs)))
    neg_hit = [int(xs[k]), int(ys[k])]
    cy = (y1 + y2) // 2

    def jitter(v: int, s: int = 3) -> int:
        return int(v + rng.integers(-s, s + 1))

    def answer(box, pos, neg) -> str:
        body = {"bbox": [jitter(v) for v in box], "points_pos": pos, "points_neg": neg}
        return "<think>The target is left of the look-alike.</think><answer>" + json.dumps(body) + "</answer>"

    corner_a, corner_b = [x1 + 4, y1 + 4], [x2 - 4, y2 - 4]  # bbox corners: off an ellipse, < 100 px away
    right_of = [min(x2 + 30, SIZE - 1), cy]
    far = [[(x1 + 420) % SIZE, (y1 + 420) % SIZE], [(x2 + 400) % SIZE, (y2 + 430) % SIZE]]
    sloppy = (
        f"<think>hm</think><answer>{{'bbox': [{x1}, {y1}, {x2}, {y2}], 'points_pos': [[{ax}, {ay}], [{bx}, {by}],], "
        f"'points_neg': [[{ax}, {ay}], [5, 5]],}}</answer>"
    )
    old = (
        "<think>x</think><answer>"
        + json.dumps({"bbox": [x1, y1, x2, y2], "points_1": corner_a, "points_2": [bx, by]})
        + "</answer>"
    )
    return [
        answer((x1, y1, x2, y2), [[ax, ay], [bx, by]], [neg_hit]),
        answer((x1, y1, x2, y2), [[ax, ay], [bx, by]], []),
        answer((x1, y1, x2, y2), [corner_a, corner_b], [neg_hit]),
        answer((x1, y1, x2, y2), [[ax, ay], right_of], []),
        answer((x1, y1, x2, y2), far, [[ax, ay]]),
        sloppy,
        old,
        answer((x1, y1, x2, y2), [[ax, ay], [bx, by]], [])[:-40],  # truncated
    ]


# --------------------------------------------------------------------------------------------------
# The baseline's terms: a naive point term and the additive negative formula
# --------------------------------------------------------------------------------------------------


def naive_point_reward(points, gt_mask: np.ndarray, threshold: float = 100.0) -> float:
    """Naive point term: for each point off the mask, scan ``np.argwhere(mask)`` for the nearest pixel."""
    if not points:
        return 0.0
    h, w = gt_mask.shape
    for pt in points:
        x, y = int(pt[0]), int(pt[1])
        if not (0 <= x < w and 0 <= y < h):
            return 0.0
        if gt_mask[y, x] > 0:
            continue
        coords = np.argwhere(gt_mask > 0)
        if len(coords) == 0:
            return 0.0
        if np.sqrt((coords[:, 1] - x) ** 2 + (coords[:, 0] - y) ** 2).min() > threshold:
            return 0.0
    return 1.0


def naive_total(response: str, sample: dict, config: RewardConfig, region: str) -> dict[str, float]:
    """Same parse/format/box terms as ours, the naive point term and the additive negative term (on ``sample[region]``)."""
    answer: Answer = parse_answer(response)
    mask = sample["mask"]
    terms = {
        "think_format": think_format_strict(response),
        "seg_format": seg_format_strict(answer, config.template, mask.shape, config.max_negative_points),
        "bbox_iou": 0.0,
        "bbox_l1": 0.0,
        "point": 0.0,
        "negative_point": 0.0,
    }
    if answer.ok:
        terms["bbox_iou"] = box_iou_reward(answer.bbox, sample["bbox"], config.iou_threshold)
        terms["bbox_l1"] = box_l1_reward(answer.bbox, sample["bbox"], config.l1_threshold_px)
        terms["point"] = naive_point_reward(answer.points_pos, mask, config.point_threshold_px)
        terms["negative_point"] = negative_point_reward_additive(
            answer.points_neg, mask, answer.bbox, sample[region]
        )
    terms["score"] = sum(terms.values())
    return terms


def _fresh_gt(sample: dict, region: str = "confused") -> GroundTruth:
    confused = sample["confused"] if region == "confused" else None  # None: the distractor is used
    return GroundTruth(sample["bbox"], sample["points"], sample["mask"], confused, sample["distractors"])


def _ours_batch(batch: list, config: RewardConfig, region: str = "confused") -> list[dict]:
    out = []
    for sample, responses in batch:
        gt = _fresh_gt(sample, region)  # per-prompt caches are rebuilt inside every timed run
        out.extend(total_reward(r, gt, config) for r in responses)
    return out


def _naive_batch(batch: list, config: RewardConfig, region: str = "confused") -> list[dict]:
    return [naive_total(r, sample, config, region) for sample, responses in batch for r in responses]


def _ours_points(parsed: list, config: RewardConfig) -> list[float]:
    out = []
    for sample, answers in parsed:
        gt = _fresh_gt(sample)
        out.extend(point_reward(a.points_pos, gt, config.point_threshold_px) for a in answers)
    return out


def _naive_points(parsed: list, config: RewardConfig) -> list[float]:
    return [
        naive_point_reward(a.points_pos, sample["mask"], config.point_threshold_px)
        for sample, answers in parsed
        for a in answers
    ]


def run() -> list[BenchRow]:
    config = RewardConfig()
    samples = make_samples()
    rng = np.random.default_rng(1)
    batch = [(sample, make_responses(sample, rng)) for sample in samples]
    parsed = [(sample, [parse_answer(r) for r in responses]) for sample, responses in batch]
    n_off_mask = sum(
        1
        for sample, answers in parsed
        for a in answers
        for x, y in a.points_pos
        if not sample["mask"][int(y), int(x)]
        if 0 <= x < SIZE and 0 <= y < SIZE
    )

    ours_batch, naive_batch = partial(_ours_batch, batch, config), partial(_naive_batch, batch, config)
    ours_points, naive_points = partial(_ours_points, parsed, config), partial(_naive_points, parsed, config)

    assert ours_points() == naive_points(), "the two point terms must agree on these inputs"
    ours_results = ours_batch()
    assert len(ours_results) == N_PROMPTS * N_ROLLOUTS and len({tuple(r) for r in ours_results}) == 1
    naive_batch()  # warm-up

    t_ours = best_of(ours_batch, repeats=5) * 1e3
    t_naive = best_of(naive_batch, repeats=3) * 1e3
    t_ours_whole = best_of(lambda: ours_batch("look_alike"), repeats=5) * 1e3
    t_naive_whole = best_of(lambda: naive_batch("look_alike"), repeats=3) * 1e3
    t_ours_pt = best_of(ours_points, repeats=5) * 1e3
    t_naive_pt = best_of(naive_points, repeats=3) * 1e3
    device = device_name()
    common = f"{N_PROMPTS} prompts x {N_ROLLOUTS} rollouts, 840x840 masks, {n_off_mask} positive points off the mask"
    return [
        BenchRow(
            name="reward_batch_128",
            ours=t_ours,
            baseline=t_naive,
            unit="ms",
            device=device,
            note=f"full reward; ours=total_reward (geometry negatives), baseline=naive point + additive negative terms; {common}",
        ),
        BenchRow(
            name="reward_batch_128_whole_lookalike",
            ours=t_ours_whole,
            baseline=t_naive_whole,
            unit="ms",
            device=device,
            note=f"as reward_batch_128 with the whole look-alike as the confused region (components labelled "
            f"whole, beyond the target's box); {common}",
        ),
        BenchRow(
            name="reward_point_term_128",
            ours=t_ours_pt,
            baseline=t_naive_pt,
            unit="ms",
            device=device,
            note=f"point term only, per-prompt cache build included in ours, same 0/1 values; {common}",
        ),
    ]
