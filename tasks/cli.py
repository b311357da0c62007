"""The shared entry point of every `python -m tasks.<step>`: load params, run, record, report errors.

A step computes and writes its files; then tasks.recorders records the result in MLflow (the one edge
that logs runs), so a step's `run(params)` can be called, and tested, without a tracking store.

Steps report through `logging` (configured once, here). A `StepError` (bad input, bad params, a failed
check) prints one clear message and exits with `EXIT_REJECTED` (2) without a traceback: retrying
cannot help. Anything else (a bug, a network or tracking-server failure) keeps its traceback and
exits 1, which the Prefect flow treats as worth a retry.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from tasks.core.errors import EXIT_REJECTED, StepError
from tasks.core.files import out_of_space, written

T = TypeVar("T")


def execute(step: str, p, run: Callable | None = None):
    """Run `tasks.<step>.run(p)` (or `run`), then record its result through tasks.recorders; returns it."""
    from tasks.recorders import stages as recorders

    run = run or importlib.import_module(f"tasks.{step}").run
    result = run(p)
    recorders.record(step, p, result)
    return result


def usage(step: str, run: Callable, argv: list[str]) -> None:
    """`python -m tasks.<step> --help` prints the step's docstring and exits; the stage takes no arguments
    (its inputs are params.yaml and the files dvc.yaml declares), so any other argument is an error."""
    import argparse

    doc = sys.modules[run.__module__].__doc__ or ""
    ap = argparse.ArgumentParser(prog=f"python -m tasks.{step}", description=doc,
                                 epilog="Reads params.yaml in the current folder; DVC runs it as the stage "
                                        f"`{step}` (dvc repro {step}).",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)


def parser(prog: str, description: str, **kwargs):
    """argparse for the console scripts, its refusals one line (`prog: error: ... (see prog --help)`, exit 2):
    argparse's own print the usage above the error."""
    import argparse

    class OneLine(argparse.ArgumentParser):
        def error(self, message):
            self.exit(EXIT_REJECTED, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return OneLine(prog=prog, description=description, **kwargs)


def count(text: str) -> int:
    """A flag's whole number, 0 or more (0 means none); argparse names the flag when it refuses one."""
    return _whole(text, 0)


def positive(text: str) -> int:
    """A flag's whole number, 1 or more."""
    return _whole(text, 1)


def _whole(text: str, low: int) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {low} or more")
    return value


def configure_logging() -> None:
    """The one logging set-up of a step's process: the steps' `logging` records to stdout as plain lines (each
    already names its step), which DVC shows and the Prefect flow relays to its own log."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    for noisy in ("mlflow", "alembic", "urllib3", "git", "matplotlib", "PIL", "absl", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes of scoring films in a loop
    if not os.environ.get("PNEUMONIA_DEBUG"):  # MLflow logs a store fault with its SQL and traceback, then raises:
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)  # the raise is ours to report


def main(step: str, run: Callable, argv: list[str] | None = None) -> None:
    from tasks.core import config

    usage(step, run, sys.argv[1:] if argv is None else argv)
    configure_logging()
    guard(step, lambda: execute(step, config.load(), run))


def guard(label: str, work: Callable[[], T]) -> T:
    """The one runner of every command (stages, console scripts, the site's stages): `work()`, with the expected
    failures each ended in one line on stderr, `<label>: error: ...`: a StepError (bad input, params or a failed
    check) exits with its `exit_code` (2; 1 when a retry can mend it: a server down), a full disk with
    `EXIT_REJECTED` (2), the tracking store's known faults with their own code (a locked store 1: a retry). Anything
    else keeps its traceback (a bug; exit 1). PNEUMONIA_DEBUG=1 keeps the traceback of the known faults too."""
    quiet_short_writes()
    quiet_dicom_libraries()
    try:
        return work()
    except StepError as err:
        print(f"{label}: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except Exception as err:
        if not out_of_space(err) or os.environ.get("PNEUMONIA_DEBUG"):
            fail_known(label, err)
            raise
        # outputs are written atomically (tasks.core.files.atomic): the last good ones are still there
        print(f"{label}: error: no space left on the device writing {written(err) or 'its outputs'}: free some "
              "space and rerun; nothing half-written was kept", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # not sys.exit: tearing down a library's half-written handles (HDF5's) prints their errors and can crash
        os._exit(EXIT_REJECTED)


def quiet_dicom_libraries() -> None:
    """DICOM libraries log and warn with UIDs and header values ("retrieve instance <UID>", "invalid value
    '<date>' for VR DA"): patient data, which no output may hold. Every command runs with them silenced; what
    fails is reported by the command's own line."""
    import logging
    import warnings

    for library in ("dicomweb_client", "highdicom", "pydicom"):
        logging.getLogger(library).setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", module=library)


def quiet_short_writes() -> None:
    """A library that fails to write leaves handles whose teardown reports the same failure again, as "Exception
    ignored in ..." tracebacks (HDF5's, around Keras' weights files): the one full-disk line says it once."""
    if os.environ.get("PNEUMONIA_DEBUG") or getattr(sys.unraisablehook, "quiet", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if unraisable.exc_value is None or not out_of_space(unraisable.exc_value):
            previous(unraisable)

    hook.quiet = True
    sys.unraisablehook = hook


# faults of the tracking store a user meets: (what the error says, the line, the exit code: 1 is retried by the flow)
KNOWN_FAULTS = (("database is locked", "the MLflow store is locked by another process (a UI, a second run): "
                 "let it finish or stop it, then rerun; the step repeats its work", 1),
                ("readonly database", "the MLflow store is read-only: make it writable (or point "
                 "MLFLOW_TRACKING_URI at a writable store) and rerun", EXIT_REJECTED))


def fail_known(step: str, err: Exception) -> None:
    """A known fault ends the command in one line (its traceback only with PNEUMONIA_DEBUG=1); else return."""
    text = str(err)
    for needle, line, code in KNOWN_FAULTS:
        if needle in text and not os.environ.get("PNEUMONIA_DEBUG"):
            print(f"{step}: error: {line} ({needle})", file=sys.stderr)
            sys.exit(code)
