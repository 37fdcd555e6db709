"""Look-alike scenes: the synthetic, seeded sample data that tests, the demo and benchmarks use.

Each scene holds a TARGET object, 0-3 DISTRACTORS of the same shape and colour (the look-alikes that
negative points exist for), and one ANCHOR object of another shape/colour that the referring expression
uses to single the target out: "the red ring left of the blue square". The target sits right next to
the anchor on the named side; every distractor is at least ``1.6x`` further from the anchor, so the
expression has exactly one referent.

Two difficulties:

- ``easy``: distractors anywhere in the image, never touching another object.
- ``hard``: 1-3 distractors, of which one or two are ADJACENT to the target: each touches or overlaps
  the target's bounding box, and may occlude the target or be occluded by it (the object on top gets a
  dark rim so the boundary stays visible). These are the scenes where a box plus positive points leaks
  into the look-alike and a negative point on it should help.

All coordinates and masks are in ORIGINAL image pixels; masks are ``bool`` (H, W) arrays that equal the
VISIBLE painted pixels of each object exactly, so the masks of one scene never overlap.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segzero_plus.arguments import non_negative_int, positive_int
from segzero_plus.errors import UserError
from segzero_plus.masks import decode_rle, encode_rle

SHAPES: tuple[str, ...] = ("disc", "ring", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 215),
    "yellow": (230, 200, 40),
    "purple": (140, 60, 180),
    "orange": (240, 130, 30),
}
RELATIONS: dict[str, tuple[int, int]] = {  # relation -> unit direction (dx, dy) from anchor to target
    "left of": (-1, 0),
    "right of": (1, 0),
    "above": (0, -1),
    "below": (0, 1),
}
DIFFICULTIES: tuple[str, ...] = ("easy", "hard")
SCENE_MIXES: tuple[str, ...] = (*DIFFICULTIES, "mixed")
"""What :func:`generate_scenes` makes: all easy, all hard, or alternating (even index easy, odd hard)."""
_HARD_STREAM = 1
"""Hard scenes draw from the seed sequence ``[seed, _HARD_STREAM]``, so they never repeat an easy scene."""

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((336, 336), (280, 420), (420, 280))
"""(height, width) choices cycled by :func:`generate_scenes` (small, so 50 scenes are ~0.7 MB of PNG);
pass ``sizes=((840, 840),)`` for scenes already in the recipe's model frame."""


@dataclass(frozen=True)
class Scene:
    """One generated scene. ``image`` is (H, W, 3) uint8 RGB; masks are (H, W) bool, original pixels."""

    scene_id: str
    image: np.ndarray
    expression: str
    shape: str
    colour: str
    target_mask: np.ndarray
    distractor_masks: list[np.ndarray] = field(default_factory=list)
    anchor_mask: np.ndarray | None = None
    difficulty: str = "easy"

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _shape_mask(shape: str, cx: float, cy: float, r: float, h: int, w: int) -> np.ndarray:
    """Pixels (centre-sampled) of one object of radius ``r`` centred at (cx, cy)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    if shape == "disc":
        return dx * dx + dy * dy <= r * r
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        s = 0.82 * r
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if shape == "triangle":  # upward isosceles triangle inscribed in the circle
        top, base = -r, 0.75 * r
        inside_y = (dy >= top) & (dy <= base)
        half = (dy - top) / (base - top) * 0.95 * r
        return inside_y & (np.abs(dx) <= half)
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Muted textured background: a low-frequency gradient, soft stripes and blocky noise."""
    base = rng.integers(90, 170, size=3).astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(0.01, 0.04)
    stripes = 10.0 * np.sin(freq * (np.cos(angle) * xs + np.sin(angle) * ys))
    gradient = 25.0 * (xs / w - 0.5) * rng.uniform(-1, 1) + 25.0 * (ys / h - 0.5) * rng.uniform(-1, 1)
    img = base[None, None, :] + (stripes + gradient)[..., None] + _block_noise(rng, h, w, sigma=6.0)
    return img


def _block_noise(rng: np.random.Generator, h: int, w: int, sigma: float, block: int = 8) -> np.ndarray:
    """(H, W, 3) Gaussian noise constant over ``block`` x ``block`` cells (texture that compresses)."""
    noise = rng.normal(0, sigma, size=((h + block - 1) // block, (w + block - 1) // block, 3))
    return np.repeat(np.repeat(noise, block, 0), block, 1)[:h, :w]


def _paint(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], rng: np.random.Generator) -> None:
    shade = rng.uniform(-12, 12, size=3)
    texture = _block_noise(rng, *mask.shape, sigma=4.0)
    img[mask] = np.asarray(colour, dtype=np.float32) + shade + texture[mask]


def _rim(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` pixels (4-neighbour steps) of its border."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def _render(rng: np.random.Generator, h: int, w: int, objects: list) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paint ``objects`` (shape, colour, cx, cy, r) in order over a background; -> (image, visible masks).

    An object painted over an earlier one gets a dark rim (1/60 of the short side, at least 1 px), so
    touching same-kind objects stay separable. Objects that overlap nothing are painted exactly as
    before this option existed (easy scenes never overlap).
    """
    img = _background(rng, h, w)
    rim_width = max(1, round(min(h, w) / 60))
    masks: list[np.ndarray] = []
    for obj_shape, obj_colour, cx, cy, r in objects:
        m = _shape_mask(obj_shape, cx, cy, r, h, w)
        _paint(img, m, COLOURS[obj_colour], rng)
        if any((m & earlier).any() for earlier in masks):
            img[_rim(m, rim_width)] *= 0.45
        masks = [earlier & ~m for earlier in masks] + [m]
    image = (np.clip(np.rint(img), 0, 255).astype(np.uint8) // 8) * 8  # coarse levels: small PNGs
    return image, masks


def generate_scene(
    seed: int,
    size: tuple[int, int] = (840, 840),
    n_distractors: int | None = None,
    scene_id: str | None = None,
    difficulty: str = "easy",
) -> Scene:
    """Generate one scene deterministically from ``seed``.

    Args:
        seed: RNG seed; the same seed, size and difficulty give a byte-identical scene.
        size: (height, width) in pixels.
        n_distractors: number of same-shape, same-colour look-alikes (0-3, hard: 1-3); random when None.
        scene_id: identifier stored in the scene (default ``scene_<seed>``, hard ``hard_<seed>``).
        difficulty: "easy" or "hard" (look-alikes touching or overlapping the target's box).
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    h, w = size
    hard = difficulty == "hard"
    rng = np.random.default_rng([seed, _HARD_STREAM] if hard else seed)
    if n_distractors is None:
        n_distractors = int(rng.integers(1 if hard else 0, 4))
    if not (1 if hard else 0) <= n_distractors <= 3:
        raise ValueError(f"n_distractors must be in {'1' if hard else '0'}..3 for {difficulty} scenes")
    try_layout = _try_hard_layout if hard else _try_layout
    for _attempt in range(200):
        layout = try_layout(rng, h, w, n_distractors)
        if layout is not None:
            break
    else:  # pragma: no cover - only for absurdly small images
        raise ValueError(f"could not place {n_distractors} distractors in a {h}x{w} image")
    (shape, colour, anchor_shape, anchor_colour, relation, objects) = layout
    order = _paint_order(rng, len(objects)) if hard else list(range(len(objects)))
    image, painted = _render(rng, h, w, [objects[i] for i in order])
    masks = [painted[order.index(i)] for i in range(len(objects))]
    expression = f"the {colour} {shape} {relation} the {anchor_colour} {anchor_shape}"
    return Scene(
        scene_id=scene_id or f"{'hard' if hard else 'scene'}_{seed}",
        image=image,
        expression=expression,
        shape=shape,
        colour=colour,
        target_mask=masks[1],
        distractor_masks=masks[2:],
        anchor_mask=masks[0],
        difficulty=difficulty,
    )


def _paint_order(rng: np.random.Generator, n_objects: int) -> list[int]:
    """Hard scenes: anchor first, then the target and the distractors in random order (who occludes whom)."""
    return [0, *(1 + rng.permutation(n_objects - 1)).tolist()]


def _try_layout(rng: np.random.Generator, h: int, w: int, n_distractors: int):
    """Sample anchor, target and distractor placements; None if this draw does not fit."""
    shape, anchor_shape = rng.choice(SHAPES, size=2, replace=False).tolist()
    colour, anchor_colour = rng.choice(list(COLOURS), size=2, replace=False).tolist()
    relation = list(RELATIONS)[int(rng.integers(0, len(RELATIONS)))]
    short = min(h, w)
    r_obj = float(rng.uniform(0.07, 0.10) * short)
    r_anchor = float(rng.uniform(0.07, 0.10) * short)
    margin = 0.02 * short + 2
    ax = float(rng.uniform(r_anchor + margin, w - r_anchor - margin))
    ay = float(rng.uniform(r_anchor + margin, h - r_anchor - margin))
    dx, dy = RELATIONS[relation]
    gap = r_anchor + r_obj + float(rng.uniform(0.03, 0.06) * short)
    tx, ty = ax + dx * gap, ay + dy * gap
    if not (r_obj + margin <= tx <= w - r_obj - margin and r_obj + margin <= ty <= h - r_obj - margin):
        return None
    placed = [(anchor_shape, anchor_colour, ax, ay, r_anchor), (shape, colour, tx, ty, r_obj)]
    for _ in range(n_distractors):
        for _try in range(100):
            r = float(rng.uniform(0.06, 0.10) * short)
            x = float(rng.uniform(r + margin, w - r - margin))
            y = float(rng.uniform(r + margin, h - r - margin))
            clear = all(np.hypot(x - px, y - py) > r + pr + margin for _, _, px, py, pr in placed)
            unique = np.hypot(x - ax, y - ay) > 1.6 * gap
            if clear and unique:
                placed.append((shape, colour, x, y, r))
                break
        else:
            return None
    return shape, colour, anchor_shape, anchor_colour, relation, placed


def _try_hard_layout(rng: np.random.Generator, h: int, w: int, n_distractors: int):
    """Like :func:`_try_layout`, but one or two distractors are adjacent to the target: each one's shape
    meets the target's bounding box (grown by 1 px), centres ``0.8-1.05x`` the sum of radii apart;
    occlusion may hide at most 35% of the target and 50% of the look-alike. None if the draw fails."""
    base = _try_layout(rng, h, w, 0)
    if base is None:
        return None
    shape, colour, anchor_shape, anchor_colour, relation, placed = base
    (_, _, ax, ay, _), (_, _, tx, ty, r_t) = placed
    short, margin = min(h, w), 0.02 * min(h, w) + 2
    gap, heading = np.hypot(tx - ax, ty - ay), np.arctan2(ty - ay, tx - ax)
    target = _shape_mask(shape, tx, ty, r_t, h, w)
    ys, xs = np.nonzero(target)
    box = np.zeros((h, w), bool)
    box[max(ys.min() - 1, 0) : ys.max() + 2, max(xs.min() - 1, 0) : xs.max() + 2] = True
    n_adjacent = 1 if n_distractors == 1 else int(rng.integers(1, 3))
    for k in range(n_distractors):
        for _try in range(100):
            if k < n_adjacent:
                r = float(rng.uniform(0.85, 1.1) * r_t)
                angle = heading + rng.uniform(-np.pi / 3, np.pi / 3)
                d = (r_t + r) * float(rng.uniform(0.8, 1.05))
                x, y = tx + d * np.cos(angle), ty + d * np.sin(angle)
                others = [p for i, p in enumerate(placed) if i != 1]
            else:
                r = float(rng.uniform(0.06, 0.10) * short)
                x, y = (
                    float(rng.uniform(r + margin, w - r - margin)),
                    float(rng.uniform(r + margin, h - r - margin)),
                )
                others = placed
            inside = r + margin <= x <= w - r - margin and r + margin <= y <= h - r - margin
            clear = all(np.hypot(x - px, y - py) > r + pr + margin for _, _, px, py, pr in others)
            if not (inside and clear and np.hypot(x - ax, y - ay) > 1.6 * gap):
                continue
            if k < n_adjacent and not _fair_contact(_shape_mask(shape, x, y, r, h, w), target, box):
                continue
            placed.append((shape, colour, x, y, r))
            break
        else:
            return None
    return shape, colour, anchor_shape, anchor_colour, relation, placed


def _fair_contact(lookalike: np.ndarray, target: np.ndarray, target_box: np.ndarray) -> bool:
    """The look-alike meets the target's box, and either object on top leaves enough of the other."""
    overlap = int((lookalike & target).sum())
    return (
        bool((lookalike & target_box).any())
        and overlap <= 0.35 * target.sum()
        and overlap <= 0.5 * lookalike.sum()
    )


def generate_scenes(
    n: int,
    seed: int = 0,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    n_distractors: int | None = None,
    difficulty: str = "easy",
) -> list[Scene]:
    """``n`` scenes; scene ``i`` uses seed ``seed * 100_003 + i`` and size ``sizes[i % len(sizes)]``.

    ``difficulty`` is "easy", "hard" or "mixed" (scene ``i`` hard for odd ``i``). Easy scene ``i`` is the
    same whatever the mix; ids are ``scene_<seed>_<i>`` (easy) and ``hard_<seed>_<i>`` (hard).
    """
    if difficulty not in SCENE_MIXES:
        raise ValueError(f"difficulty must be one of {SCENE_MIXES}, got {difficulty!r}")
    scenes = []
    for i in range(n):
        kind = difficulty if difficulty != "mixed" else DIFFICULTIES[i % 2]
        scenes.append(
            generate_scene(
                seed * 100_003 + i,
                size=sizes[i % len(sizes)],
                n_distractors=n_distractors,
                scene_id=f"{'scene' if kind == 'easy' else 'hard'}_{seed}_{i:05d}",
                difficulty=kind,
            )
        )
    return scenes


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB of image bytes, through the project's one decoder (``data.images``)."""
    from segzero_plus.data.images import decode_image

    return decode_image(data).array


def write_scenes_parquet(scenes: Iterable[Scene], path: str | Path) -> Path:
    """Write scenes as parquet: id, image (PNG bytes), expression, shape, colour, height, width,
    mask (RLE dict), distractor_masks (list of RLE dicts), anchor_mask (RLE dict), difficulty
    ("easy"/"hard"). Atomic write."""
    import pyarrow as pa

    from segzero_plus.data.io import atomic_write_table

    rows = [
        {
            "id": s.scene_id,
            "image": encode_png(s.image),
            "expression": s.expression,
            "shape": s.shape,
            "colour": s.colour,
            "height": s.height,
            "width": s.width,
            "mask": encode_rle(s.target_mask),
            "distractor_masks": [encode_rle(m) for m in s.distractor_masks],
            "anchor_mask": encode_rle(s.anchor_mask) if s.anchor_mask is not None else None,
            "difficulty": s.difficulty,
        }
        for s in scenes
    ]
    return atomic_write_table(pa.Table.from_pylist(rows), path)


def read_scenes_parquet(path: str | Path) -> list[Scene]:
    """Read scenes written by :func:`write_scenes_parquet` (files without ``difficulty`` are easy)."""
    import pyarrow.parquet as pq

    return [scene_from_row(row) for row in pq.read_table(path).to_pylist()]


def scene_from_row(row: dict) -> Scene:
    """The :class:`Scene` of one row written by :func:`write_scenes_parquet` (no ``difficulty``: easy)."""
    return Scene(
        scene_id=row["id"],
        image=decode_png(row["image"]),
        expression=row["expression"],
        shape=row["shape"],
        colour=row["colour"],
        target_mask=decode_rle(row["mask"]),
        distractor_masks=[decode_rle(r) for r in row["distractor_masks"]],
        anchor_mask=decode_rle(row["anchor_mask"]) if row["anchor_mask"] else None,
        difficulty=row.get("difficulty") or "easy",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("make-scenes", help="generate a look-alike scene dataset (parquet)")
    p.add_argument("--out", required=True, help="output parquet file")
    p.add_argument("-n", "--num", type=positive_int, default=50, help="number of scenes (default 50)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        action="append",
        default=None,
        help="image size; repeat to cycle several (default: mixed sizes incl. 840x840)",
    )
    p.add_argument(
        "--difficulty",
        choices=SCENE_MIXES,
        default="easy",
        help="easy, hard (look-alikes touching/overlapping the target's box) or mixed (alternating); "
        "each scene is labelled in the 'difficulty' column",
    )
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from segzero_plus.data.outputs import output_lock

    sizes = [tuple(s) for s in args.size] if args.size else DEFAULT_SIZES
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .parquet file name")
    with output_lock(out):
        if out.exists() and not args.overwrite:
            raise UserError(f"{out} exists; pass --overwrite to replace it")
        try:
            scenes = generate_scenes(args.num, seed=args.seed, sizes=sizes, difficulty=args.difficulty)
        except ValueError as exc:  # objects do not fit an image that small
            raise UserError(f"cannot generate scenes of sizes {sizes}: {exc}; use larger --size") from None
        path = write_scenes_parquet(scenes, out)
    n_hard = sum(s.difficulty == "hard" for s in scenes)
    size_kib = path.stat().st_size / 1024
    print(f"wrote {args.num} scenes ({args.num - n_hard} easy, {n_hard} hard) to {path} ({size_kib:.0f} KiB)")
    return 0
