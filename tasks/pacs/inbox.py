"""One pass of a site's reading room: the archive's new films in, a result object for each back into its study.

    query (QIDO-RS) -> skip films this model version decided -> retrieve (WADO-RS), `chunk` at a time ->
    intended-use gate on the header -> score the rest (tasks.scoring.predict.score_payloads: the one scoring path) ->
    out-of-distribution flag as the second gate -> an SR per film into the outbox -> store (STOW-RS)

The model is the one the site is served (`@site-<name>`, else `@champion`), resolved to its version once per
pass, so a promotion during a pass does not mix versions. Results waiting from an earlier pass are stored first.
A store the archive refuses or cannot take leaves its results in the outbox for the next pass and ends the pass
with one line (exit 1: worth a retry). Nothing of a film's header reaches the printout, a log or the audit trail.
"""
from __future__ import annotations

import datetime as dt
import io
import sys
import time
from collections import Counter
from pathlib import Path

from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.pacs import archive, audit, watch
from tasks.pacs.archive import ArchiveError
from tasks.pacs.ledger import Ledger, one_pass
from tasks.pacs.report import Result

CHUNK_STORE = 64  # results per STOW-RS request
OUTSIDE = "the image does not look like the frontal chest films the model learned (out-of-distribution flag)"


def site_folder(p: Params, site: str) -> Path:
    return Path(p.paths.pacs) / site


def study_dates(days: int, today: dt.date | None = None) -> str | None:
    """The QIDO-RS StudyDate range of the last `days` days (`YYYYMMDD-`), None for every study."""
    if not days:
        return None
    return f"{((today or dt.date.today()) - dt.timedelta(days=days)):%Y%m%d}-"


def served(p: Params, site: str, model_uri: str | None) -> tuple[str, str, str]:
    """(pinned URI, registered name, version) of what the site is served, resolved once per pass."""
    from tasks.records import registry

    uri = model_uri or registry.served_uri(p, site)
    try:
        pinned = registry.pinned(uri)
        version = registry.version_of(pinned)
    except LookupError as err:
        raise StepError(str(err)) from None
    name = pinned.removeprefix("models:/").split("/")[0] if version else Path(uri.rstrip("/")).name
    return pinned, name, version or "unregistered"


def part10(ds) -> bytes:
    """The instance as a DICOM file's bytes (what the pyfunc decodes, as it decodes a .dcm on disk)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def deliver(client, root: str, ledger: Ledger, folder: Path) -> tuple[int, ArchiveError | None]:
    """Store every result in the outbox, CHUNK_STORE a request: (stored, the failure or None)."""
    import pydicom
    import requests

    waiting, stored = ledger.waiting(), 0
    for start in range(0, len(waiting), CHUNK_STORE):
        items = waiting[start:start + CHUNK_STORE]
        try:
            archive.store(client, [pydicom.dcmread(file) for *_, file in items])
        except requests.RequestException as err:
            failure = archive.failed(root, "did not take the results (STOW-RS)", err)
            return stored, ArchiveError(f"{failure}; {len(waiting) - stored} result(s) kept in {ledger.outbox} "
                                        "for the next pass")
        for film, version, file in items:
            ledger.stored(film, version, file)
        audit.append(folder, [{"instance": film, "version": version, "event": "stored", "result": "archive"}
                              for film, version, _ in items])
        stored += len(items)
    return stored, None


def decide(p: Params, model, name: str, version: str, datasets: dict) -> tuple[dict, tuple | None]:
    """({film: Result}, (scored table, features) or None) for the retrieved `datasets` ({film: Dataset}): refused
    by the header's intended use, by a payload the model cannot decode, or by the out-of-distribution flag; else
    scored. The table and the penultimate features of what was scored feed the site's monitoring (tasks.pacs.watch)."""
    from tasks.imaging.intended_use import refusal
    from tasks.scoring.predict import score_payloads

    results = {}
    for film, ds in datasets.items():
        reason = refusal(ds, p.intended_use)
        if reason:
            results[film] = Result(name, version, reason=reason)
    todo = [f for f in datasets if f not in results]
    errors: dict = {}
    table, features = score_payloads(model, todo, [part10(datasets[f]) for f in todo], errors,
                                     features=True) if todo else (None, None)
    for film, why in errors.items():
        results[film] = Result(name, version, reason=f"cannot be read: {why}")
    for row in ([] if table is None else table.itertuples()):
        inside = bool(row.in_distribution)
        results[row.file] = Result(name, version, reason=None if inside else OUTSIDE,
                                   probability=float(row.probability), threshold=float(row.threshold),
                                   in_distribution=inside)
    return results, None if table is None else (table, features)


def run_pass(p: Params, site: str, root: str | None = None, model_uri: str | None = None,
             progress: bool | None = None) -> dict:
    """One pass for `site` against the archive at `root` (default params' `pacs.url`); returns its counts.
    StepError for bad input, ArchiveError when the archive is down or refused a store (results kept)."""
    from tqdm import tqdm

    from tasks.core.native import import_tensorflow
    from tasks.imaging import dicom
    from tasks.pacs.report import build
    from tasks.records import registry

    started = time.monotonic()
    root = archive.url(p.pacs, root)
    folder = site_folder(p, site)
    uri, name, version = served(p, site, model_uri)  # bad input refused before the salt or the site's folder is made
    key = dicom.salt(p.paths.patient_salt)
    with one_pass(folder, site):
        ledger = Ledger(folder)
        client = archive.connect(p.pacs, root)
        earlier, failure = deliver(client, root, ledger, folder)
        if failure:
            raise failure
        films = archive.new_films(client, root, p.intended_use.modalities, study_dates(p.pacs.lookback_days))
        decided = ledger.done(version)
        todo = [f for f in films if dicom.keyed(f.instance, key) not in decided]
        counts, reasons, gone, stored = Counter(), Counter(), 0, 0
        model, stream = None, watch.open_store(p, site)
        with tqdm(total=len(todo), unit="film", desc="pacs", file=sys.stderr,
                  disable=not progress if progress is not None else None) as bar:
            for start in range(0, len(todo), p.pacs.chunk):
                chunk = todo[start:start + p.pacs.chunk]
                datasets, studies = {}, {}
                for film in chunk:
                    try:
                        ds = archive.retrieve(client, film)
                    except Exception as err:  # noqa: BLE001 - reported as the archive's one line
                        raise archive.failed(root, "could not send a film (WADO-RS)", err) from None
                    if ds is None:
                        gone += 1
                        continue
                    film_key = dicom.keyed(film.instance, key)
                    datasets[film_key], studies[film_key] = ds, dicom.keyed(film.study, key)
                if model is None and datasets:
                    import_tensorflow()
                    model = registry.load(uri)
                results, scored = decide(p, model, name, version, datasets)
                if scored is not None:
                    watch.add(stream, version, *scored)
                for film_key, result in results.items():
                    ledger.keep(film_key, version, build(datasets[film_key], result))
                    counts["refused" if result.reason else result.label] += 1
                    if result.reason:
                        reasons[result.reason] += 1
                audit.append(folder, [{"study": studies[k], "instance": k, "model": name, "version": version,
                                       "decision": "refused" if r.reason else "scored", "reason": r.reason,
                                       "probability": r.probability, "label": r.label,
                                       "in_distribution": r.in_distribution, "result": "outbox"}
                                      for k, r in results.items()])
                done, failure = deliver(client, root, ledger, folder)
                stored += done
                bar.update(len(chunk))
                if failure:
                    break
    checked = watch.test(p, site, uri, version, model, stream) if not failure else None
    summary = {"site": site, "model": uri, "version": version, "films": len(todo), "scored": counts["NORMAL"]
               + counts["PNEUMONIA"], "pneumonia": counts["PNEUMONIA"], "refused": counts["refused"],
               "reasons": dict(reasons), "gone": gone, "stored": stored + earlier,
               "waiting": len(ledger.waiting()), "seconds": time.monotonic() - started,
               "drift": None if checked is None else checked["result"],
               "alert": None if checked is None else checked["alert"]}
    if failure:
        raise failure
    return summary
