"""Synthetic, policy-like responses and a scripted backend (demo, tests, benchmarks; never results).

The tiny random-weight Qwen2.5-VL answers garbage, which the evaluator must (and does) count as
failures. To exercise everything downstream of a parseable answer (SAM with negatives, diagnostics,
galleries, reward workers), the demo also uses *perturbed ground-truth answers*: the target's box and
two inscribed-circle points, jittered, plus negative points on look-alike distractors, written in the
``negative_point`` answer format. Reports label them as synthetic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from segzero_plus.evaluation.backends import Generation
from segzero_plus.geometry import inscribed_circle_centres, mask_bbox, scale_box, scale_points
from segzero_plus.sam.scorer import stable_image_key


def perturbed_answer(
    bbox: Sequence[float],
    points_pos: Sequence[Sequence[float]],
    points_neg: Sequence[Sequence[float]],
    rng: np.random.Generator,
    jitter_px: float = 8.0,
    keep_neg: float = 1.0,
    hw: tuple[int, int] | None = None,
    think: str = "The look-alikes differ in position; the target is the one the query names.",
) -> str:
    """A ``<think>..</think><answer>{bbox, points_pos, points_neg}</answer>`` response (integer pixels).

    Coordinates are those given (one frame, e.g. the MODEL frame) plus Gaussian jitter of ``jitter_px``
    (standard deviation, pixels), clipped into ``hw`` = (height, width) when given. Each negative point is
    kept with probability ``keep_neg``.
    """

    def jit(x: float, y: float) -> list[int]:
        x, y = x + rng.normal(0, jitter_px), y + rng.normal(0, jitter_px)
        if hw is not None:
            x, y = min(max(x, 0), hw[1] - 1), min(max(y, 0), hw[0] - 1)
        return [int(round(x)), int(round(y))]

    x1, y1 = jit(bbox[0], bbox[1])
    x2, y2 = jit(bbox[2], bbox[3])
    box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    pos = [jit(x, y) for x, y in points_pos]
    neg = [jit(x, y) for x, y in points_neg if rng.random() < keep_neg]
    answer = json.dumps({"bbox": box, "points_pos": pos, "points_neg": neg}, separators=(", ", ": "))
    return f"<think> {think} </think><answer>{answer}</answer>"


def scene_answer(
    target_mask: np.ndarray,
    distractor_masks: Sequence[np.ndarray],
    model_hw: tuple[int, int],
    rng: np.random.Generator,
    jitter_px: float = 8.0,
    max_neg: int = 3,
    keep_neg: float = 1.0,
) -> str:
    """Perturbed ground-truth answer, in the MODEL frame ``model_hw``, for ORIGINAL-frame masks.

    Negatives: one inscribed-circle centre on each of the ``max_neg`` distractors nearest the target.
    """
    orig_hw = target_mask.shape
    box = mask_bbox(target_mask)
    if box is None:
        raise ValueError("empty target mask")
    pos = inscribed_circle_centres(target_mask, n=2)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    negs = [inscribed_circle_centres(m, n=1)[0] for m in distractor_masks if m.any()]
    negs.sort(key=lambda p: (p[0] - cx) ** 2 + (p[1] - cy) ** 2)
    return perturbed_answer(
        scale_box(box, orig_hw, model_hw),
        scale_points(pos, orig_hw, model_hw),
        scale_points(negs[:max_neg], orig_hw, model_hw),
        rng,
        jitter_px=jitter_px,
        keep_neg=keep_neg,
        hw=model_hw,
    )


def prompt_key(image: np.ndarray, query: str) -> str:
    """Key of a (MODEL-frame image, query) pair: the SAM scorer's image key plus the query."""
    return f"{stable_image_key(image)}|{query}"


class ScriptedBackend:
    """A backend that answers from a table ``{prompt_key(image, query): response}`` (``default`` otherwise).

    Used for synthetic-policy runs in the demo and for tests; counts its calls and batch sizes.
    """

    name = "scripted"

    def __init__(self, responses: Mapping[str, str], default: str = "") -> None:
        self.responses = dict(responses)
        self.default = default
        self.batch_sizes: list[int] = []

    def generate(self, images: Sequence[np.ndarray], queries: Sequence[str]) -> list[Generation]:
        self.batch_sizes.append(len(images))
        out = []
        for im, q in zip(images, queries, strict=True):
            text = self.responses.get(prompt_key(im, q), self.default)
            out.append(Generation(text=text, n_prompt_tokens=0, n_new_tokens=len(text.split())))
        return out


def synthetic_responses(
    scenes: Sequence[object],
    model_hw: tuple[int, int] = (840, 840),
    seed: int = 0,
    jitter_px: float = 8.0,
    keep_neg: float = 1.0,
    garbage_every: int = 0,
) -> dict[str, str]:
    """``{prompt_key: response}`` of perturbed ground-truth answers for look-alike scenes (MODEL frame).

    Every ``garbage_every``-th scene (0: none) gets an unparseable response instead, so failure
    accounting is exercised too. Keys match what the evaluator presents: the scene image squashed to
    ``model_hw`` with :func:`segzero_plus.data.images.resize_image`, and the scene's expression.
    """
    from segzero_plus.data.images import resize_image

    rng = np.random.default_rng(seed)
    out = {}
    for i, s in enumerate(scenes):
        key = prompt_key(resize_image(s.image, model_hw), s.expression)
        if garbage_every and i % garbage_every == garbage_every - 1:
            out[key] = "<think> I am not sure. </think> the object is somewhere"
        else:
            out[key] = scene_answer(
                s.target_mask, s.distractor_masks, model_hw, rng, jitter_px, keep_neg=keep_neg
            )
    return out
