"""Seg-Zero's published training layout (refCOCOg_*_840) -> our training parquet, with masks joined
from RefCOCOg annotations when available and honestly absent otherwise."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segzero_plus.data.cli import report_conversion
from segzero_plus.data.images import resize_mask
from segzero_plus.data.refcoco import ReferDataset
from segzero_plus.data.schema import SchemaError, loads_ground_truth, to_ground_truth
from segzero_plus.data.segzero_layout import import_segzero_training
from segzero_plus.data.validation import validate_file
from segzero_plus.masks import decode_rle
from segzero_plus.testing.miniature import write_refer_layout, write_segzero_training_layout


@pytest.fixture(scope="module")
def layout(scenes, tmp_path_factory):
    root = tmp_path_factory.mktemp("segzero")
    write_refer_layout(scenes, root / "refer", root / "images", splits=("train",))
    src = write_segzero_training_layout(scenes, root / "refCOCOg_2k_840.parquet")
    return root, src


def test_rows_join_masks_from_refcocog(layout, scenes, tmp_path):
    root, src = layout
    res = import_segzero_training(
        [src], tmp_path / "joined.parquet", refer_root=root / "refer", progress=False
    )
    assert (
        res.rows == len(scenes)
        and res.notes["mask_joined"] == len(scenes)
        and not res.notes["mask_unavailable"]
    )
    refer = ReferDataset(root / "refer")
    source_rows = pq.read_table(src).to_pylist()
    for raw, row in zip(source_rows, pq.read_table(res.path).to_pylist(), strict=True):
        gt = loads_ground_truth(row["reward_model"]["ground_truth"])
        extra = row["extra_info"]
        assert extra["id"] == raw["id"] and gt["solution"] == raw["solution"]  # Seg-Zero's answer kept as is
        assert row["images"][0]["bytes"] == raw["image"]["bytes"]
        assert (gt["orig_height"], gt["orig_width"]) == (raw["img_height"], raw["img_width"])
        expected = resize_mask(refer.ann_mask(extra["ann_id"]), (840, 840))
        assert (decode_rle(gt["mask"]) == expected).all()
        assert (
            refer.anns[extra["ann_id"]]["category_id"]
            == refer.anns[refer.refs[extra["ref_id"] - 1]["ann_id"]]["category_id"]
        )
        assert len(gt["distractor_masks"]) == len(refer.distractor_ann_ids(extra["ann_id"]))
    assert validate_file(res.path).ok


def test_rows_without_annotations_keep_no_mask_and_say_so(layout, scenes, tmp_path, capsys):
    _, src = layout
    res = import_segzero_training([src], tmp_path / "nomask.parquet", progress=False)
    assert res.notes["mask_unavailable"] == len(scenes)
    row = pq.read_table(res.path).to_pylist()[0]
    gt = loads_ground_truth(row["reward_model"]["ground_truth"])
    assert gt["mask"] is None and gt["distractor_masks"] == [] and row["extra_info"]["ann_id"] is None
    with pytest.raises(SchemaError):
        to_ground_truth(row["reward_model"]["ground_truth"])
    report = validate_file(res.path)
    assert report.ok and report.notes["mask_unavailable"] == len(scenes)
    assert report_conversion(res, progress=False) == 0
    assert "unavailable reward terms: mask IoU" in capsys.readouterr().out


def test_a_row_that_does_not_match_any_ref_is_not_joined(layout, tmp_path):
    root, src = layout
    table = pq.read_table(src)
    problems = table.column("problem").to_pylist()
    problems[1] = "a sentence that no ref has"
    changed = table.set_column(table.schema.get_field_index("problem"), "problem", pa.array(problems))
    pq.write_table(changed, tmp_path / "changed.parquet")
    res = import_segzero_training(
        [tmp_path / "changed.parquet"],
        tmp_path / "o.parquet",
        refer_root=root / "refer",
        size=5,
        seed=4,
        progress=False,
    )
    rows = pq.read_table(res.path).to_pylist()
    assert len(rows) == 5 and res.notes["mask_unavailable"] == 1
    by_id = {
        r["extra_info"]["id"]: loads_ground_truth(r["reward_model"]["ground_truth"])["mask"] for r in rows
    }
    assert "refcocog_1" in by_id
    for rid, mask in by_id.items():
        assert (mask is None) == (rid == "refcocog_1")
