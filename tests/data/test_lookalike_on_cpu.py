"""Look-alike scenes -> training and evaluation rows: every row says whether its scene is easy or hard."""

from segzero_plus.data.lookalike import scene_data_source, scenes_to_eval_rows, scenes_to_training_rows
from segzero_plus.data.scenes import generate_scenes
from segzero_plus.data.training import TrainingOptions


def test_rows_are_labelled_by_difficulty():
    scenes = generate_scenes(4, seed=2, sizes=((200, 300),), difficulty="mixed")
    train = scenes_to_training_rows(scenes, TrainingOptions(data_source="lookalike", resize=None))
    evals = scenes_to_eval_rows(scenes, split="val")
    expected = ["lookalike", "lookalike_hard", "lookalike", "lookalike_hard"]
    assert [r["data_source"] for r in train] == expected
    assert [r["data_source"] for r in evals] == expected
    assert [r["extra_info"]["image_id"] for r in train] == [s.scene_id for s in scenes]


def test_scene_data_source_keeps_easy_rows_as_before():
    assert scene_data_source("lookalike", "easy") == "lookalike"
    assert scene_data_source("toy", "hard") == "toy_hard"
