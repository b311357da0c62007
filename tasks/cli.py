"""The shared entry point of every `python -m tasks.<step>`: load params, run, report errors.

A `StepError` (bad input, bad params, a failed check) prints one clear message and exits
with `EXIT_REJECTED` (2) without a traceback: retrying cannot help. Anything else (a bug,
a network or tracking-server failure) keeps its traceback and exits 1, which the Prefect
flow treats as worth a retry.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_REJECTED = 2


class StepError(Exception):
    """An expected failure: the message names the file or key and the fix."""


def main(step: str, run: Callable) -> None:
    from tasks import config

    try:
        run(config.load())
    except StepError as err:
        print(f"{step}: error: {err}", file=sys.stderr)
        sys.exit(EXIT_REJECTED)
