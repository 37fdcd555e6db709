"""Counterfactual negative-point reward: arithmetic on hand-made masks, and the SAM-backed path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_plus.sam.actor import SamUnavailableError
from segzero_plus.sam.build import build_sam2_model
from segzero_plus.sam.counterfactual import (
    TERM_KEYS,
    CounterfactualConfig,
    counterfactual_prompts,
    counterfactual_reward,
    counterfactual_terms,
    mask_iou,
    tiered,
)
from segzero_plus.sam.scorer import MaskResult, SamScorer


def _res(mask: np.ndarray) -> MaskResult:
    return MaskResult(masks=mask[None].copy(), iou_preds=np.ones(1, np.float32))


def _rect(h, w, x1, y1, x2, y2) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y1:y2, x1:x2] = True
    return m


GT = _rect(20, 20, 5, 5, 15, 15)  # 100 px
LEAKY = GT | _rect(20, 20, 15, 5, 20, 15)  # + 50 px of background: IoU 100/150
CLEAN = GT.copy()


def test_mask_iou_and_tiers():
    assert mask_iou(CLEAN, GT) == 1.0
    assert mask_iou(LEAKY, GT) == pytest.approx(100 / 150)
    assert mask_iou(np.zeros_like(GT), np.zeros_like(GT)) == 1.0
    tiers = ((0.5, 0.25), (0.9, 1.0))
    assert tiered(0.49, tiers) == 0.0 and tiered(0.5, tiers) == 0.25 and tiered(0.95, tiers) == 1.0


def test_prompts_layout():
    assert len(counterfactual_prompts((0, 0, 5, 5), [(1, 1)], [])) == 1
    full, base = counterfactual_prompts((0, 0, 5, 5), [(1, 1)], [(4, 4)])
    assert full.points_neg == ((4.0, 4.0),) and base.points_neg == () and base.points_pos == full.points_pos
    loo = counterfactual_prompts(None, [(1, 1)], [(4, 4), (3, 3), (2, 2)], leave_one_out=True)
    assert len(loo) == 5 and loo[2].points_neg == ((3.0, 3.0), (2.0, 2.0))
    assert len(counterfactual_prompts(None, [(1, 1)], [(4, 4)], leave_one_out=True)) == 2  # base is the LOO


def test_neutral_without_negatives():
    for mode in ("off", "continuous", "tiers"):
        terms = counterfactual_terms([_res(LEAKY)], GT, [], CounterfactualConfig(mask_iou=mode))
        assert tuple(terms) == TERM_KEYS
        assert terms["neg_reward"] == 0.0 and terms["neg_gain"] == 0.0 and terms["neg_count"] == 0.0
        assert terms["iou_base"] == terms["iou_full"] == pytest.approx(100 / 150)
    assert counterfactual_terms([_res(LEAKY)], GT, [], CounterfactualConfig(mask_iou="continuous"))[
        "mask_iou_reward"
    ] == pytest.approx(100 / 150)


def test_gain_scale_clip_and_inside_penalty():
    cfg = CounterfactualConfig(gain_scale=2.0, gain_clip=0.5, inside_penalty=0.4)
    # a helpful negative outside the gt: base leaks, full is clean -> gain (1 - 2/3) * 2 = 0.667 -> clip 0.5
    t = counterfactual_terms([_res(CLEAN), _res(LEAKY)], GT, [(17, 10)], cfg)
    assert (
        t["neg_gain"] == pytest.approx(0.5)
        and t["neg_inside_gt"] == 0.0
        and t["neg_reward"] == pytest.approx(0.5)
    )
    # a useless negative: no change -> 0
    t = counterfactual_terms([_res(LEAKY), _res(LEAKY)], GT, [(0, 0)], cfg)
    assert t["neg_gain"] == 0.0 and t["neg_reward"] == 0.0
    # a harmful negative inside the gt: negative gain and the penalty
    t = counterfactual_terms([_res(LEAKY), _res(CLEAN)], GT, [(10, 10)], cfg)
    assert t["neg_inside_gt"] == 1.0
    assert t["neg_reward"] == pytest.approx(-0.5 - 0.4)
    # a point outside the image is not "inside"; prompt_hw maps points into the gt frame
    t = counterfactual_terms([_res(CLEAN), _res(LEAKY)], GT, [(100, 100), (20, 20)], cfg, prompt_hw=(40, 40))
    assert t["neg_inside_gt"] == 1.0 and t["neg_reward"] == pytest.approx(0.5 - 0.4)
    # the penalty is per negative inside: two inside cost twice one
    t = counterfactual_terms([_res(LEAKY), _res(LEAKY)], GT, [(10, 10), (11, 11)], cfg)
    assert t["neg_inside_gt"] == 2.0 and t["neg_reward"] == pytest.approx(-0.8)


def test_leave_one_out_credits_each_negative():
    cfg = CounterfactualConfig(gain_scale=1.0, gain_clip=1.0, inside_penalty=0.0, leave_one_out=True)
    # negative 0 removes the leak (without it: leaky); negative 1 does nothing (without it: still clean)
    t = counterfactual_terms(
        [_res(CLEAN), _res(LEAKY), _res(LEAKY), _res(CLEAN)], GT, [(17, 10), (0, 0)], cfg
    )
    assert t["neg_loo_min"] == 0.0
    assert t["neg_gain"] == pytest.approx(1 - 100 / 150)  # the sum: the useless one adds nothing
    with pytest.raises(ValueError, match="expected 4 mask results"):
        counterfactual_terms([_res(CLEAN), _res(LEAKY)], GT, [(17, 10), (0, 0)], cfg)


def _padded_results(results, n_neg, n_pad, leave_one_out):
    """SAM's masks when ``n_pad`` useless negatives are appended (they change no mask): full, base and,
    with leave-one-out, dropping a useless one gives the full mask again."""
    if n_neg + n_pad == 0:
        return results
    full = results[0]
    base = results[1] if n_neg else full
    loo = list(results[2:]) if n_neg > 1 else ([base] if n_neg == 1 else [])
    if not leave_one_out:
        return [full, base]
    return [full, base, *loo, *([full] * n_pad)] if n_neg + n_pad > 1 else [full, base]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([(10, 10), (6, 6), (17, 10), (2, 17)]), min_size=1, max_size=3),
    st.integers(1, 3),
    st.booleans(),
    st.lists(st.sampled_from(["clean", "leaky", "cut"]), min_size=5, max_size=5),
)
def test_useless_negatives_never_dilute_the_penalty_or_a_harmful_credit(negs, n_pad, loo, kinds):
    """Negatives inside the target (10, 10), (6, 6) or outside (17, 10), (2, 17); padding with points off
    the target that SAM ignores must not raise ``neg_reward`` (a share or a mean would)."""
    masks = {"clean": CLEAN, "leaky": LEAKY, "cut": GT & ~_rect(20, 20, 5, 5, 10, 15)}
    n = len(negs)
    expected = 2 + (n if loo and n > 1 else 0)
    results = [_res(masks[k]) for k in kinds[:expected]]
    cfg = CounterfactualConfig(gain_scale=5.0, gain_clip=1.0, inside_penalty=0.5, leave_one_out=loo)
    padding = [(0, 0), (19, 0), (0, 19)][:n_pad]
    before = counterfactual_terms(results, GT, negs, cfg)
    after = counterfactual_terms(_padded_results(results, n, n_pad, loo), GT, negs + padding, cfg)
    assert after["neg_inside_gt"] == before["neg_inside_gt"] == sum(1 for p in negs if GT[p[1], p[0]])
    assert after["neg_reward"] == pytest.approx(before["neg_reward"])


def test_the_inside_penalty_reads_only_the_target():
    """A negative hugging the target from outside pays no penalty, and neither does one in the middle
    of a look-alike: the penalty never favours the target's edge."""
    cfg = CounterfactualConfig(inside_penalty=0.5)
    for point in [(15, 10), (4, 10), (10, 4), (19, 19)]:  # just outside the 5..14 square, or far off it
        assert counterfactual_terms([_res(LEAKY), _res(LEAKY)], GT, [point], cfg)["neg_reward"] == 0.0
    assert counterfactual_terms([_res(LEAKY), _res(LEAKY)], GT, [(14, 14)], cfg)["neg_reward"] == -0.5


def test_config_validation_and_from_dict():
    with pytest.raises(ValueError):
        CounterfactualConfig(mask_iou="soft")
    cfg = CounterfactualConfig.from_dict({"gain_scale": 3, "iou_tiers": [[0.5, 1]], "leave_one_out": True})
    assert cfg.iou_tiers == ((0.5, 1.0),) and cfg.leave_one_out
    with pytest.raises(TypeError):
        CounterfactualConfig.from_dict({"nope": 1})


def test_with_sam_shares_the_embedding_and_counts_decodes(tiny_sam_checkpoint, scenes):
    """A rollout group of 8 responses on one image: ONE encode; decodes = full (+ base when negatives
    exist) (+ one per negative with leave-one-out); every sample returns the same keys."""
    config_name, path = tiny_sam_checkpoint
    scorer = SamScorer(build_sam2_model(config_name, path))
    scene = scenes[0]
    gt = scene.target_mask
    ys, xs = np.nonzero(gt)
    box = (xs.min(), ys.min(), xs.max(), ys.max())
    pos = [(float(xs.mean()), float(ys.mean()))]
    negs_per_response = [
        [],
        [(5, 5)],
        [(5, 5), (30, 200)],
        [],
        [(100, 50)],
        [(7, 9), (1, 1), (2, 2)],
        [],
        [(3, 3)],
    ]
    expected_decodes = 0
    cfg = CounterfactualConfig(leave_one_out=True, mask_iou="tiers")
    for negs in negs_per_response:
        terms = counterfactual_reward(scorer, scene.scene_id, scene.image, box, pos, negs, gt, cfg)
        assert tuple(terms) == TERM_KEYS
        assert all(isinstance(v, float) for v in terms.values())
        expected_decodes += 1 if not negs else 2 + (len(negs) if len(negs) > 1 else 0)
        if not negs:
            assert terms["neg_reward"] == 0.0 and terms["iou_full"] == terms["iou_base"]
    assert scorer.stats.images_encoded == 1
    assert scorer.stats.prompt_sets_decoded == expected_decodes


def test_sam_failure_scores_zero_with_flag(caplog):
    class DownScorer:
        def score(self, *args, **kwargs):
            raise SamUnavailableError("actor died twice")

    terms = counterfactual_reward(DownScorer(), "k", None, (0, 0, 5, 5), [(1, 1)], [(4, 4)], GT)
    assert tuple(terms) == TERM_KEYS
    assert terms["sam_failed"] == 1.0 and terms["neg_reward"] == 0.0 and terms["iou_full"] == 0.0
    assert "actor died twice" in caplog.text


def test_the_reward_asks_sam_under_the_configured_protocol(tiny_sam_checkpoint, scenes):
    """The SAM calls of the reward use ``config.sam_protocol`` (default: the evaluation's multimask_best),
    and the terms are those of masks chosen under that protocol."""
    from segzero_plus.sam.protocol import MULTIMASK_BEST, SINGLE_MASK

    config_name, path = tiny_sam_checkpoint
    scorer = SamScorer(build_sam2_model(config_name, path))
    seen: list[str] = []

    class Spy:
        def score(self, *args, protocol, **kwargs):
            seen.append(protocol)
            return scorer.score(*args, protocol=protocol, **kwargs)

    scene = scenes[2]
    args = (scene.scene_id, scene.image, (20, 20, 200, 150), [(60, 60)], [(10, 10)], scene.target_mask)
    assert CounterfactualConfig().sam_protocol == MULTIMASK_BEST
    best = counterfactual_reward(Spy(), *args)
    single = counterfactual_reward(Spy(), *args, CounterfactualConfig(sam_protocol=SINGLE_MASK))
    assert seen == [MULTIMASK_BEST, SINGLE_MASK]
    full, _ = counterfactual_prompts(*args[2:5])
    (direct,) = scorer.score(scene.scene_id, None, [full], protocol=MULTIMASK_BEST)
    assert best["iou_full"] == mask_iou(direct.mask, scene.target_mask)  # same code, batch and threads
    assert set(best) == set(single) == set(TERM_KEYS)
    with pytest.raises(ValueError, match="unknown SAM protocol"):
        CounterfactualConfig(sam_protocol="best")
