"""Run DVC from the project's own environment and classify a stage's failure (no Prefect, no ML): the one runner
of `dvc repro` for the Prefect flows (flows/stages.py) and for the commands that run a site's stages.

The `dvc` run is the one beside this interpreter (`dvc_env` puts its bin/ first on PATH, and subprocess looks a
bare name up on the PATH it is given), so a console script run by its path, with its environment not on PATH
(cron, systemd, a CI step), still finds its own dvc, and dvc its own `python`.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from tasks.core.errors import EXIT_REJECTED
from tasks.core.native import NOTICES


class StageFailed(RuntimeError):
    """A stage failed in a way a retry may fix (network, tracking server, crash)."""


class StageRejected(RuntimeError):
    """A stage refused its input or parameters (exit 2): retrying cannot help."""


class StageTimedOut(RuntimeError):
    """A stage ran past its time limit and was killed: a retry would hold the workspace as long again."""


def dvc_env() -> dict:
    """The environment for dvc: this interpreter's bin/ first, so `python -m tasks.x` finds the project."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}


# DVC's advice after each stage (git add the lock file, autostage, push), repeated 6 lines a stage, and native
# start-up notices; the flow pushes and records the run itself. A progress bar's redraws (tqdm's "desc: 40%|")
# arrive as lines too. Everything else a stage prints is relayed.
CHATTER = ("Updating lock file", "Generating lock file", "To track the changes with git", "git add ",
           "To enable auto staging", "dvc config core.autostage", "Use `dvc push` to send", *NOTICES)

PROGRESS = re.compile(r"[\w.-]+:\s+\d+%\|")
DVC_WRAPPER = "ERROR: "  # DVC's own lines around a stage's failure ("ERROR: failed to reproduce ...")
STAGE_ERROR = re.compile(r"^[\w .-]+: error: ")  # tasks.cli.guard's one line: `<step>: error: <why>`


def relayed(line: str) -> bool:
    """Whether a line of a stage's output is worth the user's eyes as it comes (not empty, not DVC's advice, a
    notice or DVC's wrapper around a failure; a stage's `error:` line ends the run as its exception instead)."""
    line = line.strip()
    return (bool(line) and not line.startswith(CHATTER) and not line.startswith(DVC_WRAPPER)
            and not PROGRESS.match(line) and not STAGE_ERROR.search(line))


def run_stage(stage: str, log: Callable[[str], None] = print, root: Path = Path("."),
              timeout: float | None = None, env: dict[str, str] | None = None,
              args: tuple[str, ...] = ("--single-item",)) -> str:
    """`dvc repro <args> <stage>` (a stage name, or a dvc.yaml's path with `args=()`: all its stages): runs
    what changed; returns its output. A stage that refused its input (exit 2) raises StageRejected with the
    stage's own error lines (not DVC's wrapper line), any other failure StageFailed. After `timeout` seconds
    the stage (dvc and every process it started) is killed: StageTimedOut. `env` is added to the stage's
    environment."""
    proc = subprocess.Popen(["dvc", "repro", *args, stage], cwd=root, env={**dvc_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True)  # its own process group, so a kill reaches the step too
    killed = threading.Event()

    def kill():
        killed.set()
        os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, kill) if timeout else None
    if watchdog:
        watchdog.daemon = True
        watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if relayed(line):
                log(line)
        code = proc.wait()
    finally:
        if watchdog:
            watchdog.cancel()
    if killed.is_set():
        raise StageTimedOut(f"stage {stage} ran longer than {timeout / 60:.3g} minutes and was killed "
                            "(orchestration.stage_timeout_minutes in params.yaml): find what hung, or raise the limit")
    output = "\n".join(lines)
    if code:
        errors = [line for line in lines if STAGE_ERROR.search(line)] or [
            line for line in lines if "error:" in line.lower() and not line.startswith(DVC_WRAPPER)]
        if re.search(rf"exited with {EXIT_REJECTED}\b", output):
            raise StageRejected("\n".join(errors[-5:]) or output[-2000:])
        message = f"stage {stage} failed: " + ("\n".join(errors[-5:]) or output[-2000:])
        raise StageFailed(message)
    return output
