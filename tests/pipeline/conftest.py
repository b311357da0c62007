import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows import stages
from tests.helpers import REPO, write_params


def repo_files() -> list[str]:
    """The checkout's files, new ones included, without a local run's results (a clone has none)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    results = set(stages.run_results(REPO))
    return [f for f in out.splitlines() if (REPO / f).exists() and f not in results]


class RepoCopy:
    """A fresh git+DVC checkout of this repo's working tree; `run` executes commands in it."""

    def __init__(self, path: Path, env: dict | None = None):
        self.path = path
        for rel in repo_files():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)
        inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # its own store
        self.env = {**inherited, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(path), **(env or {})}
        self.run("git", "init", "-q")
        self.run("git", "add", "-A")
        self.run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy")

    def __truediv__(self, other) -> Path:
        return self.path / other

    def run(self, *cmd, check=True, timeout=900) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def params(self, overrides: dict):
        return write_params(self.path, overrides)


@pytest.fixture
def repo_copy(tmp_path):
    return RepoCopy(tmp_path / "repo")
