"""The SFT-cold-started toy policy on held-out look-alike scenes, with the trained toy SAM2.

Scenes: ``generate_scenes(N, seed=HELD_OUT_SEED)`` easy and hard (never trained on: the toy policy's
training scenes use ``TRAIN_SEED``). The policy answers in its 168x168 MODEL frame (greedy decoding);
the evaluation pipeline maps its prompts to the ORIGINAL frame and runs the toy SAM2.

Rows (ours vs baseline, measured in one run on the same scenes):
- ``toy_policy_parse_rate``: share of answers with a box and a positive point, the toy policy vs the
  untrained tiny Qwen2.5-VL it started from;
- ``toy_policy_strict_rate``: share of answers in the strict negative-point format, the same pair;
- ``toy_policy_giou``: gIoU of the toy policy's prompts vs the ground-truth prompt (box + 2 inscribed
  points, the upper bound of a perfect box-and-points policy);
- ``toy_policy_giou_negatives``: gIoU with the policy's negatives vs the same answers without them,
  overall and on hard scenes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import BenchRow, device_name
from segzero_plus.testing.toy_policy import evaluate_toy_policy, toy_eval_parquet

HELD_OUT_SEED = 77
N_SCENES = 50


def _parse_rate(m: dict) -> float:
    """Share of samples whose answer parsed (soft format): failures for other reasons do not count."""
    o = m["overall"]
    unparsed = sum(v for k, v in (o.get("failure_reasons") or {}).items() if "parse" in k)
    return 1.0 - unparsed / o["n"]


def _hard(m: dict) -> dict:
    return next(v for k, v in m["by_split"].items() if k.startswith("lookalike_hard"))


def run() -> list[BenchRow]:
    from segzero_plus.testing.tiny_models import ensure_tiny_qwen

    with tempfile.TemporaryDirectory(prefix="bench_toy_policy_") as tmp:
        data = toy_eval_parquet(Path(tmp) / "eval.parquet", N_SCENES, HELD_OUT_SEED)
        ours = evaluate_toy_policy(data, Path(tmp) / "toy_policy")
        base = evaluate_toy_policy(data, Path(tmp) / "untrained", ensure_tiny_qwen(), "tiny Qwen (untrained)")
    dev = device_name()
    n = f"{N_SCENES} easy + {N_SCENES} hard held-out scenes"
    o, hard = ours["overall"], _hard(ours)
    return [
        BenchRow(
            "toy_policy_parse_rate",
            _parse_rate(ours),
            _parse_rate(base),
            "share of answers",
            dev,
            f"box + positive point parsed: toy policy vs the untrained tiny Qwen2.5-VL ({n})",
            higher_is_better=True,
        ),
        BenchRow(
            "toy_policy_strict_rate",
            o["strict_format_rate"],
            base["overall"]["strict_format_rate"],
            "share of answers",
            dev,
            f"strict negative-point format: toy policy vs the untrained tiny Qwen2.5-VL ({n})",
            higher_is_better=True,
        ),
        BenchRow(
            "toy_policy_giou",
            o["gIoU"],
            o["gt_prompt"]["gIoU"],
            "gIoU",
            dev,
            f"toy policy's prompts vs the ground-truth box + 2 points, toy SAM2 (hard scenes: "
            f"{100 * hard['gIoU']:.1f} vs {100 * hard['gt_prompt']['gIoU']:.1f}; untrained policy "
            f"{100 * base['overall']['gIoU']:.1f}) ({n})",
            higher_is_better=True,
        ),
        BenchRow(
            "toy_policy_giou_negatives",
            o["gIoU"],
            o["without_negatives"]["gIoU"],
            "gIoU",
            dev,
            f"toy policy's answers with vs without their negatives ({o['negatives']['samples_with_negatives']} "
            f"answers have negatives; hard scenes {100 * hard['gIoU']:.1f} vs "
            f"{100 * hard['without_negatives']['gIoU']:.1f}) ({n})",
            higher_is_better=True,
        ),
    ]
