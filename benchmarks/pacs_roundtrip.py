"""The reading room's cost: N instances through a real Orthanc and `pneumonia-pacs`, beside `pneumonia-predict`
on the same films as files, in the same run.

    python benchmarks/pacs_roundtrip.py --model-uri /path/to/package [--images ../shared/data/chest_xray/train]
        [--n 1000] [--latency 10]

The films (the first --n of --images, as CR chest PA instances of children, each its own study, with fake
patient values) are uploaded to an Orthanc on 127.0.0.1 (not timed), then:
- predict: tasks.scoring.predict.predict_files on the same films as .dcm files (read, decode, score), films per second;
- pass: one tasks.pacs.inbox.run_pass over all of them (query, retrieve, gate, score, build an SR each, store),
  films per second in and out, and its share of predict's rate (goal: at least 70 %);
- latency: --latency times, one new study uploaded, then a pass, until its SR is readable in the archive:
  p50 and max seconds (goal: p50 at most 2 s beyond the polling interval);
- memory: the process's RSS after each chunk of the big pass; "flat" when the last tenth's peak is within 5 %
  of the first tenth's.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from machine import cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-uri", required=True)
    ap.add_argument("--images", default="../shared/data/chest_xray/train")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--latency", type=int, default=10)
    args = ap.parse_args()
    from dicomweb_client import DICOMwebClient
    from PIL import Image

    from tasks.cli import configure_logging, quiet_dicom_libraries
    from tasks.core.native import import_tensorflow
    from tasks.pacs import inbox
    from tasks.records import registry
    from tasks.scoring import predict
    from tests.helpers import write_params
    from tests.orthanc import film, orthanc, upload

    configure_logging()
    quiet_dicom_libraries()
    print(f"CPU: {cpu()}")
    files = sorted(f for f in Path(args.images).resolve().rglob("*") if f.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if not files:
        sys.exit(f"no films under {args.images}")
    files = [files[i] for i in np.linspace(0, len(files) - 1, args.n).astype(int)]  # both classes, spread
    import_tensorflow()
    model = registry.load(args.model_uri)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        p = write_params(Path(tmp))
        datasets = [film(i, pixels=np.asarray(Image.open(f).convert("L")), PatientAge="003Y")
                    for i, f in enumerate(files)]
        Path("films").mkdir()
        for i, ds in enumerate(datasets):
            ds.save_as(f"films/{i:05d}.dcm", enforce_file_format=True)
        dcm = sorted(Path("films").glob("*.dcm"))
        start = time.perf_counter()
        table, _ = predict.predict_files(model, dcm, progress=False)
        local = len(table) / (time.perf_counter() - start)
        print(f"predict: {len(table)} films in {len(table) / local:.1f} s = {local:.1f} films/s")
        with orthanc(Path(tmp)) as root:
            for i in range(0, len(datasets), 100):
                upload(root, datasets[i:i + 100])
            rss, stop = [], threading.Event()
            proc = psutil.Process()

            def sample():
                while not stop.wait(0.5):
                    rss.append(proc.memory_info().rss)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            start = time.perf_counter()
            out = inbox.run_pass(p, "bench", root, args.model_uri, progress=False)
            seconds = time.perf_counter() - start
            stop.set()
            sampler.join()
            rate = out["films"] / seconds
            print(f"pass: {out['films']} films in {seconds:.1f} s = {rate:.1f} films/s in and out "
                  f"({out['scored']} scored, {out['refused']} refused, {out['stored']} SRs stored): "
                  f"{100 * rate / local:.0f} % of predict's rate (goal >= 70 %)")
            tenth = max(1, len(rss) // 10)
            first, last = max(rss[:tenth]), max(rss[-tenth:])
            print(f"memory: RSS {first / 2**20:.0f} MiB in the first tenth, {last / 2**20:.0f} MiB in the last "
                  f"({100 * (last - first) / first:+.1f} %: {'flat' if last <= 1.05 * first else 'growing'})")
            client = DICOMwebClient(root)
            waits = []
            for k in range(args.latency):
                one = film(100_000 + k, pixels=datasets[k].pixel_array, PatientAge="003Y")
                upload(root, [one])
                arrived = time.perf_counter()
                inbox.run_pass(p, "bench", root, args.model_uri, progress=False)
                while not client.search_for_instances(search_filters={"Modality": "SR",
                                                                       "StudyInstanceUID": one.StudyInstanceUID}):
                    time.sleep(0.05)
                waits.append(time.perf_counter() - arrived)
            print(f"latency: study arrival to its SR readable, {len(waits)} passes: p50 {np.median(waits):.2f} s, "
                  f"max {max(waits):.2f} s (goal p50 <= 2 s beyond the polling interval)")


if __name__ == "__main__":
    main()
