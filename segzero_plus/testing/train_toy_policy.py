"""Train the toy policy fixture: the tiny Qwen2.5-VL cold-started by SFT on look-alike scenes, on CPU.

Data, made by the project's own commands' code in order (each stage is skipped when its output exists,
so a rerun resumes): look-alike scenes (half easy, half hard, :mod:`segzero_plus.data.scenes`) -> training
rows in a small MODEL frame (``--size`` squash, 168x168 by default: 36 image tokens after Qwen2.5-VL's
2x2 merge, so a step is cheap) with the negative-point template -> confused regions mined with the
trained toy SAM2 (:mod:`segzero_plus.testing.toy_sam`) -> SFT rows (:mod:`segzero_plus.data.sft`: box,
two inscribed points, negatives on mined look-alikes, a templated think).

Model: the tiny Qwen2.5-VL folder of :func:`segzero_plus.testing.tiny_models.ensure_tiny_qwen` (random weights),
loaded with ``AutoProcessor`` and ``Qwen2_5_VLForConditionalGeneration.from_pretrained`` like a real
checkpoint, then trained on the answer tokens only (cross-entropy; prompt and image tokens masked) with
a plain torch loop: AdamW, linear warm-up then cosine decay, gradient clipping at 1. Every batch of step
``s`` is drawn from the seed ``[seed, s]``; ``state.pt`` (model, optimiser, step) is written every
``--save-every`` steps and a rerun resumes from it exactly; ``log.jsonl`` holds the loss curve. The
result is saved in bf16 with its processor, a folder that the evaluation backends load like any model.

Usage (the command that made the committed fixture is in ``fixtures/README.md``)::

    python -m segzero_plus.testing.train_toy_policy --work /tmp/sft/run --out /tmp/sft/run/toy_policy
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

TRAIN_SEED = 1000
"""``generate_scenes(n, seed=TRAIN_SEED, difficulty="mixed")``: the training scenes."""
HELD_OUT_SEED = 77
"""``generate_scenes(n, seed=HELD_OUT_SEED, ...)``: held-out scenes (never trained on)."""


@dataclass(frozen=True)
class TrainConfig:
    """One run's recipe. ``size``: model frame side (px); ``batch``: sequences per step."""

    scenes: int = 1500
    size: int = 168
    steps: int = 2800
    batch: int = 8
    lr: float = 2e-3
    warmup: int = 50
    min_lr_factor: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0
    save_every: int = 100


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine decay to ``min_lr_factor``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))


def prepare_data(work: Path, cfg: TrainConfig) -> Path:
    """Scenes -> training parquet -> mined with the toy SAM2 -> SFT parquet, in ``work``; returns the SFT path."""
    from segzero_plus.data.lookalike import write_scenes_training
    from segzero_plus.data.mining import mine_parquet
    from segzero_plus.data.scenes import generate_scenes
    from segzero_plus.data.sft import write_sft
    from segzero_plus.data.training import TrainingOptions
    from segzero_plus.testing.toy_sam import toy_sam_checkpoint

    work.mkdir(parents=True, exist_ok=True)
    train, mined, sft = work / "train.parquet", work / "train_mined.parquet", work / "sft.parquet"
    if not train.exists():
        scenes = generate_scenes(cfg.scenes, seed=TRAIN_SEED, difficulty="mixed")
        options = TrainingOptions(
            template="negative_point", data_source="lookalike", resize=(cfg.size, cfg.size)
        )
        write_scenes_training(scenes, train, options=options)
    if not mined.exists():
        config_name, checkpoint = toy_sam_checkpoint()
        mine_parquet(
            str(train), mined, config_name=config_name, checkpoint=checkpoint, device="cpu", progress=True
        )
    if not sft.exists():
        write_sft(mined, sft, progress=True)
    return sft


@dataclass
class Example:
    """One tokenised SFT row: ``input_ids`` (prompt with image pads + answer + end), answer start, image."""

    input_ids: list[int]
    answer_start: int
    image: Any


def encode_examples(sft_path: Path, processor: Any) -> list[Example]:
    """Tokenise every SFT row: the chat prompt (image expanded to its pad tokens) then the answer tokens.

    The answer is tokenised on its own after the generation prompt, as the model emits it at inference.
    """
    import pyarrow.parquet as pq
    from PIL import Image

    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    examples = []
    for row in pq.read_table(sft_path, columns=["messages", "images"]).to_pylist():
        *prompt, answer = row["messages"]
        image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
        chat = [{"role": m["role"], "content": _content(m["content"])} for m in prompt]
        text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        ids = processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
        answer_ids = tok(answer["content"], add_special_tokens=False)["input_ids"] + [end]
        examples.append(Example(input_ids=ids + answer_ids, answer_start=len(ids), image=image))
    return examples


def _content(text: str) -> Any:
    """A verl-style turn (``<image>`` placeholder) as chat-template content parts."""
    if not text.startswith("<image>"):
        return text
    return [{"type": "image"}, {"type": "text", "text": text[len("<image>") :]}]


def collate(examples: list[Example], processor: Any) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, labels (-100 off the answer), pixel_values, grid."""
    pad = processor.tokenizer.pad_token_id
    n = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), n), pad, dtype=torch.long)
    attn = torch.zeros((len(examples), n), dtype=torch.long)
    labels = torch.full((len(examples), n), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        k = len(e.input_ids)
        ids[i, :k] = torch.tensor(e.input_ids)
        attn[i, :k] = 1
        labels[i, e.answer_start : k] = ids[i, e.answer_start : k]
    vision = processor.image_processor(images=[e.image for e in examples], return_tensors="pt")
    return {
        "input_ids": ids,
        "attention_mask": attn,
        "labels": labels,
        "pixel_values": vision["pixel_values"],
        "image_grid_thw": vision["image_grid_thw"],
    }


class PolicyTrainer:
    """One resumable run in ``work`` (``state.pt`` checkpoint, ``log.jsonl`` loss log)."""

    def __init__(self, cfg: TrainConfig, work: str | Path, threads: int = 1) -> None:
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from segzero_plus.testing.tiny_models import ensure_tiny_qwen

        self.cfg, self.work = cfg, Path(work)
        torch.set_num_threads(threads)
        torch.manual_seed(cfg.seed)
        base = ensure_tiny_qwen()
        self.processor = AutoProcessor.from_pretrained(base)
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
        self.model.train()
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.examples = encode_examples(prepare_data(self.work, cfg), self.processor)
        self._resume()

    @property
    def state_path(self) -> Path:
        return self.work / "state.pt"

    def _resume(self) -> None:
        if not self.state_path.exists():
            return
        state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        if state["config"] != dataclasses.asdict(self.cfg):
            raise SystemExit(f"{self.state_path} was written with another config; use a fresh --work")
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.step = int(state["step"])

    def save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        state = {
            "config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "step": self.step,
        }
        torch.save(state, tmp)
        tmp.replace(self.state_path)

    def train_step(self) -> float:
        """One optimiser step on a batch drawn from the seed ``[seed, step]``; returns the loss."""
        rng = np.random.default_rng([self.cfg.seed, self.step])
        picks = rng.choice(len(self.examples), size=self.cfg.batch, replace=False)
        batch = collate([self.examples[int(i)] for i in picks], self.processor)
        for group in self.optim.param_groups:
            group["lr"] = self.cfg.lr * lr_factor(self.step, self.cfg)
        loss = self.model(**batch).loss
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optim.step()
        self.step += 1
        return float(loss.detach())

    def run(self, progress: bool = True) -> None:
        from tqdm import tqdm

        log = (self.work / "log.jsonl").open("a")
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="toy policy SFT", disable=not progress)
        t0, losses = time.perf_counter(), []
        while self.step < self.cfg.steps:
            losses.append(self.train_step())
            bar.update(1)
            if self.step % 20 == 0 or self.step == self.cfg.steps:
                record = {
                    "step": self.step,
                    "loss": float(np.mean(losses)),
                    "wall_s": time.perf_counter() - t0,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                losses = []
            if self.step % self.cfg.save_every == 0 or self.step == self.cfg.steps:
                self.save_state()
        bar.close()
        log.close()

    def export(self, out: str | Path) -> Path:
        """Save the trained model (bf16 safetensors) and its processor to the folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        self.model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
        self.model.to(torch.float32)
        self.processor.save_pretrained(out)
        from segzero_plus.testing.tiny_models import _normalise_tokenizer_config

        _normalise_tokenizer_config(out)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="run folder: data, state.pt checkpoint, log.jsonl")
    ap.add_argument("--out", required=True, help="folder for the trained model and processor")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: on a shared machine more threads spin-wait; not part of the recipe)",
    )
    ap.add_argument(
        "--export-only",
        action="store_true",
        help="export the latest state.pt without training further (a run cut short: its step is logged)",
    )
    args = ap.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    trainer = PolicyTrainer(cfg, args.work, threads=args.threads)
    if not args.export_only:
        trainer.run()
    print(f"trained {trainer.step} of {cfg.steps} steps")
    print(f"toy policy: {trainer.export(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
