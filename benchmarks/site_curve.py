"""The site learning curve: site accuracy, sensitivity, specificity and AUC against the number of labels, per
query strategy, mean and spread over seeds, every number on films the adaptation never used.

    python benchmarks/site_curve.py --site ../shared/data/chest_xray/test [--budgets 100 50 25] [--measure 50]
        [--strategies random typiclust badge] [--seeds 0 1 2] [--tag NAME] [--out reports/site_curve.jsonl]

Run from a checkout whose `@champion` was trained on the source data (`pneumonia-pipeline
ingest.source=folder ...`). The site's patients are cut into two folds (A, B); labels are drawn only from
fold A by the strategy, the model is adapted on them exactly as `pneumonia-site adapt` does (cross-fitting
for the threshold included: tasks.sites.finetune with params.yaml `sites:`), and measured on fold B; then the
folds swap. With `--measure N`, a measurement sample of about N random films (whole patients) is drawn from
fold A first, as `pneumonia-site query` does, and the operating point is fitted three ways (worklist
out-of-fold scores, the sample, both); each row also holds the adapted model's AUC on that sample, the only
number a recipe (`--tag`, params.yaml `sites:` as it is) may be chosen on. Each finished row is appended to
`--out` as JSON, so a stopped run keeps its rows; a rerun skips rows already there. Prints the CPU, the
seconds per adaptation and the table.
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
    ap.add_argument("--measure", type=int, default=0,
                    help="also draw a measurement sample of this many random films first, as query does")
    ap.add_argument("--tag", default="", help="a name for this run's recipe (params.yaml `sites:` as it is)")
    ap.add_argument("--model-uri")
    args = ap.parse_args()

    from tasks.core import config
    from tasks.imaging import films as film_folder
    from tasks.measure import intervals, ood
    from tasks.measure.inference import raw_scores, scores_and_features
    from tasks.measure.metrics import apply_temperature, operating_point
    from tasks.records import tracking
    from tasks.sites import films, finetune, query
    from tasks.sites.adapt import clone, source, source_data
    from tasks.sites.cli import source_uri

    p = config.load()
    tracking.configure(p)
    uri = source_uri(p, args.model_uri)
    base, serving, pyfunc = source(uri)
    splits = source_data(p, uri)
    paths = film_folder.listing(args.site)
    y = np.array([1 if Path(x).parts[0].upper() == "PNEUMONIA" else 0 for x in paths])
    patients = films.patients(paths)
    x = film_folder.load(args.site, paths, serving.image_size, progress=True)
    mode, tta = serving.normalize, serving.tta
    raw, features = scores_and_features(base, x, mode, tta)
    prob = serving.calibrate(raw)
    ood_score = ood.scores(features, pyfunc.unwrap_python_model().detector)
    halves = finetune.patient_folds(patients, 2, 12345)  # fixed: the same A/B cut for every row
    print(f"cpu: {cpu()}; source {uri}; site {len(paths)} films, {len(set(patients))} patients; "
          f"folds {np.bincount(halves)} films; sites: {p.sites.model_dump()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["strategy"], r["budget"], r["seed"], r["fold"], r.get("measure_asked", 0), r.get("tag", ""))
            for r in rows}
    for fold in (0, 1):  # budget 0: the source model with its own threshold
        if ("none", 0, 0, fold, 0, "") not in done:
            test = halves != fold
            m = intervals.point(y[test], prob[test], serving.threshold)
            with out.open("a") as fh:
                fh.write(json.dumps({"strategy": "none", "budget": 0, "seed": 0, "fold": fold, "seconds": 0,
                                     **{k: m[k] for k in intervals.SHOWN}}) + "\n")
    for budget in args.budgets:
        for seed in args.seeds:
            for strategy in args.strategies:
                for fold in (0, 1):
                    if (strategy, budget, seed, fold, args.measure, args.tag) in done:
                        continue
                    start = time.perf_counter()
                    pool = np.flatnonzero(halves == fold)  # labels from this fold only
                    test = np.flatnonzero(halves != fold)
                    # the measurement sample, as `pneumonia-site query` draws it: whole random patients, first
                    drawn = set(films.measurement_sample([paths[i] for i in pool], min(args.measure, len(pool) // 3),
                                                         p.sites.seed + seed))
                    sample = np.array([i for i in pool if paths[i] in drawn], int)
                    rest = pool[~np.isin(patients[pool], patients[sample])]
                    pick, _ = query.select(strategy, features[rest], prob[rest], ood_score[rest], [], budget, seed)
                    chosen = rest[pick]
                    site = (x[chosen], y[chosen])
                    cfg = p.sites
                    oof, folds = finetune.crossfit(lambda: clone(base), site, patients[chosen], splits["train"], cfg,
                                                   p.train, serving, seed, log=lambda *_: None)
                    model = finetune.fine_tune(clone(base), site, splits["train"], cfg, p.train, mode, seed)
                    raw_test = raw_scores(model, x[test], mode, tta)
                    raw_sample = raw_scores(model, x[sample], mode, tta) if len(sample) else np.empty(0)
                    seconds = round(time.perf_counter() - start, 1)
                    # what a recipe may be chosen on: the labelled half's own sample, never the reported half
                    sample_auc = intervals.point(y[sample], raw_sample, 0.5)["roc_auc"] if len(sample) else None
                    rules = {"worklist": (site[1], oof)}  # the operating point fitted on which scores
                    if len(np.unique(y[sample])) == 2:
                        rules["measure"] = (y[sample], raw_sample)
                        rules["pooled"] = (np.concatenate([site[1], y[sample]]), np.concatenate([oof, raw_sample]))
                    for rule, (y_fit, raw_fit) in rules.items():
                        op = operating_point(y_fit, raw_fit, finetune.site_point(p))
                        m = intervals.point(y[test], apply_temperature(raw_test, op["temperature"], op["bias"]),
                                          op["threshold"])
                        row = {"tag": args.tag, "strategy": strategy, "budget": budget, "measure_asked": args.measure,
                               "measure": len(sample), "rule": rule, "seed": seed, "fold": fold,
                               "normal_labelled": int((site[1] == 0).sum()), "sample_roc_auc": sample_auc,
                               "seconds": seconds, **{k: m[k] for k in intervals.SHOWN}}
                        with out.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    summarize(out)


def summarize(path: Path) -> None:
    """Mean over the two folds per seed, then mean +- std over seeds, per strategy, budget, measurement sample and
    the scores the operating point was fitted on."""
    import pandas as pd

    rows = pd.DataFrame(map(json.loads, path.read_text().splitlines()))
    rows = rows.assign(measure_asked=rows.get("measure_asked", 0), measure=rows.get("measure", 0),
                       tag=rows.get("tag", ""),
                       rule=rows.get("rule", "worklist")).fillna(
        {"measure_asked": 0, "measure": 0, "rule": "worklist", "tag": ""})
    rows.loc[rows.strategy == "none", "rule"] = "its own"
    key = ["tag", "strategy", "budget", "measure_asked", "rule"]
    per_seed = rows.groupby(key + ["seed"]).mean(numeric_only=True).reset_index()
    keys = ["accuracy", "recall", "specificity", "roc_auc"]
    lines = ["| recipe | strategy | worklist | + measured | threshold from | seeds | accuracy | sensitivity | "
             "specificity | ROC-AUC | sample AUC (labelled half: what a recipe is chosen on) | s / adaptation |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (tag, strategy, budget, _, rule), g in per_seed.groupby(key):
        cells = [f"{100 * g[k].mean():.1f} ± {100 * g[k].std(ddof=0):.1f}" if k != "roc_auc"
                 else f"{g[k].mean():.3f} ± {g[k].std(ddof=0):.3f}" for k in keys]
        lines.append(f"| {tag or 'default'} | {strategy} | {budget} | {g.measure.mean():.0f} | {rule} | {len(g)} | "
                     + " | ".join(cells) + f" | {g.get('sample_roc_auc', pd.Series(dtype=float)).mean():.3f}"
                     + f" | {g.seconds.mean():.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
