"""Run DVC stages as subprocesses and classify their failures (no Prefect, no ML)."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import yaml

from tasks.core.repro import (  # noqa: F401  the flows' names for the runner's classes
    StageFailed,
    StageRejected,
    StageTimedOut,
    dvc_env,
    relayed,
    run_stage,
)


def stage_names(root: Path = Path(".")) -> list[str]:
    """The stages of dvc.yaml in file order: the order the pipeline runs them."""
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


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


def _take(what: str, root: Path):
    """The workspace's lock file, held (flock) by this process; StageRejected naming the holder when another
    process holds it."""
    fh = open(root / LOCK_FILE, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise StageRejected(f"the workspace {root.resolve()} is in use by {holder}; wait for it to finish "
                            f"(or stop it) and run again") from None
    return fh


def check_workspace_free(root: Path = Path(".")) -> None:
    """StageRejected naming the holder when a flow holds the workspace now: a command checks this before Prefect
    starts (one line in a second), then its flow takes the lock itself (`workspace_lock`)."""
    fh = _take("check", root)
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


@contextmanager
def workspace_lock(what: str, root: Path = Path(".")):
    """Hold the workspace for one flow: a second flow, sweep or scheduled run on the same checkout stops at
    once with StageRejected naming the run that holds it (they would rewrite params.yaml under each other).
    The lock is the OS's (flock): it is released when its holder exits, even by a crash."""
    fh = _take(what, root)
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
    """A command's argument parser (tasks.cli's: a refusal is one line, exit 2): the docstring's first paragraph
    as description, the rest (usage line excepted) as epilog, line breaks kept."""
    import argparse

    from tasks import cli

    head, _, rest = doc.split("\n\n", 2)
    return cli.parser(prog, head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
