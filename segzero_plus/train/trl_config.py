"""Run settings of the TRL engine: a profile from ``configs/trl/`` plus an experiment of
``configs/experiment/`` (the same names as the verl recipes), as one :class:`TrlRun`.

A profile is a small yaml::

    model: tiny-qwen            # a Hugging Face folder, or tiny-qwen / toy-policy (the built-in fixtures)
    experiment: segzero_plus_geometry
    grpo: {...}                 # trl.GRPOConfig fields (batch, generations, lengths, lr, bf16, ...)
    peft: null                  # or peft.LoraConfig fields: LoRA on the language model
    segzero_plus: {...}         # overrides of the experiment's reward section (e.g. the SAM checkpoint)
    preflight: {gpu_memory_gb: 24, sample_rows: 16}

The reward options are the verl recipe's ``segzero_plus`` section (``configs/recipe/seg_zero_grpo.yaml``),
then the experiment's, then the profile's, validated by :class:`segzero_plus.train.options.ManagerOptions`,
so an experiment name selects the same reward variant on both engines. Command-line overrides are
``dotted.key=value`` pairs applied to the profile (``grpo.max_steps=5``, ``segzero_plus.sam.device=cpu``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from segzero_plus.errors import UserError
from segzero_plus.train.options import SECTION, ManagerOptions, OptionsError
from segzero_plus.train.verl_config import default_config_dir

PROFILE_KEYS = frozenset({"model", "experiment", "grpo", "peft", SECTION, "preflight"})
RECIPE = "recipe/seg_zero_grpo.yaml"


MODEL_ALIASES = ("tiny-qwen", "toy-policy")
"""Profile ``model:`` names of the built-in fixtures: the random tiny Qwen2.5-VL (tests) and the
cold-started toy policy (``make learn``)."""
TOY_SAM = "toy"
"""``segzero_plus.sam.config_name`` (and ``checkpoint``) of the trained toy SAM2 fixture."""


def resolve_model(model: str) -> Path:
    """The model folder of a profile's ``model:`` (a path or one of :data:`MODEL_ALIASES`)."""
    if model == "tiny-qwen":
        from segzero_plus.testing.tiny_models import ensure_tiny_qwen

        return ensure_tiny_qwen()
    if model == "toy-policy":
        try:
            from segzero_plus.testing.toy_policy import toy_policy_dir
        except ImportError:
            raise UserError(
                "the toy policy fixture (segzero_plus.testing.toy_policy) is not in this checkout; "
                "give a model folder instead (--policy DIR or model=DIR)"
            ) from None
        return toy_policy_dir()
    path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise UserError(f"model folder {path} has no config.json; give a Hugging Face model folder")
    return path


class TrlConfigError(UserError):
    """A profile, experiment or override that cannot be used; the message names it."""


@dataclass(frozen=True)
class TrlRun:
    """Everything one TRL run needs, validated (see the module docstring)."""

    profile: str
    model: str
    experiment: str
    options: ManagerOptions
    grpo: Mapping[str, Any]
    peft: Mapping[str, Any] | None = None
    preflight: Mapping[str, Any] = field(default_factory=dict)


def profile_names(config_dir: Path | None = None) -> list[str]:
    """The profiles in ``<configs>/trl``."""
    return sorted(p.stem for p in (Path(config_dir or default_config_dir()) / "trl").glob("*.yaml"))


def _load_yaml(path: Path, what: str) -> Any:
    try:
        return OmegaConf.load(path)
    except Exception as exc:
        raise TrlConfigError(f"{what} {path} is not readable yaml ({str(exc).splitlines()[0]})") from None


def _profile_path(profile: str, config_dir: Path) -> Path:
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise TrlConfigError(f"TRL profile {path} does not exist")
        return path
    path = config_dir / "trl" / f"{profile}.yaml"
    if not path.exists():
        raise TrlConfigError(
            f"unknown TRL profile {profile!r}; known: {profile_names(config_dir)} (or a path to a yaml file)"
        )
    return path


def experiment_names(config_dir: Path | None = None) -> list[str]:
    """The experiments in ``<configs>/experiment``."""
    return sorted(p.stem for p in (Path(config_dir or default_config_dir()) / "experiment").glob("*.yaml"))


def reward_section(experiment: str, config_dir: Path | None = None, overrides: Any = None) -> dict[str, Any]:
    """The recipe's ``segzero_plus`` section with the experiment's and then ``overrides`` merged on top
    (resolved to plain data)."""
    config_dir = Path(config_dir or default_config_dir())
    path = config_dir / "experiment" / f"{experiment}.yaml"
    if not path.exists():
        raise TrlConfigError(f"unknown experiment {experiment!r}; known: {experiment_names(config_dir)}")
    recipe = _load_yaml(config_dir / RECIPE, "recipe").get(SECTION) or {}
    exp = _load_yaml(path, "experiment").get(SECTION) or {}
    merged = OmegaConf.merge(recipe, exp, overrides or {})
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def load_run(
    profile: str,
    experiment: str | None = None,
    overrides: Sequence[str] = (),
    config_dir: str | Path | None = None,
) -> TrlRun:
    """The :class:`TrlRun` of ``profile`` (a name in ``configs/trl`` or a yaml path), ``experiment``
    (default: the profile's) and ``overrides`` (``dotted.key=value``)."""
    config_dir = Path(config_dir or default_config_dir())
    path = _profile_path(profile, config_dir)
    cfg = _load_yaml(path, "TRL profile")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except Exception as exc:
        raise TrlConfigError(f"bad override in {list(overrides)}: {str(exc).splitlines()[0]}") from None
    unknown = sorted(set(cfg) - PROFILE_KEYS)
    if unknown:
        raise TrlConfigError(f"{path}: unknown key(s) {unknown}; known: {sorted(PROFILE_KEYS)}")
    name = experiment or cfg.get("experiment")
    if not name:
        raise TrlConfigError(f"{path}: no experiment (set `experiment:` or pass --experiment)")
    try:
        options = ManagerOptions.from_section(reward_section(str(name), config_dir, cfg.get(SECTION)))
    except OptionsError as exc:
        raise TrlConfigError(f"experiment {name!r} with profile {path.stem!r}: {exc}") from None
    container = OmegaConf.to_container(cfg, resolve=True)
    model = container.get("model")
    if not model:
        raise TrlConfigError(f"{path}: `model:` must name a model folder, tiny-qwen or toy-policy")
    return TrlRun(
        profile=path.stem,
        model=str(model),
        experiment=str(name),
        options=options,
        grpo=dict(container.get("grpo") or {}),
        peft=dict(container["peft"]) if container.get("peft") else None,
        preflight=dict(container.get("preflight") or {}),
    )
