"""The resumable confused-region mining pass over a training parquet (tiny random SAM2): the parquet
contract (ground-truth JSON + confused_regions column), resume, summary, the CLI, bad rows.

With random weights the oracle/sampled maps are arbitrary; the tests check what holds by construction.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from segzero_plus.data import mining_shards
from segzero_plus.data.mining import mine_parquet
from segzero_plus.data.scenes import encode_png
from segzero_plus.data.schema import TRAINING_SCHEMA, loads_ground_truth
from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
from segzero_plus.masks import decode_rle, encode_rle
from segzero_plus.rewards import RewardConfig, confused_components


def _training_parquet(scenes, path, rows_per_image=2):
    from segzero_plus.data.io import write_rows
    from segzero_plus.data.training import training_row

    rows = []
    for i, scene in enumerate(scenes):
        bbox = mask_bbox(scene.target_mask)
        points = inscribed_circle_centres(scene.target_mask, n=2)
        png = encode_png(scene.image)
        for k in range(rows_per_image):
            rows.append(
                training_row(
                    row_id=f"{scene.scene_id}-{k}",
                    index=len(rows),
                    query=scene.expression,
                    image_png=png,
                    model_hw=scene.image.shape[:2],
                    orig_hw=scene.image.shape[:2],
                    bbox=bbox,
                    points=points,
                    mask_rle=encode_rle(scene.target_mask),
                    distractor_rles=[encode_rle(m) for m in scene.distractor_masks],
                    image_id=f"img{i}",
                    data_source="scenes",
                )
            )
    write_rows(rows, TRAINING_SCHEMA, path)
    return rows


def test_mine_parquet_contract_resume_and_summary(tiny_sam_checkpoint, scenes, tmp_path):
    config_name, ckpt = tiny_sam_checkpoint
    chosen = scenes[:4]
    src = tmp_path / "train.parquet"
    rows = _training_parquet(chosen, src)
    out = tmp_path / "mined.parquet"
    kwargs = dict(config_name=config_name, checkpoint=ckpt, device="cpu", shard_rows=3, progress=False)
    summary = mine_parquet(src, out, **kwargs)

    # shards never split an image's rows; one encode per unique image
    assert summary["images_encoded_now"] == len(chosen)
    assert summary["rows"] == summary["rows_with_regions"] == summary["rows_mined_now"] == len(rows)
    n_with_distractors = sum(1 for s in chosen if s.distractor_masks)
    assert summary["coverage_any_pixel"] >= n_with_distractors / len(chosen)
    assert (
        summary["coverage"] <= summary["coverage_any_pixel"] and summary["rows_without_component_stats"] == 0
    )
    assert summary["coverage"] >= max(summary["coverage_by_source"].values())  # union has every component
    near = RewardConfig()
    payable = [  # does a distractor give the reward a component to pay a negative for?
        confused_components(
            s.target_mask,
            np.logical_or.reduce([np.zeros_like(s.target_mask), *s.distractor_masks]),
            near.confused_near_px,
            near.min_confused_area_px,
            near.confused_clearance_px,
        ).count
        > 0
        for s in chosen
    ]
    assert summary["coverage_by_source"]["distractors"] == pytest.approx(sum(payable) / len(chosen))
    assert (
        json.loads((tmp_path / "mined.parquet.summary.json").read_text())["coverage"] == summary["coverage"]
    )

    table = pq.read_table(out)
    assert table.schema.equals(TRAINING_SCHEMA)
    got = table.to_pylist()
    for row, before, scene in zip(got, rows, [s for s in chosen for _ in range(2)], strict=True):
        gt = loads_ground_truth(row["reward_model"]["ground_truth"])
        confused = decode_rle(gt["confused_mask"])
        regions = json.loads(row["confused_regions"])
        assert np.array_equal(confused, decode_rle(regions["union"]))
        assert not (confused & scene.target_mask).any()
        for m in scene.distractor_masks:
            assert (confused & m).sum() == m.sum()
        assert row["images"] == before["images"] and row["extra_info"] == before["extra_info"]
        gt_before = loads_ground_truth(before["reward_model"]["ground_truth"])
        assert {k: v for k, v in gt.items() if k != "confused_mask"} == {
            k: v for k, v in gt_before.items() if k != "confused_mask"
        }

    # resume: nothing to redo, identical output
    again = mine_parquet(src, out, **kwargs)
    assert again["resumed_shards"] == again["shards"] and again["images_encoded_now"] == 0
    assert pq.read_table(out).equals(table)

    # an interrupted run (one shard lost) redoes only that shard, with the same result
    lost = sorted((tmp_path / "mined.parquet.mining").glob("shard_*.json"))[1]
    start, stop = (int(v) for v in lost.stem.split("_")[2:4])
    lost.unlink()
    partial = mine_parquet(src, out, **kwargs)
    assert partial["resumed_shards"] == partial["shards"] - 1
    assert partial["images_encoded_now"] == (stop - start) // 2  # two rows per image
    assert pq.read_table(out).equals(table)

    # rows that already carry confused_regions are skipped (an earlier output as input)
    chained = mine_parquet(out, tmp_path / "chained.parquet", **kwargs)
    assert chained["rows_mined_now"] == 0 and chained["images_encoded_now"] == 0
    assert pq.read_table(tmp_path / "chained.parquet").equals(table)

    # another seed draws other probe points (the oracle and distractor sources are seed-free)
    other = mine_parquet(src, tmp_path / "seed1.parquet", seed=1, **kwargs)
    assert other["coverage_by_source"]["distractors"] == summary["coverage_by_source"]["distractors"]
    stats0 = [json.loads(r)["stats"]["oracle_fp_area"] for r in table.column("confused_regions").to_pylist()]
    stats1 = [
        json.loads(r)["stats"]["oracle_fp_area"]
        for r in pq.read_table(tmp_path / "seed1.parquet").column("confused_regions").to_pylist()
    ]
    assert stats0 == stats1


def test_cli_mine_confused(tiny_sam_checkpoint, scenes, tmp_path, capsys):
    from segzero_plus.cli import main

    config_name, ckpt = tiny_sam_checkpoint
    src = tmp_path / "one.parquet"
    _training_parquet(scenes[:1], src, rows_per_image=1)
    out = tmp_path / "one_mined.parquet"
    rc = main(_mine_cli(src, out, (config_name, ckpt), "--sources", "oracle_fp,distractors"))
    assert rc == 0
    assert '"coverage"' in capsys.readouterr().out
    regions = json.loads(pq.read_table(out).column("confused_regions")[0].as_py())
    assert regions["stats"]["n_probe_points"] == 0 and not decode_rle(regions["sampled"]).any()
    assert main(["mine-confused", "--input", str(src)]) == 2  # no checkpoint and no --random-weights
    assert "--sam-checkpoint is required" in capsys.readouterr().err


def _mine_cli(src, out, sam, *extra) -> list[str]:
    return [
        "mine-confused",
        "--input",
        str(src),
        "--output",
        str(out),
        "--sam-config",
        sam[0],
        "--sam-checkpoint",
        str(sam[1]),
        "--device",
        "cpu",
        "--shard-rows",
        "1",
        "--no-progress",
        *extra,
    ]


def _by_id(path) -> dict[str, tuple[str, str]]:
    return {
        r["extra_info"]["id"]: (r["reward_model"]["ground_truth"], r["confused_regions"])
        for r in pq.read_table(path).to_pylist()
    }


def test_a_reordered_input_is_not_resumed_by_position(
    tiny_sam_checkpoint, scenes, tmp_path, capsys, monkeypatch
):
    from segzero_plus.cli import main

    src, out = tmp_path / "train.parquet", tmp_path / "mined.parquet"
    _training_parquet(scenes[:4], src, rows_per_image=1)
    real = mining_shards.ShardMiner.mine_shard
    calls = []

    def killed_after_two(self, *args):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt("simulated kill")
        return real(self, *args)

    with monkeypatch.context() as m:
        m.setattr(mining_shards.ShardMiner, "mine_shard", killed_after_two)
        with pytest.raises(KeyboardInterrupt):
            main(_mine_cli(src, out, tiny_sam_checkpoint))
    table = pq.read_table(src)
    pq.write_table(table.take([3, 2, 1, 0]), src)  # same rows, same size, another order
    assert main(_mine_cli(src, out, tiny_sam_checkpoint)) == 2
    err = capsys.readouterr().err
    assert "mined.parquet.mining holds partial work of another run (input parquet changed)" in err
    assert "--overwrite" in err and not out.exists()
    assert main(_mine_cli(src, out, tiny_sam_checkpoint, "--overwrite")) == 0
    clean = tmp_path / "clean.parquet"
    assert main(_mine_cli(src, clean, tiny_sam_checkpoint)) == 0
    assert pq.read_table(out).equals(pq.read_table(clean))
    # every row carries its own ground truth: nothing of another row was mixed in
    for rid, (gt_json, _) in _by_id(out).items():
        before = next(r for r in table.to_pylist() if r["extra_info"]["id"] == rid)
        gt, gt0 = loads_ground_truth(gt_json), loads_ground_truth(before["reward_model"]["ground_truth"])
        assert gt["bbox"] == gt0["bbox"] and gt["mask"] == gt0["mask"]
    # an unrelated existing output is kept unless --overwrite
    other = tmp_path / "other.parquet"
    other.write_bytes(b"not ours")
    assert main(_mine_cli(src, other, tiny_sam_checkpoint)) == 2
    assert (
        "no mining run of these inputs wrote it" in capsys.readouterr().err
        and other.read_bytes() == b"not ours"
    )


def test_bad_rows_are_counted_by_id_and_never_stop_the_job(tiny_sam_checkpoint, scenes, tmp_path, capsys):
    from segzero_plus.cli import main
    from segzero_plus.data.io import write_rows
    from segzero_plus.data.schema import dumps_ground_truth

    src, out = tmp_path / "train.parquet", tmp_path / "mined.parquet"
    rows = _training_parquet(scenes[:5], src, rows_per_image=1)

    def set_gt(row, **changes):
        gt = loads_ground_truth(row["reward_model"]["ground_truth"])
        gt.update(changes)
        row["reward_model"] = {**row["reward_model"], "ground_truth": dumps_ground_truth(gt)}

    rows[1]["images"] = [{"bytes": b"\x89PNG garbage", "path": None}]
    set_gt(rows[2], bbox=[float("nan"), 1, 5, 5])
    set_gt(rows[3], mask=encode_rle(np.ones((5, 5), bool)))
    set_gt(rows[4], mask=None)
    write_rows(rows, TRAINING_SCHEMA, src)
    assert main(_mine_cli(src, out, tiny_sam_checkpoint)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bad_rows"] == 3 and summary["rows_without_mask"] == 1
    reasons = dict(summary["bad_row_ids"])
    ids = [r["extra_info"]["id"] for r in rows]
    assert sorted(reasons) == sorted(ids[1:4])
    assert "cannot decode image" in reasons[ids[1]]
    assert "non-finite" in reasons[ids[2]]
    assert "frames differ" in reasons[ids[3]]
    mined = _by_id(out)
    assert mined[ids[0]][1] is not None  # the good row is mined
    for rid, row in zip(ids[1:], rows[1:], strict=True):  # the others are left exactly as they were
        assert mined[rid] == (row["reward_model"]["ground_truth"], None)
