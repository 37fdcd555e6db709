"""SamScorer: exact batching, frames, cache and counters, label handling, protocols (tiny random SAM2).

With random weights SAM's masks are arbitrary, so these tests check properties that hold regardless of
the weights: agreement with sam2's own SAM2ImagePredictor (both protocols), batched == one-at-a-time,
frame handling, cache behaviour, and that label 0 reaches SAM as a negative. They do not (cannot) check
mask quality. Two code paths agree on logits within TOL, so their masks are compared only where the
logit is farther than TOL from 0 (a pixel closer to 0 may fall either way, see
segzero_plus.testing.agreement).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segzero_plus.sam.build import build_sam2_model
from segzero_plus.sam.protocol import MULTIMASK_BEST, SINGLE_MASK, best_mask_index
from segzero_plus.sam.scorer import (
    ImageNotCachedError,
    PromptSet,
    SamScorer,
    ScoreRequest,
    stable_image_key,
)
from segzero_plus.testing.agreement import SAM_LOGIT_TOL, flips_off_threshold

TOL = SAM_LOGIT_TOL


@pytest.fixture(scope="module")
def model(tiny_sam_checkpoint):
    config_name, path = tiny_sam_checkpoint
    return build_sam2_model(config_name, path)


@pytest.fixture(scope="module")
def image(scenes):
    return scenes[1].image  # 280 x 420


def _mixed_prompts(h: int, w: int) -> list[PromptSet]:
    rng = np.random.default_rng(0)

    def pt():
        return (float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1)))

    box = (0.2 * w, 0.25 * h, 0.7 * w, 0.8 * h)
    return [
        PromptSet.make(box, [pt(), pt()], [pt()]),  # box + 3 points
        PromptSet.make(box, [pt(), pt()]),  # box + 2 points
        PromptSet.make(None, [pt()]),  # 1 point
        PromptSet.make(box, [pt()], [pt(), pt()]),  # box + 3 points, other labels
        PromptSet.make(box),  # box only
        PromptSet.make(None, [], [pt()]),  # a lone negative
        PromptSet.make(box, [pt(), pt()], [pt()]),  # box + 3 points again
        PromptSet.make(None, [pt(), pt()]),  # 2 points
    ]


def _reference_predictor(model):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(model)
    s = model.image_size
    pred._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    return pred


def _predict_reference(pred, ps: PromptSet, multimask: bool = False):
    pts = list(ps.points_pos) + list(ps.points_neg)
    labels = [1] * len(ps.points_pos) + [0] * len(ps.points_neg)
    return pred.predict(
        point_coords=np.asarray(pts, dtype=np.float32) if pts else None,
        point_labels=np.asarray(labels) if pts else None,
        box=np.asarray(ps.box, dtype=np.float32) if ps.box is not None else None,
        multimask_output=multimask,
        return_logits=True,
    )


def test_matches_sam2_image_predictor(model, image):
    """Our encode/decode path reproduces sam2's own predictor (the reference for SAM semantics)."""
    h, w = image.shape[:2]
    prompts = _mixed_prompts(h, w)
    results = SamScorer(model).score("img", image, prompts, return_logits=True)
    pred = _reference_predictor(model)
    pred.set_image(image)
    for ps, res in zip(prompts, results, strict=True):
        logits, iou, _ = _predict_reference(pred, ps)
        assert res.logits.shape == logits.shape == (1, h, w)
        assert np.abs(res.logits - logits).max() < TOL
        assert np.allclose(res.iou_preds, iou, atol=TOL)
        assert flips_off_threshold(res.masks, logits > 0, logits) == 0


def _favouring(model, token: int):
    """A copy of ``model`` whose IoU head predicts +10 for mask token ``token`` (1..3 are the multimask
    outputs): it makes multimask output ``token - 1`` the best-scored one."""
    import copy

    favoured = copy.deepcopy(model)
    with torch.no_grad():
        favoured.sam_mask_decoder.iou_prediction_head.layers[-1].bias[token] += 10.0
    return favoured


@pytest.mark.parametrize("token", [None, 1, 3])
def test_multimask_best_matches_sam2_predictor_and_argmax(model, image, token):
    """The multimask_best protocol is sam2's predict(..., multimask_output=True) followed by the mask of
    the highest predicted IoU (as Seg-Zero's evaluation): same choice, logits within TOL, same IoU. With
    the IoU head tilted towards one token the choice follows it (the choice is not hard-wired)."""
    sam = model if token is None else _favouring(model, token)
    h, w = image.shape[:2]
    prompts = _mixed_prompts(h, w)
    results = SamScorer(sam).score("img", image, prompts, return_logits=True, protocol=MULTIMASK_BEST)
    pred = _reference_predictor(sam)
    pred.set_image(image)
    chosen = set()
    for ps, res in zip(prompts, results, strict=True):
        logits, iou, _ = _predict_reference(pred, ps, multimask=True)
        assert logits.shape == (3, h, w) and res.masks.shape == res.logits.shape == (1, h, w)
        ranked = np.sort(iou)[::-1]
        best = int(np.argmax(iou))
        assert ranked[0] - ranked[1] > TOL, "a near-tie of predicted IoUs would make the choice ambiguous"
        assert np.abs(res.logits[0] - logits[best]).max() < TOL
        assert res.iou_pred == pytest.approx(float(iou[best]), abs=TOL)
        assert flips_off_threshold(res.mask, logits[best] > 0, logits[best]) == 0
        chosen.add(best)
    if token is not None:
        assert chosen == {token - 1}


def test_protocols_share_decoder_calls_by_multimask_output(model, image):
    """multimask_best and multimask=True decode with multimask_output=True and share decoder calls;
    single_mask decodes apart. Each result equals the same request scored alone (within TOL)."""
    h, w = image.shape[:2]
    prompts = _mixed_prompts(h, w)[:2]  # two shapes: (box, 3 points) and (box, 2 points)
    requests = [
        ScoreRequest("img", image, prompts, return_logits=True, protocol=SINGLE_MASK),
        ScoreRequest("img", image, prompts, return_logits=True, protocol=MULTIMASK_BEST),
        ScoreRequest("img", image, prompts, multimask=True, return_logits=True),
    ]
    scorer = SamScorer(model, max_batch=32)
    single, best, every = scorer.score_many(requests)
    assert scorer.stats.decoder_calls == 2 * 2  # (single | multimask) x two shapes
    alone = SamScorer(model)
    for req, got in zip(requests, (single, best, every), strict=True):
        for ps, res in zip(prompts, got, strict=True):
            (ref,) = alone.score(
                "img", image, [ps], multimask=req.multimask, return_logits=True, protocol=req.protocol
            )
            assert res.masks.shape == ref.masks.shape and np.abs(res.logits - ref.logits).max() < TOL
    for b, e in zip(best, every, strict=True):  # the protocol picks the best of the three
        assert e.masks.shape[0] == 3 and b.masks.shape[0] == 1
        assert np.abs(b.logits[0] - e.logits[best_mask_index(e.iou_preds)]).max() < TOL
        assert b.iou_pred == pytest.approx(e.iou_pred, abs=TOL)
    with pytest.raises(ValueError, match="unknown SAM protocol"):
        ScoreRequest("img", image, prompts, protocol="best")


def test_best_mask_index_follows_seg_zeros_argsort():
    """Seg-Zero keeps masks[np.argsort(scores)[::-1]][0]: the highest score."""
    assert best_mask_index(np.array([0.2, 0.9, 0.5], np.float32)) == 1
    assert best_mask_index(np.array([0.7, 0.1, 0.3], np.float32)) == 0
    scores = np.array([0.3, 0.6, 0.6], np.float32)  # a tie: whatever numpy's argsort puts last
    assert best_mask_index(scores) == int(np.argsort(scores)[::-1][0])


def test_batched_equals_one_at_a_time(model, image):
    h, w = image.shape[:2]
    prompts = _mixed_prompts(h, w)
    batched = SamScorer(model, max_batch=32)
    together = batched.score("img", image, prompts, return_logits=True)
    # shape groups: (box,3) x2 members... -> one decoder call per distinct (box?, n_points)
    assert batched.stats.decoder_calls == len({p.shape_key for p in prompts})
    assert batched.stats.images_encoded == 1
    assert batched.stats.prompt_sets_decoded == len(prompts)

    single = SamScorer(model)
    for ps, res in zip(prompts, together, strict=True):
        (alone,) = single.score("img", image, [ps], return_logits=True)
        assert np.abs(alone.logits - res.logits).max() < TOL
        assert np.abs(alone.iou_preds - res.iou_preds).max() < TOL
    assert single.stats.images_encoded == 1  # cached after the first call
    assert single.stats.decoder_calls == len(prompts)


def test_cross_image_batch_equals_separate(model, scenes):
    a, b = scenes[0].image, scenes[2].image
    pa = _mixed_prompts(*a.shape[:2])[:4]
    pb = _mixed_prompts(*b.shape[:2])[:4]
    scorer = SamScorer(model, max_batch=3)  # also exercises chunking of a group
    both = scorer.score_many(
        [ScoreRequest("a", a, pa, return_logits=True), ScoreRequest("b", b, pb, return_logits=True)]
    )
    sep = SamScorer(model)
    for key, img, prompts, res in (("a", a, pa, both[0]), ("b", b, pb, both[1])):
        for r1, r2 in zip(sep.score(key, img, prompts, return_logits=True), res, strict=True):
            assert np.abs(r1.logits - r2.logits).max() < TOL
    assert scorer.stats.images_encoded == 2


def test_single_prompt_set_shapes(model, image):
    """The B=1 trap (sam2 squeezes a batch of one): one prompt set, one point, single and multimask."""
    h, w = image.shape[:2]
    scorer = SamScorer(model)
    (res,) = scorer.score("img", image, [PromptSet.make(None, [(w / 2, h / 2)])])
    assert res.masks.shape == (1, h, w) and res.masks.dtype == bool
    assert res.iou_preds.shape == (1,)
    assert res.mask.shape == (h, w) and isinstance(res.iou_pred, float)
    (multi,) = scorer.score("img", None, [PromptSet.make(None, [(w / 2, h / 2)])], multimask=True)
    assert multi.masks.shape == (3, h, w) and multi.iou_preds.shape == (3,)
    assert np.array_equal(multi.mask, multi.masks[best_mask_index(multi.iou_preds)])
    pred = _reference_predictor(model)
    pred.set_image(image)
    _, iou_ref, _ = _predict_reference(pred, PromptSet.make(None, [(w / 2, h / 2)]), multimask=True)
    assert np.allclose(multi.iou_preds, iou_ref, atol=TOL)


def test_negative_label_reaches_sam(model, image):
    """Label 0 is a negative: same coordinates with label 0 vs 1 give different masks, the negative's
    sparse token carries SAM's negative-point embedding, and sam2's predictor agrees with label 0."""
    h, w = image.shape[:2]
    box = (0.2 * w, 0.2 * h, 0.8 * w, 0.8 * h)
    pos, probe = (0.5 * w, 0.5 * h), (0.3 * w, 0.4 * h)
    scorer = SamScorer(model)
    neg_res, pos_res, base_res = scorer.score(
        "img",
        image,
        [PromptSet.make(box, [pos], [probe]), PromptSet.make(box, [pos, probe]), PromptSet.make(box, [pos])],
        return_logits=True,
    )
    assert np.abs(neg_res.logits - pos_res.logits).max() > 1e-3
    assert np.abs(neg_res.logits - base_res.logits).max() > 1e-3

    coords, labels = scorer._prompt_tensors([PromptSet.make(box, [pos], [probe])], [(h, w)])
    assert labels.tolist() == [[2, 3, 1, 0]]
    pe = model.sam_prompt_encoder
    with torch.no_grad():
        sparse, _ = pe(points=(coords, labels), boxes=None, masks=None)
        sparse_as_pos, _ = pe(
            points=(coords, torch.tensor([[2, 3, 1, 1]], dtype=torch.int32)), boxes=None, masks=None
        )
    delta = sparse[0, 3] - sparse_as_pos[0, 3]
    expected = pe.point_embeddings[0].weight[0] - pe.point_embeddings[1].weight[0]
    assert torch.allclose(delta, expected, atol=1e-6)

    pred = _reference_predictor(model)
    pred.set_image(image)
    logits, _, _ = pred.predict(
        point_coords=np.asarray([pos, probe]),
        point_labels=np.asarray([1, 0]),
        box=np.asarray(box),
        multimask_output=False,
        return_logits=True,
    )
    assert np.abs(logits - neg_res.logits).max() < TOL


def test_prompt_and_output_frames(model, image):
    """Prompts given in a 2x frame with prompt_hw equal prompts in the image frame; out_hw sets the
    mask frame (e.g. ORIGINAL-frame masks from a MODEL-frame image)."""
    h, w = image.shape[:2]
    ps = PromptSet.make((30, 40, 200, 220), [(100, 120)], [(60, 70)])
    big = PromptSet.make([2 * v for v in ps.box], [(200, 240)], [(120, 140)])
    scorer = SamScorer(model)
    (a,) = scorer.score("img", image, [ps], return_logits=True)
    (b,) = scorer.score("img", None, [big], prompt_hw=(2 * h, 2 * w), return_logits=True)
    assert np.abs(a.logits - b.logits).max() < TOL
    (c,) = scorer.score("img", None, [ps], out_hw=(2 * h + 1, w // 2))
    assert c.masks.shape == (1, 2 * h + 1, w // 2)
    assert scorer.stats.images_encoded == 1


def test_cache_lru_counters_and_errors(model, scenes):
    imgs = [s.image for s in scenes[:3]]
    keys = [stable_image_key(i) for i in imgs]
    assert len(set(keys)) == 3 and stable_image_key(imgs[0].copy()) == keys[0]
    scorer = SamScorer(model, cache_size=2)
    ps = [PromptSet.make(None, [(10, 10)])]
    for k, img in zip(keys, imgs, strict=True):
        scorer.score(k, img, ps)
    assert scorer.cached_keys == keys[1:]
    assert scorer.stats.images_encoded == 3 and scorer.stats.cache_evictions == 1
    scorer.score(keys[1], None, ps)  # cached: no image needed, no encode
    assert scorer.stats.images_encoded == 3 and scorer.cached_keys == [keys[2], keys[1]]
    with pytest.raises(ImageNotCachedError):
        scorer.score(keys[0], None, ps)
    # a key reused for an image of another size is a collision: re-encode
    scorer.score(keys[1], imgs[0][:100], ps)
    assert scorer.stats.images_encoded == 4
    # an empty prompt set is not decoded
    before = scorer.stats.prompt_sets_decoded
    (empty,) = scorer.score(keys[2], None, [PromptSet()])
    assert not empty.decoded and not empty.mask.any() and empty.iou_pred == 0.0
    assert scorer.stats.prompt_sets_decoded == before
    assert scorer.cache_nbytes > 0
    with pytest.raises(ValueError, match="uint8"):
        scorer.score("bad", imgs[0].astype(np.float32), ps)
