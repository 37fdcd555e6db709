"""Look-alike scene generator: determinism, masks equal to the drawing, unique referent, parquet round trip,
hard scenes (look-alikes touching or overlapping the target's box)."""

import hashlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from segzero_plus.data.scenes import (
    COLOURS,
    RELATIONS,
    generate_scene,
    generate_scenes,
    read_scenes_parquet,
    write_scenes_parquet,
)

EASY_SCENES_SHA256 = "0e2e416a32cf8260a4a9b14ac4c8e82627d137b8a92e73d2290b3ea543db37df"
"""Digest of easy scenes made before hard scenes existed (``_scenes_digest`` below): easy stays unchanged."""


def _scenes_digest(scenes) -> str:
    h = hashlib.sha256()
    for s in scenes:
        for part in (s.image, s.target_mask, *s.distractor_masks, s.anchor_mask):
            h.update(part.tobytes())
        h.update(s.expression.encode())
    return h.hexdigest()


def _centre(m):
    ys, xs = np.nonzero(m)
    return xs.mean(), ys.mean()


def _grown_box(m, pad=1):
    ys, xs = np.nonzero(m)
    box = np.zeros_like(m)
    box[max(ys.min() - pad, 0) : ys.max() + 1 + pad, max(xs.min() - pad, 0) : xs.max() + 1 + pad] = True
    return box


def test_same_seed_same_scene_bytes():
    a, b = generate_scene(11, size=(280, 420)), generate_scene(11, size=(280, 420))
    assert a.image.tobytes() == b.image.tobytes()
    assert a.expression == b.expression
    assert np.array_equal(a.target_mask, b.target_mask)
    c = generate_scene(12, size=(280, 420))
    assert a.image.tobytes() != c.image.tobytes()


@pytest.mark.parametrize("seed", range(8))
def test_masks_match_drawing_and_are_disjoint(seed):
    s = generate_scene(seed, size=(336, 336), n_distractors=3)
    assert s.image.shape == (336, 336, 3) and s.image.dtype == np.uint8
    masks = [s.anchor_mask, s.target_mask, *s.distractor_masks]
    assert len(s.distractor_masks) == 3
    total = np.sum([m.astype(int) for m in masks], axis=0)
    assert total.max() == 1, "objects overlap"
    colour = np.asarray(COLOURS[s.colour], dtype=float)
    for m in [s.target_mask, *s.distractor_masks]:
        assert m.sum() > 50
        # painted pixels carry the object's colour (+/- shade, texture and quantisation)
        assert np.abs(s.image[m].astype(float).mean(0) - colour).max() < 25
    # pixels just outside the target are background, not object colour
    ring = np.zeros_like(s.target_mask)
    ys, xs = np.nonzero(s.target_mask)
    ring[max(ys.min() - 3, 0), xs.min() : xs.max() + 1] = True
    ring &= ~np.any(masks, axis=0)
    if ring.any():
        assert np.abs(s.image[ring].astype(float).mean(0) - colour).max() > 15


@pytest.mark.parametrize("seed", range(10))
def test_expression_singles_out_the_target(seed):
    s = generate_scene(seed, size=(420, 280))
    words = s.expression.split()
    assert words[:3] == ["the", s.colour, s.shape]
    relation = next(r for r in RELATIONS if f" {r} " in s.expression)
    dx, dy = RELATIONS[relation]

    def centre(m):
        ys, xs = np.nonzero(m)
        return xs.mean(), ys.mean()

    ax, ay = centre(s.anchor_mask)
    tx, ty = centre(s.target_mask)
    assert (tx - ax) * dx + (ty - ay) * dy > 0  # target lies on the named side of the anchor
    d_target = np.hypot(tx - ax, ty - ay)
    for m in s.distractor_masks:
        x, y = centre(m)
        assert np.hypot(x - ax, y - ay) > 1.3 * d_target


def test_parquet_round_trip(tmp_path):
    scenes = generate_scenes(6, seed=3)
    path = write_scenes_parquet(scenes, tmp_path / "s.parquet")
    back = read_scenes_parquet(path)
    assert [s.scene_id for s in back] == [s.scene_id for s in scenes]
    for a, b in zip(scenes, back, strict=True):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.target_mask, b.target_mask)
        assert len(a.distractor_masks) == len(b.distractor_masks)
        for m1, m2 in zip(a.distractor_masks, b.distractor_masks, strict=True):
            assert np.array_equal(m1, m2)


def test_rejects_bad_distractor_count():
    with pytest.raises(ValueError, match="n_distractors"):
        generate_scene(0, n_distractors=5)


def test_make_scenes_cli(tmp_path, capsys):
    from segzero_plus.cli import main

    out = tmp_path / "scenes.parquet"
    assert main(["make-scenes", "--out", str(out), "-n", "4", "--seed", "2", "--size", "200", "300"]) == 0
    assert "wrote 4 scenes" in capsys.readouterr().out
    scenes = read_scenes_parquet(out)
    assert [s.image.shape for s in scenes] == [(200, 300, 3)] * 4
    assert scenes[0].expression == generate_scenes(1, seed=2, sizes=((200, 300),))[0].expression


def test_easy_scenes_unchanged_by_the_hard_option():
    easy = generate_scenes(9, seed=3) + generate_scenes(3, seed=0, sizes=((840, 840),), n_distractors=3)
    assert _scenes_digest(easy) == EASY_SCENES_SHA256
    assert all(s.difficulty == "easy" for s in easy)
    mixed = generate_scenes(9, seed=3, difficulty="mixed")
    for i, (a, b) in enumerate(zip(generate_scenes(9, seed=3), mixed, strict=True)):
        assert (b.difficulty == "hard") == (i % 2 == 1)
        if i % 2 == 0:
            assert a.scene_id == b.scene_id and np.array_equal(a.image, b.image)
        else:
            assert b.scene_id.startswith("hard_") and not np.array_equal(a.target_mask, b.target_mask)


def test_hard_scene_is_deterministic():
    a = generate_scene(5, size=(336, 336), difficulty="hard")
    b = generate_scene(5, size=(336, 336), difficulty="hard")
    assert a.image.tobytes() == b.image.tobytes() and a.expression == b.expression
    assert a.scene_id == "hard_5" and a.difficulty == "hard"


@pytest.mark.parametrize("size", [(336, 336), (280, 420), (840, 840)])
def test_hard_scenes_have_a_lookalike_at_the_target_box(size):
    scenes = generate_scenes(24, seed=4, sizes=(size,), difficulty="hard")
    occluded = 0
    for s in scenes:
        masks = [s.anchor_mask, s.target_mask, *s.distractor_masks]
        assert 1 <= len(s.distractor_masks) <= 3
        assert np.sum([m.astype(int) for m in masks], axis=0).max() == 1, "visible masks overlap"
        assert all(m.sum() > 50 for m in masks)
        box = _grown_box(s.target_mask)
        assert any((m & box).any() for m in s.distractor_masks), s.scene_id
        ax, ay = _centre(s.anchor_mask)
        tx, ty = _centre(s.target_mask)
        for m in s.distractor_masks:  # the expression still names one object
            x, y = _centre(m)
            assert np.hypot(x - ax, y - ay) > 1.3 * np.hypot(tx - ax, ty - ay)
        colour = np.asarray(COLOURS[s.colour], dtype=float)
        occluded += any(np.abs(s.image[m].astype(float).mean(0) - colour).max() > 25 for m in masks[1:])
    assert occluded >= 1  # some scenes have an occluder with its dark rim


def test_hard_scene_rejects_no_distractors_and_unknown_difficulty():
    with pytest.raises(ValueError, match="n_distractors"):
        generate_scene(0, size=(336, 336), n_distractors=0, difficulty="hard")
    with pytest.raises(ValueError, match="difficulty"):
        generate_scene(0, difficulty="medium")
    with pytest.raises(ValueError, match="difficulty"):
        generate_scenes(2, difficulty="medium")


def test_parquet_keeps_difficulty_and_reads_older_files_as_easy(tmp_path):
    scenes = generate_scenes(4, seed=1, sizes=((200, 300),), difficulty="mixed")
    path = write_scenes_parquet(scenes, tmp_path / "s.parquet")
    assert [s.difficulty for s in read_scenes_parquet(path)] == ["easy", "hard", "easy", "hard"]
    old = tmp_path / "old.parquet"
    pq.write_table(pq.read_table(path).drop(["difficulty"]), old)
    assert [s.difficulty for s in read_scenes_parquet(old)] == ["easy"] * 4


def test_make_scenes_cli_difficulty(tmp_path, capsys):
    from segzero_plus.cli import main

    out = tmp_path / "hard.parquet"
    assert (
        main(["make-scenes", "--out", str(out), "-n", "3", "--size", "200", "300", "--difficulty", "hard"])
        == 0
    )
    assert "(0 easy, 3 hard)" in capsys.readouterr().out
    assert [s.difficulty for s in read_scenes_parquet(out)] == ["hard"] * 3
