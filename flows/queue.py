"""Parallel DVC experiments: `dvc exp run --queue` + `dvc queue start -j N` (no Prefect, no ML).

DVC runs queued experiments in temporary copies of the repository under `.dvc/tmp/exps/`, which hold
only what Git tracks. So before queueing, path params that point at untracked data (`ingest.input`
such as `../shared/data/chest_xray`) are made absolute, and the workers get
the absolute MLflow tracking URI: otherwise each copy would read missing data and log to its own
throw-away database. Results are read back from each experiment's commit (metrics and reports are
committed with it, `cache: false`), and its model from the shared DVC cache by `dvc exp apply`.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Callable

from flows import stages

PATH_PARAMS = ("ingest.input",)
DONE = {"Success", "Failed"}


def tracked(path: str, root: Path = Path(".")) -> bool:
    """Whether Git tracks `path` (a file, or a folder with tracked files) in the checkout at `root`."""
    proc = subprocess.run(["git", "ls-files", "--", path], cwd=root, capture_output=True, text=True)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def portable(overrides: dict, base: dict, root: Path = Path(".")) -> dict:
    """`overrides` plus absolute paths for every path param (set here or in `base`, the flat params) that a
    temporary copy of the repository would not hold: relative and untracked."""
    out = dict(overrides)
    for key in PATH_PARAMS:
        value = str(out.get(key, base.get(key, "")))
        if value and not Path(value).is_absolute() and not tracked(value, root):
            out[key] = str((root / value).resolve())
    return out


def enqueue(name: str, overrides: dict) -> None:
    """Queue experiment `name` (up to `package`) on the workspace as it is now."""
    proc = subprocess.run(exp_args(name, overrides, queue=True), env=stages.dvc_env(), capture_output=True, text=True)
    if proc.returncode:
        raise stages.StageRejected(f"could not queue experiment {name}: {(proc.stderr or proc.stdout)[-1000:]}")


def exp_args(name: str, overrides: dict, queue: bool = False) -> list[str]:
    """`dvc exp run` of experiment `name` up to `package` with `overrides` set; queued instead of run with `queue`."""
    sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={json.dumps(value)}")]
    return ["dvc", "exp", "run", *(["--queue"] if queue else []), "-n", name, *sets, "package"]


def start(jobs: int, env: dict) -> None:
    """Start `jobs` queue workers. They outlive this call and inherit `env`; their output goes to DVC's
    queue logs, not to a pipe (a pipe would keep this call waiting for them)."""
    subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)


def status() -> dict[str, str]:
    """{experiment name: Queued | Running | Success | Failed} from `dvc queue status`."""
    proc = subprocess.run(["dvc", "queue", "status"], env=stages.dvc_env(), capture_output=True, text=True,
                          check=True)
    out = {}
    for line in proc.stdout.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 4:
            out[cells[1]] = cells[3]
    return out


def wait(names: list[str], log: Callable[[str], None], poll: float = 5.0) -> dict[str, str]:
    """Wait until every experiment in `names` has finished; log each change of state; return their states."""
    seen: dict[str, str] = {}
    while True:
        now = {n: s for n, s in status().items() if n in names}
        for name, state in now.items():
            if seen.get(name) != state:
                log(f"experiment {name}: {state}")
        seen = now
        if len(now) == len(names) and set(now.values()) <= DONE:
            return now
        time.sleep(poll)


def logs(name: str) -> str:
    proc = subprocess.run(["dvc", "queue", "logs", name], env=stages.dvc_env(), capture_output=True, text=True)
    return proc.stdout + proc.stderr


def commit(name: str) -> str:
    """The commit of experiment `name` made on the current HEAD."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    refs = subprocess.run(["git", "for-each-ref", "--format=%(objectname) %(refname)", f"refs/exps/{head[:2]}/"
                           f"{head[2:]}/"], capture_output=True, text=True, check=True).stdout.split("\n")
    for line in refs:
        if line.endswith(f"/{name}"):
            return line.split()[0]
    raise stages.StageFailed(f"experiment {name} finished but DVC recorded no commit for it")


def read(rev: str, path: str) -> bytes:
    """A file as committed in `rev`."""
    return subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, check=True).stdout


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
