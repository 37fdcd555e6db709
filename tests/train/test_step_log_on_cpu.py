"""The per-step reward-term log: per-step means grouped by the trainer's step tag, written as JSON lines
that ``segzero-plus report --curves`` reads, and console lines for the training log."""

from __future__ import annotations

import json

import pytest

from segzero_plus.reporting.curves import read_log
from segzero_plus.train.step_log import RewardStepLogActor, StepAggregator, console_line


def _info(score: float, error: float = 0.0) -> dict[str, float]:
    return {"score": score, "bbox_iou": score / 6, "reward_error": error}


def test_a_step_is_written_when_all_its_samples_arrived():
    agg = StepAggregator(samples_per_step=4)
    assert agg.add(1, _info(6.0)) == [] and agg.add(1, _info(0.0, error=1.0)) == []
    assert agg.add(1, _info(3.0)) == []
    (record,) = agg.add(1, _info(3.0))
    assert record["step"] == 1 and record["reward/samples"] == 4
    assert record["reward/score"] == pytest.approx(3.0) and record["reward/reward_error"] == pytest.approx(
        0.25
    )
    assert agg.flush() == []


def test_an_incomplete_step_is_written_once_a_later_step_is_well_under_way():
    agg = StepAggregator(samples_per_step=2)
    agg.add(1, _info(6.0))  # its second rollout failed and never arrives
    assert agg.add(2, _info(1.0)) == []  # step 2 may still be mixed with step 1's stragglers
    (late,) = agg.add(3, _info(2.0))
    assert late["step"] == 1 and late["reward/samples"] == 1
    assert [r["step"] for r in agg.flush()] == [2, 3]


def test_untagged_samples_are_counted_into_consecutive_steps():
    agg = StepAggregator(samples_per_step=2)
    records = [r for s in (6.0, 4.0, 2.0, 0.0) for r in agg.add(None, _info(s))]
    assert [(r["step"], r["reward/score"]) for r in records] == [(1, 5.0), (2, 1.0)]


def test_the_log_file_is_what_report_curves_plots(tmp_path, capsys):
    path = tmp_path / "ckpt" / "reward_terms.jsonl"
    actor = RewardStepLogActor(str(path), samples_per_step=2)  # the actor body, without Ray
    for step, score in ((1, 6.0), (1, 2.0), (2, 1.0), (2, 3.0)):
        actor.record(step, _info(score))
    assert actor.flush() == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["step"], r["reward/score"]) for r in lines] == [(1, 4.0), (2, 2.0)]
    assert read_log(path)["reward/score"] == {1: 4.0, 2: 2.0}
    out = capsys.readouterr().out.splitlines()
    assert out[0] == console_line(lines[0]) and out[0].startswith("reward_terms step:1 - reward/samples:2")


def test_report_curves_plots_the_step_log(tmp_path):
    from segzero_plus.cli import main

    path = tmp_path / "reward_terms.jsonl"
    actor = RewardStepLogActor(str(path), samples_per_step=1)
    for step in (1, 2, 3):
        actor.record(step, _info(float(step)))
    png = tmp_path / "curves.png"
    assert main(["report", "--curves", str(path), "--curves-out", str(png)]) == 0
    assert png.stat().st_size > 1000
