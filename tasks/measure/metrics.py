"""Pure metric functions on labels and probabilities (numpy + scikit-learn, no TF, no I/O)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn import metrics as skm

from tasks.core import plugins

EPS = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


LOWER_IS_BETTER = frozenset({"brier", "ece", "ece_uncalibrated", "fp", "fn"})  # for the registry gate


def at_threshold(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict:
    """Confusion matrix and the threshold metrics when `prob >= threshold` calls pneumonia.

    `threshold` may hold one value per image (cross-fitted site thresholds); `threshold` is then their mean.
    """
    y, pred = np.asarray(y).astype(int), (np.asarray(prob) >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    sens = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    prec = tp / (tp + fp) if tp + fp else 0.0
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp), "threshold": float(np.mean(threshold)),
            "accuracy": (tp + tn) / len(y), "precision": prec, "recall": sens, "specificity": spec,
            "f1": 2 * prec * sens / (prec + sens) if prec + sens else 0.0, "balanced_accuracy": (sens + spec) / 2}


def ece(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: mean |accuracy - confidence| over equal-width bins, weighted by count."""
    y, prob = np.asarray(y, float), np.asarray(prob, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - prob[mask].mean())
    return float(total)


def threshold_free(y: np.ndarray, prob: np.ndarray) -> dict:
    """ROC-AUC, PR-AUC, Brier score, ECE, specificity at 95 % sensitivity and the best accuracy any threshold
    could give (a diagnostic of the split's own labels: how much of an error is the operating point, how
    much the ranking; never used to choose anything)."""
    return {"roc_auc": float(skm.roc_auc_score(y, prob)), "pr_auc": float(skm.average_precision_score(y, prob)),
            "brier": float(skm.brier_score_loss(y, prob)), "ece": ece(y, prob),
            "specificity_at_95_sensitivity": specificity_at_sensitivity(y, prob, 0.95),
            "best_threshold_accuracy": best_threshold_accuracy(y, prob)}


def best_threshold_accuracy(y: np.ndarray, prob: np.ndarray) -> float:
    """max over every threshold t of the accuracy of `prob >= t` (calling everything one class included)."""
    y = np.asarray(y).astype(int)
    order = np.argsort(-np.asarray(prob, float), kind="stable")
    prob_sorted, y_sorted = np.asarray(prob, float)[order], y[order]
    tp = np.concatenate([[0], np.cumsum(y_sorted)])          # positives among the k highest scores
    fp = np.arange(len(y) + 1) - tp
    correct = tp + (len(y) - y.sum()) - fp                    # tp + tn when the top k are called positive
    # a cut is only possible between distinct scores: k = n or the next score differs
    possible = np.concatenate([[True], np.append(prob_sorted[1:] != prob_sorted[:-1], True)])
    return float(correct[possible].max() / len(y))


def specificity_at_sensitivity(y: np.ndarray, prob: np.ndarray, target: float) -> float:
    fpr, tpr, _ = skm.roc_curve(y, prob)
    return float(1 - fpr[np.argmax(tpr >= target)])


def pick_threshold(y: np.ndarray, prob: np.ndarray, method: str, settings=None) -> float:
    """A decision threshold from (validation) data only: `method`'s entry of tasks.core.plugins.THRESHOLDS."""
    return float(plugins.THRESHOLDS.get(method)(y, prob, settings))


def youden_threshold(y: np.ndarray, prob: np.ndarray, _=None) -> float:
    """The threshold maximising sensitivity + specificity - 1."""
    fpr, tpr, thresholds = skm.roc_curve(y, prob)
    return float(np.clip(thresholds, 0.0, 1.0)[np.argmax(tpr - fpr)])  # sklearn's first threshold is +inf


def target_sensitivity_threshold(y: np.ndarray, prob: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity is at least `target` (the most specific such point)."""
    fpr, tpr, thresholds = skm.roc_curve(y, prob)
    return float(np.clip(thresholds, 0.0, 1.0)[np.argmax(tpr >= target)])


def fit_temperature(y: np.ndarray, prob: np.ndarray) -> float:
    """Temperature T minimising the log-loss of sigmoid(logit(prob) / T) on (validation) data."""
    z, y = logit(prob), platt_targets(y)

    def nll(log_t):
        q = np.clip(sigmoid(z / np.exp(log_t)), EPS, 1 - EPS)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def platt_targets(y: np.ndarray) -> np.ndarray:
    """Platt's (1999) targets for fitting a calibration map: (N+ + 1) / (N+ + 2) for positives and
    1 / (N- + 2) for negatives instead of 1 and 0, so a perfectly separated validation set gives a
    finite slope rather than probabilities of exactly 0 and 1 (and a threshold of 1.0)."""
    y = np.asarray(y, float)
    pos, neg = y.sum(), len(y) - y.sum()
    return np.where(y == 1, (pos + 1) / (pos + 2), 1 / (neg + 2))


def apply_temperature(prob: np.ndarray, temperature: float, bias: float = 0.0) -> np.ndarray:
    """sigmoid(logit(prob) / temperature + bias): temperature scaling, or Platt scaling with a bias."""
    return sigmoid(logit(prob) / temperature + bias)


def fit_platt(y: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """(temperature, bias) minimising the log-loss of sigmoid(logit(prob) / T + b): fixes bias as well as spread."""
    from scipy.optimize import minimize

    z, y = logit(prob), platt_targets(y)

    def nll(theta):
        q = np.clip(sigmoid(z / np.exp(theta[0]) + theta[1]), EPS, 1 - EPS)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    theta = minimize(nll, x0=[0.0, 0.0], method="Nelder-Mead").x
    return float(np.exp(theta[0])), float(theta[1])


def at_prevalence(sensitivity: float, specificity: float, prevalence: float) -> dict:
    """PPV, NPV and expected accuracy where a fraction `prevalence` of patients has pneumonia (Bayes)."""
    tp, fp = sensitivity * prevalence, (1 - specificity) * (1 - prevalence)
    tn, fn = specificity * (1 - prevalence), (1 - sensitivity) * prevalence
    return {"ppv": tp / (tp + fp) if tp + fp else 0.0, "npv": tn / (tn + fn) if tn + fn else 0.0,
            "accuracy": tp + tn, "prevalence": prevalence}


def operating_point(y, raw, cfg) -> dict:
    """Calibration (temperature, bias) and decision threshold fitted on (y, raw): the one way every served model
    gets its operating point. `cfg` is the evaluate section (`calibrate`, `threshold` and its settings); the
    site loop passes a copy with its own `target_sensitivity` (tasks.sites.finetune.site_point)."""
    if cfg.calibrate == "platt":
        temperature, bias = fit_platt(y, raw)
    elif cfg.calibrate == "temperature":
        temperature, bias = fit_temperature(y, raw), 0.0
    else:  # none (tasks.core.config allows only these three)
        temperature, bias = 1.0, 0.0
    threshold = pick_threshold(y, apply_temperature(raw, temperature, bias), cfg.threshold, cfg.setting())
    return {"temperature": temperature, "bias": bias, "threshold": threshold}
