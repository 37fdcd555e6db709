"""The TRL engine's profiles, experiment selection and pre-flight (no training here)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.data.training import TrainingOptions
from segzero_plus.train.findings import Report
from segzero_plus.train.trl_config import TrlConfigError, load_run, profile_names
from segzero_plus.train.trl_preflight import check_batch, memory_estimate, run_preflight


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    scenes = generate_scenes(4, seed=11, sizes=((112, 112),), difficulty="mixed")
    rows = scenes_to_training_rows(
        scenes, TrainingOptions(template="negative_point", resize=(112, 112), data_source="lookalike")
    )
    rows[2]["reward_model"] = {"style": "rule", "ground_truth": '{"bbox": [1, 2'}
    path = tmp_path_factory.mktemp("trl") / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    return path


def test_profiles_and_experiments_select_the_reward_variant():
    assert {"cpu_toy", "lora_24gb", "full_80gb"} <= set(profile_names())
    assert load_run("cpu_toy", "baseline").options.reward.scorer == "seg_zero_strict"
    assert load_run("cpu_toy", "baseline").options.prompt_template == "original"
    assert load_run("cpu_toy", "segzero_plus_geometry").options.reward.negative_reward == "geometry"
    cf = load_run("cpu_toy", "segzero_plus_sam_cf")
    assert cf.options.uses_sam and cf.options.sam.device == "cpu"
    assert load_run("cpu_toy", "neg_weight_2.0").options.reward.weights["negative_point"] == 2.0
    assert load_run("lora_24gb").peft["r"] == 64


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("no_such_profile",), "unknown TRL profile"),
        (("cpu_toy", "no_such_experiment"), "unknown experiment"),
        (("cpu_toy", None, ["segzero_plus.negative_reward=plan"]), "is now 'additive'"),
        (("cpu_toy", None, ["bogus=1"]), "unknown key"),
    ],
)
def test_bad_profiles_and_overrides_are_named(args, needle):
    with pytest.raises(TrlConfigError, match=needle):
        load_run(*args)


def test_preflight_names_the_broken_row_and_passes_the_rest(train_file):
    report = run_preflight(load_run("cpu_toy"), train_file)
    text = report.text()
    failed = report.failed
    assert len(failed) == 1 and failed[0].check == "data", text
    assert (
        "1 of the first 4 rows" in failed[0].message and "lookalike_train_scene_11_00002" in failed[0].message
    )
    assert any(f.check == "length" and f.level == "ok" for f in report.findings)


def test_preflight_refuses_groups_that_do_not_fit_the_batch(train_file):
    report = Report()
    assert check_batch(load_run("cpu_toy", overrides=["grpo.num_generations=3"]), report) is None
    assert "multiple of num_generations=3" in report.failed[0].message


def test_memory_estimate_of_the_gpu_profiles_at_seg_zero_lengths():
    """7B at 1300-token prompts: LoRA fits one 24 GB GPU, full fine-tuning (Adafactor) one 80 GB GPU, and
    full fine-tuning with AdamW moments would not fit 80 GB."""
    estimates = {}
    for profile, overrides in (
        ("lora_24gb", []),
        ("full_80gb", []),
        ("full_80gb", ["grpo.optim=adamw_torch"]),
    ):
        run = load_run(profile, overrides=overrides)
        estimates[(profile, bool(overrides))] = memory_estimate(run, None, 1300, check_batch(run, Report()))[
            0
        ]
    assert estimates[("lora_24gb", False)] < 0.95 * 24
    assert estimates[("full_80gb", False)] < 0.95 * 80 < estimates[("full_80gb", True)]
