"""`segzero-plus segment` on a generated scene: reasoning printed, mask + overlay written, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segzero_plus.cli import main
from segzero_plus.data.scenes import encode_png, generate_scene


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    scene = generate_scene(11, size=(280, 420), n_distractors=2)
    path = tmp_path_factory.mktemp("seg") / "scene.png"
    path.write_bytes(encode_png(scene.image))
    return path, scene


def _sam_args(tiny_sam_checkpoint) -> list[str]:
    return ["--sam", str(tiny_sam_checkpoint[1]), "--sam-config", tiny_sam_checkpoint[0]]


def _segment_scene(scene_png, out_dir, tiny_sam_checkpoint, *options: str) -> int:
    """`segzero-plus segment` of the scene with its expression and the tiny SAM, writing into ``out_dir``."""
    path, scene = scene_png
    return main(
        [
            "segment",
            "--image",
            str(path),
            "--query",
            scene.expression,
            "--out",
            str(out_dir),
            *options,
            *_sam_args(tiny_sam_checkpoint),
        ]
    )


def test_segment_with_a_given_answer_writes_mask_and_overlay(
    tmp_path, scene_png, tiny_sam_checkpoint, capsys
):
    answer = (
        '<think> the left one </think><answer>{"bbox": [100, 200, 500, 700], '
        '"points_pos": [[300, 450], [320, 500]], "points_neg": [[700, 100]]}</answer>'
    )
    rc = _segment_scene(scene_png, tmp_path, tiny_sam_checkpoint, "--answer", answer)
    out = capsys.readouterr().out
    assert rc == 0
    assert "reasoning: the left one" in out
    assert "bbox=[50.0, 66.67, 250.0, 233.33]" in out  # 840 frame -> 420 x 280 original pixels
    assert "points_neg=[[350.0, 33.33]]" in out
    with Image.open(tmp_path / "scene_mask.png") as m:
        mask = np.asarray(m)
    assert mask.shape == (280, 420) and set(np.unique(mask)) <= {0, 255}
    with Image.open(tmp_path / "scene_overlay.png") as ov:
        assert ov.size == (420, 280)
        pixels = np.asarray(ov.convert("RGB"))
    assert ((pixels == [230, 30, 30]).all(axis=-1)).any()  # the negative point is drawn in red
    assert ((pixels == [40, 220, 40]).all(axis=-1)).any()  # positives in green


def test_segment_with_the_tiny_model_reports_an_unparseable_answer(
    tmp_path, scene_png, tiny_qwen_dir, tiny_sam_checkpoint, capsys
):
    rc = _segment_scene(
        scene_png, tmp_path, tiny_sam_checkpoint, "--model", str(tiny_qwen_dir), "--max-new-tokens", "6"
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "response: " in out and "no mask: answer unparseable" in out
    with Image.open(tmp_path / "scene_mask.png") as m:
        assert not np.asarray(m).any()


def test_bad_inputs_give_one_line_and_a_nonzero_exit(tmp_path, scene_png, tiny_sam_checkpoint, capsys):
    path, _ = scene_png
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    cases = [
        (["--image", str(tmp_path / "missing.png")], "image not found"),
        (["--image", str(bad)], "cannot read image"),
        (["--image", str(path), "--sam", str(tmp_path / "sam.pt")], "SAM2 checkpoint not found"),
        (
            ["--image", str(path), "--model", str(tmp_path / "nomodel"), *_sam_args(tiny_sam_checkpoint)],
            "model folder not found",
        ),
        (["--image", str(path), "--sam", str(bad), "--answer", "x"], "unreadable or corrupt"),
    ]
    for args, message in cases:
        assert main(["segment", "--query", "q", "--out", str(tmp_path), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
