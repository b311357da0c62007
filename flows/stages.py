"""Run DVC stages as subprocesses and classify their failures (no Prefect, no ML)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import yaml

from tasks.cli import EXIT_REJECTED


class StageFailed(RuntimeError):
    """A stage failed in a way a retry may fix (network, tracking server, crash)."""


class StageRejected(RuntimeError):
    """A stage refused its input or parameters (exit 2): retrying cannot help."""


def stage_names(root: Path = Path(".")) -> list[str]:
    """The stages of dvc.yaml in file order: the order the pipeline runs them."""
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def dvc_env() -> dict:
    """The environment for dvc: this interpreter's bin/ first, so `python -m tasks.x` finds the project."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}


def run_stage(stage: str, log: Callable[[str], None] = print, root: Path = Path(".")) -> str:
    """`dvc repro --single-item <stage>`: runs it only if its deps or params changed; returns its output."""
    proc = subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=root, env=dvc_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if line and not line.startswith(("ingest:", "I0000", "WARNING: All log")):
            log(line)
    output = "\n".join(lines)
    if proc.wait():
        errors = [line for line in lines if "error:" in line.lower()]
        message = f"stage {stage} failed: " + ("\n".join(errors[-5:]) or output[-2000:])
        if re.search(rf"exited with {EXIT_REJECTED}\b", output):
            raise StageRejected(message)
        raise StageFailed(message)
    return output


def set_params(overrides: list[str], root: Path = Path(".")) -> None:
    """Apply `key.sub=value` overrides to params.yaml in place, keeping its comments (as `dvc exp run -S` does)."""
    from ruamel.yaml import YAML

    ry = YAML()
    path = root / "params.yaml"
    data = ry.load(path.read_text())
    for item in overrides:
        key, _, raw = item.partition("=")
        if not _:
            raise StageRejected(f"override {item!r} is not key=value (e.g. train.epochs=3)")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if part not in node:
                raise StageRejected(f"override {item!r}: params.yaml has no section {part!r}")
            node = node[part]
        node[leaf] = yaml.safe_load(raw)
    with open(path, "w") as fh:
        ry.dump(data, fh)
