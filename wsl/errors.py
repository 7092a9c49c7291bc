"""The one error type for problems a user can fix.

A :class:`UserError` (a missing input, a bad option, a checkpoint that does not fit, a dataset that is not
where the configuration says) is reported by ``wsl.run`` as one line and exit code 2, never as a
traceback. Library code raises it where the message already says what to do; anything else that escapes
is a bug in wsl and keeps its traceback.
"""

from __future__ import annotations


class UserError(RuntimeError):
    """A problem the user can fix (missing input, bad option): one line, no traceback, exit code 2."""
