"""The one error a command-line user is meant to read: :class:`UserError`."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a bad file, row, key or option; a missing checkpoint; an existing output).

    The message is ONE line saying what is wrong, which file/row/key, and what to do about it.
    ``segzero-plus`` prints it as ``error: <message>`` on stderr and exits with status 2, without a
    traceback. Library callers catch it like any exception.
    """
