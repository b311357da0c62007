"""A real Orthanc on 127.0.0.1 for tests (Debian's `orthanc` and `orthanc-dicomweb`), and generated studies.

Every generated study carries fake patient values (PHI below) that the tests then look for in every output."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.mlflow_server import free_port, stop, wait_http

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PHI = {"PatientName": "Roe^Rosalind", "PatientID": "PHI-3141592", "PatientBirthDate": "20220315",
       "AccessionNumber": "ACC-271828", "ReferringPhysicianName": "Dr^Who", "InstitutionName": "St Elsewhere"}
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"


def available() -> bool:
    return Path(ORTHANC).exists() and PLUGIN.exists()


needs_orthanc = pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed "
                                                           "(apt install orthanc orthanc-dicomweb; .ci/run does)")


@contextmanager
def orthanc(folder: Path, overwrite: bool = False):
    """Yield the DICOMweb root of an Orthanc with its own storage under `folder` (no DICOM port, no auth)."""
    port = free_port()
    config = {"Name": "test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "OverwriteInstances": overwrite, "Plugins": [str(PLUGIN)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")
    proc = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/system", 60, proc)
        yield f"http://127.0.0.1:{port}/dicom-web"
    finally:
        stop(proc, log)


def film(seed: int, size: int = 96, pixels: np.ndarray | None = None, **header):
    """A chest film (generated, or `pixels`) as a CR instance of its own study, with the fake patient values and
    `header` on top (view PA, chest, a 3-year-old, today's study date unless overridden; None deletes a key)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from tasks.sources.demo import chest_image

    if pixels is None:
        pixels = chest_image(np.random.default_rng(seed), size, pneumonia=bool(seed % 2))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CR_IMAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CR_IMAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID = dt.date.today().strftime("%Y%m%d"), "101500", "1"
    ds.SeriesNumber, ds.InstanceNumber, ds.PatientSex = 1, 1, "F"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition, ds.PatientAge = "CR", "CHEST", "PA", "003Y"
    for key, value in PHI.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = pixels.tobytes()
    for key, value in header.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def upload(root: str, datasets) -> None:
    from dicomweb_client import DICOMwebClient

    DICOMwebClient(root).store_instances(list(datasets))


@contextmanager
def faulty(upstream: str, **faults):
    """A proxy on 127.0.0.1 in front of the archive at `upstream` (a DICOMweb root) that injects one fault:
    `post_status` (answer every store with this status, storing nothing), `post_then_hang` (forward the store,
    then hold the answer back until the test ends: a pass killed after the archive took its results), `gone` (a
    set of instance UIDs whose retrieval answers 404: deleted between query and retrieve). Yields (its root, the
    events it saw)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    import requests

    base = urlsplit(upstream)
    seen = {"posted": threading.Event(), "release": threading.Event()}

    class Proxy(BaseHTTPRequestHandler):
        def forward(self, body: bytes | None):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            return requests.request(self.command, f"{base.scheme}://{base.netloc}{self.path}", headers=headers,
                                    data=body, timeout=30)

        def answer(self, response):
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("Content-Type", "application/octet-stream"))
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def do_GET(self):
            if any(uid in self.path for uid in faults.get("gone", ())):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.answer(self.forward(None))

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if faults.get("post_status"):
                seen["posted"].set()
                self.send_response(faults["post_status"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            response = self.forward(body)
            seen["posted"].set()
            if faults.get("post_then_hang"):
                seen["release"].wait(120)
            self.answer(response)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{base.path}", seen
    finally:
        seen["release"].set()
        server.shutdown()
