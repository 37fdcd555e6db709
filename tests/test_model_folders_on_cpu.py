"""Model folders load without running code from them: .bin pickles asking for more than tensors are
refused unread, safetensors are preferred over a .bin beside them, the folder's Python files are never
imported."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from segzero_plus.evaluation.backends import BackendError, TransformersBackend
from segzero_plus.model_folders import (
    UnsafeCheckpointError,
    load_pretrained_model,
    model_load_kwargs,
    vllm_load_format,
)


class _RunsCode:
    """Pickles as a call of ``os.system`` (what a malicious weight file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _folder(tiny_qwen_dir: Path, dest: Path, safetensors: bool, marker: Path) -> Path:
    """A copy of the tiny model folder with a malicious ``pytorch_model.bin`` (and the real safetensors
    weights if ``safetensors``)."""
    dest.mkdir()
    for f in Path(tiny_qwen_dir).iterdir():
        if f.name != "model.safetensors" or safetensors:
            shutil.copy(f, dest / f.name)
    torch.save(
        {"lm_head.weight": torch.zeros(1), "x": _RunsCode(f"touch {marker}")}, dest / "pytorch_model.bin"
    )
    return dest


def test_a_bin_pickle_that_runs_code_is_refused_unread(tiny_qwen_dir, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    marker = tmp_path / "pwned"
    folder = _folder(tiny_qwen_dir, tmp_path / "bin_only", safetensors=False, marker=marker)
    assert model_load_kwargs(folder) == {
        "trust_remote_code": False,
        "use_safetensors": False,
        "weights_only": True,
    }
    assert vllm_load_format(folder) == "pt"
    with pytest.raises(UnsafeCheckpointError, match=r"bin_only: .*GLOBAL (posix|nt)\.system.*refused unread"):
        load_pretrained_model(Qwen2_5_VLForConditionalGeneration, folder)
    with pytest.raises(BackendError, match="refused unread"):
        TransformersBackend(folder, device="cpu")
    assert not marker.exists()
    torch.load(folder / "pytorch_model.bin", weights_only=False)  # the control: unrestricted, it runs
    assert marker.exists()


def test_safetensors_win_over_a_bin_beside_them(tiny_qwen_dir, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    marker = tmp_path / "pwned"
    folder = _folder(tiny_qwen_dir, tmp_path / "both", safetensors=True, marker=marker)
    assert model_load_kwargs(folder)["use_safetensors"] is True and vllm_load_format(folder) == "safetensors"
    model = load_pretrained_model(Qwen2_5_VLForConditionalGeneration, folder)
    assert model.config.model_type == "qwen2_5_vl" and not marker.exists()


def test_python_files_in_the_folder_are_never_imported(tiny_qwen_dir, tmp_path):
    """A folder whose configs point the Auto classes at its own module (remote code) still loads the
    built-in Qwen2.5-VL classes; the module is not imported."""
    marker = tmp_path / "imported"
    folder = tmp_path / "remote_code"
    shutil.copytree(tiny_qwen_dir, folder)
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    for name, auto in (("config.json", "AutoConfig"), ("processor_config.json", "AutoProcessor")):
        cfg = json.loads((folder / name).read_text())
        cfg["auto_map"] = {auto: f"evil.{auto}"}
        (folder / name).write_text(json.dumps(cfg))
    try:
        backend = TransformersBackend(folder, device="cpu")
    except BackendError as exc:  # refusing remote code outright is as good as ignoring it
        assert "trust_remote_code" in str(exc) or "remote" in str(exc)
    else:
        assert type(backend.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert not marker.exists()
