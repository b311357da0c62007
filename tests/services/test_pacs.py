"""The reading room against a real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) on 127.0.0.1: generated
studies with fake patient values in, an SR per film back, read with the same DICOMweb client; the archive's
faults and a killed pass; no patient value or UID in clear in any output."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from PIL import Image

from tasks.pacs.ledger import one_pass
from tasks.pacs.report import read
from tests.helpers import write_params
from tests.orthanc import PHI, faulty, film, needs_orthanc, orthanc, upload
from tests.services.conftest import OPEN_GATE

pytestmark = [pytest.mark.slow, needs_orthanc]
BIN = Path(sys.executable).parent
FAST_RETRY = {"pacs": {"retries": 1, "backoff_seconds": 0.05, "chunk": 2}}


def pacs(root: str, *args, site: str = "st1", wait: bool = True):
    cmd = [str(BIN / "pneumonia-pacs"), "--site", site, "--pacs", root, *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def demo_pixels(n: int) -> list[np.ndarray]:
    """Films of the champion's own data, so the out-of-distribution flag passes them."""
    files = sorted(Path("data/raw/demo/chest_xray").rglob("*.png"))[:n]
    return [np.asarray(Image.open(f).convert("L")) for f in files]


def results(root: str) -> dict:
    """{source SOP instance UID: what its SR says} of every SR in the archive (duplicates would be counted)."""
    client = DICOMwebClient(root)
    out, count = {}, 0
    for hit in client.search_for_instances(search_filters={"Modality": "SR"}, get_remaining=True):
        study, series, uid = (hit[k]["Value"][0] for k in ("0020000D", "0020000E", "00080018"))
        got = read(client.retrieve_instance(study, series, uid))
        out[got["source"]] = got
        count += 1
    assert count == len(out), "two results for one film"
    return out


def no_patient_value(texts: list[str], uids: list[str]) -> None:
    for text in texts:
        for value in [*PHI.values(), *uids]:
            assert value not in text, f"{value!r} leaked"


def outputs(folder: Path) -> list[str]:
    """Every file name and every byte (as text) the pass left in the site's folder, the outbox included."""
    texts = []
    for f in folder.rglob("*"):
        texts.append(str(f.relative_to(folder)))
        if f.is_file() and f.suffix != ".dcm":  # the outbox's SRs hold the patient module, as they must
            texts.append(f.read_bytes().decode("latin-1"))
    return texts


def test_a_pass_stores_an_sr_per_film_as_scored_by_pneumonia_predict_and_refuses_the_others(registry, tmp_path):
    p, client, name = registry
    version = str(client.get_model_version_by_alias(name, "champion").version)
    good = [film(i, pixels=px, ViewPosition="AP" if i % 2 else "PA") for i, px in enumerate(demo_pixels(4))]
    junk = film(20)
    junk.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    junk.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51 not a codestream"])
    empty = film(21)
    del empty.PixelData
    colour = film(22)
    colour.PixelData = np.repeat(colour.pixel_array[..., None], 3, axis=-1).tobytes()
    colour.PhotometricInterpretation, colour.SamplesPerPixel, colour.PlanarConfiguration = "RGB", 3, 0
    refused = {"view position is not PA or AP": film(10, ViewPosition="LL"),
               "body part is not CHEST": film(11, BodyPartExamined="ABDOMEN"),
               "patient age outside": film(12, PatientAge="040Y"),
               "multi-frame": film(13, NumberOfFrames=2), "colour image": colour,
               "no installed decoder": junk, "without pixel data": empty}
    refused["multi-frame"].PixelData = refused["multi-frame"].PixelData * 2
    inbox = Path("films")
    inbox.mkdir()
    for i, ds in enumerate(good):
        ds.save_as(inbox / f"{i}.dcm", enforce_file_format=True)
    with orthanc(tmp_path) as root:
        upload(root, [*good, *refused.values()])
        first = pacs(root)
        assert first.returncode == 0, first.stderr
        assert "11 new film(s)" in first.stdout and "scored 4" in first.stdout and "refused 7" in first.stdout
        stored = results(root)
        assert len(stored) == 11
        predicted = subprocess.run([str(BIN / "pneumonia-predict"), str(inbox), "--output", "preds.csv",
                                    "--model-uri", f"models:/{name}/{version}"], capture_output=True, text=True)
        assert predicted.returncode == 0, predicted.stderr
        preds = pd.read_csv("preds.csv")
        for i, ds in enumerate(good):
            row = preds[preds.file.str.endswith(f"/{i}.dcm")].iloc[0]
            sr = stored[ds.SOPInstanceUID]
            assert abs(sr["probability"] - row.probability) <= 1e-6 and abs(sr["threshold"] - row.threshold) <= 1e-6
            assert sr["finding"] == ("Present" if row.label == "PNEUMONIA" else "Absent")
            assert (sr["model"], sr["version"], sr["in_distribution"]) == (name, version, True)
        for words, ds in refused.items():
            sr = stored[ds.SOPInstanceUID]
            assert sr["finding"] == "Indeterminate" and words in sr["reason"], (words, sr)
        again = pacs(root)  # once per model version: nothing new, nothing stored twice
        assert again.returncode == 0 and "0 new film(s)" in again.stdout
        assert len(results(root)) == 11
        trail = subprocess.run([str(BIN / "pneumonia-pacs"), "audit", "--site", "st1", "--last", "0"],
                               capture_output=True, text=True)
        assert trail.returncode == 0 and trail.stdout.count("refused") == 7 and trail.stdout.count("stored") == 11
    uids = [uid for ds in [*good, *refused.values()] for uid in (ds.StudyInstanceUID, ds.SOPInstanceUID)]
    no_patient_value([first.stdout, first.stderr, again.stdout, trail.stdout, *outputs(Path(p.paths.pacs))], uids)
    assert not list(Path(p.paths.pacs, "st1", "outbox").glob("*.dcm"))


def test_archive_faults_and_a_killed_pass_lose_nothing_and_store_nothing_twice(registry, tmp_path):
    p = write_params(Path.cwd(), {**OPEN_GATE, **FAST_RETRY})
    films = [film(i, pixels=px) for i, px in enumerate(demo_pixels(6))]
    outbox = Path(p.paths.pacs, "st1", "outbox")
    with orthanc(tmp_path) as root:
        upload(root, films[:2])
        down = pacs("http://127.0.0.1:9/dicom-web")  # nothing listens on the discard port
        assert down.returncode == 1 and "cannot connect" in down.stderr and len(down.stderr.splitlines()) == 1
        for status in (503, 400):  # a store refused: retried (5xx), then kept for the next pass
            with faulty(root, post_status=status) as (proxy, _):
                refused = pacs(proxy)
            assert refused.returncode == 1 and f"HTTP {status}" in refused.stderr, refused.stderr
            assert "2 result(s) kept" in refused.stderr and len(refused.stderr.splitlines()) == 1
            assert len(list(outbox.glob("*.dcm"))) == 2 and results(root) == {}
        with one_pass(Path(p.paths.pacs, "st1"), "st1"):  # a second pass at once
            busy = pacs(root)
        assert busy.returncode == 2 and "another pneumonia-pacs pass of site st1 is running" in busy.stderr
        healed = pacs(root)
        assert healed.returncode == 0 and "2 result(s) stored" in healed.stdout and not list(outbox.glob("*.dcm"))
        assert set(results(root)) == {ds.SOPInstanceUID for ds in films[:2]}
        upload(root, films[2:])  # a film deleted between query and retrieve; a pass killed mid-store
        with faulty(root, gone={films[2].SOPInstanceUID}) as (proxy, _):
            gone = pacs(proxy)
        assert gone.returncode == 0 and "1 gone from the archive" in gone.stdout
        with faulty(root, post_then_hang=True) as (proxy, seen):
            killed = pacs(proxy, wait=False)
            assert seen["posted"].wait(120), "the pass never stored"
            time.sleep(0.5)
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(30)
        rerun = pacs(root)
        assert rerun.returncode == 0, rerun.stderr
        assert set(results(root)) == {ds.SOPInstanceUID for ds in films}  # results() fails on a duplicate
        assert not list(outbox.glob("*.dcm"))
    uids = [uid for ds in films for uid in (ds.StudyInstanceUID, ds.SOPInstanceUID)]
    no_patient_value([down.stderr, busy.stderr, healed.stdout, gone.stdout, rerun.stdout, rerun.stderr,
                      *outputs(Path(p.paths.pacs))], uids)


def test_the_pacs_inbox_flow_runs_a_pass_and_leaves_its_artifact(registry, tmp_path):
    """flows/pacs.py, what the `pacs-inbox` deployment runs: the same pass inside a Prefect flow."""
    films = [film(i, pixels=px) for i, px in enumerate(demo_pixels(2))]
    with orthanc(tmp_path) as root:
        upload(root, films)
        flow = subprocess.run([sys.executable, "-m", "flows.pacs", "--site", "st2", "--pacs", root],
                              capture_output=True, text=True, timeout=600)
        assert flow.returncode == 0, flow.stderr[-2000:]
        assert "2 new film(s)" in flow.stdout + flow.stderr and "2 result(s) stored" in flow.stdout + flow.stderr
        assert set(results(root)) == {ds.SOPInstanceUID for ds in films}
    no_patient_value([flow.stdout, flow.stderr], [uid for ds in films for uid in (ds.StudyInstanceUID,
                                                                                  ds.SOPInstanceUID)])


def test_the_scored_films_join_the_sites_monitoring_with_pneumonia_monitors_numbers(registry, tmp_path):
    """tasks/pacs/watch.py: a pass adds what it scored to the site's monitoring store under salted keys and tests
    a batch once `monitor.min_films` wait, as pneumonia-monitor would on the same films as files."""
    import mlflow

    from tasks.monitoring import monitor

    p = write_params(Path.cwd(), {**OPEN_GATE, "monitor": {"min_films": 5}})
    _, _, name = registry
    films = [film(i, pixels=px) for i, px in enumerate(demo_pixels(6))]
    films.append(film(30, ViewPosition="LL"))  # refused by the intended-use gate: not scored, not monitored
    inbox = Path("films")
    inbox.mkdir()
    for i, ds in enumerate(films[:6]):
        ds.save_as(inbox / f"{i}.dcm", enforce_file_format=True)
    with orthanc(tmp_path) as root:
        upload(root, films)
        first = pacs(root)
        assert first.returncode == 0, first.stderr
        assert "monitoring: batch 0001-" in first.stdout and "of 6 scored films tested" in first.stdout, first.stdout
        again = pacs(root)
        assert again.returncode == 0 and "monitoring" not in again.stdout
    stream = pd.read_csv(Path(p.paths.monitoring, "st1", "scored.csv"), dtype=str)
    assert len(stream) == 6 and stream.path.str.match(r"^pacs:[0-9a-f]{16}$").all()
    assert (stream.batch.str.len() > 0).all()  # all six tested in the first pass's batch
    runs = mlflow.search_runs(experiment_names=[f"{name}-monitoring"], output_format="list")
    assert [r.data.tags["site"] for r in runs] == ["st1"]
    folder = monitor.run(p, "st2", inbox)  # the same films as files: pneumonia-monitor's own scoring
    assert folder["scored"] == 6
    files = pd.read_csv(Path(p.paths.monitoring, "st2", "scored.csv"))
    assert np.allclose(np.sort(files.probability), np.sort(stream.probability.astype(float)), atol=1e-6)
    assert np.allclose(np.sort(np.load(Path(p.paths.monitoring, "st2", "features.npy")).sum(axis=1)),
                       np.sort(np.load(Path(p.paths.monitoring, "st1", "features.npy")).sum(axis=1)), atol=1e-4)
    uids = [uid for ds in films for uid in (ds.StudyInstanceUID, ds.SOPInstanceUID)]
    no_patient_value([first.stdout, first.stderr, *outputs(Path(p.paths.monitoring, "st1"))], uids)


def test_site_onboarding_draws_its_films_from_the_archive(registry, tmp_path):
    """`pneumonia-site query --pacs` (tasks/pacs/pull.py): the archive's intended-use films, pulled once under
    salted names that keep a patient's films together, then the query as on any folder; no UID or patient value in
    a name, the worklist or the printout."""
    p = write_params(Path.cwd(), OPEN_GATE)
    films = [film(i, pixels=px, PatientID=f"PHI-{i // 2}") for i, px in enumerate(demo_pixels(8))]
    lateral = film(40, ViewPosition="LL")
    site = [str(BIN / "pneumonia-site"), "query", "--site", "st1", "--budget", "2", "--pacs"]
    with orthanc(tmp_path) as root:
        upload(root, [*films, lateral])
        first = subprocess.run([*site, root], capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stderr[-2000:]
        assert "8 film(s) pulled from the archive, 0 already here, 1 outside the intended use" in first.stderr
        again = subprocess.run([*site, root], capture_output=True, text=True, timeout=600)
        assert again.returncode == 0 and "0 film(s) pulled from the archive, 8 already here" in again.stderr
    pulled = sorted(Path(p.paths.pacs, "st1", "films").glob("*.dcm"))
    assert len(pulled) == 8 and all(re.fullmatch(r"dicom-[0-9a-f]{16}-[0-9a-f]{16}\.dcm", f.name) for f in pulled)
    assert len({f.name.split("-")[1] for f in pulled}) == 4  # two films a patient, one patient key each
    assert {pydicom.dcmread(f).SOPInstanceUID for f in pulled} == {ds.SOPInstanceUID for ds in films}
    worklist = pd.read_csv(Path(p.paths.sites, "st1", "worklist.csv"))
    assert len(worklist) >= 2 and set(worklist.path) <= {f.name for f in pulled}
    uids = [uid for ds in [*films, lateral] for uid in (ds.StudyInstanceUID, ds.SOPInstanceUID, ds.PatientID)]
    no_patient_value([first.stdout, first.stderr, again.stderr, Path(p.paths.sites, "st1", "worklist.csv").read_text(),
                      *(f.name for f in pulled)], uids)
