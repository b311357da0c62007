"""A monitored site's store of scored films (`scored.csv` and `features.npy` under
`<paths.monitoring>/<site>/`, row for row) and the scoring that fills it, a chunk at a time, so a stopped run
keeps what it scored. tasks.monitoring.monitor tests the films not yet tested for drift."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import StepError
from tasks.core.files import out_path
from tasks.scoring.contract import ServingConfig

CHUNK = 64  # films decoded, scored and written at a time
COLUMNS = ["sha256", "path", "probability", "label", "threshold", "ood_score", "in_distribution", "model_version",
           "scored_at", "batch"]


class Store:
    """The films a site's monitor has scored: scored.csv and features.npy, row for row."""

    def __init__(self, root: Path):
        self.csv, self.npy = root / "scored.csv", root / "features.npy"
        if self.csv.exists():
            self.table = pd.read_csv(self.csv, dtype={"batch": str, "model_version": str}, keep_default_na=False)
            self.features = np.load(self.npy)
            if len(self.features) != len(self.table):
                raise StepError(f"{self.npy} has {len(self.features)} rows for {len(self.table)} in {self.csv}: "
                                f"remove both to start the site's monitoring again")
        else:
            self.table, self.features = pd.DataFrame(columns=COLUMNS), None

    def seen(self, version: str) -> set[str]:
        return set(self.table.sha256[self.table.model_version == version])

    def add(self, rows: pd.DataFrame, features: np.ndarray) -> None:
        self.table = pd.concat([self.table, rows[COLUMNS]], ignore_index=True) if len(self.table) else rows[COLUMNS]
        self.features = features if self.features is None else np.concatenate([self.features, features])
        self.save()

    def save(self) -> None:
        """features first, then the table, each via a temporary file: a reader never sees half of one."""
        out_path(self.csv)
        tmp = self.npy.with_name("features.tmp.npy")
        np.save(tmp, self.features)
        tmp.replace(self.npy)
        self.table.to_csv(self.csv.with_suffix(".tmp"), index=False)
        self.csv.with_suffix(".tmp").replace(self.csv)


def new_films(images: Path, store: Store, version: str) -> tuple[list[str], list[str], dict]:
    """(paths, sha256s) of the films under `images` this version has not scored, and {path: why} for the
    ones that could not be read. A film whose bytes repeat another's is scored once."""
    from tasks.imaging import films

    seen, paths, digests, errors = store.seen(version), [], [], {}
    for rel in films.listing(images):
        try:
            digest = films.digest(images / rel)
        except OSError as err:
            errors[rel] = f"cannot be read ({err.strerror or err})"
            continue
        if digest not in seen:
            seen.add(digest)
            paths.append(rel)
            digests.append(digest)
    return paths, digests, errors


def score(inner, images: Path, paths: list[str], digests: list[str], version: str, store: Store, errors: dict,
          progress: bool | None = None) -> int:
    """Score the films CHUNK at a time with the served model's own functions and add each chunk to the store;
    returns the number scored. A film that cannot be read or decoded goes to `errors`."""
    from tqdm import tqdm

    from tasks.imaging import films
    from tasks.scoring.serving import predict_frame

    size, done = ServingConfig.of(inner.config).image_size, 0
    for start in tqdm(range(0, len(paths), CHUNK), desc="scoring", unit="chunk",
                      disable=None if progress is None else not progress):
        pixels, kept, bad = films.read(images, paths[start:start + CHUNK], size)
        errors.update(bad)
        if not kept:
            continue
        frame, features = predict_frame(inner.model, inner.config, inner.detector, pixels, features=True)
        frame.insert(0, "path", [paths[start + i] for i in kept])
        frame.insert(0, "sha256", [digests[start + i] for i in kept])
        frame = frame.assign(model_version=version, scored_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             batch="")
        store.add(frame, features.astype(np.float32))
        done += len(kept)
    return done
