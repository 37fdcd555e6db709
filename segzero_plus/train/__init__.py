"""Training on verl: the options of our reward manager, frame mapping, config-key checks, the memory
estimate and the pre-flight (``segzero-plus check-train``). The manager itself is
:class:`segzero_plus.verl_reward.SegZeroPlusRewardManager`."""
