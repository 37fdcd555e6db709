"""What two code paths computing one SAM (or other torch) result can be asked to agree on, in tests.

Two ways of computing the same thing (batched vs one-at-a-time decoding, our decoder calls vs sam2's
``SAM2ImagePredictor``, a left-padded batch vs the prompt alone, another thread count or kernel) give
float results that differ by round-off: SAM logits agree within :data:`SAM_LOGIT_TOL` on CPU in fp32
(measured < 4e-7). A pixel whose logit is within that distance of 0 may therefore land on either side
of the mask threshold; random-weight SAM has many such pixels (8 in 10^5 within 1e-5 of 0 on the
fixture scenes; 3 of 2*10^7 pixels flipped between batched and single decoding). So a mask comparison
across code paths is exact only away from the threshold, and without logits it can only bound the
share of pixels that differ. What IS exact: recomputing with the same code, inputs, batch composition
and thread count on one machine (in another process too: a Ray worker, a resumed run), and every
pure-data conversion (no floating-point model in the loop).
"""

from __future__ import annotations

import numpy as np

SAM_LOGIT_TOL = 1e-5
"""Largest difference in SAM logits allowed between two CPU fp32 code paths (30x the measured one)."""

MAX_FLIPPED_SHARE = 1e-3
"""Largest share of mask pixels allowed to differ between two code paths when no logits are at hand
(12x the share of random-weight SAM logits within :data:`SAM_LOGIT_TOL` of 0)."""


def flips_off_threshold(
    mask_a: np.ndarray, mask_b: np.ndarray, logits: np.ndarray, tol: float = SAM_LOGIT_TOL
) -> int:
    """Pixels where two masks differ although ``logits`` (either path's) is more than ``tol`` from 0:
    0 when the paths agree up to round-off."""
    return int(np.count_nonzero((np.asarray(mask_a) != np.asarray(mask_b)) & (np.abs(logits) > tol)))


def flipped_share(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Share of pixels where two masks differ (both the same shape)."""
    a, b = np.asarray(mask_a, dtype=bool), np.asarray(mask_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    return float(np.count_nonzero(a != b)) / max(1, a.size)
