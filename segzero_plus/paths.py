"""Where generated artefacts live (tiny models, generated datasets): one cache folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The folder above the package: the checkout's root, or ``site-packages`` in an installed wheel."""


def in_checkout() -> bool:
    """Whether the package runs from a source checkout (``REPO_ROOT`` holds ``pyproject.toml``)."""
    return (REPO_ROOT / "pyproject.toml").is_file()


def cache_dir() -> Path:
    """Cache root for built tiny models and generated data.

    ``$SEGZERO_PLUS_CACHE`` if set, else ``<repo>/.cache/segzero_plus`` in a checkout, else
    ``$XDG_CACHE_HOME/segzero_plus`` (default ``~/.cache/segzero_plus``). Created on first use.
    """
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = REPO_ROOT / ".cache" if in_checkout() else user_cache
    root = Path(os.environ.get("SEGZERO_PLUS_CACHE") or default / "segzero_plus")
    root.mkdir(parents=True, exist_ok=True)
    return root
