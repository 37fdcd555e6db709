"""Rollout batches for scoring without a trainer (the demo, the reward tests): a verl ``DataProto`` of
training rows x (one model rollout + crafted answers), shaped as verl's rollout hands it to the reward loop.

Prompts go through verl's ``RLHFDataset`` and the Qwen2.5-VL processor (left-padded); responses are
right-padded with the tokenizer's pad id; crafted answers end with an EOS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from verl import DataProto
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn


def load_rlhf_dataset(
    data_config: Any, model_dir: str | Path, parquet: str | Path, tokenizer: Any = None
) -> RLHFDataset:
    """verl's ``RLHFDataset`` over one training parquet with the model's processor (and its tokenizer
    unless ``tokenizer`` is given); ``data_config``: the ``data`` section of the training config."""
    from verl.utils import hf_processor, hf_tokenizer

    if tokenizer is None:
        tokenizer = hf_tokenizer(str(model_dir))
    return RLHFDataset(
        data_files=[str(parquet)],
        tokenizer=tokenizer,
        config=data_config,
        processor=hf_processor(str(model_dir)),
    )


def rollout_dataproto(
    dataset: RLHFDataset,
    model_dir: str | Path,
    crafted: Callable[[dict[str, Any]], dict[str, str]],
    *,
    max_new_tokens: int = 24,
    sample_seed: int | None = None,
    rollout_kind: str = "rollout",
) -> tuple[DataProto, list[str]]:
    """A DataProto of every row of ``dataset`` x (one rollout of the Qwen2.5-VL at ``model_dir`` + the
    answers ``crafted(row)`` returns, keyed by kind), and the kind of each sample, in order (a row's
    rollout, labelled ``rollout_kind``, then its crafted answers).

    ``sample_seed`` None: greedy rollouts; an int: sampled at temperature 1 with torch seeded
    ``sample_seed + row index``.
    """
    from qwen_vl_utils import process_vision_info
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_plus.model_folders import load_pretrained_model

    tokenizer, processor = dataset.tokenizer, dataset.processor
    model = load_pretrained_model(Qwen2_5_VLForConditionalGeneration, model_dir).eval()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if sample_seed is None:
        generate_options: dict[str, Any] = {"do_sample": False}
    else:
        generate_options = {"do_sample": True, "temperature": 1.0, "eos_token_id": eos, "pad_token_id": pad}
    samples, kinds = [], []
    for i in range(len(dataset)):
        row = dataset[i]
        messages = row["raw_prompt"]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images, _ = process_vision_info(messages, image_patch_size=14)
        inputs = processor(text=[text], images=images, return_tensors="pt")
        prompt_ids = inputs["input_ids"][0]
        with torch.inference_mode():
            if sample_seed is not None:
                torch.manual_seed(sample_seed + i)
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, **generate_options)
        responses = {rollout_kind: generated[0, prompt_ids.shape[0] :]}
        for kind, answer in crafted(row).items():
            ids = tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            responses[kind] = torch.cat([ids, torch.tensor([eos])])
        for kind, response_ids in responses.items():
            samples.append((row, prompt_ids, response_ids))
            kinds.append(kind)
    return _padded_batch(samples, pad), kinds


def _padded_batch(samples: list[tuple[dict[str, Any], torch.Tensor, torch.Tensor]], pad: int) -> DataProto:
    """(dataset row, prompt ids, response ids) triples -> one DataProto: prompts left-padded, responses
    right-padded, attention mask and position ids over both, ``uid`` = ``<row index>_<sample number>``."""
    p_len = max(p.shape[0] for _, p, _ in samples)
    r_len = max(r.shape[0] for _, _, r in samples)
    items = []
    for k, (row, p, r) in enumerate(samples):
        prompt_ids = torch.cat([torch.full((p_len - p.shape[0],), pad), p])
        response_ids = torch.cat([r, torch.full((r_len - r.shape[0],), pad)])
        mask = torch.cat([torch.arange(p_len) >= p_len - p.shape[0], torch.arange(r_len) < r.shape[0]]).long()
        item = {key: v for key, v in row.items() if not isinstance(v, torch.Tensor)}
        item.update(
            prompts=prompt_ids,
            responses=response_ids,
            input_ids=torch.cat([prompt_ids, response_ids]),
            attention_mask=mask,
            position_ids=(torch.cumsum(mask, 0) - 1).clamp(min=0),
            uid=f"{row['index']}_{k}",
        )
        items.append(item)
    return DataProto.from_single_dict(collate_fn(items))
