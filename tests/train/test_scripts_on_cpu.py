"""The training scripts on CPU in dry-run mode (SEGZERO_DRY_RUN=1): each one composes its config with the
user's overrides and passes the pre-flight; a bad override stops it before launch; the GPU smoke script builds
its tiny models and data offline and passes the pre-flight on them."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from segzero_plus.paths import REPO_ROOT

SCRIPTS = REPO_ROOT / "training_scripts"


def run_script(name: str, *args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SEGZERO_DRY_RUN": "1",
        "WANDB_MODE": "offline",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def _out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "script, profile",
    [
        ("run_segzero_plus_7b.sh", "8gpu"),
        ("run_segzero_plus_7b_2xa6000.sh", "2xa6000"),
        ("run_seg_zero_baseline_7b.sh", "8gpu"),
    ],
)
def test_run_scripts_pass_the_dry_run_and_pass_overrides_through(script, profile):
    proc = run_script(script, "trainer.total_training_steps=7")
    assert proc.returncode == 0, _out(proc)
    assert "pre-flight passed" in proc.stdout and "not launching" in proc.stdout
    assert f"profile '{profile}'" in proc.stdout


def test_a_bad_override_stops_the_script_before_launch():
    proc = run_script("run_segzero_plus_7b.sh", "actor_rollout_ref.rollout.n=1")
    assert proc.returncode != 0
    assert "GRPO needs actor_rollout_ref.rollout.n >= 2" in proc.stdout and "not launching" not in proc.stdout


def test_ablation_script_preflights_every_ablation_in_one_go():
    proc = run_script("run_ablations.sh", "trainer.total_training_steps=5")
    assert proc.returncode == 0, _out(proc)
    assert proc.stdout.count("pre-flight passed") == 8
    for name in ("baseline", "neg_simple_reward", "neg_2_points", "neg_weight_2.0"):
        assert f"experiment={name} trainer.total_training_steps=5" in proc.stdout
    two = run_script("run_ablations.sh", EXPERIMENTS="neg_output_only nonexistent_experiment")
    # an unknown experiment is an input error: one error line, exit 2
    (line,) = [x for x in two.stderr.splitlines() if x.startswith("error:")]
    assert two.returncode == 2 and line.startswith("error: check-train:") and "nonexistent_experiment" in line


@pytest.mark.slow
def test_gpu_smoke_script_builds_its_data_offline_and_passes_the_preflight(tmp_path):
    out = tmp_path / "smoke"
    proc = run_script(
        "smoke_gpu.sh", str(out), HF_HUB_OFFLINE="1", SEGZERO_PLUS_CACHE=str(tmp_path / "cache")
    )
    assert proc.returncode == 0, _out(proc)
    assert "pre-flight passed" in proc.stdout and "SEGZERO_DRY_RUN=1: pre-flight only" in proc.stdout
    assert (out / "models" / "tiny-qwen2.5-vl" / "config.json").exists()
    assert (out / "models" / "sam" / "tiny_test.pt").exists()
    assert pq.ParquetFile(out / "data" / "train_negative_point.parquet").metadata.num_rows == 16
    assert "[OK  ] data: train: 16 rows" in proc.stdout and "2 training step(s)" in proc.stdout
    assert "[OK  ] files: model folder" in proc.stdout and "[OK  ] files: SAM checkpoint" in proc.stdout
    # its own rows survive verl's overlong filter: every prompt counted by the tiny model's processor
    assert "train_negative_point.parquet: 16 rows, longest prompt" in proc.stdout, _out(proc)
    assert "val_negative_point.parquet: 4 rows, longest prompt" in proc.stdout


def test_verls_own_entry_point_composes_the_same_config_as_the_preflight():
    """`python -m verl.trainer.main_ppo --cfg job` (hydra prints the composed config and exits) gives exactly
    what check-train checked."""
    import yaml
    from omegaconf import OmegaConf

    from segzero_plus.train.verl_config import compose

    overrides = ["hardware=2xa6000", "experiment=segzero_plus_sam_cf", "trainer.total_training_steps=3"]
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={REPO_ROOT / 'configs'}",
         "--config-name=segzero_plus_7b", "--cfg", "job", "--resolve", *overrides],
        capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = yaml.safe_load(proc.stdout)
    ours = OmegaConf.to_container(compose("segzero_plus_7b", overrides), resolve=True)
    assert printed == ours
    assert printed["segzero_plus"]["negative_reward"] == "sam_counterfactual"
    assert printed["reward"]["reward_manager"]["name"] == "SegZeroPlusRewardManager"
