"""Evaluation pools: a chunk no Ray shard could evaluate becomes counted failures, never dropped."""

from __future__ import annotations

from segzero_plus.data.lookalike import scenes_to_eval_rows
from segzero_plus.evaluation.pools import failed_records


def test_a_chunk_no_shard_could_evaluate_is_recorded_as_failures(scenes):
    rows = scenes_to_eval_rows(scenes[:2])
    recs = failed_records(rows, "RayActorError: the actor died unexpectedly")
    assert [r["id"] for r in recs] == [r["id"] for r in rows]
    for r, s in zip(recs, scenes[:2], strict=True):
        assert (r["I"], r["U"], r["failure"]) == (0, int(s.target_mask.sum()), "generation_error")
        assert "actor died" in r["failure_detail"]
