"""The reading room's scored films as a monitored stream: each pass adds the films it scored (the model's outputs
and penultimate features) to the site's monitoring store (`<paths.monitoring>/<site>`, pneumonia-monitor's),
under the film's salted instance key, and tests a batch against the served model's reference once
`monitor.min_films` wait: the same drift test, MLflow record and alert as pneumonia-monitor's, so a site whose
films come from the archive is monitored without exporting a folder. Films the intended-use gate refused are not
scored and so not monitored; films the out-of-distribution flag caught are (their shift is what the test sees).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.monitoring import monitor
from tasks.monitoring.monitor_store import Store


def open_store(p: Params, site: str) -> Store:
    return Store(monitor.folder(p, site))


def add(store: Store, version: str, table: pd.DataFrame, features: np.ndarray) -> None:
    """Add the scored rows (`file`: the salted instance key, then the model's columns) of one chunk; a film this
    version already holds (a pass rerun after a kill) is not added twice."""
    fresh = ~table.file.isin(store.seen(version)).to_numpy()
    if not fresh.any():
        return
    rows = table[fresh].rename(columns={"file": "sha256"}).assign(
        path=lambda t: "pacs:" + t.sha256, model_version=version,
        scored_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), batch="")
    store.add(rows.reset_index(drop=True), features[fresh].astype(np.float32))


def test(p: Params, site: str, uri: str, version: str, model, store: Store) -> dict | None:
    """The batch test of the waiting films (tasks.monitoring.monitor.test_and_record), or None when the served
    package has no monitoring reference (packaged before it) or no film was scored yet."""
    reference = getattr(model.unwrap_python_model(), "reference", None) if model is not None else None
    if reference is None or store.features is None:
        return None
    return monitor.test_and_record(p, site, uri, version, reference, store, "--pacs")
