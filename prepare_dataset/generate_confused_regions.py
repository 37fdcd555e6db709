"""Mine SAM2 confused regions into a training parquet (fills ``confused_mask`` and ``confused_regions``).

Thin wrapper over `segzero-plus mine-confused` (the library is `segzero_plus.data.mining`); run with
`--help` for options. Example (2 GPUs, SAM 2.1 Hiera-L):

    python prepare_dataset/generate_confused_regions.py --input data/refcocog_9k_840/train.parquet \\
        --sam-checkpoint pretrained_models/sam2.1_hiera_large.pt --workers 2

Resumable: rerun the same command after an interruption; finished shards are kept in
``<output>.mining/``. The coverage summary is written to ``<output>.summary.json``.
"""

from __future__ import annotations

import sys

from segzero_plus.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["mine-confused", *sys.argv[1:]]))
