"""The one error a command-line user is meant to read: :class:`UserError`.

Domain errors that describe user input (a bad file, row, key or option; a missing checkpoint or model
folder; an existing or locked output) subclass it, so ``segzero-plus`` reports every one of them the same
way. Errors of the environment that the user fixes too (a full disk, a read-only folder) are raised by the
operating system as :class:`OSError`; :func:`environment_error` turns them into user errors.
"""

from __future__ import annotations

import errno

ENVIRONMENT_ERRNOS: frozenset[int] = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
"""OS error codes that mean "the user's file system refuses this write/read", not a program bug."""


class UserError(Exception):
    """A problem the user can fix (a bad file, row, key or option; a missing checkpoint; an existing output).

    The message is ONE line saying what is wrong, which file/row/key, and what to do about it.
    ``segzero-plus`` prints it as ``error: <message>`` on stderr and exits with status 2, without a
    traceback. Library callers catch it like any exception.
    """


def environment_error(exc: OSError) -> UserError | None:
    """The :class:`UserError` for an OS error the user must fix (full disk, read-only or forbidden path),
    or None for any other OS error (a bug, to be shown with its traceback)."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = exc.filename or "a file"
    advice = (
        "free some space or write elsewhere"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "check the permissions or choose another path"
    )
    return UserError(f"cannot write or read {where}: {exc.strerror}; {advice} (nothing was replaced)")
