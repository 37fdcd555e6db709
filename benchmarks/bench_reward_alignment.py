"""Does the reward pay what helps? Rank correlation of each reward variant with the mask IoU SAM gives.

Toy evaluation split: ``generate_scenes(N_SCENES, seed=ALIGN_SEED, difficulty="mixed")`` (half easy, half
hard), turned into training rows (840x840 MODEL frame, ``negative_point`` template), their confused regions
mined with the trained toy SAM2 (the pipeline's ``mine-confused`` step), then scored by the same toy SAM2.

Sampled answers per scene (MODEL frame, seeded): five boxes/positives (exact ground truth; small jitter,
6% of the side for the box and 4% for the points; large jitter, 15% / 10%; a box spanning the target and
its look-alike; the look-alike itself, i.e. the wrong object) times four negative options (none; one on
the look-alike; one on background near the target; one inside the target). The LOOK-ALIKE is the
distractor overlapping the target's box most, else the nearest one (scenes without distractors get no
look-alike answers).

For each answer: the final mask IoU (SAM(box, pos, neg) in the ORIGINAL frame against the scene's target
mask) and the IoU change its negatives cause (against SAM(box, pos)). Reward variants:

- ``seg_zero_strict``: Seg-Zero's five 0/1 terms on the answer written in Seg-Zero's format (no negatives);
- ``geometry``: our default total (``RewardConfig()``: negatives paid for hitting confused components);
- ``sam_counterfactual``: the total with the geometry negative term off and the SAM counterfactual
  ``neg_reward`` added (what ``negative_reward: sam_counterfactual`` trains with);
- ``additive``: the total with the additive negative formula kept for its ablation.

Rows: Spearman's rho of each variant with the final IoU (baseline: Seg-Zero strict), and of each negative
term's pay for the negatives (the term minus its value for the same answer without negatives; for the
counterfactual, ``neg_reward`` itself) with the IoU change they cause, over answers with a negative
(baseline: the additive formula).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from benchmarks.common import BenchRow, device_name
from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import decode_png, generate_scenes
from segzero_plus.data.schema import to_ground_truth
from segzero_plus.data.training import TrainingOptions
from segzero_plus.rewards import GroundTruth, RewardConfig, seg_zero_strict_score, total_reward
from segzero_plus.sam.counterfactual import CounterfactualConfig, counterfactual_reward, mask_iou
from segzero_plus.sam.mining import mine_confused_regions
from segzero_plus.sam.scorer import PromptSet
from segzero_plus.testing.toy_sam import toy_sam_scorer

ALIGN_SEED = 31
N_SCENES = 40
BASES: dict[str, tuple[float, float]] = {"exact": (0.0, 0.0), "jitter": (0.06, 0.04), "loose": (0.15, 0.10)}
"""Answer bases drawn around the ground truth: (box noise, point noise) as shares of the box side."""
NEGATIVE_OPTIONS: tuple[str, ...] = ("none", "lookalike", "background", "inside")
VARIANTS: dict[str, RewardConfig] = {
    "geometry": RewardConfig(),
    "sam_counterfactual": RewardConfig(negative_reward="none"),
    "additive": RewardConfig(negative_reward="additive"),
}


@dataclass(frozen=True)
class SampledAnswer:
    """One answer in the MODEL frame: integer box XYXY, positives and negatives (x, y)."""

    kind: str
    box: tuple[int, int, int, int]
    pos: tuple[tuple[int, int], ...]
    neg: tuple[tuple[int, int], ...]

    def response(self, with_negatives: bool = True) -> str:
        answer = {"bbox": list(self.box), "points_pos": [list(p) for p in self.pos]}
        answer["points_neg"] = [list(p) for p in self.neg] if with_negatives else []
        return f"<think> sampled answer </think><answer>{json.dumps(answer)}</answer>"

    def seg_zero_response(self) -> str:
        answer = {"bbox": list(self.box), "points_1": list(self.pos[0]), "points_2": list(self.pos[1])}
        return f"<think> sampled answer </think><answer>{json.dumps(answer)}</answer>"


def lookalike_mask(gt: GroundTruth) -> np.ndarray | None:
    """The distractor overlapping the target's box (grown by 1 px) most, else the nearest; None if none."""
    if not gt.distractor_masks:
        return None
    x1, y1, x2, y2 = (int(v) for v in gt.bbox)
    overlaps = [int(m[max(y1 - 1, 0) : y2 + 2, max(x1 - 1, 0) : x2 + 2].sum()) for m in gt.distractor_masks]
    if max(overlaps) > 0:
        return gt.distractor_masks[int(np.argmax(overlaps))]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2

    def distance(m: np.ndarray) -> float:
        ys, xs = np.nonzero(m)
        return float(np.hypot(xs.mean() - cx, ys.mean() - cy))

    return min(gt.distractor_masks, key=distance)


def _interior_point(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    i = int(rng.integers(0, len(xs)))
    return int(xs[i]), int(ys[i])


def _background_point(gt: GroundTruth, rng: np.random.Generator) -> tuple[int, int]:
    """A pixel on no object within 40 px of the target's box."""
    h, w = gt.hw
    occupied = gt.mask | (gt.distractor_union if gt.distractor_union is not None else False)
    x1, y1, x2, y2 = (int(v) for v in gt.bbox)
    region = np.zeros((h, w), bool)
    region[max(y1 - 40, 0) : y2 + 41, max(x1 - 40, 0) : x2 + 41] = True
    return _interior_point(region & ~occupied, rng)


def _jittered(gt: GroundTruth, box_noise: float, point_noise: float, rng: np.random.Generator):
    h, w = gt.hw
    x1, y1, x2, y2 = gt.bbox
    side = np.array([x2 - x1 + 1, y2 - y1 + 1] * 2)
    box = np.clip(np.array([x1, y1, x2, y2]) + rng.normal(0, box_noise, 4) * side, 0, [w - 1, h - 1] * 2)
    box = (*np.minimum(box[:2], box[2:]), *np.maximum(box[:2], box[2:]))
    pts = np.array(gt.points) + rng.normal(0, point_noise, (2, 2)) * side[:2]
    pts = np.clip(pts, 0, [w - 1, h - 1])
    return tuple(int(round(v)) for v in box), tuple((int(round(x)), int(round(y))) for x, y in pts)


def sample_answers(gt: GroundTruth, rng: np.random.Generator) -> list[SampledAnswer]:
    """The answers of one scene (see the module docstring), MODEL frame."""
    other = lookalike_mask(gt)
    bases = {name: _jittered(gt, *noise, rng) for name, noise in BASES.items()}
    if other is not None:
        ys, xs = np.nonzero(gt.mask | other)
        gt_points = tuple((int(x), int(y)) for x, y in gt.points)
        bases["span"] = ((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), gt_points)
        wrong = GroundTruth.from_mask(other)
        bases["wrong_object"] = (
            tuple(int(v) for v in wrong.bbox),
            tuple((int(x), int(y)) for x, y in wrong.points),
        )
    negatives = {
        "none": (),
        "lookalike": (_interior_point(other, rng),) if other is not None else None,
        "background": (_background_point(gt, rng),),
        "inside": (_interior_point(gt.mask, rng),),
    }
    return [
        SampledAnswer(f"{base}/{neg_kind}", box, pos, neg)
        for base, (box, pos) in bases.items()
        for neg_kind, neg in negatives.items()
        if neg is not None
    ]


def score_scene(scorer, scene, row: dict, rng: np.random.Generator) -> list[dict[str, float]]:
    """Mine the row's confused region, sample answers, and record IoU, IoU change and every reward."""
    image = decode_png(row["images"][0]["bytes"])
    key = row["extra_info"]["id"]
    gt0 = to_ground_truth(row["reward_model"]["ground_truth"])
    mined = mine_confused_regions(scorer, key, image, gt0.mask, gt0.bbox, gt0.points, gt0.distractor_masks)
    gt = GroundTruth(gt0.bbox, gt0.points, gt0.mask, mined.union, gt0.distractor_masks, gt0.solution)
    records = []
    for answer in sample_answers(gt, rng):
        full, base = scorer.score(
            key,
            image,
            [PromptSet.make(answer.box, answer.pos, answer.neg), PromptSet.make(answer.box, answer.pos)],
            out_hw=(scene.height, scene.width),
        )
        cf = counterfactual_reward(
            scorer, key, image, answer.box, answer.pos, answer.neg, gt.mask, CounterfactualConfig()
        )
        record = {
            "iou": mask_iou(full.mask, scene.target_mask),
            "iou_change": mask_iou(full.mask, scene.target_mask) - mask_iou(base.mask, scene.target_mask),
            "has_neg": float(bool(answer.neg)),
            "seg_zero_strict": seg_zero_strict_score(answer.seg_zero_response(), gt.seg_zero_solution),
            "pay/sam_counterfactual": cf["neg_reward"],
        }
        for name, config in VARIANTS.items():
            extra = {"sam_counterfactual": cf["neg_reward"]} if name == "sam_counterfactual" else None
            with_neg = total_reward(answer.response(), gt, config, extra)
            record[name] = with_neg["score"]
            if name != "sam_counterfactual":
                without = total_reward(answer.response(with_negatives=False), gt, config)
                record[f"pay/{name}"] = with_neg["negative_point"] - without["negative_point"]
        records.append(record)
    scorer.clear_cache()
    return records


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho; 0.0 when either side is constant (the rank correlation is undefined)."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return 0.0
    return float(spearmanr(x, y).statistic)


def correlations(records: list[dict[str, float]]) -> dict[str, float]:
    """``rho_iou/<variant>``, ``rho_change/<negative term>`` and counts over ``records``."""
    iou = [r["iou"] for r in records]
    out = {
        f"rho_iou/{name}": spearman([r[name] for r in records], iou)
        for name in ("seg_zero_strict", *VARIANTS)
    }
    with_neg = [r for r in records if r["has_neg"]]
    change = [r["iou_change"] for r in with_neg]
    for name in ("geometry", "sam_counterfactual", "additive"):
        out[f"rho_change/{name}"] = spearman([r[f"pay/{name}"] for r in with_neg], change)
    out.update(n_answers=float(len(records)), n_with_negatives=float(len(with_neg)))
    out["mean_abs_iou_change"] = float(np.mean(np.abs(change)))
    return out


def measure(n_scenes: int = N_SCENES, seed: int = ALIGN_SEED) -> dict[str, float]:
    """:func:`correlations` over all sampled answers, and over the hard scenes' as ``hard/<key>``."""
    scenes = generate_scenes(n_scenes, seed=seed, difficulty="mixed")
    rows = scenes_to_training_rows(
        scenes, TrainingOptions(template="negative_point", data_source="lookalike")
    )
    scorer = toy_sam_scorer(cache_size=2)
    rng = np.random.default_rng(seed)
    records = []
    for scene, row in zip(scenes, rows, strict=True):
        for record in score_scene(scorer, scene, row, rng):
            records.append({**record, "hard": float(scene.difficulty == "hard")})
    out = correlations(records)
    out.update({f"hard/{k}": v for k, v in correlations([r for r in records if r["hard"]]).items()})
    return out


def run() -> list[BenchRow]:
    m = measure()
    dev = device_name()
    n = f"{int(m['n_answers'])} sampled answers on {N_SCENES} toy scenes (half hard), trained toy SAM2"
    rows = [
        BenchRow(
            f"reward_alignment_iou_{name}",
            m[f"rho_iou/{name}"],
            m["rho_iou/seg_zero_strict"],
            "Spearman rho",
            dev,
            f"rank correlation of the {name} total with the final mask IoU vs Seg-Zero strict's ({n})",
            higher_is_better=True,
        )
        for name in VARIANTS
    ]
    rows += [
        BenchRow(
            f"reward_alignment_negative_{name}",
            m[f"rho_change/{name}"],
            m["rho_change/additive"],
            "Spearman rho",
            dev,
            f"rank correlation of the {name} negative term's pay with the IoU change the negatives cause vs "
            f"the additive formula's ({int(m['n_with_negatives'])} answers with a negative; mean |change| "
            f"{m['mean_abs_iou_change']:.3f})",
            higher_is_better=True,
        )
        for name in ("geometry", "sam_counterfactual")
    ]
    return rows
