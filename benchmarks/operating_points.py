"""Test metrics of one trained model at each operating point, from its evaluate outputs (no retraining).

    .venv/bin/python benchmarks/operating_points.py [reports/predictions.csv ...] [--prevalence 0.55 0.63 0.7]

For each predictions file (evaluate's, calibrated probabilities): accuracy, sensitivity and specificity
on the test split at the threshold evaluate chose on validation, at `site_prevalence` (cross-fitted
over the patient folds of `site.folds`, as evaluate computes it when `site.images: test`) for each
prevalence given, at the valley of the site's scores (Otsu's split of the other folds' logits: needs
no prevalence; a probe, not a pipeline option, see the README), and at the best threshold (a bound
that needs the test labels). Fold and prevalence-threshold code are the pipeline's own (tasks/site.py).
Models adapted on the test split need their cross-fit models: for those, read `reports/metrics.json`
instead. `--ensemble` adds the test AUC of the files' mean logit.
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


def valley_threshold(prob: np.ndarray) -> float:
    """Otsu's threshold on the logits: the split of these unlabelled scores into two groups with the
    largest between-group variance (exact, over every gap between sorted values), as a probability."""
    v = np.sort(M.logit(prob))
    n, i = len(v), np.arange(1, len(v))
    total = np.cumsum(v)
    low, high = total[:-1] / i, (total[-1] - total[:-1]) / (n - i)
    k = int(np.argmax(i * (n - i) * (low - high) ** 2))
    return float(M.sigmoid((v[k] + v[k + 1]) / 2))


def crossfit_valley(prob: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per image, the valley threshold of the other folds' scores."""
    by_fold = {k: valley_threshold(prob[folds != k]) for k in np.unique(folds)}
    return np.array([by_fold[k] for k in folds])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("predictions", nargs="*", type=Path, default=[Path("reports/predictions.csv")])
    ap.add_argument("--prevalence", nargs="+", type=float, default=None)
    ap.add_argument("--params", default=config.PARAMS_FILE)
    ap.add_argument("--ensemble", action="store_true", help="also print the test AUC of the files' mean logit")
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
        print(f"  site valley (Otsu, probe)   {rates(y, (prob >= crossfit_valley(prob, folds)).astype(int))}")
        print(f"  best threshold (test labels) acc {100 * M.best_threshold_accuracy(y, prob):5.1f}")
    if args.ensemble:
        tests = [pd.read_csv(path).query("split == 'test'").sort_values("path") for path in args.predictions]
        mean = M.sigmoid(np.mean([M.logit(t.probability) for t in tests], axis=0))
        auc = M.threshold_free(tests[0].label.to_numpy(), mean)["roc_auc"]
        print(f"ensemble of {len(tests)} (mean logit): test AUC {auc:.4f}")


if __name__ == "__main__":
    main()
