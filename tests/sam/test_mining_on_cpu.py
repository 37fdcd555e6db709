"""Confused-region mining of one object on look-alike scenes (tiny random SAM2).

With random weights the oracle/sampled maps are arbitrary; the tests check what holds by construction:
no map ever touches the target, the distractor source is exactly the look-alikes, one encode per image,
determinism, and the component counts of the reward's rule. The parquet pass: tests/data/test_mining_on_cpu.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from segzero_plus.geometry import mask_bbox
from segzero_plus.masks import decode_rle
from segzero_plus.sam.build import build_sam2_model
from segzero_plus.sam.mining import MiningConfig, mine_confused_regions, sample_probe_points
from segzero_plus.sam.scorer import MaskResult, SamScorer


@pytest.fixture(scope="module")
def scorer(tiny_sam_checkpoint):
    config_name, path = tiny_sam_checkpoint
    return SamScorer(build_sam2_model(config_name, path), max_batch=8)


def test_probe_points_are_outside_the_target_and_near_it(scenes):
    gt = scenes[0].target_mask
    cfg = MiningConfig(n_samples=50, margin=20, max_tries=10)
    pts = sample_probe_points(gt, cfg, np.random.default_rng(1))
    x1, y1, x2, y2 = mask_bbox(gt)
    assert len(pts) > 40
    for x, y in pts:
        assert not gt[int(y), int(x)]
        assert x1 - 20 <= x < x2 + 20 and y1 - 20 <= y < y2 + 20
    assert pts == sample_probe_points(gt, cfg, np.random.default_rng(1))
    assert pts != sample_probe_points(gt, cfg, np.random.default_rng(2))


def test_mining_on_look_alike_scenes(scorer, scenes):
    with_distractors = [s for s in scenes if s.distractor_masks]
    assert with_distractors, "the scenes fixture should contain look-alikes"
    scorer.reset_stats()
    for scene in with_distractors:
        regions = mine_confused_regions(
            scorer,
            scene.scene_id,
            scene.image,
            scene.target_mask,
            distractor_masks=scene.distractor_masks,
            seed=[0, 1],
        )
        target = scene.target_mask
        for m in (regions.union, regions.oracle_fp, regions.sampled, regions.distractors):
            assert m.shape == target.shape and m.dtype == bool
            assert not (m & target).any()  # never the target
        look_alikes = np.logical_or.reduce(scene.distractor_masks)
        assert np.array_equal(regions.distractors, look_alikes)  # the distractor source covers them exactly
        assert (regions.union & look_alikes).sum() == look_alikes.sum()  # so the union overlaps them
        assert np.array_equal(regions.union, regions.oracle_fp | regions.sampled | regions.distractors)
        assert regions.stats["union_area"] == regions.union.sum() > 0
        assert regions.stats["n_probe_points"] == 5
        payload = json.loads(regions.to_json())
        assert set(payload) == {"union", "oracle_fp", "sampled", "distractors", "stats"}
        assert np.array_equal(decode_rle(payload["union"]), regions.union)
    # one encode per image, two decoder calls per object (oracle prompt + all probe points in one batch)
    assert scorer.stats.images_encoded == len(with_distractors)
    assert scorer.stats.decoder_calls == 2 * len(with_distractors)

    scene = with_distractors[0]
    again = mine_confused_regions(
        scorer, scene.scene_id, None, scene.target_mask, distractor_masks=scene.distractor_masks, seed=[0, 1]
    )
    first = mine_confused_regions(
        scorer, scene.scene_id, None, scene.target_mask, distractor_masks=scene.distractor_masks, seed=[0, 1]
    )
    assert np.array_equal(again.union, first.union)  # deterministic
    only = mine_confused_regions(
        scorer,
        scene.scene_id,
        None,
        scene.target_mask,
        distractor_masks=scene.distractor_masks,
        config=MiningConfig(sources=("distractors",)),
    )
    assert (
        np.array_equal(only.union, only.distractors) and not only.oracle_fp.any() and not only.sampled.any()
    )


class _FixedOracle:
    """A stand-in for SAM whose perfectly prompted mask is a given mask (the sampled probe is off)."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def score_many(self, requests):
        return [
            [MaskResult(masks=self.mask[None].copy(), iou_preds=np.ones(1, np.float32))] for _ in requests
        ]


def test_component_counts_follow_the_reward_rule():
    """What the coverage counts: slop hugging the target, a speck and a far distractor are confused
    pixels but no component the reward pays for; a leak into a look-alike is one, counted whole."""
    hw = (200, 300)
    target = np.zeros(hw, bool)
    target[80:120, 100:140] = True
    slop = np.zeros(hw, bool)
    slop[77:123, 97:143] = True  # SAM's mask 3 px larger all round
    leak = np.zeros(hw, bool)
    leak[90:110, 170:290] = True  # a look-alike 30 px right of the target, 120 px long
    far = np.zeros(hw, bool)
    far[0:30, 0:30] = True
    speck = np.zeros(hw, bool)
    speck[60:62, 100:102] = True
    config = MiningConfig(sources=("oracle_fp", "distractors"))

    def stats(oracle_mask, distractors):
        return mine_confused_regions(
            _FixedOracle(oracle_mask), "k", None, target, distractor_masks=distractors, config=config
        ).stats

    ring_only = stats(slop, [far])
    assert ring_only["oracle_fp_area"] == 46 * 46 - 40 * 40 and ring_only["oracle_fp_components"] == 0
    assert ring_only["distractors_area"] == 900 and ring_only["distractors_components"] == 0
    assert ring_only["union_components"] == 0 and ring_only["union_counted_area"] == 0
    leaking = stats(slop | leak | speck, [far])
    assert leaking["oracle_fp_components"] == leaking["union_components"] == 1
    assert leaking["union_counted_area"] == 20 * 120  # the whole look-alike, not its near part
    assert stats(slop, [leak])["distractors_components"] == 1
    with pytest.raises(ValueError, match="must be >= 0"):
        MiningConfig(clearance_px=-1)
