"""What negative points are for, checked on the trained toy SAM2 over many hard scenes (never one scene).

These tests could not exist with random weights: they assert statistical effects of prompts on masks.
Scenes are held out (``generate_scenes`` seeds; training uses seeds from 2**40 on).
"""

from __future__ import annotations

import numpy as np
import pytest

from segzero_plus.data.scenes import generate_scenes
from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
from segzero_plus.sam.counterfactual import counterfactual_reward
from segzero_plus.sam.mining import MiningConfig, mine_confused_regions
from segzero_plus.sam.scorer import PromptSet
from segzero_plus.testing.toy_sam import toy_sam_scorer
from segzero_plus.testing.toy_sam_eval import adjacent_lookalike, union_box

N_SCENES = 40
SEED = 515


@pytest.fixture(scope="module")
def scorer():
    return toy_sam_scorer(cache_size=2)


@pytest.fixture(scope="module")
def hard_scenes():
    return generate_scenes(N_SCENES, seed=SEED, difficulty="hard")


@pytest.fixture(scope="module")
def easy_scenes():
    return generate_scenes(N_SCENES, seed=SEED, difficulty="easy")


def _prompts(scene):
    """(box, positives, the adjacent look-alike's mask, a negative on it, a spanning box)."""
    target = scene.target_mask
    other = scene.distractor_masks[adjacent_lookalike(scene)]
    return (
        mask_bbox(target),
        inscribed_circle_centres(target, n=2),
        other,
        inscribed_circle_centres(other, n=1),
        union_box(target, other),
    )


def _share_on(mask: np.ndarray, region: np.ndarray) -> float:
    return float((mask & region).sum() / region.sum())


@pytest.mark.parametrize("box_kind", ["exact", "spanning"])
def test_a_negative_on_the_lookalike_lowers_the_masks_overlap_with_it(scorer, hard_scenes, box_kind):
    without, with_neg = [], []
    for scene in hard_scenes:
        box, pos, other, neg, span = _prompts(scene)
        b = box if box_kind == "exact" else span
        base, full = scorer.score(
            scene.scene_id, scene.image, [PromptSet.make(b, pos), PromptSet.make(b, pos, neg)]
        )
        without.append(_share_on(base.mask, other))
        with_neg.append(_share_on(full.mask, other))
        scorer.clear_cache()
    without, with_neg = np.array(without), np.array(with_neg)
    lower, higher = int((with_neg < without - 0.01).sum()), int((with_neg > without + 0.01).sum())
    assert with_neg.mean() < without.mean() - 0.02, (with_neg.mean(), without.mean())
    assert lower > 2 * higher, (lower, higher)


def _mined_lookalike(scorer, scene) -> tuple[float, float]:
    """SAM-mined confused region (oracle false positives + sampled probes; not the annotated distractors):
    (share of the adjacent look-alike it covers, 0 on easy scenes; its pixels on any look-alike / the
    target's area)."""
    mined = mine_confused_regions(
        scorer,
        scene.scene_id,
        scene.image,
        scene.target_mask,
        config=MiningConfig(margin=0.25 * min(scene.height, scene.width), sources=("oracle_fp", "sampled")),
        seed=0,
    ).union
    scorer.clear_cache()
    lookalikes = np.any(scene.distractor_masks, axis=0) if scene.distractor_masks else np.zeros_like(mined)
    k = adjacent_lookalike(scene)
    covered = _share_on(mined, scene.distractor_masks[k]) if k is not None else 0.0
    return covered, float((mined & lookalikes).sum() / scene.target_mask.sum())


def test_mining_finds_the_lookalike_on_hard_scenes_and_little_on_easy_ones(scorer, hard_scenes, easy_scenes):
    hard = np.array([_mined_lookalike(scorer, s) for s in hard_scenes])
    easy = np.array([_mined_lookalike(scorer, s) for s in easy_scenes])
    found = hard[:, 0] >= 0.2  # the mined region covers at least a fifth of the adjacent look-alike
    assert found.mean() >= 0.5, found.mean()
    assert np.mean(easy[:, 1]) < 0.25 * np.mean(hard[:, 1]), (np.mean(easy[:, 1]), np.mean(hard[:, 1]))


def test_counterfactual_reward_pays_a_helpful_negative_and_charges_one_inside_the_target(scorer, hard_scenes):
    helpful, inside = [], []
    for scene in hard_scenes:
        _, pos, _, neg, span = _prompts(scene)
        target = scene.target_mask
        key = scene.scene_id
        helpful.append(counterfactual_reward(scorer, key, scene.image, span, pos, neg, target)["neg_reward"])
        inner = inscribed_circle_centres(target, n=3)[-1:]  # a third deep point, inside the target
        inside.append(counterfactual_reward(scorer, key, scene.image, span, pos, inner, target)["neg_reward"])
        scorer.clear_cache()
    helpful, inside = np.array(helpful), np.array(inside)
    assert helpful.mean() > 0.05 and (helpful > 0).mean() > 0.5, (helpful.mean(), (helpful > 0).mean())
    assert inside.mean() < 0 and (inside < 0).mean() > 0.8, (inside.mean(), (inside < 0).mean())
