"""``segzero-plus segment``: one image + one query -> reasoning, answer, mask PNG and overlay PNG.

The image is shown to the model as in training (``--resize``, 840x840 squash by default); the answer
(MODEL frame) is mapped to the image's ORIGINAL pixels and given to SAM2 (box + positive points label 1
+ negative points label 0); the mask is written at the original size. Bad input (missing or unreadable
image, missing model folder or SAM checkpoint) prints ONE line starting with ``error:`` on stderr and
exits with status 2. Without ``--model``/``--sam`` the offline tiny models are used (random weights: the
answer is not meaningful and usually unparseable, which is reported, not hidden).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_plus.errors import UserError
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG, PUBLISHED_PROTOCOL, SAM_PROTOCOLS


class SegmentError(UserError, RuntimeError):
    """A problem with the inputs of ``segment`` (reported as one line)."""


@dataclass
class Segmentation:
    """The result of :func:`segment_image`. ``mask`` (H, W) bool in ORIGINAL pixels (all False when the
    answer could not be used); ``prompts`` in both frames; ``error`` says why there is no mask."""

    response: str
    think: str | None
    prompts: dict[str, Any]
    mask: np.ndarray
    error: str | None = None


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (any mode, see ``data.images.decode_image``); SegmentError
    for a missing, unreadable, undecodable or oversized image."""
    from segzero_plus.data.images import ImageDecodeError, decode_image

    p = Path(path)
    if not p.is_file():
        raise SegmentError(f"image not found: {p}" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        return decode_image(p.read_bytes()).array
    except (ImageDecodeError, OSError) as exc:
        raise SegmentError(f"cannot read image {p}: {str(exc).splitlines()[0]}") from None


def segment_image(
    image: np.ndarray,
    query: str,
    backend: Any,
    scorer: Any,
    resize: tuple[int, int] | str | None = (840, 840),
    response: str | None = None,
    sam_protocol: str = PUBLISHED_PROTOCOL,
) -> Segmentation:
    """Generate (unless ``response`` is given), parse, map to original pixels, run SAM2 once (its mask
    chosen by ``sam_protocol``, :data:`segzero_plus.sam.protocol.SAM_PROTOCOLS`)."""
    from segzero_plus.data.images import model_size, resize_image
    from segzero_plus.evaluation.pipeline import answer_prompts
    from segzero_plus.parsing import parse_answer
    from segzero_plus.sam.scorer import PromptSet, stable_image_key

    model_hw = model_size(image.shape[:2], resize)
    if response is None:
        response = backend.generate([resize_image(image, model_hw)], [query])[0].text
    answer = parse_answer(response)
    prompts = answer_prompts(answer, model_hw, image.shape[:2])
    empty = np.zeros(image.shape[:2], dtype=bool)
    if not answer.ok:
        return Segmentation(
            response, answer.think, prompts, empty, "answer unparseable: " + "; ".join(answer.errors[:3])
        )
    o = prompts["original"]
    result = scorer.score(
        stable_image_key(image),
        image,
        [PromptSet.make(o["bbox"], o["points_pos"], o["points_neg"])],
        protocol=sam_protocol,
    )[0]
    mask = result.mask
    return Segmentation(
        response, answer.think, prompts, mask, None if mask.any() else "SAM returned an empty mask"
    )


def _png_bytes(picture: Any) -> bytes:
    import io

    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def register(subparsers: argparse._SubParsersAction) -> None:
    from segzero_plus.arguments import positive_int, sam_config_name, template_name

    p = subparsers.add_parser(
        "segment", help="segment one image from a text query (prints reasoning, writes mask)"
    )
    p.add_argument("--image", required=True, help="image file (any PIL format)")
    p.add_argument("--query", required=True, help="referring expression or reasoning question")
    p.add_argument(
        "--model", default=None, help="Hugging Face model folder (default: the offline tiny model)"
    )
    p.add_argument("--sam", default=None, help="SAM2 checkpoint (default: random-weight hiera_t, demo only)")
    p.add_argument(
        "--sam-config",
        type=sam_config_name,
        default=None,
        help=f"SAM2 config (default {DEFAULT_SAM_CONFIG} with --sam)",
    )
    p.add_argument(
        "--sam-protocol",
        choices=SAM_PROTOCOLS,
        default=PUBLISHED_PROTOCOL,
        help="how SAM's mask is chosen (default multimask_best, as Seg-Zero's evaluation)",
    )
    p.add_argument("--template", type=template_name, default="negative_point")
    p.add_argument("--resize", default="840x840", help="MODEL frame: HxW squash (training), smart, none")
    p.add_argument("--max-new-tokens", type=positive_int, default=1024)
    p.add_argument(
        "--out", default="outputs/segment", help="folder for <stem>_mask.png and <stem>_overlay.png"
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--answer", default=None, help="use this response instead of generating one (debug SAM prompts)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--overwrite", action="store_true", help="replace existing mask/overlay PNGs in --out")
    p.set_defaults(func=_cli)


def _output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(mask PNG, overlay PNG) in a writable ``--out``; UserError for an empty query or existing outputs."""
    from segzero_plus.data.outputs import writable_folder

    if not args.query.strip():
        raise SegmentError("--query is empty; give a referring expression or a question")
    out = writable_folder(args.out)
    stem = Path(args.image).stem
    paths = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
    existing = [p for p in paths if p.exists()]
    if existing and not args.overwrite:
        raise SegmentError(f"{existing[0]} exists; pass --overwrite to replace it or choose another --out")
    return paths


def _models(args: argparse.Namespace, notes: list[str]) -> tuple[Any, Any]:
    """(generation backend or None with ``--answer``, SAM scorer); the tiny offline models by default."""
    from segzero_plus.evaluation.backends import GenerationSettings, make_backend, resolve_device
    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.sam.scorer import SamScorer

    if args.sam is not None and not Path(args.sam).is_file():
        raise SegmentError(f"SAM2 checkpoint not found: {args.sam}")
    if args.model is not None and not Path(args.model).is_dir():
        raise SegmentError(f"model folder not found: {args.model}")
    if args.sam is None:
        from segzero_plus.testing.tiny_models import ensure_tiny_sam

        sam_config, sam_ckpt = ensure_tiny_sam(args.sam_config or "sam2.1_hiera_t")
        notes.append(f"random-weight SAM2 {sam_config} (pass --sam CKPT for real masks)")
    else:
        sam_config, sam_ckpt = args.sam_config or DEFAULT_SAM_CONFIG, args.sam
    device = resolve_device(args.device)
    backend = None
    if args.answer is None:
        model = args.model
        if model is None:
            from segzero_plus.testing.tiny_models import ensure_tiny_qwen

            model = ensure_tiny_qwen()
            notes.append("tiny random-weight Qwen2.5-VL (pass --model DIR for a trained policy)")
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        backend = make_backend("transformers", model, args.template, settings, device=device)
    return backend, SamScorer(build_sam2_model(sam_config, sam_ckpt, device=device), cache_size=1)


def _cli(args: argparse.Namespace) -> int:
    from PIL import Image

    from segzero_plus.data.io import atomic_write_bytes
    from segzero_plus.evaluation.backends import quiet_transformers
    from segzero_plus.evaluation.pipeline import parse_resize
    from segzero_plus.visualize import overlay

    quiet_transformers()
    image = load_image(args.image)
    try:
        resize = parse_resize(args.resize)
    except ValueError as exc:
        raise SegmentError(str(exc)) from None
    mask_path, overlay_path = _output_paths(args)
    notes: list[str] = []
    backend, scorer = _models(args, notes)
    seg = segment_image(
        image,
        args.query,
        backend,
        scorer,
        resize=resize,
        response=args.answer,
        sam_protocol=args.sam_protocol,
    )
    o = seg.prompts["original"]
    mask_png = Image.fromarray(seg.mask.astype(np.uint8) * 255)
    overlay_png = overlay(
        image, None, seg.mask, o["bbox"], o["points_pos"], o["points_neg"], title=args.query
    )
    for path, picture in ((mask_path, mask_png), (overlay_path, overlay_png)):
        atomic_write_bytes(path, _png_bytes(picture))

    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "response": seg.response,
                    "think": seg.think,
                    "prompts": seg.prompts,
                    "mask_pixels": int(seg.mask.sum()),
                    "error": seg.error,
                    "mask": str(mask_path),
                    "overlay": str(overlay_path),
                    "notes": notes,
                }
            )
        )
        return 0
    for n in notes:
        print(f"note: {n}")
    print(f"query: {args.query}")
    print(f"reasoning: {seg.think if seg.think is not None else '(none)'}")
    print(f"response: {seg.response}")
    if seg.error is None:
        print(
            f"answer (original pixels): bbox={o['bbox']} points_pos={o['points_pos']} points_neg={o['points_neg']}"
        )
        print(f"mask: {int(seg.mask.sum())} pixels of {seg.mask.size}")
    else:
        print(f"no mask: {seg.error}")
    print(f"wrote {mask_path} and {overlay_path}")
    return 0
