"""Offline tiny models: a deterministic tiny Qwen2.5-VL folder and random-weight SAM2 checkpoints.

No model hub is reachable where tests run, so tests and the CPU demo build these locally and then load
them with the SAME code that loads the real checkpoints (``AutoProcessor.from_pretrained``,
``Qwen2_5_VLForConditionalGeneration.from_pretrained``, verl's ``hf_processor``; SAM2 checkpoints in
the real ``{"model": state_dict}`` format).

The tiny Qwen2.5-VL keeps the REAL vision geometry (patch 14, spatial merge 2, temporal patch 2), so an
840x840 image becomes 900 image tokens exactly as with the 7B model, and head_dim 32 so that vLLM can
load the same folder on a GPU host. Two builds are byte-identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from segzero_plus.paths import cache_dir

TINY_QWEN_NAME = "tiny-qwen2.5-vl"
SEED = 1234

# Qwen2/Qwen2.5 special tokens, in Qwen's order (ids follow the learned vocabulary here).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2.5-VL's conversation format, written as our own Jinja template: default system turn, image and
# video placeholders inside <|vision_start|>...<|vision_end|>, and the assistant generation prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# A fixed corpus for the byte-level BPE: the vocabulary of our prompts and answers.
_CORPUS = [
    "You are a helpful assistant.",
    "Please find 'the red ring left of the blue square' with bbox and points.",
    "Compare the difference between objects and find the most closely matched one.",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.",
    "<think> There are two red rings; the one left of the blue square is the target. </think>",
    '<answer>{"bbox": [10,100,200,210], "points_pos": [[30,110],[35,180]], "points_neg": [[250,150]]}</answer>',
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>",
    "negative points on look-alike background regions that must be excluded, positive points inside.",
    "disc ring square triangle red green blue yellow purple orange above below right of left of the",
    "0 1 2 3 4 5 6 7 8 9 10 42 100 128 256 300 420 512 640 700 840 [ ] { } , : \" ' .",
]


def _train_tokenizer(vocab_size: int = 480):
    """Byte-level BPE trained on the fixed corpus, Qwen2 pre-tokenisation, Qwen special tokens appended."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    qwen2_split = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(qwen2_split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_qwen(out: str | Path) -> Path:
    """Write the tiny Qwen2.5-VL folder (config, safetensors, tokenizer, processor) to ``out``.

    Deterministic: the same call writes byte-identical files. Returns ``out``.
    """
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    rope = {"type": "mrope", "rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 1000000.0}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,  # head_dim 32: a size vLLM's attention backends accept
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_scaling": dict(rope),
        "rope_parameters": dict(rope),
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": False,
    }
    vision = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "out_hidden_size": 128,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
        "tokens_per_second": 2,
    }
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
        **{k: text[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")},
    )
    torch.manual_seed(SEED)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)

    image_processor = Qwen2VLImageProcessor(
        min_pixels=3136, max_pixels=12845056, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    video_processor = Qwen2VLVideoProcessor(patch_size=14, temporal_patch_size=2, merge_size=2)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    _normalise_tokenizer_config(out)
    return out


def _normalise_tokenizer_config(folder: Path) -> None:
    """Name the tokenizer class as Qwen's so verl/vLLM pick the Qwen2 code paths."""
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def ensure_tiny_qwen(root: str | Path | None = None) -> Path:
    """Return the cached tiny Qwen2.5-VL folder, building it (atomically) on first use."""
    root = Path(root) if root else cache_dir()
    final = root / TINY_QWEN_NAME
    if (final / "config.json").exists() and (final / "model.safetensors").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-qwen-", dir=root))
    try:
        build_tiny_qwen(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_tiny_sam(config_name: str = "tiny_test", root: str | Path | None = None) -> tuple[str, Path]:
    """Return ``(config_name, checkpoint_path)`` of a cached random-weight SAM2 checkpoint."""
    from segzero_plus.sam.build import write_random_checkpoint

    root = Path(root) if root else cache_dir()
    path = root / "sam" / f"{config_name}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pt.tmp")
        write_random_checkpoint(tmp, config_name, seed=0)
        tmp.replace(path)
    return config_name, path


def register(subparsers: argparse._SubParsersAction) -> None:
    from segzero_plus.arguments import sam_config_name

    p = subparsers.add_parser(
        "make-tiny", help="build the offline tiny Qwen2.5-VL and random SAM2 checkpoints"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--sam",
        nargs="*",
        type=sam_config_name,
        default=["tiny_test", "sam2.1_hiera_t"],
        help="SAM2 configs to write random checkpoints for (default: tiny_test sam2.1_hiera_t)",
    )
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from segzero_plus.data.outputs import output_lock, writable_folder

    out = writable_folder(args.out)
    with output_lock(out):
        qwen = ensure_tiny_qwen(out)
        print(f"tiny Qwen2.5-VL: {qwen}")
        for name in args.sam:
            _, path = ensure_tiny_sam(name, out)
            print(f"random SAM2 ({name}): {path}")
    return 0
