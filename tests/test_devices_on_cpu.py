"""Device strings (segzero_plus.devices)."""

from __future__ import annotations

import torch

from segzero_plus.devices import resolve_device


def test_auto_picks_cuda_only_when_visible_and_other_names_pass_through():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device("auto")
    for name in ("cpu", "cuda", "cuda:1"):
        assert resolve_device(name) == name
