"""The run directory of one evaluation: what it holds, and when a rerun may resume or replace it.

- ``run.json``: the settings that determine the results and a fingerprint of the inputs (the data
  files' bytes; names, sizes and modification times of the model folder's and SAM checkpoint's files;
  the replayed responses' bytes), and the fixed batch size (the chunking of the evaluation order, see
  :mod:`.store`). A rerun resumes only when settings and fingerprint match; otherwise it stops with one
  line naming what changed;
- ``samples.jsonl``: one record per sample, written chunk by chunk as the run goes (id, query,
  response, parsed prompts in the MODEL and ORIGINAL frames, I, U, IoU, failure reason, diagnostics,
  timings, predicted mask RLE);
- ``metrics.json``: gIoU/cIoU overall and per split, failures by reason, diagnostics, throughput.

``overwrite`` evaluates into a staged directory beside the old run (:func:`target_run_dir`), swapped in
only when the new run is complete, so a failing rerun keeps the old results; a run directory holding
files ``evaluate`` does not write is never replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from segzero_plus.data.outputs import Fingerprint, file_digest, folder_stat_digest, staged_path
from segzero_plus.evaluation.config import EvalConfig, RunError

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
METRICS_FILE = "metrics.json"
RUN_DIR_ENTRIES: frozenset[str] = frozenset({RUN_FILE, SAMPLES_FILE, METRICS_FILE, "gallery"})
"""What a run directory may hold for ``overwrite`` to replace it (``report --gallery`` adds gallery/)."""


def run_fingerprint(cfg: EvalConfig) -> Fingerprint:
    """What a run's results depend on: the result settings and digests of the data, model and SAM files."""
    inputs = {f"data[{i}]": file_digest(p) for i, p in enumerate(cfg.data)}
    if cfg.backend == "replay":
        inputs["responses"] = file_digest(cfg.model)
    else:
        inputs["model"] = folder_stat_digest(cfg.model)
    if cfg.sam_checkpoint is not None:
        inputs["sam_checkpoint"] = folder_stat_digest(cfg.sam_checkpoint)
    return Fingerprint(inputs=inputs, options=cfg.result_settings())


def _read_run_file(run_dir: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in (RUN_FILE, SAMPLES_FILE, METRICS_FILE))


def target_run_dir(cfg: EvalConfig, fp: Fingerprint, overwrite: bool) -> Path:
    """The folder this run writes: ``cfg.out``, or with ``overwrite`` over an existing run a staged folder
    beside it (resumed when it holds this very run, else started afresh)."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; give a run directory")
    if not (overwrite and _holds_run(out)):
        return out
    foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_DIR_ENTRIES)
    if foreign:
        raise RunError(
            f"--overwrite would replace {out}, which holds files evaluate did not write ({', '.join(foreign[:3])}); "
            "move them or choose another --out"
        )
    staged = staged_path(out)
    recorded = _read_run_file(staged) if staged.exists() else None
    if staged.exists() and Fingerprint.from_json((recorded or {}).get("fingerprint")) != fp:
        shutil.rmtree(staged)
    return staged


def check_run_dir(cfg: EvalConfig, run_dir: Path, fp: Fingerprint) -> tuple[int, dict[str, Any] | None]:
    """Check ``run.json`` in ``run_dir``: (the chunk size to use, the stored one on resume; the run.json
    payload to write once the run starts, None on resume)."""
    if (run_dir / RUN_FILE).exists():
        old = _read_run_file(run_dir) or {}
        fp.check(
            old.get("fingerprint"),
            run_dir,
            "use another --out or pass --overwrite (the old results stay until the new run completes)",
            what="results",
        )
        if int(old["batch_size"]) != cfg.batch_size:
            logger.warning(
                "resuming with the run's batch size %s (not %s)", old["batch_size"], cfg.batch_size
            )
        return int(old["batch_size"]), None
    if _holds_run(run_dir):
        raise RunError(
            f"{run_dir} holds {SAMPLES_FILE} or {METRICS_FILE} but no {RUN_FILE}: not a run this version can "
            "resume; use another --out or pass --overwrite"
        )
    payload = {
        "settings": cfg.result_settings(),
        "fingerprint": fp.to_json(),
        "batch_size": cfg.batch_size,
        "name": cfg.name,
        "config": asdict(cfg),
    }
    return cfg.batch_size, payload
