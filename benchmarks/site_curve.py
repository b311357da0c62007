"""The site learning curve: site accuracy, sensitivity, specificity and AUC against the number of labels, per
query strategy, mean and spread over seeds, every number on films the adaptation never used.

    python benchmarks/site_curve.py --site ../shared/data/chest_xray/test [--budgets 100 50 25] [--measure 50]
        [--strategies random typiclust badge] [--seeds 0 1 2] [--tag NAME] [--out reports/site_curve.jsonl]

Run from a checkout whose `@champion` was trained on the source data (`pneumonia-pipeline
ingest.source=folder ...`). The site's patients are cut into two folds (A, B); labels are drawn only from
fold A by the strategy, the model is adapted on them exactly as `pneumonia-site adapt` does (cross-fitting
for the threshold included: tasks.sites.finetune with params.yaml `sites:`), and measured on fold B; then the
folds swap. With `--measure N`, a measurement sample of about N random films (whole patients) is drawn from
fold A first, as `pneumonia-site query` does, and the operating point is fitted four ways (worklist
out-of-fold scores, the sample, both, and `expected`: the sample's calibration with the threshold where the
calibrated unlabelled films of fold A expect the target sensitivity); each row also holds the adapted model's AUC
on that sample, the only number a recipe (`--tag`, params.yaml `sites:` as it is) may be chosen on, and for the
sample and `expected` rules the sample decided fold by fold (what a threshold rule may be chosen on). Each
finished row is appended to `--out` as JSON, so a stopped run keeps its rows; a rerun skips rows already there.
Prints the CPU, the seconds per adaptation and the table.
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
    ap.add_argument("--pseudo", type=float, default=0.0,
                    help="also self-train on fold A's unlabelled films: pseudo-labels where the adapted model's "
                         "calibrated probability is this confident (e.g. 0.95), balanced to the sample's prevalence")
    ap.add_argument("--surgical", nargs="*", default=[], choices=("first-block", "head"),
                    help="also adapt only the first convolution block (an acquisition shift is an input-level "
                         "shift) or only the classification head (a linear probe)")
    ap.add_argument("--variants", nargs="*", default=[], choices=("lp-ft", "adabn"),
                    help="also adapt by `lp-ft` (a linear probe first, then the default fine-tune from it) or "
                         "`adabn` (batch-norm statistics re-estimated on fold A's unlabelled films, then the "
                         "default fine-tune)")
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
                    if len(np.unique(y[sample])) == 2:  # the gate as adapt and register run it, judged on fold B
                        gate_row = gate_against_other_half(p, y, prob, patients, chosen, oof, folds, sample, test,
                                                           raw_sample, raw_test)
                        def variant(name: str, adapted, **extra) -> None:
                            """A row of `adapted` served at the operating point fitted on the sample."""
                            va_sample, va_test = (raw_scores(adapted, x[i], mode, tta) for i in (sample, test))
                            op = operating_point(y[sample], va_sample, finetune.site_point(p))
                            m = intervals.point(y[test], apply_temperature(va_test, op["temperature"], op["bias"]),
                                                op["threshold"])
                            row = {"tag": args.tag, "model": name, "strategy": strategy, "budget": budget,
                                   "measure_asked": args.measure, "measure": len(sample), "rule": "measure",
                                   "seed": seed, "fold": fold, "seconds": seconds,
                                   "sample_roc_auc": intervals.point(y[sample], va_sample, 0.5)["roc_auc"], **extra,
                                   **{k: m[k] for k in intervals.SHOWN}}
                            with out.open("a") as fh:
                                fh.write(json.dumps(row) + "\n")
                            print(json.dumps(row), flush=True)

                        for part in args.surgical:  # only one part of the network adapts (the rest as the source)
                            partial = only_trainable(clone(base), part)
                            variant(f"{part} only",
                                    finetune.fine_tune(partial, site, splits["train"], cfg, p.train, mode, seed))
                        if "lp-ft" in args.variants:  # the head fitted first, so fine-tuning starts from a fitted head
                            probe = finetune.fine_tune(only_trainable(clone(base), "head"), site, splits["train"], cfg,
                                                       p.train, mode, seed)
                            variant("lp-ft", finetune.fine_tune(probe, site, splits["train"], cfg, p.train, mode, seed))
                        if "adabn" in args.variants:  # the site's own batch-norm statistics, from unlabelled films
                            unlabelled = np.setdiff1d(pool, sample)
                            adapted = site_batch_norm(clone(base), x[unlabelled], mode)
                            variant("adabn", finetune.fine_tune(adapted, site, splits["train"], cfg, p.train, mode,
                                                                seed), unlabelled=len(unlabelled))
                        if args.pseudo:  # self-training on fold A's unlabelled films (never the sample's patients)
                            unlabelled = np.setdiff1d(rest, chosen)
                            served = operating_point(y[sample], raw_sample, finetune.site_point(p))
                            teacher = apply_temperature(raw_scores(model, x[unlabelled], mode, tta),
                                                        served["temperature"], served["bias"])
                            picked, guessed = pseudo_labels(teacher, y[sample].mean(), args.pseudo)
                            student = finetune.fine_tune(
                                clone(base), (np.concatenate([site[0], x[unlabelled[picked]]]),
                                              np.concatenate([site[1], guessed])),
                                splits["train"], cfg, p.train, mode, seed)
                            st_sample, st_test = (raw_scores(student, x[i], mode, tta) for i in (sample, test))
                            op = operating_point(y[sample], st_sample, finetune.site_point(p))
                            m = intervals.point(y[test], apply_temperature(st_test, op["temperature"], op["bias"]),
                                                op["threshold"])
                            row = {"tag": args.tag, "model": f"pseudo-label {args.pseudo}", "strategy": strategy,
                                   "budget": budget, "measure_asked": args.measure, "measure": len(sample),
                                   "rule": "measure", "seed": seed, "fold": fold, "seconds": seconds,
                                   "unlabelled": len(unlabelled), "pseudo": len(picked),
                                   "pseudo_wrong": int((guessed != y[unlabelled[picked]]).sum()),
                                   **{k: m[k] for k in intervals.SHOWN}}
                            with out.open("a") as fh:
                                fh.write(json.dumps(row) + "\n")
                    else:
                        gate_row = {}
                    # what a recipe may be chosen on: the labelled half's own sample, never the reported half
                    sample_auc = intervals.point(y[sample], raw_sample, 0.5)["roc_auc"] if len(sample) else None
                    point = finetune.site_point(p)
                    # the operating point fitted on which scores, as (labels, raw scores) -> operating point
                    fits = {"worklist": lambda *_: operating_point(site[1], oof, point)}
                    criteria = {}
                    if len(np.unique(y[sample])) == 2:
                        def fit_measure(y_fit, raw_fit):
                            return operating_point(y_fit, raw_fit, point)

                        # half A's films the model did not train on, used without labels
                        raw_pool = raw_scores(model, x[np.setdiff1d(pool, chosen)], mode, tta)

                        def fit_expected(y_fit, raw_fit):
                            return expected_point(y_fit, raw_fit, raw_pool, point)

                        fits["measure"] = lambda *_: fit_measure(y[sample], raw_sample)
                        fits["pooled"] = lambda *_: fit_measure(np.concatenate([site[1], y[sample]]),
                                                                np.concatenate([oof, raw_sample]))
                        fits["expected"] = lambda *_: fit_expected(y[sample], raw_sample)
                        criteria = {rule: nested_sample(y[sample], raw_sample, patients[sample], fit, seed)
                                    for rule, fit in (("measure", fit_measure), ("expected", fit_expected))}
                    for rule, fit in fits.items():
                        op = fit()
                        m = intervals.point(y[test], apply_temperature(raw_test, op["temperature"], op["bias"]),
                                          op["threshold"])
                        row = {"tag": args.tag, "strategy": strategy, "budget": budget, "measure_asked": args.measure,
                               "measure": len(sample), "rule": rule, "seed": seed, "fold": fold,
                               "normal_labelled": int((site[1] == 0).sum()), "sample_roc_auc": sample_auc,
                               "seconds": seconds, **criteria.get(rule, {}), **{k: m[k] for k in intervals.SHOWN},
                               **(gate_row if rule == "measure" else {})}
                        with out.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    summarize(out)


def only_trainable(model, part: str):
    """`model` with only `part` left trainable: `first-block` (the layers before the first pooling) or `head` (the
    last Dense layer); fine_tune compiles what is trainable and makes every layer trainable again after."""
    import keras

    first_pool = next(i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.MaxPooling2D))
    for i, layer in enumerate(model.layers):
        layer.trainable = i < first_pool if part == "first-block" else layer is model.layers[-1]
    return model


def expected_point(y: np.ndarray, raw: np.ndarray, raw_pool: np.ndarray, point) -> dict:
    """The operating point's calibration fitted on (y, raw) as the site's is, and its threshold set where the
    calibrated probabilities of the site's films `raw_pool` (labels unused) expect `point.target_sensitivity`
    of their pneumonia to lie above it: sum of p over films above / sum of p over all. Two calibration
    parameters from the labels instead of an order statistic of a few dozen pneumonia films."""
    from tasks.measure.metrics import apply_temperature, operating_point

    op = operating_point(y, raw, point)
    prob = np.sort(apply_temperature(raw_pool, op["temperature"], op["bias"]))[::-1]
    captured = np.cumsum(prob) / prob.sum()
    return {**op, "threshold": float(prob[min(np.searchsorted(captured, point.target_sensitivity), len(prob) - 1)])}


def nested_sample(y: np.ndarray, raw: np.ndarray, patients: np.ndarray, fit, seed: int, folds: int = 3) -> dict:
    """The measurement sample decided one patient fold at a time by the operating point `fit(labels, raw)` makes
    of the other folds: accuracy and sensitivity, the labelled half's own view of a threshold rule."""
    from tasks.measure.metrics import apply_temperature
    from tasks.sites import finetune

    k = finetune.patient_folds(patients, folds, seed, y)
    called = np.empty(len(y), bool)
    for f in np.unique(k):
        op = fit(y[k != f], raw[k != f])
        called[k == f] = apply_temperature(raw[k == f], op["temperature"], op["bias"]) >= op["threshold"]
    return {"sample_nested_accuracy": float(np.mean(called == y)),
            "sample_nested_sensitivity": float(called[y == 1].mean())}


def site_batch_norm(model, images: np.ndarray, mode: str):
    """`model` with every batch-norm layer's moving mean and variance set to those of `images` (AdaBN: the
    statistics of the site's unlabelled films, one pass in training mode, dropout off); returns it."""
    import keras

    from tasks.imaging.preprocess import normalize

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    kept = [layer.momentum for layer in norms], [layer.rate for layer in drops]
    for layer in norms:
        layer.momentum = 0.0  # the moving statistics become this one batch's
    for layer in drops:
        layer.rate = 0.0
    model(normalize(images, mode), training=True)
    for layer, momentum in zip(norms, kept[0]):
        layer.momentum = momentum
    for layer, rate in zip(drops, kept[1]):
        layer.rate = rate
    return model


def pseudo_labels(prob: np.ndarray, prevalence: float, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, 0/1 labels) of the confident films: probability >= confidence is PNEUMONIA, <= 1 - confidence
    NORMAL; then the larger side is cut, least confident first, so the kept films' pneumonia share is
    `prevalence` (distribution alignment: a teacher's bias toward one class is not taught back to it)."""
    pos = np.flatnonzero(prob >= confidence)
    neg = np.flatnonzero(prob <= 1 - confidence)
    pos, neg = pos[np.argsort(-prob[pos])], neg[np.argsort(prob[neg])]  # most confident first
    if len(pos) and len(neg):
        want_pos = int(round(prevalence / (1 - prevalence) * len(neg)))
        if want_pos < len(pos):
            pos = pos[:max(want_pos, 1)]
        else:
            neg = neg[:max(int(round((1 - prevalence) / prevalence * len(pos))), 1)]
    picked = np.concatenate([pos, neg]).astype(int)
    return picked, (prob[picked] >= 0.5).astype(int)


def gate_against_other_half(p, y, prob, patients, chosen, oof, folds, sample, test, raw_sample, raw_test) -> dict:
    """The site gate's decision (tasks.sites.gate.paired and floors on adapt's evidence: the worklist cross-fitted
    at nested thresholds plus the measurement sample at the served point), and what fold B says of the same
    candidate against the source model (the paired patient-bootstrap ROC-AUC difference): a refused winner is a
    refusal where the candidate is better beyond fold B's interval, a promoted loser a promotion where it is worse
    beyond it. `prob` is the source model's calibrated probability of every site film."""
    import pandas as pd

    from tasks.measure import intervals
    from tasks.measure.metrics import apply_temperature
    from tasks.sites import finetune, gate

    point = finetune.site_point(p)
    cand_worklist, _ = finetune.nested(y[chosen], oof, folds, point)
    op, _, cand_sample, threshold = finetune.served_point((y[chosen], oof), (y[sample], raw_sample),
                                                          patients[sample], p.sites.folds, point, p.sites.seed)
    evidence = pd.DataFrame({"label": np.concatenate([y[chosen], y[sample]]),
                             "patient_id": np.concatenate([patients[chosen], patients[sample]]).astype(str),
                             "source": np.concatenate([prob[chosen], prob[sample]]),
                             "candidate": np.concatenate([cand_worklist, cand_sample])})
    promote, reason = gate.paired(evidence, p.sites.margin, p.sites.bootstrap, p.sites.seed)
    refused = gate.floors(intervals.point(y[sample], cand_sample, threshold), p.register.min_sensitivity,
                          p.register.min_specificity, "measurement-sample")
    promote = promote and not refused
    cand_test = apply_temperature(raw_test, op["temperature"], op["bias"])
    d = intervals.paired_auc_difference(y[test], cand_test, prob[test], patients[test], p.sites.bootstrap, 7)
    truth = "better" if d["low"] > 0 else "worse" if d["high"] < 0 else "tie"
    return {"gate": "promoted" if promote else "refused", "gate_reason": refused or reason.rsplit(": ", 1)[-1],
            "other_half_auc_difference": d["difference"], "other_half_low": d["low"], "other_half_high": d["high"],
            "other_half": truth,
            "disagreement": ("refused winner" if not promote and truth == "better"
                             else "promoted loser" if promote and truth == "worse" else "")}


def summarize(path: Path) -> None:
    """Mean over the two folds per seed, then mean +- std over seeds, per recipe, model (the served fine-tune, or
    the mean of the cross-fitting models), strategy, budget, measurement sample and the scores the operating point
    was fitted on; then the gate's decisions against the other half, and the model served after it."""
    import pandas as pd

    rows = pd.DataFrame(map(json.loads, path.read_text().splitlines()))
    rows = rows.assign(measure_asked=rows.get("measure_asked", 0), measure=rows.get("measure", 0),
                       tag=rows.get("tag", ""), model=rows.get("model", "final"),
                       rule=rows.get("rule", "worklist")).fillna(
        {"measure_asked": 0, "measure": 0, "rule": "worklist", "tag": "", "model": "final"})
    rows.loc[rows.strategy == "none", "rule"] = "its own"
    key = ["tag", "model", "strategy", "budget", "measure_asked", "rule"]
    per_seed = rows.groupby(key + ["seed"]).mean(numeric_only=True).reset_index()
    keys = ["accuracy", "recall", "specificity", "roc_auc"]
    lines = ["| recipe | strategy | worklist | + measured | threshold from | seeds | accuracy | sensitivity | "
             "specificity | ROC-AUC | sample AUC (labelled half: what a recipe is chosen on) | s / adaptation |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (tag, model, strategy, budget, _, rule), g in per_seed.groupby(key):
        cells = [f"{100 * g[k].mean():.1f} ± {100 * g[k].std(ddof=0):.1f}" if k != "roc_auc"
                 else f"{g[k].mean():.3f} ± {g[k].std(ddof=0):.3f}" for k in keys]
        recipe = (tag or "default") + ("" if model == "final" else f", {model}")
        lines.append(f"| {recipe} | {strategy} | {budget} | {g.measure.mean():.0f} | {rule} | {len(g)} | "
                     + " | ".join(cells) + f" | {g.get('sample_roc_auc', pd.Series(dtype=float)).mean():.3f}"
                     + f" | {g.seconds.mean():.0f} |")
    print("\n".join(lines))
    if "gate" in rows:
        print(gate_table(rows, keys))


def gate_table(rows, keys) -> str:
    """Per recipe, strategy and budget: the gate's decisions, its disagreements with the other half, and what is
    served after it (the candidate where promoted, the source model at its own threshold where refused)."""
    gated = rows[rows.gate.notna() & (rows.model == "final")]
    source = rows[rows.strategy == "none"].set_index("fold")
    served = gated.apply(lambda r: r if r.gate == "promoted" else source.loc[r.fold], axis=1)[keys]
    gated = gated.assign(**{f"served_{k}": served[k].to_numpy() for k in keys})
    lines = ["| recipe | strategy | worklist | rows | promoted | refused winners | promoted losers | served accuracy | "
             "served ROC-AUC | served specificity |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (tag, strategy, budget), g in gated.groupby(["tag", "strategy", "budget"]):
        per_seed = g.groupby("seed")[[f"served_{k}" for k in keys]].mean()
        lines.append(f"| {tag or 'default'} | {strategy} | {budget} | {len(g)} | {(g.gate == 'promoted').sum()} | "
                     f"{(g.disagreement == 'refused winner').sum()} | {(g.disagreement == 'promoted loser').sum()} | "
                     f"{spread(per_seed.served_accuracy)} | {spread(per_seed.served_roc_auc, pct=False)} | "
                     f"{spread(per_seed.served_specificity)} |")
    return "\n".join(lines)


def spread(values, pct: bool = True) -> str:
    """mean ± std over seeds, in points or as a fraction."""
    scale, digits = (100, 1) if pct else (1, 3)
    return f"{scale * values.mean():.{digits}f} ± {scale * values.std(ddof=0):.{digits}f}"

if __name__ == "__main__":
    main()
