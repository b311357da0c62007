"""A site's films from the archive, for onboarding: the films the archive holds that the model is meant for
(QIDO-RS over `pacs.lookback_days`, the intended-use gate on each header), retrieved once (WADO-RS) into
`<paths.pacs>/<site>/films/`, so `pneumonia-site query --pacs`, the reviewer's page and adapt work on them as on
any folder of films.

Each file is named by salted keys, `dicom-<patient key>-<instance key>.dcm` (the patient key is ingest's, from
PatientID): the patient groups the measurement sample and the cross-fitting folds, and no UID or ID can be read
from a name, a worklist or a labels file. The files keep the patient module, as the archive's copies do; the
folder is under `paths.pacs`, which git ignores. A pull fetches only instances it does not hold yet.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from tasks.core.config import Params
from tasks.core.files import atomic
from tasks.imaging import dicom
from tasks.imaging.intended_use import refusal
from tasks.pacs import archive
from tasks.pacs.inbox import site_folder, study_dates


def films_folder(p: Params, site: str) -> Path:
    return site_folder(p, site) / "films"


def pull(p: Params, site: str, root: str | None = None, progress: bool | None = None) -> tuple[Path, Counter]:
    """(the site's films folder, counts: new, held (already there), refused (intended use), gone (deleted since the
    query)). ArchiveError (exit 1) when the archive is down; nothing half-written is left."""
    from tqdm import tqdm

    root = archive.url(p.pacs, root)
    folder = films_folder(p, site)
    client = archive.connect(p.pacs, root)
    films = archive.new_films(client, root, p.intended_use.modalities, study_dates(p.pacs.lookback_days))
    key = dicom.salt(p.paths.patient_salt)  # made once the archive answered: a refused pull writes nothing
    held = {f.stem.rsplit("-", 1)[-1] for f in folder.glob("dicom-*.dcm")}
    counts = Counter()
    for film in tqdm(films, unit="film", desc="pacs films", file=sys.stderr,
                     disable=not progress if progress is not None else None):
        instance = dicom.keyed(film.instance, key)
        if instance in held:
            counts["held"] += 1
            continue
        try:
            ds = archive.retrieve(client, film)
        except Exception as err:  # noqa: BLE001 - reported as the archive's one line
            raise archive.failed(root, "could not send a film (WADO-RS)", err) from None
        if ds is None:
            counts["gone"] += 1
        elif refusal(ds, p.intended_use):
            counts["refused"] += 1
        else:
            patient = dicom.keyed(str(ds.get("PatientID", "") or "").strip() or film.instance, key)
            with atomic(folder / f"dicom-{patient}-{instance}.dcm") as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            held.add(instance)
            counts["new"] += 1
    return folder, counts
