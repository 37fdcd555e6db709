"""verl 0.9.1's own SFT dataset reads prepare-sft's file: input_ids with the image expanded, and the
loss mask covering exactly the synthesised answer; the SFT config composes with verl's defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from segzero_plus.data import io as dio
from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.data.sft import write_sft
from segzero_plus.data.training import TrainingOptions

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "sft"


def _sft_file(tmp_path: Path) -> Path:
    rows = scenes_to_training_rows(
        generate_scenes(2, seed=11, difficulty="hard"),
        TrainingOptions(template="negative_point", data_source="lookalike", resize=(168, 168)),
    )
    train = dio.write_rows(rows, TRAINING_SCHEMA, tmp_path / "train.parquet")
    return write_sft(train, tmp_path / "sft.parquet", regions="distractors").path


def test_verl_multiturn_sft_dataset_loads_our_rows(tmp_path, tiny_qwen_dir):
    from transformers import AutoProcessor
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    path = _sft_file(tmp_path)
    processor = AutoProcessor.from_pretrained(tiny_qwen_dir)
    tokenizer = processor.tokenizer
    config = {"max_length": 2048, "truncation": "error", "pad_mode": "no_padding", "messages_key": "messages"}
    dataset = MultiTurnSFTDataset(str(path), tokenizer, config, processor=processor)
    rows = pq.read_table(path).to_pylist()
    assert len(dataset) == len(rows) == 2
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for item, row in zip(dataset, rows, strict=True):
        ids, mask = item["input_ids"].numpy(), item["loss_mask"].numpy().astype(bool)
        assert int((ids == image_pad).sum()) == 36  # 168x168: 12x12 patches merged 2x2
        assert item["multi_modal_inputs"]["image_grid_thw"].tolist() == [[1, 12, 12]]
        trained = tokenizer.decode(ids[mask]).strip()
        answer = row["messages"][-1]["content"]
        assert trained.startswith(answer) and trained[len(answer) :].strip() in ("<|im_end|>", "")
        assert not mask[: int(np.argmax(mask))].any() and mask[int(np.argmax(mask)) :].all()


def test_sft_config_composes_with_verl_defaults():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("segzero_plus_sft_7b", overrides=["data.train_files=x.parquet"])
    assert cfg.data.messages_key == "messages" and cfg.data.train_files == "x.parquet"
    assert cfg.model.path.endswith("Qwen2.5-VL-7B-Instruct")
    assert cfg.data.max_length >= 1300  # 900 image tokens at 840x840 + prompt + answer
    assert "hf_model" in cfg.checkpoint.save_contents and cfg.optim.lr < 1e-4
