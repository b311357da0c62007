"""Site recipe probe: fine-tuning variants scored on the labelled films only (fold A's 100 random labels, their
own 3-fold cross-fitted AUC); fold B's AUC is printed for the record and chooses nothing.

    python benchmarks/site_recipes.py "tune=all,steps=150,learning_rate=0.0002" "tune=head,steps=150" ...

Run from a checkout whose @champion was trained on the source data. Rows: docs/sites.md.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score


def main() -> None:
    from tasks import config, tracking
    from tasks.inference import raw_scores
    from tasks.sites import films, finetune
    from tasks.sites.adapt import clone, source, source_data
    from tasks.sites.cli import source_uri

    p = config.load()
    tracking.configure(p)
    uri = source_uri(p, None)
    base, serving, _ = source(uri)
    splits = source_data(p, uri)
    site = "../shared/data/chest_xray/test"
    paths = films.listing(site)
    y = np.array([1 if x.startswith("PNEUMONIA") else 0 for x in paths])
    patients = films.patients(paths)
    x = films.load(site, paths, serving["image_size"])
    halves = finetune.patient_folds(patients, 2, 12345)  # the cut benchmarks/site_curve.py uses
    a, b = np.flatnonzero(halves == 0), np.flatnonzero(halves == 1)
    labelled = np.random.default_rng(0).choice(a, 100, replace=False)
    mode = serving["normalize"]
    before = roc_auc_score(y[labelled], raw_scores(base, x[labelled], mode, 3))
    print(f"source: AUC on the labelled films {before:.4f} | fold B "
          f"{roc_auc_score(y[b], raw_scores(base, x[b], mode, 3)):.4f}", flush=True)
    for spec in sys.argv[1:]:
        pairs = dict(item.split("=") for item in spec.split(","))
        cfg = p.sites.model_copy(update={k: v if k == "tune" else float(v) if "." in v or "e" in v else int(v)
                                         for k, v in pairs.items()})
        start = time.perf_counter()
        oof, _ = finetune.crossfit(lambda: clone(base), (x[labelled], y[labelled]), patients[labelled],
                                   splits["train"], cfg, p.train, serving, 0, log=lambda *_: None)
        model = finetune.fine_tune(clone(base), (x[labelled], y[labelled]), splits["train"], cfg, p.train, mode, 0)
        print(spec, "| labelled cross-fitted AUC", round(roc_auc_score(y[labelled], oof), 4), "| fold B AUC",
              round(roc_auc_score(y[b], raw_scores(model, x[b], mode, 3)), 4), f"| {time.perf_counter() - start:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
