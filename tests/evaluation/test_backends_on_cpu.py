"""Generation backends: batched transformers generation equals one-at-a-time; the vLLM request shape."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from segzero_plus.evaluation.backends import (
    BackendError,
    GenerationSettings,
    ReplayBackend,
    TransformersBackend,
    VllmBackend,
    hf_messages,
    make_backend,
)
from segzero_plus.prompts import get_template


def test_messages_match_verl_structure():
    msgs = hf_messages("negative_point", "The red ring.")
    assert msgs[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert msgs[1]["role"] == "user"
    image, text = msgs[1]["content"]
    assert image == {"type": "image"}
    assert text == {"type": "text", "text": get_template("negative_point").user_text("The red ring.")}
    assert "'the red ring'" in text["text"]  # Seg-Zero's normalisation: lower case, dots stripped


@pytest.fixture(scope="module")
def backend(tiny_qwen_dir):
    return TransformersBackend(tiny_qwen_dir, settings=GenerationSettings(max_new_tokens=12), device="cpu")


LOGIT_TOL = 1e-4
"""Largest logit difference allowed between a left-padded batch and the same prompt alone (fp32 CPU;
measured 3.5e-7 on the tiny model, whose smallest top-two margin here is 0.013): padding changes the
attention's sums, so their round-off differs."""


def _record_scores(backend) -> list[tuple]:
    """Make ``backend.model.generate`` also keep each call's (new token ids (B, T), scores (T, B, V))."""
    calls: list[tuple] = []
    generate = backend.model.generate

    def recording(**kwargs):
        out = generate(**kwargs, output_scores=True, return_dict_in_generate=True)
        new = out.sequences[:, kwargs["input_ids"].shape[1] :]
        calls.append((new, torch.stack(out.scores)))
        return out.sequences

    backend.model.generate = recording
    return calls


def test_batched_generation_equals_one_at_a_time(backend, scenes):
    """Greedy tokens of a left-padded batch equal one-at-a-time generation: token counts of the prompts
    exactly, logits within LOGIT_TOL at every step, hence the same tokens until a step whose top two
    logits are within the tolerance (a near-tie either run may break either way; none occurs here, but
    the comparison would accept one and stop there)."""
    from segzero_plus.data.images import model_size, resize_image

    # different image sizes (smart resize keeps the aspect ratio) and query lengths: real left padding
    picked = [scenes[0], scenes[1], scenes[2]]
    images = [resize_image(s.image, model_size(s.image.shape[:2], "smart")) for s in picked]
    queries = [
        s.expression + extra
        for s, extra in zip(picked, ["", " on the left of the picture", "."], strict=True)
    ]
    assert len({im.shape for im in images}) > 1
    calls = _record_scores(backend)
    try:
        batched = backend.generate(images, queries)
        single = [backend.generate([im], [q])[0] for im, q in zip(images, queries, strict=True)]
    finally:
        del backend.model.generate  # back to the class's method
    assert len({g.n_prompt_tokens for g in batched}) > 1  # padding happened
    assert [g.n_prompt_tokens for g in batched] == [g.n_prompt_tokens for g in single]
    assert all(0 < g.n_new_tokens <= 12 for g in batched)
    (batch_tokens, batch_scores), alone = calls[0], calls[1:]
    for i, ((tokens, scores), b, s) in enumerate(zip(alone, batched, single, strict=True)):
        steps = min(b.n_new_tokens, s.n_new_tokens)
        for t in range(steps):
            assert (batch_scores[t, i] - scores[t, 0]).abs().max() < LOGIT_TOL, (i, t)
            if batch_tokens[i, t] != tokens[0, t]:
                top2 = scores[t, 0].topk(2).values
                assert top2[0] - top2[1] < 2 * LOGIT_TOL, (
                    f"sample {i} diverged at step {t} without a near-tie"
                )
                break
        else:
            assert (b.text, b.n_new_tokens) == (s.text, s.n_new_tokens)


def test_missing_model_folder_is_a_backend_error(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        TransformersBackend(tmp_path / "nope")
    with pytest.raises(BackendError, match="unknown backend"):
        make_backend("tgi", tmp_path)


class _FakeOutput:
    def __init__(self, text: str):
        self.outputs = [types.SimpleNamespace(text=text, token_ids=[1, 2, 3])]
        self.prompt_token_ids = list(range(7))


def _fake_vllm(calls: dict) -> types.ModuleType:
    mod = types.ModuleType("vllm")

    class LLM:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def generate(self, requests, sampling, use_tqdm=False):
            calls["requests"], calls["sampling"] = requests, sampling
            return [_FakeOutput(f"answer {i}") for i in range(len(requests))]

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    return mod


def test_vllm_backend_request_shape(tiny_qwen_dir, monkeypatch):
    calls: dict = {}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    be = VllmBackend(tiny_qwen_dir, settings=GenerationSettings(max_new_tokens=33), tensor_parallel_size=2)
    assert calls["init"]["tensor_parallel_size"] == 2
    assert calls["init"]["limit_mm_per_prompt"] == {"image": 1}
    # weights from safetensors only, no code from the folder
    assert calls["init"]["load_format"] == "safetensors" and calls["init"]["trust_remote_code"] is False
    images = [np.zeros((840, 840, 3), np.uint8), np.full((840, 840, 3), 9, np.uint8)]
    out = be.generate(images, ["the red ring", "the blue disc"])
    assert [g.text for g in out] == ["answer 0", "answer 1"]
    assert out[0].n_prompt_tokens == 7 and out[0].n_new_tokens == 3
    req = calls["requests"][1]
    assert req["prompt"].endswith("<|im_start|>assistant\n")
    assert (
        "<|vision_start|><|image_pad|><|vision_end|>" in req["prompt"] and "'the blue disc'" in req["prompt"]
    )
    assert req["multi_modal_data"]["image"].size == (840, 840)
    assert np.asarray(req["multi_modal_data"]["image"])[0, 0, 0] == 9
    assert calls["sampling"].kwargs["temperature"] == 0.0  # greedy by default
    assert calls["sampling"].kwargs["max_tokens"] == 33


def test_vllm_missing_is_a_clear_error(tiny_qwen_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(BackendError, match="vllm"):
        VllmBackend(tiny_qwen_dir)


def test_replay_backend_reads_a_runs_samples(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(
        '{"id": "a", "response": "<answer>x</answer>"}\n{"id": "b", "response": null}\n{"id": "c", "resp'
    )
    be = ReplayBackend(path)
    out = be.generate([None, None, None], ["q", "q", "q"], ids=["a", "b", "zz"])
    assert [g.text for g in out] == ["<answer>x</answer>", "", ""]
    with pytest.raises(ValueError):
        be.generate([None], ["q"])
