"""Run DVC stages as subprocesses and classify their failures (no Prefect, no ML)."""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import yaml

from tasks.errors import EXIT_REJECTED
from tasks.native import NOTICES


class StageFailed(RuntimeError):
    """A stage failed in a way a retry may fix (network, tracking server, crash)."""


class StageRejected(RuntimeError):
    """A stage refused its input or parameters (exit 2): retrying cannot help."""


class StageTimedOut(RuntimeError):
    """A stage ran past its time limit and was killed: a retry would hold the workspace as long again."""


def stage_names(root: Path = Path(".")) -> list[str]:
    """The stages of dvc.yaml in file order: the order the pipeline runs them."""
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


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


def relayed(line: str) -> bool:
    """Whether a line of a stage's output is worth the user's eyes (not empty, not DVC's advice or a notice)."""
    line = line.strip()
    return bool(line) and not line.startswith(CHATTER) and not PROGRESS.match(line)


def run_stage(stage: str, log: Callable[[str], None] = print, root: Path = Path("."),
              timeout: float | None = None, env: dict[str, str] | None = None) -> str:
    """`dvc repro --single-item <stage>`: runs it only if its deps or params changed; returns its output.
    After `timeout` seconds the stage (dvc and every process it started) is killed: StageTimedOut. `env` is
    added to the stage's environment."""
    proc = subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=root, env={**dvc_env(), **(env or {})},
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
        errors = [line for line in lines if "error:" in line.lower()]
        message = f"stage {stage} failed: " + ("\n".join(errors[-5:]) or output[-2000:])
        if re.search(rf"exited with {EXIT_REJECTED}\b", output):
            raise StageRejected(message)
        raise StageFailed(message)
    return output


def _dvc(*args, root: Path = Path("."), check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=root, env=dvc_env(), capture_output=True, text=True, check=check)


def ensure_remote(default: str, root: Path = Path(".")) -> str:
    """The name of the checkout's default DVC remote. When it has none, a local folder `default` (outside the
    checkout; `~` expanded) becomes the default remote `local`, written to .dvc/config.local so nothing
    committed changes: pushing works offline on a fresh machine, and a remote set by the user is kept."""
    current = _dvc("remote", "default", root=root, check=False)
    if current.returncode == 0 and current.stdout.strip():
        return current.stdout.strip()
    folder = Path(default).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    _dvc("remote", "add", "--local", "--force", "--default", "local", str(folder), root=root)
    return "local"


def push(default_remote: str, log: Callable[[str], None] = print, root: Path = Path(".")) -> str:
    """`dvc push` of every output of dvc.yaml (data, model, package) to the default remote, set up first when
    there is none; a failure raises StageFailed (worth a retry: a remote may be briefly unreachable)."""
    remote = ensure_remote(default_remote, root)
    proc = _dvc("push", root=root, check=False)
    if proc.returncode:
        raise StageFailed(f"dvc push to remote `{remote}` failed: {(proc.stderr or proc.stdout)[-2000:]}")
    log(f"dvc push -> remote `{remote}`: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'done'}")
    return remote


def changed(root: Path = Path(".")) -> list[str]:
    """The stages `dvc status` says would rerun (new data, changed code or params); [] when all are up to date.
    Cheap on an unchanged checkout: DVC keeps the hashes of unchanged files by their mtime and inode."""
    proc = _dvc("status", "--json", root=root, check=False)
    if proc.returncode:
        raise StageFailed(f"dvc status failed: {(proc.stderr or proc.stdout)[-2000:]}")
    return sorted(json.loads(proc.stdout or "{}"))


def run_results(root: Path = Path(".")) -> list[str]:
    """What a run writes for Git rather than for DVC's cache, relative to `root`: dvc.lock and the uncached
    outputs (metrics, plots, small reports). main carries none of them: a model trained on another CPU is not
    bit-identical, so a committed lock and its reports would be rewritten by a user's first run. They are not
    git-ignored either: DVC refuses to save an experiment whose lock is."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        uncached = {os.path.relpath(out.fs_path, repo.root_dir) for out in repo.index.outs if not out.use_cache}
    return ["dvc.lock", *sorted(uncached)]


def untracked(paths: list[str], root: Path = Path(".")) -> list[str]:
    """The files among `paths` (files or folders) that Git neither tracks nor ignores."""
    proc = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", *paths], cwd=root,
                          capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def save_experiment(name: str, root: Path = Path(".")) -> str:
    """`dvc exp save -n name`: the run's params, metrics and outputs kept as a DVC experiment (the next run
    no longer overwrites it); returns the name. The run's results that Git does not track yet (a checkout's
    first run) go into the experiment too: DVC adds only an untracked dvc.lock by itself."""
    env = dvc_env()
    identity = subprocess.run(["git", "config", "user.email"], cwd=root, capture_output=True, text=True)
    if not identity.stdout.strip():  # a fresh machine without a git identity: the experiment commit needs one
        who = {"NAME": "pneumonia-pipeline", "EMAIL": "pneumonia-pipeline@localhost"}
        env.update({f"GIT_{role}_{k}": v for role in ("AUTHOR", "COMMITTER") for k, v in who.items()})
    results = [path for path in untracked(run_results(root), root) if path != "dvc.lock"]
    include = [arg for path in results for arg in ("-I", path)]
    proc = subprocess.run(["dvc", "exp", "save", "-n", name, *include], cwd=root, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise StageFailed(f"dvc exp save -n {name} failed: {(proc.stderr or proc.stdout)[-2000:]}")
    return name


LOCK_FILE = ".pipeline.lock"


@contextmanager
def workspace_lock(what: str, root: Path = Path(".")):
    """Hold the workspace for one flow: a second flow, sweep or scheduled run on the same checkout stops at
    once with StageRejected naming the run that holds it (they would rewrite params.yaml under each other).
    The lock is the OS's (flock): it is released when its holder exits, even by a crash."""
    path = root / LOCK_FILE
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise StageRejected(f"the workspace {root.resolve()} is in use by {holder}; wait for it to finish "
                            f"(or stop it) and run again") from None
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"flow": what, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
    fh.flush()
    try:
        yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def parser(prog: str, doc: str):
    """A command's argument parser: the docstring's first paragraph as description, the rest (usage line
    excepted) as epilog, line breaks kept."""
    import argparse

    head, _, rest = doc.split("\n\n", 2)
    return argparse.ArgumentParser(prog=prog, description=head, epilog=rest,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
