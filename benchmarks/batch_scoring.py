"""Batch scoring speed and memory: a folder of 10,000 films through `pneumonia-predict`'s path, beside the
forward-pass ceiling measured in the same run.

    python benchmarks/batch_scoring.py [--model-uri models:/pneumonia-classifier@champion]
        [--images ../shared/data/chest_xray/test] [--n 10000] [--unreadable 0.1]

The folder holds --n links to the films of --images, repeated (written under a temporary folder). Three
figures, images per second each, on the same model and the same CPU:
- ceiling: the network alone (tasks.measure.inference.forward) on normalised batches with the model's TTA views;
- pixels: decoded uint8 pixels -> scores and ood (tasks.scoring.serving.predict_frame), no file reading or decoding;
- batch: files -> table (tasks.scoring.predict.predict_files through the pyfunc: read, base64, decode, score).
With --unreadable, that share of the files (every k-th) are not images: each is named in the errors and the
rest scored. Peak RSS is sampled after every chunk; "flat" means the peak after the last tenth of the films is within
5 % of the peak after the first tenth.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from machine import cpu


def ceiling(inner, images: np.ndarray, repeats: int) -> tuple[float, float]:
    """(network-only, pixels->scores) images per second on `images` (uint8, N x S x S)."""
    from tasks.imaging.preprocess import normalize
    from tasks.measure.inference import forward, views
    from tasks.scoring.serving import CHUNK, predict_frame

    cfg = inner.config
    fn = forward(inner.model)
    batches = [np.concatenate(views(normalize(images[i:i + CHUNK], cfg.normalize), cfg.tta))
               for i in range(0, len(images), CHUNK)]
    for b in batches[:2]:  # warm-up
        fn(b[:64])
    start = time.perf_counter()
    for _ in range(repeats):
        for b in batches:
            for i in range(0, len(b), 64):
                fn(b[i:i + 64])
    network = repeats * len(images) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(0, len(images), CHUNK):
            predict_frame(inner.model, cfg, inner.detector, images[i:i + CHUNK])
    pixels = repeats * len(images) / (time.perf_counter() - start)
    return network, pixels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-uri", default=None, help="default: this checkout's @champion")
    ap.add_argument("--images", default="../shared/data/chest_xray/test")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--unreadable", type=float, default=0.0, help="share of the files that are not images")
    args = ap.parse_args()
    from tasks.core import config
    from tasks.imaging.images import load_gray
    from tasks.records import registry, tracking
    from tasks.scoring import predict

    tracking.configure(config.load())
    uri = args.model_uri or predict.default_uri()
    films = predict.image_files([args.images])
    print(f"CPU: {cpu()}, {os.cpu_count()} cores; model {uri}; {len(films)} distinct films from {args.images}")
    model = registry.load(uri)
    inner = model.unwrap_python_model()
    pixels = np.stack([load_gray(f.read_bytes(), inner.config.image_size) for f in films])
    network, frame = ceiling(inner, pixels, repeats=max(1, 2000 // len(pixels)))
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        every = round(1 / args.unreadable) if args.unreadable else 0
        for i in range(args.n):
            source = films[i % len(films)].resolve()
            if every and i % every == every - 1:
                (folder / f"{i:05d}{source.suffix}").write_bytes(b"not an image")
            else:
                os.symlink(source, folder / f"{i:05d}{source.suffix}")
        bad = args.n // every if every else 0
        files = predict.image_files([str(folder)])
        peaks, done = [], 0
        original = predict._score_chunk

        def sampled(*a, **k):  # RSS after each chunk, to see whether memory grows with the number of films
            nonlocal done
            out = original(*a, **k)
            done += len(a[1])
            peaks.append((done, process.memory_info().rss))
            return out

        predict._score_chunk = sampled
        start = time.perf_counter()
        table, errors = predict.predict_files(model, files, progress=True)
        seconds = time.perf_counter() - start
        predict._score_chunk = original
    assert len(table) == args.n - bad and len(errors) == bad, (len(table), len(errors))
    batch = args.n / seconds
    rss = np.array([r for _, r in peaks]) / 2**20
    tenth = max(1, len(rss) // 10)
    first, last = rss[:tenth].max(), rss[-tenth:].max()
    print(f"ceiling (network only, {inner.config.tta} TTA views + the image): {network:7.1f} img/s")
    print(f"pixels -> scores + ood (predict_frame):       {frame:7.1f} img/s  "
          f"({100 * frame / network:.0f} % of ceiling)")
    print(f"files -> table ({args.n:,} files, {bad} not images, pneumonia-predict's path): {batch:7.1f} img/s  "
          f"({100 * batch / network:.0f} % of ceiling), {seconds:.0f} s")
    print(f"peak RSS: {first:.0f} MiB after the first tenth, {last:.0f} MiB after the last tenth "
          f"({'flat' if last <= 1.05 * first else 'GROWS'}), {rss.max():.0f} MiB at most")


if __name__ == "__main__":
    main()
