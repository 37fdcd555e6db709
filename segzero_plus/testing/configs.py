"""The training config of CPU tests: ``segzero_plus_7b`` on the smoke profile, over a tiny model and one
training parquet, with checkpoints (and the per-step reward log) in a folder of the test's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_training_config(model_dir: str | Path, parquet: str | Path, *overrides: str) -> Any:
    """Composed config (OmegaConf) with ``parquet`` as train and val file and
    ``trainer.default_local_dir`` = ``<parquet's folder>/checkpoints``; ``overrides`` come last."""
    from segzero_plus.train.verl_config import compose

    parquet = Path(parquet)
    return compose(
        "segzero_plus_7b",
        [
            "hardware=smoke_1gpu",
            f"actor_rollout_ref.model.path={model_dir}",
            f"data.train_files={parquet}",
            f"data.val_files={parquet}",
            f"trainer.default_local_dir={parquet.parent / 'checkpoints'}",
            *overrides,
        ],
    )
