"""The manager's options: the SAM protocol of the training reward (recipe, overrides), former mode names,
and the recipe's ``segzero_plus`` section agreeing with the dataclass defaults (one source)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from omegaconf import OmegaConf

from segzero_plus.paths import REPO_ROOT
from segzero_plus.sam.counterfactual import CounterfactualConfig
from segzero_plus.sam.protocol import MULTIMASK_BEST, PUBLISHED_PROTOCOL, SINGLE_MASK
from segzero_plus.sam.spec import ScorerSpec
from segzero_plus.train.options import ManagerOptions, OptionsError, SamOptions
from segzero_plus.train.verl_config import compose

RECIPE_CHOICES = {"sam.checkpoint", "preflight.name", "preflight.model_params_b"}
"""Keys of the recipe's ``segzero_plus`` section that deliberately set something other than the default:
the production checkpoint's path and the pre-flight's profile (the hardware profiles override it)."""


def _leaves(section: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in section.items():
        if isinstance(value, Mapping) and key != "weights":
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_the_recipe_repeats_the_dataclass_defaults_and_nothing_else():
    recipe = OmegaConf.load(REPO_ROOT / "configs" / "recipe" / "seg_zero_grpo.yaml")
    section = OmegaConf.to_container(recipe.segzero_plus, resolve=False)
    defaults = dataclasses.asdict(ManagerOptions())
    defaults["sam"]["counterfactual"] = dataclasses.asdict(CounterfactualConfig())
    seen, differ = set(), []
    for key, value in _leaves(section):
        seen.add(key)
        expected: Any = defaults
        for part in key.split("."):
            expected = expected.get(part, "<not a default>") if isinstance(expected, Mapping) else expected
        if key == "reward.weights":
            expected = {name: defaults["reward"]["weights"].get(name, 1.0) for name in value}
        if (value != expected) != (key in RECIPE_CHOICES):
            differ.append(f"segzero_plus.{key}: recipe {value!r}, default {expected!r}")
    assert not differ, "\n".join(differ)
    assert seen >= RECIPE_CHOICES


def test_sam_options_take_the_scorer_defaults_from_the_scorer_spec():
    spec, options = ScorerSpec(), SamOptions()
    shared = {f.name for f in dataclasses.fields(ScorerSpec)} & {
        f.name for f in dataclasses.fields(SamOptions)
    }
    assert {"config_name", "device", "cache_size", "autocast"} <= shared
    differ = {n for n in shared if getattr(spec, n) != getattr(options, n)}
    assert differ == {"max_batch"}  # bounded for training batches (SamOptions' docstring)
    assert options.scorer_spec() == dataclasses.replace(spec, max_batch=32, require_gpu=True)


def test_sam_protocol_defaults_to_the_evaluation_default_and_reaches_the_reward_config():
    options = ManagerOptions.from_section({"negative_reward": "sam_counterfactual"})
    assert options.sam.protocol == PUBLISHED_PROTOCOL == MULTIMASK_BEST
    assert options.sam.counterfactual_config().sam_protocol == MULTIMASK_BEST
    single = ManagerOptions.from_section(
        {"negative_reward": "sam_counterfactual", "sam": {"protocol": SINGLE_MASK, "counterfactual": {}}}
    )
    assert single.sam.counterfactual_config().sam_protocol == SINGLE_MASK


def test_bad_or_doubly_set_protocol_names_the_key():
    with pytest.raises(OptionsError, match=r"segzero_plus\.sam\.protocol must be one of"):
        SamOptions(protocol="best_of_three")
    with pytest.raises(OptionsError, match=r"sam\.counterfactual\.sam_protocol is not allowed"):
        SamOptions(counterfactual={"sam_protocol": SINGLE_MASK}).counterfactual_config()


def test_recipe_declares_the_protocol_so_a_hydra_override_reaches_the_manager():
    cfg = compose("segzero_plus_7b", ["experiment=segzero_plus_sam_cf"])
    assert ManagerOptions.from_config(cfg).sam.protocol == MULTIMASK_BEST
    cfg = compose(
        "segzero_plus_7b", ["experiment=segzero_plus_sam_cf", "segzero_plus.sam.protocol=single_mask"]
    )
    options = ManagerOptions.from_config(cfg)
    assert options.sam.protocol == SINGLE_MASK
    assert options.sam.counterfactual_config().sam_protocol == SINGLE_MASK


def test_the_former_negative_reward_name_is_refused_with_its_new_name():
    with pytest.raises(OptionsError, match=r"segzero_plus\.negative_reward 'plan' is now 'additive'"):
        ManagerOptions.from_section({"negative_reward": "plan"})
    assert ManagerOptions.from_section({"negative_reward": "additive"}).reward.negative_reward == "additive"
