"""The learn run's own measurements: the reward change over steps and the share of negatives on a
look-alike (the GRPO and evaluation parts are exercised by the TRL engine's and the evaluation's tests)."""

from __future__ import annotations

import math

from segzero_plus.data.lookalike import scene_row_id
from segzero_plus.data.scenes import generate_scene
from segzero_plus.train.trl_learn import lookalike_share, reward_change


def test_reward_change_compares_the_first_and_last_windows():
    steps = [{"reward": float(i)} for i in range(30)]
    change = reward_change(steps, window=10)
    assert change["reward_first"] == sum(range(10)) / 10 and change["reward_last"] == sum(range(20, 30)) / 10
    short = reward_change(steps[:4], window=10)  # a short run: halves
    assert short["window"] == 2 and short["reward_first"] < short["reward_last"]


def test_lookalike_share_counts_negatives_on_a_lookalike_mask():
    scene = generate_scene(3, size=(112, 112), n_distractors=1)
    ys, xs = scene.distractor_masks[0].nonzero()
    on = [float(xs[0]), float(ys[0])]
    ty, tx = scene.target_mask.nonzero()
    off = [float(tx[0]), float(ty[0])]  # on the target: not a look-alike
    records = [
        {"id": scene_row_id(scene.scene_id, "val"), "prompts": {"original": {"points_neg": [on, off]}}},
        {"id": scene_row_id(scene.scene_id, "val"), "prompts": {"original": {"points_neg": []}}},
    ]
    share, n = lookalike_share(records, [scene])
    assert n == 2 and share == 0.5
    assert math.isnan(lookalike_share(records[1:], [scene])[0])


def test_ablation_report_shows_the_start_under_each_prompt_template(tmp_path):
    from segzero_plus.train.trl_learn import _write_ablation_report

    keys = ("gIoU", "gIoU_without_negatives", "negatives_per_answer", "lookalike_share")
    start_original = dict.fromkeys(keys, 0.0)
    start_negative = {
        "gIoU": 0.25,
        "gIoU_without_negatives": 0.2,
        "negatives_per_answer": 1.5,
        "lookalike_share": 0.1,
    }
    table = [
        {
            "experiment": name,
            "seed": 0,
            "before": before,
            "after": before,
            "reward_first": 0.0,
            "reward_last": 0.0,
        }
        for name, before in (("baseline", start_original), ("segzero_plus_geometry", start_negative))
    ]
    _write_ablation_report(tmp_path, table, steps=3)
    lines = (tmp_path / "report.md").read_text().splitlines()
    starts = [line for line in lines if line.startswith("| (start")]
    assert len(starts) == 2
    assert "original prompt" in starts[0] and "| 0.000 |" in starts[0]
    assert "negative_point prompt" in starts[1] and "| 0.250 |" in starts[1]
