"""ingest: a source (demo, Kaggle folder or zip, PneumoniaMNIST) -> image manifest + pixel store.

Outputs (paths in params.yaml): `paths.manifest` (one row per image), `paths.pixels`
(uint8 N x size x size grayscale, row i = manifest row i), `paths.quarantine` (bad files
skipped under `on_bad_image: skip`) and `paths.ingest_report`. The source is only read.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from tasks.cli import main
from tasks.core import plugins
from tasks.core.config import Ingest, Params
from tasks.core.errors import StepError
from tasks.core.files import atomic, write_json
from tasks.imaging import dicom, images
from tasks.sources import CLASSES, COLUMNS, Candidate, folder, medmnist

log = logging.getLogger(__name__)


class BadImages(StepError):
    """Bad files under `on_bad_image: fail`; the message lists every one."""


def _process(c: Candidate, size: int, min_side: int, max_pixels: int,
             key: bytes | None = None) -> tuple[dict, np.ndarray | None]:
    """Decode one candidate: (manifest row, pixels) or (quarantine row, None). With `key`, a DICOM's patient is
    the keyed hash of its PatientID (tasks.imaging.dicom.patient_key) rather than the one its file name gives."""
    row = {"path": c.path, "class": c.class_name, "patient_id": c.patient_id, "source_split": c.source_split}
    if c.problem:
        return {**row, "problem": c.problem}, None
    try:
        data = Path(c.path).read_bytes()
        gray, info = images.decode(data, min_side=min_side, max_pixels=max_pixels)
    except images.BadImage as err:
        return {**row, "problem": str(err)}, None
    except OSError as err:
        return {**row, "problem": f"unreadable ({err.strerror or err})"}, None
    if key and dicom.is_dicom(data):
        row["patient_id"] = dicom.patient_key(data, key) or row["patient_id"]
    pixels = images.resize(gray, size)
    return {**row, **info, "label": CLASSES.index(c.class_name), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "mean": round(float(pixels.mean()), 3), "std": round(float(pixels.std()), 3)}, pixels


def ingest_files(cands: list[Candidate], cfg: Ingest, size: int,
                 key: bytes | None = None) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Decode candidates on `cfg.workers` processes: (manifest, pixels, quarantine)."""
    work = partial(_process, size=size, min_side=cfg.min_side, max_pixels=cfg.max_pixels, key=key)
    bar = dict(total=len(cands), unit="img", desc="ingest", mininterval=1.0)
    if cfg.workers > 1 and len(cands) > 64:
        with ProcessPoolExecutor(cfg.workers) as pool:
            results = list(tqdm(pool.map(work, cands, chunksize=32), **bar))
    else:
        results = list(tqdm(map(work, cands), **bar))
    good = [(row, px) for row, px in results if px is not None]
    bad = pd.DataFrame([row for row, px in results if px is None],
                       columns=["path", "class", "patient_id", "source_split", "problem"])
    manifest = pd.DataFrame([row for row, _ in good], columns=COLUMNS)
    pixels = np.stack([px for _, px in good]) if good else np.zeros((0, size, size), np.uint8)
    return manifest, pixels, bad


def ingest_arrays(npz: Path, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """PneumoniaMNIST splits -> (manifest, pixels); each image is its own patient."""
    rows, stacks = [], []
    for split, imgs, labels in medmnist.read(npz):
        for i, (img, label) in enumerate(zip(imgs, labels)):
            px = images.resize(img, size)
            rows.append({"path": f"{npz}#{split}/{i}", "label": int(label), "class": CLASSES[int(label)],
                         "patient_id": f"mnist-{split}-{i}", "source_split": split,
                         "width": img.shape[1], "height": img.shape[0], "mode": "L", "bytes": img.nbytes,
                         "sha256": hashlib.sha256(img.tobytes()).hexdigest(),
                         "mean": round(float(px.mean()), 3), "std": round(float(px.std()), 3)})
            stacks.append(px)
    return pd.DataFrame(rows, columns=COLUMNS), np.stack(stacks)


def collect(p: Params) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Read the configured source (tasks.core.plugins.SOURCES): (manifest, pixels, quarantine)."""
    cfg, size = p.ingest, p.data.image_size
    root = Path(plugins.SOURCES.get(cfg.source)(cfg.setting(), cfg, Path(p.paths.raw)))
    if root.suffix == ".npz":
        manifest, pixels = ingest_arrays(root, size)
        return manifest, pixels, pd.DataFrame(columns=["path", "class", "patient_id", "source_split", "problem"])
    cands = folder.candidates(root)
    if not cands:
        raise StepError(f"{root}: no image files in its class folders")
    maybe_dicom = any(Path(c.path).suffix.lower() in dicom.SUFFIXES or not Path(c.path).suffix for c in cands)
    return ingest_files(cands, cfg, size, dicom.salt(p.paths.patient_salt) if maybe_dicom else None)


def run(p: Params) -> pd.DataFrame:
    """Ingest the configured source and write manifest, pixels, quarantine and report."""
    start = time.perf_counter()
    manifest, pixels, bad = collect(p)
    seconds = time.perf_counter() - start
    if len(bad) and p.ingest.on_bad_image == "fail":
        lines = "\n".join(f"  {r.path}: {r.problem}" for r in bad.itertuples())
        raise BadImages(f"{len(bad)} bad image(s):\n{lines}\nremove or fix them, or set ingest.on_bad_image: skip "
                        f"to quarantine them in {p.paths.quarantine}")
    manifest["path"] = [x if "#" in x else os.path.relpath(x) for x in manifest.path]  # portable across clones
    for path, save in ((p.paths.pixels, lambda f: np.save(f, pixels)),  # the pixels first: the manifest names them
                       (p.paths.manifest, lambda f: manifest.to_csv(f, index=False)),
                       (p.paths.quarantine, lambda f: bad.to_csv(f, index=False))):
        with atomic(path) as tmp:
            save(tmp)
    rate = len(manifest) / seconds if seconds else 0.0
    report = {"images": len(manifest), "quarantined": len(bad), "seconds": round(seconds, 2),
              "images_per_second": round(rate, 1), "source": p.ingest.source,
              "per_class": manifest["class"].value_counts().to_dict()}
    write_json(p.paths.ingest_report, report)
    log.info(f"ingest: {len(manifest)} images ({report['per_class']}) in {seconds:.1f} s = {rate:.0f} img/s; "
          f"{len(bad)} quarantined" + (f" -> {p.paths.quarantine}" if len(bad) else ""))
    return manifest


if __name__ == "__main__":
    main("ingest", run)
