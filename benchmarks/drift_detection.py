"""Drift detection and false-alarm rates of pneumonia-monitor's tests, and what monitoring costs beyond scoring.

    python benchmarks/drift_detection.py [--model-uri models/package] [--site ../shared/data/chest_xray/test]
        [--sizes 25 50 100 300] [--draws 50]

Run from a checkout trained on the source data (`pneumonia-pipeline ingest.source=folder ...`). The validation
split's patients are cut in two (seeded): the reference is fitted on half A exactly as evaluate fits the
shipped one (tasks.measure.reference, at most evaluate.reference.films films), and half B, films of the training
acquisition the reference never held, is the inbox of the false-alarm draws. The detection draws come from the
site folder (another acquisition). Each draw of n films goes through tasks.monitoring.drift.compare with params.yaml
`monitor:`; the table gives the share of draws flagged, with its 95 % Wilson interval. Then
`pneumonia-monitor`'s task (tasks.monitoring.monitor.run) monitors the whole site folder once, into a temporary folder,
beside the time scoring the same films takes.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from machine import cpu


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.96
    centre = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def scored(inner, pixels: np.ndarray):
    from tasks.scoring.serving import CHUNK, predict_frame

    frames, feats = [], []
    for i in range(0, len(pixels), CHUNK):
        frame, f = predict_frame(inner.model, inner.config, inner.detector, pixels[i:i + CHUNK], features=True)
        frames.append(frame)
        feats.append(f)
    frame = pd.concat(frames, ignore_index=True)
    return np.concatenate(feats), frame.probability.to_numpy(), frame.ood_score.to_numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-uri", default="models/package")
    ap.add_argument("--site", default="../shared/data/chest_xray/test")
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 300])
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from tasks.core import config
    from tasks.imaging.data import load_splits
    from tasks.imaging.films import listing
    from tasks.imaging.images import load_gray
    from tasks.measure import reference
    from tasks.monitoring import drift, monitor
    from tasks.records import registry

    p = config.load()
    m = p.monitor
    inner = registry.load(args.model_uri).unwrap_python_model()
    split = pd.read_csv(p.paths.split)
    val_patients = split.patient_id[split.split == "val"].to_numpy()
    pixels = load_splits(p.paths)["val"][0]
    rng = np.random.default_rng(args.seed)
    names = np.unique(val_patients)
    in_a = np.isin(val_patients, rng.choice(names, len(names) // 2, replace=False))
    feats, prob, ood = scored(inner, pixels)
    r = p.evaluate.reference
    keep = np.flatnonzero(in_a)[reference.sample(int(in_a.sum()), r.films, r.seed)]
    ref = reference.build(feats[keep], prob[keep], ood[keep], inner.config.threshold)
    pool_b = (feats[~in_a], prob[~in_a], ood[~in_a])
    site_files = listing(args.site)
    site_pixels = np.stack([load_gray(open(f"{args.site}/{f}", "rb").read(), inner.config.image_size)
                            for f in site_files])
    pool_site = scored(inner, site_pixels)
    print(f"CPU: {cpu()}; model {args.model_uri}; reference {len(keep)} validation films (half A, "
          f"{len(names) // 2} patients); false-alarm pool {int((~in_a).sum())} validation films (half B); "
          f"site pool {len(site_files)} films of {args.site}; alpha {m.alpha}, {m.permutations} permutations, "
          f"{args.draws} draws per size")
    rows = []
    for pool_name, pool in (("site (another acquisition)", pool_site), ("validation half B (same)", pool_b)):
        for n in args.sizes:
            if n > len(pool[1]):
                continue
            flagged, by_test = 0, dict.fromkeys(drift.TESTS, 0)
            start = time.perf_counter()
            for d in range(args.draws):
                idx = rng.choice(len(pool[1]), n, replace=False)
                r = drift.compare(ref, pool[0][idx], pool[1][idx], pool[2][idx], m.alpha, m.components,
                                  m.permutations, m.max_films, m.seed + d)
                flagged += r["drift"]
                for t in r["drifted"]:
                    by_test[t] += 1
            lo, hi = wilson(flagged, args.draws)
            rows.append({"inbox": pool_name, "n": n, "flagged": f"{100 * flagged / args.draws:.0f} %",
                         "95 % interval": f"{100 * lo:.0f}-{100 * hi:.0f} %",
                         **{f"by {t}": f"{100 * v / args.draws:.0f} %" for t, v in by_test.items()},
                         "s per test": f"{(time.perf_counter() - start) / args.draws:.2f}"})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))

    with tempfile.TemporaryDirectory() as tmp:
        q = p.model_copy(update={"paths": p.paths.model_copy(update={"monitoring": tmp})})
        start = time.perf_counter()
        scored(inner, np.stack([load_gray(open(f"{args.site}/{f}", "rb").read(), inner.config.image_size)
                                for f in site_files]))
        scoring = time.perf_counter() - start
        start = time.perf_counter()
        out = monitor.run(q, "benchmark", args.site, model_uri=args.model_uri, progress=False)
        whole = time.perf_counter() - start
    print(f"pneumonia-monitor on {out['scored']} site films: {whole:.1f} s in all, {scoring:.1f} s of it scoring "
          f"(decode + predict_frame): monitoring costs {whole - scoring:.1f} s beyond scoring; drift "
          f"{out['result']['drifted'] if out['result'] else 'not tested'}")


if __name__ == "__main__":
    main()
