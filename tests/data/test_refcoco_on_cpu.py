"""The refer ``refs(...).p`` reader runs no code: crafted payloads are refused unread, real-format files
(Python 2 protocols 0 and 2, Python 3 protocol 2) load."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import pytest

from segzero_plus.data.refcoco import UnsafePickleError, load_refs_pickle
from segzero_plus.errors import UserError

REFS = [
    {
        "ref_id": 0,
        "ann_id": 1719310,
        "image_id": 581857,
        "category_id": 1,
        "split": "train",
        "file_name": "COCO_train2014_000000581857_16.jpg",
        "sent_ids": [0, 1],
        "sentences": [
            {
                "sent_id": 0,
                "sent": "the lady with the blue shirt",
                "raw": "THE LADY",
                "tokens": ["the", "lady"],
            },
            {"sent_id": 1, "sent": "caf\xe9 chair on the left", "raw": "Caf\xe9 chair", "tokens": []},
        ],
    },
    {"ref_id": 70000, "ann_id": 2**40, "image_id": 1, "category_id": 90, "split": "test", "sentences": []},
]
"""Two refs in the released layout: Python 2 ints and longs, ASCII and latin-1 byte strings."""


def _py2_protocol0(obj) -> bytes:
    """``obj`` as Python 2's pickler writes it with protocol 0 (the default of ``pickle.dump``): str as
    ``S'...'`` byte strings, ints as ``I``, longs as ``L...L``, lists ``(l ... a``, dicts ``(d ... s``."""
    if isinstance(obj, dict):
        return b"(d" + b"".join(_py2_protocol0(k) + _py2_protocol0(v) + b"s" for k, v in obj.items())
    if isinstance(obj, list):
        return b"(l" + b"".join(_py2_protocol0(v) + b"a" for v in obj)
    if isinstance(obj, str):
        raw = obj.encode("latin1")
        return (
            b"S'"
            + "".join(chr(c) if 32 <= c < 127 and c != 39 else f"\\x{c:02x}" for c in raw).encode()
            + b"'\n"
        )
    if isinstance(obj, int):
        return (b"I%d\n" % obj) if abs(obj) < 2**31 else (b"L%dL\n" % obj)
    raise TypeError(type(obj))


def _py2_protocol2(obj) -> bytes:
    """``obj`` as Python 2's pickler writes it with protocol 2 (``cPickle.HIGHEST_PROTOCOL``): str as
    SHORT_BINSTRING/BINSTRING, small ints BININT1/BININT, longs LONG1, MARK + APPENDS / SETITEMS."""
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2_protocol2(k) + _py2_protocol2(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(_py2_protocol2(v) for v in obj) + b"e"
    if isinstance(obj, str):
        raw = obj.encode("latin1")
        return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw
    if isinstance(obj, int):
        if 0 <= obj < 256:
            return b"K" + bytes([obj])
        if abs(obj) < 2**31:
            return b"J" + struct.pack("<i", obj)
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw
    raise TypeError(type(obj))


@pytest.mark.parametrize(
    "data",
    [
        pickle.dumps(REFS, protocol=2),  # what our miniature writer and Python 3 copies hold
        b"\x80\x02" + _py2_protocol2(REFS) + b".",
        _py2_protocol0(REFS) + b".",
    ],
    ids=["py3-protocol2", "py2-protocol2", "py2-protocol0"],
)
def test_real_format_refs_load(tmp_path, data):
    path = tmp_path / "refs(umd).p"
    path.write_bytes(data)
    assert load_refs_pickle(path) == REFS


class _RunsCode:
    """Pickles as a call of ``os.system`` (what a malicious refs file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _payloads(marker: Path) -> dict[str, bytes]:
    command = f"touch {marker}"
    return {
        "reduce-protocol2": pickle.dumps([{"ref_id": 0}, _RunsCode(command)], protocol=2),
        "reduce-protocol5": pickle.dumps({"refs": _RunsCode(command)}, protocol=5),
        "global-protocol0": b"cos\nsystem\n(S'" + command.encode() + b"'\ntR.",
        "eval-protocol0": b'c__builtin__\neval\n(S\'__import__("os").system("'
        + command.encode()
        + b"\")'\ntR.",
        # a latin-1 byte string first, so the ASCII try fails and the latin-1 retry meets the payload
        "after-latin1": b"(lS'caf\\xe9'\naco" + b"s\nsystem\n(S'" + command.encode() + b"'\ntRa.",
        "persistent-id": b"(lP0\na.",
    }


@pytest.mark.parametrize("kind", list(_payloads(Path("x"))))
def test_crafted_payload_is_refused_without_running(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(umd).p"
    path.write_bytes(_payloads(marker)[kind])
    with pytest.raises(UnsafePickleError, match="refused unread") as err:
        load_refs_pickle(path)
    assert not marker.exists()
    assert isinstance(err.value, UserError) and str(path) in str(err.value)
    what = "a persistent object" if kind == "persistent-id" else ("eval" if "eval" in kind else "system")
    assert what in str(err.value)
    # the same bytes through plain pickle WOULD run the command (the refusal above is what prevents it)
    if kind == "global-protocol0":
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_a_pickle_of_something_else_is_a_clear_error(tmp_path):
    path = tmp_path / "refs(umd).p"
    path.write_bytes(pickle.dumps({"refs": []}, protocol=2))
    with pytest.raises(UserError, match="not the list of refs"):
        load_refs_pickle(path)
