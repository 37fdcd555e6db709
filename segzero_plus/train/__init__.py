"""Training on verl: the options of our reward manager (``options``), frame mapping (``frames``), the
rollout helpers, the per-step reward log, and the pre-flight (``segzero-plus check-train``): composing a
config as verl does (``verl_config``), its checks (``config_keys``, ``config_checks``, ``hardware_checks``
with the ``memory`` estimate, ``data_checks``, ``run_checks``, ``prompt_length``, ``run_manifest``),
their ``findings`` and the command (``preflight``). The manager itself is
:class:`segzero_plus.train.reward_manager.SegZeroPlusRewardManager`. Import the modules themselves; this package
re-exports nothing."""
