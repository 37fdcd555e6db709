"""Smoke test of the full demo on two scenes: every stage runs on the toy fixtures, and its report,
pictures and HTML exist; in the toy world the ground-truth prompt segments well and the reward ranks a
close answer above a wrong object."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from segzero_plus.demo import STAGES, run_demo


def _reward(rows: dict[str, str], kind: str) -> float:
    return float(rows[kind].split(" | ")[2])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_every_stage_on_two_scenes(tmp_path):
    report = run_demo(tmp_path, n_scenes=2, rollout_tokens=160, eval_tokens=160)
    text = report.read_text()
    for stage, _ in STAGES:
        assert f"## {stage}" in text
    assert "toy policy" in text and "synthetic policy" in text and "](report.png)" in text

    # stage 4: verl's reward workers scored every kind of response; a close answer beats a wrong object
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "toy policy rollout (sampled)" in rows
    assert _reward(rows, "synthetic: close, no negatives") > _reward(
        rows, "synthetic: wrong object (a look-alike)"
    )

    # stage 5: both runs complete; the toy SAM2 turns the ground-truth prompt into a good mask
    policy = json.loads((tmp_path / "eval" / "toy_policy" / "metrics.json").read_text())
    synth = json.loads((tmp_path / "eval" / "synthetic_policy" / "metrics.json").read_text())
    assert policy["complete"] and policy["overall"]["n"] == 2
    assert policy["overall"]["gt_prompt"]["gIoU"] > 0.5
    assert synth["complete"] and synth["overall"]["failures"] == 0 and synth["overall"]["gIoU"] > 0.3

    # stage 6: the table, the pictures and the galleries, every link resolving
    assert "| toy policy (SFT) |" in (tmp_path / "results.md").read_text()
    for picture in ("confused_regions.png", "report.png"):
        with Image.open(tmp_path / picture) as im:
            im.verify()
    for link in re.findall(r"\]\((eval/[^)]+\.html)\)", text):
        page = tmp_path / link
        assert page.is_file()
        for src in re.findall(r"<img src='([^']+)'", page.read_text()):
            with Image.open(page.parent / src) as im:
                im.verify()
