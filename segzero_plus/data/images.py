"""Image decoding, RGB normalisation and frame resizing shared by every conversion.

Images are (H, W, 3) ``uint8`` RGB arrays. Resizing maps the ORIGINAL frame to the MODEL frame by a
per-axis squash (aspect ratio not kept, as Seg-Zero's 840x840 data). Masks are resized by sampling the
original pixel under each model pixel's centre, so a model pixel (u, v) reads original pixel
(floor((u + 0.5) * W / W'), floor((v + 0.5) * H / H')).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from segzero_plus.data.io import ChunkOutput

EXIF_ORIENTATION = 0x0112


class ImageDecodeError(ValueError):
    """Bytes that PIL cannot decode into an image."""


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image plus what had to be done to get it: ``mode`` is the file's PIL mode ("RGB", "L",
    "RGBA", "P", ...) and ``transposed`` says an EXIF orientation was applied."""

    array: np.ndarray
    mode: str
    transposed: bool

    @property
    def converted(self) -> bool:
        return self.mode != "RGB"

    def notes(self) -> dict[str, int]:
        out = {}
        if self.converted:
            out[f"image_converted_from_{self.mode}"] = 1
        if self.transposed:
            out["image_exif_transposed"] = 1
        return out


def decode_image(data: bytes) -> DecodedImage:
    """Decode image bytes to RGB, applying an EXIF orientation if present (as OpenCV readers do).
    Grayscale, palette and RGBA images are converted (alpha dropped); the original mode is recorded."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = im.mode
            transposed = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1) != 1
            if transposed:
                im = ImageOps.exif_transpose(im)
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            return DecodedImage(array=np.asarray(rgb), mode=mode, transposed=transposed)
    except Exception as e:  # PIL raises many exception types for bad data
        raise ImageDecodeError(f"cannot decode image: {e}") from e


def original_image_bytes(data: bytes, compress_level: int = 6) -> tuple[bytes, DecodedImage]:
    """Bytes to store as an ORIGINAL-frame image: the file unchanged when it already decodes to RGB as
    stored, else a PNG of the converted/transposed RGB pixels."""
    decoded = decode_image(data)
    if not decoded.converted and not decoded.transposed:
        return data, decoded
    return encode_png(decoded.array, compress_level), decoded


def read_annotated_image(
    path: str | Path,
    hw: tuple[int, int],
    ids: Sequence[str],
    out: ChunkOutput,
    *,
    original: bool = False,
    unreadable: str = "{error}",
) -> tuple[bytes, DecodedImage] | None:
    """Read and decode the image file that the annotations of rows ``ids`` say is ``hw`` = (height, width).

    Returns (the file's bytes, or with ``original`` the bytes to store as the ORIGINAL-frame image, see
    :func:`original_image_bytes`; the decoded image) and counts the decode's notes in ``out``; or None
    after skipping every row in ``out``: an unreadable file (note ``skipped_unreadable_image``, reason
    ``unreadable`` formatted with ``path`` and ``error``) or a size other than ``hw``
    (``skipped_image_size_mismatch``).
    """
    try:
        data = Path(path).read_bytes()
        stored, decoded = original_image_bytes(data) if original else (data, decode_image(data))
    except (OSError, ImageDecodeError) as e:
        out.skip(ids, unreadable.format(path=path, error=e), "skipped_unreadable_image")
        return None
    for k in decoded.notes():
        out.note(k)
    got = decoded.array.shape[:2]
    if got != tuple(hw):
        out.skip(ids, f"image is {got}, annotations say {tuple(hw)}", "skipped_image_size_mismatch")
        return None
    return stored, decoded


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image; ``compress_level`` 0 (fast, large) .. 9 (slow, small)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Squash an RGB image to ``size`` = (height, width) with bicubic resampling (no copy if unchanged)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index under the centre of each of ``dst`` destination pixels along one axis."""
    idx = np.floor((np.arange(dst) + 0.5) * (src / dst)).astype(np.int64)
    return np.clip(idx, 0, src - 1)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-centre resize of a bool (H, W) mask to ``size`` = (height, width)."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(bool, copy=False)
    return mask[np.ix_(nearest_indices(mask.shape[0], h), nearest_indices(mask.shape[1], w))].astype(bool)


def model_size(orig_size: tuple[int, int], resize: tuple[int, int] | str | None) -> tuple[int, int]:
    """MODEL frame (height, width) for an ORIGINAL (height, width).

    ``resize``: a fixed (height, width) squash (Seg-Zero: (840, 840)); ``"smart"`` for Qwen2.5-VL's own
    ``smart_resize`` (multiples of 28, default pixel limits), so the processor leaves the image as is;
    ``None`` to keep the original size.
    """
    if resize is None:
        return orig_size
    if isinstance(resize, str):
        if resize != "smart":
            raise ValueError(f"resize must be (height, width), 'smart' or None, got {resize!r}")
        from qwen_vl_utils import smart_resize

        return tuple(smart_resize(orig_size[0], orig_size[1], factor=28))  # type: ignore[return-value]
    h, w = (int(v) for v in resize)
    return h, w
