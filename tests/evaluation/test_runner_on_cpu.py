"""The resumable runner: kill -9 mid-run then rerun equals an uninterrupted run; Ray shards equal local."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from segzero_plus.data.lookalike import scene_row_id, write_scenes_eval
from segzero_plus.errors import UserError
from segzero_plus.evaluation.config import EvalConfig
from segzero_plus.evaluation.pools import LocalPool, build_evaluator
from segzero_plus.evaluation.run_dir import METRICS_FILE, SAMPLES_FILE
from segzero_plus.evaluation.runner import run_evaluation
from segzero_plus.masks import encode_rle
from segzero_plus.testing.synthetic import scene_answer

REPO = Path(__file__).resolve().parents[2]
VOLATILE = {"timings", "chunk", "shard"}


def _stable(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in records}


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _metrics_core(m: dict) -> dict:
    return {"overall": m["overall"], "by_split": m["by_split"], "complete": m["complete"]}


@pytest.fixture(scope="module")
def replay_data(tmp_path_factory, scenes):
    """Eval parquet of the 12 fixture scenes and a responses file (synthetic answers, one garbage)."""
    root = tmp_path_factory.mktemp("replay")
    data = root / "data.parquet"
    write_scenes_eval(scenes, data, split="val")
    rng = np.random.default_rng(0)
    lines = []
    for i, s in enumerate(scenes):
        text = "no idea" if i == 5 else scene_answer(s.target_mask, s.distractor_masks, (840, 840), rng)
        lines.append(json.dumps({"id": scene_row_id(s.scene_id, "val"), "response": text}))
    responses = root / "responses.jsonl"
    responses.write_text("\n".join(lines) + "\n")
    return data, responses


def _cli_args(data: Path, responses: Path, out: Path, sam: tuple[str, Path]) -> list[str]:
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--backend",
        "replay",
        "--responses",
        str(responses),
        "--sam-config",
        sam[0],
        "--sam-checkpoint",
        str(sam[1]),
        "--batch-size",
        "1",
        "--quiet",
    ]


def test_kill9_then_rerun_equals_uninterrupted(tmp_path, replay_data, tiny_sam_checkpoint):
    data, responses = replay_data
    script = [sys.executable, str(REPO / "evaluation_scripts" / "eval_segzero_plus.py")]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    killed = tmp_path / "killed"
    cmd = script + _cli_args(data, responses, killed, tiny_sam_checkpoint)

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = killed / SAMPLES_FILE
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.005)
    assert proc.poll() is None, (
        f"the evaluator ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = samples.read_bytes().count(b"\n")
    assert 2 <= n_before < 12 and not (killed / METRICS_FILE).exists()
    with open(samples, "ab") as f:  # as if the kill had landed in the middle of a write
        f.write(b'{"id": "lookalike_val_scene_7_00011", "I": 3')

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    fresh = tmp_path / "fresh"
    done = subprocess.run(
        script + _cli_args(data, responses, fresh, tiny_sam_checkpoint),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    # exact, by construction: a resumed chunk is the same computation as in the fresh run (same rows,
    # same decoder batches, one torch thread in both processes), not a second code path
    m_resumed = json.loads((killed / METRICS_FILE).read_text())
    m_fresh = json.loads((fresh / METRICS_FILE).read_text())
    assert m_resumed["complete"] and m_resumed["n_expected"] == 12
    assert m_resumed["throughput"]["samples_this_session"] == 12 - n_before
    assert _metrics_core(m_resumed) == _metrics_core(m_fresh)
    assert m_fresh["overall"]["failures"] == 1 and m_fresh["overall"]["gIoU"] > 0
    assert _stable(_read(killed / SAMPLES_FILE)) == _stable(_read(fresh / SAMPLES_FILE))


def test_resume_with_the_tiny_model_matches_a_single_run(
    tmp_path, scenes, tiny_qwen_dir, tiny_sam_checkpoint
):
    data = tmp_path / "data.parquet"
    write_scenes_eval(scenes[:5], data, split="val")
    sam_config, sam_path = tiny_sam_checkpoint

    def cfg(out: str) -> EvalConfig:
        return EvalConfig(
            data=[str(data)],
            out=str(tmp_path / out),
            model=str(tiny_qwen_dir),
            sam_config=sam_config,
            sam_checkpoint=str(sam_path),
            max_new_tokens=8,
            batch_size=2,
            device="cpu",
        )

    pool = LocalPool(build_evaluator(cfg("a")))
    partial = run_evaluation(cfg("a"), max_chunks=1, pool=pool, progress=False)
    assert not partial["complete"] and partial["overall"]["n"] == 2
    resumed = run_evaluation(cfg("a"), pool=pool, progress=False)
    assert resumed["complete"] and resumed["throughput"]["samples_this_session"] == 3
    single = run_evaluation(cfg("b"), pool=pool, progress=False)
    assert _metrics_core(resumed) == _metrics_core(single)
    assert _stable(_read(tmp_path / "a" / SAMPLES_FILE)) == _stable(_read(tmp_path / "b" / SAMPLES_FILE))
    # random weights: the answers are garbage, counted as failures with |gt| as union, never dropped
    assert single["overall"]["n"] == 5
    assert single["overall"]["failure_reasons"] == {"unparseable_answer": 5}
    assert single["overall"]["sum_U"] == sum(int(s.target_mask.sum()) for s in scenes[:5])
    assert single["overall"]["gt_prompt"]["n"] == 5

    with pytest.raises(UserError, match='option template: "negative_point" -> "original"'):
        run_evaluation(EvalConfig(**{**cfg("a").__dict__, "template": "original"}), pool=pool, progress=False)


@pytest.mark.slow
def test_ray_shards_equal_a_local_run(tmp_path, replay_data, tiny_sam_checkpoint):
    data, responses = replay_data
    sam_config, sam_path = tiny_sam_checkpoint

    def cfg(out: str, shards: int) -> EvalConfig:
        return EvalConfig(
            data=[str(data)],
            out=str(tmp_path / out),
            model=str(responses),
            backend="replay",
            sam_config=sam_config,
            sam_checkpoint=str(sam_path),
            batch_size=3,
            limit=9,
            num_shards=shards,
            device="cpu",
            torch_threads=1,
        )

    # exact, by construction: a shard evaluates whole chunks exactly as the local run does (same rows,
    # decoder batches and one torch thread), only in another process
    sharded = run_evaluation(cfg("ray", 2), progress=False)
    local = run_evaluation(cfg("local", 1), progress=False)
    assert sharded["throughput"]["shards"] == 2
    assert sharded["throughput"]["sam"]["images_encoded"] == 9
    assert {s["shard"] for s in sharded["throughput"]["per_shard"]} == {0, 1}
    assert _metrics_core(sharded) == _metrics_core(local)
    recs = _read(tmp_path / "ray" / SAMPLES_FILE)
    assert {r["shard"] for r in recs} == {0, 1} and len(recs) == 9
    assert _stable(recs) == _stable(_read(tmp_path / "local" / SAMPLES_FILE))


# ------------------------------------------------------------------ nothing lost, nothing mixed
def _evaluate(data, responses, out, sam, *extra) -> int:
    from segzero_plus.cli import main as cli_main

    return cli_main(["evaluate", *_cli_args(data, responses, out, sam), *map(str, extra)])


def test_overwrite_keeps_the_old_run_until_the_new_one_is_complete(
    tmp_path, replay_data, tiny_sam_checkpoint, capsys
):
    data, responses = replay_data
    out = tmp_path / "run"
    assert _evaluate(data, responses, out, tiny_sam_checkpoint) == 0
    before = {name: (out / name).read_bytes() for name in (SAMPLES_FILE, METRICS_FILE, "run.json")}
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(Path(tiny_sam_checkpoint[1]).read_bytes()[:1000])
    broken = (tiny_sam_checkpoint[0], truncated)
    assert _evaluate(data, responses, out, broken, "--overwrite") == 2
    assert "unreadable or corrupt" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert _evaluate(data, responses, out, tiny_sam_checkpoint, "--template", "original") == 2
    assert 'option template: "negative_point" -> "original"' in capsys.readouterr().err
    assert _evaluate(data, responses, out, tiny_sam_checkpoint, "--template", "original", "--overwrite") == 0
    assert json.loads((out / "run.json").read_text())["settings"]["template"] == "original"
    assert not any(p.name.startswith(".run.") and p.is_dir() for p in tmp_path.iterdir())
    (out / "notes.txt").write_text("mine")
    assert _evaluate(data, responses, out, tiny_sam_checkpoint, "--overwrite") == 2
    assert "holds files evaluate did not write (notes.txt)" in capsys.readouterr().err


def test_a_corrupt_record_costs_one_sample_and_changed_data_is_refused(
    tmp_path, replay_data, tiny_sam_checkpoint, capsys
):
    data, responses = tmp_path / "data.parquet", replay_data[1]
    shutil.copy(replay_data[0], data)
    out = tmp_path / "run"
    assert _evaluate(data, responses, out, tiny_sam_checkpoint) == 0
    clean = json.loads((out / METRICS_FILE).read_text())
    lines = (out / SAMPLES_FILE).read_bytes().split(b"\n")
    lines[5] = lines[5][:40]  # a corrupt record in the middle
    (out / SAMPLES_FILE).write_bytes(b"\n".join(lines))
    assert _evaluate(data, responses, out, tiny_sam_checkpoint) == 0
    again = json.loads((out / METRICS_FILE).read_text())
    assert again["throughput"]["samples_this_session"] == 1  # the 6 valid records after it were kept
    assert _metrics_core(again) == _metrics_core(clean)
    pq.write_table(pq.read_table(data).take(list(range(11, -1, -1))), data)  # regenerated, reordered
    assert _evaluate(data, responses, out, tiny_sam_checkpoint) == 2
    err = capsys.readouterr().err
    assert "holds results of another run (input data[0] changed)" in err and "--overwrite" in err


def test_bad_rows_are_recorded_as_failures_and_never_stop_the_run(
    tmp_path, scenes, tiny_sam_checkpoint, capsys
):
    from segzero_plus.data.io import write_rows
    from segzero_plus.data.lookalike import scenes_to_eval_rows
    from segzero_plus.data.schema import EVAL_SCHEMA

    rows = scenes_to_eval_rows(scenes[:6])
    rows[0]["image"] = b"\xff\xd8\xff garbage"
    rows[1]["mask"] = None
    rows[2]["query"] = " "
    rows[3]["mask"] = encode_rle(np.zeros((rows[3]["height"], rows[3]["width"]), bool))
    grey16 = np.asarray(Image.open(io.BytesIO(rows[4]["image"])).convert("L")).astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")
    rows[4]["image"] = buf.getvalue()  # 16-bit: decoded by scaling, evaluated normally
    data = tmp_path / "bad.parquet"
    write_rows(rows, EVAL_SCHEMA, data)
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps({"id": r["id"], "response": "x"}) + "\n" for r in rows))
    out = tmp_path / "run"
    assert _evaluate(data, responses, out, tiny_sam_checkpoint) == 0
    recs = {r["id"]: r for r in _read(out / SAMPLES_FILE)}
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["complete"] and metrics["overall"]["n"] == 6
    failures = {rid: (r["failure"], r["failure_detail"]) for rid, r in recs.items()}
    assert failures[rows[0]["id"]][0] == "image_error" and "cannot decode image" in failures[rows[0]["id"]][1]
    assert failures[rows[1]["id"]][0] == "invalid_row" and "ground-truth mask" in failures[rows[1]["id"]][1]
    assert failures[rows[2]["id"]] == ("invalid_row", "empty query")
    assert failures[rows[3]["id"]] == ("invalid_row", "empty ground-truth mask")
    assert failures[rows[4]["id"]][0] == "unparseable_answer"  # the 16-bit image itself was fine
    assert metrics["overall"]["failure_reasons"] == {
        "image_error": 1,
        "invalid_row": 3,
        "unparseable_answer": 2,
    }
