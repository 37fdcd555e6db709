"""Build evaluation parquet files (ReasonSeg, RefCOCO/+/g, Seg-Zero's evaluation layout).

Thin wrapper over `segzero-plus prepare-eval` (the library is `segzero_plus.data`); run with `--help` for options.
"""

from __future__ import annotations

import sys

from segzero_plus.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["prepare-eval", *sys.argv[1:]]))
