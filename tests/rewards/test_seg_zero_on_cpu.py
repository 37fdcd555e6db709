"""seg_zero_strict_score: Seg-Zero's five-term baseline, exact on hand-built cases and edges."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_plus.rewards.format import think_answer_shape
from segzero_plus.rewards.seg_zero import (
    SEG_ZERO_TERMS,
    first_brace_block,
    parse_seg_zero_solution,
    seg_zero_strict_score,
    seg_zero_terms,
)

PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOLUTION = "<box>(10,100),(200,210)</box><points>(30,110),(35,180)</points>"


def respond(answer: str, think: str = "ok") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def answer_json(bbox, p1, p2) -> str:
    return json.dumps({"bbox": bbox, "points_1": p1, "points_2": p2})


def terms(response: str, solution: str = SOLUTION) -> tuple[float, ...]:
    got = seg_zero_terms(response, solution)
    assert tuple(got) == SEG_ZERO_TERMS
    assert seg_zero_strict_score(response, solution) == sum(got.values())
    return tuple(got.values())


# (think, seg_format, bbox_iou, bbox_l1, point) for each case
HAND_CASES = {
    "perfect": (respond(answer_json([10, 100, 200, 210], [30, 110], [35, 180])), (1, 1, 1, 1, 1)),
    "prompt_example_single_quotes": (
        respond("{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}"),
        (1, 0, 0, 0, 0),
    ),
    "swapped_point_pairing": (
        respond(answer_json([10, 100, 200, 210], [35, 180], [30, 110])),
        (1, 1, 1, 1, 1),
    ),
    "points_outside_predicted_box_by_one_px": (
        respond(answer_json([31, 100, 200, 210], [30, 110], [35, 180])),
        (1, 1, 1, 1, 0),
    ),
    "points_on_predicted_box_edges_are_inside": (
        respond(answer_json([30, 110, 35, 180], [30, 110], [35, 180])),
        (1, 1, 0, 0, 1),
    ),
    "float_points_truncated_into_the_box": (
        respond(answer_json([10, 100, 200, 210], [200.9, 110.5], [35, 180])),  # int(200.9) = 200 <= x2
        (1, 1, 1, 1, 1),
    ),
    "negative_fraction_truncates_to_zero": (
        respond(answer_json([0, 0, 200, 210], [-0.9, 110], [35, 180])),
        (1, 1, 0, 0, 1),
    ),
    "mean_point_distance_exactly_100": (
        respond(answer_json([10, 100, 200, 210], [130, 110], [135, 180])),
        (1, 1, 1, 1, 0),
    ),
    "mean_point_distance_99_5": (
        respond(answer_json([10, 100, 200, 210], [129, 110], [135, 180])),
        (1, 1, 1, 1, 1),
    ),
    "numeric_string_points_pass_int": (
        respond(answer_json([10, 100, 200, 210], ["30", "110"], [35, 180])),
        (1, 1, 1, 1, 1),
    ),
    "numeric_string_box_breaks_terms_3_to_5": (
        respond(answer_json(["10", "100", "200", "210"], [30, 110], [35, 180])),
        (1, 1, 0, 0, 0),
    ),
    "missing_points_2": (
        respond(json.dumps({"bbox": [10, 100, 200, 210], "points_1": [30, 110]})),
        (1, 0, 1, 1, 0),
    ),
    "five_number_box": (respond(answer_json([10, 100, 200, 210, 5], [30, 110], [35, 180])), (1, 0, 0, 0, 0)),
    "three_number_point_passes_points_term": (
        respond(answer_json([10, 100, 200, 210], [30, 110, 7], [35, 180])),
        (1, 0, 1, 1, 1),
    ),
    "brace_block_in_think_is_taken_first": (
        respond(answer_json([10, 100, 200, 210], [30, 110], [35, 180]), think='maybe {"x": 1}'),
        (1, 0, 0, 0, 0),
    ),
    "nested_object_breaks_the_first_block": (
        respond('{"bbox": [10,100,200,210], "points_1": [30,110], "points_2": [35,180], "m": {"a": 1}}'),
        (1, 0, 0, 0, 0),
    ),
    "text_after_answer_fails_think_only": (
        respond(answer_json([10, 100, 200, 210], [30, 110], [35, 180])) + " done",
        (0, 1, 1, 1, 1),
    ),
    "no_tags_at_all_still_scores_the_json": (
        answer_json([10, 100, 200, 210], [30, 110], [35, 180]),
        (0, 1, 1, 1, 1),
    ),
    "whitespace_between_think_and_answer": (
        "<think>a</think> \n\t<answer>"
        + answer_json([10, 100, 200, 210], [30, 110], [35, 180])
        + "</answer>",
        (1, 1, 1, 1, 1),
    ),
    "nan_box": (
        respond('{"bbox": [NaN, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}'),
        (1, 1, 0, 0, 0),
    ),
    "bool_coordinates_count_as_ints": (
        respond(answer_json([True, 100, 200, 210], [30, 110], [35, 180])),  # True == 1
        (1, 1, 1, 1, 1),
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_CASES))
def test_hand_built_cases(name: str) -> None:
    response, expected = HAND_CASES[name]
    assert terms(response) == tuple(float(v) for v in expected)


def test_iou_threshold_is_strictly_greater_than_half() -> None:
    solution = "<box>(0,0),(9,19)</box><points>(5,5),(5,15)</points>"  # 10 x 20 = 200 px
    exactly_half = respond(answer_json([0, 0, 9, 9], [5, 5], [5, 6]))  # 100 / 200
    above_half = respond(answer_json([0, 0, 9, 10], [5, 5], [5, 6]))  # 110 / 200
    assert seg_zero_terms(exactly_half, solution)["bbox_iou"] == 0.0
    assert seg_zero_terms(above_half, solution)["bbox_iou"] == 1.0


def test_iou_one_pixel_overlap_counts_as_disjoint() -> None:
    solution = "<box>(0,0),(0,9)</box><points>(0,0),(0,9)</points>"  # one column wide
    same_column = respond(answer_json([0, 0, 0, 9], [0, 0], [0, 9]))
    assert seg_zero_terms(same_column, solution)["bbox_iou"] == 0.0  # Seg-Zero's strict overlap test
    assert seg_zero_terms(same_column, solution)["bbox_l1"] == 1.0


def test_point_pairing_takes_the_better_of_the_two() -> None:
    solution = "<box>(10,100),(200,210)</box><points>(20,110),(190,200)</points>"
    straight = respond(answer_json([10, 100, 200, 210], [20, 110], [190, 200]))
    swapped = respond(answer_json([10, 100, 200, 210], [190, 200], [20, 110]))  # straight pairing: 192 px
    assert seg_zero_terms(straight, solution)["point"] == 1.0
    assert seg_zero_terms(swapped, solution)["point"] == 1.0
    far = respond(answer_json([10, 100, 200, 210], [190, 200], [190, 200]))  # (0 + 192) / 2 = 96 < 100
    assert seg_zero_terms(far, solution)["point"] == 1.0
    farther = respond(answer_json([10, 100, 200, 210], [200, 210], [200, 210]))  # (205.9 + 14.1) / 2 = 110
    assert seg_zero_terms(farther, solution)["point"] == 0.0


def test_l1_threshold_is_strictly_below_ten() -> None:
    solution = "<box>(100,100),(200,200)</box><points>(150,150),(150,160)</points>"
    exactly_ten = respond(answer_json([110, 110, 210, 210], [150, 150], [150, 160]))
    just_below = respond(answer_json([109, 110, 210, 210], [150, 150], [150, 160]))
    assert seg_zero_terms(exactly_ten, solution)["bbox_l1"] == 0.0
    assert seg_zero_terms(just_below, solution)["bbox_l1"] == 1.0
    assert seg_zero_terms(exactly_ten, solution)["bbox_iou"] == 1.0


def test_degenerate_union_and_bad_solution_give_zero() -> None:
    inverted = respond(answer_json([200, 210, 10, 100], [30, 110], [35, 180]))
    assert terms(inverted)[2:4] == (0.0, 0.0)  # no corner ordering: IoU of an inverted box is not > 0.5
    good = respond(answer_json([10, 100, 200, 210], [30, 110], [35, 180]))
    assert terms(good, "garbage") == (1.0, 1.0, 0.0, 0.0, 0.0)
    assert terms(good, "<box>(10,100),(200,210)</box>") == (1.0, 1.0, 1.0, 1.0, 0.0)
    assert seg_zero_strict_score(None, SOLUTION) == 0.0  # type: ignore[arg-type]


def test_parse_solution() -> None:
    assert parse_seg_zero_solution(SOLUTION) == ([10, 100, 200, 210], [[30, 110], [35, 180]])
    assert parse_seg_zero_solution(" x ") == (None, None)


# ---------------------------------------------------------------------------------------------------
# The linear scans equal Seg-Zero's regexes
# ---------------------------------------------------------------------------------------------------

THINK_REGEX = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
SHAPE_PIECES = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    " ",
    "\n",
    "\u2003",
    "\x1c",
    "a",
    "<",
    ">",
    "/",
]


@PROPS
@given(st.lists(st.sampled_from(SHAPE_PIECES), max_size=14).map("".join))
def test_think_shape_equals_the_regex(text: str) -> None:
    assert think_answer_shape(text) == (THINK_REGEX.fullmatch(text) is not None)


@PROPS
@given(st.text(alphabet="{}a \n", max_size=30))
def test_first_brace_block_equals_the_regex(text: str) -> None:
    match = re.search(r"{[^}]+}", text)
    assert first_brace_block(text) == (match.group(0) if match else None)


@pytest.mark.timeout(60)  # hang guard; the regexes themselves are quadratic on these inputs
def test_scans_are_linear_on_adversarial_input() -> None:
    assert first_brace_block("{" * 200_000) is None
    assert not think_answer_shape("<think>" + "</think>" * 30_000 + "<answer>" * 30_000 + "x")
    assert seg_zero_strict_score("<think>" + "</think> <answer>" * 20_000 + "{" * 50_000, SOLUTION) == 0.0


# ---------------------------------------------------------------------------------------------------
# Differential test against a plain transcription of Seg-Zero's reward (its code at commit 77f9ea5)
# ---------------------------------------------------------------------------------------------------


def spec_oracle(response: str, solution: str) -> tuple[float, ...]:
    def guarded(fn) -> float:
        try:
            return 1.0 if fn() else 0.0
        except Exception:
            return 0.0

    def data():
        return json.loads(re.search(r"{[^}]+}", response).group(0))

    def gt_box():
        return [int(v) for v in re.search(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>", solution).groups()]

    def gt_points():
        v = [
            int(v) for v in re.search(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>", solution).groups()
        ]
        return [v[0:2], v[2:4]]

    def fmt():
        d = data()
        return (
            all(k in d for k in ("bbox", "points_1", "points_2"))
            and isinstance(d["bbox"], list)
            and len(d["bbox"]) == 4
            and all(isinstance(d[k], list) and len(d[k]) == 2 for k in ("points_1", "points_2"))
        )

    def iou():
        b, g = data()["bbox"], gt_box()
        assert len(b) == 4
        ix1, iy1, ix2, iy2 = max(b[0], g[0]), max(b[1], g[1]), min(b[2], g[2]), min(b[3], g[3])
        inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if (ix1 < ix2 and iy1 < iy2) else 0
        union = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
        return float(inter) / union > 0.5

    def l1():
        b, g = data()["bbox"], gt_box()
        assert len(b) == 4
        return sum(abs(b[i] - g[i]) for i in range(4)) / 4 < 10

    def point():
        d = data()
        b = d["bbox"]
        assert len(b) == 4
        p = [[int(d[k][0]), int(d[k][1])] for k in ("points_1", "points_2")]
        if not all(b[0] <= q[0] <= b[2] and b[1] <= q[1] <= b[3] for q in p):
            return False
        g = gt_points()
        dist = lambda a, c: math.sqrt((a[0] - c[0]) ** 2 + (a[1] - c[1]) ** 2)  # noqa: E731
        return min(dist(p[0], g[0]) + dist(p[1], g[1]), dist(p[0], g[1]) + dist(p[1], g[0])) / 2 < 100

    return (
        1.0 if THINK_REGEX.fullmatch(response) else 0.0,
        guarded(fmt),
        guarded(iou),
        guarded(l1),
        guarded(point),
    )


weird = st.sampled_from(["30", "x", None, True, float("nan"), 10**30, [1], 1e308])


@st.composite
def near(draw, centre: int, spread: int):
    """A number near ``centre`` (int or float), or now and then something odd."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(weird)
    offset = draw(st.integers(-spread, spread))
    return centre + offset if kind < 6 else round(centre + offset + draw(st.floats(0, 0.99)), 2)


@st.composite
def cases(draw) -> tuple[str, str]:
    """(response, solution): answers near the ground truth, with random damage, in every wrapping."""
    xs = sorted(draw(st.lists(st.integers(0, 250), min_size=2, max_size=2)))
    ys = sorted(draw(st.lists(st.integers(0, 250), min_size=2, max_size=2)))
    gt_box = [xs[0], ys[0], xs[1], ys[1]]
    gt_pts = [[draw(st.integers(xs[0], xs[1])), draw(st.integers(ys[0], ys[1]))] for _ in range(2)]
    spread = draw(st.sampled_from([0, 3, 12, 60]))
    obj = {
        "bbox": [draw(near(v, spread)) for v in gt_box],
        "points_1": [draw(near(v, spread * 2)) for v in gt_pts[draw(st.integers(0, 1))]],
        "points_2": [draw(near(v, spread * 2)) for v in gt_pts[1]],
    }
    for key in list(obj):
        damage = draw(st.integers(0, 11))
        if damage == 0:
            del obj[key]
        elif damage == 1:
            obj[key] = obj[key][:-1]
        elif damage == 2:
            obj[key] = obj[key] + [draw(near(5, 5))]
        elif damage == 3:
            obj[key] = draw(weird)
    text = json.dumps(obj) if draw(st.integers(0, 4)) else repr(obj)
    think = draw(st.sampled_from(["ok", "a {b} c", "{}", "<answer>"]))
    response = draw(
        st.sampled_from(
            [
                f"<think>{think}</think><answer>{text}</answer>",
                f"<think>{think}</think>\n<answer>{text}</answer>\n",
                text,
                f"<answer>{text}</answer>",
            ]
        )
    )
    solution = (
        f"<box>({gt_box[0]},{gt_box[1]}),({gt_box[2]},{gt_box[3]})</box>"
        f"<points>({gt_pts[0][0]},{gt_pts[0][1]}),({gt_pts[1][0]},{gt_pts[1][1]})</points>"
    )
    return response, solution


@PROPS
@given(cases())
def test_matches_a_plain_transcription_of_the_spec(case: tuple[str, str]) -> None:
    response, solution = case
    assert terms(response, solution) == spec_oracle(response, solution)
