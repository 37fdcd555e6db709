"""Reading an annotated image for a chunk of rows (segzero_plus.data.images.read_annotated_image)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segzero_plus.data import io as dio
from segzero_plus.data.images import read_annotated_image

IDS = ["r1", "r2"]


def test_a_readable_image_of_the_annotated_size_comes_back_with_its_notes(tmp_path):
    gray = np.arange(60 * 80, dtype=np.uint8).reshape(60, 80)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    out = dio.ChunkOutput(rows=[])
    data, decoded = read_annotated_image(path, (60, 80), IDS, out)
    assert data == path.read_bytes() and decoded.array.shape == (60, 80, 3)
    stored, _ = read_annotated_image(path, (60, 80), IDS, out, original=True)
    assert stored != data  # a grayscale file is stored as an RGB PNG
    assert out.notes == {"image_converted_from_L": 2} and out.skipped == []


def test_unreadable_or_mis_sized_images_skip_every_row(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    ok = tmp_path / "ok.png"
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(ok)
    out = dio.ChunkOutput(rows=[])
    assert (
        read_annotated_image(bad, (60, 80), IDS, out, unreadable="unreadable image {path}: {error}") is None
    )
    assert read_annotated_image(tmp_path / "missing.png", (60, 80), IDS, out) is None
    assert read_annotated_image(ok, (61, 80), IDS, out) is None
    assert out.notes == {"skipped_unreadable_image": 4, "skipped_image_size_mismatch": 2}
    reasons = [reason for _, reason in out.skipped]
    assert [i for i, _ in out.skipped] == IDS * 3
    assert reasons[0].startswith(f"unreadable image {bad}: cannot decode image")
    assert "No such file" in reasons[2]
    assert reasons[4] == "image is (60, 80), annotations say (61, 80)"
