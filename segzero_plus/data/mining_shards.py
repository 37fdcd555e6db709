"""Mining the rows of one shard of a training parquet (a contiguous range of rows), in this process or
on Ray actors: what :func:`segzero_plus.data.mining.mine_parquet` fans out.

A shard's rows are read from the row groups that hold them and their ground truth is checked; rows that
hold the same image (equal PNG bytes) are mined back to back, so the scorer encodes each image once (its
key is :func:`segzero_plus.sam.scorer.stable_image_key` of the decoded pixels). Each row's draws depend
only on the seed and the row id. A row whose data cannot be mined (an undecodable image, a bad ground
truth) is recorded as bad with its reason and never stops the shard; a shard's result is written
atomically as one JSON file.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from segzero_plus.data.images import ImageDecodeError, decode_image
from segzero_plus.data.io import atomic_write_bytes
from segzero_plus.data.schema import loads_ground_truth, with_confused_mask
from segzero_plus.data.validation import coordinates_problem
from segzero_plus.devices import resolve_device
from segzero_plus.masks import decode_rle, encode_rle
from segzero_plus.sam.mining import ConfusedRegions, MiningConfig, mine_confused_regions

ROW_COLUMNS: list[str] = ["images", "reward_model", "extra_info", "confused_regions"]
"""The columns a shard reads."""

ROW_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
"""What bad row data raises while a row is read or mined (SchemaError and ImageDecodeError are
ValueErrors); anything else (out of memory, a dead GPU) stops the job, which resumes from its shards."""


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of the input file, the ``index``-th unit of work of a mining run."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class MinerSpec:
    """How a shard miner builds its SAM2 scorer (plain values: the spec travels to Ray actors)."""

    config_name: str
    checkpoint: str | None
    device: str
    seed: int
    cache_size: int
    torch_threads: int | None = None


@dataclass(frozen=True)
class ShardTask:
    """What every shard of one mining run shares: the input file, the run's fingerprint digest (written
    into each shard file), the mining knobs, the probe seed and whether mined rows are mined again."""

    input_path: str
    fingerprint: str
    config: MiningConfig
    seed: int
    remine: bool


def row_seed(seed: int, row_id: str | None, position: int) -> list[int]:
    """Per-row seed sequence: depends only on the global seed and the row id (or position)."""
    return [int(seed), zlib.crc32(row_id.encode()) if row_id else int(position)]


def read_rows(path: str, start: int, stop: int, columns: list[str]) -> list[dict[str, Any]]:
    """Rows [start, stop) of a parquet file, reading only the row groups that hold them."""
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
    table = pf.read_row_groups(groups, columns=columns)
    return table.slice(start - first, stop - start).to_pylist()


@dataclass(frozen=True)
class _RowToMine:
    position: int
    row: dict[str, Any]
    gt: dict[str, Any]
    png: bytes


@dataclass
class ShardRows:
    """Bookkeeping of one shard: row ids by position, mined results, bad rows and rows left alone."""

    start: int
    ids: dict[int, str] = field(default_factory=dict)
    mined: dict[str, list[str]] = field(default_factory=dict)
    bad: dict[str, list[str]] = field(default_factory=dict)
    no_mask: int = 0
    already_mined: int = 0

    def prepare(self, rows: list[dict[str, Any]], remine: bool) -> list[_RowToMine]:
        """The rows to mine, those holding the same image back to back (one encode per image)."""
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
            except ROW_ERRORS as exc:
                self.mark_bad(position, exc)
                continue
            prepared.append(_RowToMine(position, row, gt, png or b""))
        prepared.sort(key=lambda item: (item.png, item.position))
        return prepared

    def mark_bad(self, position: int, exc: BaseException) -> None:
        self.bad[str(position)] = [self.ids[position], str(exc).splitlines()[0]]

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": {str(k): v for k, v in self.ids.items()},
            "rows": self.mined,
            "bad": self.bad,
            "no_mask": self.no_mask,
            "already_mined": self.already_mined,
        }


class ShardMiner:
    """Mines shards of one parquet file with one scorer (in-process, or as a Ray actor body)."""

    def __init__(self, spec: MinerSpec) -> None:
        import torch

        from segzero_plus.sam.build import build_sam2_model
        from segzero_plus.sam.scorer import SamScorer

        if spec.torch_threads:
            torch.set_num_threads(int(spec.torch_threads))
        model = build_sam2_model(
            spec.config_name, spec.checkpoint, device=resolve_device(spec.device), seed=spec.seed
        )
        self.scorer = SamScorer(model, cache_size=spec.cache_size)

    def mine_shard(self, task: ShardTask, shard: Shard, out_file: str) -> dict[str, int]:
        """Mine rows [start, stop) and write ``{fingerprint, ids, rows: {position: [gt_json, regions_json]},
        bad: {position: [row id, reason]}, ...}``. A row whose data cannot be mined is recorded as bad
        (and left unchanged by the merge) instead of stopping the shard."""
        from segzero_plus.sam.scorer import stable_image_key

        shard_rows = ShardRows(shard.start)
        prepared = shard_rows.prepare(
            read_rows(task.input_path, shard.start, shard.stop, ROW_COLUMNS), task.remine
        )
        before = self.scorer.stats.images_encoded
        png, image, key = None, None, ""
        for item in prepared:
            if png is None or item.png != png:
                png, image = item.png, _decode_row_image(item.png)
                key = stable_image_key(image) if isinstance(image, np.ndarray) else ""
            try:
                if isinstance(image, str):
                    raise ValueError(image)
                seed = row_seed(task.seed, shard_rows.ids[item.position], item.position)
                regions = self._mine_row(key, image, item.gt, seed, task.config)
            except ROW_ERRORS as exc:
                shard_rows.mark_bad(item.position, exc)
                continue
            shard_rows.mined[str(item.position)] = [
                with_confused_mask(item.row["reward_model"]["ground_truth"], encode_rle(regions.union)),
                regions.to_json(),
            ]
        encoded = self.scorer.stats.images_encoded - before
        payload = {"fingerprint": task.fingerprint, "start": shard.start, "stop": shard.stop}
        payload.update(images_encoded=encoded, **shard_rows.to_json())
        atomic_write_bytes(out_file, json.dumps(payload).encode())
        return {
            "rows": shard.stop - shard.start,
            "mined": len(shard_rows.mined),
            "bad": len(shard_rows.bad),
            "images_encoded": encoded,
        }

    def _mine_row(
        self, key: str, image: np.ndarray, gt: dict[str, Any], seed: list[int], config: MiningConfig
    ) -> ConfusedRegions:
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


def _decode_row_image(data: bytes) -> np.ndarray | str:
    """The row's (H, W, 3) image, or why it does not decode."""
    try:
        return decode_image(data).array
    except ImageDecodeError as exc:
        return str(exc)


def run_shards(
    todo: list[Shard],
    shard_file: Callable[[Shard], Path],
    task: ShardTask,
    spec: MinerSpec,
    *,
    num_workers: int,
    bar: Any,
) -> dict[str, int]:
    """Mine the shards ``todo`` (each into ``shard_file(shard)``) in this process (``num_workers`` 0) or on
    ``num_workers`` Ray actors (one GPU each when ``spec.device`` resolves to CUDA, else one CPU each);
    returns the summed counts and advances the progress ``bar`` by each shard's rows."""
    totals = {"mined": 0, "images_encoded": 0}

    def done(s: Shard, result: dict[str, int]) -> None:
        for k in totals:
            totals[k] += result[k]
        bar.update(s.stop - s.start)

    if num_workers <= 0:
        miner = ShardMiner(spec)
        for s in todo:
            done(s, miner.mine_shard(task, s, str(shard_file(s))))
        return totals
    import ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False)
    use_gpu = resolve_device(spec.device).startswith("cuda")
    actor_cls = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1)(ShardMiner)
    actors = [actor_cls.remote(spec) for _ in range(min(num_workers, len(todo)))]
    queue, in_flight = list(todo), {}

    def submit(actor: Any) -> None:
        s = queue.pop(0)
        in_flight[actor.mine_shard.remote(task, s, str(shard_file(s)))] = (actor, s)

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
