"""The site learning curve: site accuracy, sensitivity, specificity and AUC against the number of labels, per
query strategy, mean and spread over seeds, every number on films the adaptation never used.

    python benchmarks/site_curve.py --site ../shared/data/chest_xray/test [--budgets 100 50 25]
        [--strategies random typiclust badge] [--seeds 0 1 2] [--out reports/site_curve.jsonl]

Run from a checkout whose `@champion` was trained on the source data (`pneumonia-pipeline
ingest.source=folder ...`). The site's patients are cut into two folds (A, B); labels are drawn only from
fold A by the strategy, the model is adapted on them exactly as `pneumonia-site adapt` does (cross-fitting
for the threshold included: tasks.sites.finetune with params.yaml `sites:`), and measured on fold B; then the
folds swap. Each finished row is appended to `--out` as JSON, so a stopped run keeps its rows; a rerun
skips rows already there. Prints the CPU, the seconds per adaptation and the table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine import cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", default="../shared/data/chest_xray/test")
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 50, 25])
    ap.add_argument("--strategies", nargs="+", default=["random", "typiclust", "badge"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="reports/site_curve.jsonl")
    ap.add_argument("--model-uri")
    args = ap.parse_args()

    from tasks import config, ood, tracking
    from tasks.inference import raw_scores, scores_and_features
    from tasks.metrics import apply_temperature
    from tasks.sites import films, finetune, measure, query
    from tasks.sites.adapt import clone, source, source_data
    from tasks.sites.cli import source_uri

    p = config.load()
    tracking.configure(p)
    uri = source_uri(p, args.model_uri)
    base, serving, pyfunc = source(uri)
    splits = source_data(p, uri)
    paths = films.listing(args.site)
    y = np.array([1 if Path(x).parts[0].upper() == "PNEUMONIA" else 0 for x in paths])
    patients = films.patients(paths)
    x = films.load(args.site, paths, serving["image_size"], progress=True)
    mode, tta = serving["normalize"], serving.get("tta", 0)
    raw, features = scores_and_features(base, x, mode, tta)
    prob = apply_temperature(raw, serving["temperature"], serving["bias"])
    ood_score = ood.scores(features, pyfunc.unwrap_python_model().detector)
    halves = finetune.patient_folds(patients, 2, 12345)  # fixed: the same A/B cut for every row
    print(f"cpu: {cpu()}; source {uri}; site {len(paths)} films, {len(set(patients))} patients; "
          f"folds {np.bincount(halves)} films; sites: {p.sites.model_dump()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["strategy"], r["budget"], r["seed"], r["fold"]) for r in map(json.loads, out.read_text().splitlines())} \
        if out.exists() else set()
    for fold in (0, 1):  # budget 0: the source model with its own threshold
        if ("none", 0, 0, fold) not in done:
            test = halves != fold
            m = measure.point(y[test], prob[test], serving["threshold"])
            with out.open("a") as fh:
                fh.write(json.dumps({"strategy": "none", "budget": 0, "seed": 0, "fold": fold, "seconds": 0,
                                     **{k: m[k] for k in measure.SHOWN}}) + "\n")
    for budget in args.budgets:
        for seed in args.seeds:
            for strategy in args.strategies:
                for fold in (0, 1):
                    if (strategy, budget, seed, fold) in done:
                        continue
                    start = time.perf_counter()
                    pool = np.flatnonzero(halves == fold)  # labels from this fold only
                    test = np.flatnonzero(halves != fold)
                    pick, _ = query.select(strategy, features[pool], prob[pool], ood_score[pool], [], budget, seed)
                    chosen = pool[pick]
                    site = (x[chosen], y[chosen])
                    cfg = p.sites
                    oof, folds = finetune.crossfit(lambda: clone(base), site, patients[chosen], splits["train"], cfg,
                                                   p.train, serving, seed, log=lambda *_: None)
                    op = finetune.operating_point(site[1], oof, cfg.target_sensitivity)
                    model = finetune.fine_tune(clone(base), site, splits["train"], cfg, p.train, mode, seed)
                    scored = apply_temperature(raw_scores(model, x[test], mode, tta), op["temperature"], op["bias"])
                    m = measure.point(y[test], scored, op["threshold"])
                    row = {"strategy": strategy, "budget": budget, "seed": seed, "fold": fold,
                           "normal_labelled": int((site[1] == 0).sum()),
                           "seconds": round(time.perf_counter() - start, 1), **{k: m[k] for k in measure.SHOWN}}
                    with out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    summarize(out)


def summarize(path: Path) -> None:
    """Mean over the two folds per seed, then mean +- std over seeds, per strategy and budget."""
    import pandas as pd

    rows = pd.DataFrame(map(json.loads, path.read_text().splitlines()))
    per_seed = rows.groupby(["strategy", "budget", "seed"]).mean(numeric_only=True).reset_index()
    keys = ["accuracy", "recall", "specificity", "roc_auc"]
    lines = ["| strategy | labels | seeds | accuracy | sensitivity | specificity | ROC-AUC | s / adaptation |",
             "|---|---|---|---|---|---|---|---|"]
    for (strategy, budget), g in per_seed.groupby(["strategy", "budget"]):
        cells = [f"{100 * g[k].mean():.1f} ± {100 * g[k].std(ddof=0):.1f}" if k != "roc_auc"
                 else f"{g[k].mean():.3f} ± {g[k].std(ddof=0):.3f}" for k in keys]
        lines.append(f"| {strategy} | {budget} | {len(g)} | " + " | ".join(cells) + f" | {g.seconds.mean():.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
