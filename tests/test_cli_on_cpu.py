"""The console entry point's error convention: a UserError is one `error:` line and exit 2."""

from __future__ import annotations

import sys
import types

from segzero_plus import cli
from segzero_plus.errors import UserError


def _fake_subcommand(monkeypatch, func) -> None:
    module = types.ModuleType("segzero_plus_fake_subcommand")

    def register(subparsers) -> None:
        subparsers.add_parser("fake").set_defaults(func=func)

    module.register = register
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", module.__name__)


def test_user_error_prints_one_line_and_exits_2(monkeypatch, capsys):
    def fail(args):
        raise UserError("rows.parquet row 3: bbox has NaN; fix or drop the row")

    _fake_subcommand(monkeypatch, fail)
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err == "error: rows.parquet row 3: bbox has NaN; fix or drop the row\n"


def test_other_exceptions_are_not_swallowed(monkeypatch):
    def crash(args):
        raise RuntimeError("a bug")

    _fake_subcommand(monkeypatch, crash)
    try:
        cli.main(["fake"])
    except RuntimeError as exc:
        assert str(exc) == "a bug"
    else:
        raise AssertionError("a programming error must not become a user error")
