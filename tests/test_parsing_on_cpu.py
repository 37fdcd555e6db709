"""parse_answer: a total, linear-time parser. Table tests of realistic outputs and Hypothesis fuzzing."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_plus.parsing import MAX_ABS_COORD, MAX_ERRORS, Answer, parse_answer

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMBER_IN_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

GOOD = (
    "<think>The man on the left wears red.</think>"
    '<answer>{"bbox": [10,100,200,210], "points_pos": [[30,110],[35,180]], "points_neg": [[250,150]]}</answer>'
)


def check_invariants(answer: Answer, text: object) -> None:
    """Types and bounds every Answer satisfies, and: no coordinate that is not a number in the text."""
    assert isinstance(answer, Answer)
    assert answer.think is None or isinstance(answer.think, str)
    assert isinstance(answer.errors, tuple) and all(isinstance(e, str) for e in answer.errors)
    assert len(answer.errors) <= MAX_ERRORS
    assert answer.schema in (None, "original", "negative_point")
    assert answer.strict == (answer.schema is not None and not answer.errors)
    assert answer.ok == (answer.bbox is not None and len(answer.points_pos) >= 1)
    coords: list[float] = []
    if answer.bbox is not None:
        assert len(answer.bbox) == 4
        x1, y1, x2, y2 = answer.bbox
        assert x1 <= x2 and y1 <= y2
        coords += list(answer.bbox)
    for points in (answer.points_pos, answer.points_neg):
        assert isinstance(points, list)
        for point in points:
            assert isinstance(point, tuple) and len(point) == 2
            coords += list(point)
    for value in coords:
        assert type(value) is float and math.isfinite(value) and abs(value) <= MAX_ABS_COORD
    if coords and isinstance(text, str):
        in_text = {float(tok) for tok in NUMBER_IN_TEXT.findall(text) if len(tok) <= 64}
        assert set(coords) <= in_text, "a coordinate that is not in the text was invented"


# ------------------------------------------------------------------------------------------------
# Table tests of realistic outputs
# ------------------------------------------------------------------------------------------------

CASES = [
    # (id, text, bbox, points_pos, points_neg, schema, strict)
    ("good", GOOD, (10, 100, 200, 210), [(30, 110), (35, 180)], [(250, 150)], "negative_point", True),
    (
        "good_no_negatives_multiline",
        '<think>\nonly one cup\n</think>\n<answer>\n{\n  "bbox": [1.5, 2, 30, 40],\n  "points_pos": [[5, 6], [7, 8]],'
        '\n  "points_neg": []\n}\n</answer>',
        (1.5, 2, 30, 40),
        [(5, 6), (7, 8)],
        [],
        "negative_point",
        True,
    ),
    (
        "seg_zero_single_quotes",
        "<think>x</think><answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>",
        (10, 100, 200, 210),
        [(30, 110), (35, 180)],
        [],
        "original",
        False,
    ),
    (
        "seg_zero_json",
        '<think>x</think> <answer>{"bbox": [10,100,200,210], "points_1": [30,110], "points_2": [35,180]}</answer>',
        (10, 100, 200, 210),
        [(30, 110), (35, 180)],
        [],
        "original",
        True,
    ),
    (
        "fenced_trailing_commas_numeric_strings",
        '<think>x</think><answer>```json\n{"bbox": ["10", "20", 30, 40,], "points_pos": [[11, 21], [12, "22"],],'
        ' "points_neg": [],}\n```</answer>',
        (10, 20, 30, 40),
        [(11, 21), (12, 22)],
        [],
        "negative_point",
        False,
    ),
    (
        "swapped_corners",
        '<think>x</think><answer>{"bbox": [200, 210, 10, 100], "points_pos": [[30,110],[35,180]], "points_neg": []}'
        "</answer>",
        (10, 100, 200, 210),
        [(30, 110), (35, 180)],
        [],
        "negative_point",
        False,
    ),
    (
        "brace_block_inside_think_is_not_the_answer",
        '<think>Maybe {"bbox": [0,0,1,1]} ... or <answer>{"bbox": [0,0,2,2]}</answer>?</think>'
        '<answer>{"bbox": [5,6,7,8], "points_pos": [[6,7],[6,7]], "points_neg": []}</answer>',
        (5, 6, 7, 8),
        [(6, 7), (6, 7)],
        [],
        "negative_point",
        True,
    ),
    (
        "truncated_mid_answer",
        '<think>x</think><answer>{"bbox": [10,100,200,210], "points_pos": [[30,110],[35,',
        None,
        [],
        [],
        None,
        False,
    ),
    (
        "unterminated_block_complete_object",
        '<think>x</think><answer>{"bbox": [10,100,200,210], "points_pos": [[30,110],[35,180]], "points_neg": []}',
        (10, 100, 200, 210),
        [(30, 110), (35, 180)],
        [],
        "negative_point",
        False,
    ),
    (
        "two_answer_blocks_first_wins",
        '<think>x</think><answer>{"bbox": [1,2,3,4], "points_pos": [[2,3],[2,3]], "points_neg": []}</answer>'
        '<answer>{"bbox": [9,9,99,99], "points_pos": [[50,50],[60,60]], "points_neg": []}</answer>',
        (1, 2, 3, 4),
        [(2, 3), (2, 3)],
        [],
        "negative_point",
        False,
    ),
    (
        "vision_reasoner_list",
        '<think>x</think><answer>[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, '
        '{"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]</answer>',
        (10, 100, 200, 210),
        [(30, 110)],
        [],
        None,
        False,
    ),
    (
        "text_around_object_and_python_literals",
        "<think>x</think><answer>Final: {bbox: (1, 2, 3, 4), 'points_pos': [(2, 3)], 'points_neg': None} done"
        "</answer>",
        (1, 2, 3, 4),
        [(2, 3)],
        [],
        "negative_point",
        False,
    ),
    ("no_answer_block", "<think>I cannot find it.</think>", None, [], [], None, False),
    ("empty", "", None, [], [], None, False),
    (
        "nan_box_and_bool_point",
        '<think>x</think><answer>{"bbox": [NaN, 1, 2, 3], "points_pos": [[true, 1], [2, 3]], "points_neg": []}'
        "</answer>",
        None,
        [(2, 3)],
        [],
        "negative_point",
        False,
    ),
    (
        "wrong_arity",
        '<think>x</think><answer>{"bbox": [1, 2, 3], "points_pos": [[1, 2, 3], [4, 5]], "points_neg": [[1]]}'
        "</answer>",
        None,
        [(4, 5)],
        [],
        "negative_point",
        False,
    ),
    (
        "huge_and_infinite_numbers",
        '<think>x</think><answer>{"bbox": [1e400, 2, 3, 4], "points_pos": [[1e7, 2], [3, 4]], "points_neg": []}'
        "</answer>",
        None,
        [(3, 4)],
        [],
        "negative_point",
        False,
    ),
    (
        "points_1_only",
        "<think>x</think><answer>{'bbox': [1, 2, 30, 40], 'points_1': [5, 6]}</answer>",
        (1, 2, 30, 40),
        [(5, 6)],
        [],
        None,
        False,
    ),
    (
        "single_point_instead_of_list",
        '<think>x</think><answer>{"bbox": [1, 2, 30, 40], "points_pos": [5, 6], "points_neg": [20, 21]}</answer>',
        (1, 2, 30, 40),
        [(5, 6)],
        [(20, 21)],
        "negative_point",
        False,
    ),
    (
        "extra_key_is_not_strict",
        '<think>x</think><answer>{"bbox": [1,2,3,4], "points_pos": [[2,3],[2,3]], "points_neg": [], "label": "cup"}'
        "</answer>",
        (1, 2, 3, 4),
        [(2, 3), (2, 3)],
        [],
        None,
        False,
    ),
    (
        "duplicate_key_is_not_strict",
        '<think>x</think><answer>{"bbox": [0,0,9,9], "bbox": [1,2,3,4], "points_pos": [[2,3],[2,3]], '
        '"points_neg": []}</answer>',
        (1, 2, 3, 4),
        [(2, 3), (2, 3)],
        [],
        "negative_point",
        False,
    ),
    (
        "answer_is_prose",
        "<think>x</think><answer>The cup on the left.</answer>",
        None,
        [],
        [],
        None,
        False,
    ),
]


@pytest.mark.parametrize(
    ("text", "bbox", "points_pos", "points_neg", "schema", "strict"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_realistic_outputs(text, bbox, points_pos, points_neg, schema, strict) -> None:
    answer = parse_answer(text)
    check_invariants(answer, text)
    assert answer.bbox == (None if bbox is None else tuple(float(v) for v in bbox))
    assert answer.points_pos == [(float(x), float(y)) for x, y in points_pos]
    assert answer.points_neg == [(float(x), float(y)) for x, y in points_neg]
    assert answer.schema == schema
    assert answer.strict is strict
    if not strict:
        assert answer.errors, "a non-strict answer must say why"


def test_think_text() -> None:
    assert parse_answer(GOOD).think == "The man on the left wears red."
    assert parse_answer("<think> a </think>").think == "a"
    assert parse_answer("<think>never closed <answer>{}</answer>").think is None
    assert parse_answer('<answer>{"bbox": [1,2,3,4]}</answer>').think is None


CASE_TEXT = {case[0]: case[1] for case in CASES}


def test_reasons_name_the_problem() -> None:
    errors = " | ".join(parse_answer(CASE_TEXT["nan_box_and_bool_point"]).errors)
    assert "NaN" in errors and "boolean" in errors
    assert "no <answer>" in parse_answer("<think>x</think>").errors[0]
    assert any(
        "several <answer>" in e for e in parse_answer(CASE_TEXT["two_answer_blocks_first_wins"]).errors
    )
    assert any("corners" in e for e in parse_answer(CASE_TEXT["swapped_corners"]).errors)


def test_non_string_input_is_an_error_not_an_exception() -> None:
    for value in (None, 12, b"<answer>{}</answer>", ["<answer>"]):
        answer = parse_answer(value)  # type: ignore[arg-type]
        assert not answer.ok and answer.errors


def test_errors_are_capped() -> None:
    negatives = ", ".join(["[true, false]"] * 500)
    text = f'<answer>{{"bbox": [1,2,3,4], "points_pos": [[1,2],[1,2]], "points_neg": [{negatives}]}}</answer>'
    answer = parse_answer(text)
    assert len(answer.errors) == MAX_ERRORS and "more problems" in answer.errors[-1]
    assert answer.points_neg == [] and answer.ok


# ------------------------------------------------------------------------------------------------
# Round trips of generated valid answers
# ------------------------------------------------------------------------------------------------

coordinate = st.one_of(st.integers(0, 839), st.floats(0, 839, allow_nan=False).map(lambda v: round(v, 2)))
point = st.tuples(coordinate, coordinate)


@st.composite
def valid_answers(draw) -> dict:
    xa, xb, ya, yb = draw(coordinate), draw(coordinate), draw(coordinate), draw(coordinate)
    return {
        "bbox": [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)],
        "points_pos": [list(draw(point)), list(draw(point))],
        "points_neg": [list(p) for p in draw(st.lists(point, max_size=3))],
    }


def _expected(data: dict) -> tuple:
    return (
        tuple(float(v) for v in data["bbox"]),
        [tuple(float(v) for v in p) for p in data["points_pos"]],
        [tuple(float(v) for v in p) for p in data["points_neg"]],
    )


@FUZZ
@given(valid_answers(), st.sampled_from(["", " ", "\n"]))
def test_json_round_trip_is_strict_and_exact(data: dict, sep: str) -> None:
    text = f"<think>reasoning</think>{sep}<answer>{sep}{json.dumps(data)}{sep}</answer>"
    answer = parse_answer(text)
    assert answer.strict and answer.schema == "negative_point"
    assert (answer.bbox, answer.points_pos, answer.points_neg) == _expected(data)


@FUZZ
@given(valid_answers())
def test_python_literal_round_trip_is_lenient_and_exact(data: dict) -> None:
    text = f"<think>r</think><answer>{data!r}</answer>"  # single quotes: not JSON
    answer = parse_answer(text)
    assert not answer.strict and answer.schema == "negative_point"
    assert (answer.bbox, answer.points_pos, answer.points_neg) == _expected(data)


@FUZZ
@given(valid_answers())
def test_old_format_round_trip(data: dict) -> None:
    old = {"bbox": data["bbox"], "points_1": data["points_pos"][0], "points_2": data["points_pos"][1]}
    answer = parse_answer(f"<think>r</think><answer>{json.dumps(old)}</answer>")
    assert answer.strict and answer.schema == "original"
    assert answer.points_pos == _expected(data)[1] and answer.points_neg == []


# ------------------------------------------------------------------------------------------------
# Fuzzing: anything in, an Answer out
# ------------------------------------------------------------------------------------------------

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "{", "}", "[", "]", "(", ")", ",", ":", '"', "'", "\\",
    '"bbox"', "'bbox'", '"bbox_2d"', '"points_pos"', '"points_neg"', '"points_1"', '"points_2"', '"point_2d"',
    "1", "-2.5", "1e999", "NaN", "true", "None", "```json", "```", " ", "\n", "x", "é", "\x00",
]  # fmt: skip


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_random_text(text: str) -> None:
    check_invariants(parse_answer(text), text)


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join))
def test_fuzz_token_soup(text: str) -> None:
    check_invariants(parse_answer(text), text)


@st.composite
def mutated_answers(draw) -> str:
    text = f"<think>t</think><answer>{json.dumps(draw(valid_answers()))}</answer>"
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        piece = draw(st.sampled_from(FRAGMENTS))
        if op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 5)) :]
        elif op == "replace":
            text = text[:i] + piece + text[i + 1 :]
        else:
            text = text[:i]
    return text


@FUZZ
@given(mutated_answers())
def test_fuzz_mutated_valid_answers(text: str) -> None:
    check_invariants(parse_answer(text), text)


@FUZZ
@given(
    st.one_of(
        st.integers(min_value=-(10**400), max_value=10**400).map(str),
        st.floats().map(repr),
        st.sampled_from(["1e308", "-1e309", "1" * 5000, "0." + "0" * 3000 + "1", "1e-400", "-0"]),
    )
)
def test_fuzz_huge_numbers(number: str) -> None:
    text = f'<think>t</think><answer>{{"bbox": [{number}, 2, 3, 4], "points_pos": [[{number}, 1]]}}</answer>'
    answer = parse_answer(text)
    check_invariants(answer, text)
    try:
        value = float(number)
    except (ValueError, OverflowError):
        value = math.nan
    if math.isfinite(value) and abs(value) <= MAX_ABS_COORD and len(number) <= 64:
        assert answer.points_pos == [(value, 1.0)]
    else:
        assert answer.points_pos == [] and answer.bbox is None


@FUZZ
@given(st.integers(1, 3000), st.sampled_from(["[", "{", "(", '{"a":', "[[", '{"bbox":[']))
def test_fuzz_deep_nesting(depth: int, opener: str) -> None:
    text = "<think>t</think><answer>" + opener * depth + "1" + "]" * depth + "</answer>"
    check_invariants(parse_answer(text), text)


ADVERSARIAL = {
    "open_braces": "<answer>" + "{" * 100_000,
    "open_brackets": "<answer>" + "[" * 100_000 + "</answer>",
    "deep_json": "<answer>" + "[" * 50_000 + "]" * 50_000 + "</answer>",
    "unterminated_double_quote": '<answer>{"' + "a" * 100_000,
    "unterminated_single_quote": "<answer>{'" + "\\a" * 50_000,
    "many_answer_tags": "<think></think>" + "<answer>" * 12_000,
    "many_think_tags": "<think>" + "</think>" * 12_000 + "<answer>{}",
    "long_digits": '<answer>{"bbox": [' + "7" * 100_000 + ", 1, 2, 3]}</answer>",
    "many_points": '<answer>{"bbox": [1,2,3,4], "points_pos": [' + "[1,2]," * 16_000 + "]}</answer>",
    "many_keys": "<answer>{" + ", ".join(f'"k{i}": {i}' for i in range(10_000)) + "}</answer>",
    "whitespace": "<think>" + " " * 100_000 + "</think>" + "\n" * 100_000 + "<answer>",
    "numbers_no_commas": "<answer>{'bbox': [" + "1 " * 50_000 + "]}</answer>",
}


@pytest.mark.timeout(60)  # hang guard only (a catastrophic pattern would take hours); no timing is asserted
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_100k_inputs(name: str) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 50_000
    answer = parse_answer(text)
    check_invariants(answer, text)


def test_many_points_are_all_read() -> None:
    answer = parse_answer(ADVERSARIAL["many_points"])
    assert len(answer.points_pos) == 16_000 and answer.bbox == (1, 2, 3, 4)
