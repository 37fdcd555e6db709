"""Fixtures the project builds itself for tests, the demo and toy experiments.

``tiny_models`` (random-weight Qwen2.5-VL and SAM2 folders, ``make-tiny``), ``miniature`` (tiny datasets
in the real layouts), ``synthetic`` (scripted policies: perturbed ground-truth answers), the toy SAM2
(``toy_sam``, ``train_tiny_sam``, ``toy_sam_eval``), ``agreement`` (round-off-tolerant comparisons),
``answers``, ``configs`` and ``rollout_server``.

Committed fixture files (small trained checkpoints) live in ``fixtures/`` beside this file; each one is
reproduced by a script in this package, whose exact command is written next to it.
"""
