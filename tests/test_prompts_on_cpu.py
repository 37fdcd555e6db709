"""Prompt templates: Seg-Zero's byte-exact text, the negative-point template, selection by name."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segzero_plus.parsing import parse_answer
from segzero_plus.prompts import (
    ANSWER_KEYS,
    NEGATIVE_POINT,
    ORIGINAL,
    TEMPLATES,
    PromptTemplate,
    get_template,
    normalise_query,
)

# Seg-Zero's user text for the question "the man", typed out in one piece as its training code writes it
# (github.com/dvlab-research/Seg-Zero at commit 77f9ea5: sentences joined without spaces, single-quoted
# example answer).
SEG_ZERO_USER_THE_MAN = (
    "Please find 'the man' with bbox and points.Compare the difference between objects and find the most "
    "closely matched one.Output the thinking process in <think> </think> and final answer in <answer> "
    "</answer> tags.Output the one bbox and points of two largest inscribed circles inside the interested "
    "object in JSON format.i.e., <think> thinking process here </think><answer>{'bbox': [10,100,200,210], "
    "'points_1': [30,110], 'points_2': [35,180]}</answer>"
)


def _example_answer(template: PromptTemplate) -> str:
    start = template.user.rfind("<answer>") + len("<answer>")  # the last pair is the example
    end = template.user.rfind("</answer>")
    assert 0 < start < end
    return template.user[start:end]


def test_original_is_byte_exact() -> None:
    assert ORIGINAL.name == "original"
    assert ORIGINAL.system == "You are a helpful assistant."
    assert ORIGINAL.user_text("The man.") == SEG_ZERO_USER_THE_MAN
    assert ORIGINAL.user_text("THE MAN...") == SEG_ZERO_USER_THE_MAN
    assert ORIGINAL.user.count("{Question}") == 1


def test_messages_are_verl_chat_turns() -> None:
    for template in TEMPLATES.values():
        messages = template.messages("A Dog.")
        assert messages == [
            {"role": "system", "content": template.system},
            {"role": "user", "content": "<image>" + template.user_text("A Dog.")},
        ]
        assert "'a dog'" in messages[1]["content"]


@given(st.text(max_size=40))
def test_query_normalisation_matches_seg_zero(query: str) -> None:
    assert normalise_query(query) == query.lower().strip(".")
    for template in TEMPLATES.values():
        text = template.user_text(query)
        before, _, after = template.user.partition("{Question}")
        assert text == before + query.lower().strip(".") + after  # braces in queries need no escaping


def test_original_example_is_not_json_but_parses_leniently() -> None:
    example = _example_answer(ORIGINAL)
    with pytest.raises(json.JSONDecodeError):
        json.loads(example)
    answer = parse_answer(f"<think>x</think><answer>{example}</answer>")
    assert answer.schema == "original" and not answer.strict
    assert answer.bbox == (10, 100, 200, 210) and answer.points_pos == [(30, 110), (35, 180)]


def test_negative_point_template_example_is_strict_json() -> None:
    example = _example_answer(NEGATIVE_POINT)
    data = json.loads(example)
    assert set(data) == ANSWER_KEYS["negative_point"]
    assert len(data["points_pos"]) == 2 and 0 <= len(data["points_neg"]) <= 3
    answer = parse_answer(f"<think>x</think><answer>{example}</answer>")
    assert answer.strict and answer.schema == "negative_point"


def test_negative_point_template_wording() -> None:
    text = NEGATIVE_POINT.user_text("the red cup")
    for needle in (
        '"bbox"',
        '"points_pos"',
        '"points_neg"',
        '"points_neg": []',
        "0 to 3",
        "<think>",
        "<answer>",
    ):
        assert needle in text
    assert "'the red cup'" in text
    assert NEGATIVE_POINT.system == ORIGINAL.system


def test_get_template_by_name() -> None:
    assert set(TEMPLATES) == {"original", "negative_point"}
    assert get_template("original") is ORIGINAL
    assert get_template("negative_point") is NEGATIVE_POINT
    for bad in ("Original", "", "negative"):
        with pytest.raises(ValueError, match="negative_point") as info:
            get_template(bad)
        assert "original" in str(info.value)
