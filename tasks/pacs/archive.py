"""The edge to the hospital's archive: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) through `dicomweb-client`.

Credentials never come from params.yaml: `PNEUMONIA_PACS_USER` and `PNEUMONIA_PACS_PASSWORD` (HTTP basic) or
`PNEUMONIA_PACS_TOKEN` (a bearer token) from the environment. A refused connection, a timeout and a 5xx are
retried with exponential backoff by urllib3's `Retry` under the client's session (STOW included: a store is
idempotent here, since a result's UID is derived from its source and model version); what still fails is an
`ArchiveError` with one line that names the archive and the status, never a UID.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from tasks.core.config import Pacs
from tasks.core.errors import StepError

URL_ENV = "PNEUMONIA_PACS_URL"
RETRIED = (500, 502, 503, 504, 429)
# QIDO-RS fields a pass needs: the gate reads the header of the retrieved instance itself
FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality")


class ArchiveError(StepError):
    """The archive is down, refused the request, or answered what cannot be read (exit 1: the next pass retries)."""

    exit_code = 1


@dataclass(frozen=True)
class Film:
    """One instance in the archive, by its UIDs (kept in memory only: never logged or written)."""
    study: str
    series: str
    instance: str


def url(section: Pacs, given: str | None = None) -> str:
    """The archive's DICOMweb root: `given` (--pacs), else $PNEUMONIA_PACS_URL, else params' `pacs.url`;
    StepError for one that is not an http(s) address."""
    from urllib.parse import urlsplit

    root = (given or os.environ.get(URL_ENV) or section.url).rstrip("/")
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StepError(f"the archive's address {root!r} is not an http(s) DICOMweb root: give --pacs "
                        f"http://HOST:PORT/dicom-web (or set {URL_ENV}, or params.yaml pacs.url)")
    return root


def connect(section: Pacs, root: str):
    """A DICOMweb client of the archive at `root`, with the environment's credentials and the retry policy."""
    import requests
    from dicomweb_client import DICOMwebClient
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    if os.environ.get("PNEUMONIA_PACS_TOKEN"):
        session.headers["Authorization"] = f"Bearer {os.environ['PNEUMONIA_PACS_TOKEN']}"
    elif os.environ.get("PNEUMONIA_PACS_USER"):
        session.auth = (os.environ["PNEUMONIA_PACS_USER"], os.environ.get("PNEUMONIA_PACS_PASSWORD", ""))
    retry = Retry(total=section.retries, connect=section.retries, read=section.retries, status=section.retries,
                  status_forcelist=RETRIED, allowed_methods=None, backoff_factor=section.backoff_seconds,
                  raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    client = DICOMwebClient(root, session=session, timeout=section.timeout_seconds)
    client.set_http_retry_params(retry=False)  # the session retries (connection errors too)
    return client


def failed(root: str, what: str, err: Exception) -> ArchiveError:
    """One line for a failed request: the archive, what was asked, the HTTP status or the connection's fault."""
    import requests

    response = getattr(err, "response", None)
    if response is not None and getattr(response, "status_code", None):
        why = f"HTTP {response.status_code} {response.reason or ''}".strip()
    elif isinstance(err, requests.ConnectionError):
        why = "cannot connect (is the archive up and the address right?)"
    elif isinstance(err, requests.Timeout):
        why = "timed out"
    else:
        why = type(err).__name__
    return ArchiveError(f"the archive at {root} {what}: {why}")


def new_films(client, root: str, modalities, study_date: str | None) -> list[Film]:
    """Every instance of the given modalities (in studies from `study_date`, a QIDO date range, when given): one
    instance-level query per modality, paged by the client."""
    import requests

    films = []
    for modality in modalities:
        filters = {"Modality": modality, **({"StudyDate": study_date} if study_date else {})}
        try:
            for i in client.search_for_instances(search_filters=filters, fields=FIELDS, get_remaining=True):
                films.append(Film(*(i[tag]["Value"][0] for tag in ("0020000D", "0020000E", "00080018"))))
        except (requests.RequestException, KeyError, IndexError) as err:
            raise failed(root, "could not be searched (QIDO-RS)", err) from None
    return films


def retrieve(client, film: Film):
    """The instance as a pydicom Dataset; None when it is gone (deleted since the query). Other failures raise."""
    import requests

    try:
        # as stored ("*"): the archive would otherwise transcode to Explicit VR Little Endian, and refuse what it
        # cannot decode itself; the model's decoder names the codec to install
        return client.retrieve_instance(film.study, film.series, film.instance,
                                        media_types=(("application/dicom", "*"),))
    except requests.HTTPError as err:
        if err.response is not None and err.response.status_code == 404:
            return None
        raise


def store(client, datasets: list) -> None:
    """STOW-RS `datasets`, each into its own study, in one request (raises requests' error when refused: the
    caller keeps them)."""
    client.store_instances(datasets)
