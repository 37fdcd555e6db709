"""The toy policy fixture loads like any model folder and answers held-out scenes in our format; its
trainer masks everything but the answer."""

from __future__ import annotations

import pytest
import torch

from segzero_plus.data.images import resize_image
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.errors import UserError
from segzero_plus.parsing import parse_answer
from segzero_plus.prompts import get_template
from segzero_plus.testing import toy_policy
from segzero_plus.testing.train_toy_policy import (
    HELD_OUT_SEED,
    Example,
    TrainConfig,
    collate,
    encode_examples,
    lr_factor,
)


def test_missing_fixture_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_policy, "TOY_POLICY_DIR", tmp_path / "gone")
    with pytest.raises(UserError, match="fixtures/README.md"):
        toy_policy.toy_policy_dir()


def _generate(model, processor, image, query: str) -> str:
    from PIL import Image

    messages = get_template(toy_policy.TOY_POLICY_TEMPLATE).messages(query)
    chat = [
        messages[0],
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": messages[1]["content"][7:]}],
        },
    ]
    text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=160, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def test_toy_policy_answers_held_out_scenes_in_the_negative_point_format():
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    folder = toy_policy.toy_policy_dir()
    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    scenes = generate_scenes(2, seed=HELD_OUT_SEED) + generate_scenes(
        2, seed=HELD_OUT_SEED, difficulty="hard"
    )
    answers = [
        parse_answer(
            _generate(model, processor, resize_image(s.image, toy_policy.TOY_POLICY_SIZE), s.expression)
        )
        for s in scenes
    ]
    assert sum(a.ok for a in answers) >= 3, [a.errors for a in answers]
    h, w = toy_policy.TOY_POLICY_SIZE
    for a in answers:
        if a.ok:  # coordinates in the policy's MODEL frame
            assert 0 <= a.bbox[0] <= a.bbox[2] < w + 1 and 0 <= a.bbox[1] <= a.bbox[3] < h + 1


def test_collate_trains_on_the_answer_tokens_only():
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(toy_policy.toy_policy_dir())
    image = Image.new("RGB", (56, 56))
    examples = [Example([1, 2, 3, 4, 5], 3, image), Example([6, 7, 8], 1, image)]
    batch = collate(examples, processor)
    assert batch["labels"].tolist() == [[-100, -100, -100, 4, 5], [-100, 7, 8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4]]


def test_encode_examples_puts_the_answer_after_the_generation_prompt(tmp_path):
    from transformers import AutoProcessor

    from segzero_plus.data import io as dio
    from segzero_plus.data.lookalike import scenes_to_training_rows
    from segzero_plus.data.schema import TRAINING_SCHEMA
    from segzero_plus.data.sft import write_sft
    from segzero_plus.data.training import TrainingOptions

    rows = scenes_to_training_rows(
        generate_scenes(1, seed=5, difficulty="hard"),
        TrainingOptions(
            template="negative_point", data_source="lookalike", resize=toy_policy.TOY_POLICY_SIZE
        ),
    )
    sft = write_sft(dio.write_rows(rows, TRAINING_SCHEMA, tmp_path / "t.parquet"), tmp_path / "s.parquet",
                    regions="distractors").path  # fmt: skip
    processor = AutoProcessor.from_pretrained(toy_policy.toy_policy_dir())
    (example,) = encode_examples(sft, processor)
    tok = processor.tokenizer
    prompt = tok.decode(example.input_ids[: example.answer_start])
    answer = tok.decode(example.input_ids[example.answer_start :])
    assert prompt.endswith("<|im_start|>assistant\n") and prompt.count("<|image_pad|>") == 36
    assert answer.startswith("<think> The target is") and answer.endswith("</answer><|im_end|>")


def test_lr_factor_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10)
    values = [lr_factor(s, cfg) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:], strict=False))
    assert values[-1] >= cfg.min_lr_factor and values[-1] < 0.1
