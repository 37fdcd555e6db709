"""Look-alike scene generator: determinism, masks equal to the drawing, unique referent, parquet round trip."""

import numpy as np
import pytest

from segzero_plus.scenes import (
    COLOURS,
    RELATIONS,
    generate_scene,
    generate_scenes,
    read_scenes_parquet,
    write_scenes_parquet,
)


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
