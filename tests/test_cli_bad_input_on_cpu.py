"""Every class of bad input, through the real CLI: exit 2, ONE `error:` line naming the file/row/key, no
traceback, nothing half-written. (A few run as subprocesses to prove that no traceback reaches stderr.)"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from segzero_plus.cli import main
from segzero_plus.data.lookalike import scene_row_id, write_scenes_eval, write_scenes_training
from segzero_plus.data.outputs import output_lock
from segzero_plus.data.scenes import generate_scenes, write_scenes_parquet
from segzero_plus.testing.miniature import write_refer_layout

REPO = Path(__file__).resolve().parents[1]


def fails(argv: list[str], capsys, *expected: str) -> str:
    """Run the CLI; assert exit 2, exactly one `error:` line containing ``expected``, no traceback."""
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert rc == 2, (rc, captured.err[-2000:])
    assert len(errors) == 1, captured.err[-2000:]
    assert "Traceback" not in captured.err + captured.out
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Temp/staged files a failed run must not leave behind."""
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".new"))


@pytest.fixture(scope="module")
def small_scenes():
    return generate_scenes(3, seed=3, sizes=((64, 96),))


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_scenes):
    """Good inputs and one file per class of bad file."""
    root = tmp_path_factory.mktemp("inputs")
    good = {
        "eval": root / "eval.parquet",
        "train": root / "train.parquet",
        "scenes": root / "scenes.parquet",
        "responses": root / "responses.jsonl",
    }
    write_scenes_eval(small_scenes, good["eval"], split="val")
    write_scenes_training(small_scenes, good["train"])
    write_scenes_parquet(small_scenes, good["scenes"])
    good["responses"].write_text(
        "".join(
            json.dumps({"id": scene_row_id(s.scene_id, "val"), "response": "no"}) + "\n" for s in small_scenes
        )
    )
    bad = {
        "corrupt": root / "corrupt.parquet",
        "truncated": root / "truncated.parquet",
        "empty": root / "empty.parquet",
        "text": root / "notes.parquet",
        "folder": root / "a_folder.parquet",
        "missing": root / "missing.parquet",
        "missing_columns": root / "columns.parquet",
        "mistyped": root / "mistyped.parquet",
    }
    bad["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    data = good["eval"].read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("id,query\nr1,the red disc\n")
    bad["folder"].mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), bad["missing_columns"])
    table = pq.read_table(good["eval"])
    mistyped = table.set_column(
        table.schema.get_field_index("mask"), "mask", pa.array(["m"] * table.num_rows)
    )
    pq.write_table(mistyped, bad["mistyped"])
    return {**good, **bad}


@pytest.fixture(scope="module")
def sam(tiny_sam_checkpoint):
    return ["--sam-config", tiny_sam_checkpoint[0], "--sam-checkpoint", str(tiny_sam_checkpoint[1])]


# ------------------------------------------------------------------ bad files, every reader
FILE_CLASSES = {
    "corrupt": "not a readable parquet file",
    "truncated": "not a readable parquet file",
    "empty": "is empty (0 bytes)",
    "text": "not a readable parquet file",
    "folder": "is a folder",
    "missing": "not found",
    "missing_columns": "lacks column(s)",
}


@pytest.mark.parametrize("kind", [*FILE_CLASSES, "mistyped"])
def test_validate_data_bad_files(kind, files, capsys):
    expected = "column 'mask' has type string" if kind == "mistyped" else FILE_CLASSES[kind]
    if kind == "missing_columns":
        expected = "neither a training nor an evaluation file"
    fails(["validate-data", files[kind], "--no-progress"], capsys, str(files[kind]), expected)


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "empty", "folder", "missing_columns"])
def test_prepare_train_bad_scene_files(kind, files, tmp_path, capsys):
    out = tmp_path / "train.parquet"
    fails(
        ["prepare-train", "scenes", "--input", files[kind], "--out", out, "--no-progress"],
        capsys,
        FILE_CLASSES[kind],
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncated", "text", "missing"])
def test_prepare_eval_bad_segzero_files(kind, files, tmp_path, capsys):
    argv = [
        "prepare-eval",
        "segzero",
        "--input",
        files[kind],
        "--split",
        "test",
        "--out",
        tmp_path / "o.parquet",
    ]
    fails([*argv, "--no-progress"], capsys, str(files[kind]))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kind, expected",
    [("truncated", "not a readable parquet"), ("folder", "is a folder"), ("eval", "lacks column(s)")],
)
def test_mine_confused_bad_inputs(kind, expected, files, sam, tmp_path, capsys):
    out = tmp_path / "mined.parquet"
    fails(["mine-confused", "--input", files[kind], "--output", out, *sam, "--no-progress"], capsys, expected)
    assert not out.exists()


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("corrupt", "not a readable parquet"),
        ("folder", "is a folder"),
        ("missing", "not found"),
        ("train", "is a training parquet"),
        ("mistyped", "column 'mask' has type string"),
    ],
)
def test_evaluate_bad_data_files(kind, expected, files, sam, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "evaluate",
        "--data",
        files[kind],
        "--out",
        out,
        "--backend",
        "replay",
        "--responses",
        files["responses"],
    ]
    fails([*argv, *sam, "--quiet"], capsys, expected)
    assert not out.exists()


# ------------------------------------------------------------------ bad options and names
TRAIN = "prepare-train scenes --input {scenes} --out {tmp}/o.parquet"
REPLAY = (
    "evaluate --data {eval} --out {tmp}/run --backend replay --responses {responses} --sam-checkpoint random"
)
TINY = "evaluate --data {eval} --out {tmp}/run --model tiny --sam-checkpoint random"
MINE = "mine-confused --input {train} --random-weights"
OPTION_CASES: dict[str, tuple[str | list[str], str]] = {
    "chunk_size_0": (f"{TRAIN} --chunk-size 0", "--chunk-size: must be an integer >= 1"),
    "size_negative": (f"{TRAIN} --size -2", "size must be 2k, 9k, full"),
    "template_misspelled": (f"{TRAIN} --template negativ_point", "unknown prompt template 'negativ_point'"),
    "png_level": (f"{TRAIN} --png-level 12", "PNG compression level 0-9"),
    "eval_chunk_size_0": (
        "prepare-eval scenes --input {scenes} --split val --out {tmp}/e.parquet --chunk-size 0",
        "--chunk-size",
    ),
    "limit_negative": (f"{REPLAY} --limit -2", "--limit: must be an integer >= 1, got '-2'"),
    "batch_size_0": (f"{TINY} --batch-size 0", "--batch-size"),
    "eval_template": (f"{TINY} --template orignal", "unknown prompt template 'orignal'"),
    "eval_resize": (f"{REPLAY} --resize 12", "resize must be 'HxW'"),
    "eval_sam_config": (f"{TINY} --sam-config sam3", "unknown SAM2 config 'sam3'"),
    "lookalike_count": (
        "evaluate --data lookalike:x --out {tmp}/run --model tiny --sam-checkpoint random",
        "lookalike:N needs",
    ),
    "mine_shard_rows": (f"{MINE} --shard-rows 0", "--shard-rows"),
    "mine_sources": (f"{MINE} --sources oracle,distractors", "unknown or no sources"),
    "mine_threshold": (f"{MINE} --score-threshold nan", "--score-threshold"),
    "mine_no_checkpoint": ("mine-confused --input {train}", "--sam-checkpoint is required"),
    "segment_tokens": ("segment --image {png} --query q --max-new-tokens 0", "--max-new-tokens"),
    "segment_empty_query": (
        ["segment", "--image", "{png}", "--query", "  ", "--answer", "x", "--out", "{tmp}/seg"],
        "--query is empty",
    ),
    "scenes_n_0": ("make-scenes --out {tmp}/s.parquet -n 0", "-n/--num: must be an integer >= 1"),
    "scenes_too_small": ("make-scenes --out {tmp}/s.parquet -n 2 --size 4 4", "use larger --size"),
    "tiny_sam_config": ("make-tiny --out {tmp}/tiny --sam hiera_huge", "unknown SAM2 config 'hiera_huge'"),
    "report_nothing": ("report", "give run directories"),
    "report_gallery_k": ("report {tmp} --gallery-k 0", "--gallery-k"),
    "validate_max_ids": ("validate-data {eval} --max-ids 0", "--max-ids"),
    "unknown_option": ("validate-data {eval} --skip-bda", "unrecognized arguments: --skip-bda"),
    "missing_required": (
        "prepare-train scenes --input {scenes}",
        "the following arguments are required: --out",
    ),
    "bad_choice": ("prepare-train refcoco --out {tmp}/o.parquet", "invalid choice: 'refcoco'"),
}


@pytest.fixture(scope="module")
def png(tmp_path_factory, small_scenes):
    path = tmp_path_factory.mktemp("png") / "scene.png"
    Image.fromarray(small_scenes[0].image).save(path)
    return path


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_options(case, files, png, tmp_path, capsys):
    argv, expected = OPTION_CASES[case]
    values = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path), "png": str(png)}
    fails([a.format(**values) for a in (argv.split() if isinstance(argv, str) else argv)], capsys, expected)
    assert leftovers(tmp_path) == [] and not any(p.suffix == ".parquet" for p in tmp_path.iterdir())


# ------------------------------------------------------------------ annotations, checkpoints, models
@pytest.fixture(scope="module")
def refer(tmp_path_factory, small_scenes):
    root = tmp_path_factory.mktemp("refer")
    write_refer_layout(small_scenes, root / "refer", root / "images")
    return root / "refer", root / "images"


def test_prepare_train_missing_or_corrupt_refer_layout(refer, tmp_path, capsys):
    refer_root, images = refer
    out = tmp_path / "t.parquet"
    base = ["prepare-train", "refcocog", "--out", out, "--no-progress"]
    fails(
        [*base, "--refer-root", tmp_path, "--images", images], capsys, "refs(umd).p not found", "refer layout"
    )
    fails(
        [*base, "--refer-root", refer_root, "--images", tmp_path / "nope"], capsys, "image folder not found"
    )
    fails([*base, "--images", images], capsys, "needs --refer-root")
    broken = tmp_path / "broken" / "refcocog"
    broken.mkdir(parents=True)
    (broken / "instances.json").write_text((refer_root / "refcocog" / "instances.json").read_text()[:100])
    (broken / "refs(umd).p").write_bytes(pickle.dumps([])[:3])
    fails(
        [*base, "--refer-root", broken.parent, "--images", images],
        capsys,
        "cannot read the refer annotations",
    )
    assert not out.exists()


def test_prepare_eval_missing_layouts(refer, tmp_path, capsys):
    out = tmp_path / "e"
    fails(
        ["prepare-eval", "reasonseg", "--root", tmp_path, "--split", "val", "--out", out],
        capsys,
        "no ReasonSeg jsons",
    )
    fails(
        ["prepare-eval", "refcoco", "--root", tmp_path, "--images", refer[1], "--split", "val", "--out", out],
        capsys,
        "refs(unc).p not found",
    )
    fails(["prepare-eval", "reasonseg", "--split", "val", "--out", out], capsys, "needs --root")
    assert not out.exists()


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory, tiny_sam_checkpoint):
    root = tmp_path_factory.mktemp("ckpt")
    data = Path(tiny_sam_checkpoint[1]).read_bytes()
    truncated = root / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 3])
    return {"missing": root / "missing.pt", "truncated": truncated}


@pytest.mark.parametrize("kind, expected", [("missing", "not found"), ("truncated", "unreadable or corrupt")])
def test_missing_or_truncated_sam_checkpoints(
    kind, expected, broken_checkpoints, files, png, tmp_path, capsys
):
    ckpt = broken_checkpoints[kind]
    sam = ["--sam-config", "tiny_test", "--sam-checkpoint", ckpt]
    fails(
        [
            "mine-confused",
            "--input",
            files["train"],
            "--output",
            tmp_path / "m.parquet",
            *sam,
            "--no-progress",
        ],
        capsys,
        str(ckpt),
        expected,
    )
    run = tmp_path / "run"
    replay = ["--backend", "replay", "--responses", files["responses"]]
    fails(
        ["evaluate", "--data", files["eval"], "--out", run, *replay, *sam, "--quiet"],
        capsys,
        str(ckpt),
        expected,
    )
    fails(
        [
            "segment",
            "--image",
            png,
            "--query",
            "q",
            "--answer",
            "x",
            "--sam",
            ckpt,
            "--sam-config",
            "tiny_test",
            "--out",
            tmp_path / "seg",
        ],
        capsys,
        str(ckpt),
    )
    assert not run.exists() and not (tmp_path / "m.parquet").exists()
    assert not (tmp_path / "seg" / "scene_mask.png").exists()


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory, tiny_qwen_dir):
    import shutil

    folder = tmp_path_factory.mktemp("model") / "truncated"
    shutil.copytree(tiny_qwen_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def test_missing_model_folder_and_truncated_weights(broken_model, files, sam, png, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["evaluate", "--data", files["eval"], "--out", run, *sam, "--quiet"]
    fails([*base, "--model", tmp_path / "nope"], capsys, "model folder not found")
    fails([*base, "--model", broken_model], capsys, "cannot load the model", str(broken_model))
    assert not run.exists()
    fails(
        ["segment", "--image", png, "--query", "q", "--model", broken_model, "--out", tmp_path / "seg"],
        capsys,
        "cannot load the model",
    )


# ------------------------------------------------------------------ images
def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_segment_bad_images(png, tmp_path, capsys, monkeypatch):
    base = ["segment", "--query", "q", "--answer", "x", "--out", tmp_path / "seg"]
    fails([*base, "--image", tmp_path / "missing.png"], capsys, "image not found")
    fails([*base, "--image", tmp_path], capsys, "(it is a folder)")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff" + b"\0" * 50)
    fails([*base, "--image", corrupt], capsys, "cannot read image", str(corrupt))
    monkeypatch.setenv("SEGZERO_PLUS_MAX_IMAGE_PIXELS", "1000")
    fails([*base, "--image", png], capsys, "over the limit of 0.0 M", "SEGZERO_PLUS_MAX_IMAGE_PIXELS")
    assert not (tmp_path / "seg").exists() or not any((tmp_path / "seg").iterdir())


def test_segment_keeps_the_pixels_of_a_16_bit_png(tmp_path, capsys, tiny_sam_checkpoint):
    ramp = (np.linspace(0, 65535, 64 * 96).reshape(64, 96)).astype(np.uint16)
    image = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(image)
    answer = '<think>t</think><answer>{"bbox": [100, 100, 700, 700], "points_pos": [[400, 400], [300, 300]], "points_neg": []}</answer>'
    argv = ["segment", "--image", image, "--query", "q", "--answer", answer, "--out", tmp_path / "seg"]
    argv += ["--sam", tiny_sam_checkpoint[1], "--sam-config", tiny_sam_checkpoint[0]]
    assert main([str(a) for a in argv]) == 0
    with Image.open(tmp_path / "seg" / "ramp16_overlay.png") as ov:
        pixels = np.asarray(ov.convert("RGB"))
    assert len(np.unique(pixels[..., 1])) > 50  # the overlay shows the ramp, not an all-white image
    capsys.readouterr()
    fails([str(a) for a in argv], capsys, "ramp16_mask.png exists; pass --overwrite")
    assert main([*map(str, argv), "--overwrite"]) == 0


# ------------------------------------------------------------------ outputs: existing, folders, locks, full disk
def test_existing_outputs_are_not_replaced_without_overwrite(files, tmp_path, capsys):
    out = tmp_path / "mine.parquet"
    out.write_bytes(b"somebody else's file")
    train = ["prepare-train", "scenes", "--input", files["scenes"], "--out", out, "--no-progress"]
    fails(train, capsys, f"{out} exists; pass --overwrite")
    fails(
        ["prepare-eval", "scenes", "--input", files["scenes"], "--split", "val", "--out", out],
        capsys,
        "exists; pass --overwrite",
    )
    fails(
        ["mine-confused", "--input", files["train"], "--output", out, "--random-weights", "--no-progress"],
        capsys,
        "no mining run of these inputs wrote it",
    )
    fails(["make-scenes", "--out", out, "-n", "1"], capsys, "exists; pass --overwrite")
    clean = tmp_path / "eval.clean.parquet"
    clean.write_bytes(b"x")
    fails(
        ["validate-data", files["eval"], "--skip-bad", "--out-dir", tmp_path, "--no-progress"],
        capsys,
        "exists",
    )
    log, png = tmp_path / "log.jsonl", tmp_path / "curves.png"
    log.write_text('{"step": 1, "reward": 0.5}\n')
    png.write_bytes(b"mine")
    fails(["report", "--curves", log, "--curves-out", png], capsys, f"{png} exists; pass --overwrite")
    fails(["make-scenes", "--out", tmp_path, "-n", "1"], capsys, "is a folder")
    assert (
        out.read_bytes() == b"somebody else's file"
        and png.read_bytes() == b"mine"
        and clean.read_bytes() == b"x"
    )


def test_a_second_run_on_one_output_is_locked_out(files, sam, tmp_path, capsys):
    out = tmp_path / "train.parquet"
    with output_lock(out):
        fails(
            ["prepare-train", "scenes", "--input", files["scenes"], "--out", out, "--no-progress"],
            capsys,
            "being written by another run",
        )
    assert not out.exists()
    run = tmp_path / "run"
    with output_lock(run):
        argv = [
            "evaluate",
            "--data",
            files["eval"],
            "--out",
            run,
            "--backend",
            "replay",
            "--responses",
            files["responses"],
        ]
        fails([*argv, *sam, "--quiet"], capsys, "being written by another run")
    mined = tmp_path / "mined.parquet"
    with output_lock(mined):
        fails(
            ["mine-confused", "--input", files["train"], "--output", mined, *sam, "--no-progress"],
            capsys,
            "being written by another run",
        )


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(files, tmp_path, capsys, monkeypatch):
    real = pq.ParquetWriter.__init__

    def full(self, where, *args, **kwargs):
        if ".new" in str(where):  # the final merge: every chunk converted, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        real(self, where, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "__init__", full)
    out = tmp_path / "train.parquet"
    fails(
        ["prepare-train", "scenes", "--input", files["scenes"], "--out", out, "--no-progress"],
        capsys,
        "No space left on device",
        "free some space",
    )
    assert not out.exists() and leftovers(tmp_path) == []
    monkeypatch.setattr(pq.ParquetWriter, "__init__", real)
    assert (
        main(["prepare-train", "scenes", "--input", str(files["scenes"]), "--out", str(out), "--no-progress"])
        == 0
    )
    assert "resumed 1/1 chunks" in capsys.readouterr().out  # the converted chunks were kept


def test_a_read_only_output_folder(files, tmp_path, capsys, monkeypatch):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real = Path.write_bytes

    def refuse(self, data):
        if read_only in self.parents:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    fails(
        ["validate-data", files["eval"], "--skip-bad", "--out-dir", read_only, "--no-progress"],
        capsys,
        f"cannot write to {read_only}",
        "Read-only file system",
    )
    fails(
        [
            "prepare-train",
            "scenes",
            "--input",
            files["scenes"],
            "--out",
            read_only / "t.parquet",
            "--no-progress",
        ],
        capsys,
        "Read-only file system",
    )
    assert list(read_only.iterdir()) == []


# ------------------------------------------------------------------ report
def test_report_bad_run_directories(tmp_path, capsys):
    fails(["report", tmp_path / "nowhere"], capsys, "no metrics.json in")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"by_split": {"a/b": ')
    fails(["report", run], capsys, f"{run / 'metrics.json'} is unreadable")
    fails(["report", "--curves", tmp_path / "log.jsonl"], capsys, "training log not found")


# ------------------------------------------------------------------ no traceback reaches stderr (subprocesses)
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["validate-data", "{corrupt}"], "not a readable parquet file"),
        (
            [
                "evaluate",
                "--data",
                "{eval}",
                "--out",
                "{tmp}/r",
                "--model",
                "tiny",
                "--sam",
                "random",
                "--limit",
                "-2",
            ],
            "--limit",
        ),
        (["prepare-train", "scenes", "--input", "{folder}", "--out", "{tmp}/t.parquet"], "is a folder"),
    ],
)
def test_no_traceback_in_a_subprocess(argv, expected, files, tmp_path):
    values = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "segzero_plus.cli", *(a.format(**values) for a in argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("error: ") == 1 and expected in proc.stderr and "Traceback" not in proc.stderr
