"""A scored archive as one drift check: `pneumonia-monitor --site NAME --scores OUT.parquet`.

The table is what `pneumonia-predict --output` wrote, on either engine (Spark's Parquet folder, a .parquet,
.csv or .json file): every film's probability and out-of-distribution score, the model's URI and version, and,
from Spark, an `error` per unreadable file. The scores and out-of-distribution tests take every scored row. The
feature test needs the penultimate features, which the table does not hold: `monitor.max_films` rows are drawn
(seeded, tasks.monitoring.drift.sample), their films read again where the table names them and scored with the
table's own model version on the one scoring path, and their probabilities must equal the table's (1e-4), or
the films or the model are not the ones the job scored. So a back-fill of millions of films costs one model
load and `max_films` films to check, and its report, MLflow run and alert are pneumonia-monitor's own (the
batch is named `archive-<time>`; the site's store of scored films is not touched).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import StepError

NEEDED = ("file", "probability", "ood_score", "model_uri", "model_version")
AGREE = 1e-4  # the sampled films' probabilities scored again against the table's


def read(p: Params, path: str | Path) -> pd.DataFrame:
    """The scored rows of a pneumonia-predict output table; StepError naming the table and the fix when it is
    missing, not a table, lacks a column, mixes model versions or holds fewer than `monitor.min_films` scores."""
    path = Path(path)
    fix = "give the table `pneumonia-predict --output` wrote (.parquet, Spark's .parquet folder, .csv or .json)"
    if not path.exists():
        raise StepError(f"{path} does not exist: {fix}")
    try:
        if path.suffix == ".parquet":
            import pyarrow.dataset as ds

            dataset = ds.dataset(path, format="parquet")
            names = dataset.schema.names
            table = dataset.to_table(columns=[c for c in (*NEEDED, "error") if c in names]).to_pandas()
        elif path.suffix == ".csv" and path.is_file():
            table = pd.read_csv(path, dtype={"model_version": str})
        elif path.suffix == ".json" and path.is_file():
            table = pd.read_json(path, orient="records", dtype={"model_version": str})
        else:
            raise StepError(f"{path} is not a .parquet, .csv or .json table: {fix}")
    except (OSError, ValueError) as err:
        raise StepError(f"{path} cannot be read as a table ({str(err).splitlines()[0][:120]}): {fix}") from None
    missing = [c for c in NEEDED if c not in table.columns]
    if missing:
        raise StepError(f"{path} has no `{missing[0]}` column: {fix}")
    scored = table[table.probability.notna() & (table.error.isna() if "error" in table else True)]
    scored = scored.assign(model_version=scored.model_version.fillna("").astype(str))
    models = sorted(set(zip(scored.model_uri, scored.model_version)))
    if len(models) > 1:
        raise StepError(f"{path} holds the scores of {len(models)} models ({', '.join(u for u, _ in models[:3])}): "
                        "monitor one job's output at a time")
    if len(scored) < p.monitor.min_films:
        raise StepError(f"{path} holds {len(scored)} scored film(s); the drift test needs monitor.min_films "
                        f"({p.monitor.min_films})")
    return scored.reset_index(drop=True)


def model_uri(table: pd.DataFrame) -> str:
    """The model the table's rows were scored with, pinned to their version (`models:/name@alias` scored as
    version N is `models:/name/N`, wherever the alias has moved since)."""
    from tasks.records.registry import at_version

    return at_version(table.model_uri.iloc[0], table.model_version.iloc[0])


def sampled_features(p: Params, model, table: pd.DataFrame) -> np.ndarray:
    """The penultimate features of the films `drift.sample` draws from `table`, scored again with `model`;
    StepError when a film cannot be read or no longer scores as the table says."""
    from tasks.monitoring import drift
    from tasks.scoring.predict import score_payloads

    rows = table.iloc[drift.sample(len(table), p.monitor.max_films, p.monitor.seed)]
    payloads = []
    for i, name in zip(rows.index, rows.file):
        try:
            payloads.append(Path(name).read_bytes())
        except OSError as err:
            raise StepError(f"row {i} of the table: its film cannot be read here ({err.strerror or err}); monitor "
                            "where the job's files are readable") from None
    errors: dict = {}
    scored, features = score_payloads(model, list(rows.index), payloads, errors, features=True)
    if errors:
        row, why = next(iter(errors.items()))
        raise StepError(f"row {row} of the table: its film no longer decodes ({why}); it changed since the job")
    gap = np.abs(scored.probability.to_numpy(float) - rows.probability.to_numpy(float))
    if gap.max() > AGREE:
        raise StepError(f"row {rows.index[int(gap.argmax())]} of the table: its film scores "
                        f"{gap.max():.4f} away from the table's probability: the films or the model are not the "
                        "ones the job scored")
    return features


def run(p: Params, site: str, path: str | Path) -> dict:
    """Test the table's scored films as one batch against its model's reference, record and alert as
    pneumonia-monitor does; returns {site, model_uri, model_version, waiting, result, alert, films, errors,
    sampled}. Nothing is written before every check has passed."""
    from tasks.monitoring import monitor
    from tasks.records import registry, tracking

    root = monitor.folder(p, site)  # the site name checked
    table = read(p, path)
    tracking.configure(p)
    uri = model_uri(table)
    try:
        model = registry.load(uri)
    except LookupError as err:
        raise StepError(str(err)) from None
    inner = model.unwrap_python_model()
    reference = monitor.reference_of(inner, uri)
    features = sampled_features(p, model, table)
    version = table.model_version.iloc[0] or uri
    batch = f"archive-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    probability, ood_score = table.probability.to_numpy(float), table.ood_score.to_numpy(float)
    result = monitor.compare(p, reference, features, probability, ood_score, batch, version)
    result = monitor.report(reference, features, probability, ood_score, result, root)
    out = monitor.conclude(p, site, uri, version, result, "--images FOLDER")
    return {**out, "films": len(table), "sampled": len(features), "scored": 0, "errors": {}}
