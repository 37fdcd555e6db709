"""`segzero-plus` console entry point.

Each subcommand has a registering function (``register(subparsers)`` of its module, unless
:data:`SUBCOMMANDS` names another one) that adds one parser whose ``func`` default takes the parsed
``argparse.Namespace`` and returns an exit code. Bad input has one convention: a
:class:`segzero_plus.errors.UserError` raised by a subcommand, an argument argparse rejects, or an OS
error the user must fix (full disk, read-only folder) becomes one ``error: ...`` line on stderr and exit
status 2, without a traceback. Modules are imported lazily (only the chosen one), so
``segzero-plus --help`` stays fast and light.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from segzero_plus.errors import UserError, environment_error

# subcommand name -> "module" (whose ``register`` adds the parser) or "module:function" (that function)
SUBCOMMANDS: dict[str, str] = {
    "make-tiny": "segzero_plus.testing.tiny_models",
    "make-scenes": "segzero_plus.data.scenes",
    "mine-confused": "segzero_plus.data.cli:register_mine_confused",
    "prepare-train": "segzero_plus.data.cli:register_prepare_train",
    "prepare-eval": "segzero_plus.data.cli:register_prepare_eval",
    "validate-data": "segzero_plus.data.cli:register_validate_data",
    "prepare-sft": "segzero_plus.data.cli:register_prepare_sft",
    "evaluate": "segzero_plus.evaluation.cli",
    "segment": "segzero_plus.evaluation.segment",
    "report": "segzero_plus.reporting.cli",
    "check-train": "segzero_plus.train.preflight",
    "train-trl": "segzero_plus.train.trl_train",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, except that a rejected argument raises :class:`UserError` (one line) instead of printing
    the usage and exiting; subparsers inherit this class."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser; with ``only`` set, import just that subcommand's module."""
    parser = ArgumentParser(prog="segzero-plus", description="Seg-Zero++ command-line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, target in SUBCOMMANDS.items():
        if only is None or only == name:
            module, _, function = target.partition(":")
            getattr(importlib.import_module(module), function or "register")(sub)
        else:
            sub.add_parser(name, help=f"(see `segzero-plus {name} --help`)")
    return parser


def run_reporting_errors(body: Callable[[], int | None]) -> int:
    """``body()``'s exit code, with bad input reported by the one convention: a :class:`UserError`, or an
    OS error the user must fix (:func:`segzero_plus.errors.environment_error`), becomes one
    ``error: <message>`` line on stderr and exit status 2; any other exception propagates."""
    try:
        return int(body() or 0)
    except UserError as exc:
        return _report(exc)
    except OSError as exc:
        user = environment_error(exc)
        if user is None:
            raise
        return _report(user)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    parser = build_parser(only=chosen if chosen else "__none__")

    def body() -> int:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)

    return run_reporting_errors(body)


def _report(exc: UserError) -> int:
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
