"""The benchmark runner's row arithmetic and report files (the benchmarks themselves run in `make bench`)."""

import json

from benchmarks.common import BenchRow
from benchmarks.run import write_reports


def test_ratio_direction():
    cost = BenchRow("t", ours=2.0, baseline=10.0, unit="ms", device="cpu")
    speed = BenchRow("s", ours=8.0, baseline=2.0, unit="items/s", device="cpu", higher_is_better=True)
    assert cost.ratio == 5.0 and speed.ratio == 4.0
    assert BenchRow("z", ours=0.0, baseline=1.0, unit="ms", device="cpu").ratio == float("inf")


def test_reports_hold_every_row_and_the_notes(tmp_path):
    rows = [
        BenchRow("a", 1.0, 3.0, "ms", "cpu").as_json(),
        BenchRow("a", 0.5, 3.0, "ms", "NVIDIA H100").as_json(),
    ]
    (tmp_path / "benchmarks_notes.md").write_text("## notes\nhand-written\n")
    write_reports(rows, tmp_path / "benchmarks.md", tmp_path / "benchmarks.json")
    back = json.loads((tmp_path / "benchmarks.json").read_text())
    assert [(r["name"], r["device"], r["ratio"]) for r in back] == [
        ("a", "cpu", 3.0),
        ("a", "NVIDIA H100", 6.0),
    ]
    assert set(back[0]) >= {"name", "ours", "baseline", "unit", "ratio", "device"}
    md = (tmp_path / "benchmarks.md").read_text()
    assert md.count("| a |") == 2 and md.rstrip().endswith("hand-written")
