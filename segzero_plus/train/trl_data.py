"""Our training parquet (verl rows, see docs/CONVENTIONS.md) as the dataset TRL's ``GRPOTrainer`` reads.

One example per row:

- ``prompt``: the row's chat messages with the ``<image>`` tag removed from the user turn (TRL puts the
  image part before the first user message's text itself, ``trl.data_utils.prepare_multimodal_messages``);
- ``image``: the stored MODEL-frame image (PIL, RGB);
- ``ground_truth``: the row's ground-truth JSON (MODEL frame), unchanged;
- ``answer_hw``: [H, W] of the image the model sees after the processor's resize (the answer frame):
  ``image_grid_thw`` x the patch size, read from the processor itself, so the reward scales the ground
  truth exactly as the model's pixels are;
- ``image_key``: the SHA-1 of the stored PNG (the SAM embedding cache key: one encode per unique image);
- ``sample_id`` and ``data_source`` (for logs).

Every extra column reaches the reward functions as a keyword argument. Rows are converted without
decoding the ground truth: a malformed row scores a counted 0 in training (the pre-flight reports them
first, :mod:`segzero_plus.train.trl_preflight`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from segzero_plus.data.inputs import open_parquet
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.errors import UserError
from segzero_plus.train.frames import prompt_messages
from segzero_plus.train.scoring import image_key

IMAGE_TAG = "<image>"
COLUMNS: tuple[str, ...] = ("prompt", "images", "reward_model", "extra_info", "data_source")
"""The training-parquet columns the TRL engine reads."""


def read_training_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` (all when None) rows of a training parquet, checked to have :data:`COLUMNS`."""
    pf = open_parquet(path, "training parquet", COLUMNS, TRAINING_SCHEMA)
    rows: list[dict[str, Any]] = []
    for batch in pf.iter_batches(batch_size=256, columns=list(COLUMNS)):
        rows.extend(batch.to_pylist())
        if limit is not None and len(rows) >= limit:
            return rows[:limit]
    return rows


def trl_messages(raw_prompt: Any) -> list[dict[str, str]]:
    """The row's messages as TRL text messages: string contents, the ``<image>`` tag removed."""
    out = []
    for message in prompt_messages(raw_prompt):
        content = message["content"]
        if not isinstance(content, str):
            raise ValueError(f"{message['role']} message content is not a string")
        out.append({"role": str(message["role"]), "content": content.replace(IMAGE_TAG, "", 1)})
    return out


def _row_image(row: Mapping[str, Any]) -> tuple[Any, bytes]:
    """(RGB PIL image, stored bytes) of the row's first image."""
    from PIL import Image

    images = row.get("images") or []
    data = images[0].get("bytes") if images and isinstance(images[0], Mapping) else None
    if not data:
        raise ValueError("row has no stored image bytes")
    return Image.open(io.BytesIO(data)).convert("RGB"), data


def answer_frame(processor: Any, image: Any) -> tuple[int, int]:
    """(H, W) of ``image`` as the processor resizes it for the model: ``image_grid_thw`` x patch size."""
    ip = processor.image_processor
    grid = ip(images=[image], return_tensors="np")["image_grid_thw"][0]
    patch = int(ip.patch_size)
    return int(grid[1]) * patch, int(grid[2]) * patch


def trl_example(row: Mapping[str, Any], processor: Any) -> dict[str, Any]:
    """One TRL example (see the module docstring) from one verl training row. Raises ``ValueError`` on a
    row without a readable image or with non-text messages."""
    image, data = _row_image(row)
    extra = row.get("extra_info") or {}
    return {
        "prompt": trl_messages(row["prompt"]),
        "image": image,
        "ground_truth": str((row.get("reward_model") or {}).get("ground_truth") or ""),
        "answer_hw": list(answer_frame(processor, image)),
        "image_key": image_key(data),
        "sample_id": str(extra.get("id", extra.get("index", ""))),
        "data_source": str(row.get("data_source") or ""),
    }


def trl_dataset(rows: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]], processor: Any) -> Any:
    """A ``datasets.Dataset`` of :func:`trl_example` for every row. A row whose image cannot be read is a
    :class:`UserError` naming it (TRL cannot generate without the image)."""
    from datasets import Dataset

    examples = []
    for i, row in enumerate(rows):
        try:
            examples.append(trl_example(row, processor))
        except (ValueError, OSError, KeyError, TypeError) as exc:
            rid = (row.get("extra_info") or {}).get("id", i) if isinstance(row, Mapping) else i
            raise UserError(f"training row {rid}: {exc}; rebuild the training parquet") from None
    if not examples:
        raise UserError("the training parquet has no rows")
    return Dataset.from_list(examples)
