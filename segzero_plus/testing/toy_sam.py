"""The trained toy SAM2: a ~2.2M-parameter SAM2 (``sam2``'s own model classes) that segments look-alike
scenes, committed as a fixture so tests and the demo get masks that mean something on CPU.

It is made by :mod:`segzero_plus.testing.train_tiny_sam` (the exact command is in ``fixtures/README.md``)
and never retrained by tests, the demo or CI. Its config is a sam2-style yaml beside the checkpoint;
:func:`segzero_plus.sam.build.build_sam2_model` takes the yaml's path as ``config_name``.
"""

from __future__ import annotations

from pathlib import Path

from segzero_plus.errors import UserError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_SAM_CONFIG = FIXTURES / "toy_sam2_hiera_192.yaml"
TOY_SAM_CHECKPOINT = FIXTURES / "toy_sam2_hiera_192.pt"


def toy_sam_checkpoint() -> tuple[str, Path]:
    """``(config_name, checkpoint_path)`` of the trained toy SAM2, for ``build_sam2_model`` or any
    ``--sam-config`` / ``--sam-checkpoint`` pair (the config name is the yaml's absolute path)."""
    if not TOY_SAM_CHECKPOINT.is_file():
        raise UserError(
            f"the toy SAM2 fixture {TOY_SAM_CHECKPOINT} is missing; it is committed with the repository "
            "(recreate it with the command in segzero_plus/testing/fixtures/README.md)"
        )
    return str(TOY_SAM_CONFIG), TOY_SAM_CHECKPOINT


def toy_sam_scorer(cache_size: int = 8, random_weights: bool = False):
    """A CPU :class:`~segzero_plus.sam.scorer.SamScorer` on the toy SAM2 (``random_weights``: the same
    architecture with seed-0 random weights, the untrained baseline)."""
    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.sam.scorer import SamScorer

    config, checkpoint = toy_sam_checkpoint()
    model = build_sam2_model(config, None if random_weights else checkpoint, seed=0)
    return SamScorer(model, cache_size=cache_size)
