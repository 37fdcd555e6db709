"""Look-alike scenes (``segzero_plus.data.scenes``) -> training rows and evaluation rows.

Training rows are exactly what the refer-layout conversion makes (MODEL-frame image and ground truth,
distractor masks = the scene's same-shape, same-colour look-alikes); evaluation rows keep the ORIGINAL
image and mask. The demo, tests and benchmarks use these instead of downloaded datasets.

Every row is labelled with its scene's difficulty through ``data_source``: ``lookalike`` for easy
scenes, ``lookalike_hard`` for hard ones (see :func:`scene_data_source`), so evaluation reports one
split per difficulty.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from segzero_plus.data import io as dio
from segzero_plus.data.images import encode_png, model_size, resize_image
from segzero_plus.data.inputs import first_line, open_parquet, read_table
from segzero_plus.data.outputs import file_digest
from segzero_plus.data.schema import EVAL_SCHEMA, TRAINING_SCHEMA, eval_row
from segzero_plus.data.training import TrainingOptions, geometry_row, rows_geometry
from segzero_plus.masks import encode_rle

LOOKALIKE_SOURCE = "lookalike"
SCENE_COLUMNS: tuple[str, ...] = ("id", "image", "expression", "shape", "colour", "mask", "distractor_masks")


@dataclass(frozen=True)
class UnreadableScene:
    """A row of a scenes file that does not make a scene: its id and why (it is skipped and reported)."""

    scene_id: str
    reason: str


def scene_row_id(scene_id: str, split: str) -> str:
    return f"{LOOKALIKE_SOURCE}_{split}_{scene_id}"


def read_scenes_inputs(paths: Sequence[str | Path]) -> tuple[list[Any], dict[str, str]]:
    """Scenes of ``make-scenes`` parquet files (a row that does not decode becomes an
    :class:`UnreadableScene`) and the files' digests for the resume fingerprint. A file that is not a
    scenes parquet is a UserError."""
    from segzero_plus.data.scenes import scene_from_row

    scenes: list[Any] = []
    inputs: dict[str, str] = {}
    for i, path in enumerate(paths):
        pf = open_parquet(path, "scenes file", SCENE_COLUMNS)
        for pos, row in enumerate(read_table(pf, path).to_pylist()):
            try:
                scenes.append(scene_from_row(row))
            except Exception as exc:  # a corrupt image or mask of one row: PIL/pycocotools raise many types
                scenes.append(UnreadableScene(str(row.get("id") or f"{path}#{pos}"), first_line(exc)))
        inputs[f"scenes[{i}]"] = file_digest(path)
    return scenes, inputs


def scenes_digest(scenes: Sequence[Any]) -> str:
    """Digest of in-memory scenes (ids, pixels, masks): the resume fingerprint of scenes not read from files."""
    h = hashlib.sha256()
    for s in scenes:
        h.update(str(s.scene_id).encode())
        if not isinstance(s, UnreadableScene):
            for arr in (s.image, s.target_mask, *s.distractor_masks):
                h.update(arr.tobytes())
    return h.hexdigest()[:16]


def scene_data_source(base: str, difficulty: str) -> str:
    """``data_source`` of a scene's rows: ``base`` for easy scenes, ``<base>_hard`` for hard ones."""
    return base if difficulty == "easy" else f"{base}_{difficulty}"


def _training_chunk(
    items: Sequence[tuple[int, Any]], *, options: TrainingOptions, split: str
) -> dio.ChunkOutput:
    out = dio.ChunkOutput(rows=[])
    for index, scene in items:
        rid = scene_row_id(scene.scene_id, split)
        if isinstance(scene, UnreadableScene):
            out.skip([rid], f"unreadable scene row: {scene.reason}", "skipped_bad_row")
            continue
        model_hw = model_size((scene.height, scene.width), options.resize)
        geom = rows_geometry(out, [rid], scene.target_mask, scene.distractor_masks, model_hw)
        if geom is None:
            continue
        png = encode_png(resize_image(scene.image, model_hw), options.png_compress_level)
        source = scene_data_source(options.data_source, scene.difficulty)
        out.rows.append(
            geometry_row(
                geom,
                replace(options, data_source=source),
                row_id=rid,
                index=index,
                query=scene.expression,
                image_png=png,
                model_hw=model_hw,
                orig_hw=(scene.height, scene.width),
                split=split,
                image_id=scene.scene_id,
            )
        )
    return out


def scenes_to_training_rows(
    scenes: Sequence[Any], options: TrainingOptions | None = None, split: str = "train"
) -> list[dict[str, Any]]:
    """verl training rows (one per scene, ``TRAINING_SCHEMA``) built in memory; ``options.data_source`` is
    the easy scenes' source, hard scenes get ``<source>_hard``."""
    options = options or TrainingOptions(data_source=LOOKALIKE_SOURCE)
    return _training_chunk(list(enumerate(scenes)), options=options, split=split).rows


def write_scenes_training(
    scenes: Sequence[Any],
    out: str | Path,
    *,
    options: TrainingOptions | None = None,
    split: str = "train",
    workers: int = 1,
    chunk_size: int = 64,
    shard_rows: int | None = None,
    inputs: Mapping[str, str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dio.ConversionResult:
    """Write the training parquet of ``scenes`` (resumable, atomic); see :func:`scenes_to_training_rows`.

    ``inputs``: digests of the files the scenes came from (:func:`read_scenes_inputs`); by default the
    scenes' own content is hashed."""
    options = options or TrainingOptions(data_source=LOOKALIKE_SOURCE)
    work = list(enumerate(scenes))
    return dio.convert_to_parquet(
        work,
        functools.partial(_training_chunk, options=options, split=split),
        out,
        TRAINING_SCHEMA,
        chunk_size=chunk_size,
        params={"kind": "scenes_training", "split": split, **options.__dict__},
        inputs=inputs or {"scenes": scenes_digest(scenes)},
        overwrite=overwrite,
        work_ids=[s.scene_id for s in scenes],
        workers=workers,
        shard_rows=shard_rows,
        id_of=lambda r: r["extra_info"]["id"],
        desc="scenes -> training rows",
        progress=progress,
    )


def _eval_chunk(scenes: Sequence[Any], *, split: str, data_source: str, png_level: int) -> dio.ChunkOutput:
    out = dio.ChunkOutput(rows=[])
    for s in scenes:
        rid = scene_row_id(s.scene_id, split)
        if isinstance(s, UnreadableScene):
            out.skip([rid], f"unreadable scene row: {s.reason}", "skipped_bad_row")
            continue
        out.rows.append(
            eval_row(
                id=rid,
                data_source=scene_data_source(data_source, s.difficulty),
                split=split,
                image=encode_png(s.image, png_level),
                query=s.expression,
                mask=encode_rle(s.target_mask),
                ignore=None,
                image_id=s.scene_id,
                height=s.height,
                width=s.width,
            )
        )
    return out


def scenes_to_eval_rows(
    scenes: Sequence[Any], split: str = "val", data_source: str = LOOKALIKE_SOURCE, png_level: int = 1
) -> list[dict[str, Any]]:
    """Evaluation rows (``EVAL_SCHEMA``): ORIGINAL image PNG, target mask RLE, no ignore region;
    ``data_source`` for easy scenes, ``<data_source>_hard`` for hard ones."""
    return _eval_chunk(scenes, split=split, data_source=data_source, png_level=png_level).rows


def write_scenes_eval(
    scenes: Sequence[Any],
    out: str | Path,
    *,
    split: str = "val",
    data_source: str = LOOKALIKE_SOURCE,
    png_level: int = 1,
    chunk_size: int = 64,
    inputs: Mapping[str, str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dio.ConversionResult:
    """Write the evaluation parquet of ``scenes`` (resumable, atomic); ``inputs`` as for
    :func:`write_scenes_training`."""
    return dio.convert_to_parquet(
        list(scenes),
        functools.partial(_eval_chunk, split=split, data_source=data_source, png_level=png_level),
        out,
        EVAL_SCHEMA,
        chunk_size=chunk_size,
        params={"kind": "scenes_eval", "split": split, "data_source": data_source, "png": png_level},
        inputs=inputs or {"scenes": scenes_digest(scenes)},
        overwrite=overwrite,
        work_ids=[s.scene_id for s in scenes],
        desc="scenes -> eval rows",
        progress=progress,
    )
