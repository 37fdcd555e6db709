"""The confused-region mining pass over a training parquet (docs/CONVENTIONS.md): every row's object is
mined with :func:`segzero_plus.sam.mining.mine_confused_regions` in the row's MODEL frame, the union is
written into ``confused_mask`` of ``reward_model.ground_truth`` and the per-source maps into the
``confused_regions`` column. Seeded (each row's draws depend only on the seed and the row id), parallel
over GPUs through Ray actors (:mod:`.mining_shards`), and the output and a coverage summary
(``<output>.summary.json``) are written atomically. Rows that already have ``confused_regions`` are
skipped unless ``remine``.

The summary's ``coverage`` is the share of rows with at least one component the geometry negative
reward would pay a negative for in ``union`` (``coverage_by_source`` per map); a row whose only confused
pixels are SAM's slop hugging the target, a speck or a far-away distractor gives the reward nothing to
pay, so it is not covered (``coverage_any_pixel`` counts any confused pixel).

Resuming: finished shards live in ``<output>.mining/`` beside a fingerprint of the input's bytes, the
checkpoint file and the options; a rerun resumes only when they match, and otherwise stops with one line
naming what changed (``overwrite`` starts over). An existing output is replaced only when the shards
match (it is this run's), when mining in place, or with ``overwrite``, and only after every shard is
done; one run at a time per output (a lock). Rows that cannot be mined (an undecodable image, a bad
ground truth) are left unchanged, counted and listed by id in the summary; one bad row never stops the
job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from segzero_plus.data.inputs import open_parquet, read_table
from segzero_plus.data.io import atomic_write_bytes
from segzero_plus.data.mining_shards import MinerSpec, Shard, ShardTask, run_shards
from segzero_plus.data.outputs import (
    Fingerprint,
    file_digest,
    json_digest,
    output_lock,
    staged_path,
    stat_digest,
)
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.errors import UserError
from segzero_plus.sam.mining import SOURCES, MiningConfig
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG

logger = logging.getLogger(__name__)

TRAINING_COLUMNS: tuple[str, ...] = ("images", "reward_model", "extra_info")


FINGERPRINT_FILE = "fingerprint.json"


@dataclass(frozen=True)
class _ShardFolder:
    """``<output>.mining/``: one JSON file per finished shard, valid for the run whose fingerprint digest
    it records."""

    path: Path
    digest: str

    def shard_file(self, s: Shard) -> Path:
        return self.path / f"shard_{s.index:05d}_{s.start}_{s.stop}.json"

    def payload(self, s: Shard) -> dict[str, Any] | None:
        """Shard ``s`` of this run, or None (missing, torn or of another run)."""
        try:
            payload = json.loads(self.shard_file(s).read_text())
        except (OSError, ValueError):
            return None
        return payload if isinstance(payload, dict) and payload.get("fingerprint") == self.digest else None


def _plan_shards(image_keys: list[str], shard_rows: int) -> list[Shard]:
    """Contiguous shards of ~shard_rows rows that never split a run of equal image keys."""
    shards, start, n = [], 0, len(image_keys)
    while start < n:
        stop = min(n, start + shard_rows)
        while stop < n and image_keys[stop] == image_keys[stop - 1]:
            stop += 1
        shards.append(Shard(len(shards), start, stop))
        start = stop
    return shards


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


def _merge(input_path: str, output_path: Path, payloads: list[dict[str, Any]]) -> None:
    """Stream the input row group by row group into a staged output with the mined rows' two fields
    replaced, then move it onto ``output_path``. Row ids are checked against the shards' record."""
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


def _share(stats: list[dict[str, Any]], key: str) -> float:
    """Share of ``stats`` whose ``key`` is positive (0.0 for no rows)."""
    return sum(1 for s in stats if s[key] > 0) / len(stats) if stats else 0.0


def _summarise(output_path: str) -> dict[str, Any]:
    """Coverage over the rows of the written file: share of rows with a component the reward pays for
    (per source too), and share with any confused pixel. Rows mined before component counts existed are
    reported in ``rows_without_component_stats`` and left out of the component shares."""

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


def mine_parquet(
    input_path: str | Path,
    output_path: str | Path,
    *,
    config_name: str = DEFAULT_SAM_CONFIG,
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
        shards = _plan_shards(
            [((e or {}).get("image_id") or f"row{i}") for i, e in enumerate(meta)], shard_rows
        )
        fp, digest = _mining_fingerprint(input_path, checkpoint, options)
        folder = _ShardFolder(Path(str(output) + ".mining"), digest)
        _open_work_dir(folder.path, fp, output, in_place, overwrite)
        todo = [s for s in shards if folder.payload(s) is None]
        task = ShardTask(input_path, digest, config, seed, remine)
        spec = MinerSpec(config_name, checkpoint, device, model_seed, cache_size, torch_threads)
        totals = _mine_shards(shards, todo, folder, task, spec, num_workers, progress)
        done = [folder.payload(s) for s in shards]
        _merge(input_path, output, done)
        if in_place:  # the input is now the output: its shards describe an input that no longer exists
            shutil.rmtree(folder.path, ignore_errors=True)
        summary = _write_summary(
            output, shards, todo, totals, done, time.perf_counter() - t0, options, checkpoint
        )
    logger.info("mined %s: coverage %.3f over %d rows", output, summary["coverage"], summary["rows"])
    return summary


def _mine_shards(
    shards: list[Shard],
    todo: list[Shard],
    folder: _ShardFolder,
    task: ShardTask,
    spec: MinerSpec,
    num_workers: int,
    progress: bool,
) -> dict[str, int]:
    """Mine the shards ``todo`` of ``shards`` under a progress bar over all rows (finished shards count
    as done); this session's counts."""
    bar = tqdm(total=shards[-1].stop if shards else 0, desc="mining", unit="row", disable=not progress)
    todo_index = {s.index for s in todo}
    bar.update(sum(s.stop - s.start for s in shards if s.index not in todo_index))
    try:
        if not todo:
            return {"mined": 0, "images_encoded": 0}
        return run_shards(todo, folder.shard_file, task, spec, num_workers=num_workers, bar=bar)
    finally:
        bar.close()


def _write_summary(
    output: Path,
    shards: list[Shard],
    todo: list[Shard],
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
