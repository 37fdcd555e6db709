"""Former home of the verl reward manager, kept for configs that name ``pkg://segzero_plus.verl_reward``:
the class now lives in :mod:`segzero_plus.train.reward_manager` (this module re-exports it)."""

from segzero_plus.train.reward_manager import SegZeroPlusRewardManager

__all__ = ["SegZeroPlusRewardManager"]
