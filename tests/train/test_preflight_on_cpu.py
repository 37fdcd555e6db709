"""``segzero-plus check-train``: every shipped config passes in dry-run mode; dead keys, bad batch sizes, too
few GPUs, too little memory and mismatched data fail with the key or number named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segzero_plus.paths import REPO_ROOT
from segzero_plus.train.preflight import run_preflight

CONFIGS = REPO_ROOT / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
HARDWARE = sorted(p.stem for p in (CONFIGS / "hardware").glob("*.yaml"))
PRIMARY = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def _fails(report) -> list[str]:
    return [f.line() for f in report.failed]


def _text(report) -> str:
    return "\n".join(f.line() for f in report.findings)


def test_the_shipped_config_tree_is_what_the_docs_promise():
    assert set(PRIMARY) == {"segzero_plus_7b", "seg_zero_baseline_7b"}
    assert {"8gpu", "2xa6000", "4x80gb", "lora_24gb", "smoke_1gpu"} <= set(HARDWARE)
    ablations = {"baseline", "neg_output_only", "neg_simple_reward", "neg_full_reward"}
    # 3 points and weight 1.0 are neg_full_reward itself (see test_no_two_experiments_compose_alike)
    ablations |= {f"neg_{k}_points" for k in (1, 2)} | {f"neg_weight_{w}" for w in ("0.5", "2.0")}
    assert ablations | {"segzero_plus_geometry", "segzero_plus_sam_cf"} == set(EXPERIMENTS)


@pytest.mark.parametrize("config_name", PRIMARY)
def test_no_two_experiments_compose_alike(config_name):
    """Every experiment must change what is trained: two that compose to the same config (apart from
    their names and folders) would run the same ablation twice."""
    from omegaconf import OmegaConf

    from segzero_plus.train.verl_config import compose

    seen: dict[str, str] = {}
    for name in EXPERIMENTS:
        cfg = compose(config_name, [f"experiment={name}"])
        cfg.trainer.experiment_name = "-"
        cfg.trainer.default_local_dir = "-"
        key = OmegaConf.to_yaml(cfg, resolve=True)
        assert key not in seen, f"experiment {name} composes to the same config as {seen[key]}"
        seen[key] = name
    assert len(seen) == len(EXPERIMENTS)


@pytest.mark.parametrize(
    "config_name, overrides",
    [(name, []) for name in PRIMARY]
    + [("segzero_plus_7b", [f"hardware={hw}"]) for hw in HARDWARE]
    + [("segzero_plus_7b", [f"experiment={e}"]) for e in EXPERIMENTS]
    + [("segzero_plus_7b", ["hardware=2xa6000", "experiment=segzero_plus_sam_cf"])],
)
def test_every_shipped_config_passes_the_dry_run(config_name, overrides):
    report = run_preflight(config_name, overrides, dry_run=True)
    assert report.ok, _text(report)
    checks = {f.check for f in report.findings if f.level == "ok"}
    assert {"compose", "schema", "reward", "batch", "memory"} <= checks, _text(report)


def test_experiments_set_what_their_names_say():
    def section(*overrides):
        return run_preflight("segzero_plus_7b", list(overrides), dry_run=True).config.segzero_plus

    base = section("experiment=baseline")
    assert (base.prompt_template, base.negative_reward, base.reward.scorer) == (
        "original",
        "none",
        "seg_zero_strict",
    )
    assert section("experiment=neg_simple_reward").reward.negative_regions == "none"
    assert section("experiment=neg_2_points").reward.max_negative_points == 2
    w = section("experiment=neg_weight_0.5")
    assert (w.negative_reward, w.reward.weights.negative_point) == ("additive", 0.5)
    assert section("experiment=segzero_plus_sam_cf").negative_reward == "sam_counterfactual"
    baseline_cfg = run_preflight("seg_zero_baseline_7b", [], dry_run=True).config
    assert baseline_cfg.actor_rollout_ref.model.path.endswith("Qwen2.5-VL-7B-Instruct")
    assert baseline_cfg.data.train_files.endswith("train_original.parquet")


def test_seg_zero_recipe_values():
    cfg = run_preflight("seg_zero_baseline_7b", [], dry_run=True).config
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert (cfg.algorithm.adv_estimator, rollout.n, cfg.data.train_batch_size) == ("grpo", 8, 16)
    assert (actor.optim.lr, actor.kl_loss_coef, actor.kl_loss_type, actor.clip_ratio) == (
        1e-6,
        5e-3,
        "low_var_kl",
        0.2,
    )
    assert actor.use_kl_loss and cfg.trainer.total_epochs == 1 and cfg.trainer.save_freq == 50
    assert cfg.reward.reward_manager.source == "importlib"
    assert cfg.reward.reward_manager.module.path == "pkg://segzero_plus.train.reward_manager"
    a6000 = run_preflight("segzero_plus_7b", ["hardware=2xa6000"], dry_run=True).config
    assert (
        a6000.trainer.n_gpus_per_node == 2 and a6000.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    )
    assert (
        a6000.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 1
        and a6000.actor_rollout_ref.rollout.n == 4
    )
    assert a6000.actor_rollout_ref.model.enable_gradient_checkpointing


def test_foreign_and_legacy_keys_in_a_yaml_file_fail_with_their_real_key(tmp_path):
    """Hydra silently accepts unknown keys written in a config FILE; the pre-flight does not."""
    tree = tmp_path / "configs"
    shutil.copytree(CONFIGS, tree)
    (tree / "foreign_style.yaml").write_text(
        "hydra:\n  searchpath:\n    - pkg://verl.trainer.config\n"
        "defaults:\n  - ppo_trainer\n  - recipe/seg_zero_grpo\n  - hardware: 8gpu\n"
        "  - experiment: segzero_plus_geometry\n  - _self_\n"
        "trainer:\n  save_path: outputs/x\n"
        "custom:\n  use_negative_reward: true\n  negative_reward_weight: 1.0\n"
        "custom_reward_function:\n  path: my_reward.py\n"
        "actor_rollout_ref:\n  rollout:\n    tensor_parallel_size: 2\n"
    )
    report = run_preflight("foreign_style", [], config_dir=tree, dry_run=True)
    fails = "\n".join(_fails(report))
    assert not report.ok
    assert "'trainer.save_path'" in fails and "trainer.default_local_dir" in fails
    assert "'custom.use_negative_reward'" in fails and "segzero_plus.negative_reward" in fails
    assert "'custom.negative_reward_weight'" in fails and "weights.negative_point" in fails
    assert (
        "custom_reward_function.path=my_reward.py" in fails and "reward.custom_reward_function.path" in fails
    )
    assert (
        "'actor_rollout_ref.rollout.tensor_parallel_size'" in fails and "tensor_model_parallel_size" in fails
    )


def test_unknown_command_line_key_fails_with_a_hint():
    report = run_preflight("segzero_plus_7b", ["trainer.save_path=/tmp/x"], dry_run=True)
    (fail,) = report.failed
    assert (
        fail.check == "compose"
        and "trainer.save_path" in fail.message
        and "default_local_dir" in fail.message
    )
    report = run_preflight("segzero_plus_7b", ["+worker.rollout.n=8"], dry_run=True)
    assert any("actor_rollout_ref.rollout.n" in f.message for f in report.failed), _text(report)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        # Seg-Zero users' ZeroDivisionError: fewer trajectories per GPU than the micro-batch
        (
            [
                "data.train_batch_size=4",
                "actor_rollout_ref.actor.ppo_mini_batch_size=4",
                "actor_rollout_ref.rollout.n=2",
            ],
            "per-GPU mini-batch = 4 x 2 / 8 = 1",
        ),
        (
            [
                "data.train_batch_size=3",
                "actor_rollout_ref.actor.ppo_mini_batch_size=3",
                "actor_rollout_ref.rollout.n=3",
            ],
            "divisible by the 8 GPUs",
        ),
        (["actor_rollout_ref.actor.ppo_mini_batch_size=6"], "must divide data.train_batch_size=16"),
        (["actor_rollout_ref.rollout.tensor_model_parallel_size=3"], "must divide the 8 GPUs"),
        (["actor_rollout_ref.rollout.n=1"], "GRPO needs actor_rollout_ref.rollout.n >= 2"),
        (
            ["actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=null"],
            "log_prob_micro_batch_size_per_gpu",
        ),
    ],
)
def test_batch_size_problems_fail_before_any_gpu_work(overrides, needle):
    report = run_preflight("segzero_plus_7b", overrides, dry_run=True)
    assert any(f.check == "batch" and needle in f.message for f in report.failed), _text(report)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["+segzero_plus.reward.template=original"], "segzero_plus.prompt_template"),
        (["+segzero_plus.bogus=1"], "segzero_plus.bogus"),
        (["segzero_plus.negative_reward=contrastive"], "negative_reward must be one of"),
        (["segzero_plus.sam.placement=gpu7"], "placement must be one of"),
        (["segzero_plus.reward.weights.negative_point=x"], "segzero_plus.reward"),
        (["reward.reward_manager.source=register", "reward.reward_manager.name=naive"], "'naive'"),
    ],
)
def test_bad_reward_section_fails_naming_the_key(overrides, needle):
    report = run_preflight("segzero_plus_7b", overrides, dry_run=True)
    assert any(f.check == "reward" and needle in f.message for f in report.failed), _text(report)


def test_gpu_count_and_memory_are_checked_against_the_machine():
    no_gpu = run_preflight("segzero_plus_7b", [], gpus=[], host_gib=1000.0)
    assert any(
        f.check == "gpus" and "0 visible GPU(s), the config needs 8" in f.message for f in no_gpu.failed
    )
    own = run_preflight(
        "segzero_plus_7b",
        ["experiment=segzero_plus_sam_cf", "segzero_plus.sam.placement=own_gpu"],
        gpus=[80.0] * 8,
        host_gib=1000.0,
    )
    assert any(f.check == "gpus" and "needs 9" in f.message for f in own.failed), _text(own)
    small = run_preflight("segzero_plus_7b", [], gpus=[24.0] * 8, host_gib=1000.0)
    assert any(f.check == "memory" and "actor update needs" in f.message for f in small.failed), _text(small)
    low_ram = run_preflight("segzero_plus_7b", [], gpus=[80.0] * 8, host_gib=64.0)
    assert any(f.check == "memory" and "host memory" in f.message for f in low_ram.failed), _text(low_ram)
    fits = run_preflight("segzero_plus_7b", [], gpus=[80.0] * 8, host_gib=1000.0)
    assert not [f for f in fits.failed if f.check in ("gpus", "memory")], _text(fits)


@pytest.fixture(scope="module")
def training_files(scenes, tmp_path_factory):
    from segzero_plus.data.lookalike import scenes_to_training_rows
    from segzero_plus.data.schema import TRAINING_SCHEMA
    from segzero_plus.data.training import TrainingOptions

    folder = tmp_path_factory.mktemp("train_data")
    paths = {}
    for template in ("negative_point", "original"):
        rows = scenes_to_training_rows(scenes[:6], TrainingOptions(template=template, resize=None))
        paths[template] = folder / f"train_{template}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), paths[template])
    return paths


def _data(path: Path, val: Path | None = None) -> list[str]:
    return [f"data.train_files={path}", f"data.val_files={val or path}"]


def test_data_files_are_loaded_and_matched_to_the_reward(training_files, tiny_qwen_dir):
    smoke = ["hardware=smoke_1gpu", f"actor_rollout_ref.model.path={tiny_qwen_dir}"]
    good = run_preflight("segzero_plus_7b", [*smoke, *_data(training_files["negative_point"])], dry_run=True)
    assert good.ok, _text(good)
    assert any(
        f.check == "data" and "train: 6 rows" in f.message and "1 training step" in f.message
        for f in good.findings
    ), _text(good)
    assert any(f.check == "files" and f.level == "ok" for f in good.findings)

    mismatch = run_preflight(
        "segzero_plus_7b",
        [*smoke, "experiment=baseline", *_data(training_files["negative_point"])],
        dry_run=True,
    )
    assert any(
        "prompt template 'negative_point'" in f.message and "--template original" in f.message
        for f in mismatch.failed
    ), _text(mismatch)

    too_few = run_preflight("segzero_plus_7b", [*_data(training_files["negative_point"])], dry_run=True)
    assert any("6 training rows < data.train_batch_size=16" in f.message for f in too_few.failed), _text(
        too_few
    )

    missing = run_preflight(
        "segzero_plus_7b",
        [*smoke, "data.train_files=/nonexistent/train.parquet"],
        gpus=[80.0],
        host_gib=500.0,
    )
    assert any(
        f.check == "data" and "/nonexistent/train.parquet does not exist" in f.message for f in missing.failed
    )
    dry = run_preflight(
        "segzero_plus_7b", [*smoke, "data.train_files=/nonexistent/train.parquet"], dry_run=True
    )
    assert not [f for f in dry.failed if f.check == "data"], _text(dry)


def test_cli_exit_codes(capsys):
    """Input errors (a misspelled override, an unknown experiment, a missing data file) are one ``error:``
    line and exit 2; a config that is wrong is FAIL lines and exit 1; a good one exits 0."""
    from segzero_plus.cli import main

    for args, needle in (
        (["--dry-run", "trainer.save_path=/x"], "trainer.default_local_dir"),
        (["--dry-run", "experiment=neg_3_point"], "neg_3_point"),
        (["data.train_files=/nonexistent/train.parquet"], "/nonexistent/train.parquet does not exist"),
    ):
        assert main(["check-train", *args]) == 2, args
        captured = capsys.readouterr()
        (line,) = [x for x in captured.err.splitlines() if x.startswith("error:")]
        assert line.startswith("error: check-train:") and needle in line, line
        assert "Traceback" not in captured.err + captured.out
    assert main(["check-train", "--dry-run", "actor_rollout_ref.actor.ppo_mini_batch_size=6"]) == 1
    assert "pre-flight FAILED" in capsys.readouterr().out
    assert (
        main(
            [
                "check-train",
                "--dry-run",
                "--experiments",
                "baseline",
                "neg_2_points",
                "--",
                "trainer.nnodes=1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("pre-flight passed") == 2 and "experiment=neg_2_points trainer.nnodes=1" in out
