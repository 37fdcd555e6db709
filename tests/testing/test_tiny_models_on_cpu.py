"""Tiny offline models load through the real classes: Qwen2.5-VL via transformers, SAM2 via our builder."""

import filecmp

import numpy as np
import pytest

from segzero_plus.testing.tiny_models import build_tiny_qwen


def _image(h=840, w=840, seed=0):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_tiny_qwen_build_is_byte_deterministic(tmp_path):
    a, b = build_tiny_qwen(tmp_path / "a"), build_tiny_qwen(tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert "model.safetensors" in names and "tokenizer.json" in names
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == [] and sorted(match) == names


def test_processor_gives_900_image_tokens_for_840(tiny_qwen_dir):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_qwen_dir)
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "segment the ring"}]}]
    text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("segment the ring<|im_end|>\n<|im_start|>assistant\n")
    inputs = proc(text=[text], images=[_image()], return_tensors="pt")
    image_token = proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_token).sum()) == 900
    assert inputs["image_grid_thw"].tolist() == [[1, 60, 60]]
    # a non-square image is resized to multiples of 28 like the real processor
    inputs = proc(text=[text], images=[_image(280, 420)], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 20, 30]]


def test_tiny_qwen_generates_on_cpu(tiny_qwen_dir):
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    proc = AutoProcessor.from_pretrained(tiny_qwen_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen_dir).eval()
    assert model.config.text_config.hidden_size // model.config.text_config.num_attention_heads == 32
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "find it"}]}]
    text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    inputs = proc(text=[text], images=[_image(336, 336)], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= new.numel() <= 8
    assert isinstance(proc.decode(new, skip_special_tokens=True), str)


def test_random_sam2_checkpoint_predicts_with_negative_points(tiny_sam_checkpoint):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from segzero_plus.sam.build import build_sam2_model

    config_name, path = tiny_sam_checkpoint
    model = build_sam2_model(config_name, path, device="cpu")
    predictor = SAM2ImagePredictor(model)
    size = model.image_size  # the predictor's feature sizes assume 1024 unless told
    predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    predictor.set_image(np.asarray(_image(200, 300, seed=1)))
    masks, ious, _ = predictor.predict(
        point_coords=np.array([[150.0, 100.0], [160.0, 110.0], [40.0, 40.0]]),
        point_labels=np.array([1, 1, 0]),
        box=np.array([100.0, 60.0, 220.0, 160.0]),
        multimask_output=False,
    )
    assert masks.shape == (1, 200, 300) and ious.shape == (1,)
    assert set(np.unique(masks)).issubset({0.0, 1.0})


def test_sam_checkpoint_is_the_real_format(tiny_sam_checkpoint):
    import torch

    _, path = tiny_sam_checkpoint
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"model"}
    assert any(k.startswith("image_encoder.") for k in ckpt["model"])
    assert any(k.startswith("sam_mask_decoder.") for k in ckpt["model"])


def test_make_tiny_cli(tmp_path, capsys):
    from segzero_plus.cli import main

    assert main(["make-tiny", "--out", str(tmp_path), "--sam", "tiny_test"]) == 0
    out = capsys.readouterr().out
    assert "tiny Qwen2.5-VL" in out and (tmp_path / "sam" / "tiny_test.pt").exists()
    assert (tmp_path / "tiny-qwen2.5-vl" / "config.json").exists()


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_cli_help_lists_subcommands(argv, capsys):
    from segzero_plus.cli import main

    if argv:
        with pytest.raises(SystemExit):
            main(argv)
    else:
        assert main(argv) == 2
    assert "make-tiny" in capsys.readouterr().out
