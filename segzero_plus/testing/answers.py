"""Crafted model answers for a training row, for tests that push known answers through a reward path."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from segzero_plus.geometry import inscribed_circle_centres
from segzero_plus.masks import decode_rle

MALFORMED = "it is the red one near (10, 20) {'bbox': [1, 2, oops"
"""An answer the parser rejects (a parse error, score 0)."""


def answer_text(
    bbox: Sequence[float], pos: Sequence[Sequence[float]], neg: Sequence[Sequence[float]] = ()
) -> str:
    """A well-formed negative-point answer (think block + JSON), coordinates rounded to ints (MODEL frame)."""
    return (
        "<think> the target is the one next to the square </think>"
        f'<answer>{{"bbox": {[int(v) for v in bbox]}, "points_pos": {[[int(x), int(y)] for x, y in pos]}, '
        f'"points_neg": {[[int(x), int(y)] for x, y in neg]}}}</answer>'
    )


def crafted_answers(row: Mapping[str, Any], shift_px: int = 40) -> dict[str, str]:
    """For one training row: ``exact`` (its ground-truth box and points, plus a negative on the first
    look-alike when it has one), ``shifted`` (box and points moved by ``shift_px``), ``malformed``."""
    gt = json.loads(row["reward_model"]["ground_truth"])
    x1, y1, x2, y2 = gt["bbox"]
    neg = inscribed_circle_centres(decode_rle(gt["distractor_masks"][0]), 1) if gt["distractor_masks"] else []
    d = shift_px
    return {
        "exact": answer_text(gt["bbox"], gt["points"], neg),
        "shifted": answer_text(
            [x1 + d, y1 + d, x2 + d, y2 + d], [(p[0] + d, p[1] + d) for p in gt["points"]]
        ),
        "malformed": MALFORMED,
    }
