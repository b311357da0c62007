"""Archive-scale scoring: the same films through Spark local[1], local[2] and the local batch path, in one run.

    python benchmarks/spark_scoring.py [--model-uri models/package] [--images ../shared/data/chest_xray/test]
        [--n 10000]

The folder holds --n links to the films of --images, repeated (under a temporary folder). Each engine scores the
whole folder with the same model: `pneumonia-predict --engine spark --master local[N]`
(tasks.scoring.spark_scoring: Spark reads, mlflow.pyfunc.spark_udf scores) and the local path
(tasks.scoring.predict.predict_files), each timed from the call to the written table (Spark's start-up included).
Prints the CPU, films per second, local[2] over local[1]
(goal >= 1.7x) and local[2] over the local path (goal >= 80 %; the local path runs first, with TensorFlow's own
threads, before a Spark session sets one thread per task), and the peak RSS of the Spark workers (sampled
every half second) in the first and the last third of the local[2] job.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
from machine import cpu


def worker_peaks(stop: threading.Event, samples: list) -> None:
    """(seconds, total RSS in MiB of this process's Python descendants other than itself), every half second."""
    me = psutil.Process()
    start = time.perf_counter()
    while not stop.wait(0.5):
        rss = 0
        for child in me.children(recursive=True):
            try:
                if "python" in child.name():
                    rss += child.memory_info().rss
            except psutil.Error:
                pass
        samples.append((time.perf_counter() - start, rss / 2**20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-uri", default="models/package")
    ap.add_argument("--images", default="../shared/data/chest_xray/test")
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    from tasks.imaging.images import IMAGE_SUFFIXES
    from tasks.records import registry
    from tasks.scoring import predict, spark_scoring

    print(cpu())
    films = sorted(f for f in Path(args.images).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        for i in range(args.n):
            os.symlink(films[i % len(films)].resolve(), inbox / f"film-{i:05d}{films[i % len(films)].suffix}")
        rates = {}
        start = time.perf_counter()  # first: a Spark session sets one TensorFlow thread per task
        table, errors = predict.predict_files(registry.load(args.model_uri), sorted(inbox.iterdir()), progress=False)
        predict.write_table(table, Path(tmp) / "local.parquet")
        rates["local"] = len(table) / (time.perf_counter() - start)
        print(f"local batch path: {len(table)} films at {rates['local']:.1f} films/s")
        for master in ("local[1]", "local[2]"):
            samples, stop = [], threading.Event()
            watcher = threading.Thread(target=worker_peaks, args=(stop, samples), daemon=True)
            watcher.start()
            start = time.perf_counter()
            spark = spark_scoring.session(master)
            out = spark_scoring.score(spark, [str(inbox)], args.model_uri, "", Path(tmp) / f"{master}.parquet")
            spark.stop()
            rates[master] = out["rows"] / (time.perf_counter() - start)
            stop.set()
            watcher.join()
            third = max(1, len(samples) // 3)
            first, last = (max([m for _, m in part] or [0]) for part in (samples[:third], samples[-third:]))
            print(f"spark {master}: {out['rows']} films ({out['errors']} errors) at {rates[master]:.1f} films/s; "
                  f"workers' RSS peak {first:.0f} MiB in the first third, {last:.0f} MiB in the last")
    print(f"local[2] / local[1]: {rates['local[2]'] / rates['local[1]']:.2f}x (goal >= 1.7x); "
          f"local[2] / local path: {100 * rates['local[2]'] / rates['local']:.0f} % (goal >= 80 %)")


if __name__ == "__main__":
    main()
