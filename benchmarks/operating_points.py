"""Test metrics of one trained model at each operating point, from its evaluate outputs (no retraining).

    .venv/bin/python benchmarks/operating_points.py [reports/predictions.csv ...] [--prevalence 0.55 0.63 0.7]

For each predictions file (evaluate's, calibrated probabilities): accuracy, sensitivity and specificity
on the test split at the threshold evaluate chose on validation, at `site_prevalence` (cross-fitted
over the patient folds of `site.folds`, as evaluate computes it when `site.images: test`) for each
prevalence given, and at the best threshold (a bound that needs the test labels). Fold and
threshold code are the pipeline's own (tasks/site.py). Models adapted on the test split need their
cross-fit models: for those, read `reports/metrics.json` instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import config, site  # noqa: E402
from tasks import metrics as M  # noqa: E402


def rates(y: np.ndarray, decided: np.ndarray) -> str:
    sens, spec = decided[y == 1].mean(), 1 - decided[y == 0].mean()
    return f"acc {100 * (decided == y).mean():5.1f}  sens {100 * sens:5.1f}  spec {100 * spec:5.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("predictions", nargs="*", type=Path, default=[Path("reports/predictions.csv")])
    ap.add_argument("--prevalence", nargs="+", type=float, default=None)
    ap.add_argument("--params", default=config.PARAMS_FILE)
    args = ap.parse_args()
    p = config.load(args.params)
    folds = site.test_folds(p)
    for path in args.predictions:
        frame = pd.read_csv(path)
        test = frame[frame.split == "test"]
        if len(test) != len(folds):
            raise SystemExit(f"{path}: {len(test)} test rows, but {p.paths.split} has {len(folds)}")
        y, prob = test.label.to_numpy(), test.probability.to_numpy()
        print(f"{path}  (test AUC {M.threshold_free(y, prob)['roc_auc']:.4f})")
        print(f"  validation threshold        {rates(y, test.prediction.to_numpy())}")
        for prevalence in args.prevalence or [p.evaluate.prevalence]:
            decided = (prob >= site.crossfit_thresholds(prob, folds, prevalence)).astype(int)
            print(f"  site_prevalence {prevalence:.2f}        {rates(y, decided)}")
        print(f"  best threshold (test labels) acc {100 * M.best_threshold_accuracy(y, prob):5.1f}")


if __name__ == "__main__":
    main()
