"""``segzero-plus evaluate``'s options: bad input is one error line, the SAM protocol a result setting."""

from __future__ import annotations

import argparse

import pytest

from segzero_plus.cli import main as cli_main
from segzero_plus.evaluation.cli import add_arguments, config_from_args
from segzero_plus.evaluation.config import RESULT_KEYS


def main(argv: list[str]) -> int:
    """``segzero-plus evaluate`` with ``argv``."""
    return cli_main(["evaluate", *argv])


def test_cli_errors_are_one_line_and_nonzero(tmp_path, capsys, tiny_qwen_dir, tiny_sam_checkpoint):
    base = ["--out", str(tmp_path / "o"), "--sam-checkpoint", "random"]
    assert main(["--data", str(tmp_path / "missing.parquet"), "--model", str(tiny_qwen_dir), *base]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert main(["--data", "x.parquet", "--model", str(tmp_path / "nope"), *base]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert (
        main(
            [
                "--data",
                "x.parquet",
                "--model",
                "tiny",
                "--out",
                str(tmp_path / "o"),
                "--sam-checkpoint",
                str(tmp_path / "sam.pt"),
            ]
        )
        == 2
    )
    assert "SAM2 checkpoint not found" in capsys.readouterr().err


def test_sam_protocol_is_a_result_setting_with_seg_zeros_default(tmp_path, tiny_qwen_dir):
    """The CLI defaults to Seg-Zero's protocol (for comparisons with published numbers); the protocol is
    one of the settings a run directory records and refuses to resume with a different value."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--data", "x.parquet", "--out", str(tmp_path / "o"), "--model", str(tiny_qwen_dir)]
    cfg = config_from_args(parser.parse_args([*base, "--sam-checkpoint", "random"]))
    assert "sam_protocol" in RESULT_KEYS and cfg.result_settings()["sam_protocol"] == "multimask_best"
    args = parser.parse_args([*base, "--sam-checkpoint", "random", "--sam-protocol", "single_mask"])
    assert config_from_args(args).result_settings()["sam_protocol"] == "single_mask"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--sam-checkpoint", "random", "--sam-protocol", "best"])
