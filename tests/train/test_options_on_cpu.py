"""The manager's options: the SAM protocol of the training reward (recipe, overrides), former mode names."""

from __future__ import annotations

import pytest

from segzero_plus.sam.protocol import MULTIMASK_BEST, PUBLISHED_PROTOCOL, SINGLE_MASK
from segzero_plus.train.options import ManagerOptions, OptionsError, SamOptions
from segzero_plus.train.verl_config import compose


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
