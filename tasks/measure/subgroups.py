"""Results by subgroup: sensitivity, specificity and ROC-AUC per group of films, with 95 % intervals over
patient resamples, computed by fairlearn's `MetricFrame` (evaluate's test split and a site's measurement sample;
the model cards and `pneumonia-site report` show them).

A subgroup is what the data says about a film. Today: `kind`, pneumonia's kind in the Kaggle file names
(`..._bacteria_...`, `..._virus_...`; NORMAL films are `normal`): whether the model misses viral pneumonia is a
clinical question, since a model that does is not safe to triage with. The kind exists only for pneumonia films,
so a kind's ROC-AUC is that of its films against every normal film. A group with fewer than `MIN_PATIENTS`
patients gets its count and no interval, and a metric the group's classes cannot give is None, marked
"one class".
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

MIN_PATIENTS = 10
KIND = re.compile(r"(bacteria|virus)", re.IGNORECASE)
KINDS = {"bacteria": "bacterial", "virus": "viral"}


def kind(path: str, label: int) -> str | None:
    """'normal', 'bacterial' or 'viral' from a Kaggle-style file name; None when the name does not say."""
    if not label:
        return "normal"
    match = KIND.search(Path(str(path)).name)
    return KINDS[match.group(1).lower()] if match else None


def _sensitivity(y_true, y_pred) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(np.asarray(y_pred)[y_true == 1])) if (y_true == 1).any() else np.nan


def _specificity(y_true, y_pred) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(np.asarray(y_pred)[y_true == 0] == 0)) if (y_true == 0).any() else np.nan


def rates(y, pred, groups, draw=None) -> dict:
    """{(draw, group) or group: {sensitivity, specificity}} by one MetricFrame (`draw`: the resample each row
    belongs to, a control feature, so every resample's groups come from the same frame)."""
    from fairlearn.metrics import MetricFrame

    frame = MetricFrame(metrics={"sensitivity": _sensitivity, "specificity": _specificity}, y_true=y,
                        y_pred=pred, sensitive_features=pd.Series(groups, name="group"),
                        control_features=None if draw is None else pd.Series(draw, name="draw"))
    return frame.by_group.to_dict("index")


def auc_against_normal(y, prob, groups, group: str) -> float | None:
    """ROC-AUC of the group's films against every normal film (None when that leaves one class)."""
    from sklearn.metrics import roc_auc_score

    rows = (groups == group) | (groups == "normal")
    return float(roc_auc_score(y[rows], prob[rows])) if len(np.unique(y[rows])) == 2 else None


def table(paths, y, prob, threshold, patients, resamples: int, seed: int = 0) -> list[dict]:
    """One row per group of the `kind` subgroup (empty when no file name says): films, patients, each metric as
    [value, low, high] (no interval under MIN_PATIENTS patients; None where the group's classes cannot give it).
    `threshold`: one, or one per film (the site's nested thresholds)."""
    from tasks.measure.intervals import patient_resamples

    y, prob = np.asarray(y).astype(int), np.asarray(prob, float)
    threshold = np.broadcast_to(np.asarray(threshold, float), prob.shape)
    groups = np.array([kind(p, t) or "" for p, t in zip(paths, y)], dtype=object)
    if not set(groups) - {"normal", ""}:
        return []
    keep = groups != ""
    y, prob, groups, patients = y[keep], prob[keep], groups[keep], np.asarray(patients)[keep].astype(str)
    pred = (prob >= threshold[keep]).astype(int)
    names = sorted(set(groups), key=lambda g: (g != "normal", g))
    point = rates(y, pred, groups)
    idx = list(patient_resamples(y, patients, resamples, seed))
    draws = {}
    if idx:
        stacked = np.concatenate(idx)
        draw = np.repeat(np.arange(len(idx)), [len(i) for i in idx])
        for (_, g), values in rates(y[stacked], pred[stacked], groups[stacked], draw).items():
            for k, v in values.items():
                draws.setdefault((g, k), []).append(v)
        for g in names:
            draws[(g, "roc_auc")] = [auc_against_normal(y[i], prob[i], groups[i], g) for i in idx]
    rows = []
    for g in names:
        members = groups == g
        n_patients = len(set(patients[members]))
        row = {"subgroup": "kind", "group": g, "films": int(members.sum()), "patients": n_patients,
               "small": n_patients < MIN_PATIENTS}
        values = {**{k: (None if np.isnan(v) else float(v)) for k, v in point[g].items()},
                  "roc_auc": auc_against_normal(y, prob, groups, g)}
        for k, v in values.items():
            spread = [d for d in draws.get((g, k), []) if d is not None and not np.isnan(d)]
            interval = np.percentile(spread, [2.5, 97.5]).tolist() if len(spread) > 1 and not row["small"] \
                else [None, None]
            row[k] = None if v is None else [v, *interval]
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table: value (low to high), 'n < 10 patients' or 'one class' where it must."""
    if not rows:
        return "No subgroup in this data (the file names say no pneumonia kind; DICOM headers are not read yet)."

    def cell(v, small):
        if v is None:
            return "one class"
        value, low, high = v
        return f"{value:.3f}" + ("" if low is None else f" ({low:.3f} to {high:.3f})") + (" *" if small else "")

    lines = ["| group | films | patients | sensitivity | specificity | ROC-AUC |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['group']} | {r['films']} | {r['patients']} | {cell(r['sensitivity'], r['small'])} | "
              f"{cell(r['specificity'], r['small'])} | {cell(r['roc_auc'], r['small'])} |" for r in rows]
    if any(r["small"] for r in rows):
        lines.append(f"\n\\* fewer than {MIN_PATIENTS} patients: no interval")
    return "\n".join(lines)
