"""Checked argument types shared by the subcommands: a bad value is one ``error:`` line, not a crash.

argparse calls these on the raw strings; a ``ValueError``/``argparse.ArgumentTypeError`` they raise is
reported by ``segzero-plus`` as ``error: <prog>: argument <name>: <reason>`` with exit status 2.
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """An integer >= 1 (chunk sizes, batch sizes, limits, counts)."""
    return _checked(_int(text), text, 1, None, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (worker counts where 0 means in-process, seeds)."""
    return _checked(_int(text), text, 0, None, "an integer >= 0")


def png_level(text: str) -> int:
    """A zlib level 0-9."""
    return _checked(_int(text), text, 0, 9, "a PNG compression level 0-9")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (margins in pixels)."""
    return _checked(_float(text), text, 0.0, None, "a number >= 0")


def fraction(text: str) -> float:
    """A number in [0, 1] (score thresholds)."""
    return _checked(_float(text), text, 0.0, 1.0, "a number in [0, 1]")


def _checked(value, text: str, low, high, what: str):
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
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


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value
