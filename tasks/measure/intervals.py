"""Metrics with 95 % confidence intervals from a bootstrap over patients (films of one patient move
together, so the interval is not narrowed by counting a patient's films as independent): evaluate's test split
and a site's films."""
from __future__ import annotations

import numpy as np

from tasks.measure import metrics as M

SHOWN = ("accuracy", "recall", "specificity", "roc_auc")  # recall is sensitivity
NAMES = {"accuracy": "accuracy", "recall": "sensitivity", "specificity": "specificity", "roc_auc": "ROC-AUC"}


def point(y, prob, threshold) -> dict:
    y = np.asarray(y).astype(int)
    out = M.at_threshold(y, prob, threshold)
    out["roc_auc"] = M.threshold_free(y, prob)["roc_auc"] if len(np.unique(y)) == 2 else float("nan")
    return out


def with_intervals(y, prob, threshold, patients, n: int = 1000, seed: int = 0) -> dict:
    """The metrics of `point`, plus `<metric>_ci` = [2.5 %, 97.5 %] over `n` patient resamples."""
    y, prob = np.asarray(y).astype(int), np.asarray(prob, float)
    threshold = np.broadcast_to(np.asarray(threshold, float), prob.shape)
    out = point(y, prob, threshold)
    draws = {k: [] for k in SHOWN}
    for idx in patient_resamples(y, patients, n, seed):
        m = point(y[idx], prob[idx], threshold[idx])
        for k in SHOWN:
            draws[k].append(m[k])
    for k in SHOWN:
        out[f"{k}_ci"] = [float(np.percentile(draws[k], 2.5)), float(np.percentile(draws[k], 97.5))] \
            if draws[k] else [float("nan")] * 2
    out["films"], out["patients"] = int(len(y)), len(set(map(str, patients)))
    return out


def patient_resamples(y, patients, n: int, seed: int):
    """Up to `n` bootstrap resamples of whole patients (film indices), each holding both classes."""
    groups = {}
    for i, pid in enumerate(map(str, patients)):
        groups.setdefault(pid, []).append(i)
    members = list(groups.values())
    rng = np.random.default_rng(seed)
    for _ in range(n):
        idx = np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])
        if len(np.unique(y[idx])) == 2:
            yield idx


def paired_auc_difference(y, candidate, incumbent, patients, n: int = 1000, seed: int = 0) -> dict:
    """ROC-AUC of `candidate` minus that of `incumbent` on the same films, with its 95 % interval over `n`
    resamples of whole patients (both models resampled together, so what they share cancels): {difference,
    low, high, films, patients}."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    candidate, incumbent = np.asarray(candidate, float), np.asarray(incumbent, float)
    draws = [roc_auc_score(y[idx], candidate[idx]) - roc_auc_score(y[idx], incumbent[idx])
             for idx in patient_resamples(y, patients, n, seed)]
    low, high = (np.percentile(draws, [2.5, 97.5]) if draws else (float("nan"), float("nan")))
    return {"difference": float(roc_auc_score(y, candidate) - roc_auc_score(y, incumbent)), "low": float(low),
            "high": float(high), "films": int(len(y)), "patients": len(set(map(str, patients)))}


def table(rows: dict[str, dict]) -> str:
    """A markdown table: one row per named set of metrics, each value with its interval."""
    head = "| | films | " + " | ".join(NAMES[k] for k in SHOWN) + " |"
    lines = [head, "|" + "---|" * (len(SHOWN) + 2)]
    for name, m in rows.items():
        cells = []
        for k in SHOWN:
            lo, hi = m[f"{k}_ci"]
            cells.append(f"{m[k]:.3f} [{lo:.3f}, {hi:.3f}]" if k == "roc_auc"
                         else f"{100 * m[k]:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]")
        lines.append(f"| {name} | {m['films']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
