"""Image decoding, RGB normalisation and frame resizing shared by every conversion.

Images are (H, W, 3) ``uint8`` RGB arrays. :func:`decode_image` is the project's one decoder: every
subcommand that reads image bytes (conversion, validation, mining, evaluation, ``segment``) goes through
it. It keeps the pixels of every mode PIL opens, each converted explicitly and recorded:

- RGB as is; grayscale ("L", "1") replicated to three channels;
- alpha ("RGBA", "LA", "PA") dropped, colour kept (what OpenCV's ``IMREAD_COLOR`` readers of the
  reference code do); palette ("P") looked up; CMYK through its embedded ICC profile when it has one,
  else PIL's CMYK->RGB formula; other colour spaces (YCbCr, LAB, HSV) by PIL's conversion;
- high bit depth scaled to 8 bits, never clipped: 16-bit ("I;16*") by ``round(v * 255 / 65535)``;
  32-bit integer ("I") and float ("F") images by their value range (0..255 kept, 0..65535 as 16-bit,
  0..1 floats times 255, anything else min-max stretched). 16-bit RGB PNGs arrive from PIL as their
  high bytes (8-bit RGB).

A size limit guards against decompression bombs: an image of more than :func:`max_image_pixels` pixels
(``$SEGZERO_PLUS_MAX_IMAGE_PIXELS``, default 40 M, about 6300 x 6300) is refused from its header, before
its pixels are decoded. Undecodable bytes and oversized images raise :class:`ImageDecodeError`.

Resizing maps the ORIGINAL frame to the MODEL frame by a per-axis squash (aspect ratio not kept, as
Seg-Zero's 840x840 data). Masks are resized by sampling the original pixel under each model pixel's
centre, so a model pixel (u, v) reads original pixel (floor((u + 0.5) * W / W'), floor((v + 0.5) * H / H')).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from segzero_plus.errors import UserError

if TYPE_CHECKING:
    from segzero_plus.data.io import ChunkOutput

EXIF_ORIENTATION = 0x0112
MAX_PIXELS_ENV = "SEGZERO_PLUS_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
_ALPHA_MODES = {"RGBA": "RGB", "RGBa": "RGB", "RGBX": "RGB", "LA": "L", "La": "L", "PA": "RGB"}


class ImageDecodeError(UserError, ValueError):
    """Bytes that do not decode into an image, or an image over the pixel limit."""


def max_image_pixels() -> int:
    """The decoder's pixel limit: ``$SEGZERO_PLUS_MAX_IMAGE_PIXELS`` or :data:`DEFAULT_MAX_IMAGE_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"${MAX_PIXELS_ENV} must be a whole number of pixels, got {raw!r}") from None
    if value < 1:
        raise UserError(f"${MAX_PIXELS_ENV} must be >= 1, got {raw!r}")
    return value


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image plus what had to be done to get it: ``mode`` is the file's PIL mode ("RGB", "L",
    "RGBA", "P", "I;16", ...), ``scaled`` says high-bit-depth values were scaled to 8 bits and
    ``transposed`` that an EXIF orientation was applied."""

    array: np.ndarray
    mode: str
    transposed: bool
    scaled: bool = False

    @property
    def converted(self) -> bool:
        return self.mode != "RGB"

    def notes(self) -> dict[str, int]:
        out = {}
        if self.converted:
            out[f"image_converted_from_{self.mode}"] = 1
        if self.scaled:
            out["image_scaled_to_8_bits"] = 1
        if self.transposed:
            out["image_exif_transposed"] = 1
        return out


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth values -> uint8 by the rules in the module docstring."""
    v = values.astype(np.float64)
    if mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0
    else:
        finite = v[np.isfinite(v)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if mode == "F" and vmin >= 0.0 and vmax <= 1.0:
            lo, hi = 0.0, 1.0
        elif vmin >= 0 and vmax <= 255 and mode == "I":
            lo, hi = 0.0, 255.0
        elif vmin >= 0 and vmax <= 65535 and mode == "I":
            lo, hi = 0.0, 65535.0
        else:
            lo, hi = vmin, vmax if vmax > vmin else vmin + 1.0
    v = np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo)
    return np.clip(np.rint((v - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    profile = im.info.get("icc_profile")
    if profile:
        from PIL import ImageCms

        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to PIL's formula
    return im.convert("RGB")


def _to_rgb(im: Image.Image) -> tuple[np.ndarray, bool]:
    """(H, W, 3) uint8 of an opened image of any mode, and whether values were scaled."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im), False
    if mode.startswith("I") or mode == "F":
        gray = _scale_to_uint8(np.asarray(im), mode)
        return np.repeat(gray[..., None], 3, axis=2), True
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im)), False
    if mode in _ALPHA_MODES:
        im = im.convert(_ALPHA_MODES[mode])
    return np.asarray(im.convert("RGB")), False


def _decode_error(e: Exception) -> ImageDecodeError:
    if isinstance(e, ImageDecodeError):
        return e
    if isinstance(e, Image.DecompressionBombError):
        return ImageDecodeError(f"image refused as a decompression bomb: {e}")
    return ImageDecodeError(f"cannot decode image: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def open_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Open image bytes with PIL (pixels decoded on first use), refusing from the header an image of more
    than ``max_pixels`` (default :func:`max_image_pixels`). Bytes that are no image, or too large, raise
    :class:`ImageDecodeError`."""
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise ImageDecodeError("no image bytes (the image field is empty)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Exception as e:  # PIL raises many exception types for bad data
        raise _decode_error(e) from e
    w, h = im.size
    if w * h > limit:
        im.close()
        raise ImageDecodeError(
            f"image is {w}x{h} = {w * h / 1e6:.1f} M pixels, over the limit of {limit / 1e6:.1f} M "
            f"(a decompression bomb?); set ${MAX_PIXELS_ENV} higher to allow it"
        )
    return im


def decode_image(data: bytes, max_pixels: int | None = None) -> DecodedImage:
    """Decode image bytes to (H, W, 3) uint8 RGB (see the module docstring), applying an EXIF orientation
    if present (as OpenCV readers do). ``max_pixels`` defaults to :func:`max_image_pixels`."""
    im = open_image(data, max_pixels)
    try:
        with im:
            im.load()
            mode = im.mode
            transposed = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1) != 1
            if transposed:
                im = ImageOps.exif_transpose(im)
            array, scaled = _to_rgb(im)
            return DecodedImage(array=array, mode=mode, transposed=transposed, scaled=scaled)
    except Exception as e:  # PIL raises many exception types for bad data
        raise _decode_error(e) from e


def model_view_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an opened image as qwen_vl_utils' ``fetch_image`` hands it to the model
    (its ``to_rgb``: RGBA composited on white, every other mode by PIL's ``convert("RGB")``; no EXIF
    orientation applied), so that SAM prompts land on the pixels the policy saw. Training rows hold
    upright RGB PNGs written from :func:`decode_image`, on which both views agree."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        image = background
    return np.asarray(image.convert("RGB"))


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
