"""Small helpers for the files steps write: parents created, JSON written atomically."""
from __future__ import annotations

import json
import os
from pathlib import Path


def out_path(path: str | Path) -> Path:
    """`path` as a Path whose parent folder exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | Path, obj) -> Path:
    """Write `obj` as indented JSON via a temporary file, so readers never see half a file."""
    path = out_path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)
    return path


def model_path(p) -> Path:
    """The trained model of params `p`: `<paths.model_dir>/model.keras` (train writes it, evaluate reads it)."""
    return Path(p.paths.model_dir) / "model.keras"


def serving_config(p) -> Path:
    """The served model's preprocessing, calibration and threshold: `<paths.model_dir>/serving.json` (evaluate
    writes it, the packaged pyfunc carries it)."""
    return Path(p.paths.model_dir) / "serving.json"


def ood_path(p) -> Path:
    """The out-of-distribution detector's means, precision and threshold: `<paths.model_dir>/ood.npz` (evaluate
    fits it, the packaged pyfunc carries it)."""
    return Path(p.paths.model_dir) / "ood.npz"


def reference_path(p) -> Path:
    """The monitoring reference (tasks.reference): `<paths.model_dir>/reference.npz` (evaluate fits it, the
    packaged pyfunc carries it)."""
    return Path(p.paths.model_dir) / "reference.npz"


def file_md5(path: str | Path) -> str:
    """The md5 of a file's bytes (DVC's hash of a file)."""
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())
