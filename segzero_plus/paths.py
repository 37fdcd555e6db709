"""Where generated artefacts live (tiny models, generated datasets): one cache folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Cache root for built tiny models and generated data.

    ``$SEGZERO_PLUS_CACHE`` if set, else ``<repo>/.cache/segzero_plus``. Created on first use.
    """
    root = Path(os.environ.get("SEGZERO_PLUS_CACHE", REPO_ROOT / ".cache" / "segzero_plus"))
    root.mkdir(parents=True, exist_ok=True)
    return root
