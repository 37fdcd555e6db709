"""Format terms: think format (Seg-Zero's shape and "contains a think block"), segmentation format soft
and strict."""

from __future__ import annotations

import json

import pytest

from segzero_plus.parsing import parse_answer
from segzero_plus.rewards.format import (
    seg_format_soft,
    seg_format_strict,
    think_format_contains,
    think_format_strict,
)

HW = (840, 840)


def answer_text(obj: dict | str) -> str:
    body = obj if isinstance(obj, str) else json.dumps(obj)
    return f"<think>r</think><answer>{body}</answer>"


NEG_OK = {"bbox": [10, 100, 200, 210], "points_pos": [[30, 110], [35, 180]], "points_neg": [[250, 150]]}
OLD_OK = {"bbox": [10, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}


@pytest.mark.parametrize(
    ("text", "strict", "contains"),
    [
        ("<think>a</think><answer>b</answer>", 1.0, 1.0),
        ("<think>a</think>\n <answer>b</answer>", 1.0, 1.0),
        ("<think>a</think>x<answer>b</answer>", 0.0, 1.0),
        ("<think>a</think><answer>b</answer>\n", 0.0, 1.0),
        ("<think>a</think>", 0.0, 1.0),
        ("<answer>b</answer>", 0.0, 0.0),
        ("</think><think>", 0.0, 0.0),
        ("", 0.0, 0.0),
    ],
)
def test_think_format(text: str, strict: float, contains: float) -> None:
    assert think_format_strict(text) == strict
    assert think_format_contains(text) == contains


def test_think_format_of_non_strings_is_zero() -> None:
    assert think_format_strict(None) == 0.0  # type: ignore[arg-type]
    assert think_format_contains(b"<think></think>") == 0.0  # type: ignore[arg-type]


def test_seg_format_soft_needs_box_and_a_positive_point() -> None:
    assert seg_format_soft(parse_answer(answer_text(NEG_OK))) == 1.0
    assert seg_format_soft(parse_answer(answer_text("{'bbox': [1,2,3,4], 'points_1': [2,3]}"))) == 1.0
    assert seg_format_soft(parse_answer(answer_text({"bbox": [1, 2, 3, 4]}))) == 0.0
    assert seg_format_soft(parse_answer(answer_text({"points_pos": [[1, 2]]}))) == 0.0
    assert seg_format_soft(parse_answer("no tags")) == 0.0


def test_seg_format_strict_per_template() -> None:
    neg, old = parse_answer(answer_text(NEG_OK)), parse_answer(answer_text(OLD_OK))
    assert seg_format_strict(neg, "negative_point", HW) == 1.0
    assert seg_format_strict(neg, "original", HW) == 0.0
    assert seg_format_strict(old, "original", HW) == 1.0
    assert seg_format_strict(old, "negative_point", HW) == 0.0
    seg_zero_example = parse_answer(answer_text(repr(OLD_OK)))  # single quotes, as in Seg-Zero's prompt
    assert seg_format_soft(seg_zero_example) == 1.0
    assert seg_format_strict(seg_zero_example, "original", HW) == 0.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, 1.0),
        ({"bbox": [0, 0, 840, 840]}, 1.0),  # the far edge itself is in the frame (0 <= v <= 840)
        ({"bbox": [0, 0, 841, 840]}, 0.0),
        ({"bbox": [-1, 0, 10, 10]}, 0.0),
        ({"points_neg": [[900, 10]]}, 0.0),
        ({"points_pos": [[30, 110], [35, 841]]}, 0.0),
        ({"points_neg": []}, 1.0),
        ({"points_neg": [[1, 1], [2, 2], [3, 3]]}, 1.0),
        ({"points_neg": [[1, 1], [2, 2], [3, 3], [4, 4]]}, 0.0),  # over the budget of 3
        ({"points_pos": [[30, 110]]}, 0.0),
        ({"points_pos": [[30, 110], [35, 180], [40, 190]]}, 0.0),
        ({"bbox": [200, 100, 10, 210]}, 0.0),  # corners out of order
        ({"bbox": [10.5, 100.25, 200, 210]}, 1.0),  # floats are fine
        ({"bbox": ["10", 100, 200, 210]}, 0.0),  # numeric strings are not strict
        ({"extra": 1}, 0.0),
    ],
)
def test_seg_format_strict_checks(change: dict, expected: float) -> None:
    answer = parse_answer(answer_text({**NEG_OK, **change}))
    assert seg_format_strict(answer, "negative_point", HW, max_negative_points=3) == expected


def test_seg_format_strict_budget_and_frame_follow_arguments() -> None:
    two = parse_answer(answer_text({**NEG_OK, "points_neg": [[1, 1], [2, 2]]}))
    assert seg_format_strict(two, "negative_point", HW, max_negative_points=1) == 0.0
    assert seg_format_strict(two, "negative_point", HW, max_negative_points=2) == 1.0
    assert seg_format_strict(two, "negative_point", (200, 300), 3) == 0.0  # y = 210 is below a 200-px frame


def test_strict_format_needs_exactly_the_json_block() -> None:
    fenced = "<think>r</think><answer>```json\n" + json.dumps(NEG_OK) + "\n```</answer>"
    trailing = "<think>r</think><answer>" + json.dumps(NEG_OK)[:-1] + ",}</answer>"
    for text in (fenced, trailing):
        answer = parse_answer(text)
        assert seg_format_soft(answer) == 1.0
        assert seg_format_strict(answer, "negative_point", HW) == 0.0
