"""Building SAM2 without hydra's global state; strict checkpoints; deterministic random weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from segzero_plus.sam.build import (
    DEFAULT_SAM_CONFIG,
    SAM_CONFIGS,
    SamCheckpointError,
    build_sam2_model,
    write_random_checkpoint,
)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_config_names():
    assert {"sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l", "tiny_test"} <= set(
        SAM_CONFIGS
    )
    assert DEFAULT_SAM_CONFIG == "sam2.1_hiera_l"


@pytest.mark.parametrize(
    "name, low, high", [("sam2.1_hiera_t", 35, 45), ("sam2.1_hiera_s", 40, 50), ("sam2.1_hiera_l", 215, 235)]
)
def test_shipped_configs_build(name, low, high):
    model = build_sam2_model(name, None, seed=0)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    assert low < n_params < high
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    # the post-processing options build_sam2 adds are merged in
    assert model.sam_mask_decoder.dynamic_multimask_via_stability is True
    assert model.image_size == 1024


def test_tiny_config_is_small_and_256():
    model = build_sam2_model("tiny_test", None, seed=0)
    assert model.image_size == 256
    assert len(model.image_encoder.trunk.blocks) == 5


def test_checkpoint_roundtrip_and_seed(tmp_path):
    # a checkpoint written here and now, not the cached fixture: random initialisation differs between
    # CPU kinds (torch's vectorised kernels), and a cache may have been built on another machine
    config_name = "tiny_test"
    path = write_random_checkpoint(tmp_path / "seed0.pt", config_name, seed=0)
    from_file = build_sam2_model(config_name, path)
    from_seed = build_sam2_model(config_name, None, seed=0)
    assert _same_weights(from_file, from_seed)
    assert not _same_weights(from_seed, build_sam2_model(config_name, None, seed=1))
    # the global RNG is not consumed by building
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_sam2_model(config_name, None, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_random_checkpoint_is_byte_deterministic(tmp_path):
    a = write_random_checkpoint(tmp_path / "a.pt", "tiny_test", seed=3)
    b = write_random_checkpoint(tmp_path / "sub" / "b.pt", "tiny_test", seed=3)
    c = write_random_checkpoint(tmp_path / "c.pt", "tiny_test", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_errors_name_the_file(tiny_sam_checkpoint, tmp_path):
    _, good = tiny_sam_checkpoint
    missing = tmp_path / "nope.pt"
    with pytest.raises(SamCheckpointError, match="not found.*nope.pt"):
        build_sam2_model("tiny_test", missing)

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(Path(good).read_bytes()[:5000])
    with pytest.raises(SamCheckpointError, match="corrupt.pt.*(unreadable|corrupt)"):
        build_sam2_model("tiny_test", corrupt)

    wrong_format = tmp_path / "plain.pt"
    torch.save({"state": {}}, wrong_format)
    with pytest.raises(SamCheckpointError, match="plain.pt.*'model'"):
        build_sam2_model("tiny_test", wrong_format)

    # tiny_test weights in the Hiera-T config: same keys for most modules, but missing blocks
    with pytest.raises(
        SamCheckpointError, match=r"tiny_test.pt does not match config 'sam2.1_hiera_t'.*missing"
    ):
        build_sam2_model("sam2.1_hiera_t", good)

    sd = torch.load(good, weights_only=True)["model"]
    key = next(k for k in sd if k.endswith("weight") and sd[k].ndim == 2)
    sd[key] = torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])
    reshaped = tmp_path / "reshaped.pt"
    torch.save({"model": sd}, reshaped)
    with pytest.raises(SamCheckpointError, match="reshaped.pt.*1 shape mismatches"):
        build_sam2_model("tiny_test", reshaped)

    with pytest.raises(ValueError, match="unknown SAM2 config"):
        build_sam2_model("sam3_giant", None)


def test_global_hydra_left_as_found():
    GlobalHydra.instance().clear()
    build_sam2_model("tiny_test", None)
    assert not GlobalHydra.instance().is_initialized()

    from hydra import initialize_config_module

    with initialize_config_module("sam2", version_base="1.2"):
        gh_before = GlobalHydra.instance()
        build_sam2_model("tiny_test", None)
        assert GlobalHydra.instance().is_initialized()
        assert GlobalHydra.instance() is gh_before
    assert not GlobalHydra.instance().is_initialized()


HYDRA_APP = textwrap.dedent(
    """
    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig

    @hydra.main(version_base=None, config_path=None, config_name=None)
    def main(cfg: DictConfig) -> None:
        import torch
        torch.set_num_threads(1)
        assert GlobalHydra.instance().is_initialized()
        loader_before = GlobalHydra.instance().config_loader()
        from segzero_plus.sam.build import build_sam2_model
        model = build_sam2_model("tiny_test", {ckpt!r})
        assert GlobalHydra.instance().is_initialized(), "GlobalHydra was cleared inside the app"
        assert GlobalHydra.instance().config_loader() is loader_before, "GlobalHydra was replaced"
        print("BUILT", sum(p.numel() for p in model.parameters()))

    if __name__ == "__main__":
        main()
    """
)


def test_build_inside_running_hydra_app(tiny_sam_checkpoint, tmp_path):
    """verl is a @hydra.main app: importing sam2 and building inside one must work (fresh interpreter,
    so sam2 is imported for the first time inside the app, the case upstream build_sam2 breaks in)."""
    _, ckpt = tiny_sam_checkpoint
    script = tmp_path / "app.py"
    script.write_text(HYDRA_APP.format(ckpt=str(ckpt)))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BUILT" in proc.stdout


class _RunsCode:
    """Pickles as a call of ``os.system`` (what a malicious checkpoint does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_checkpoint_that_runs_code_is_refused_unread(tiny_sam_checkpoint, tmp_path):
    """SAM2 checkpoints are read with torch's weights-only unpickler: a payload is refused, not run."""
    _, good = tiny_sam_checkpoint
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = torch.load(good, weights_only=True)
    payload["extra"] = _RunsCode(f"touch {marker}")
    torch.save(payload, evil)
    with pytest.raises(SamCheckpointError, match=r"(?s)evil\.pt is unreadable.*GLOBAL (posix|nt)\.system"):
        build_sam2_model("tiny_test", evil)
    assert not marker.exists()


def test_config_from_a_yaml_path_builds_like_the_named_config(tmp_path):
    import shutil

    from segzero_plus.sam.build import _sam2_package_dir

    yaml = tmp_path / "my_sam2.yaml"
    shutil.copy(_sam2_package_dir() / SAM_CONFIGS["sam2.1_hiera_t"][0], yaml)
    assert _same_weights(build_sam2_model(str(yaml), seed=3), build_sam2_model("sam2.1_hiera_t", seed=3))
    with pytest.raises(ValueError, match="sam2-style .yaml"):
        build_sam2_model(str(tmp_path / "missing.yaml"))
