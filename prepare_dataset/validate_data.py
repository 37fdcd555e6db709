"""Check training/evaluation parquet files; --skip-bad writes a clean copy plus a report.

Thin wrapper over `segzero-plus validate-data` (the library is `segzero_plus.data`); run with `--help` for options.
"""

from __future__ import annotations

import sys

from segzero_plus.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["validate-data", *sys.argv[1:]]))
