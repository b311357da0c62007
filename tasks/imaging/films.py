"""A folder of films: the one listing, content hash and decoder of every command that reads a folder
(pneumonia-predict's folders, pneumonia-monitor's inbox, a site's films, the benchmarks).

A film is named by its path relative to the folder. Listing is recursive, by suffix (any case), and skips macOS
archive debris (`__MACOSX`) and hidden files (`._x.jpeg`, a write's temporary `.x.partial-N.dcm`). Decoding is
tasks.imaging.images.load_gray, the decoder training used. Bad files are collected with the reason (`read`) or
refused naming the file (`load`), never skipped silently.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tasks.core.errors import StepError
from tasks.imaging.images import IMAGE_SUFFIXES, BadImage, load_gray


def under(folder: str | Path) -> list[str]:
    """Every image file under `folder`, as sorted paths relative to it (none when it holds none)."""
    folder = Path(folder)
    return sorted(str(f.relative_to(folder)) for f in folder.rglob("*")
                  if f.suffix.lower() in IMAGE_SUFFIXES and "__MACOSX" not in f.parts and not f.name.startswith(".")
                  and f.is_file())


def listing(folder: str | Path) -> list[str]:
    """`under(folder)`; StepError when `folder` is not a folder or holds no image file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StepError(f"{folder} is not a folder: give --images the folder of the films")
    files = under(folder)
    if not files:
        raise StepError(f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def digest(path: str | Path) -> str:
    """The sha256 of a film's bytes (OSError when it cannot be read): a film exported twice is one film."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def distinct(folder: str | Path, paths: list[str], taken: set[str] = frozenset()) -> list[str]:
    """`paths` with each content once, in their order: of films with the same bytes (a film exported twice under
    two names), the one in `taken` (labelled, measured or kept apart) when there is one, else the first."""
    digests = {}
    for rel in paths:
        try:
            digests[rel] = digest(Path(folder) / rel)
        except OSError:
            digests[rel] = rel  # unreadable: kept, and named when it is loaded
    first = {}
    for rel in sorted(paths, key=lambda rel: rel not in taken):  # a taken film wins over its twins (stable sort)
        first.setdefault(digests[rel], rel)
    kept = set(first.values())
    return [rel for rel in paths if rel in kept]


def read(folder: str | Path, paths: list[str], size: int, progress: bool = False,
         desc: str = "films") -> tuple[np.ndarray, list[int], dict[str, str]]:
    """(uint8 (K, size, size) pixels, the indices in `paths` they are, {path: why} of the films that could not be
    read or decoded)."""
    from tqdm import tqdm

    pixels, kept, errors = [], [], {}
    for i, rel in enumerate(tqdm(paths, desc=desc, unit="film", disable=not progress, leave=False)):
        try:
            pixels.append(load_gray((Path(folder) / rel).read_bytes(), size))
            kept.append(i)
        except OSError as err:
            errors[rel] = f"cannot be read ({err.strerror or err})"
        except BadImage as err:
            errors[rel] = str(err)
    return (np.stack(pixels) if pixels else np.empty((0, size, size), np.uint8)), kept, errors


def load(folder: str | Path, paths: list[str], size: int, progress: bool = False) -> np.ndarray:
    """uint8 (N, size, size) pixels of every film of `paths`; StepError naming the first that cannot be used."""
    pixels, _, errors = read(folder, paths, size, progress)
    if errors:
        rel, why = next(iter(errors.items()))
        raise StepError(f"{Path(folder) / rel}: {why}; remove it from the folder or replace it")
    return pixels
