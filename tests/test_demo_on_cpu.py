"""Smoke test of the full demo on two scenes: every stage runs and its report, pictures and HTML exist."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from segzero_plus.demo import run_demo


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_every_stage_on_two_scenes(tmp_path, tiny_qwen_dir, tiny_sam_checkpoint):
    report = run_demo(
        tmp_path, n_scenes=2, sam_config=tiny_sam_checkpoint[0], rollout_tokens=6, eval_tokens=6
    )
    text = report.read_text()
    for stage in (
        "1. tiny models",
        "2. prepare data",
        "3. mine confused regions",
        "4. score rollouts with verl's reward workers",
        "5. evaluate",
        "6. report",
    ):
        assert f"## {stage}" in text
    assert "random-weight" in text and "synthetic policy" in text

    # stage 4: verl's reward workers scored every kind of response; the tiny model's garbage scored 0
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["tiny Qwen2.5-VL rollout (sampled)"].split(" | ")[2] == "0.000"
    assert float(rows["synthetic: close, no negatives"].split(" | ")[2]) > 0

    # stage 5: both runs are complete; the tiny model's answers are failures, counted, not dropped
    tiny = json.loads((tmp_path / "eval" / "tiny_qwen" / "metrics.json").read_text())
    synth = json.loads((tmp_path / "eval" / "synthetic_policy" / "metrics.json").read_text())
    assert tiny["complete"] and tiny["overall"]["n"] == 2
    assert tiny["overall"]["failure_reasons"] == {"unparseable_answer": 2}
    assert synth["complete"] and synth["overall"]["failures"] == 0

    # stage 6: the table, the pictures and the galleries, every link resolving
    assert "| tiny Qwen2.5-VL (random) |" in (tmp_path / "results.md").read_text()
    with Image.open(tmp_path / "confused_regions.png") as im:
        im.verify()
    for link in re.findall(r"\]\((eval/[^)]+\.html)\)", text):
        page = tmp_path / link
        assert page.is_file()
        for src in re.findall(r"<img src='([^']+)'", page.read_text()):
            with Image.open(page.parent / src) as im:
                im.verify()
