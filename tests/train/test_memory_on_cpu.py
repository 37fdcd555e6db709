"""The memory estimate: what it reads from a model folder and the verdicts it gives for known set-ups."""

from __future__ import annotations

import dataclasses
import math

import pytest

from segzero_plus.train.memory import GIB, QWEN25_VL_7B, TrainShape, estimate_memory, model_shape

A6000_FULL = TrainShape(
    n_gpus=2, tp=2, gpu_memory_utilization=0.6, train_batch_size=8, rollout_n=4, micro_batch=1,
    log_prob_micro_batch=2, seq_len=2600, max_model_len=2600, use_dynamic_bsz=False, max_token_len_per_gpu=16384,
    param_offload=True, optimizer_offload=True, offload_policy=False, strategy="fsdp2", model_dtype="fp32",
    ref_model_dtype="bf16", use_ref=True, gradient_checkpointing=True, lora_rank=0, reward_workers=4,
    sam_gpu_gib=4.0, sam_placement="shared_gpu",
)  # fmt: skip


def test_model_shape_reads_the_folder(tiny_qwen_dir):
    from safetensors import safe_open

    with safe_open(str(tiny_qwen_dir / "model.safetensors"), "pt") as f:
        expected = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    shape = model_shape(str(tiny_qwen_dir))
    assert shape.params == expected
    assert (shape.hidden, shape.layers, shape.head_dim) == (128, 2, 32)
    assert model_shape("/nonexistent") is QWEN25_VL_7B
    assert model_shape(None, params_b=3.0).params == 3.0e9


def test_phase_offload_brings_the_whole_7b_state_back_for_the_update():
    """verl loads fp32 params + grads + AdamW (16 B/param) for the update: 8.29 B / 2 GPUs ~ 62 GiB > 48."""
    est = estimate_memory(A6000_FULL, QWEN25_VL_7B, 48.0)
    assert est.parts["train:actor state"] == pytest.approx(16 * QWEN25_VL_7B.params / 2 / GIB)
    assert any("actor update needs" in p for p in est.problems(48.0, 256.0))


def test_fsdp2_offload_policy_fits_2xa6000_and_moves_the_state_to_the_host():
    shape = dataclasses.replace(A6000_FULL, offload_policy=True, param_offload=False, optimizer_offload=False)
    est = estimate_memory(shape, QWEN25_VL_7B, 48.0)
    assert est.parts["train:actor state"] == 0.0
    assert est.problems(48.0, 256.0) == []
    assert est.host_gib > 16 * QWEN25_VL_7B.params / GIB  # fp32 params + grads + AdamW live in host RAM
    assert any("host memory" in p for p in est.problems(48.0, 128.0))
    # the same run with FSDP1 ignores offload_policy: back to 16 B/param on the GPU
    fsdp1 = estimate_memory(dataclasses.replace(shape, strategy="fsdp"), QWEN25_VL_7B, 48.0)
    assert fsdp1.parts["train:actor state"] > 40


def test_vllm_share_must_hold_the_weights_and_leave_kv_cache():
    shape = dataclasses.replace(A6000_FULL, tp=1, gpu_memory_utilization=0.3, offload_policy=True)
    est = estimate_memory(shape, QWEN25_VL_7B, 48.0)  # 14.4 GiB share < 15.4 GiB of bf16 weights
    assert est.kv_cache_gib < 0
    assert any("no KV cache" in p for p in est.problems(48.0, None))
    greedy = estimate_memory(dataclasses.replace(A6000_FULL, gpu_memory_utilization=0.95), QWEN25_VL_7B, 48.0)
    assert any("rollout needs" in p for p in greedy.problems(48.0, None))


def test_lora_trains_a_small_fraction_and_keeps_no_reference_copy():
    lora = dataclasses.replace(A6000_FULL, lora_rank=64, offload_policy=True)
    est = estimate_memory(lora, QWEN25_VL_7B, 24.0)
    assert "host:reference model (pinned)" not in est.parts
    assert (
        4 * QWEN25_VL_7B.params / GIB
        < est.parts["host:actor params+grads+adam"]
        < 4.5 * QWEN25_VL_7B.params / GIB
    )
    assert "host:vLLM weights while asleep" in est.parts


def test_host_estimate_of_2xa6000_counts_every_process_and_the_init_transient():
    """Offloaded fp32 state, the bf16 reference, trainer/vLLM/driver processes, agent-loop and reward
    workers, Ray + TransferQueue and rank 0's full model copy at init: ~185-200 GiB, in the profile's 256."""
    from segzero_plus.train.verl_config import compose

    cfg = compose("segzero_plus_7b", ["hardware=2xa6000"])
    est = estimate_memory(TrainShape.from_config(cfg, 4.0, None), QWEN25_VL_7B, 48.0)
    for part in ("agent-loop workers", "reward workers", "processes", "ray + transferqueue"):
        assert est.parts[f"host:{part}"] > 0, part
    # rank 0's init copy (31 GiB) is gone before the 93 GiB of grads + AdamW exist: no extra peak here ...
    assert est.parts["host:rank-0 init transient"] == 0.0
    assert 185 <= est.host_gib <= 205, est.parts
    # ... but it is the peak of a run that keeps its state on the GPU
    on_gpu = dataclasses.replace(A6000_FULL, param_offload=False, optimizer_offload=False)
    assert estimate_memory(on_gpu, QWEN25_VL_7B, 80.0).parts["host:rank-0 init transient"] > 30
    assert est.problems(48.0, 256.0) == []


def test_vllm_must_hold_one_sequence_of_max_model_len():
    """vLLM refuses to start when its KV cache cannot hold one sequence of max_model_len tokens; without
    rollout.max_model_len that is the model's 128000."""
    small = dataclasses.replace(A6000_FULL, gpu_memory_utilization=0.25)  # ~2.3 GiB of KV cache per GPU
    est = estimate_memory(dataclasses.replace(small, max_model_len=128000), QWEN25_VL_7B, 48.0)
    assert est.parts["kv_one_sequence"] == pytest.approx(128000 * QWEN25_VL_7B.kv_bytes_per_token / 2 / GIB)
    assert any("cannot hold one full-length sequence" in p for p in est.problems(48.0, None))
    fitting = estimate_memory(small, QWEN25_VL_7B, 48.0).problems(48.0, None)
    assert not any("full-length" in p for p in fitting)
