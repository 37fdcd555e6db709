"""Measure the GPU memory of one TRL-style GRPO update of Qwen2.5-VL-7B against the pre-flight's estimate.

No download: the model is built with random weights from Qwen2.5-VL-7B-Instruct's published
``config.json`` (huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct; the sizes below), in bf16 on the GPU. The
prompt is the tiny Qwen's processor output for one 840x840 image plus text (the tiny model keeps the real
vision geometry: 900 image tokens), padded with text tokens to ``--prompt-tokens``; the special-token ids
are the tiny tokenizer's. One update step as TRL runs it: ``num_generations`` sequences of prompt +
``--completion-tokens``, micro-batches of the profile's ``per_device_train_batch_size``, logits only for
the completion (``logits_to_keep``), per-token log-probabilities, a policy-gradient loss, backward,
gradient accumulation, one optimiser step (the profile's ``grpo.optim``); with ``--mode lora`` the
profile's LoRA adapters (peft) and gradient checkpointing as the profile sets it. Then the generation of
the same batch (``model.generate`` with ``min_new_tokens`` = the completion length). Peak
``torch.cuda.max_memory_allocated`` of each phase is printed next to
:func:`segzero_plus.train.trl_preflight.memory_estimate` as JSON.

``--tiny`` shrinks the model to a few layers (a CPU check of this script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

GIB = 1024**3

QWEN25_VL_7B_TEXT = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_scaling": {"type": "mrope", "rope_type": "default", "mrope_section": [16, 24, 24]},
    "rope_theta": 1000000.0,
}
QWEN25_VL_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}
"""Qwen2.5-VL-7B-Instruct's published sizes (its config.json)."""
TINY_OVERRIDES = {
    "num_hidden_layers": 2,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_attention_heads": 4,
}


def build_model(tokenizer: Any, tiny: bool, device: str) -> Any:
    """Random-init Qwen2.5-VL-7B (or the ``tiny`` variant) in bf16 on ``device``."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(QWEN25_VL_7B_TEXT)
    vision = dict(QWEN25_VL_7B_VISION)
    if tiny:
        text.update(
            TINY_OVERRIDES,
            num_key_value_heads=2,
            rope_scaling={**text["rope_scaling"], "mrope_section": [8, 12, 12]},
        )
        vision.update(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=2,
            out_hidden_size=256,
            fullatt_block_indexes=[1],
        )
    text["rope_parameters"] = {**text["rope_scaling"], "rope_theta": text["rope_theta"]}
    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in (
            "<|image_pad|>",
            "<|video_pad|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|im_end|>",
            "<|endoftext|>",
        )
    }
    config = Qwen2_5_VLConfig(
        text_config={**text, "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
        **{k: text[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")},
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    return model


def prompt_inputs(processor: Any, prompt_tokens: int, device: str) -> dict[str, Any]:
    """One prompt: a 840x840 image (900 image tokens) and text, padded to ``prompt_tokens`` tokens."""
    import numpy as np
    import torch
    from PIL import Image

    image = Image.fromarray(np.full((840, 840, 3), 128, np.uint8))
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "segment the red ring"}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text], images=[image], return_tensors="pt")
    n = enc["input_ids"].shape[1]
    if prompt_tokens > n:  # pad with ordinary text tokens before the image
        filler = processor.tokenizer.encode(" the", add_special_tokens=False)[0]
        extra = torch.full((1, prompt_tokens - n), filler, dtype=enc["input_ids"].dtype)
        enc["input_ids"] = torch.cat([extra, enc["input_ids"]], dim=1)
        enc["attention_mask"] = torch.ones_like(enc["input_ids"])
    return {k: v.to(device) for k, v in enc.items()}


def _optimizer(params: list, optim: str) -> Any:
    import torch
    from transformers.optimization import Adafactor

    if optim == "adafactor":
        return Adafactor(params, lr=1e-6, scale_parameter=False, relative_step=False)
    return torch.optim.AdamW(params, lr=1e-6)


def update_step(model: Any, prompt: dict[str, Any], completion: int, n: int, micro: int, optim: str) -> None:
    """One GRPO update: ``n`` sequences in micro-batches of ``micro``, then one optimiser step."""
    import torch

    opt = _optimizer([p for p in model.parameters() if p.requires_grad], optim)
    vocab = model.config.text_config.vocab_size
    for start in range(0, n, micro):
        b = min(micro, n - start)
        comp = torch.randint(0, vocab, (b, completion), device=prompt["input_ids"].device)
        ids = torch.cat([prompt["input_ids"].expand(b, -1), comp], dim=1)
        out = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=prompt["pixel_values"].repeat(b, 1),
            image_grid_thw=prompt["image_grid_thw"].repeat(b, 1),
            logits_to_keep=completion + 1,
        )
        logps = (
            torch.log_softmax(out.logits[:, :-1].float(), dim=-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        )
        advantages = torch.randn(b, 1, device=logps.device)
        (-(logps * advantages).mean() * b / n).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory of the update and of the generation for the profile, with the pre-flight's estimate."""
    import torch
    from transformers import AutoProcessor

    from segzero_plus.testing.tiny_models import ensure_tiny_qwen
    from segzero_plus.train.findings import Report
    from segzero_plus.train.trl_config import load_run
    from segzero_plus.train.trl_preflight import check_batch, memory_estimate

    run = load_run(args.profile, overrides=[f"grpo.max_completion_length={args.completion_tokens}"])
    batch = check_batch(run, Report())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    processor = AutoProcessor.from_pretrained(ensure_tiny_qwen())
    model = build_model(processor.tokenizer, args.tiny, device)
    if run.peft:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **run.peft))
    if run.grpo.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    prompt = prompt_inputs(processor, args.prompt_tokens, device)
    result: dict[str, Any] = {"profile": args.profile, "device": device, "tiny": args.tiny,
                              "prompt_tokens": int(prompt["input_ids"].shape[1]), "completion_tokens": args.completion_tokens,
                              "num_generations": batch.num_generations, "micro_batch": batch.per_device_train_batch_size,
                              "params_b": sum(p.numel() for p in model.parameters()) / 1e9}  # fmt: skip
    phases = (
        ("update", lambda: update_step(model, prompt, args.completion_tokens, batch.num_generations,
                                       batch.per_device_train_batch_size, str(run.grpo.get("optim", "adamw_torch")))),
        ("generate", lambda: _generate(model, prompt, args.completion_tokens, batch.num_generations)),
    )  # fmt: skip
    for name, phase in phases:
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        phase()
        if device == "cuda":
            torch.cuda.synchronize()
            result[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated() / GIB
        result[f"{name}_s"] = time.perf_counter() - t0
    estimate, parts = memory_estimate(run, None, result["prompt_tokens"], batch)
    result.update(estimate_gib=estimate, estimate_parts=parts)
    return result


def _generate(model: Any, prompt: dict[str, Any], completion: int, n: int) -> None:
    import torch

    model.eval()
    with torch.no_grad():
        model.generate(
            input_ids=prompt["input_ids"].expand(n, -1),
            attention_mask=prompt["attention_mask"].expand(n, -1),
            pixel_values=prompt["pixel_values"].repeat(n, 1),
            image_grid_thw=prompt["image_grid_thw"].repeat(n, 1),
            max_new_tokens=completion,
            min_new_tokens=completion,
            do_sample=True,
        )
    model.train()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m segzero_plus.train.trl_memory_probe", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--profile", default="lora_24gb", help="configs/trl profile (lora_24gb or full_80gb)")
    p.add_argument("--prompt-tokens", type=int, default=1300)
    p.add_argument("--completion-tokens", type=int, default=512)
    p.add_argument("--tiny", action="store_true", help="a few-layer model: a CPU check of the script")
    args = p.parse_args(argv)
    print(json.dumps(measure(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
