"""Prompt lengths in tokens as verl 0.9.1 counts them, for the pre-flight.

verl drops every training row whose prompt is longer than ``data.max_prompt_length`` when
``data.filter_overlong_prompts`` is on (``verl/utils/dataset/rl_dataset.py``,
``RLHFDataset.maybe_filter_out_long_prompts``: the chat template applied by the model's processor, the
images extracted by ``RLHFDataset._process_multi_modal_info`` and the processor's ``input_ids`` from
``verl.utils.tokenizer.build_multimodal_processor_inputs``, image placeholders expanded), and the agent
loop refuses a multimodal prompt longer than ``actor_rollout_ref.rollout.prompt_length``
(``verl/experimental/agent_loop/agent_loop.py``, ``AgentLoopBase.ct_build_initial_tokens``). A file
whose rows are all too long leaves verl's sampler with ``num_samples=0``. :func:`prompt_lengths` counts
each row with those same calls, on verl's own ``RLHFDataset`` (filter off) over the file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LengthReport:
    """Prompt tokens of every row of one file (``lengths[i]`` is row ``i``; -1 = the row failed)."""

    path: str
    lengths: list[int]

    def over(self, limit: int) -> list[tuple[int, int]]:
        """(row, tokens) of the rows longer than ``limit`` or failing (-1)."""
        return [(i, n) for i, n in enumerate(self.lengths) if n < 0 or n > limit]

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)


def _row_length(dataset: Any, doc: dict[str, Any]) -> int:
    """Tokens of one row's prompt, by the calls of ``RLHFDataset.maybe_filter_out_long_prompts``."""
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    processor = dataset.processor
    messages = dataset._build_messages(copy.deepcopy(doc), key=dataset.prompt_key)  # it edits the row
    text = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False, **dict(dataset.apply_chat_template_kwargs)
    )
    images, videos, audios = dataset._process_multi_modal_info(
        messages, dataset.image_patch_size, dataset.config
    )
    if images is None and videos is None and audios is None:
        ids = processor.tokenizer(text=text, add_special_tokens=False, return_attention_mask=False)[
            "input_ids"
        ]
        return len(ids)
    inputs = build_multimodal_processor_inputs(
        processor,
        text=[text],
        images=images,
        videos=videos,
        audio=audios,
        mm_processor_kwargs=dataset.mm_processor_kwargs,
    )
    return len(inputs["input_ids"][0])


PARALLEL_MIN_ROWS = 256
"""Files smaller than this are counted in this process (forking a pool costs more than it saves)."""
_COUNTED: dict[tuple[str, ...], LengthReport] = {}
"""Counts already made in this process, keyed by file (path, size, mtime), model folder and the data
options that change a count: checking several experiments over the same file counts it once."""
_LENGTH_OPTIONS = ("prompt_key", "image_key", "video_key", "image_patch_size", "apply_chat_template_kwargs",
                   "mm_processor_kwargs", "return_raw_chat")  # fmt: skip


def prompt_lengths(
    data_config: Any, model_dir: str | Path, parquet: str | Path, num_proc: int | None = None
) -> LengthReport:
    """Prompt tokens of every row of ``parquet`` with the processor of ``model_dir`` and the ``data``
    section ``data_config`` (its template kwargs, image keys, patch size). ``num_proc``: processes for
    ``datasets.map`` (verl's filter uses ``data.filter_overlong_prompts_workers``)."""
    import json

    from omegaconf import OmegaConf

    config = OmegaConf.create(OmegaConf.to_container(data_config, resolve=True))
    config.filter_overlong_prompts = False
    stat = Path(parquet).stat()
    options = json.dumps({k: config.get(k) for k in _LENGTH_OPTIONS}, sort_keys=True, default=str)
    key = (str(Path(parquet).resolve()), str(stat.st_size), str(stat.st_mtime_ns), str(model_dir), options)
    if key not in _COUNTED:
        _COUNTED[key] = _count(config, model_dir, parquet, num_proc)
    return _COUNTED[key]


def _count(config: Any, model_dir: str | Path, parquet: str | Path, num_proc: int | None) -> LengthReport:
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    dataset = RLHFDataset(
        data_files=[str(parquet)],
        tokenizer=hf_tokenizer(str(model_dir)),
        config=config,
        processor=hf_processor(str(model_dir)),
    )

    def count(doc: dict[str, Any]) -> dict[str, int]:
        try:
            return {"_segzero_prompt_tokens": _row_length(dataset, doc)}
        except Exception:  # verl scores such a row as too long and drops it
            return {"_segzero_prompt_tokens": -1}

    if len(dataset.dataframe) < PARALLEL_MIN_ROWS:
        num_proc = None
    counted = dataset.dataframe.map(
        count, num_proc=num_proc, desc=f"counting prompt tokens of {Path(parquet).name}"
    )
    return LengthReport(str(parquet), [int(n) for n in counted["_segzero_prompt_tokens"]])
