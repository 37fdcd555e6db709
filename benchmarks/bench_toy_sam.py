"""The trained toy SAM2 fixture on held-out look-alike scenes, against the same model with random weights
and against itself without a negative point.

Scenes: ``generate_scenes(N, seed=HELD_OUT_SEED)`` easy and hard (default sizes; never seen in training,
whose seeds start at 2**40). Prompts and the leak definition: :mod:`segzero_plus.testing.toy_sam_eval`
(ground-truth box + its two inscribed-circle centres; the negative is the centre of the look-alike that
overlaps the target's box most; a mask leaks when its look-alike pixels reach 5% of the target's area).

Rows:
- ``toy_sam_easy_miou_box_pos`` / ``toy_sam_hard_miou_box_pos``: mIoU of box + 2 positives, trained vs
  random weights;
- ``toy_sam_hard_miou_neg``: mIoU with one negative on the look-alike vs without (exact box);
- ``toy_sam_hard_miou_span_neg``: the same with a box spanning target and look-alike;
- ``toy_sam_hard_leak_rate``: share of hard scenes whose mask leaks, with the negative vs without.
"""

from __future__ import annotations

from benchmarks.common import BenchRow, device_name
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.testing.toy_sam import toy_sam_scorer
from segzero_plus.testing.toy_sam_eval import evaluate_scorer

HELD_OUT_SEED = 777
N_SCENES = 100


def run() -> list[BenchRow]:
    scenes = generate_scenes(N_SCENES, seed=HELD_OUT_SEED) + generate_scenes(
        N_SCENES, seed=HELD_OUT_SEED, difficulty="hard"
    )
    trained = evaluate_scorer(toy_sam_scorer(cache_size=1), scenes)
    random = evaluate_scorer(toy_sam_scorer(cache_size=1, random_weights=True), scenes)
    dev = device_name()
    n = f"{N_SCENES} held-out scenes per difficulty"
    rows = [
        BenchRow(
            f"toy_sam_{d}_miou_box_pos",
            trained[f"{d}/miou/box_pos"],
            random[f"{d}/miou/box_pos"],
            "mIoU",
            dev,
            f"box + 2 positives, trained toy SAM2 vs the same model with random weights ({n})",
            higher_is_better=True,
        )
        for d in ("easy", "hard")
    ]
    gain = trained["hard/neg_gain"]
    rows.append(
        BenchRow(
            "toy_sam_hard_miou_neg",
            trained["hard/miou/box_pos_neg"],
            trained["hard/miou/box_pos"],
            "mIoU",
            dev,
            f"trained: box + 2 pos + 1 neg on the look-alike vs box + 2 pos; gain {100 * gain:+.1f} points, "
            f"{100 * trained['hard/neg_better_share']:.0f}% of scenes better, "
            f"{100 * trained['hard/neg_worse_share']:.0f}% worse ({n})",
            higher_is_better=True,
        )
    )
    rows.append(
        BenchRow(
            "toy_sam_hard_miou_span_neg",
            trained["hard/miou/span_pos_neg"],
            trained["hard/miou/span_pos"],
            "mIoU",
            dev,
            "trained: box spanning target + look-alike, 2 pos, with vs without the negative on the "
            f"look-alike (gain {100 * trained['hard/neg_gain_span']:+.1f} points)",
            higher_is_better=True,
        )
    )
    rows.append(
        BenchRow(
            "toy_sam_hard_leak_rate",
            trained["hard/leak/box_pos_neg"],
            trained["hard/leak/box_pos"],
            "share of scenes",
            dev,
            "trained: masks covering look-alike pixels >= 5% of the target's area, exact box + 2 pos with vs "
            f"without the negative (spanning box: {100 * trained['hard/leak/span_pos']:.0f}% -> "
            f"{100 * trained['hard/leak/span_pos_neg']:.0f}%)",
        )
    )
    return rows
