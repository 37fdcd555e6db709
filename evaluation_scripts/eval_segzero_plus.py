#!/usr/bin/env python
"""Evaluate a Seg-Zero++ (or Seg-Zero) policy on ReasonSeg / RefCOCO(+/g) eval parquet files.

Same options as ``segzero-plus evaluate`` (see ``--help``); rerunning the same command resumes. Examples:

    # a trained policy, one GPU, vLLM
    python evaluation_scripts/eval_segzero_plus.py --backend vllm --model CKPT_DIR \\
        --sam-checkpoint pretrained_models/sam2.1_hiera_large.pt --data data/eval/reasonseg_test.parquet \\
        --out outputs/eval/segzero_plus/reasonseg_test --name "Seg-Zero++"

    # 8 GPUs (one vLLM replica + SAM2 per GPU, Ray), or a multi-node Ray cluster with --ray-address auto
    python evaluation_scripts/eval_segzero_plus.py --backend vllm --num-shards 8 ...

    # throughput check on the offline tiny model with random SAM2 hiera_l (no downloads)
    python evaluation_scripts/eval_segzero_plus.py --backend vllm --model tiny --sam-checkpoint random \\
        --sam-config sam2.1_hiera_l --data lookalike:256 --out /tmp/eval_tiny_vllm --max-new-tokens 256
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from segzero_plus.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["evaluate", *sys.argv[1:]]))
