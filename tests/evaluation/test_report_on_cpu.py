"""Reports, galleries and curves render: tables hold the right cells, files exist, images open, links resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segzero_plus.cli import main
from segzero_plus.data.lookalike import scene_row_id, write_scenes_eval
from segzero_plus.evaluation.config import EvalConfig
from segzero_plus.evaluation.runner import run_evaluation
from segzero_plus.reporting.curves import plot_curves, read_log
from segzero_plus.reporting.gallery import select_samples, write_gallery
from segzero_plus.reporting.tables import family, render_report
from segzero_plus.testing.synthetic import scene_answer


@pytest.fixture(scope="module")
def runs(tmp_path_factory, scenes, tiny_sam_checkpoint):
    """Two replayed runs on 8 scenes: answers with negatives (one garbage) and the same without them."""
    root = tmp_path_factory.mktemp("report")
    picked = scenes[:8]
    data = root / "data.parquet"
    write_scenes_eval(picked, data, split="val")
    out = {}
    for name, keep_neg in (("with negatives", 1.0), ("no negatives", 0.0)):
        rng = np.random.default_rng(1)
        lines = [
            json.dumps(
                {
                    "id": scene_row_id(s.scene_id, "val"),
                    "response": "???"
                    if i == 3
                    else scene_answer(s.target_mask, s.distractor_masks, (840, 840), rng, keep_neg=keep_neg),
                }
            )
            for i, s in enumerate(picked)
        ]
        responses = root / f"{keep_neg}.jsonl"
        responses.write_text("\n".join(lines) + "\n")
        run_dir = root / name.replace(" ", "_")
        cfg = EvalConfig(
            data=[str(data)],
            out=str(run_dir),
            model=str(responses),
            backend="replay",
            name=name,
            sam_config=tiny_sam_checkpoint[0],
            sam_checkpoint=str(tiny_sam_checkpoint[1]),
            batch_size=4,
            device="cpu",
        )
        out[name] = (run_dir, run_evaluation(cfg, progress=False))
    return out


def _fake_run(
    root: Path,
    name: str,
    by_split: dict[str, tuple[float, float]],
    complete: bool = True,
    protocol: str | None = "multimask_best",
) -> Path:
    run = root / name
    run.mkdir()
    splits = {
        key: {
            "n": 10,
            "gIoU": g,
            "cIoU": c,
            "failures": 1,
            "failure_reasons": {"unparseable_answer": 1},
            "negatives": {"samples_with_negatives": 0},
            "without_negatives": None,
            "gt_prompt": None,
            "strict_format_rate": 0.5,
        }
        for key, (g, c) in by_split.items()
    }
    metrics = {"name": name, "complete": complete, "by_split": splits}
    if protocol is not None:  # None: a metrics.json written before the setting existed
        metrics["config"] = {"sam_protocol": protocol}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_headline_table_uses_each_benchmarks_metric(tmp_path):
    a = _fake_run(
        tmp_path,
        "Seg-Zero",
        {
            "refcocog_umd_per_instance/test": (0.70, 0.726),
            "reasonseg/test": (0.575, 0.52),
            "reasonseg/val": (0.626, 0.62),
        },
    )
    b = _fake_run(
        tmp_path,
        "Seg-Zero++",
        {"refcocog_umd_per_instance/test": (0.71, 0.74), "reasonseg/test": (0.59, 0.53)},
        complete=False,
    )
    text = render_report([a, b])
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Method |"))
    assert header == "| Method | RefCOCOg (test, cIoU) | ReasonSeg (test, gIoU) | SAM protocol |"
    assert "| Seg-Zero | 72.6 | 57.5 | multimask_best |" in lines
    assert "| Seg-Zero++ | **74.0*** | **59.0*** | multimask_best |" in lines
    assert "incomplete run" in text and "†" not in text
    assert any(
        line.startswith(
            "| Seg-Zero | reasonseg / val | multimask_best | 10 | 62.60 | 62.00 | 1 (unparseable_answer 1)"
        )
        for line in lines
    )
    assert family("refcocoplus_unc_per_expression") == "RefCOCO+" and family("refcoco_unc_x") == "RefCOCO"


def test_report_states_the_sam_protocol_of_every_number(tmp_path):
    """Each row names the protocol that produced it; numbers not produced under Seg-Zero's protocol are
    marked as not comparable with published ones (a metrics.json without the setting: single_mask)."""
    a = _fake_run(tmp_path, "ours, published protocol", {"reasonseg/test": (0.6, 0.5)})
    b = _fake_run(tmp_path, "ours, single mask", {"reasonseg/test": (0.58, 0.5)}, protocol="single_mask")
    c = _fake_run(tmp_path, "old run", {"reasonseg/test": (0.55, 0.5)}, protocol=None)
    lines = render_report([a, b, c]).splitlines()
    assert "| ours, published protocol | — | **60.0** | multimask_best |" in lines
    assert "| ours, single mask | — | 58.0† | single_mask |" in lines
    assert "| old run | — | 55.0† | single_mask |" in lines
    assert any(line.startswith("† SAM protocol other than Seg-Zero's (multimask_best)") for line in lines)
    assert any(line.startswith("| old run | reasonseg / test | single_mask | 10 |") for line in lines)


def test_report_of_real_runs_and_the_cli(tmp_path, runs, capsys):
    (with_dir, with_m), (without_dir, without_m) = runs["with negatives"], runs["no negatives"]
    assert with_m["complete"] and with_m["overall"]["failures"] == 1
    assert with_m["overall"]["negatives"]["samples_with_negatives"] > 0
    assert without_m["overall"]["negatives"]["samples_with_negatives"] == 0
    out = tmp_path / "report.md"
    assert main(["report", str(with_dir), str(without_dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| Method | RefCOCOg | ReasonSeg | lookalike (val, gIoU) | SAM protocol |" in text
    assert with_m["config"]["sam_protocol"] == "multimask_best"  # the evaluation's default
    g = 100 * with_m["by_split"]["lookalike/val"]["gIoU"]
    assert re.search(rf"\| with negatives \| — \| — \| (\*\*)?{g:.1f}(\*\*)? \| multimask_best \|", text)
    assert "1 (unparseable_answer 1)" in text
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_gallery_renders_and_every_link_resolves(runs):
    run_dir, _ = runs["with negatives"]
    index = write_gallery(run_dir, k=3)
    page = index.read_text()
    for title in ("Best samples", "Worst samples", "Most changed by the predicted negative points"):
        assert title in page
    sources = re.findall(r"<img src='([^']+)'", page)
    assert sources
    for src in sources:
        path = index.parent / src
        assert path.is_file(), src
        with Image.open(path) as im:
            im.verify()
    assert "failure: unparseable_answer" in page  # the garbage answer is among the worst, with its reason


def test_select_samples_orders_and_filters():
    recs = [
        {"id": "a", "IoU": 0.9, "failure": None},
        {"id": "b", "IoU": 0.0, "failure": "sam_error"},
        {"id": "c", "IoU": 0.5, "failure": None, "noneg": {"IoU": 0.1}, "pred_mask_noneg": {}},
        {"id": "d", "IoU": 0.6, "failure": None, "noneg": {"IoU": 0.6}, "pred_mask_noneg": {}},
    ]
    sel = select_samples(recs, k=2)
    assert [r["id"] for r in sel["best"]] == ["a", "d"]
    assert [r["id"] for r in sel["worst"]] == ["b", "c"]
    assert [r["id"] for r in sel["changed_by_negatives"]] == ["c"]


def test_training_curves_from_verl_logs(tmp_path):
    file_log = tmp_path / "verl.jsonl"
    file_log.write_text(
        "\n".join(
            json.dumps(
                {
                    "step": s,
                    "data": {
                        "critic/score/mean": 0.1 * s,
                        "reward_extra_info/neg_reward/mean": s / 10,
                        "timing/gen": 3.0,
                        "note": "x",
                    },
                }
            )
            for s in range(1, 6)
        )
        + "\n"
    )
    console = tmp_path / "console.log"
    console.write_text(
        "INFO starting\nstep:1 - critic/score/mean:0.5 - actor/lr:1e-06\nstep:2 - critic/score/mean:0.75\n"
    )
    series = read_log(file_log)
    assert series["critic/score/mean"][3] == pytest.approx(0.3) and "note" not in series
    assert read_log(console)["critic/score/mean"] == {1: 0.5, 2: 0.75}
    png = plot_curves([file_log, console], tmp_path / "curves.png")
    with Image.open(png) as im:
        assert im.size[0] > 300
    with pytest.raises(ValueError, match="no numeric series"):
        plot_curves([file_log], tmp_path / "x.png", pattern="does-not-exist")
