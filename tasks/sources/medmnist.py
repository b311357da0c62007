"""PneumoniaMNIST (MedMNIST v2/v3): download the official npz, check its md5, read its splits.

The npz holds `{train,val,test}_images` (uint8, N x S x S) and `{split}_labels` (N x 1,
0 = normal, 1 = pneumonia). It has no patient ids, so each image is its own patient and
the official splits are kept.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import requests
from tqdm import tqdm

from tasks.core.sections import Section
from tasks.sources import SPLITS
from tasks.sources.folder import SourceError


class MedMNIST(Section):
    """`ingest.medmnist`: which PneumoniaMNIST file, where from, and its checksum per size."""

    size: Literal[28, 64, 128, 224]
    url: str
    md5: dict[int, str]

SIZES = (28, 64, 128, 224)


def url_for(template: str, size: int) -> str:
    if size not in SIZES:
        raise SourceError(f"ingest.medmnist.size must be one of {SIZES}, got {size}")
    return template.format(suffix="" if size == 28 else f"_{size}")


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str | None, retries: int = 3, timeout: float = 60) -> Path:
    """Fetch `url` to `dest` (atomically, with a progress bar) unless a copy with `md5` is there.

    A checksum mismatch deletes the partial file and raises `SourceError`; network errors
    are retried `retries` times before they propagate.
    """
    if dest.exists() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    for attempt in range(1, retries + 1):
        try:
            with requests.get(url, stream=True, timeout=timeout) as resp:
                resp.raise_for_status()
                total = int(resp.headers.get("content-length", 0)) or None
                with open(tmp, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                    for chunk in resp.iter_content(1 << 16):
                        fh.write(chunk)
                        bar.update(len(chunk))
            break
        except requests.RequestException:
            tmp.unlink(missing_ok=True)
            if attempt == retries:
                raise
    got = md5sum(tmp)
    if md5 is not None and got != md5:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"{url}: md5 {got} does not match the expected {md5}; the download is corrupt "
                          "or the file changed upstream (check ingest.medmnist.md5)")
    os.replace(tmp, dest)
    return dest


def read(npz_path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(split, images uint8 NxSxS, labels int N)] for each split present in the npz."""
    try:
        data = np.load(npz_path)
    except (OSError, ValueError) as err:
        raise SourceError(f"{npz_path}: not a readable npz ({err}); delete it to download again") from None
    out = []
    for split in SPLITS:
        if f"{split}_images" not in data:
            continue
        images = data[f"{split}_images"]
        if images.ndim == 4:  # RGB MedMNIST variants; PneumoniaMNIST is grayscale already
            images = images.mean(axis=-1).round().astype(np.uint8)
        out.append((split, images.astype(np.uint8), data[f"{split}_labels"].reshape(-1).astype(int)))
    if not out:
        raise SourceError(f"{npz_path}: no `train_images`/`val_images`/`test_images` arrays; not a MedMNIST npz")
    return out


def source(cfg: MedMNIST, ingest, workdir: Path) -> Path:
    """The `medmnist` source (tasks.core.plugins.SOURCES): the verified npz, downloaded to `ingest.input` once."""
    return download(url_for(cfg.url, cfg.size), Path(ingest.input), cfg.md5.get(cfg.size))
