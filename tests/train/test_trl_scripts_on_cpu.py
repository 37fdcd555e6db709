"""training_scripts/run_trl_1gpu.sh on CPU: the pre-flight runs first and stops a bad run before training;
in dry-run mode a good run passes the pre-flight and does not train."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.data.training import TrainingOptions
from segzero_plus.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "training_scripts" / "run_trl_1gpu.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, "WANDB_MODE": "offline", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def _parquet(path, broken: bool = False):
    scenes = generate_scenes(2, seed=4, sizes=((112, 112),))
    rows = scenes_to_training_rows(
        scenes, TrainingOptions(template="negative_point", resize=(112, 112), data_source="lookalike")
    )
    if broken:
        rows[0]["reward_model"] = {"style": "rule", "ground_truth": "not json"}
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    return path


def test_dry_run_passes_the_preflight_and_does_not_train(tmp_path):
    out = tmp_path / "run"
    proc = _run(
        "cpu_toy", str(_parquet(tmp_path / "t.parquet")), str(out), "grpo.max_steps=1", SEGZERO_DRY_RUN="1"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pre-flight passed" in proc.stdout and "pre-flight only" in proc.stdout
    assert not (out / "final").exists()


def test_a_failing_preflight_stops_the_run(tmp_path):
    out = tmp_path / "run"
    proc = _run("cpu_toy", str(_parquet(tmp_path / "t.parquet", broken=True)), str(out))
    assert proc.returncode != 0
    assert "pre-flight FAILED" in proc.stdout and "rows are unusable" in proc.stdout
    assert not (out / "final").exists()
