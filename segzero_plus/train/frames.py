"""Frames in training: what the model saw vs. what the ground truth is stored in.

verl's ``RLHFDataset`` puts the stored image into ``raw_prompt`` unchanged; the rollout then passes it
through ``qwen_vl_utils.fetch_image``, which resizes it with ``smart_resize`` (multiples of
``image_patch_size * 2`` = 28 px, pixel budget from the item or qwen_vl_utils' defaults). The model
answers in pixels of that RESIZED image (the answer frame). The ground truth JSON is in the MODEL frame of
the training row (``height`` x ``width``), which is the stored image for rows written by
``segzero_plus.data``. For our 840x840 rows both frames are 840x840 and nothing is mapped.

When they differ the answer-protocol core (numpy, pixel thresholds) is evaluated in the answer frame
against a ground truth scaled into it (:func:`scale_ground_truth`, masks by nearest-centre sampling, pixel
thresholds scaled with :func:`scale_reward_config`), and SAM prompts are sent with ``prompt_hw`` = the
answer frame, so the scorer maps them onto the image and returns masks in the ground-truth frame. Sizes
are (height, width); points (x, y).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segzero_plus.data import images
from segzero_plus.geometry import scale_box, scale_points
from segzero_plus.rewards import GroundTruth, RewardConfig


class NoImageError(ValueError):
    """``raw_prompt`` holds no image item."""


def prompt_messages(raw_prompt: Any) -> list[Any]:
    """The messages of a verl ``raw_prompt`` as a list, in every shape verl hands it over: a list (the
    dataset row), or a numpy object array of messages. verl's streaming reward path builds its one-sample
    batch with ``np.array([v] * n)`` for every field (``verl/experimental/agent_loop/agent_loop.py``,
    ``AgentLoopWorker._compute_score``), so a 2-message prompt arrives as a (1, 2) array and one item of
    it as a (2,) array; any array is flattened in order."""
    if raw_prompt is None:
        return []
    if isinstance(raw_prompt, np.ndarray):
        return list(raw_prompt.ravel())
    if isinstance(raw_prompt, Mapping):  # a single message
        return [raw_prompt]
    return list(raw_prompt)


def find_image_item(raw_prompt: Sequence[Mapping[str, Any]] | np.ndarray) -> Mapping[str, Any]:
    """The first ``{"type": "image", ...}`` content item of a verl ``raw_prompt`` (messages in any shape
    :func:`prompt_messages` accepts)."""
    for message in prompt_messages(raw_prompt):
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str) or content is None:
            continue
        for item in content:
            if isinstance(item, Mapping) and (item.get("type") == "image" or "image" in item):
                return item
    raise NoImageError("raw_prompt has no image item")


def open_image(item: Mapping[str, Any]) -> Image.Image:
    """The stored image of an item (PIL image, PNG/JPEG ``bytes``, or a path / ``file://`` URL), opened
    by :func:`segzero_plus.data.images.open_image` (pixel limit; ImageDecodeError for bad bytes)."""
    image = item.get("image")
    if isinstance(image, Image.Image):
        return image
    if item.get("bytes") is not None:
        return images.open_image(item["bytes"])
    if isinstance(image, str) and not image.startswith(("http://", "https://", "data:")):
        return images.open_image(Path(image[7:] if image.startswith("file://") else image).read_bytes())
    raise NoImageError(f"cannot open image item with keys {sorted(item)}")


def image_rgb(item: Mapping[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the stored image as the model saw it
    (:func:`segzero_plus.data.images.model_view_rgb`)."""
    return images.model_view_rgb(open_image(item))


def answer_frame_hw(item: Mapping[str, Any], image_patch_size: int = 14) -> tuple[int, int]:
    """(H, W) of the image the model saw for ``item``: ``qwen_vl_utils.smart_resize`` with the same
    arguments ``fetch_image`` uses (``resized_height``/``resized_width`` or ``min_pixels``/``max_pixels``
    from the item, else qwen_vl_utils' defaults; factor = ``image_patch_size`` * spatial merge 2)."""
    from qwen_vl_utils import vision_process as vp

    factor = int(image_patch_size) * int(getattr(vp, "SPATIAL_MERGE_SIZE", 2))
    if "resized_height" in item and "resized_width" in item:
        h, w = vp.smart_resize(int(item["resized_height"]), int(item["resized_width"]), factor=factor)
        return int(h), int(w)
    width, height = open_image(item).size
    min_tokens = getattr(vp, "IMAGE_MIN_TOKEN_NUM", 4)
    max_tokens = getattr(vp, "IMAGE_MAX_TOKEN_NUM", 16384)
    h, w = vp.smart_resize(
        height,
        width,
        factor=factor,
        min_pixels=item.get("min_pixels", min_tokens * factor**2),
        max_pixels=item.get("max_pixels", max_tokens * factor**2),
    )
    return int(h), int(w)


def scale_ground_truth(gt: GroundTruth, dst_hw: tuple[int, int]) -> GroundTruth:
    """``gt`` (in its mask's frame) expressed in the frame ``dst_hw``: box and points scaled per axis,
    masks resized by nearest-centre sampling, Seg-Zero's solution string recomposed from the scaled values.
    Returns ``gt`` itself when the frames are equal."""
    src_hw = gt.hw
    dst_hw = (int(dst_hw[0]), int(dst_hw[1]))
    if src_hw == dst_hw:
        return gt
    return GroundTruth(
        bbox=scale_box(gt.bbox, src_hw, dst_hw),
        points=scale_points(gt.points, src_hw, dst_hw),
        mask=images.resize_mask(gt.mask, dst_hw),
        confused_mask=None if gt.confused_mask is None else images.resize_mask(gt.confused_mask, dst_hw),
        distractor_masks=[images.resize_mask(m, dst_hw) for m in gt.distractor_masks],
    )


def scale_reward_config(
    config: RewardConfig, src_hw: tuple[int, int], dst_hw: tuple[int, int]
) -> RewardConfig:
    """``config`` with its pixel thresholds (given in the ``src_hw`` frame) expressed in ``dst_hw`` pixels:
    lengths times the mean of the two axis scales, areas times their product. Same object if equal."""
    if tuple(src_hw) == tuple(dst_hw):
        return config
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    s = 0.5 * (sx + sy)
    return config.replace(
        l1_threshold_px=config.l1_threshold_px * s,
        point_threshold_px=config.point_threshold_px * s,
        confused_clearance_px=config.confused_clearance_px * s,
        confused_near_px=config.confused_near_px * s,
        negative_box_margin_px=config.negative_box_margin_px * s,
        min_confused_area_px=int(round(config.min_confused_area_px * sx * sy)),
    )
