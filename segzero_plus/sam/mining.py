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
resumable (finished shards are kept in ``<output>.mining/`` and rows that already have
``confused_regions`` are skipped), seeded (each row's draws depend only on the seed and the row id),
parallel over GPUs through Ray actors, and writes its output and a coverage summary atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_plus.devices import resolve_device
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
        overwrite: bool,
    ) -> dict[str, int]:
        """Mine rows [start, stop) and write ``{fingerprint, rows: {position: [gt_json, regions_json]}}``."""
        from segzero_plus.data.io import atomic_write_bytes
        from segzero_plus.data.schema import loads_ground_truth, with_confused_mask
        from segzero_plus.masks import decode_rle, encode_rle
        from segzero_plus.scenes import decode_png

        columns = ["images", "reward_model", "extra_info", "confused_regions"]
        rows = _read_rows(input_path, shard.start, shard.stop, columns)
        prepared = []
        for offset, row in enumerate(rows):
            position = shard.start + offset
            if row.get("confused_regions") and not overwrite:
                continue  # already mined (e.g. the input is an earlier output)
            gt = loads_ground_truth(row["reward_model"]["ground_truth"])
            if gt["mask"] is None:
                continue
            png = row["images"][0]["bytes"]
            prepared.append((stable_image_key_bytes(png), position, row, gt, png))
        prepared.sort(key=lambda item: (item[0], item[1]))  # rows of one image back to back: one encode
        before = self.scorer.stats.images_encoded
        out: dict[str, list[str]] = {}
        image_cache: tuple[str, np.ndarray] | None = None
        for key, position, row, gt, png in prepared:
            if image_cache is None or image_cache[0] != key:
                image_cache = (key, decode_png(png))
            image = image_cache[1]
            mask = decode_rle(gt["mask"])
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"row {position}: mask {mask.shape} and image {image.shape[:2]} frames differ"
                )
            row_id = (row.get("extra_info") or {}).get("id")
            regions = mine_confused_regions(
                self.scorer,
                key,
                image,
                mask,
                gt_box=gt["bbox"],
                gt_points=gt["points"],
                distractor_masks=[decode_rle(m) for m in gt["distractor_masks"]],
                config=config,
                seed=_row_seed(seed, row_id, position),
            )
            out[str(position)] = [
                with_confused_mask(row["reward_model"]["ground_truth"], encode_rle(regions.union)),
                regions.to_json(),
            ]
        payload = {
            "fingerprint": fp,
            "start": shard.start,
            "stop": shard.stop,
            "rows": out,
            "images_encoded": self.scorer.stats.images_encoded - before,
        }
        atomic_write_bytes(out_file, json.dumps(payload).encode())
        return {
            "rows": shard.stop - shard.start,
            "mined": len(out),
            "images_encoded": payload["images_encoded"],
        }


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
    overwrite: bool = False,
    cache_size: int = 8,
    torch_threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fill ``confused_mask`` and ``confused_regions`` of a training parquet; returns the summary.

    Args:
        input_path, output_path: training parquet in, parquet out (may be the same file: written via a
            temp file and rename). The summary goes to ``<output>.summary.json``.
        config_name, checkpoint, device, model_seed: the SAM2 model (see ``build_sam2_model``).
        config, seed: mining knobs and the seed of the probe points.
        shard_rows: rows per unit of work (a resumed run skips finished shards).
        num_workers: 0 = in this process; N >= 1 = N Ray actors (one GPU each when ``device`` is cuda,
            or auto with CUDA visible; one CPU each otherwise). Needs ``ray.init`` or starts a local Ray.
        overwrite: re-mine rows that already have ``confused_regions``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from segzero_plus.data.io import fingerprint

    t0 = time.perf_counter()
    input_path, output_path = str(input_path), str(output_path)
    checkpoint = None if checkpoint is None else str(checkpoint)
    meta = pq.read_table(input_path, columns=["extra_info"]).column("extra_info").to_pylist()
    keys = [((e or {}).get("image_id") or f"row{i}") for i, e in enumerate(meta)]
    shards = _plan_shards(keys, shard_rows)
    work_dir = Path(output_path + ".mining")
    work_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(
        os.path.getsize(input_path),
        len(keys),
        config_name,
        checkpoint,
        model_seed,
        asdict(config),
        seed,
        overwrite,
    )

    def shard_file(s: _Shard) -> Path:
        return work_dir / f"shard_{s.index:05d}_{s.start}_{s.stop}.json"

    def done(s: _Shard) -> bool:
        f = shard_file(s)
        if not f.exists():
            return False
        try:
            return json.loads(f.read_text()).get("fingerprint") == fp
        except json.JSONDecodeError:
            return False

    todo = [s for s in shards if not done(s)]
    resumed = len(shards) - len(todo)
    images_encoded = mined_now = 0
    bar = tqdm(total=len(keys), desc="mining", unit="row", disable=not progress)
    bar.update(sum(s.stop - s.start for s in shards if s not in todo))
    args = (config, seed, overwrite)
    if todo and num_workers <= 0:
        miner = _ShardMiner(config_name, checkpoint, device, model_seed, cache_size, torch_threads)
        for s in todo:
            result = miner.mine_shard(input_path, s, str(shard_file(s)), fp, *args)
            images_encoded, mined_now = images_encoded + result["images_encoded"], mined_now + result["mined"]
            bar.update(s.stop - s.start)
    elif todo:
        import ray

        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, include_dashboard=False)
        use_gpu = resolve_device(device).startswith("cuda")
        actor_cls = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1)(_ShardMiner)
        actors = [
            actor_cls.remote(config_name, checkpoint, device, model_seed, cache_size, torch_threads)
            for _ in range(min(num_workers, len(todo)))
        ]
        queue, in_flight = list(todo), {}
        for actor in actors:
            if queue:
                s = queue.pop(0)
                in_flight[actor.mine_shard.remote(input_path, s, str(shard_file(s)), fp, *args)] = (actor, s)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            actor, s = in_flight.pop(ready[0])
            result = ray.get(ready[0])
            images_encoded, mined_now = images_encoded + result["images_encoded"], mined_now + result["mined"]
            bar.update(s.stop - s.start)
            if queue:
                nxt = queue.pop(0)
                in_flight[actor.mine_shard.remote(input_path, nxt, str(shard_file(nxt)), fp, *args)] = (
                    actor,
                    nxt,
                )
        for actor in actors:
            ray.kill(actor)
    bar.close()

    # merge: stream the input row group by row group, replacing the mined rows' two fields
    updates: dict[int, list[str]] = {}
    for s in shards:
        for pos, pair in json.loads(shard_file(s).read_text())["rows"].items():
            updates[int(pos)] = pair
    pf = pq.ParquetFile(input_path)
    schema = pf.schema_arrow
    if "confused_regions" not in schema.names:
        schema = schema.append(pa.field("confused_regions", pa.string()))
    tmp = Path(output_path).with_name(f".{Path(output_path).name}.tmp-{os.getpid()}")
    offset = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for g in range(pf.num_row_groups):
            rows = pf.read_row_group(g).to_pylist()
            for i, row in enumerate(rows):
                row.setdefault("confused_regions", None)
                if offset + i in updates:
                    gt_json, regions_json = updates[offset + i]
                    row["reward_model"] = {**row["reward_model"], "ground_truth": gt_json}
                    row["confused_regions"] = regions_json
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            offset += len(rows)
    os.replace(tmp, output_path)

    summary = _summarise(output_path)
    summary.update(
        shards=len(shards),
        resumed_shards=resumed,
        rows_mined_now=mined_now,
        images_encoded_now=images_encoded,
        wall_s=round(time.perf_counter() - t0, 3),
        config=asdict(config),
        seed=seed,
        sam_config=config_name,
        checkpoint=checkpoint,
    )
    summary_path = Path(output_path + ".summary.json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("mined %s: coverage %.3f over %d rows", output_path, summary["coverage"], summary["rows"])
    return summary


# ====================================================================== CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    """``segzero-plus mine-confused``: see :func:`mine_parquet`."""
    p = subparsers.add_parser("mine-confused", help="mine SAM2 confused regions into a training parquet")
    add_arguments(p)
    p.set_defaults(func=_cli)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="training parquet (docs/CONVENTIONS.md)")
    p.add_argument("--output", help="output parquet (default: overwrite the input)")
    p.add_argument("--sam-config", default="sam2.1_hiera_l")
    p.add_argument(
        "--sam-checkpoint", help="SAM2 {'model': state_dict} file (required unless --random-weights)"
    )
    p.add_argument("--random-weights", action="store_true", help="random SAM2 weights (smoke tests only)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0, help="Ray actors (one GPU each on CUDA); 0 = in-process")
    p.add_argument("--shard-rows", type=int, default=256)
    p.add_argument("--n-samples", type=int, default=MiningConfig.n_samples)
    p.add_argument("--margin", type=float, default=MiningConfig.margin)
    p.add_argument("--score-threshold", type=float, default=MiningConfig.score_threshold)
    p.add_argument("--sources", default=",".join(SOURCES), help="comma list of " + ",".join(SOURCES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="re-mine rows that already have confused_regions")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _cli(args: argparse.Namespace) -> int:
    if not args.sam_checkpoint and not args.random_weights:
        raise SystemExit("--sam-checkpoint is required (or --random-weights for a smoke test)")
    config = MiningConfig(
        n_samples=args.n_samples,
        margin=args.margin,
        score_threshold=args.score_threshold,
        sources=tuple(s for s in args.sources.split(",") if s),
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
        overwrite=args.overwrite,
        torch_threads=args.threads,
    )
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("rows", "coverage", "coverage_by_source", "coverage_any_pixel", "wall_s")
            },
            indent=2,
        )
    )
    return 0
