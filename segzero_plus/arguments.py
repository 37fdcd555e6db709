"""Checked argument types shared by the subcommands: a bad value is one ``error:`` line, not a crash.

argparse calls these on the raw strings; a ``ValueError``/``argparse.ArgumentTypeError`` they raise is
reported by ``segzero-plus`` as ``error: <prog>: argument <name>: <reason>`` with exit status 2.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (chunk sizes, batch sizes, limits, counts)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (worker counts where 0 means in-process, seeds)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def png_level(text: str) -> int:
    """A zlib level 0-9."""
    value = _int(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"must be a PNG compression level 0-9, got {text!r}")
    return value


def template_name(text: str) -> str:
    """A prompt template name of :mod:`segzero_plus.prompts`."""
    from segzero_plus.prompts import TEMPLATES

    if text not in TEMPLATES:
        raise argparse.ArgumentTypeError(
            f"unknown prompt template {text!r}; valid names: {sorted(TEMPLATES)}"
        )
    return text


def sam_config_name(text: str) -> str:
    """A SAM2 config name of :data:`segzero_plus.sam.build.SAM_CONFIGS`."""
    from segzero_plus.sam.build import SAM_CONFIGS

    if text not in SAM_CONFIGS:
        raise argparse.ArgumentTypeError(f"unknown SAM2 config {text!r}; choose one of {sorted(SAM_CONFIGS)}")
    return text


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
