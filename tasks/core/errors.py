"""The expected failures every module may raise, and the exit code they end a command with (the bottom floor:
this module imports nothing of the project).

A `StepError` is bad input, bad params or a failed check: the command prints its one-line message (what was
wrong, which file, row or key, and the fix) and exits with `EXIT_REJECTED`, because retrying cannot help.
"""
from __future__ import annotations

EXIT_REJECTED = 2


class StepError(Exception):
    """An expected failure: the message names the file or key and the fix. `exit_code` 1 marks one a later
    retry can mend (a server that is down), which a Prefect flow retries."""

    exit_code = EXIT_REJECTED


class BadImage(ValueError):
    """The bytes are not a usable image; str(err) says why in a few words."""
