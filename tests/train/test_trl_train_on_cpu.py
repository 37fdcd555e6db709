"""The TRL engine end to end on CPU: 2 real GRPO steps of ``trl.GRPOTrainer`` on our rows, our reward
functions and the tiny Qwen2.5-VL.

The random tiny model never writes a parseable answer, so every reward would be 0 and GRPO would not
move the weights. The model's ``generate`` therefore runs for real and then has, in each group of 4, the
completions replaced by known answers: the row's ground-truth answer, a shifted one, a malformed one, and
the model's own text. One of the two rows has a broken ground truth: its samples must score a counted 0
while the other row's step goes on.
"""

from __future__ import annotations

import pytest
import torch

from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import generate_scene
from segzero_plus.data.training import TrainingOptions
from segzero_plus.testing.answers import crafted_answers
from segzero_plus.train.trl_config import load_run
from segzero_plus.train.trl_data import trl_dataset
from segzero_plus.train.trl_train import build_trainer

HW = (112, 112)
GENERATIONS = 4


@pytest.fixture(scope="module")
def rows():
    scene = generate_scene(5, size=HW, n_distractors=2, difficulty="hard")
    options = TrainingOptions(template="negative_point", resize=HW, data_source="lookalike")
    good = scenes_to_training_rows([scene], options)[0]
    bad = {**good, "reward_model": {"style": "rule", "ground_truth": '{"bbox": [1, 2'}}
    bad["extra_info"] = {**good["extra_info"], "id": "broken_row"}
    return good, bad


def _scripted_generate(model, tokenizer, good_row):
    """Wrap ``model.generate``: real generation, then positions 0-2 of each group replaced by known
    answers (ground truth, shifted, malformed); position 3 keeps the model's own text."""
    answers = crafted_answers(good_row)
    scripted = [answers["exact"], answers["shifted"], answers["malformed"]]
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.pad_token_id
    real_generate = model.generate

    def generate(**kwargs):
        out = real_generate(**kwargs)
        prompt_len = kwargs["input_ids"].shape[1]
        completions = [out[i, prompt_len:].tolist() for i in range(out.shape[0])]
        for i in range(len(completions)):
            if i % GENERATIONS < len(scripted):
                completions[i] = tokenizer.encode(scripted[i % GENERATIONS], add_special_tokens=False) + [eos]
        width = max(len(c) for c in completions)
        body = torch.tensor([c + [pad] * (width - len(c)) for c in completions], dtype=out.dtype)
        return torch.cat([out[:, :prompt_len], body], dim=1)

    model.generate = generate


def _train(tmp_path, rows, experiment, sam_scorer=None):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from segzero_plus.train.trl_config import resolve_model

    run = load_run(
        "cpu_toy",
        experiment,
        ["grpo.max_steps=2", "grpo.max_completion_length=24", f"grpo.num_generations={GENERATIONS}"],
    )
    folder = resolve_model(run.model)
    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)
    _scripted_generate(model, processor.tokenizer, rows[0])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer, rewards = build_trainer(
        run, trl_dataset(list(rows), processor), tmp_path, sam_scorer=sam_scorer, model=model
    )
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    steps = [e for e in trainer.state.log_history if "loss" in e]
    return rewards, steps, changed, len(before)


def test_two_grpo_steps_update_the_weights_and_log_every_term(tmp_path, rows):
    rewards, steps, changed, n_params = _train(tmp_path, rows, "segzero_plus_geometry")
    assert len(steps) == 2
    assert len(changed) > n_params // 2, f"only {len(changed)} of {n_params} tensors changed"
    for step in steps:
        for term in rewards.terms:
            assert f"rewards/{term}/mean" in step and f"rewards/{term}/std" in step
        # the broken row's 4 samples: counted zeros; the malformed answer: a parse error
        assert step["segzero/reward_errors"] == GENERATIONS
        assert step["segzero/parse_rate"] < 1.0
        assert step["reward_std"] > 0
        assert step["rewards/bbox_iou/mean"] > 0
    assert rewards.scorer.stats.errors == 2 * GENERATIONS
    assert rewards.batches_scored == 2  # every term read from one scoring pass per batch


def test_sam_counterfactual_run_logs_its_terms_and_encodes_each_image_once(tmp_path, rows):
    from segzero_plus.testing.toy_sam import toy_sam_scorer

    scorer = toy_sam_scorer(cache_size=4)
    rewards, steps, changed, _ = _train(tmp_path, rows, "segzero_plus_sam_cf", sam_scorer=scorer)
    assert "sam_counterfactual" in rewards.terms and "sam_mask_iou" in rewards.terms
    for step in steps:
        assert "rewards/sam_counterfactual/mean" in step
        assert step["segzero/sam_failed"] == 0
    # one image in the data: encoded once over both steps (the scorer's embedding cache)
    assert scorer.stats.images_encoded == 1
    assert changed
