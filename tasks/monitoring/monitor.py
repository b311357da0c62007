"""monitor: score a site's new films with the model the site is served, and test them for drift.

    pneumonia-monitor --site NAME --images DIR [--model-uri URI]      (flows/monitor.py: the Prefect flow)

Each run lists the films under DIR, scores only those this model version has not scored before (by content
hash) with the served model (`@site-NAME` when it exists, else `@champion`) and keeps them in
`<paths.monitoring>/<NAME>/`: `scored.csv` (one row per film and model version) and `features.npy` (their
penultimate features, row for row), written after every chunk, so a stopped run keeps what it scored. The
films not yet tested form the batch; once it holds `monitor.min_films`, tasks.monitoring.drift compares it with the
reference the model was packaged with (tasks.measure.reference) and the batch's report goes to `batches/<id>.json`
and `.png`, with an MLflow run in the experiment `<model>-monitoring`. No pixel value or file name leaves the
site's folder: the report, the run and the alert hold counts, statistics and p-values only.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.core.files import write_json
from tasks.monitoring import drift
from tasks.monitoring.monitor_store import Store, new_films, score

log = logging.getLogger(__name__)


def folder(p: Params, site: str) -> Path:
    from tasks.sites.stage import check_name

    return Path(p.paths.monitoring) / check_name(site)


def check_arguments(p: Params, site: str, images: str | Path) -> None:
    """StepError for a site name that is not one, or an images folder that is missing or holds no film: what a
    command checks before its flow starts."""
    from tasks.imaging.films import listing

    folder(p, site)
    listing(images)


def test_batch(p: Params, reference: dict, store: Store, version: str, root: Path) -> dict | None:
    """Compare the films this version scored and no batch has tested yet with the reference; None while
    there are fewer than `monitor.min_films`."""
    m = p.monitor
    pending = np.flatnonzero(((store.table.model_version == version) & (store.table.batch == "")).to_numpy())
    if len(pending) < m.min_films:
        return None
    rows = store.table.iloc[pending]
    tested = len(set(store.table.batch) - {""})
    batch = f"{tested + 1:04d}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    result = compare(p, reference, store.features[pending], rows.probability.to_numpy(float),
                     rows.ood_score.to_numpy(float), batch, version)
    store.table.loc[store.table.index[pending], "batch"] = batch
    store.save()
    return report(reference, store.features[pending], rows.probability.to_numpy(float),
                  rows.ood_score.to_numpy(float), result, root)


def compare(p: Params, reference: dict, features, probability, ood_score, batch: str, version: str) -> dict:
    """tasks.monitoring.drift.compare with the `monitor` params, named `batch` of model `version`."""
    m = p.monitor
    result = drift.compare(reference, features, probability, ood_score, m.alpha, m.components, m.permutations,
                           m.max_films, m.seed)
    return {**result, "batch": batch, "model_version": version}


def report(reference: dict, features, probability, ood_score, result: dict, root: Path) -> dict:
    """The batch's figure and report under `root/batches/` (statistics only), their paths added to `result`."""
    from tasks.measure import plots

    result["figure"] = str(plots.drift(reference, features, probability, ood_score, result,
                                       root / "batches" / f"{result['batch']}.png"))
    result["report"] = str(write_json(root / "batches" / f"{result['batch']}.json", result))
    return result


def alert(site: str, uri: str, source: str, result: dict) -> str:
    """The alert's text: the site, each statistic that crossed, its p-value, and what to do next (`source`: the
    query's flag for where the films are, `--images FOLDER` or `--pacs`)."""
    crossed = "; ".join(f"{t} drift (p = {result[t]['p_value']:.4f} < {result['alpha'] / len(drift.TESTS):.4f})"
                        for t in result["drifted"])
    return (f"site {site}: {result['films']} new films do not look like {uri}'s reference: {crossed}; "
            f"pneumonia rate {100 * result['pneumonia_rate']:.0f} % vs {100 * result['pneumonia_rate_reference']:.0f}"
            f" % on the reference. Next: `pneumonia-site query --site {site} {source}` picks the films to "
            "label, then `pneumonia-site adapt` fits a site model")


def run(p: Params, site: str, images: str | Path, model_uri: str | None = None,
        progress: bool | None = None) -> dict:
    """Score the new films, test the batch; returns {site, model_uri, scored, waiting, errors, result, alert}."""
    from tasks.records import registry, tracking

    tracking.configure(p)
    images = Path(images)
    uri = model_uri or registry.served_uri(p, site)
    try:
        model = registry.load(uri)
    except LookupError as err:
        raise StepError(str(err)) from None
    inner = model.unwrap_python_model()
    reference = reference_of(inner, uri)
    version = registry.version_of(uri) or uri
    store = Store(folder(p, site))
    paths, digests, errors = new_films(images, store, version)
    scored = score(inner, images, paths, digests, version, store, errors, progress)
    return {"scored": scored, "errors": errors,
            **test_and_record(p, site, uri, version, reference, store, f"--images {images}")}


def reference_of(inner, uri: str) -> dict:
    """The served model's monitoring reference; StepError for a package made before it existed."""
    if getattr(inner, "reference", None) is None:
        raise StepError(f"{uri} was packaged without a monitoring reference: rerun evaluate and package "
                        "(`dvc repro`) and register it, or monitor with --model-uri of a newer version")
    return inner.reference


def test_and_record(p: Params, site: str, uri: str, version: str, reference: dict, store: Store,
                    source: str) -> dict:
    """Test the films of `version` waiting in the site's store as one batch once `monitor.min_films` wait,
    record the batch in MLflow and word the alert; {site, model_uri, model_version, waiting, result, alert}.
    pneumonia-monitor (a folder) and the reading room's passes (the archive: `source` "--pacs") share it."""
    result = test_batch(p, reference, store, version, folder(p, site))
    waiting = int(((store.table.model_version == version) & (store.table.batch == "")).sum())
    return conclude(p, site, uri, version, result, source, waiting=waiting)


def conclude(p: Params, site: str, uri: str, version: str, result: dict | None, source: str,
             waiting: int = 0) -> dict:
    """The run's outcome: the alert worded on drift, and a tested batch recorded in MLflow (`<model>-monitoring`)."""
    from tasks.recorders import monitoring as record
    from tasks.records import registry

    out = {"site": site, "model_uri": uri, "model_version": version, "waiting": waiting, "result": result,
           "alert": alert(site, uri, source, result) if result and result["drift"] else None}
    if result is not None:
        record.record_monitoring(p, f"{registry.model_name(p)}-monitoring", site, out)
    return out


def summary(out: dict, min_films: int) -> str:
    """The run in a few lines of markdown: a table of the three tests when a batch was tested."""
    version = f" (version {out['model_version']})" if out["model_version"] != out["model_uri"] else ""
    head = f"site `{out['site']}`, model `{out['model_uri']}`{version}: " + (
        f"a table of {out['films']} scored film(s), {out['sampled']} of them scored again for the feature test"
        if "sampled" in out else f"{out['scored']} new film(s) scored")
    r = out["result"]
    if r is None:
        return f"{head}; {out['waiting']} waiting for a batch of {min_films} before the drift test\n"
    rows = "\n".join(f"| {t} | {r[t]['statistic']:.4f} | {r[t]['p_value']:.4f} | "
                     f"{'**drift**' if t in r['drifted'] else 'ok'} |" for t in drift.TESTS)
    return (f"{head}; batch `{r['batch']}` of {r['films']} films tested against the reference\n\n"
            f"| test | statistic | p-value | at alpha {r['alpha']} / 3 |\n|---|---|---|---|\n{rows}\n\n"
            f"predicted pneumonia {100 * r['pneumonia_rate']:.1f} % (reference "
            f"{100 * r['pneumonia_rate_reference']:.1f} %), flagged out of distribution "
            f"{100 * r['ood']['statistic']:.1f} % (reference {100 * r['ood']['reference']:.1f} %)\n\n"
            + (f"**ALERT**: {out['alert']}\n" if out["alert"] else "no drift\n"))
