"""The committed toy SAM2 fixture: the real checkpoint format, small, strict loading, and it segments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segzero_plus.data.scenes import generate_scenes
from segzero_plus.errors import UserError
from segzero_plus.sam.build import build_sam2_model
from segzero_plus.testing import toy_sam
from segzero_plus.testing.toy_sam import toy_sam_checkpoint, toy_sam_scorer
from segzero_plus.testing.toy_sam_eval import evaluate_scorer


def test_fixture_is_a_small_fp16_sam2_checkpoint_that_loads_strictly():
    config, path = toy_sam_checkpoint()
    assert config.endswith("toy_sam2_hiera_192.yaml") and path.stat().st_size < 5 * 2**20
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert set(payload) == {"model"}
    floats = [v for v in payload["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    model = build_sam2_model(config, path)  # strict: every key and shape must match the shipped yaml
    assert model.image_size == 192 and 2.0e6 < sum(p.numel() for p in model.parameters()) < 2.4e6


def test_missing_fixture_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(toy_sam, "TOY_SAM_CHECKPOINT", tmp_path / "gone.pt")
    with pytest.raises(UserError, match="README"):
        toy_sam_checkpoint()


def test_trained_weights_segment_what_random_weights_cannot():
    scenes = generate_scenes(12, seed=99)
    trained = evaluate_scorer(toy_sam_scorer(cache_size=1), scenes)["easy/miou/box_pos"]
    random = evaluate_scorer(toy_sam_scorer(cache_size=1, random_weights=True), scenes)["easy/miou/box_pos"]
    assert trained > random + 0.5 and np.isfinite(trained)
