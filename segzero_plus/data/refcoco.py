"""The "refer" layout of RefCOCO / RefCOCO+ / RefCOCOg: ``instances.json`` (COCO) + ``refs(SPLITBY).p``.

Folder: ``<root>/<dataset>/instances.json`` and ``<root>/<dataset>/refs(<split_by>).p`` (``root`` may also
be the dataset folder itself). Images are COCO train2014 files named by ``instances.json``'s ``images``.
All masks here are in the ORIGINAL image frame, ``bool`` (H, W). Also the annotation decoding every
refer-layout conversion shares (unusable annotations are reported, never converted) and the inputs of
their resume fingerprint.
"""

from __future__ import annotations

import io
import json
import pickle
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segzero_plus.data import io as dio
from segzero_plus.data.outputs import file_digest, stat_digest
from segzero_plus.data.validation import segmentation_problem
from segzero_plus.errors import UserError
from segzero_plus.masks import decode_rle, polygons_to_mask

DATASETS: dict[str, str] = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
"""dataset folder -> its standard split-by."""

SLUGS: dict[str, str] = {"refcoco": "refcoco", "refcoco+": "refcocoplus", "refcocog": "refcocog"}
"""dataset folder -> name used in ids, data sources and file names."""


@dataclass(frozen=True)
class ReferExpression:
    """One referring expression (a sentence of a ref) with the ids that locate it."""

    ref_id: int
    ann_id: int
    image_id: int
    category_id: int
    split: str
    sent_id: int
    sentence: str


class UnsafePickleError(UserError):
    """A refs pickle that asks to import a Python object (which could run code): refused unread."""


class _RefsUnpickler(pickle.Unpickler):
    """Unpickler of the released refer files: they hold only lists, dicts, strings, numbers, booleans
    and None, which pickle builds without importing anything, so every import request (``find_class``:
    the route of os.system, eval and any class with a ``__reduce__``) and every persistent id is refused
    before anything runs."""

    def __init__(self, data: bytes, path: Path, encoding: str) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self.path = path

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self.path} asks for {what}: refer refs files hold only lists, dicts, strings and numbers, "
            "so it was refused unread (it could run code); re-download refs(...).p from the refer release"
        )

    def find_class(self, module: str, name: str) -> Any:
        raise self._refuse(f"the Python object {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise self._refuse("a persistent object")


def load_refs_pickle(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``refs(...).p`` pickle (written by Python 2 in the released files) without running code: see
    :class:`_RefsUnpickler`. Python 2 byte strings are decoded as ASCII, else as latin-1."""
    path = Path(path)
    data = path.read_bytes()
    try:
        refs = _RefsUnpickler(data, path, "ASCII").load()
    except UnicodeDecodeError:
        refs = _RefsUnpickler(data, path, "latin1").load()
    if not isinstance(refs, list):
        raise UserError(f"{path} holds a {type(refs).__name__}, not the list of refs of the refer layout")
    return refs


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """COCO ``segmentation`` (polygon list, compressed or uncompressed RLE) -> bool (H, W) mask."""
    if isinstance(segmentation, list):
        return polygons_to_mask([list(map(float, p)) for p in segmentation if len(p) >= 6], height, width)
    if isinstance(segmentation, dict):
        mask = decode_rle(segmentation)
        if mask.shape != (height, width):
            raise ValueError(f"RLE size {mask.shape} differs from the image size {(height, width)}")
        return mask
    raise TypeError(f"unsupported segmentation type {type(segmentation).__name__}")


def decode_annotation(segmentation: Any, height: int, width: int) -> tuple[np.ndarray | None, str | None]:
    """(ORIGINAL-frame mask, None) of a COCO ``segmentation``, or (None, why it is unusable): see
    :func:`~segzero_plus.data.validation.segmentation_problem`; an empty mask is unusable too."""
    problem = segmentation_problem(segmentation, height, width)
    if problem is None:
        try:
            mask = segmentation_mask(segmentation, height, width)
        except (ValueError, TypeError, KeyError) as exc:
            return None, f"segmentation does not decode: {exc}"
        if mask.any():
            return mask, None
        problem = "empty ground-truth mask"
    return None, problem


def distractor_masks(
    out: dio.ChunkOutput, segmentations: Sequence[Any], height: int, width: int
) -> list[np.ndarray]:
    """Masks of the usable distractor ``segmentations``; unusable ones are left out and counted (note
    ``distractor_bad_annotation``) instead of costing the target row."""
    masks = []
    for seg in segmentations:
        if segmentation_problem(seg, height, width) is None:
            masks.append(segmentation_mask(seg, height, width))
        else:
            out.note("distractor_bad_annotation")
    return masks


def refer_inputs(refer: ReferDataset, image_paths: Sequence[str]) -> dict[str, str]:
    """Resume-fingerprint inputs of a refer-layout conversion: the annotation files' bytes and the
    names, sizes and modification times of the images it reads."""
    return {
        "refs": file_digest(refer.refs_path),
        "instances.json": file_digest(refer.instances_path),
        "images": stat_digest(image_paths),
    }


def image_folder(path: str | Path) -> Path:
    """``path`` if it is a folder (of COCO images); UserError otherwise."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"image folder not found: {p}; give the COCO train2014 folder with --images")
    return p


class ReferDataset:
    """A refer-layout dataset loaded in memory (refs, annotations, images, categories)."""

    def __init__(self, root: str | Path, dataset: str = "refcocog", split_by: str | None = None):
        root = Path(root)
        folder = root if (root / "instances.json").exists() else root / dataset
        split_by = split_by or DATASETS.get(dataset, "umd")
        refs_path = folder / f"refs({split_by}).p"
        inst_path = folder / "instances.json"
        for p in (refs_path, inst_path):
            if not p.is_file():
                raise UserError(f"{p} not found (expected the refer layout: instances.json + refs(...).p)")
        self.dataset = dataset
        self.split_by = split_by
        self.folder = folder
        self.refs_path, self.instances_path = refs_path, inst_path
        try:
            self.refs: list[dict[str, Any]] = load_refs_pickle(refs_path)
            instances = json.loads(inst_path.read_text())
            self.images: dict[int, dict[str, Any]] = {int(im["id"]): im for im in instances["images"]}
            self.anns: dict[int, dict[str, Any]] = {int(a["id"]): a for a in instances["annotations"]}
            self.categories: dict[int, str] = {
                int(c["id"]): c["name"] for c in instances.get("categories", [])
            }
            self._anns_by_image: dict[int, list[int]] = defaultdict(list)
            for a in instances["annotations"]:
                self._anns_by_image[int(a["image_id"])].append(int(a["id"]))
        except UserError:
            raise
        except Exception as exc:  # a truncated or foreign file: pickle/json raise many types
            raise UserError(
                f"cannot read the refer annotations in {folder} ({type(exc).__name__}: {exc}); "
                "re-download refs(...).p and instances.json"
            ) from None

    @property
    def slug(self) -> str:
        return SLUGS.get(self.dataset, self.dataset.replace("+", "plus"))

    @property
    def splits(self) -> list[str]:
        return sorted({str(r["split"]) for r in self.refs})

    def expressions(self, split: str, per: Literal["sentence", "ref"] = "sentence") -> list[ReferExpression]:
        """Expressions of ``split`` ordered by (ref_id, sent_id): every sentence, or the first per ref."""
        out: list[ReferExpression] = []
        for ref in sorted((r for r in self.refs if r["split"] == split), key=lambda r: int(r["ref_id"])):
            sents = sorted(ref["sentences"], key=lambda s: int(s["sent_id"]))
            if per == "ref":
                sents = sents[:1]
            for s in sents:
                out.append(
                    ReferExpression(
                        ref_id=int(ref["ref_id"]),
                        ann_id=int(ref["ann_id"]),
                        image_id=int(ref["image_id"]),
                        category_id=int(ref["category_id"]),
                        split=str(ref["split"]),
                        sent_id=int(s["sent_id"]),
                        sentence=str(s.get("sent") or s.get("raw") or "").strip(),
                    )
                )
        return out

    def image_size(self, image_id: int) -> tuple[int, int]:
        """(height, width) of an image in original pixels."""
        im = self.images[image_id]
        return int(im["height"]), int(im["width"])

    def image_file(self, image_id: int, images_dir: str | Path) -> Path:
        return Path(images_dir) / self.images[image_id]["file_name"]

    def ann_mask(self, ann_id: int) -> np.ndarray:
        """Mask of one annotation, original frame."""
        ann = self.anns[ann_id]
        h, w = self.image_size(int(ann["image_id"]))
        return segmentation_mask(ann["segmentation"], h, w)

    def distractor_ann_ids(self, ann_id: int) -> list[int]:
        """Other annotations of the same category in the same image (sorted by id)."""
        ann = self.anns[ann_id]
        return sorted(
            a
            for a in self._anns_by_image[int(ann["image_id"])]
            if a != ann_id and self.anns[a]["category_id"] == ann["category_id"]
        )
