"""Kaggle-style `chest_xray` folders and zips: find the images, their classes and patients.

Accepted layouts: `<root>/{train,val,test}/{NORMAL,PNEUMONIA}/*` (`validation/` or `valid/` is `val`), a
single split folder `<root>/{NORMAL,PNEUMONIA}/*`, and the Kaggle zip, which nests `chest_xray/chest_xray/...`
and carries `__MACOSX/` junk (in the zip or beside a hand-unzipped folder). Folder names match
case-insensitively; zips made on Windows (backslash separators) are read as the same layout.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from tasks.core.errors import StepError
from tasks.imaging.images import IMAGE_SUFFIXES
from tasks.sources import CLASSES, SPLITS, Candidate

_PATIENT_PATTERNS = [
    re.compile(r"^(person\d+)_", re.IGNORECASE),             # person123_bacteria_456
    re.compile(r"^((?:NORMAL2-)?IM-\d+)", re.IGNORECASE),    # IM-0115-0001, IM-0429-0001-0002, NORMAL2-IM-1427-0001
    re.compile(r"^(DEMO-\d+)-", re.IGNORECASE),              # the generated demo set
    re.compile(r"^(dicom-[0-9a-f]{16})-[0-9a-f]{16}$"),      # films pulled from an archive (tasks/pacs/pull.py)
]
_JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db|\._)")
SPLIT_ALIASES = {"validation": "val", "valid": "val"}  # other spellings of a split folder


class SourceError(StepError):
    """The source folder or archive cannot be ingested; the message says what to fix."""


def patient_id(filename: str) -> str:
    """Patient id from a Kaggle file name; a name in no known pattern is its own patient."""
    stem = Path(filename).stem
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(stem)
        if match:
            return match.group(1)
    return stem


MAX_RATIO = 100  # JPEG and PNG files barely compress; a member expanding more than this is not an X-ray


def extract_zip(archive: Path, dest: Path, max_bytes: int) -> Path:
    """Extract `archive` into `dest` safely and return `dest`.

    Refuses a file that is not a zip, members that would land outside `dest` (zip-slip), absolute paths,
    and archives whose declared uncompressed size exceeds `max_bytes`. Skips macOS junk. Extraction is
    skipped when `dest` already holds a complete extraction of this archive. The archive is unpacked into
    a temporary folder beside `dest` and renamed into place, so a failure leaves no half folder; a `dest`
    the pipeline did not extract (no marker) is never deleted.
    """
    marker_name = ".extracted-from"
    stamp = f"{archive.resolve()} {archive.stat().st_size} {archive.stat().st_mtime_ns}"
    marker = dest / marker_name
    if marker.exists() and marker.read_text() == stamp:
        return dest
    if dest.exists() and not marker.exists():
        raise SourceError(f"{dest} exists and was not extracted by this pipeline: move it away (or point "
                          f"paths.raw elsewhere) before ingesting {archive}")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise SourceError(f"{archive} is not a readable zip archive ({err}); give a chest_xray folder or the "
                          "Kaggle zip as ingest.input") from None
    with zf:
        for m in zf.infolist():  # a zip made on Windows may separate folders with backslashes
            m.filename = m.filename.replace("\\", "/")
        members = [m for m in zf.infolist() if not _JUNK.search(m.filename)]
        total = sum(m.file_size for m in members)
        bomb = next((m for m in members if m.file_size > MAX_RATIO * max(m.compress_size, 1) + 2**20), None)
        if bomb is not None:  # refused before a byte is written: a few kB can declare gigabytes
            raise SourceError(f"{archive}: member {bomb.filename!r} expands {bomb.file_size:,} bytes from "
                              f"{bomb.compress_size:,} (over {MAX_RATIO}x: a zip bomb?); refusing the archive")
        if total > max_bytes:
            raise SourceError(f"{archive}: unpacks to {total:,} bytes, over ingest.max_archive_bytes="
                              f"{max_bytes:,}; raise the limit if the archive is trusted")
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            root = partial.resolve()
            for m in members:
                target = (root / m.filename).resolve()
                if m.filename.startswith("/") or not target.is_relative_to(root):
                    raise SourceError(f"{archive}: member {m.filename!r} escapes the extraction folder "
                                      "(zip-slip); refusing the archive")
            for m in members:
                try:
                    zf.extract(m, partial)
                except (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError) as err:
                    # a bad CRC, an encrypted member, Deflate64 (which Python's zipfile cannot read), a cut file
                    raise SourceError(f"{archive}: member {m.filename!r} cannot be extracted ({err}); re-download "
                                      "the archive, or unpack it with another tool (7-Zip reads encrypted and "
                                      "Deflate64 members) and give the folder as ingest.input") from None
            (partial / marker_name).write_text(stamp)
            if dest.exists():  # an extraction of another version of the archive (it has the marker)
                shutil.rmtree(dest)
            partial.rename(dest)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return dest


def _child(folder: Path, name: str) -> Path | None:
    """The sub-folder of `folder` called `name` (any case; for a split, also its other spellings)."""
    names = {name.lower(), *(alias for alias, split in SPLIT_ALIASES.items() if split == name)}
    for p in sorted(folder.iterdir()):
        if p.is_dir() and p.name.lower() in names:
            return p
    return None


def _is_split_dir(folder: Path) -> bool:
    return any(_child(folder, c) for c in CLASSES)


def find_split_dirs(root: Path) -> dict[str, Path]:
    """Map split name -> folder holding the class folders, choosing one copy of nested duplicates."""
    if _is_split_dir(root):
        name = SPLIT_ALIASES.get(root.name.lower(), root.name.lower())
        return {name if name in SPLITS else "train": root}
    layouts = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _JUNK.search(d))  # pruned: never look inside __MACOSX
        here = Path(dirpath)
        found = {s: _child(here, s) for s in SPLITS}
        found = {s: p for s, p in found.items() if p is not None and _is_split_dir(p)}
        if found:
            layouts.append((len(here.relative_to(root).parts), str(here), found))
    # the shallowest layout wins (Kaggle's nested copy is identical), then the first by name
    best = min(layouts, key=lambda layout: layout[:2])[2] if layouts else {}
    if not best:
        raise SourceError(f"{root}: no NORMAL/PNEUMONIA folders found; expected "
                          "chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/ or a folder with NORMAL/ and PNEUMONIA/")
    return best


def candidates(root: Path) -> list[Candidate]:
    """Every file under the class folders of each split, with class, split and patient id.

    Files in an unknown class folder and files that resolve outside `root` (a link to a file, or a class or
    split folder that is a link) come back with `problem` set. Links to folders below a class folder are
    not followed (os.walk's default), so a link loop cannot trap the walk.
    """
    root = root.resolve()
    out: list[Candidate] = []
    for split, split_dir in sorted(find_split_dirs(root).items()):
        for entry in sorted(split_dir.iterdir()):
            if _JUNK.search(entry.name) or not entry.is_dir():
                continue
            class_name = entry.name.upper()
            for dirpath, dirnames, filenames in os.walk(entry):
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    if _JUNK.search(name) or (path.suffix.lower() not in IMAGE_SUFFIXES and path.suffix):
                        continue
                    out.append(_candidate(path, root, class_name, entry.name, split))
    return out


def _candidate(path: Path, root: Path, class_name: str, folder_name: str, split: str) -> Candidate:
    """One file as a Candidate, with `problem` set when it cannot be taken as it is."""
    shown = str(path)
    try:
        shown.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 (an old Windows archive's Latin-1, say)
        shown = os.fsencode(path).decode("utf-8", "replace")
        return Candidate(shown, class_name, split, patient_id(Path(shown).name),
                         "file name is not valid UTF-8 (another code page, such as Latin-1): rename the file")
    problem = None
    if class_name not in CLASSES:
        problem = f"unknown class folder {folder_name!r} (expected NORMAL or PNEUMONIA)"
    else:
        try:
            inside = path.resolve(strict=True).is_relative_to(root)
        except (RuntimeError, OSError):  # a link loop (a -> b -> a) or a link to nothing
            problem = "symbolic link that loops or points to nothing"
        else:
            if not inside:  # a linked file, class or split folder
                problem = "symbolic link that leaves the source folder"
    return Candidate(shown, class_name, split, patient_id(path.name), problem)


def source(_, ingest, workdir: Path) -> Path:
    """The `folder` source (tasks.core.plugins.SOURCES): `ingest.input` itself, or the Kaggle zip unpacked under
    `workdir`."""
    root = Path(ingest.input)
    if not root.exists():
        raise StepError(f"ingest.input {root} does not exist; point it at a chest_xray folder or the Kaggle zip")
    if root.is_file():
        if root.suffix.lower() != ".zip":
            raise StepError(f"ingest.input {root} is a file but not a .zip; give a folder or the Kaggle zip")
        root = extract_zip(root, workdir / root.stem, ingest.max_archive_bytes)
    return root
