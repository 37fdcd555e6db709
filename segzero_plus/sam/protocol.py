"""SAM protocols: how one mask is chosen from SAM2's mask decoder for a prompt set, by name; and the SAM2
model every default names.

- ``"single_mask"``: ``multimask_output=False``, SAM2's single-mask output (mask token 0, or the best
  multimask token when token 0 is unstable: sam2's default post-processing), as
  ``SAM2ImagePredictor.predict(..., multimask_output=False)`` returns it;
- ``"multimask_best"``: ``multimask_output=True`` and the mask with the highest predicted IoU, picked as
  ``np.argsort(iou)[::-1][0]``. This is what Seg-Zero's evaluation does (``SAM2ImagePredictor.predict``
  with its default ``multimask_output=True``, then the best-scored mask; Seg-Zero
  ``evaluation_scripts/evaluation.py`` at commit 77f9ea5), so published Seg-Zero numbers come from it.

This module imports numpy only (configuration code validates names without torch).
"""

from __future__ import annotations

import numpy as np

SINGLE_MASK = "single_mask"
MULTIMASK_BEST = "multimask_best"
SAM_PROTOCOLS: tuple[str, ...] = (SINGLE_MASK, MULTIMASK_BEST)
"""Every protocol name (see the module docstring)."""

PUBLISHED_PROTOCOL = MULTIMASK_BEST
"""The protocol of the published Seg-Zero results: the default wherever our numbers are compared with
them (evaluation) and where a reward should pay for those same masks (the SAM counterfactual reward)."""

DEFAULT_SAM_CONFIG = "sam2.1_hiera_l"
"""SAM 2.1 Hiera-L, the model of the published Seg-Zero results (a key of
``segzero_plus.sam.build.SAM_CONFIGS``): the default of the reward's scorer, the miner and the evaluation."""


def check_protocol(name: str) -> str:
    """``name`` if it is one of :data:`SAM_PROTOCOLS`, else ValueError naming the choices."""
    if name not in SAM_PROTOCOLS:
        raise ValueError(f"unknown SAM protocol {name!r}; choose one of {', '.join(SAM_PROTOCOLS)}")
    return name


def best_mask_index(iou_preds: np.ndarray) -> int:
    """Index of the mask with the highest predicted IoU, chosen as Seg-Zero's evaluation chooses it
    (the first entry of ``np.argsort(scores)[::-1]``)."""
    return int(np.argsort(iou_preds)[::-1][0])
