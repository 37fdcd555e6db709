"""Evaluation sets: ReasonSeg (LISA layout + rasterisation), RefCOCO/+/g per expression and per instance,
Seg-Zero's evaluation layout; all in one schema with original-frame masks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from segzero_plus.data.evaluation_sets import prepare_reasonseg_eval, prepare_refer_eval
from segzero_plus.data.reasonseg import rasterise_lisa, read_lisa_json
from segzero_plus.data.refcoco import ReferDataset
from segzero_plus.data.schema import EVAL_SCHEMA
from segzero_plus.data.segzero_layout import import_segzero_eval
from segzero_plus.errors import UserError
from segzero_plus.masks import decode_rle, polygons_to_mask
from segzero_plus.metrics import intersection_union
from segzero_plus.testing.miniature import (
    mask_polygons,
    write_lisa_layout,
    write_refer_layout,
    write_segzero_eval_layout,
)


def _square(x0, y0, x1, y1, label):
    return {"label": label, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}


def test_lisa_rasterisation_paints_smaller_shapes_last_and_skips_flag():
    shapes = [
        _square(12, 12, 16, 16, "target"),  # small target inside the ignore square: drawn last, wins
        _square(4, 4, 30, 30, "ignore this"),  # large ignore region
        _square(0, 0, 39, 39, "FLAG"),  # skipped whatever its case
        _square(32, 2, 38, 8, "target"),
    ]
    target, ignore = rasterise_lisa(shapes, 40, 40)
    assert target[14, 14] and not ignore[14, 14]
    assert ignore[5, 5] and ignore[30, 30] and not target[5, 5]
    assert target[2, 32] and target[8, 38]  # outline pixels included (closed polylines + fill)
    assert not target[0, 0] and not ignore[0, 0]  # the flag shape painted nothing
    assert not (target & ignore).any()
    # file order does not matter: the same map with the shapes reversed
    t2, i2 = rasterise_lisa(shapes[::-1], 40, 40)
    assert (t2 == target).all() and (i2 == ignore).all()


def test_lisa_rasterisation_truncates_float_coordinates_like_an_int32_cast():
    target, _ = rasterise_lisa(
        [{"label": "t", "points": [[2.9, 2.9], [6.9, 2.9], [6.9, 6.9], [2.9, 6.9]]}], 10, 10
    )
    ys, xs = np.nonzero(target)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (2, 6, 2, 6)


def test_lisa_json_falls_back_to_cp1252(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(json.dumps({"text": ["caf\u00e9"], "shapes": []}, ensure_ascii=False).encode("cp1252"))
    assert read_lisa_json(p)["text"] == ["caf\u00e9"]


@pytest.fixture(scope="module")
def lisa_root(scenes, tmp_path_factory):
    root = tmp_path_factory.mktemp("reasonseg")
    write_lisa_layout(scenes[:6], root, "val")
    return root


def test_reasonseg_eval_rows_separate_target_and_ignore(lisa_root, scenes, tmp_path):
    res = prepare_reasonseg_eval(lisa_root, "val", tmp_path / "rs.parquet", progress=False)
    table = pq.read_table(res.path)
    assert table.schema.equals(EVAL_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [f"reasonseg_val_img_{i:04d}" for i in range(6)]
    for i, row in enumerate(rows):
        sc = scenes[i]
        target, ignore = decode_rle(row["mask"]), decode_rle(row["ignore"])
        assert target.shape == ignore.shape == (sc.height, sc.width) == (row["height"], row["width"])
        assert ignore.any() and not (target & ignore).any()
        # target + ignore = the target polygons (holes filled, as polygons have none), rasterised by cv2;
        # pycocotools' rasteriser of the same polygons agrees up to edge pixels
        drawn = target | ignore
        coco = polygons_to_mask(mask_polygons(sc.target_mask), sc.height, sc.width)
        assert (drawn & coco).sum() / (drawn | coco).sum() > 0.9
        assert not target[0:5].any()  # the "Flag" strip along the top was skipped
        # ignore pixels are excluded from I and U: predicting target+ignore still scores IoU 1
        inter, union = intersection_union(drawn, target, ignore)
        assert inter == union == target.sum()
        assert row["is_sentence"] == (i % 2 == 1) and row["image_id"] == f"img_{i:04d}"
        assert cv2.imdecode(np.frombuffer(row["image"], np.uint8), cv2.IMREAD_COLOR).shape[:2] == target.shape
    assert rows[0]["query"].endswith("caf\u00e9 style")  # cp1252 json decoded
    every = prepare_reasonseg_eval(lisa_root, "val", tmp_path / "all.parquet", queries="all", progress=False)
    ids = [r["id"] for r in pq.read_table(every.path, columns=["id"]).to_pylist()]
    assert every.rows == 8 and "reasonseg_val_img_0000_1" in ids and "reasonseg_val_img_0003_1" in ids


@pytest.fixture(scope="module")
def refer_eval_layout(scenes, tmp_path_factory):
    root = tmp_path_factory.mktemp("refcoco")
    write_refer_layout(
        scenes,
        root / "refer",
        root / "images",
        dataset="refcoco",
        split_by="unc",
        splits=("testA", "testB", "val"),
    )
    return root / "refer", root / "images"


def test_refcoco_per_expression_and_per_instance(refer_eval_layout, tmp_path):
    refer = ReferDataset(refer_eval_layout[0], "refcoco")
    per_expr = prepare_refer_eval(
        *refer_eval_layout, tmp_path / "e.parquet", dataset="refcoco", split="testA", progress=False
    )
    per_inst = prepare_refer_eval(
        *refer_eval_layout,
        tmp_path / "i.parquet",
        dataset="refcoco",
        split="testA",
        variant="per_instance",
        progress=False,
    )
    n_refs = sum(r["split"] == "testA" for r in refer.refs)
    n_sents = sum(len(r["sentences"]) for r in refer.refs if r["split"] == "testA")
    assert (per_inst.rows, per_expr.rows) == (n_refs, n_sents) and n_sents > n_refs
    rows = pq.read_table(per_expr.path).to_pylist()
    assert {r["data_source"] for r in rows} == {"refcoco_unc_per_expression"} and {
        r["split"] for r in rows
    } == {"testA"}
    assert {r["data_source"] for r in pq.read_table(per_inst.path).to_pylist()} == {
        "refcoco_unc_per_instance"
    }
    images_dir = refer_eval_layout[1]
    for row in rows:
        assert row["ignore"] is None
        assert (decode_rle(row["mask"]) == refer.ann_mask(row["ann_id"])).all()
        file = refer.image_file(int(row["image_id"]), images_dir)
        assert row["image"] == file.read_bytes()  # original JPEG kept byte for byte
    with pytest.raises(UserError, match="no refs"):
        prepare_refer_eval(
            *refer_eval_layout, tmp_path / "x.parquet", dataset="refcoco", split="train", progress=False
        )


def test_segzero_eval_layout_is_imported(scenes, tmp_path):
    src = write_segzero_eval_layout(scenes[:4], tmp_path / "refcocog_test.parquet")
    res = import_segzero_eval(
        [src], tmp_path / "out.parquet", data_source="refcocog_test", split="test", progress=False
    )
    rows = pq.read_table(res.path).to_pylist()
    assert [r["id"] for r in rows] == [f"refcocog_test_test_{i:06d}" for i in range(4)]
    for sc, row in zip(scenes[:4], rows, strict=True):
        assert (decode_rle(row["mask"]) == sc.target_mask).all()
        assert row["query"] == sc.expression and row["image_id"] == sc.scene_id and row["ann_id"] >= 1000
        assert (row["height"], row["width"]) == (sc.height, sc.width)


def test_polygons_traced_by_the_miniature_writer_cover_the_mask(scenes):
    sc = next(s for s in scenes if s.shape != "ring")
    drawn = polygons_to_mask(mask_polygons(sc.target_mask), sc.height, sc.width)
    assert (drawn & sc.target_mask).sum() / (drawn | sc.target_mask).sum() > 0.9
