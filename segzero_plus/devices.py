"""Torch device strings shared by SAM, the evaluation backends and the miners (torch is imported only to
resolve ``auto``)."""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """Device string: ``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
