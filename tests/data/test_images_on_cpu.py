"""The one image decoder (every mode keeps its pixels, a pixel limit) and reading an annotated image for
a chunk of rows, and the image as the model sees it (segzero_plus.data.images)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from segzero_plus.data import io as dio
from segzero_plus.data.images import (
    MAX_PIXELS_ENV,
    ImageDecodeError,
    decode_image,
    encode_png,
    model_view_rgb,
    open_image,
    read_annotated_image,
)
from segzero_plus.errors import UserError

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


# ------------------------------------------------------------------ the one decoder keeps the pixels
def _encoded(image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


GRADIENT16 = (np.arange(32 * 48, dtype=np.uint32).reshape(32, 48) * 42).astype(np.uint16)


def test_16_bit_images_are_scaled_to_8_bits_not_clipped():
    decoded = decode_image(_encoded(Image.fromarray(GRADIENT16)))
    assert decoded.mode.startswith("I;16") and decoded.scaled
    gray = decoded.array[..., 0]
    assert (decoded.array == gray[..., None]).all()
    expected = np.rint(GRADIENT16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(gray, expected)
    assert gray.min() == 0 and gray.max() > 200 and len(np.unique(gray)) > 200  # not an all-white image
    assert decoded.notes() == {"image_converted_from_I;16": 1, "image_scaled_to_8_bits": 1}


@pytest.mark.parametrize(
    "values, mode, expected",
    [
        (np.array([[0, 128, 255]], np.int32), "I", [0, 128, 255]),  # 8-bit values kept
        (np.array([[0, 32768, 65535]], np.int32), "I", [0, 128, 255]),  # 16-bit range scaled
        (np.array([[-10, 0, 10]], np.int32), "I", [0, 128, 255]),  # anything else stretched
        (np.array([[0.0, 0.5, 1.0]], np.float32), "F", [0, 128, 255]),  # unit floats
    ],
)
def test_high_bit_depth_modes_by_value_range(values, mode, expected):
    decoded = decode_image(_encoded(Image.fromarray(values, mode=mode), "TIFF"))
    assert decoded.mode == mode and decoded.array[0, :, 0].tolist() == expected


RGB = np.array([[[200, 30, 60], [10, 220, 90]], [[0, 0, 0], [255, 255, 255]]], np.uint8)


@pytest.mark.parametrize(
    "make, fmt",
    [
        (lambda: Image.fromarray(np.dstack([RGB, np.full((2, 2), 7, np.uint8)]), "RGBA"), "PNG"),
        (lambda: Image.fromarray(RGB).quantize(4), "PNG"),
        (lambda: Image.fromarray(RGB).convert("CMYK"), "TIFF"),
    ],
    ids=["rgba_alpha_dropped", "palette_looked_up", "cmyk_converted"],
)
def test_colour_modes_are_converted_explicitly(make, fmt):
    image = make()
    decoded = decode_image(_encoded(image, fmt))
    assert decoded.mode == image.mode and decoded.array.shape == (2, 2, 3)
    assert np.array_equal(decoded.array, np.asarray(image.convert("RGB")))
    if image.mode == "RGBA":
        assert np.array_equal(decoded.array, RGB)  # colour kept, alpha dropped (as OpenCV readers do)


def test_grayscale_bilevel_and_one_pixel_images_decode():
    assert decode_image(_encoded(Image.fromarray(np.eye(3, dtype=bool)))).array[..., 0].tolist() == [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
    ]
    one = decode_image(_encoded(Image.new("RGB", (1, 1), (9, 8, 7))))
    assert one.array.tolist() == [[[9, 8, 7]]]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` with one row of pixel data: a bomb's header and no more."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)


def test_images_over_the_pixel_limit_are_refused_from_their_header(monkeypatch):
    with pytest.raises(ImageDecodeError, match=r"10000x10000 = 100.0 M pixels, over the limit of 40.0 M"):
        decode_image(_png_header(10_000, 10_000))
    small = _encoded(Image.new("RGB", (40, 30)))
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(ImageDecodeError, match=f"set \\${MAX_PIXELS_ENV} higher"):
        decode_image(small)
    assert decode_image(small, max_pixels=1200).array.shape == (30, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(UserError, match="whole number"):
        decode_image(small)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, None])
def test_undecodable_bytes_are_one_decode_error(data):
    with pytest.raises(ImageDecodeError, match="image"):
        decode_image(data)


def test_model_view_rgb_is_what_qwen_vl_utils_hands_the_model():
    """RGBA on white, palette and grayscale converted, no EXIF turn: the pixels of qwen_vl_utils' to_rgb."""
    from qwen_vl_utils.vision_process import to_rgb

    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "RGBA")
    for image in (rgba, rgba.convert("P"), rgba.convert("L")):
        assert np.array_equal(model_view_rgb(image), np.asarray(to_rgb(image)))
    assert not np.array_equal(model_view_rgb(rgba), np.asarray(rgba.convert("RGB")))


def test_open_image_refuses_bad_bytes_and_oversized_images_from_the_header():
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        open_image(b"not an image")
    png = encode_png(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match="over the limit"):
        open_image(png, max_pixels=599)
    assert open_image(png, max_pixels=600).size == (30, 20)
