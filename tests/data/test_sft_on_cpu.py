"""prepare-sft: synthesised answers parse, score at the reward's maximum, and put negatives where the
geometry reward pays for them; bad rows are counted and named."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from segzero_plus import cli
from segzero_plus.data import io as dio
from segzero_plus.data.lookalike import scenes_to_training_rows
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.data.schema import TRAINING_SCHEMA, loads_ground_truth, to_ground_truth, with_confused_mask
from segzero_plus.data.sft import SFT_SCHEMA, negative_points, sft_rows, synthesise_answer
from segzero_plus.data.training import TrainingOptions
from segzero_plus.masks import encode_rle
from segzero_plus.parsing import parse_answer
from segzero_plus.rewards.config import RewardConfig
from segzero_plus.rewards.ground_truth import GroundTruth
from segzero_plus.rewards.total import total_reward

CONFIG = RewardConfig()
MAX_SCORE = sum(CONFIG.weights[t] for t in ("think_format", "seg_format", "bbox_iou", "bbox_l1", "point"))
MAX_SCORE += CONFIG.weights["negative_point"]


def _mined_rows(n: int = 8) -> list[dict]:
    """Training rows (168x168 model frame) whose confused mask is the look-alikes' union, as if mined."""
    scenes = generate_scenes(n, seed=3, difficulty="mixed")
    options = TrainingOptions(template="negative_point", data_source="lookalike", resize=(168, 168))
    rows = scenes_to_training_rows(scenes, options)
    for row in rows:
        gt = to_ground_truth(row["reward_model"]["ground_truth"])
        union = gt.distractor_union if gt.distractor_union is not None else np.zeros_like(gt.mask)
        text = with_confused_mask(row["reward_model"]["ground_truth"], encode_rle(union))
        row["reward_model"] = {"style": "rule", "ground_truth": text}
    return rows


def test_answers_parse_strictly_and_score_the_maximum():
    out = sft_rows(_mined_rows())
    assert len(out.rows) == 8 and not out.skipped
    assert out.notes["answers_with_negatives"] >= 4  # hard scenes always have a look-alike next to the target
    for row in out.rows:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][1]["content"].startswith("<image>")
        response = row["messages"][-1]["content"]
        answer = parse_answer(response)
        assert answer.strict and answer.schema == "negative_point", answer.errors
        gt = to_ground_truth(row["reward_model"]["ground_truth"])
        scores = total_reward(response, gt, CONFIG)
        assert scores["score"] >= MAX_SCORE - 1e-6, (response, scores)
        assert row["extra_info"]["query"] in response  # the think names the target


def test_negatives_sit_on_distinct_counted_components_outside_the_target():
    for row in _mined_rows():
        gt = to_ground_truth(row["reward_model"]["ground_truth"])
        comps = gt.confused_components(
            "confused", CONFIG.confused_near_px, CONFIG.min_confused_area_px, CONFIG.confused_clearance_px
        )
        negs = negative_points(gt, CONFIG)
        labels = [comps.label_at(x, y) for x, y in negs]
        assert len(negs) == min(comps.count, CONFIG.max_negative_points)
        assert all(labels) and len(set(labels)) == len(labels)
        assert not any(gt.mask[y, x] for x, y in negs)


def _square(hw: tuple[int, int], x0: int, y0: int, side: int) -> np.ndarray:
    mask = np.zeros(hw, dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def test_no_negatives_when_nothing_confusable_is_near():
    hw = (300, 300)
    target = _square(hw, 20, 20, 20)
    far = _square(hw, 240, 240, 30)  # > confused_near_px from the target's box
    gt = GroundTruth.from_mask(target, confused_mask=far)
    response, n_neg = synthesise_answer(gt, "the red disc")
    assert n_neg == 0 and parse_answer(response).points_neg == []
    assert "no negative points" in response
    assert total_reward(response, gt, CONFIG)["negative_point"] == 1.0


def test_at_most_three_negatives_nearest_first():
    hw = (300, 300)
    target = _square(hw, 130, 130, 30)
    blobs = [(95, 135), (175, 135), (135, 95), (135, 175), (200, 200)]  # 4 touching-ish, 1 further away
    confused = np.zeros(hw, dtype=bool)
    for x, y in blobs:
        confused |= _square(hw, x, y, 20)
    gt = GroundTruth.from_mask(target, confused_mask=confused)
    negs = negative_points(gt, CONFIG)
    assert len(negs) == CONFIG.max_negative_points
    assert all(not (200 <= x < 220 and 200 <= y < 220) for x, y in negs)  # the furthest blob is left out


def test_original_template_answers_with_seg_zero_keys():
    gt = to_ground_truth(_mined_rows(2)[1]["reward_model"]["ground_truth"])
    response, n_neg = synthesise_answer(gt, "the red disc", template="original")
    answer = parse_answer(response)
    assert n_neg == 0 and answer.strict and answer.schema == "original"
    assert total_reward(response, gt, RewardConfig(template="original"))["seg_format"] == 1.0


def test_cli_writes_sft_rows_and_names_bad_and_unmined_rows(tmp_path, capsys):
    rows = scenes_to_training_rows(
        generate_scenes(4, seed=5, difficulty="mixed"),
        TrainingOptions(template="negative_point", data_source="lookalike", resize=(168, 168)),
    )
    bad_id = rows[2]["extra_info"]["id"]
    rows[2]["reward_model"] = {"style": "rule", "ground_truth": "{}"}
    train = dio.write_rows(rows, TRAINING_SCHEMA, tmp_path / "train.parquet")

    out = tmp_path / "sft.parquet"
    rc = cli.main(["prepare-sft", "--input", str(train), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 1 and "run mine-confused first" in printed  # the default wants mined regions

    rc = cli.main(
        ["prepare-sft", "--input", str(train), "--out", str(out), "--negative-regions", "distractors",
         "--no-progress", "--overwrite"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0
    summary = json.loads(next(line for line in printed.splitlines() if line.startswith("{")))
    assert summary["rows"] == 3 and summary["skipped_ids"] == [bad_id]
    table = pq.read_table(out)
    assert table.schema.equals(SFT_SCHEMA)
    for row in table.to_pylist():
        assert loads_ground_truth(row["reward_model"]["ground_truth"])["bbox"]
        assert parse_answer(row["messages"][-1]["content"]).strict


def test_cli_refuses_unknown_template_and_missing_input(tmp_path, capsys):
    out = str(tmp_path / "o.parquet")
    assert cli.main(["prepare-sft", "--input", "x.parquet", "--out", out, "--template", "no"]) == 2
    assert "unknown prompt template" in capsys.readouterr().err
    assert cli.main(["prepare-sft", "--input", str(tmp_path / "none.parquet"), "--out", out]) == 2
    assert "none.parquet" in capsys.readouterr().err
