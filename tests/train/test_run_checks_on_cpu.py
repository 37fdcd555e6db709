"""The pre-flight's start-up checks: prompt lengths as verl counts them, the checkpoint folder of a run,
dead keys, vLLM's context length, the attention implementation and the SAM placement."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.data.training import TrainingOptions
from segzero_plus.paths import REPO_ROOT
from segzero_plus.train.preflight import run_preflight
from segzero_plus.train.run_manifest import MANIFEST, write_manifest
from segzero_plus.train.verl_config import compose

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "configs" / "experiment").glob("*.yaml"))
PRIMARY = sorted(p.stem for p in (REPO_ROOT / "configs").glob("*.yaml"))


def _text(report) -> str:
    return "\n".join(f.line() for f in report.findings)


def _parquet(path: Path, template: str, size: tuple[int, int], n: int) -> Path:
    scenes = generate_scenes(n, seed=3, sizes=(size,))
    rows = scenes_to_training_rows(
        scenes, TrainingOptions(template=template, resize=None, data_source="lookalike")
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    return path


@pytest.fixture(scope="module")
def data_840(tmp_path_factory):
    """16 rows (one step of the recipe) of 840x840 scenes per prompt template."""
    folder = tmp_path_factory.mktemp("data840")
    return {
        t: _parquet(folder / f"train_{t}.parquet", t, (840, 840), 16) for t in ("negative_point", "original")
    }


@pytest.mark.slow
@pytest.mark.parametrize("config_name", PRIMARY)
def test_every_shipped_experiment_passes_with_its_prompt_lengths_counted(
    config_name, data_840, tiny_qwen_dir
):
    """Every primary config x experiment, on 840x840 rows of the experiment's template counted by the tiny
    Qwen2.5-VL's processor (the 7B's image geometry: 900 image tokens): no row is dropped by verl."""
    for experiment in EXPERIMENTS:
        template = compose(config_name, [f"experiment={experiment}"]).segzero_plus.prompt_template
        data = data_840[template]
        overrides = [
            f"experiment={experiment}",
            f"actor_rollout_ref.model.path={tiny_qwen_dir}",
            f"data.train_files={data}",
            f"data.val_files={data}",
        ]
        report = run_preflight(config_name, overrides, dry_run=True)
        assert report.ok, (experiment, _text(report))
        lengths = [f for f in report.findings if f.check == "length"]
        assert len(lengths) == 2 and all(f.level == "ok" for f in lengths), _text(report)


def test_overlong_prompts_fail_naming_the_rows(tmp_path, tiny_qwen_dir):
    """The smoke profile's first 512-token budget: verl would have dropped all of its 336x336 rows."""
    data = _parquet(tmp_path / "train_negative_point.parquet", "negative_point", (336, 336), 4)
    base = [
        "hardware=smoke_1gpu",
        "experiment=segzero_plus_geometry",
        f"actor_rollout_ref.model.path={tiny_qwen_dir}",
        f"data.train_files={data}",
        f"data.val_files={data}",
    ]
    short = run_preflight("segzero_plus_7b", [*base, "data.max_prompt_length=512"], dry_run=True)
    fails = [f.message for f in short.failed if f.check == "length"]
    assert fails and "verl drops 4 of 4 rows longer than 512" in fails[0] and "row 0: 5" in fails[0], fails
    assert run_preflight("segzero_plus_7b", base, dry_run=True).ok


def test_a_folder_with_another_runs_checkpoints_is_refused(tmp_path):
    folder = tmp_path / "ckpt"
    ours = [f"trainer.default_local_dir={folder}"]
    cfg = compose("segzero_plus_7b", ours)

    assert run_preflight("segzero_plus_7b", ours, dry_run=True).ok  # empty folder: a fresh run
    (folder / "global_step_50" / "actor").mkdir(parents=True)
    unknown = run_preflight("segzero_plus_7b", ours, dry_run=True)
    assert any(f"no {MANIFEST}" in f.message for f in unknown.failed), _text(unknown)

    write_manifest(cfg)
    assert run_preflight("segzero_plus_7b", ours, dry_run=True).ok  # our own checkpoints: resume
    longer = run_preflight("segzero_plus_7b", [*ours, "trainer.total_training_steps=900"], dry_run=True)
    assert longer.ok, _text(longer)  # the length of a run may change on resume

    for other, needle in (
        (["actor_rollout_ref.model.path=pretrained_models/Qwen2.5-VL-7B-Instruct"], "Qwen2.5-VL-7B-Instruct"),
        (["experiment=baseline"], "segzero_plus.prompt_template"),
        (["hardware=4x80gb"], "trainer.n_gpus_per_node"),
    ):
        report = run_preflight("segzero_plus_7b", [*ours, *other], dry_run=True)
        (fail,) = [f for f in report.failed if f.check == "checkpoints"]
        assert "different run" in fail.message and needle in fail.message, fail.message
    scratch = run_preflight("segzero_plus_7b", [*ours, "trainer.resume_mode=disable"], dry_run=True)
    assert any("resume_mode=disable" in f.message for f in scratch.failed)
    assert json.loads((folder / MANIFEST).read_text())["fingerprint"]["_model_config_sha1"] is None


def test_the_shipped_runs_have_their_own_folders():
    """The baseline reproduction and the baseline ablation share an experiment, not a folder; neither do
    two hardware profiles of one experiment."""
    folders = {
        compose(name, overrides).trainer.default_local_dir
        for name, overrides in (
            ("seg_zero_baseline_7b", []),
            ("segzero_plus_7b", ["experiment=baseline"]),
            ("segzero_plus_7b", []),
            ("segzero_plus_7b", ["hardware=2xa6000"]),
        )
    }
    assert len(folders) == 4, folders
    cfg = compose("segzero_plus_7b", [])
    assert cfg.trainer.max_actor_ckpt_to_keep == 2
    assert "hf_model" in cfg.actor_rollout_ref.actor.checkpoint.save_contents
    assert "hf_model" not in cfg.actor_rollout_ref.actor.checkpoint.load_contents


@pytest.mark.parametrize(
    "override, needle",
    [
        ("actor_rollout_ref.actor.grad_clip=2.0", "optim.clip_grad"),
        ("+worker.actor.max_grad_norm=1.0", "actor_rollout_ref.actor.optim.clip_grad"),
        ("actor_rollout_ref.actor.use_torch_compile=false", "fsdp_config.use_torch_compile"),
        ("data.truncation=left", "filter_overlong_prompts"),
        ("actor_rollout_ref.rollout.max_model_len=null", "max_model_len is not set"),
        ("actor_rollout_ref.rollout.max_model_len=2000", "vLLM would cut responses"),
    ],
)
def test_keys_that_do_nothing_or_too_little_fail(override, needle):
    report = run_preflight("segzero_plus_7b", [override], dry_run=True)
    assert any(needle in f.message for f in report.failed), _text(report)


def test_every_profile_sets_the_vllm_context_to_prompt_plus_response():
    for hw in sorted(p.stem for p in (REPO_ROOT / "configs" / "hardware").glob("*.yaml")):
        cfg = compose("segzero_plus_7b", [f"hardware={hw}"])
        need = cfg.data.max_prompt_length + cfg.data.max_response_length
        assert cfg.actor_rollout_ref.rollout.max_model_len == need, hw
        assert cfg.actor_rollout_ref.ref.fsdp_config.model_dtype == "bf16", hw


def test_attention_needs_flash_attn_or_the_sdpa_profile():
    pytest.importorskip("omegaconf")
    import importlib.util

    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here: the missing-package path cannot be shown")
    kwargs = {"dry_run": False, "gpus": [80.0] * 8, "host_gib": 1024.0}
    flash = run_preflight("segzero_plus_7b", [], **kwargs)
    (fail,) = [f for f in flash.failed if f.check == "attention"]
    assert "flash-attn==" in fail.message and "attention=sdpa" in fail.message
    sdpa = run_preflight("segzero_plus_7b", ["attention=sdpa"], **kwargs)
    assert not [f for f in sdpa.failed if f.check == "attention"], _text(sdpa)
    cfg = sdpa.config.actor_rollout_ref.model
    assert (cfg.override_config.attn_implementation, cfg.use_remove_padding) == ("sdpa", False)
    both = run_preflight(
        "segzero_plus_7b", ["attention=sdpa", "actor_rollout_ref.model.use_remove_padding=true"], **kwargs
    )
    assert any("remove-padding" in f.message for f in both.failed if f.check == "attention")


def test_sam_gpu_placement_refuses_rays_override_switch(monkeypatch):
    monkeypatch.setenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "1")
    report = run_preflight("segzero_plus_7b", ["experiment=segzero_plus_sam_cf"], dry_run=True)
    assert any("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO" in f.message for f in report.failed)
    monkeypatch.delenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO")
    assert run_preflight("segzero_plus_7b", ["experiment=segzero_plus_sam_cf"], dry_run=True).ok
