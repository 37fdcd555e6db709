"""Prompt templates: the text the policy model sees, as named data.

Two templates exist:

- ``ORIGINAL`` ("original"): Seg-Zero's system message and user prompt, byte-exact (including its
  missing spaces between sentences and the single-quoted, non-JSON example answer), so that released
  Seg-Zero checkpoints see exactly what they were trained on. It asks for ``bbox``, ``points_1`` and
  ``points_2``.
- ``NEGATIVE_POINT`` ("negative_point"): asks for ``bbox``, ``points_pos`` (two points on the target)
  and ``points_neg`` (0-3 points on look-alike background that must be excluded), with a valid JSON
  example; an empty ``points_neg`` is stated to be the right answer when nothing confusable is near.

Coordinates in answers are pixels of the image the model sees (the MODEL frame, 840x840 in the recipe).
The configuration picks a template by name through :func:`get_template`.
"""

from __future__ import annotations

from dataclasses import dataclass

from segzero_plus.errors import UserError

QUESTION_PLACEHOLDER = "{Question}"
"""The placeholder in :attr:`PromptTemplate.user` that the normalised query replaces."""


def normalise_query(query: str) -> str:
    """Seg-Zero's query normalisation: ``query.lower().strip(".")`` (only dots are stripped)."""
    return query.lower().strip(".")


class UnknownTemplateError(UserError, ValueError):
    """A template name that :data:`TEMPLATES` does not hold."""


@dataclass(frozen=True)
class PromptTemplate:
    """A named prompt: system message and user text with a ``{Question}`` placeholder.

    ``user`` is substituted with :meth:`str.replace` (not :meth:`str.format`), so braces in the example
    answer and in queries need no escaping.
    """

    name: str
    system: str
    user: str

    def user_text(self, query: str) -> str:
        """The user turn's text for ``query`` (normalised with :func:`normalise_query`)."""
        return self.user.replace(QUESTION_PLACEHOLDER, normalise_query(query))

    def messages(self, query: str) -> list[dict]:
        """verl chat messages: system turn, then ``"<image>"`` followed by the user text."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": "<image>" + self.user_text(query)},
        ]


_SEG_ZERO_SYSTEM = "You are a helpful assistant."

# Seg-Zero's sentences are concatenated with NO separating spaces; keep it that way (byte-exact).
_SEG_ZERO_USER = (
    "Please find '{Question}' with bbox and points."
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object "
    "in JSON format."
    "i.e., <think> thinking process here </think>"
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>"
)

_NEGATIVE_POINT_USER = (
    "Please find '{Question}' with bbox, positive points and negative points. "
    "Compare the difference between objects and find the most closely matched one. "
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags. "
    "In the answer, output JSON with three keys: "
    '"bbox": the one bbox [x1, y1, x2, y2] of the interested object; '
    '"points_pos": two positive points [[x, y], [x, y]], the centres of the two largest inscribed '
    "circles inside the interested object; "
    '"points_neg": 0 to 3 negative points [[x, y], ...] on background that looks like the interested '
    "object but must be excluded from it (a similar object or region next to it). "
    'If nothing confusable is near the object, output an empty list: "points_neg": []. '
    "i.e., <think> thinking process here </think>"
    '<answer>{"bbox": [10,100,200,210], "points_pos": [[30,110],[35,180]], "points_neg": [[250,150]]}'
    "</answer>"
)

ORIGINAL = PromptTemplate(name="original", system=_SEG_ZERO_SYSTEM, user=_SEG_ZERO_USER)
"""Seg-Zero's prompt, byte-exact; answer keys ``bbox``, ``points_1``, ``points_2``."""

NEGATIVE_POINT = PromptTemplate(name="negative_point", system=_SEG_ZERO_SYSTEM, user=_NEGATIVE_POINT_USER)
"""Seg-Zero++ prompt; answer keys ``bbox``, ``points_pos`` (2 points), ``points_neg`` (0-3 points)."""

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (ORIGINAL, NEGATIVE_POINT)}

ANSWER_KEYS: dict[str, frozenset[str]] = {
    "original": frozenset({"bbox", "points_1", "points_2"}),
    "negative_point": frozenset({"bbox", "points_pos", "points_neg"}),
}
"""The exact key set of a strict answer for each template name (see ``segzero_plus.parsing``)."""


def get_template(name: str) -> PromptTemplate:
    """The template called ``name``; raises :class:`UnknownTemplateError` (a ``ValueError``) naming the valid names otherwise."""
    try:
        return TEMPLATES[name]
    except (KeyError, TypeError):
        raise UnknownTemplateError(
            f"unknown prompt template {name!r}; valid names: {sorted(TEMPLATES)}"
        ) from None
