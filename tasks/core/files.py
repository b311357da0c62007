"""Small helpers for the files steps write: parents created, every output written atomically."""
from __future__ import annotations

import errno
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

# the OS's "no room": no space, over quota, over the file-size limit (a stand-in for a full disk in the tests)
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# the same said by a library that reports a short write without an errno, or wraps the OS's error in its own:
# numpy's `tofile` ("4096 requested and 0 written"), HDF5's "errno = 28", MLflow's "[Errno 27] File too large"
SHORT_WRITE = re.compile(r"requested and \d+ written|errno = (28|122|27)\b|\[Errno (28|122|27)\]|No space left"
                         r"|Disk quota|File too large")
# the file such a message names, most telling first: HDF5's, a copy's destination, the OS's
NAMED = (re.compile(r"filename = '([^']+)'"), re.compile(r"-> '([^']+)'"), re.compile(r"\] [^:]*: '([^']+)'"))


def out_of_space(err: BaseException) -> bool:
    """Whether a failed write ran out of room, whichever library raised it (and whatever it wrapped it in)."""
    if isinstance(err, OSError) and err.errno in SPACE_ERRNOS:
        return True
    return not (isinstance(err, OSError) and err.errno) and bool(SHORT_WRITE.search(" ".join(map(str, err.args))))


def written(err: BaseException) -> str | None:
    """The file a failed write names: the OSError's filename, else the one its message names."""
    if isinstance(err, OSError) and err.filename:
        return str(err.filename)
    return next((match.group(1) for pattern in NAMED if (match := pattern.search(str(err)))), None)


def out_path(path: str | Path) -> Path:
    """`path` as a Path whose parent folder exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic(path: str | Path):
    """Yield a temporary name beside `path` (same suffix, so `np.save` adds none) to write to; it replaces
    `path` in one rename when the block ends, and is removed when the block fails (a crash, a full disk): a
    reader sees the last good file or the new one, never half of one."""
    path = out_path(path)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None:  # a library's short write: keep its words, name the output
            raise OSError(errno.ENOSPC if out_of_space(err) else None, " ".join(map(str, err.args)),
                          str(path)) from err
        err.filename = str(path)  # name the output, not its temporary name
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj) -> Path:
    """Write `obj` as indented JSON, atomically."""
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    return Path(path)


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
    """The monitoring reference (tasks.measure.reference): `<paths.model_dir>/reference.npz` (evaluate fits it, the
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


@contextmanager
def exclusive(lock: str | Path, busy: str):
    """Hold an exclusive lock on the file `lock` for the block (created with its folder); StepError(`busy`) at once
    when another process holds it. The OS drops the lock when its holder dies, so a killed process blocks none."""
    import fcntl

    from tasks.core.errors import StepError

    with open(out_path(lock), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StepError(busy) from None
        yield
