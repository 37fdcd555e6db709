"""RefCOCOg (refer layout) -> verl training parquet, from a miniature dataset in the real formats."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from segzero_plus.data import io as dio
from segzero_plus.data.images import model_size, resize_mask
from segzero_plus.data.refcoco import ReferDataset
from segzero_plus.data.refer_training import prepare_refer_training
from segzero_plus.data.schema import loads_ground_truth, parse_solution
from segzero_plus.data.training import TrainingOptions, parse_size
from segzero_plus.geometry import inscribed_circle_centres, mask_bbox, scale_box, scale_points
from segzero_plus.masks import decode_rle
from segzero_plus.testing.miniature import write_refer_layout


@pytest.fixture(scope="module")
def refer_layout(tmp_path_factory):
    """COCO-like sizes, so the 840 squash scales by non-integer factors, up and down."""
    from segzero_plus.data.scenes import generate_scenes

    scenes = generate_scenes(12, seed=11, sizes=((480, 640), (427, 640), (640, 425), (1000, 700)))
    root = tmp_path_factory.mktemp("refer")
    write_refer_layout(scenes, root / "refer", root / "train2014")
    return root / "refer", root / "train2014"


@pytest.fixture(scope="module")
def train_parquet(refer_layout, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "refcocog_train.parquet"
    res = prepare_refer_training(*refer_layout, out, progress=False, chunk_size=2)
    return res


def test_layout_files_are_the_real_formats(refer_layout):
    root, images = refer_layout
    refs = pickle.loads((root / "refcocog" / "refs(umd).p").read_bytes())
    assert {
        "ref_id",
        "ann_id",
        "image_id",
        "category_id",
        "split",
        "file_name",
        "sent_ids",
        "sentences",
    } <= set(refs[0])
    inst = json.loads((root / "refcocog" / "instances.json").read_text())
    assert {"images", "annotations", "categories"} <= set(inst)
    segs = [a["segmentation"] for a in inst["annotations"]]
    assert any(isinstance(s, list) for s in segs) and any(isinstance(s, dict) for s in segs)
    assert (images / inst["images"][0]["file_name"]).read_bytes()[:2] == b"\xff\xd8"  # JPEG


def test_training_rows_have_one_row_per_train_sentence(train_parquet, refer_layout):
    refer = ReferDataset(refer_layout[0], "refcocog")
    expected = {f"refcocog_umd_train_{e.ref_id}_{e.sent_id}" for e in refer.expressions("train")}
    table = pq.read_table(train_parquet.path)
    ids = [e["id"] for e in table.column("extra_info").to_pylist()]
    assert set(ids) == expected and len(ids) == len(expected) == train_parquet.rows
    assert [e["index"] for e in table.column("extra_info").to_pylist()] == list(range(len(ids)))
    assert set(table.column("ability").to_pylist()) == {"segmentation"}


def test_ground_truth_matches_the_original_annotation_after_scaling_back(train_parquet, refer_layout):
    refer = ReferDataset(refer_layout[0], "refcocog")
    rows = pq.read_table(train_parquet.path).to_pylist()
    assert train_parquet.notes.get("point_moved_into_mask", 0) == 0
    n_distractor_rows = 0
    for row in rows:
        extra = row["extra_info"]
        gt = loads_ground_truth(row["reward_model"]["ground_truth"])
        orig_hw = (extra["orig_height"], extra["orig_width"])
        assert (gt["height"], gt["width"]) == (840, 840) and (gt["orig_height"], gt["orig_width"]) == orig_hw
        image = Image.open(io.BytesIO(row["images"][0]["bytes"]))
        assert image.size == (840, 840) and image.mode == "RGB" and image.format == "PNG"
        orig_mask = refer.ann_mask(extra["ann_id"])
        model_mask = decode_rle(gt["mask"])
        assert (model_mask == resize_mask(orig_mask, (840, 840))).all()  # masks round-trip through RLE
        back_box = scale_box(gt["bbox"], (840, 840), orig_hw)
        assert np.abs(np.subtract(back_box, mask_bbox(orig_mask))).max() <= 1.0
        back_pts = scale_points(gt["points"], (840, 840), orig_hw)
        assert np.abs(np.subtract(back_pts, inscribed_circle_centres(orig_mask, 2))).max() <= 1.0
        assert all(model_mask[y, x] for x, y in gt["points"])
        assert parse_solution(gt["solution"]) == (gt["bbox"], gt["points"])
        n_distractors = len(refer.distractor_ann_ids(extra["ann_id"]))
        assert len(gt["distractor_masks"]) == n_distractors
        n_distractor_rows += n_distractors > 0
        prompt = row["prompt"]
        assert [m["role"] for m in prompt] == ["system", "user"]
        assert sum(m["content"].count("<image>") for m in prompt) == 1 and prompt[1]["content"].startswith(
            "<image>"
        )
        assert extra["query"].lower().strip(".") in prompt[1]["content"]
    assert n_distractor_rows > 0


def test_size_seed_and_template_are_parameters(refer_layout, tmp_path):
    a = prepare_refer_training(*refer_layout, tmp_path / "a.parquet", size=5, seed=3, progress=False)
    b = prepare_refer_training(*refer_layout, tmp_path / "b.parquet", size=5, seed=3, progress=False)
    c = prepare_refer_training(
        *refer_layout,
        tmp_path / "c.parquet",
        size=5,
        seed=4,
        progress=False,
        options=TrainingOptions(template="negative_point", resize=(448, 336)),
    )
    assert a.rows == 5 and a.path.read_bytes() == b.path.read_bytes()
    ids = lambda p: {e["id"] for e in pq.read_table(p, columns=["extra_info"]).column(0).to_pylist()}  # noqa: E731
    assert ids(a.path) != ids(c.path)
    row = pq.read_table(c.path).to_pylist()[0]
    assert "points_neg" in row["prompt"][1]["content"]
    gt = loads_ground_truth(row["reward_model"]["ground_truth"])
    assert (gt["height"], gt["width"]) == (448, 336) == decode_rle(gt["mask"]).shape
    per_ref = prepare_refer_training(*refer_layout, tmp_path / "r.parquet", per="ref", progress=False)
    assert per_ref.rows == len(ReferDataset(refer_layout[0]).expressions("train", per="ref"))
    assert parse_size("2k") == 2000 and parse_size("9k") == 9000 and parse_size("full") is None
    assert model_size((480, 640), "smart") == (476, 644) and model_size((480, 640), None) == (480, 640)


def test_interrupted_training_conversion_resumes_to_the_identical_file(
    refer_layout, train_parquet, tmp_path, monkeypatch
):
    real = dio._write_part
    calls = []

    def crash_on_third(table, path):
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("simulated interruption")
        real(table, path)

    out = tmp_path / "resumed.parquet"
    monkeypatch.setattr(dio, "_write_part", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated"):
        prepare_refer_training(*refer_layout, out, progress=False, chunk_size=2)
    monkeypatch.setattr(dio, "_write_part", real)
    res = prepare_refer_training(*refer_layout, out, progress=False, chunk_size=2)
    assert res.resumed_chunks == 2
    assert out.read_bytes() == train_parquet.path.read_bytes()


def test_verl_rlhf_dataset_loads_the_training_parquet(train_parquet, tiny_qwen_dir, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    tokenizer = hf_tokenizer(str(tiny_qwen_dir))
    processor = hf_processor(str(tiny_qwen_dir))
    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "image_key": "images",
            "max_prompt_length": 1300,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "truncation": "error",
            "cache_dir": str(tmp_path / "verl_cache"),
        }
    )
    ds = RLHFDataset(str(train_parquet.path), tokenizer, config, processor)
    assert len(ds) == train_parquet.rows  # nothing filtered: 840x840 -> 900 image tokens + text < 1300
    item = ds[0]
    content = item["raw_prompt"][1]["content"]
    images = [part["image"] for part in content if part["type"] == "image"]
    assert len(images) == 1 and images[0].size == (840, 840)
    texts = [part["text"] for part in content if part["type"] == "text"]
    assert item["extra_info"]["query"].lower().strip(".") in texts[0]
    assert json.loads(item["reward_model"]["ground_truth"])["height"] == 840
    batch = collate_fn([ds[0], ds[1]])
    assert len(batch["raw_prompt"]) == 2
