"""One evaluation batch end to end: eval rows -> generation -> parsing -> SAM2 -> per-sample records.

Frames. Eval rows carry the ORIGINAL image and masks (docs/CONVENTIONS.md). The policy sees the image
resized to the MODEL frame (840x840 squash by default, as in training) and answers in MODEL-frame
pixels; the answer is mapped to ORIGINAL pixels per axis (``x * W / W_model``, ``y * H / H_model``,
Seg-Zero's rescaling), clamped into the image, and given to SAM2 with the ORIGINAL image: box +
positive points (label 1) + negative points (label 0). SAM's mask comes out at the original size.

Per image there is ONE encode (the scorer's embedding cache, keyed by dataset and image id); the
prompt sets of a batch (the answer, the answer without its negatives, the ground-truth prompts) are
decoded together in batched decoder calls, all under one SAM protocol (``multimask_best`` by default,
Seg-Zero's evaluation: the best-scored of SAM's three masks; see :mod:`segzero_plus.sam.protocol`).

Nothing is dropped and one bad row never stops a batch: an undecodable image, a row whose ground truth
cannot be scored (a missing or undecodable mask, an empty mask or query, masks of another size than
the image: ``invalid_row``), an unparseable answer, a generation or SAM error, or an empty mask becomes
a record with a ``failure`` reason and detail, ``I = 0`` and ``U = |gt \\ ignore|`` (0 when the mask
itself is unusable).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from segzero_plus.evaluation.backends import GenerationBackend
from segzero_plus.geometry import (
    clamp_box,
    clamp_points,
    inscribed_circle_centres,
    mask_bbox,
    scale_box,
    scale_points,
)
from segzero_plus.masks import decode_rle, encode_rle
from segzero_plus.metrics import (
    FAIL_GENERATION,
    FAIL_IMAGE,
    FAIL_INVALID_ROW,
    FAIL_SAM,
    FAIL_UNPARSEABLE,
    score_sample,
)
from segzero_plus.parsing import Answer, parse_answer
from segzero_plus.sam.protocol import PUBLISHED_PROTOCOL, check_protocol

Frame = tuple[int, int]


def parse_resize(resize: str | Sequence[int] | None) -> tuple[int, int] | str | None:
    """MODEL frame spec: ``840x840`` or (840, 840) -> (840, 840) (height, width); ``smart``; ``none``/None -> None."""
    if resize is None or (isinstance(resize, str) and resize.lower() in ("none", "original", "")):
        return None
    if isinstance(resize, str):
        if resize == "smart":
            return "smart"
        try:
            h, w = (int(v) for v in resize.lower().split("x"))
        except ValueError:
            raise ValueError(f"resize must be 'HxW', 'smart' or 'none', got {resize!r}") from None
        return h, w
    h, w = (int(v) for v in resize)
    return h, w


@dataclass
class Sample:
    """A decoded eval row. ``image`` (H, W, 3) uint8 and masks (H, W) bool are in the ORIGINAL frame."""

    row: dict[str, Any]
    image: np.ndarray | None
    gt: np.ndarray
    ignore: np.ndarray | None
    error: str | None = None
    failure: str = FAIL_IMAGE
    """The failure reason recorded when ``error`` is set."""

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @cached_property
    def image_key(self) -> str:
        """SAM cache key of the decoded image (:func:`segzero_plus.sam.scorer.stable_image_key`): the rows
        of one image (several expressions) share one encode. Only for a sample whose image decoded."""
        from segzero_plus.sam.scorer import stable_image_key

        return stable_image_key(self.image)


def _masks(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """(gt, ignore, why the row cannot be scored or None); an unusable gt becomes an empty (1, 1) mask."""
    try:
        gt = decode_rle(row["mask"])
        ignore = decode_rle(row["ignore"]) if row.get("ignore") else None
    except (KeyError, TypeError, ValueError) as exc:
        return np.zeros((1, 1), dtype=bool), None, f"ground-truth mask missing or undecodable ({exc})"
    if ignore is not None and ignore.shape != gt.shape:
        return gt, None, f"ignore mask {ignore.shape} and mask {gt.shape} differ in size"
    if not (gt & ~ignore if ignore is not None else gt).any():
        return gt, ignore, "empty ground-truth mask"
    if not str(row.get("query") or "").strip():
        return gt, ignore, "empty query"
    return gt, ignore, None


def decode_sample(row: dict[str, Any]) -> Sample:
    """Decode one eval row. A row that cannot be scored (``invalid_row``), an undecodable image or one of
    another size than the mask (``image_error``) gives ``error`` set instead of raising."""
    from segzero_plus.data.images import ImageDecodeError, decode_image

    gt, ignore, problem = _masks(row)
    if problem is not None:
        return Sample(row, None, gt, ignore, problem, FAIL_INVALID_ROW)
    try:
        image = decode_image(row.get("image")).array
    except ImageDecodeError as exc:
        return Sample(row, None, gt, ignore, f"{exc}")
    if image.shape[:2] != gt.shape:
        return Sample(row, None, gt, ignore, f"image {image.shape[:2]} and mask {gt.shape} differ in size")
    return Sample(row, image, gt, ignore)


def answer_prompts(answer: Answer, model_hw: Frame, orig_hw: Frame) -> dict[str, Any]:
    """The answer's prompts in both frames: MODEL frame as parsed, ORIGINAL frame scaled and clamped."""
    box_o = None if answer.bbox is None else clamp_box(scale_box(answer.bbox, model_hw, orig_hw), orig_hw)
    return {
        "model": {
            "bbox": None if answer.bbox is None else [float(v) for v in answer.bbox],
            "points_pos": [[float(x), float(y)] for x, y in answer.points_pos],
            "points_neg": [[float(x), float(y)] for x, y in answer.points_neg],
        },
        "original": {
            "bbox": None if box_o is None else [round(v, 2) for v in box_o],
            "points_pos": [
                [round(x, 2), round(y, 2)]
                for x, y in clamp_points(scale_points(answer.points_pos, model_hw, orig_hw), orig_hw)
            ],
            "points_neg": [
                [round(x, 2), round(y, 2)]
                for x, y in clamp_points(scale_points(answer.points_neg, model_hw, orig_hw), orig_hw)
            ],
        },
    }


def gt_prompts(gt: np.ndarray, ignore: np.ndarray | None) -> dict[str, Any] | None:
    """Ground-truth prompts (ORIGINAL frame): the mask's box and its two inscribed-circle centres."""
    target = gt & ~ignore if ignore is not None else gt
    box = mask_bbox(target)
    if box is None:
        return None
    points = inscribed_circle_centres(target, n=2)
    return {
        "bbox": [float(v) for v in box],
        "points_pos": [[float(x), float(y)] for x, y in points],
        "points_neg": [],
    }


def _iu(mask: np.ndarray | None, s: Sample, failure: str | None = None) -> dict[str, Any]:
    sc = score_sample(mask, s.gt, s.ignore, failure)
    return {"I": sc.intersection, "U": sc.union, "IoU": sc.iou, "failure": sc.failure}


@dataclass
class PreparedBatch:
    """What stage 1 hands to stage 2: samples, records so far, SAM requests and their owners, timings (s)."""

    samples: list[Sample]
    records: dict[str, dict[str, Any]]
    requests: list[Any]
    owners: list[tuple[Sample, list[str]]]
    timings: dict[str, float]


class Evaluator:
    """Backend + SAM scorer: :meth:`evaluate` turns a batch of eval rows into per-sample records.

    Args:
        backend: a generation backend (:mod:`segzero_plus.evaluation.backends`).
        scorer: a :class:`segzero_plus.sam.scorer.SamScorer`.
        resize: MODEL frame: (height, width) squash, "smart" (Qwen's smart_resize) or None (original).
        diagnostics: also decode the answer without its negatives and the ground-truth prompts.
        store_masks: put the predicted masks (RLE) in the records (needed by the gallery).
        sam_protocol: how SAM's one mask per prompt set is chosen
            (:data:`segzero_plus.sam.protocol.SAM_PROTOCOLS`), for the answer and the diagnostics alike.
    """

    def __init__(
        self,
        backend: GenerationBackend,
        scorer: Any,
        resize: tuple[int, int] | str | None = (840, 840),
        diagnostics: bool = True,
        store_masks: bool = True,
        sam_protocol: str = PUBLISHED_PROTOCOL,
    ) -> None:
        self.backend = backend
        self.scorer = scorer
        self.resize = resize
        self.diagnostics = diagnostics
        self.store_masks = store_masks
        self.sam_protocol = check_protocol(sam_protocol)

    def _model_image(self, image: np.ndarray) -> np.ndarray:
        from segzero_plus.data.images import model_size, resize_image

        return resize_image(image, model_size(image.shape[:2], self.resize))

    def _generate(self, images: list[np.ndarray], queries: list[str], ids: list[str]) -> list[Any]:
        """Generate for the batch; if the batched call fails, retry each sample alone (errors -> str)."""
        with_ids = getattr(self.backend, "needs_ids", False)

        def call(ims: list[np.ndarray], qs: list[str], sids: list[str]) -> list[Any]:
            return list(
                self.backend.generate(ims, qs, ids=sids) if with_ids else self.backend.generate(ims, qs)
            )

        try:
            return call(images, queries, ids)
        except Exception:
            out: list[Any] = []
            for im, q, i in zip(images, queries, ids, strict=True):
                try:
                    out.append(call([im], [q], [i])[0])
                except Exception as exc:
                    out.append(f"{type(exc).__name__}: {exc}")
            return out

    def _score(self, requests: list[Any]) -> list[Any]:
        """SAM for every request together; on error isolate the failing request(s) (errors -> str)."""
        if not requests:
            return []
        try:
            return list(self.scorer.score_many(requests))
        except Exception:
            out: list[Any] = []
            for req in requests:
                try:
                    out.append(self.scorer.score_many([req])[0])
                except Exception as exc:
                    out.append(f"{type(exc).__name__}: {exc}")
            return out

    def evaluate(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records (JSON-ready dicts) for ``rows`` (eval parquet rows), in input order."""
        return self.finish(self.prepare(rows))

    def prepare(self, rows: Sequence[dict[str, Any]]) -> PreparedBatch:
        """Stage 1 (the policy): decode, resize to the MODEL frame, generate, parse, build SAM prompts.

        :meth:`finish` (stage 2, SAM) of one batch may run in another thread while this runs for the
        next batch (see ``LocalPool``): stage 1 uses only the backend, stage 2 only the scorer.
        """
        from segzero_plus.sam.scorer import PromptSet, ScoreRequest

        t0 = time.perf_counter()
        samples = [decode_sample(dict(r)) for r in rows]
        ok = [s for s in samples if s.error is None]
        model_images = [self._model_image(s.image) for s in ok]
        t_prep = time.perf_counter()
        gens = self._generate(model_images, [str(s.row["query"]) for s in ok], [s.id for s in ok])
        t_gen = time.perf_counter()

        records: dict[str, dict[str, Any]] = {}
        requests, owners = [], []
        for s, mimg, gen in zip(ok, model_images, gens, strict=True):
            orig_hw, model_hw = s.gt.shape, mimg.shape[:2]
            rec = self._base_record(s)
            rec["model_hw"] = [int(model_hw[0]), int(model_hw[1])]
            if isinstance(gen, str):
                rec.update(_iu(None, s, FAIL_GENERATION), failure_detail=gen[:300])
                records[s.id] = rec
                continue
            answer = parse_answer(gen.text)
            prompts = answer_prompts(answer, model_hw, orig_hw)
            rec.update(
                response=gen.text,
                n_prompt_tokens=gen.n_prompt_tokens,
                n_new_tokens=gen.n_new_tokens,
                think=answer.think,
                strict=answer.strict,
                parse_ok=answer.ok,
                parse_errors=list(answer.errors[:8]),
                prompts=prompts,
            )
            gtp = gt_prompts(s.gt, s.ignore) if self.diagnostics else None
            rec["gt_prompts"] = gtp
            sets, kinds = [], []
            if answer.ok:
                o = prompts["original"]
                sets.append(PromptSet.make(o["bbox"], o["points_pos"], o["points_neg"]))
                kinds.append("main")
                if self.diagnostics and o["points_neg"]:
                    sets.append(PromptSet.make(o["bbox"], o["points_pos"], ()))
                    kinds.append("noneg")
            else:
                rec.update(
                    _iu(None, s, FAIL_UNPARSEABLE), failure_detail="; ".join(answer.errors[:3]) or None
                )
            if gtp is not None:
                sets.append(PromptSet.make(gtp["bbox"], gtp["points_pos"], ()))
                kinds.append("gt_prompt")
            records[s.id] = rec
            if sets:
                requests.append(ScoreRequest(s.image_key, s.image, sets, protocol=self.sam_protocol))
                owners.append((s, kinds))
        t_parse = time.perf_counter()
        timings = {"prepare": t_prep - t0, "generate": t_gen - t_prep, "parse": t_parse - t_gen}
        return PreparedBatch(samples, records, requests, owners, timings)

    def finish(self, batch: PreparedBatch) -> list[dict[str, Any]]:
        """Stage 2 (SAM): decode every prompt set of the batch (one encode per image) and score."""
        samples, records = batch.samples, batch.records
        t0 = time.perf_counter()
        for (s, kinds), res in zip(batch.owners, self._score(batch.requests), strict=True):
            rec = records[s.id]
            if isinstance(res, str):
                if "main" in kinds:
                    rec.update(_iu(None, s, FAIL_SAM), failure_detail=res[:300])
                continue
            by_kind = dict(zip(kinds, res, strict=True))
            if "main" in by_kind:
                mask = by_kind["main"].mask
                rec.update(
                    _iu(mask, s), pred_area=int(mask.sum()), sam_iou_pred=round(by_kind["main"].iou_pred, 4)
                )
                if self.store_masks:
                    rec["pred_mask"] = encode_rle(mask)
                if "noneg" in by_kind:
                    rec["noneg"] = _iu(by_kind["noneg"].mask, s)
                    if self.store_masks:
                        rec["pred_mask_noneg"] = encode_rle(by_kind["noneg"].mask)
            if "gt_prompt" in by_kind:
                rec["gt_prompt"] = _iu(by_kind["gt_prompt"].mask, s)
        t_sam = time.perf_counter()

        for s in samples:
            if s.error is not None:
                rec = self._base_record(s)
                rec.update(_iu(None, s, s.failure), failure_detail=s.error[:300])
                records[s.id] = rec
        n = max(1, len(samples))
        timings = {f"{k}_s": round(v / n, 5) for k, v in batch.timings.items()}
        timings.update(sam_s=round((t_sam - t0) / n, 5), batch=len(samples))
        out = []
        for s in samples:
            rec = records[s.id]
            if self.diagnostics and "noneg" not in rec:  # no negatives or a failure: the same result
                rec["noneg"] = {k: rec[k] for k in ("I", "U", "IoU", "failure")}
            rec["timings"] = timings
            out.append(rec)
        return out

    @staticmethod
    def _base_record(s: Sample) -> dict[str, Any]:
        r = s.row
        return {
            "id": s.id,
            "data_source": r.get("data_source"),
            "split": r.get("split"),
            "image_id": r.get("image_id"),
            "query": r.get("query"),
            "orig_hw": [int(s.gt.shape[0]), int(s.gt.shape[1])],
            "gt_area": int(s.gt.sum()),
            "response": None,
            "failure_detail": None,
        }
