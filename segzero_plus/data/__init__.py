"""Dataset preparation: verl training parquet, evaluation parquet, validation.

Modules (one concept each): ``schema`` (ground-truth JSON codec, row schemas), ``io`` (atomic, resumable
parquet writing), ``images`` (decode/RGB/resize between frames), ``refcoco`` (refer layout),
``reasonseg`` (LISA layout and rasterisation), ``segzero_layout`` (Seg-Zero's published layouts),
``training`` (training rows), ``evaluation_sets`` (evaluation rows), ``lookalike`` (look-alike scenes ->
rows), ``validation`` (checks + ``validate-data``). The names below are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "TrainingOptions": "training",
    "prepare_refer_training": "training",
    "training_row": "training",
    "target_geometry": "training",
    "prepare_reasonseg_eval": "evaluation_sets",
    "prepare_refer_eval": "evaluation_sets",
    "import_segzero_training": "segzero_layout",
    "import_segzero_eval": "segzero_layout",
    "scenes_to_training_rows": "lookalike",
    "scenes_to_eval_rows": "lookalike",
    "write_scenes_training": "lookalike",
    "write_scenes_eval": "lookalike",
    "validate_file": "validation",
    "write_clean": "validation",
    "ValidationReport": "validation",
    "TRAINING_SCHEMA": "schema",
    "EVAL_SCHEMA": "schema",
    "dumps_ground_truth": "schema",
    "loads_ground_truth": "schema",
    "to_ground_truth": "schema",
    "from_ground_truth": "schema",
    "with_confused_mask": "schema",
    "eval_row": "schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"segzero_plus.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'segzero_plus.data' has no attribute {name!r}")
