"""Parse a policy response into an :class:`Answer` (box, positive and negative points), never raising.

:func:`parse_answer` is total: for any input it returns an :class:`Answer` and never raises, and it runs
in time linear in the input (plain ``str.find`` scans, ``json.loads``, and a small depth-limited parser
whose token patterns cannot backtrack catastrophically). Coordinates are returned as given, in the
frame the model saw (the MODEL frame); nothing is clamped or rescaled here (see
``segzero_plus.geometry``).

What is read:

- ``think``: the text between the first ``<think>`` and the next ``</think>``.
- the answer: the first ``<answer>...</answer>`` block after the first ``</think>`` (so a brace block or
  a mention of the tags inside the reasoning is never taken for the answer). An unterminated block runs
  to the end of the text.
- inside it: strict JSON, or, leniently, Python-literal style (single quotes, ``True``/``None``, tuples),
  trailing commas, code fences, unquoted keys, text around the object. Numbers may be ints, floats or
  numeric strings. A list of objects (VisionReasoner style) uses its first object.
- keys: ``bbox`` or ``bbox_2d``; positives from ``points_pos`` (list of ``[x, y]``), or the old
  ``points_1`` + ``points_2``, or ``point_2d`` (one point); negatives from ``points_neg``.

What is rejected (recorded in :attr:`Answer.errors`, never replaced by invented values): NaN, infinities,
booleans, non-numeric strings, numbers beyond :data:`MAX_ABS_COORD`, wrong arity. A box with one bad
coordinate is dropped; a bad point is dropped from its list. Box corners given in the wrong order are
swapped (and recorded).

:attr:`Answer.strict` is the syntactic strict format: the answer block is exactly one JSON object
(``json.loads`` succeeds, no duplicate keys) whose keys are exactly one template's answer keys
(``segzero_plus.prompts.ANSWER_KEYS``), with two positive points, valid numbers and ordered corners, and
nothing else was wrong. Frame bounds and the negative-point budget depend on the image and config and
are checked by ``segzero_plus.rewards.format.seg_format_strict``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from segzero_plus.prompts import ANSWER_KEYS

MAX_ABS_COORD = 1e6
"""Largest accepted absolute coordinate value (pixels); anything beyond is rejected, not clamped."""
MAX_NUMBER_CHARS = 64
"""Longest accepted number literal; longer digit runs are rejected (keeps conversion cheap)."""
MAX_DEPTH = 16
"""Deepest accepted nesting of lists/objects in the lenient parser (an answer needs 3)."""
MAX_ERRORS = 24
"""At most this many reasons are kept in :attr:`Answer.errors` (the last one says more were dropped)."""

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"

Point = tuple[float, float]


@dataclass(frozen=True)
class Answer:
    """A parsed response. Coordinates are pixels of the MODEL frame; points are ``(x, y)``.

    ``errors`` lists every way the answer deviated from the strict format (empty iff :attr:`strict`);
    ``schema`` is the template name whose answer keys the object has exactly (``"original"`` or
    ``"negative_point"``), else None.
    """

    think: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    points_pos: list[Point] = field(default_factory=list)
    points_neg: list[Point] = field(default_factory=list)
    errors: tuple[str, ...] = ()
    schema: str | None = None

    @property
    def strict(self) -> bool:
        """True iff the answer meets the strict syntactic format (see module docstring)."""
        return self.schema is not None and not self.errors

    @property
    def ok(self) -> bool:
        """True iff a box and at least one positive point were parsed (the soft format)."""
        return self.bbox is not None and len(self.points_pos) >= 1


class _Errors:
    """An append-only list of reasons, capped at :data:`MAX_ERRORS`."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.dropped = 0

    def add(self, reason: str) -> None:
        if len(self.items) < MAX_ERRORS - 1:
            self.items.append(reason)
        else:
            self.dropped += 1

    def as_tuple(self) -> tuple[str, ...]:
        if self.dropped:
            return (*self.items, f"... and {self.dropped} more problems")
        return tuple(self.items)


# ---------------------------------------------------------------------------------------------------
# A small lenient parser for JSON / Python-literal answers. Every token pattern is unambiguous (no
# nested quantifiers that can match the same text two ways), so matching is linear; nesting is capped.
# ---------------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_TOKEN = re.compile(
    r"""
    [ \t\r\n\f\v]*
    (?:
        (?P<punct>[{}\[\]():,])
      | (?P<dq>"[^"\\]*(?:\\.[^"\\]*)*")
      | (?P<sq>'[^'\\]*(?:\\.[^'\\]*)*')
      | (?P<num>"""
    + _NUMBER
    + r""")
      | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMERIC_STRING = re.compile(r"[ \t]*" + _NUMBER + r"[ \t]*")
_WORDS: dict[str, Any] = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "null": None,
    "None": None,
    "NaN": math.nan,
    "nan": math.nan,
    "Infinity": math.inf,
    "inf": math.inf,
}
_CLOSERS = {"[": "]", "(": ")"}


class _ParseError(Exception):
    pass


class _BadValue:
    """A value the lenient parser read but that cannot be a coordinate (bare word, overlong number)."""

    def __init__(self, why: str) -> None:
        self.why = why


@dataclass
class _Notes:
    trailing_comma: bool = False
    duplicate_keys: bool = False


def _next_token(text: str, pos: int) -> tuple[str, str, int]:
    """(kind, token text, end position) of the token at ``pos`` (after whitespace)."""
    m = _TOKEN.match(text, pos)
    if m is None:
        raise _ParseError(f"unexpected character at offset {pos}")
    kind = m.lastgroup or ""
    return kind, m.group(kind), m.end()


def _unquote(token: str) -> str:
    if token[0] == '"':
        try:
            return json.loads(token)
        except ValueError:
            return token[1:-1]
    inner = token[1:-1]
    return inner.replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\") if "\\" in inner else inner


def _number_token(token: str) -> Any:
    if len(token) > MAX_NUMBER_CHARS:
        return _BadValue("number literal too long")
    if any(c in token for c in ".eE"):
        return float(token)
    return int(token)


def _parse_value(text: str, pos: int, depth: int, notes: _Notes) -> tuple[Any, int]:
    kind, tok, pos = _next_token(text, pos)
    if kind == "punct":
        if tok == "{":
            return _parse_object(text, pos, depth + 1, notes)
        if tok in _CLOSERS:
            return _parse_list(text, pos, _CLOSERS[tok], depth + 1, notes)
        raise _ParseError(f"unexpected {tok!r}")
    if kind in ("dq", "sq"):
        return _unquote(tok), pos
    if kind == "num":
        return _number_token(tok), pos
    if tok in _WORDS:
        return _WORDS[tok], pos
    return _BadValue(f"bare word {tok[:20]!r}"), pos


def _parse_list(text: str, pos: int, closer: str, depth: int, notes: _Notes) -> tuple[list, int]:
    if depth > MAX_DEPTH:
        raise _ParseError("nesting too deep")
    items: list[Any] = []
    while True:
        kind, tok, end = _next_token(text, pos)
        if kind == "punct" and tok == closer:
            return items, end
        value, pos = _parse_value(text, pos, depth, notes)
        items.append(value)
        kind, tok, pos = _next_token(text, pos)
        if kind == "punct" and tok == closer:
            return items, pos
        if not (kind == "punct" and tok == ","):
            raise _ParseError(f"expected ',' or {closer!r} in a list")
        kind, tok, end = _next_token(text, pos)
        if kind == "punct" and tok == closer:
            notes.trailing_comma = True
            return items, end


def _parse_object(text: str, pos: int, depth: int, notes: _Notes) -> tuple[dict, int]:
    if depth > MAX_DEPTH:
        raise _ParseError("nesting too deep")
    obj: dict[str, Any] = {}
    while True:
        kind, tok, pos = _next_token(text, pos)
        if kind == "punct" and tok == "}":
            return obj, pos
        if kind in ("dq", "sq"):
            key = _unquote(tok)
        elif kind in ("word", "num"):
            key = tok
        else:
            raise _ParseError("expected a key in an object")
        kind, tok, pos = _next_token(text, pos)
        if not (kind == "punct" and tok == ":"):
            raise _ParseError("expected ':' after a key")
        value, pos = _parse_value(text, pos, depth, notes)
        if key in obj:
            notes.duplicate_keys = True
        obj[key] = value
        kind, tok, pos = _next_token(text, pos)
        if kind == "punct" and tok == "}":
            return obj, pos
        if not (kind == "punct" and tok == ","):
            raise _ParseError("expected ',' or '}' in an object")
        kind, tok, end = _next_token(text, pos)
        if kind == "punct" and tok == "}":
            notes.trailing_comma = True
            return obj, end


# ---------------------------------------------------------------------------------------------------
# Locating and reading the answer block
# ---------------------------------------------------------------------------------------------------


def _think_text(text: str) -> str | None:
    start = text.find(_THINK_OPEN)
    if start < 0:
        return None
    end = text.find(_THINK_CLOSE, start + len(_THINK_OPEN))
    if end < 0:
        return None
    return text[start + len(_THINK_OPEN) : end].strip()


def _answer_block(text: str, errors: _Errors) -> str | None:
    close = text.find(_THINK_CLOSE)
    start = close + len(_THINK_CLOSE) if close >= 0 else 0
    begin = text.find(_ANSWER_OPEN, start)
    if begin < 0:
        errors.add("no <answer> block" + (" after </think>" if close >= 0 else ""))
        return None
    begin += len(_ANSWER_OPEN)
    end = text.find(_ANSWER_CLOSE, begin)
    if end < 0:
        errors.add("unterminated <answer> block")
        return text[begin:]
    if text.find(_ANSWER_OPEN, end + len(_ANSWER_CLOSE)) >= 0:
        errors.add("several <answer> blocks; used the first")
    return text[begin:end]


def _strip_fence(block: str) -> tuple[str, bool]:
    body = block.strip()
    if not body.startswith("```"):
        return body, False
    newline = body.find("\n")
    body = body[newline + 1 :] if newline >= 0 else body[3:]
    closing = body.rfind("```")
    if closing >= 0:
        body = body[:closing]
    return body.strip(), True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _strict_json(payload: str, notes: _Notes) -> Any:
    """``json.loads`` (standard JSON only); raises on anything else."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            notes.duplicate_keys = True
        return obj

    return json.loads(
        payload,
        object_pairs_hook=pairs,
        parse_constant=_reject_constant,
        parse_float=_number_token,
        parse_int=_number_token,
    )


def _lenient(payload: str, notes: _Notes, errors: _Errors) -> Any:
    """Parse the first object/list in ``payload`` leniently; None (with a reason) if there is none."""
    starts = [i for i in (payload.find("{"), payload.find("[")) if i >= 0]
    if not starts:
        errors.add("no JSON object in the answer block")
        return None
    start = min(starts)
    try:
        value, end = _parse_value(payload, start, 0, notes)
    except _ParseError as exc:
        errors.add(f"answer block does not parse: {exc}")
        return None
    except (ValueError, OverflowError, RecursionError, MemoryError):
        errors.add("answer block does not parse")
        return None
    if payload[:start].strip():
        errors.add("text before the answer object")
    if payload[end:].strip():
        errors.add("text after the answer object")
    return value


# ---------------------------------------------------------------------------------------------------
# Reading coordinates
# ---------------------------------------------------------------------------------------------------


def _coordinate(value: Any, what: str, errors: _Errors) -> float | None:
    if isinstance(value, bool):
        errors.add(f"{what}: boolean instead of a number")
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            errors.add(f"{what}: number out of range")
            return None
    elif isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS or _NUMERIC_STRING.fullmatch(value) is None:
            errors.add(f"{what}: non-numeric string")
            return None
        number = float(value)
        errors.add(f"{what}: number given as a string")
    elif isinstance(value, _BadValue):
        errors.add(f"{what}: {value.why}")
        return None
    else:
        errors.add(f"{what}: not a number")
        return None
    if not math.isfinite(number):
        errors.add(f"{what}: NaN or infinity")
        return None
    if abs(number) > MAX_ABS_COORD:
        errors.add(f"{what}: |value| > {MAX_ABS_COORD:g}")
        return None
    return number


def _point(value: Any, what: str, errors: _Errors) -> Point | None:
    if not isinstance(value, list) or len(value) != 2:
        errors.add(f"{what}: expected [x, y]")
        return None
    x = _coordinate(value[0], f"{what}.x", errors)
    y = _coordinate(value[1], f"{what}.y", errors)
    return None if x is None or y is None else (x, y)


def _point_list(value: Any, what: str, errors: _Errors) -> list[Point]:
    if not isinstance(value, list):
        errors.add(f"{what}: expected a list of [x, y]")
        return []
    if len(value) == 2 and not any(isinstance(v, list | dict) for v in value):
        errors.add(f"{what}: one [x, y] instead of a list of points")
        point = _point(value, what, errors)
        return [point] if point is not None else []
    points = []
    for i, item in enumerate(value):
        point = _point(item, f"{what}[{i}]", errors)
        if point is not None:
            points.append(point)
    return points


def _box(value: Any, what: str, errors: _Errors) -> tuple[float, float, float, float] | None:
    if not isinstance(value, list) or len(value) != 4:
        errors.add(f"{what}: expected [x1, y1, x2, y2]")
        return None
    coords = [_coordinate(v, f"{what}[{i}]", errors) for i, v in enumerate(value)]
    if any(c is None for c in coords):
        return None
    x1, y1, x2, y2 = (float(c) for c in coords)  # type: ignore[arg-type]
    if x1 > x2 or y1 > y2:
        errors.add(f"{what}: corners out of order (swapped)")
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
    return (x1, y1, x2, y2)


def _read_object(obj: dict[str, Any], errors: _Errors) -> tuple[Any, list[Point], list[Point], str | None]:
    keys = frozenset(obj)
    schema = next((name for name, wanted in ANSWER_KEYS.items() if keys == wanted), None)
    if schema is None:
        shown = ", ".join(sorted(repr(k)[:30] for k in list(obj)[:8]))
        errors.add(f"keys {{{shown}}} are not a template's answer keys")

    bbox = None
    if "bbox" in obj:
        if "bbox_2d" in obj:
            errors.add("both bbox and bbox_2d; used bbox")
        bbox = _box(obj["bbox"], "bbox", errors)
    elif "bbox_2d" in obj:
        bbox = _box(obj["bbox_2d"], "bbox_2d", errors)
    else:
        errors.add("no bbox")

    points_pos: list[Point] = []
    if "points_pos" in obj:
        points_pos = _point_list(obj["points_pos"], "points_pos", errors)
        if len(points_pos) != 2:
            errors.add(f"points_pos: {len(points_pos)} valid points, expected 2")
    elif "points_1" in obj or "points_2" in obj:
        for key in ("points_1", "points_2"):
            if key not in obj:
                errors.add(f"no {key}")
                continue
            point = _point(obj[key], key, errors)
            if point is not None:
                points_pos.append(point)
    elif "point_2d" in obj:
        point = _point(obj["point_2d"], "point_2d", errors)
        points_pos = [point] if point is not None else []
    else:
        errors.add("no positive points")

    points_neg: list[Point] = []
    if "points_neg" in obj:
        points_neg = _point_list(obj["points_neg"], "points_neg", errors)
    return bbox, points_pos, points_neg, schema


def parse_answer(text: str) -> Answer:
    """Parse a full response (``<think>...</think><answer>...</answer>``) into an :class:`Answer`.

    Total and linear-time: never raises, whatever ``text`` is (a non-string gives an empty Answer with
    a reason). See the module docstring for what is accepted and what is rejected.
    """
    errors = _Errors()
    if not isinstance(text, str):
        return Answer(errors=("response is not a string",))
    think = _think_text(text)
    block = _answer_block(text, errors)
    if block is None:
        return Answer(think=think, errors=errors.as_tuple())

    payload, fenced = _strip_fence(block)
    if fenced:
        errors.add("code fence in the answer block")
    notes = _Notes()
    try:
        value = _strict_json(payload, notes)
    except (ValueError, RecursionError, MemoryError, OverflowError):
        errors.add("answer block is not strict JSON")
        notes = _Notes()
        value = _lenient(payload, notes, errors)
    if notes.trailing_comma:
        errors.add("trailing comma")
    if notes.duplicate_keys:
        errors.add("duplicate keys (the last one is used)")

    if isinstance(value, list):
        first = value[0] if value else None
        if not isinstance(first, dict):
            errors.add("answer is a list without an object first")
            return Answer(think=think, errors=errors.as_tuple())
        errors.add("answer is a list of objects; used the first")
        value = first
    if not isinstance(value, dict):
        if value is not None:
            errors.add("answer is not a JSON object")
        return Answer(think=think, errors=errors.as_tuple())

    bbox, points_pos, points_neg, schema = _read_object(value, errors)
    return Answer(
        think=think,
        bbox=bbox,
        points_pos=points_pos,
        points_neg=points_neg,
        errors=errors.as_tuple(),
        schema=schema,
    )
