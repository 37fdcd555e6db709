"""SAM2 scorer: encode each unique image once (LRU cache), decode many prompt sets in exact batches.

Frames. A prompt set's coordinates are pixels of the *prompt frame* ``prompt_hw`` (default: the frame of
the image given, e.g. the MODEL frame of a training row). Points are (x, y); boxes XYXY as given (our
ground truth uses inclusive x2/y2; Seg-Zero passes them to SAM unchanged and so do we). Because SAM2
squashes every image to a square without keeping the aspect ratio, prompts only need normalising by
``prompt_hw``; and masks can be produced directly in any frame ``out_hw`` (default: the image frame) by
upsampling SAM's 256x256 low-resolution logits to it, e.g. ORIGINAL-frame masks from a MODEL-frame image.

Exactness. Prompt sets are grouped by shape (box or not, number of points) and each group is decoded in
batched decoder calls with per-set image features (``repeat_image=False``). Padding prompts to a common
length would NOT be exact (pad tokens take part in attention), grouping is. Results equal one-at-a-time
calls up to float round-off (< 1e-5 in logits, tested), so a pixel whose logit is that close to 0 may
land on either side of the mask threshold.

Protocols. Each request names how its one mask per prompt set is chosen (:mod:`.protocol`:
``single_mask``, SAM2's single-mask output; ``multimask_best``, the best-scored of the three multimask
outputs, as Seg-Zero's evaluation). Requests whose decoder runs with the same ``multimask_output`` share
decoder calls; only the chosen mask is upsampled.

Thread safety: none; one scorer per process (the Ray actor in :mod:`segzero_plus.sam.actor` serialises).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from segzero_plus.lru import LruCache
from segzero_plus.sam.protocol import MULTIMASK_BEST, SINGLE_MASK, best_mask_index, check_protocol

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_image(image: np.ndarray, image_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, S, S) float, squashed to SAM's square input ``S = image_size``
    (antialiased bilinear, aspect ratio not kept, as SAM2's own transforms), ImageNet-normalised."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    arr = np.ascontiguousarray(image)
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(device)
    x = x.permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


class ImageNotCachedError(KeyError):
    """``score`` was called with ``image=None`` for a key whose embedding is not (or no longer) cached."""


@dataclass(frozen=True)
class PromptSet:
    """One SAM prompt: an optional box plus positive (label 1) and negative (label 0) points.

    Coordinates are pixels of the prompt frame (see module docstring): ``box`` is (x1, y1, x2, y2);
    points are (x, y).
    """

    box: tuple[float, float, float, float] | None = None
    points_pos: tuple[tuple[float, float], ...] = ()
    points_neg: tuple[tuple[float, float], ...] = ()

    @classmethod
    def make(
        cls,
        box: Sequence[float] | None = None,
        points_pos: Sequence[Sequence[float]] = (),
        points_neg: Sequence[Sequence[float]] = (),
    ) -> PromptSet:
        """Build from any sequences (lists, arrays), converting to plain float tuples."""
        return cls(
            box=None if box is None else tuple(float(v) for v in box),  # type: ignore[arg-type]
            points_pos=tuple((float(p[0]), float(p[1])) for p in points_pos),
            points_neg=tuple((float(p[0]), float(p[1])) for p in points_neg),
        )

    @property
    def n_points(self) -> int:
        return len(self.points_pos) + len(self.points_neg)

    @property
    def is_empty(self) -> bool:
        return self.box is None and self.n_points == 0

    @property
    def shape_key(self) -> tuple[bool, int]:
        """Prompt sets with the same key are decoded together exactly: (has box, number of points)."""
        return (self.box is not None, self.n_points)


@dataclass
class MaskResult:
    """SAM's answer to one prompt set, in the output frame ``out_hw``.

    ``masks`` is (C, H, W) bool with C = 1 (the request's protocol chose one mask) or 3 (all multimask
    outputs, ``multimask=True``); ``iou_preds`` (C,) are SAM's predicted IoUs; ``logits`` (C, H, W)
    float32 when asked for.
    An empty prompt set is not decoded: all-False mask, predicted IoU 0, ``decoded`` False.
    """

    masks: np.ndarray
    iou_preds: np.ndarray
    logits: np.ndarray | None = None
    decoded: bool = True

    @property
    def best_index(self) -> int:
        return best_mask_index(self.iou_preds) if len(self.iou_preds) > 1 else 0

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: the mask (for multimask output, the one with the highest predicted IoU)."""
        return self.masks[self.best_index]

    @property
    def iou_pred(self) -> float:
        return float(self.iou_preds[self.best_index])


@dataclass
class ScoreRequest:
    """All prompt sets of one image. See :meth:`SamScorer.score` for the fields."""

    image_key: str
    image: np.ndarray | None
    prompts: list[PromptSet]
    out_hw: tuple[int, int] | None = None
    prompt_hw: tuple[int, int] | None = None
    multimask: bool = False
    return_logits: bool = False
    protocol: str = SINGLE_MASK

    def __post_init__(self) -> None:
        check_protocol(self.protocol)

    @property
    def decodes_multimask(self) -> bool:
        """Whether SAM's decoder runs with ``multimask_output=True`` for this request."""
        return self.multimask or self.protocol == MULTIMASK_BEST


@dataclass
class _Entry:
    """Cached image features: ``embed`` (1, 256, S/16, S/16) and two high-res maps, plus the image frame."""

    image_hw: tuple[int, int]
    embed: torch.Tensor
    high_res: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [self.embed, *self.high_res])


@dataclass
class ScorerStats:
    """Counters since construction (or :meth:`SamScorer.reset_stats`)."""

    images_encoded: int = 0
    prompt_sets_decoded: int = 0
    decoder_calls: int = 0
    cache_hits: int = 0
    cache_evictions: int = 0
    requests: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        d = {k: int(v) for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d


def stable_image_key(image: np.ndarray) -> str:
    """A content key for an (H, W, 3) uint8 image: sha1 of its shape and bytes (~2 ms for 840x840)."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha1(f"{arr.shape}|{arr.dtype}".encode())
    h.update(arr.data)
    return h.hexdigest()


class SamScorer:
    """Frozen SAM2 as a batched mask scorer with an LRU embedding cache.

    Args:
        model: a SAM2 model from :func:`segzero_plus.sam.build.build_sam2_model` (eval mode).
        cache_size: number of image embeddings kept (LRU). One entry costs ~16 MB in fp32 at SAM's 1024
            input (8 MB under bf16 autocast): 64 entries hold a whole GRPO step of 16-64 images.
        max_batch: largest number of prompt sets in one decoder call (bounds activation memory, ~16 MB
            per prompt set at 1024 input). None: 32 on CUDA, 4 on CPU (where big batches are slower).
        autocast: "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16", or "off".
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cache_size: int = 64,
        max_batch: int | None = None,
        autocast: str = "auto",
    ) -> None:
        self.device = next(model.parameters()).device
        if max_batch is None:
            max_batch = 32 if self.device.type == "cuda" else 4
        if cache_size < 1 or max_batch < 1:
            raise ValueError("cache_size and max_batch must be >= 1")
        self.model = model
        self.cache_size = int(cache_size)
        self.max_batch = int(max_batch)
        if autocast == "auto":
            autocast = "bf16" if self.device.type == "cuda" else "off"
        if autocast not in ("bf16", "off"):
            raise ValueError(f"autocast must be 'auto', 'bf16' or 'off', got {autocast!r}")
        self.autocast = autocast
        self.image_size = int(model.image_size)
        self._cache: LruCache[str, _Entry] = LruCache(self.cache_size)
        self.stats = ScorerStats()

    # ------------------------------------------------------------------ bookkeeping
    def reset_stats(self) -> None:
        self.stats = ScorerStats()

    def clear_cache(self) -> None:
        self._cache.clear()

    def has_image(self, image_key: str) -> bool:
        return image_key in self._cache

    @property
    def cached_keys(self) -> list[str]:
        """Keys from least to most recently used."""
        return self._cache.keys()

    @property
    def cache_nbytes(self) -> int:
        return sum(e.nbytes for e in self._cache.values())

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.autocast == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    yield
            else:
                yield

    # ------------------------------------------------------------------ encoder
    def _encode(self, image: np.ndarray) -> _Entry:
        model = self.model
        with self._precision():
            backbone = model.image_encoder(preprocess_image(image, self.image_size, self.device))
            fpn = backbone["backbone_fpn"]
            high_res = [model.sam_mask_decoder.conv_s0(fpn[0]), model.sam_mask_decoder.conv_s1(fpn[1])]
            embed = fpn[2]
            if model.directly_add_no_mem_embed:
                embed = embed + model.no_mem_embed.reshape(1, -1, 1, 1)
        self.stats.images_encoded += 1
        return _Entry(image_hw=(int(image.shape[0]), int(image.shape[1])), embed=embed, high_res=high_res)

    def encode(self, image_key: str, image: np.ndarray | None) -> tuple[int, int]:
        """Make sure ``image_key``'s features are cached; returns the image frame (H, W).

        A cached key is reused (no encode) unless ``image`` is given with a different (H, W) than the
        cached one, which is treated as a key collision and re-encoded.
        """
        entry = self._cache.get(image_key)
        if entry is not None and (image is None or tuple(image.shape[:2]) == entry.image_hw):
            self.stats.cache_hits += 1
            return entry.image_hw
        if image is None:
            raise ImageNotCachedError(image_key)
        entry = self._encode(image)
        self.stats.cache_evictions += self._cache.put(image_key, entry)
        return entry.image_hw

    # ------------------------------------------------------------------ decoder
    def _prompt_tensors(
        self, prompts: list[PromptSet], prompt_hws: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates in SAM's input frame (B, n, 2) and labels (B, n): box corners (2, 3) first, then
        positives (1), then negatives (0)."""
        s = float(self.image_size)
        coords, labels = [], []
        for ps, (ph, pw) in zip(prompts, prompt_hws, strict=True):
            pts: list[tuple[float, float]] = []
            lab: list[int] = []
            if ps.box is not None:
                x1, y1, x2, y2 = ps.box
                pts += [(x1, y1), (x2, y2)]
                lab += [2, 3]
            pts += list(ps.points_pos) + list(ps.points_neg)
            lab += [1] * len(ps.points_pos) + [0] * len(ps.points_neg)
            arr = np.asarray(pts, dtype=np.float32).reshape(-1, 2)
            arr = arr / np.asarray([pw, ph], dtype=np.float32) * s
            coords.append(arr)
            labels.append(lab)
        return (
            torch.from_numpy(np.stack(coords)).to(self.device),
            torch.tensor(labels, dtype=torch.int32, device=self.device),
        )

    def _decode_group(
        self,
        entries: list[_Entry],
        prompts: list[PromptSet],
        prompt_hws: list[tuple[int, int]],
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder call for prompt sets of one shape: low-res logits (B, C, s, s) and IoUs (B, C)."""
        model = self.model
        n = len(prompts)
        if all(e is entries[0] for e in entries):
            embed = entries[0].embed.expand(n, -1, -1, -1)
            high_res = [t.expand(n, -1, -1, -1) for t in entries[0].high_res]
        else:
            embed = torch.cat([e.embed for e in entries])
            high_res = [torch.cat([e.high_res[i] for e in entries]) for i in range(2)]
        coords, labels = self._prompt_tensors(prompts, prompt_hws)
        with self._precision():
            sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            low_res, iou, _, _ = model.sam_mask_decoder(
                image_embeddings=embed,
                image_pe=model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=False,
                high_res_features=high_res,
            )
        self.stats.decoder_calls += 1
        self.stats.prompt_sets_decoded += n
        return low_res.float(), iou.float()

    # ------------------------------------------------------------------ public API
    def score(
        self,
        image_key: str,
        image: np.ndarray | None,
        prompts: Sequence[PromptSet],
        out_hw: tuple[int, int] | None = None,
        prompt_hw: tuple[int, int] | None = None,
        multimask: bool = False,
        return_logits: bool = False,
        protocol: str = SINGLE_MASK,
    ) -> list[MaskResult]:
        """Masks for every prompt set on one image, in input order.

        Args:
            image_key: stable key of the image (dataset image id, or :func:`stable_image_key`).
            image: (H, W, 3) uint8 RGB; may be None when the key is cached (else ImageNotCachedError).
            prompts: prompt sets, coordinates in the prompt frame.
            out_hw: (H, W) frame of the returned masks; default the image frame.
            prompt_hw: (H, W) frame of the prompt coordinates; default the image frame.
            multimask: return all three multimask outputs (``protocol`` then only names the best one,
                ``MaskResult.mask``).
            return_logits: also return the float logits upsampled to ``out_hw``.
            protocol: how the one mask is chosen, one of :data:`segzero_plus.sam.protocol.SAM_PROTOCOLS`.
        """
        req = ScoreRequest(
            image_key, image, list(prompts), out_hw, prompt_hw, multimask, return_logits, protocol
        )
        return self.score_many([req])[0]

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[MaskResult]]:
        """Score several requests (several images) together; prompt sets of the same shape whose decoder
        runs with the same ``multimask_output`` share decoder calls across requests. Returns one result
        list per request, in order."""
        # 1. encode each unique image once (requests in order, so the LRU sees real use)
        image_hws: list[tuple[int, int]] = []
        entries: list[_Entry] = []
        for req in requests:
            self.stats.requests += 1
            image_hws.append(self.encode(req.image_key, req.image))
        for req in requests:  # after all encodes: an entry evicted mid-way would fail loudly here
            entry = self._cache.get(req.image_key)
            if entry is None:
                raise RuntimeError(f"cache_size={self.cache_size} is smaller than one call's unique images")
            entries.append(entry)

        # 2. group every prompt set of every request by (multimask decoding, has box, n points)
        groups: dict[tuple[bool, bool, int], list[tuple[int, int]]] = {}
        for r, req in enumerate(requests):
            for p, ps in enumerate(req.prompts):
                if not ps.is_empty:
                    groups.setdefault((req.decodes_multimask, *ps.shape_key), []).append((r, p))

        raw: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        for (multimask, _, _), members in groups.items():
            for start in range(0, len(members), self.max_batch):
                chunk = members[start : start + self.max_batch]
                low_res, iou = self._decode_group(
                    [entries[r] for r, _ in chunk],
                    [requests[r].prompts[p] for r, p in chunk],
                    [requests[r].prompt_hw or image_hws[r] for r, _ in chunk],
                    multimask,
                )
                for i, key in enumerate(chunk):
                    raw[key] = (low_res[i], iou[i])

        # 3. pick the protocol's mask and upsample per request to its output frame
        out: list[list[MaskResult]] = []
        for r, req in enumerate(requests):
            hw = req.out_hw or image_hws[r]
            out.append(
                [
                    self._result(req, raw[(r, p)], hw) if not ps.is_empty else _empty_result(req, hw)
                    for p, ps in enumerate(req.prompts)
                ]
            )
        return out

    @staticmethod
    def _result(
        req: ScoreRequest, decoded: tuple[torch.Tensor, torch.Tensor], hw: tuple[int, int]
    ) -> MaskResult:
        """One prompt set's MaskResult in frame ``hw`` from its low-res logits (C, s, s) and IoUs (C,):
        all channels for ``multimask``, else the protocol's one (the best-scored for multimask_best)."""
        low_res, iou = decoded
        iou_np = iou.cpu().numpy().astype(np.float32)
        if not req.multimask and low_res.shape[0] > 1:
            best = best_mask_index(iou_np)
            low_res, iou_np = low_res[best : best + 1], iou_np[best : best + 1]
        logits = F.interpolate(
            low_res[None], size=(int(hw[0]), int(hw[1])), mode="bilinear", align_corners=False
        )[0]
        return MaskResult(
            masks=(logits > 0).cpu().numpy(),
            iou_preds=iou_np,
            logits=logits.cpu().numpy().astype(np.float32) if req.return_logits else None,
        )


def _empty_result(req: ScoreRequest, hw: tuple[int, int]) -> MaskResult:
    """The answer to an empty prompt set (not decoded): all-False masks, predicted IoU 0."""
    n_out = 3 if req.multimask else 1
    h, w = int(hw[0]), int(hw[1])
    return MaskResult(
        masks=np.zeros((n_out, h, w), dtype=bool),
        iou_preds=np.zeros(n_out, dtype=np.float32),
        logits=np.full((n_out, h, w), -32.0, dtype=np.float32) if req.return_logits else None,
        decoded=False,
    )
