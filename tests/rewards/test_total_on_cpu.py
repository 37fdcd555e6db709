"""total_reward: same keys for every input, weighted score, modes, extra terms; RewardConfig validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_plus.rewards import (
    FLAG_KEYS,
    TERM_KEYS,
    GroundTruth,
    RewardConfig,
    negative_point_reward,
    negative_point_reward_additive,
    reward_keys,
    seg_zero_strict_score,
    total_reward,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HW = (120, 160)


def rect(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros(HW, bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


GT = GroundTruth.from_mask(
    rect(40, 30, 79, 69), confused_mask=rect(85, 30, 99, 69), distractor_masks=[rect(0, 0, 9, 9)]
)
GT_PLAIN = GroundTruth.from_mask(rect(40, 30, 79, 69))


def respond(obj: dict | str) -> str:
    return "<think>r</think><answer>" + (obj if isinstance(obj, str) else json.dumps(obj)) + "</answer>"


PERFECT = {"bbox": [40, 30, 79, 69], "points_pos": [[50, 40], [60, 60]], "points_neg": [[90, 50]]}


def check_result(result: dict, config: RewardConfig) -> None:
    assert tuple(result) == reward_keys(config)
    assert all(type(v) is float and math.isfinite(v) for v in result.values())
    for name in TERM_KEYS:
        assert 0.0 <= result[name] <= 1.0
    expected = sum(config.weights[n] * result[n] for n in (*TERM_KEYS, *config.extra_terms))
    assert result["score"] == pytest.approx(expected)
    assert result["parse_error"] in (0.0, 1.0) and result["answer_strict"] in (0.0, 1.0)


def test_perfect_answer() -> None:
    result = total_reward(respond(PERFECT), GT)
    check_result(result, RewardConfig())
    assert {k: result[k] for k in TERM_KEYS} == dict.fromkeys(TERM_KEYS, 1.0)
    assert result["score"] == 6.0 and result["sam_counterfactual"] == 0.0
    assert (
        result["parse_error"],
        result["answer_strict"],
        result["n_neg_hits"],
        result["n_neg_in_mask"],
    ) == (
        0.0,
        1.0,
        1.0,
        0.0,
    )
    assert (result["n_points_pos"], result["n_points_neg"]) == (2.0, 1.0)


@pytest.mark.parametrize(
    "response", ["", "no tags", "<think>x</think><answer>I don't know</answer>", None, 42]
)
def test_malformed_answers_give_zeros(response) -> None:
    result = total_reward(response, GT)  # type: ignore[arg-type]
    check_result(result, RewardConfig())
    assert all(result[k] == 0.0 for k in TERM_KEYS if k != "think_format")
    assert result["parse_error"] == 1.0
    assert result["score"] == result["think_format"]


def test_negative_term_needs_a_usable_answer() -> None:
    no_box = respond({"points_pos": [[50, 40], [60, 60]], "points_neg": []})
    assert total_reward(no_box, GT_PLAIN)["negative_point"] == 0.0  # "none emitted" is not paid here


FRAGMENTS = ['"bbox"', '"points_pos"', '"points_neg"', "[", "]", "{", "}", ",", ":", "40", "-3", "1e9", "NaN"]


@st.composite
def responses(draw) -> str:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.text(max_size=80))
    if kind == 1:
        return respond("".join(draw(st.lists(st.sampled_from(FRAGMENTS), max_size=30))))
    coord = st.integers(-20, 180)
    obj = {
        "bbox": [draw(coord) for _ in range(4)],
        "points_pos": [[draw(coord), draw(coord)] for _ in range(draw(st.integers(0, 3)))],
        "points_neg": [[draw(coord), draw(coord)] for _ in range(draw(st.integers(0, 5)))],
    }
    return respond(obj)


configs = st.builds(
    RewardConfig,
    scorer=st.sampled_from(["segzero_plus", "seg_zero_strict"]),
    template=st.sampled_from(["original", "negative_point"]),
    strict_format=st.booleans(),
    think_format=st.sampled_from(["strict", "contains"]),
    negative_reward=st.sampled_from(["none", "additive", "geometry"]),
    negative_regions=st.sampled_from(["none", "confused", "distractors", "confused_or_distractors"]),
    weights=st.fixed_dictionaries({"negative_point": st.floats(0, 3), "bbox_iou": st.floats(0, 3)}),
)


@PROPS
@given(responses(), configs, st.sampled_from([None, 0.0, 0.7]))
def test_same_keys_and_weighted_score_for_every_input(response: str, config: RewardConfig, extra) -> None:
    extra_terms = None if extra is None else {"sam_counterfactual": extra}
    result = total_reward(response, GT, config, extra_terms)
    check_result(result, config)
    assert result["sam_counterfactual"] == (extra or 0.0)


@PROPS
@given(responses())
def test_seg_zero_scorer_equals_the_baseline(response: str) -> None:
    config = RewardConfig(scorer="seg_zero_strict", template="original")
    for text in (response, response.replace("points_pos", "points_1")):
        result = total_reward(text, GT, config)
        assert result["score"] == seg_zero_strict_score(text, GT.seg_zero_solution)
        assert result["negative_point"] == 0.0


def test_seg_zero_scorer_on_seg_zero_style_answer() -> None:
    text = "<think>r</think><answer>" + json.dumps(
        {
            "bbox": [40, 30, 79, 69],
            "points_1": [int(GT.points[0][0]), int(GT.points[0][1])],
            "points_2": [60, 60],
        }
    )
    assert total_reward(text + "</answer>", GT, RewardConfig(scorer="seg_zero_strict"))["score"] == 5.0


@PROPS
@given(responses())
def test_negative_modes_delegate_to_the_term_functions(response: str) -> None:
    from segzero_plus.parsing import parse_answer

    answer = parse_answer(response)
    geometry = total_reward(response, GT, RewardConfig(negative_reward="geometry"))["negative_point"]
    additive = total_reward(response, GT, RewardConfig(negative_reward="additive"))["negative_point"]
    none = total_reward(response, GT, RewardConfig(negative_reward="none"))["negative_point"]
    assert none == 0.0
    if not answer.ok:
        assert geometry == additive == 0.0
        return
    assert geometry == negative_point_reward(
        answer.points_neg, GT.mask, GT.confused_mask, answer.bbox, RewardConfig()
    )
    assert additive == negative_point_reward_additive(
        answer.points_neg, GT.mask, answer.bbox, GT.confused_mask
    )


def test_weights_and_modes_change_the_score() -> None:
    half = RewardConfig(weights={"negative_point": 0.5, "think_format": 0.0})
    assert total_reward(respond(PERFECT), GT, half)["score"] == 4.5
    soft = RewardConfig(strict_format=False)
    sloppy = "<think>r</think><answer>" + repr(PERFECT) + "</answer>"  # single quotes: not strict
    assert total_reward(sloppy, GT)["seg_format"] == 0.0
    assert total_reward(sloppy, GT, soft)["seg_format"] == 1.0
    assert total_reward(sloppy, GT)["seg_format_soft"] == 1.0
    assert total_reward("<think>r</think>x" + respond(PERFECT)[9:], GT)["think_format"] == 0.0
    contains_think = RewardConfig(think_format="contains")
    assert total_reward("<think>r</think>x" + respond(PERFECT)[9:], GT, contains_think)["think_format"] == 1.0


def test_original_template_wants_the_old_keys() -> None:
    old = {"bbox": [40, 30, 79, 69], "points_1": [50, 40], "points_2": [60, 60]}
    config = RewardConfig(template="original", negative_reward="none")
    result = total_reward(respond(old), GT, config)
    assert result["seg_format"] == 1.0 and result["score"] == 5.0
    assert total_reward(respond(PERFECT), GT, config)["seg_format"] == 0.0


def test_negative_regions_source() -> None:
    only_distractors = RewardConfig(negative_regions="distractors")
    far = GroundTruth.from_mask(rect(40, 30, 79, 69), distractor_masks=[rect(150, 110, 159, 119)])
    on_far = {**PERFECT, "bbox": [40, 30, 159, 119], "points_neg": [[155, 115]]}
    # more than 50 px from the target: not a confused region of this sample
    assert total_reward(respond(on_far), far, only_distractors)["n_neg_hits"] == 0.0
    assert total_reward(respond({**on_far, "points_neg": []}), far, only_distractors)["negative_point"] == 1.0
    boxed = only_distractors.replace(negative_box_margin_px=20.0)  # hits must be within the box + 20 px
    assert total_reward(respond({**PERFECT, "points_neg": [[5, 5]]}), GT, boxed)["n_neg_hits"] == 0.0
    assert (
        total_reward(respond({**PERFECT, "points_neg": [[5, 5]]}), GT, only_distractors)["n_neg_hits"] == 1.0
    )
    on_near = {**PERFECT, "bbox": [0, 0, 79, 69], "points_neg": [[5, 5]]}
    assert total_reward(respond(on_near), GT, only_distractors)["n_neg_hits"] == 1.0  # within 50 px
    near = GroundTruth.from_mask(rect(40, 30, 79, 69), distractor_masks=[rect(85, 30, 99, 69)])
    assert total_reward(respond(PERFECT), near)["negative_point"] == 1.0  # distractors as the fallback
    assert total_reward(respond({**PERFECT, "points_neg": []}), near)["negative_point"] == 0.5
    no_regions = RewardConfig(negative_regions="none")
    assert total_reward(respond({**PERFECT, "points_neg": []}), near, no_regions)["negative_point"] == 1.0


def test_extra_terms() -> None:
    weighted = RewardConfig(weights={"sam_counterfactual": 2.0})
    base = total_reward(respond(PERFECT), GT, weighted)
    more = total_reward(respond(PERFECT), GT, weighted, {"sam_counterfactual": 0.25})
    assert more["score"] == base["score"] + 0.5 and more["sam_counterfactual"] == 0.25
    with pytest.raises(ValueError, match="not in RewardConfig.extra_terms"):
        total_reward(respond(PERFECT), GT, extra_terms={"sam_iou": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        total_reward(respond(PERFECT), GT, extra_terms={"sam_counterfactual": math.nan})
    custom = RewardConfig(extra_terms=("sam_a", "sam_b"), weights={"sam_b": 3.0})
    result = total_reward(respond(PERFECT), GT, custom, {"sam_b": 1.0})
    assert tuple(result) == ("score", *TERM_KEYS, "sam_a", "sam_b", *FLAG_KEYS)
    assert result["score"] == 6.0 + 3.0 and result["sam_a"] == 0.0


# ---------------------------------------------------------------------------------------------------
# RewardConfig
# ---------------------------------------------------------------------------------------------------


def test_config_defaults_match_the_spec() -> None:
    config = RewardConfig()
    assert (config.iou_threshold, config.l1_threshold_px, config.point_threshold_px) == (0.5, 10.0, 100.0)
    assert (config.negative_reward, config.max_negative_points, config.strict_format) == ("geometry", 3, True)
    assert config.weights == dict.fromkeys((*TERM_KEYS, "sam_counterfactual"), 1.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"scorer": "sam"},
        {"template": "nope"},
        {"think_format": "loose"},
        {"negative_reward": "counterfactual"},
        {"negative_regions": "all"},
        {"max_negative_points": -1},
        {"negative_neutral": 0.0},
        {"negative_neutral": 1.0},
        {"negative_inside_penalty": 0.0},
        {"point_threshold_px": -1.0},
        {"weights": {"pointz": 1.0}},
        {"extra_terms": ("point",)},
    ],
)
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError):
        RewardConfig(**bad)


@pytest.mark.parametrize(("option", "new"), [("negative_reward", "additive"), ("think_format", "contains")])
def test_a_former_mode_name_is_refused_with_its_new_name(option: str, new: str) -> None:
    with pytest.raises(ValueError, match=f"{option} 'plan' is now '{new}'"):
        RewardConfig(**{option: "plan"})


def test_config_from_mapping() -> None:
    config = RewardConfig.from_mapping(
        {"negative_reward": "additive", "weights": {"negative_point": 2.0}}, max_negative_points=2
    )
    assert config.negative_reward == "additive" and config.max_negative_points == 2
    assert config.weights["negative_point"] == 2.0 and config.weights["point"] == 1.0
    with pytest.raises(ValueError, match="unknown keys"):
        RewardConfig.from_mapping({"use_negative_reward": True})
    with pytest.raises(ValueError, match="key 'plan_alpha' is now 'additive_alpha'"):
        RewardConfig.from_mapping({"plan_alpha": 2.0})
    assert config.replace(max_negative_points=1).weights == config.weights
