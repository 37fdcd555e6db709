"""One evaluation batch: frames, SAM prompts with labels, one encode per image, failures never dropped."""

from __future__ import annotations

import pytest

from segzero_plus.data.images import decode_image
from segzero_plus.data.lookalike import scenes_to_eval_rows
from segzero_plus.evaluation.backends import Generation
from segzero_plus.evaluation.pipeline import Evaluator
from segzero_plus.evaluation.summary import summarize_records
from segzero_plus.masks import decode_rle
from segzero_plus.metrics import FAIL_GENERATION, FAIL_IMAGE, FAIL_SAM, FAIL_UNPARSEABLE, compute_giou_ciou
from segzero_plus.sam.scorer import stable_image_key
from segzero_plus.testing.agreement import MAX_FLIPPED_SHARE, flipped_share
from segzero_plus.testing.synthetic import ScriptedBackend, prompt_key, synthetic_responses


@pytest.fixture(scope="module")
def sam_scorer(tiny_sam_checkpoint):
    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.sam.scorer import SamScorer

    config_name, path = tiny_sam_checkpoint
    return SamScorer(build_sam2_model(config_name, path), cache_size=16)


class SpyScorer:
    """Records every request; raises for image keys listed in ``fail_keys``."""

    def __init__(self, scorer, fail_keys=()):
        self.scorer, self.fail_keys, self.requests = scorer, set(fail_keys), []

    @property
    def stats(self):
        return self.scorer.stats

    def score_many(self, requests):
        self.requests.extend(requests)
        if any(r.image_key in self.fail_keys for r in requests):
            raise RuntimeError("CUDA error: simulated")
        return self.scorer.score_many(requests)


def test_records_metrics_and_one_encode_per_image(scenes, sam_scorer):
    picked = scenes[:6]
    rows = scenes_to_eval_rows(picked)
    responses = synthetic_responses(picked, garbage_every=3)  # samples 2 and 5 are garbage
    sam_scorer.reset_stats()
    sam_scorer.clear_cache()
    records = Evaluator(ScriptedBackend(responses), sam_scorer).evaluate(rows)

    assert [r["id"] for r in records] == [r["id"] for r in rows]
    assert [r["failure"] for r in records] == [None, None, FAIL_UNPARSEABLE, None, None, FAIL_UNPARSEABLE]
    assert sam_scorer.stats.images_encoded == 6  # one encode per sample, with 2-3 prompt sets each

    preds, gts = [], []
    for s, r in zip(picked, records, strict=True):
        gts.append(s.target_mask)
        assert r["gt_area"] == int(s.target_mask.sum())
        if r["failure"] == FAIL_UNPARSEABLE:
            assert (r["I"], r["U"], r["IoU"]) == (0, r["gt_area"], 0.0)
            assert "pred_mask" not in r and r["noneg"]["failure"] == FAIL_UNPARSEABLE
            preds.append(None)
            continue
        pred = decode_rle(r["pred_mask"])
        assert pred.shape == s.target_mask.shape  # mask at the ORIGINAL size
        assert r["I"] == int((pred & s.target_mask).sum()) and r["U"] == int((pred | s.target_mask).sum())
        preds.append(pred)
        # MODEL-frame answer mapped per axis to ORIGINAL pixels
        h, w = s.target_mask.shape
        mb, ob = r["prompts"]["model"]["bbox"], r["prompts"]["original"]["bbox"]
        assert ob[0] == pytest.approx(min(mb[0] * w / 840, w - 1), abs=0.01)
        assert ob[3] == pytest.approx(min(mb[3] * h / 840, h - 1), abs=0.01)
        assert len(r["prompts"]["original"]["points_neg"]) == min(3, len(s.distractor_masks))
        assert r["gt_prompt"]["U"] > 0
    expected = compute_giou_ciou(preds, gts)
    got = summarize_records(records)
    for key in ("gIoU", "cIoU", "n", "failures", "sum_I", "sum_U", "failure_reasons"):
        assert got[key] == expected[key]
    with_neg = [r for r in records if r["failure"] is None and r["prompts"]["original"]["points_neg"]]
    assert with_neg, "the fixture scenes must include look-alikes"
    assert got["negatives"]["samples_with_negatives"] == len(with_neg)
    assert all("pred_mask_noneg" in r for r in with_neg)


def test_prompts_reach_sam_in_original_pixels_with_labels(scenes, sam_scorer):
    scene = next(s for s in scenes if s.target_mask.shape == (280, 420))
    rows = scenes_to_eval_rows([scene])
    from segzero_plus.data.images import resize_image

    text = (
        '<think> t </think><answer>{"bbox": [84, 168, 420, 900], "points_pos": [[210, 420], [420, 840]], '
        '"points_neg": [[840, 0]]}</answer>'
    )
    backend = ScriptedBackend({prompt_key(resize_image(scene.image, (840, 840)), scene.expression): text})
    spy = SpyScorer(sam_scorer)
    (rec,) = Evaluator(backend, spy).evaluate(rows)
    (req,) = spy.requests
    main, noneg, gt = req.prompts
    # x * 420 / 840, y * 280 / 840, clamped into the 420 x 280 image
    assert main.box == pytest.approx((42.0, 56.0, 210.0, 279.0))
    assert main.points_pos == ((105.0, 140.0), (210.0, 279.0))
    assert main.points_neg == ((419.0, 0.0),)  # label 0 in SAM (points_neg)
    assert noneg.box == main.box and noneg.points_pos == main.points_pos and noneg.points_neg == ()
    assert gt.points_neg == () and len(gt.points_pos) == 2
    assert rec["prompts"]["original"]["bbox"] == [42.0, 56.0, 210.0, 279.0]
    assert rec["strict"] is True and rec["think"] == "t"


def test_every_kind_of_failure_is_counted_never_dropped(scenes, sam_scorer):
    picked = scenes[:5]
    rows = scenes_to_eval_rows(picked)
    rows[0] = dict(rows[0], image=b"not an image")
    responses = synthetic_responses(picked)

    class Flaky(ScriptedBackend):
        def generate(self, images, queries):
            if picked[3].expression in queries:
                raise RuntimeError("out of memory")
            return super().generate(images, queries)

    bad_key = stable_image_key(decode_image(rows[2]["image"]).array)
    spy = SpyScorer(sam_scorer, fail_keys={bad_key})
    records = Evaluator(Flaky(responses), spy).evaluate(rows)
    assert len(records) == 5
    reasons = [r["failure"] for r in records]
    assert reasons == [FAIL_IMAGE, None, FAIL_SAM, FAIL_GENERATION, None]
    for r, s in zip(records, picked, strict=True):
        if r["failure"]:
            assert r["I"] == 0 and r["U"] == int(s.target_mask.sum()) and r["failure_detail"]
    m = summarize_records(records)
    assert m["n"] == 5 and m["failures"] == 3
    assert m["failure_reasons"] == {FAIL_GENERATION: 1, FAIL_IMAGE: 1, FAIL_SAM: 1}


def test_rows_sharing_an_image_are_encoded_once(scenes, sam_scorer):
    s = scenes[4]
    rows = scenes_to_eval_rows([s, s])
    rows[1] = dict(rows[1], id="second", query="another wording")
    sam_scorer.reset_stats()
    sam_scorer.clear_cache()

    class Same:
        name = "same"

        def generate(self, images, queries):
            t = '<answer>{"bbox": [100, 100, 400, 400], "points_pos": [[200, 200]], "points_neg": []}</answer>'
            return [Generation(t, 0, 0) for _ in images]

    records = Evaluator(Same(), sam_scorer, diagnostics=False).evaluate(rows)
    assert sam_scorer.stats.images_encoded == 1
    assert "gt_prompt" not in records[0]
    # the same prompts as two members of one batched decoder call: equal up to round-off, i.e. up to
    # pixels at the logit threshold (bitwise equality of batch members is not promised by torch)
    a, b = (decode_rle(r["pred_mask"]) for r in records)
    assert flipped_share(a, b) <= MAX_FLIPPED_SHARE
    assert abs(records[0]["I"] - records[1]["I"]) <= MAX_FLIPPED_SHARE * a.size


def test_every_prompt_set_is_decoded_under_the_evaluators_sam_protocol(scenes, sam_scorer):
    """Default: Seg-Zero's protocol (best-scored of SAM's three masks) for the answer and the diagnostics;
    single_mask on request. The recorded mask is that protocol's mask for the answer's prompts."""
    from segzero_plus.sam.protocol import MULTIMASK_BEST, SINGLE_MASK
    from segzero_plus.sam.scorer import PromptSet

    picked = scenes[:2]
    rows = scenes_to_eval_rows(picked)
    responses = synthetic_responses(picked)
    for kwargs, expected in (({}, MULTIMASK_BEST), ({"sam_protocol": SINGLE_MASK}, SINGLE_MASK)):
        spy = SpyScorer(sam_scorer)
        records = Evaluator(ScriptedBackend(responses), spy, **kwargs).evaluate(rows)
        assert spy.requests and {req.protocol for req in spy.requests} == {expected}
        for s, rec in zip(picked, records, strict=True):
            o = rec["prompts"]["original"]
            prompt = PromptSet.make(o["bbox"], o["points_pos"], o["points_neg"])
            (alone,) = sam_scorer.score(f"alone/{s.scene_id}", s.image, [prompt], protocol=expected)
            # decoded alone vs in the evaluator's batch: equal up to pixels at the logit threshold
            assert flipped_share(decode_rle(rec["pred_mask"]), alone.mask) <= MAX_FLIPPED_SHARE
    with pytest.raises(ValueError, match="unknown SAM protocol"):
        Evaluator(ScriptedBackend(responses), sam_scorer, sam_protocol="best")
