"""Our training configs as verl composes them: hydra composition (what ``python -m
verl.trainer.main_ppo --config-path DIR --config-name NAME`` does), verl 0.9.1's own ``ppo_trainer``
schema (what the keys are checked against), and reading integers from a composed config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from segzero_plus.paths import REPO_ROOT, in_checkout
from segzero_plus.train.config_keys import known_keys, suggest

DEFAULT_CONFIG_NAME = "segzero_plus_7b"
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The copy of the repository's ``configs/`` that a wheel ships (``setup.py`` adds it at build time)."""


def default_config_dir() -> Path:
    """``$SEGZERO_CONFIG_DIR``, else ``<repo>/configs`` in a checkout, else the wheel's packaged copy."""
    if os.environ.get("SEGZERO_CONFIG_DIR"):
        return Path(os.environ["SEGZERO_CONFIG_DIR"]).resolve()
    return (REPO_ROOT / "configs" if in_checkout() else PACKAGED_CONFIG_DIR).resolve()


def compose(
    config_name: str, overrides: Sequence[str] = (), config_dir: str | Path | None = None
) -> DictConfig:
    """Compose ``config_name`` from ``config_dir`` (default :func:`default_config_dir`) with hydra
    ``overrides``, as ``python -m verl.trainer.main_ppo --config-path DIR --config-name NAME`` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(
        config_dir=str(Path(config_dir or default_config_dir()).resolve()), version_base=None
    ):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


_SCHEMAS: dict[str, DictConfig] = {}


def verl_schema(model_engine: str = "dp") -> DictConfig:
    """verl 0.9.1's own composed ``ppo_trainer`` config (the schema our configs are checked against)."""
    if model_engine not in _SCHEMAS:
        from hydra import compose as hydra_compose
        from hydra import initialize_config_module

        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            _SCHEMAS[model_engine] = hydra_compose(
                config_name="ppo_trainer", overrides=[f"model_engine={model_engine}"]
            )
    return _SCHEMAS[model_engine]


def explain_compose_error(exc: Exception) -> str:
    """One line for a composition error: an unknown key is named with the nearest keys of verl's schema."""
    text = str(exc).strip()
    m = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if m:
        key = m.group(1)
        hint = suggest(key, known_keys(verl_schema()))
        return f"unknown key '{key}': {hint} (keys of our own section need a leading '+' on the command line)"
    return text.splitlines()[0] if text else type(exc).__name__


def config_int(value: Any, default: int = 0) -> int:
    """``value`` of a composed config as an int, ``default`` when it is None (unset)."""
    return default if value is None else int(value)
