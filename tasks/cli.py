"""The shared entry point of every `python -m tasks.<step>`: load params, run, report errors.

A `StepError` (bad input, bad params, a failed check) prints one clear message and exits 1
without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable


class StepError(Exception):
    """An expected failure: the message names the file or key and the fix."""


def main(step: str, run: Callable) -> None:
    from tasks import config

    try:
        run(config.load())
    except StepError as err:
        print(f"{step}: error: {err}", file=sys.stderr)
        sys.exit(1)
