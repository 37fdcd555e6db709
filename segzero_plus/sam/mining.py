"""Confused-region mining: where SAM, given the right prompts, still leaks into look-alike background.

Three sources per ground-truth object, all from ONE image encode (the scorer's cache; rows that share
an image share the encode too), all in the row's frame (the MODEL frame of a training row):

1. ``oracle_fp``: SAM(gt box, gt positive points) minus the gt mask (SAM's false positives even when
   prompted perfectly);
2. ``sampled``: the seed plan's probe: ``n_samples`` positive points drawn (seeded) outside the gt mask in
   its box grown by ``margin`` px; every multimask output with predicted IoU > ``score_threshold`` minus
   the gt mask. The points are decoded together in batched decoder calls (one call when the scorer's
   ``max_batch`` >= ``n_samples``), never with a ``set_image`` per point as the plan did;
3. ``distractors``: the union of same-category instance masks when the annotations have them (RefCOCO:
   the other COCO instances of the target's category) minus the gt mask.

``union`` = their union. By construction every map is disjoint from the gt mask.

Each row's stats count, per map, the components the geometry negative reward would pay a negative for
(:mod:`segzero_plus.rewards.confused`: whole 4-connected components with a pixel within ``near_px`` of
the target's box, outside ``clearance_px`` of the target, of at least ``min_area_px`` pixels). The
summary's ``coverage`` is the share of rows with at least one such component in ``union``; a row whose
only confused pixels are SAM's slop hugging the target, a speck or a far-away distractor gives the
reward nothing to pay, so it is not covered (``coverage_any_pixel`` counts any confused pixel).

:func:`mine_parquet` runs this over a training parquet (docs/CONVENTIONS.md): it fills
``confused_mask`` in ``reward_model.ground_truth`` and the per-source ``confused_regions`` column. It is
seeded (each row's draws depend only on the seed and the row id), parallel over GPUs through Ray actors,
and writes its output and a coverage summary atomically. Rows that already have ``confused_regions`` are
skipped unless ``remine``.

Resuming: finished shards live in ``<output>.mining/`` beside a fingerprint of the input's bytes, the
checkpoint file and the options; a rerun resumes only when they match, and otherwise stops with one line
naming what changed (``overwrite`` starts over). An existing output is replaced only when the shards
match (it is this run's), when mining in place, or with ``overwrite``, and only after every shard is
done; one run at a time per output (a lock). Rows that cannot be mined (an undecodable image, a bad
ground truth) are left unchanged, counted and listed by id in the summary; one bad row never stops the
job.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_plus.data.inputs import open_parquet, read_table
from segzero_plus.data.io import atomic_write_bytes
from segzero_plus.data.outputs import (
    Fingerprint,
    file_digest,
    json_digest,
    output_lock,
    staged_path,
    stat_digest,
)
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.devices import resolve_device
from segzero_plus.errors import UserError
from segzero_plus.rewards.config import RewardConfig
from segzero_plus.rewards.confused import confused_components

logger = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("oracle_fp", "sampled", "distractors")


@dataclass(frozen=True)
class MiningConfig:
    """Mining knobs (pixel values in the row's frame).

    Attributes:
        n_samples: points probed around the object (the plan used 5).
        margin: px the gt box is grown by to make the sampling region (the plan: 80 at 840x840).
        max_tries: draws per point to land outside the gt mask (the plan: 5); a point that never does
            is dropped.
        score_threshold: keep a sampled multimask output whose predicted IoU exceeds this (the plan: 0.5).
        sources: which sources make up ``union``.
        near_px, clearance_px, min_area_px: the geometry reward's component rule used to count each
            map's payable components (defaults: ``RewardConfig``'s ``confused_near_px``,
            ``confused_clearance_px``, ``min_confused_area_px``).
    """

    n_samples: int = 5
    margin: float = 80.0
    max_tries: int = 5
    score_threshold: float = 0.5
    sources: tuple[str, ...] = SOURCES
    near_px: float = RewardConfig.confused_near_px
    clearance_px: float = RewardConfig.confused_clearance_px
    min_area_px: int = RewardConfig.min_confused_area_px

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown mining sources {sorted(unknown)}; choose from {SOURCES}")
        if min(self.near_px, self.clearance_px, self.min_area_px) < 0:
            raise ValueError("MiningConfig: near_px, clearance_px and min_area_px must be >= 0")


@dataclass
class ConfusedRegions:
    """Mined maps, (H, W) bool each, in the row's frame, plus counts."""

    union: np.ndarray
    oracle_fp: np.ndarray
    sampled: np.ndarray
    distractors: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The ``confused_regions`` column: per-source RLEs plus stats."""
        from segzero_plus.masks import encode_rle

        payload = {name: encode_rle(getattr(self, name)) for name in ("union", *SOURCES)}
        payload["stats"] = self.stats
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def sample_probe_points(
    gt_mask: np.ndarray, config: MiningConfig, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """The plan's probe: integer (x, y) points outside ``gt_mask`` inside its box grown by ``margin``
    (clipped to the image); up to ``max_tries`` draws per point (x uniform in [x1-margin, x2+margin))."""
    from segzero_plus.geometry import mask_bbox

    h, w = gt_mask.shape
    box = mask_bbox(gt_mask)
    if box is None:
        return []
    x1, y1, x2, y2 = box
    lo_x, hi_x = max(0, int(x1 - config.margin)), min(w, int(x2 + config.margin))
    lo_y, hi_y = max(0, int(y1 - config.margin)), min(h, int(y2 + config.margin))
    xs = rng.integers(lo_x, max(hi_x, lo_x + 1), size=(config.n_samples, config.max_tries))
    ys = rng.integers(lo_y, max(hi_y, lo_y + 1), size=(config.n_samples, config.max_tries))
    points = []
    for i in range(config.n_samples):
        outside = ~gt_mask[ys[i], xs[i]]
        if outside.any():
            j = int(np.argmax(outside))
            points.append((float(xs[i, j]), float(ys[i, j])))
    return points


def mine_confused_regions(
    scorer: Any,
    image_key: str,
    image: np.ndarray | None,
    gt_mask: np.ndarray,
    gt_box: Sequence[float] | None = None,
    gt_points: Sequence[Sequence[float]] | None = None,
    distractor_masks: Sequence[np.ndarray] = (),
    config: MiningConfig = MiningConfig(),
    seed: int | Sequence[int] = 0,
) -> ConfusedRegions:
    """Mine one object's confused regions with ONE image encode (none if cached) and a few decoder calls.

    Args:
        scorer: a :class:`~segzero_plus.sam.scorer.SamScorer` (or anything with its ``score_many``).
        image_key, image: as for ``SamScorer.score`` (image may be None if cached).
        gt_mask: (H, W) bool target mask in the image frame.
        gt_box: XYXY inclusive; default the mask's extents.
        gt_points: positive points (x, y); default two inscribed-circle centres of the mask.
        distractor_masks: same-category instance masks (H, W) bool.
        seed: seed (or seed sequence) of the probe-point draws.
    """
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
    from segzero_plus.sam.scorer import PromptSet, ScoreRequest

    gt = np.asarray(gt_mask, dtype=bool)
    h, w = gt.shape
    empty = np.zeros((h, w), dtype=bool)
    if gt_box is None:
        gt_box = mask_bbox(gt)
    if gt_points is None:
        gt_points = inscribed_circle_centres(gt, n=2)
    probe = (
        sample_probe_points(gt, config, np.random.default_rng(seed)) if "sampled" in config.sources else []
    )

    requests = []
    if "oracle_fp" in config.sources and (gt_box is not None or gt_points):
        requests.append(ScoreRequest(image_key, image, [PromptSet.make(gt_box, gt_points)], out_hw=(h, w)))
    if probe:
        prompts = [PromptSet.make(None, [p]) for p in probe]
        requests.append(ScoreRequest(image_key, image, prompts, out_hw=(h, w), multimask=True))
    results = scorer.score_many(requests) if requests else []

    oracle_fp, sampled = empty.copy(), empty.copy()
    kept = 0
    if "oracle_fp" in config.sources and requests and not requests[0].multimask:
        oracle_fp = results[0][0].mask & ~gt
    if probe:
        for res in results[-1]:
            for m, score in zip(res.masks, res.iou_preds, strict=True):
                if score > config.score_threshold:
                    sampled |= m
                    kept += 1
        sampled &= ~gt
    distractors = empty.copy()
    if "distractors" in config.sources:
        for dm in distractor_masks:
            distractors |= np.asarray(dm, dtype=bool)
        distractors &= ~gt
    union = empty.copy()
    for name, m in (("oracle_fp", oracle_fp), ("sampled", sampled), ("distractors", distractors)):
        if name in config.sources:
            union |= m
    stats = {
        "union_area": int(union.sum()),
        "oracle_fp_area": int(oracle_fp.sum()),
        "sampled_area": int(sampled.sum()),
        "distractors_area": int(distractors.sum()),
        "gt_area": int(gt.sum()),
        "n_probe_points": len(probe),
        "n_sampled_masks_kept": kept,
        "n_distractors": len(distractor_masks),
    }
    gt_extent = mask_bbox(gt)
    for name, m in (
        ("union", union),
        ("oracle_fp", oracle_fp),
        ("sampled", sampled),
        ("distractors", distractors),
    ):
        comps = confused_components(gt, m, config.near_px, config.min_area_px, config.clearance_px, gt_extent)
        stats[f"{name}_components"] = comps.count
        if name == "union":
            stats["union_counted_area"] = int(np.count_nonzero(comps.labels))
    return ConfusedRegions(
        union=union, oracle_fp=oracle_fp, sampled=sampled, distractors=distractors, stats=stats
    )


# ====================================================================== parquet pass
def _row_seed(seed: int, row_id: str | None, position: int) -> list[int]:
    """Per-row seed sequence: depends only on the global seed and the row id (or position)."""
    return [int(seed), zlib.crc32(row_id.encode()) if row_id else int(position)]


@dataclass(frozen=True)
class _Shard:
    index: int
    start: int  # row positions [start, stop) of the input file
    stop: int


def _plan_shards(image_keys: list[str], shard_rows: int) -> list[_Shard]:
    """Contiguous shards of ~shard_rows rows that never split a run of equal image keys."""
    shards, start, n = [], 0, len(image_keys)
    while start < n:
        stop = min(n, start + shard_rows)
        while stop < n and image_keys[stop] == image_keys[stop - 1]:
            stop += 1
        shards.append(_Shard(len(shards), start, stop))
        start = stop
    return shards


def _read_rows(path: str, start: int, stop: int, columns: list[str]) -> list[dict[str, Any]]:
    """Rows [start, stop) of a parquet file, reading only the row groups that hold them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    groups, offset, first = [], 0, None
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if not groups:
        return []
    table: pa.Table = pf.read_row_groups(groups, columns=columns)
    return table.slice(start - first, stop - start).to_pylist()


class _ShardMiner:
    """Mines shards of one parquet file with one scorer (in-process, or as a Ray actor body)."""

    def __init__(
        self,
        config_name: str,
        checkpoint: str | None,
        device: str,
        seed: int,
        cache_size: int,
        torch_threads: int | None = None,
    ) -> None:
        import torch

        from segzero_plus.sam.build import build_sam2_model
        from segzero_plus.sam.scorer import SamScorer

        if torch_threads:
            torch.set_num_threads(int(torch_threads))
        self.scorer = SamScorer(
            build_sam2_model(config_name, checkpoint, device=resolve_device(device), seed=seed),
            cache_size=cache_size,
        )

    def mine_shard(
        self,
        input_path: str,
        shard: _Shard,
        out_file: str,
        fp: str,
        config: MiningConfig,
        seed: int,
        remine: bool,
    ) -> dict[str, int]:
        """Mine rows [start, stop) and write ``{fingerprint, ids, rows: {position: [gt_json, regions_json]},
        bad: {position: [row id, reason]}, ...}``. A row whose data cannot be mined is recorded as bad
        (and left unchanged by the merge) instead of stopping the shard."""
        columns = ["images", "reward_model", "extra_info", "confused_regions"]
        rows = _read_rows(input_path, shard.start, shard.stop, columns)
        shard_rows = _ShardRows(shard.start)
        prepared = shard_rows.prepare(rows, remine)
        before = self.scorer.stats.images_encoded
        decoded: tuple[str, np.ndarray | str] | None = None
        for key, position, row, gt, png in prepared:
            if decoded is None or decoded[0] != key:
                decoded = (key, _decode_row_image(png))
            image = decoded[1]
            try:
                if isinstance(image, str):
                    raise ValueError(image)
                regions = self._mine_row(
                    key, image, gt, _row_seed(seed, shard_rows.ids[position], position), config
                )
            except _ROW_ERRORS as exc:
                shard_rows.bad[str(position)] = [shard_rows.ids[position], str(exc).splitlines()[0]]
                continue
            shard_rows.mined[str(position)] = [
                _with_confused(row["reward_model"]["ground_truth"], regions.union),
                regions.to_json(),
            ]
        payload = {
            "fingerprint": fp,
            "start": shard.start,
            "stop": shard.stop,
            "images_encoded": self.scorer.stats.images_encoded - before,
            **shard_rows.to_json(),
        }
        atomic_write_bytes(out_file, json.dumps(payload).encode())
        return {
            "rows": shard.stop - shard.start,
            "mined": len(shard_rows.mined),
            "bad": len(shard_rows.bad),
            "images_encoded": payload["images_encoded"],
        }

    def _mine_row(
        self, key: str, image: np.ndarray, gt: dict[str, Any], seed: list[int], config: MiningConfig
    ) -> ConfusedRegions:
        from segzero_plus.masks import decode_rle

        mask = decode_rle(gt["mask"])
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {mask.shape} and image {image.shape[:2]} frames differ")
        return mine_confused_regions(
            self.scorer,
            key,
            image,
            mask,
            gt_box=gt["bbox"],
            gt_points=gt["points"],
            distractor_masks=[decode_rle(m) for m in gt["distractor_masks"]],
            config=config,
            seed=seed,
        )


_ROW_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
"""What bad row data raises while a row is read or mined (SchemaError and ImageDecodeError are
ValueErrors); anything else (out of memory, a dead GPU) stops the job, which resumes from its shards."""


@dataclass
class _ShardRows:
    """Bookkeeping of one shard: row ids by position, mined results, bad rows and rows left alone."""

    start: int
    ids: dict[int, str] = field(default_factory=dict)
    mined: dict[str, list[str]] = field(default_factory=dict)
    bad: dict[str, list[str]] = field(default_factory=dict)
    no_mask: int = 0
    already_mined: int = 0

    def prepare(self, rows: list[dict[str, Any]], remine: bool) -> list[tuple[str, int, dict, dict, bytes]]:
        """(image key, position, row, ground truth, image bytes) of the rows to mine, image by image."""
        from segzero_plus.data.schema import loads_ground_truth
        from segzero_plus.data.validation import coordinates_problem

        prepared = []
        for offset, row in enumerate(rows):
            position = self.start + offset
            self.ids[position] = str((row.get("extra_info") or {}).get("id") or f"#{position}")
            if row.get("confused_regions") and not remine:
                self.already_mined += 1  # e.g. the input is an earlier output
                continue
            try:
                gt = loads_ground_truth((row.get("reward_model") or {}).get("ground_truth"))
                if gt["mask"] is None:
                    self.no_mask += 1
                    continue
                problem = coordinates_problem(
                    [*gt["bbox"], *(v for p in gt["points"] for v in p)], "ground truth"
                )
                if problem:
                    raise ValueError(problem)
                png = (row.get("images") or [{}])[0]["bytes"]
            except _ROW_ERRORS as exc:
                self.bad[str(position)] = [self.ids[position], str(exc).splitlines()[0]]
                continue
            prepared.append((stable_image_key_bytes(png or b""), position, row, gt, png))
        prepared.sort(key=lambda item: (item[0], item[1]))  # rows of one image back to back: one encode
        return prepared

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": {str(k): v for k, v in self.ids.items()},
            "rows": self.mined,
            "bad": self.bad,
            "no_mask": self.no_mask,
            "already_mined": self.already_mined,
        }


def _decode_row_image(data: bytes | None) -> np.ndarray | str:
    """The row's (H, W, 3) image, or why it does not decode."""
    from segzero_plus.data.images import ImageDecodeError, decode_image

    try:
        return decode_image(data).array
    except ImageDecodeError as exc:
        return str(exc)


def _with_confused(gt_json: str, union: np.ndarray) -> str:
    from segzero_plus.data.schema import with_confused_mask
    from segzero_plus.masks import encode_rle

    return with_confused_mask(gt_json, encode_rle(union))


def stable_image_key_bytes(data: bytes) -> str:
    """Key of an encoded image (sha1 of its bytes): equal PNGs share one SAM encode."""
    import hashlib

    return hashlib.sha1(data).hexdigest()


def _share(stats: list[dict[str, Any]], key: str) -> float:
    """Share of ``stats`` whose ``key`` is positive (0.0 for no rows)."""
    return sum(1 for s in stats if s[key] > 0) / len(stats) if stats else 0.0


def _summarise(output_path: str) -> dict[str, Any]:
    """Coverage over the rows of the written file: share of rows with a component the reward pays for
    (per source too), and share with any confused pixel. Rows mined before component counts existed are
    reported in ``rows_without_component_stats`` and left out of the component shares."""
    import pyarrow.parquet as pq

    regions = pq.read_table(output_path, columns=["confused_regions"]).column("confused_regions").to_pylist()
    n = len(regions)
    mined = [json.loads(r)["stats"] for r in regions if r]
    counted = [s for s in mined if "union_components" in s]
    if len(counted) < len(mined):
        logger.warning(
            "%d mined rows have no component counts (mined by an older version)", len(mined) - len(counted)
        )
    return {
        "rows": n,
        "rows_with_regions": len(mined),
        "rows_without_component_stats": len(mined) - len(counted),
        "coverage": _share(counted, "union_components"),
        "coverage_by_source": {src: _share(counted, f"{src}_components") for src in SOURCES},
        "coverage_any_pixel": _share(mined, "union_area"),
        "mean_union_fraction_of_gt": float(np.mean([s["union_area"] / max(1, s["gt_area"]) for s in mined]))
        if mined
        else 0.0,
    }


TRAINING_COLUMNS: tuple[str, ...] = ("images", "reward_model", "extra_info")
FINGERPRINT_FILE = "fingerprint.json"


def _mining_fingerprint(
    input_path: str, checkpoint: str | None, options: dict[str, Any]
) -> tuple[Fingerprint, str]:
    """The resume fingerprint of a mining run (input bytes, checkpoint file, options) and its digest."""
    inputs = {"parquet": file_digest(input_path)}
    if checkpoint is not None:
        inputs["sam_checkpoint"] = stat_digest([checkpoint])
    fp = Fingerprint(inputs=inputs, options=options)
    return fp, json_digest(fp.to_json())


def _open_work_dir(work_dir: Path, fp: Fingerprint, output: Path, in_place: bool, overwrite: bool) -> None:
    """Check (or start) the shard folder of this run; see :func:`mine_parquet` for the rules."""
    record = work_dir / FINGERPRINT_FILE
    if work_dir.exists() and overwrite:
        shutil.rmtree(work_dir)
    elif work_dir.exists():
        try:
            recorded = json.loads(record.read_text())
        except (OSError, ValueError):
            recorded = None
        fp.check(recorded, work_dir, "pass --overwrite (or delete that folder)")
    elif output.exists() and not in_place and not overwrite:
        raise UserError(
            f"{output} exists and no mining run of these inputs wrote it; pass --overwrite to replace it "
            "(it is replaced only when mining succeeds) or choose another --output"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    if not record.exists():
        atomic_write_bytes(record, json.dumps(fp.to_json(), sort_keys=True).encode())


def _run_shards(
    todo: list[_Shard],
    shard_file: Any,
    call_args: tuple,
    miner_args: tuple,
    *,
    num_workers: int,
    device: str,
    bar: Any,
) -> dict[str, int]:
    """Mine the shards ``todo`` in this process or on ``num_workers`` Ray actors; summed counts."""
    totals = {"mined": 0, "images_encoded": 0}

    def done(s: _Shard, result: dict[str, int]) -> None:
        for k in totals:
            totals[k] += result[k]
        bar.update(s.stop - s.start)

    if num_workers <= 0:
        miner = _ShardMiner(*miner_args)
        for s in todo:
            done(s, miner.mine_shard(call_args[0], s, str(shard_file(s)), *call_args[1:]))
        return totals
    import ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False)
    use_gpu = resolve_device(device).startswith("cuda")
    actor_cls = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1)(_ShardMiner)
    actors = [actor_cls.remote(*miner_args) for _ in range(min(num_workers, len(todo)))]
    queue, in_flight = list(todo), {}

    def submit(actor: Any) -> None:
        s = queue.pop(0)
        in_flight[actor.mine_shard.remote(call_args[0], s, str(shard_file(s)), *call_args[1:])] = (actor, s)

    for actor in actors:
        if queue:
            submit(actor)
    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        actor, s = in_flight.pop(ready[0])
        done(s, ray.get(ready[0]))
        if queue:
            submit(actor)
    for actor in actors:
        ray.kill(actor)
    return totals


def _merge(input_path: str, output_path: Path, payloads: list[dict[str, Any]]) -> None:
    """Stream the input row group by row group into a staged output with the mined rows' two fields
    replaced, then move it onto ``output_path``. Row ids are checked against the shards' record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    updates: dict[int, list[str]] = {}
    ids: dict[int, str] = {}
    for payload in payloads:
        updates.update((int(k), v) for k, v in payload["rows"].items())
        ids.update((int(k), v) for k, v in payload.get("ids", {}).items())
    pf = pq.ParquetFile(input_path)
    schema = pf.schema_arrow
    if "confused_regions" not in schema.names:
        schema = schema.append(pa.field("confused_regions", pa.string()))
    tmp = staged_path(output_path)
    offset = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for g in range(pf.num_row_groups):
                rows = pf.read_row_group(g).to_pylist()
                for i, row in enumerate(rows):
                    row.setdefault("confused_regions", None)
                    rid = str((row.get("extra_info") or {}).get("id") or f"#{offset + i}")
                    if ids.get(offset + i, rid) != rid:
                        raise UserError(
                            f"mining shards do not match row {offset + i} of {input_path} ({ids[offset + i]!r} "
                            f"recorded, {rid!r} found); rerun with --overwrite"
                        )
                    if offset + i in updates:
                        gt_json, regions_json = updates[offset + i]
                        row["reward_model"] = {**row["reward_model"], "ground_truth": gt_json}
                        row["confused_regions"] = regions_json
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                offset += len(rows)
        os.replace(tmp, output_path)
    finally:
        tmp.unlink(missing_ok=True)


def _row_counts(payloads: list[dict[str, Any]], max_ids: int = 20) -> dict[str, Any]:
    """Rows the merge left unchanged, by reason: bad rows by id and reason, rows without a mask, rows
    mined earlier."""
    bad = [pair for p in payloads for pair in p.get("bad", {}).values()]
    return {
        "bad_rows": len(bad),
        "bad_row_ids": bad[:max_ids],
        "rows_without_mask": sum(p.get("no_mask", 0) for p in payloads),
        "rows_mined_earlier": sum(p.get("already_mined", 0) for p in payloads),
    }


def mine_parquet(
    input_path: str | Path,
    output_path: str | Path,
    *,
    config_name: str = "sam2.1_hiera_l",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    model_seed: int = 0,
    config: MiningConfig = MiningConfig(),
    seed: int = 0,
    shard_rows: int = 256,
    num_workers: int = 0,
    remine: bool = False,
    overwrite: bool = False,
    cache_size: int = 8,
    torch_threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fill ``confused_mask`` and ``confused_regions`` of a training parquet; returns the summary.

    Args:
        input_path, output_path: training parquet in, parquet out (may be the same file: written via a
            staged file and rename). The summary goes to ``<output>.summary.json``.
        config_name, checkpoint, device, model_seed: the SAM2 model (see ``build_sam2_model``).
        config, seed: mining knobs and the seed of the probe points.
        shard_rows: rows per unit of work (a resumed run skips finished shards).
        num_workers: 0 = in this process; N >= 1 = N Ray actors (one GPU each when ``device`` is cuda,
            or auto with CUDA visible; one CPU each otherwise). Needs ``ray.init`` or starts a local Ray.
        remine: re-mine rows that already have ``confused_regions``.
        overwrite: replace an existing ``output_path`` that this run's shards did not make, and discard
            shards of another run (see the module docstring for resuming).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    input_path, output = str(input_path), Path(output_path)
    checkpoint = None if checkpoint is None else str(checkpoint)
    if shard_rows < 1:
        raise UserError(f"shard rows must be >= 1, got {shard_rows}")
    pf = open_parquet(input_path, "training parquet", TRAINING_COLUMNS, TRAINING_SCHEMA)
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; give a .parquet file name")
    in_place = output.resolve() == Path(input_path).resolve()
    options = {
        "sam_config": config_name,
        "model_seed": model_seed,
        "mining": asdict(config),
        "seed": seed,
        "remine": remine,
        "shard_rows": shard_rows,
    }
    with output_lock(output):
        meta = read_table(pf, input_path, ["extra_info"]).column("extra_info").to_pylist()
        keys = [((e or {}).get("image_id") or f"row{i}") for i, e in enumerate(meta)]
        shards = _plan_shards(keys, shard_rows)
        fp, fp_digest = _mining_fingerprint(input_path, checkpoint, options)
        work_dir = Path(str(output) + ".mining")
        _open_work_dir(work_dir, fp, output, in_place, overwrite)

        def shard_file(s: _Shard) -> Path:
            return work_dir / f"shard_{s.index:05d}_{s.start}_{s.stop}.json"

        payloads = {s.index: _read_payload(shard_file(s), fp_digest) for s in shards}
        todo = [s for s in shards if payloads[s.index] is None]
        bar = tqdm(total=len(keys), desc="mining", unit="row", disable=not progress)
        bar.update(sum(s.stop - s.start for s in shards if payloads[s.index] is not None))
        miner_args = (config_name, checkpoint, device, model_seed, cache_size, torch_threads)
        call_args = (input_path, fp_digest, config, seed, remine)
        try:
            totals = (
                _run_shards(
                    todo, shard_file, call_args, miner_args, num_workers=num_workers, device=device, bar=bar
                )
                if todo
                else {"mined": 0, "images_encoded": 0}
            )
        finally:
            bar.close()
        done = [_read_payload(shard_file(s), fp_digest) for s in shards]
        _merge(input_path, output, done)
        if in_place:  # the input is now the output: its shards describe an input that no longer exists
            shutil.rmtree(work_dir, ignore_errors=True)
        summary = _write_summary(
            output, shards, todo, totals, done, time.perf_counter() - t0, options, checkpoint
        )
    logger.info("mined %s: coverage %.3f over %d rows", output, summary["coverage"], summary["rows"])
    return summary


def _write_summary(
    output: Path,
    shards: list[_Shard],
    todo: list[_Shard],
    totals: dict[str, int],
    payloads: list[dict[str, Any]],
    wall_s: float,
    options: dict[str, Any],
    checkpoint: str | None,
) -> dict[str, Any]:
    """Coverage of the written file plus this session's counts and the rows left unchanged, written
    atomically to ``<output>.summary.json``."""
    summary = _summarise(str(output))
    summary.update(
        shards=len(shards),
        resumed_shards=len(shards) - len(todo),
        rows_mined_now=totals["mined"],
        images_encoded_now=totals["images_encoded"],
        **_row_counts(payloads),
        wall_s=round(wall_s, 3),
        config=options["mining"],
        seed=options["seed"],
        sam_config=options["sam_config"],
        checkpoint=checkpoint,
    )
    atomic_write_bytes(Path(str(output) + ".summary.json"), (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _read_payload(path: Path, fp_digest: str) -> dict[str, Any] | None:
    """A finished shard of this run (matching fingerprint digest), or None (missing, torn or stale)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("fingerprint") == fp_digest else None


# ====================================================================== CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    """``segzero-plus mine-confused``: see :func:`mine_parquet`."""
    p = subparsers.add_parser("mine-confused", help="mine SAM2 confused regions into a training parquet")
    add_arguments(p)
    p.set_defaults(func=_cli)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from segzero_plus.arguments import (
        fraction,
        non_negative_float,
        non_negative_int,
        positive_int,
        sam_config_name,
    )

    p.add_argument("--input", required=True, help="training parquet (docs/CONVENTIONS.md)")
    p.add_argument("--output", help="output parquet (default: fill the input in place)")
    p.add_argument("--sam-config", type=sam_config_name, default="sam2.1_hiera_l")
    p.add_argument(
        "--sam-checkpoint", help="SAM2 {'model': state_dict} file (required unless --random-weights)"
    )
    p.add_argument("--random-weights", action="store_true", help="random SAM2 weights (smoke tests only)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="Ray actors (one GPU each on CUDA); 0 = in-process",
    )
    p.add_argument("--shard-rows", type=positive_int, default=256)
    p.add_argument("--n-samples", type=non_negative_int, default=MiningConfig.n_samples)
    p.add_argument("--margin", type=non_negative_float, default=MiningConfig.margin)
    p.add_argument("--score-threshold", type=fraction, default=MiningConfig.score_threshold)
    p.add_argument("--sources", type=_sources, default=SOURCES, help="comma list of " + ",".join(SOURCES))
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--remine", action="store_true", help="re-mine rows that already have confused_regions")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output this run did not write, and discard shards of another run",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")


def _sources(text: str) -> tuple[str, ...]:
    chosen = tuple(s for s in text.split(",") if s)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown or no sources {unknown or text!r}; choose from {','.join(SOURCES)}"
        )
    return chosen


def _cli(args: argparse.Namespace) -> int:
    if not args.sam_checkpoint and not args.random_weights:
        raise UserError("--sam-checkpoint is required (or --random-weights for a smoke test)")
    if args.sam_checkpoint and not Path(args.sam_checkpoint).is_file():
        raise UserError(f"SAM2 checkpoint not found: {args.sam_checkpoint}")
    config = MiningConfig(
        n_samples=args.n_samples,
        margin=args.margin,
        score_threshold=args.score_threshold,
        sources=args.sources,
    )
    summary = mine_parquet(
        args.input,
        args.output or args.input,
        config_name=args.sam_config,
        checkpoint=args.sam_checkpoint,
        device=args.device,
        config=config,
        seed=args.seed,
        shard_rows=args.shard_rows,
        num_workers=args.workers,
        remine=args.remine,
        overwrite=args.overwrite,
        torch_threads=args.threads,
        progress=not args.no_progress,
    )
    keys = (
        "rows",
        "coverage",
        "coverage_by_source",
        "coverage_any_pixel",
        "bad_rows",
        "bad_row_ids",
        "rows_without_mask",
        "wall_s",
    )
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0
