"""Shared fixtures. Everything runs offline on CPU, one torch thread, with models built locally."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # SAM2 touches CUDA at build time if one is visible

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # the numpy-only core is testable without torch
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_qwen_dir():
    """Folder of the deterministic tiny Qwen2.5-VL (built once into the cache)."""
    from segzero_plus.testing.tiny_models import ensure_tiny_qwen

    return ensure_tiny_qwen()


@pytest.fixture(scope="session")
def tiny_sam_checkpoint():
    """(config_name, checkpoint_path) of the very small random-weight SAM2 used by unit tests."""
    from segzero_plus.testing.tiny_models import ensure_tiny_sam

    return ensure_tiny_sam("tiny_test")


@pytest.fixture(scope="session")
def scenes():
    """Twelve look-alike scenes of mixed sizes (deterministic)."""
    from segzero_plus.data.scenes import generate_scenes

    return generate_scenes(12, seed=7, sizes=((336, 336), (280, 420), (420, 280)))
