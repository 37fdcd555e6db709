"""The toy SAM2 training script: schedules, interaction simulation, losses, a short resumable run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from segzero_plus.data.scenes import generate_scene, generate_scenes
from segzero_plus.errors import UserError
from segzero_plus.testing.train_tiny_sam import (
    TRAIN_SEED_BASE,
    InteractionSimulator,
    Prompt,
    ToySamTrainer,
    TrainConfig,
    correction_click,
    hard_share,
    lr_factor,
    mask_losses,
    nearest_same_kind,
    object_centres,
    objects,
    training_scenes,
)

SMALL = TrainConfig(
    steps=3,
    images_per_step=2,
    prompts_per_image=4,
    plain_steps=1,
    warmup_steps=1,
    eval_every=100,
    checkpoint_every=2,
    eval_scenes=2,
    big_image_share=0.0,
)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=1000, warmup_steps=100, lr=3e-4, min_lr=3e-5)
    factors = [lr_factor(s, cfg) for s in range(1000)]
    assert factors[0] < factors[50] < factors[99] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[100:], factors[101:], strict=False))
    assert lr_factor(1000, cfg) == pytest.approx(0.1)


def test_hard_share_curriculum():
    cfg = TrainConfig(steps=1000, plain_steps=100, hard_share=0.6, hard_ramp_end=0.5)
    assert hard_share(0, cfg) == hard_share(99, cfg) == 0.0
    assert 0.0 < hard_share(300, cfg) < 0.6
    assert hard_share(500, cfg) == pytest.approx(0.6) and hard_share(999, cfg) == pytest.approx(0.6)


def test_training_scenes_plain_phase_and_held_out_seeds():
    cfg = TrainConfig(images_per_step=3, plain_steps=10, big_image_share=0.0)
    plain = training_scenes(0, cfg, np.random.default_rng(0))
    assert all(not s.distractor_masks and s.difficulty == "easy" for s in plain)
    later = training_scenes(
        10_000, dataclasses.replace(cfg, hard_share=1.0, hard_ramp_end=0.0), np.random.default_rng(1)
    )
    assert all(s.difficulty == "hard" for s in later)
    assert all(s.scene_id.endswith(str(TRAIN_SEED_BASE + 10_000 * 3 + i)) for i, s in enumerate(later))
    held_out = {s.image.tobytes() for s in generate_scenes(20, seed=0)}
    assert not held_out & {s.image.tobytes() for s in plain}


def test_span_prompts_put_the_negative_on_the_lookalike():
    sim = InteractionSimulator({"span_neg": 1.0})
    rng = np.random.default_rng(0)
    for seed in range(6):
        scene = generate_scene(seed, size=(280, 420), difficulty="hard")
        masks = objects(scene)
        for pr in sim.sample(scene, 6, rng, plain=False):
            k = next(i for i, m in enumerate(masks) if m is pr.target)
            if k == 0:  # the anchor has no look-alike: a plain box + positives prompt
                assert not pr.neg
                continue
            other = masks[nearest_same_kind(object_centres(masks), k)]
            assert len(pr.neg) == 1 and other[int(pr.neg[0][1]), int(pr.neg[0][0])]
            assert all(pr.target[int(y), int(x)] for x, y in pr.pos)
            ys, xs = np.nonzero(pr.target | other)
            x1, y1, x2, y2 = pr.box  # jittered by at most 20% of the side around both objects
            assert x1 <= xs.min() + 0.2 * (np.ptp(xs) + 1) and x2 >= xs.max() - 0.2 * (np.ptp(xs) + 1)
            assert y1 <= ys.min() + 0.2 * (np.ptp(ys) + 1) and y2 >= ys.max() - 0.2 * (np.ptp(ys) + 1)


def test_correction_click_targets_the_larger_error():
    gt = np.zeros((48, 48), bool)
    gt[10:30, 10:30] = True
    prompt = Prompt(target=gt, box=(10, 10, 29, 29), pos=[(20, 20)], needs_correction=True)
    leaky = gt.copy()
    leaky[10:30, 30:44] = True  # false positive to the right
    fixed = correction_click(prompt, leaky, gt, hw=(96, 96))  # scene twice the mask frame
    assert not fixed.needs_correction and len(fixed.neg) == 1 and fixed.pos == prompt.pos
    x, y = fixed.neg[0]
    assert leaky[int(y // 2), int(x // 2)] and not gt[int(y // 2), int(x // 2)]
    holey = gt.copy()
    holey[12:28, 12:22] = False  # false negative
    assert len(correction_click(prompt, holey, gt, hw=(48, 48)).pos) == 2
    assert correction_click(prompt, gt, gt, hw=(48, 48)).pos == prompt.pos


def test_mask_losses_prefer_the_right_mask():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1.0
    good = (target[:, :, ::2, ::2] * 2 - 1).repeat(1, 4, 1, 1) * 8
    iou = torch.ones(1, 4)
    assert mask_losses(good, iou, target) < mask_losses(-good, iou, target)
    assert mask_losses(good, iou, target) < mask_losses(good, torch.zeros(1, 4), target)


def test_short_run_exports_a_strict_fp16_checkpoint_and_resumes_exactly(tmp_path):
    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.testing.toy_sam import TOY_SAM_CONFIG

    straight = ToySamTrainer(SMALL, tmp_path / "a")
    for _ in range(SMALL.steps):
        assert np.isfinite(straight.train_step())
    first = ToySamTrainer(SMALL, tmp_path / "b")
    first.train_step(), first.train_step()
    first.save_state()
    resumed = ToySamTrainer(SMALL, tmp_path / "b")
    assert resumed.step == 2
    resumed.train_step()
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    path = straight.export(tmp_path / "toy.pt")
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"model"} and payload["model"]["no_mem_embed"].dtype == torch.float16
    build_sam2_model(str(TOY_SAM_CONFIG), path)  # strict load through the project's build code
    with pytest.raises(UserError, match="another training configuration"):
        ToySamTrainer(dataclasses.replace(SMALL, lr=1e-3), tmp_path / "b")
