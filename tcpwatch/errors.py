"""The one exception type that reaches the user: a problem and its fix, printed as one line on
stderr with exit code 2 (never a traceback)."""

from __future__ import annotations

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input or environment: the message names the problem and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
