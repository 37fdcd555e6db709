"""Fixtures the project builds itself for tests, the demo and toy experiments.

Committed fixture files (small trained checkpoints) live in ``fixtures/`` beside this file; each one is
reproduced by a script in this package, whose exact command is written next to it.
"""
