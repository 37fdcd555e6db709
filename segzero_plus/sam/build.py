"""Build SAM2 models from the ``sam2`` package's yaml configs without touching hydra's global state.

``sam2.build_sam.build_sam2`` composes its config through hydra's *global* state, which breaks inside a
``@hydra.main`` application such as verl's trainer. Here the yaml is read with OmegaConf, the same
post-processing options ``build_sam2`` adds are merged in, and ``hydra.utils.instantiate`` (which needs
no global state) builds the model. ``import sam2`` itself initialises GlobalHydra when nobody has; we
undo exactly that, so GlobalHydra is left as we found it.

Checkpoints are SAM2's own format, ``{"model": state_dict}``, loaded with ``strict=True``.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import torch

from segzero_plus.errors import UserError
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG

# name -> (yaml file relative to the sam2 package, dotted overrides merged on top of it)
SAM_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "sam2.1_hiera_t": ("configs/sam2.1/sam2.1_hiera_t.yaml", {}),
    "sam2.1_hiera_s": ("configs/sam2.1/sam2.1_hiera_s.yaml", {}),
    "sam2.1_hiera_b+": ("configs/sam2.1/sam2.1_hiera_b+.yaml", {}),
    "sam2.1_hiera_l": ("configs/sam2.1/sam2.1_hiera_l.yaml", {}),
    # Very small and fast (unit tests only): Hiera-T trunk with 5 blocks, 256x256 input.
    "tiny_test": (
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        {
            "model.image_size": 256,
            "model.image_encoder.trunk.stages": [1, 1, 2, 1],
            "model.image_encoder.trunk.global_att_blocks": [3],
        },
    ),
}

# What build_sam2(apply_postprocessing=True) adds: fall back to the best multimask token when the
# single-mask token is unstable.
_POSTPROCESSING: dict[str, Any] = {
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
}


class SamCheckpointError(UserError, RuntimeError):
    """A SAM2 checkpoint file is missing, unreadable, or does not match the config."""


class SamConfigError(UserError, ValueError):
    """A SAM2 config name that :data:`SAM_CONFIGS` does not hold."""


def _sam2_package_dir() -> Path:
    """Folder of the installed ``sam2`` package, found without importing (and so without running) it."""
    spec = importlib.util.find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the `sam2` package is not installed (pip install sam2==1.1.0, see README)")
    return Path(next(iter(spec.submodule_search_locations)))


def import_sam2_quietly() -> None:
    """Import ``sam2`` (whose ``__init__`` initialises GlobalHydra) and undo that side effect only.

    If GlobalHydra was already initialised (e.g. inside verl's ``@hydra.main``), sam2 leaves it alone
    and so do we; if it was not, sam2 initialises it and we clear it again.
    """
    from hydra.core.global_hydra import GlobalHydra

    was_initialised = GlobalHydra.instance().is_initialized()
    import sam2  # noqa: F401
    import sam2.modeling.sam2_base  # noqa: F401

    if not was_initialised and GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()


def sam_model_config(config_name: str, device: str = "cpu") -> Any:
    """The resolved OmegaConf ``model`` node for ``config_name``: a key of :data:`SAM_CONFIGS`, or the path
    of a yaml file in sam2's config format (a top-level ``model`` node), e.g. a toy model's own config."""
    from omegaconf import OmegaConf

    if config_name in SAM_CONFIGS:
        rel_path, overrides = SAM_CONFIGS[config_name]
        yaml_path = _sam2_package_dir() / rel_path
    elif config_name.endswith((".yaml", ".yml")) and Path(config_name).is_file():
        yaml_path, overrides = Path(config_name), {}
    else:
        raise SamConfigError(
            f"unknown SAM2 config {config_name!r}; choose one of {sorted(SAM_CONFIGS)} "
            "or give the path of a sam2-style .yaml file"
        )
    cfg = OmegaConf.load(yaml_path)
    for key, value in {**overrides, **_POSTPROCESSING}.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    # The sine position encoding warms a CUDA cache at construction whenever CUDA is visible; only
    # allow that when building for CUDA, so CPU builds never touch a GPU.
    OmegaConf.update(
        cfg,
        "model.image_encoder.neck.position_encoding.warmup_cache",
        device.startswith("cuda"),
        force_add=True,
    )
    OmegaConf.update(
        cfg,
        "model.image_encoder.neck.position_encoding.image_size",
        int(cfg.model.image_size),
        force_add=True,
    )
    OmegaConf.resolve(cfg)
    return cfg.model


def _instantiate(config_name: str, device: str, seed: int) -> torch.nn.Module:
    """Construct the model on CPU with weights drawn from ``seed`` (global RNG state is preserved)."""
    from hydra.utils import instantiate

    import_sam2_quietly()
    model_cfg = sam_model_config(config_name, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = instantiate(model_cfg, _recursive_=True)
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SamCheckpointError(f"SAM2 checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors vary by torch version
        raise SamCheckpointError(f"SAM2 checkpoint {path} is unreadable or corrupt: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        keys = sorted(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        raise SamCheckpointError(
            f"SAM2 checkpoint {path} is not of the form {{'model': state_dict}} (got {keys})"
        )
    return payload["model"]


def _load_strict(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path, config_name: str
) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:

        def head(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" ... (+{len(items) - 5})" if len(items) > 5 else "")

        raise SamCheckpointError(
            f"SAM2 checkpoint {path} does not match config {config_name!r}: "
            f"{len(missing)} missing [{head(missing)}], {len(unexpected)} unexpected [{head(unexpected)}], "
            f"{len(shapes)} shape mismatches [{head(shapes)}]"
        )
    model.load_state_dict(state_dict, strict=True)


def build_sam2_model(
    config_name: str = DEFAULT_SAM_CONFIG,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    seed: int | None = None,
) -> torch.nn.Module:
    """Build a SAM2 model (``SAM2Base``) in eval mode with frozen parameters.

    Args:
        config_name: a key of :data:`SAM_CONFIGS` or a sam2-style yaml path (see :func:`sam_model_config`).
        checkpoint: ``{"model": state_dict}`` file (SAM2's release format), loaded strictly; ``None``
            gives deterministic random weights drawn from ``seed``.
        device: torch device string ("cpu", "cuda", "cuda:1").
        seed: seed of the random weights (default 0); ignored when a checkpoint is given.

    Raises:
        SamCheckpointError: checkpoint missing, corrupt, or not matching the config (names the file).
    """
    model = _instantiate(config_name, device, 0 if seed is None else int(seed))
    if checkpoint is not None:
        path = Path(checkpoint)
        _load_strict(model, _read_state_dict(path), path, config_name)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def write_random_checkpoint(path: str | Path, config_name: str, seed: int = 0) -> Path:
    """Save the random-weight model of ``config_name``/``seed`` as ``{"model": state_dict}``.

    The file is byte-identical for the same config and seed on one kind of CPU; not across kinds: torch's
    random initialisation draws other numbers with its AVX2/AVX-512 kernels than without (measured on
    tiny_test, seed 0). Written atomically (temp file + rename).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _instantiate(config_name, "cpu", seed)
    state_dict = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()  # a buffer, not a file name: the zip's inner folder name is then path-independent
    torch.save({"model": state_dict}, buffer)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path
