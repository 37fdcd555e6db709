"""Build the verl training parquet (RefCOCOg refer layout, Seg-Zero's layout or look-alike scenes).

Thin wrapper over `segzero-plus prepare-train` (the library is `segzero_plus.data`); run with `--help` for options.
"""

from __future__ import annotations

import sys

from segzero_plus.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["prepare-train", *sys.argv[1:]]))
