"""Format terms: think format (Seg-Zero's whole-response shape, or "contains a think block") and
segmentation format (soft and strict).

All return 1.0 or 0.0 and never raise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from segzero_plus.parsing import Answer

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"


def think_answer_shape(response: str) -> bool:
    """Seg-Zero's think format: ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>", s, re.DOTALL)``.

    Decided in linear time with ``str`` scans (the regex itself backtracks quadratically on adversarial
    input): the text starts with ``<think>``, ends with ``</answer>``, and some ``</think>`` after the
    opening tag is followed by whitespace and then ``<answer>`` that ends before the final ``</answer>``.
    """
    if not isinstance(response, str):
        return False
    n = len(response)
    if not (response.startswith(_THINK_OPEN) and response.endswith(_ANSWER_CLOSE)):
        return False
    last_answer_start = n - len(_ANSWER_CLOSE) - len(_ANSWER_OPEN)  # "<answer>" must end before "</answer>"
    i = response.find(_THINK_CLOSE, len(_THINK_OPEN))
    while i >= 0:
        k = i + len(_THINK_CLOSE)
        while k < n and response[k].isspace():
            k += 1
        if k > last_answer_start:
            return False  # later "</think>"s only start later still
        if response.startswith(_ANSWER_OPEN, k):
            return True
        i = response.find(_THINK_CLOSE, i + 1)
    return False


def think_format_strict(response: str) -> float:
    """1.0 iff the response is ``<think>...</think>`` then whitespace then ``<answer>...</answer>``, only."""
    return 1.0 if think_answer_shape(response) else 0.0


def think_format_contains(response: str) -> float:
    """1.0 iff the response contains ``<think>`` followed later by ``</think>`` (anything around them)."""
    if not isinstance(response, str):
        return 0.0
    start = response.find(_THINK_OPEN)
    return 1.0 if start >= 0 and response.find(_THINK_CLOSE, start + len(_THINK_OPEN)) >= 0 else 0.0


def seg_format_soft(answer: Answer) -> float:
    """The soft format: 1.0 iff a box and at least one positive point were parsed."""
    return 1.0 if answer.ok else 0.0


def _in_frame(x: float, y: float, hw: Sequence[int]) -> bool:
    return 0.0 <= x <= hw[1] and 0.0 <= y <= hw[0] and math.isfinite(x) and math.isfinite(y)


def seg_format_strict(
    answer: Answer, template: str, hw: Sequence[int], max_negative_points: int = 3
) -> float:
    """The strict format: 1.0 iff the answer is strict for ``template`` and lies in the frame.

    Strict means: :attr:`Answer.strict` (exactly one JSON object with exactly the template's answer keys,
    two positive points, valid numbers, ordered corners), ``Answer.schema == template``, at most
    ``max_negative_points`` negatives, and every coordinate within ``[0, W] x [0, H]`` of the MODEL frame
    ``hw = (H, W)`` (``0 <= v <= 840`` in the 840x840 frame).
    """
    if not answer.strict or answer.schema != template or answer.bbox is None:
        return 0.0
    if len(answer.points_neg) > max_negative_points:
        return 0.0
    x1, y1, x2, y2 = answer.bbox
    points = [(x1, y1), (x2, y2), *answer.points_pos, *answer.points_neg]
    return 1.0 if all(_in_frame(x, y, hw) for x, y in points) else 0.0
