"""evaluate's core on fixture arrays: the operating point is fitted on validation only, and a split's scores
become its metrics at that point (no model, no files)."""
from __future__ import annotations

import numpy as np
import pytest

from tasks import evaluate
from tasks.measure import metrics as M
from tests.helpers import defaults


def validation(n: int = 400, seed: int = 0):
    """Labels and raw scores of a model that ranks well but scores pneumonia too high (logit + 1.5)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    logit = np.where(y == 1, 2.0, -2.0) + rng.normal(0, 1.2, n) + 1.5
    return y, 1 / (1 + np.exp(-logit))


def test_the_threshold_reaches_the_target_sensitivity_on_validation_and_calibration_removes_the_bias():
    y, raw = validation()
    op = M.operating_point(y, raw, defaults("evaluate", target_sensitivity=0.9))
    calibrated = M.apply_temperature(raw, op["temperature"], op["bias"])
    assert (calibrated[y == 1] >= op["threshold"]).mean() >= 0.9
    assert M.ece(y, calibrated) < M.ece(y, raw) / 2
    plain = M.operating_point(y, raw, defaults("evaluate", calibrate="none"))
    assert (plain["temperature"], plain["bias"]) == (1.0, 0.0)


def test_the_operating_point_ignores_what_the_test_split_holds():
    y, raw = validation()
    cfg = defaults("evaluate")
    assert M.operating_point(y, raw, cfg) == M.operating_point(y.copy(), raw.copy(), cfg)
    other_y, other_raw = validation(seed=1)
    assert M.operating_point(other_y, other_raw, cfg)["threshold"] != pytest.approx(
        M.operating_point(y, raw, cfg)["threshold"])


def test_a_split_is_scored_at_the_given_threshold_with_the_deployment_view():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    prob = np.array([0.1, 0.2, 0.7, 0.4, 0.6, 0.8, 0.9, 0.95])
    m = evaluate.score(y, prob, 0.5, prevalence=0.5)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (4, 1, 2, 1)
    assert m["recall"] == pytest.approx(0.8) and m["specificity"] == pytest.approx(2 / 3)
    assert m["deployed_accuracy"] == pytest.approx(0.5 * 0.8 + 0.5 * 2 / 3)
    assert m["best_threshold_accuracy"] >= m["accuracy"]


def test_the_headline_is_a_dozen_of_the_metrics_with_the_worst_stress_drop():
    rng = np.random.default_rng(0)
    split = {k: float(rng.random()) for k in (*evaluate.HEADLINE["test"], "tp", "fn", "f1", "deployed_ppv")}
    metrics = {"test": split, "val": dict(split), "threshold": 0.4, "temperature": 1.1, "bias": 0.2,
               "stress": {"blur": {"drop_balanced_accuracy": 0.01}, "noise": {"drop_balanced_accuracy": 0.07}},
               "ood": {"test_pass": 0.98, "val_pass": 0.99, "flagged_flat": 1.0}}
    head = evaluate.headline(metrics)
    flat = {f"{s}.{k}": v for s, d in head.items() if isinstance(d, dict) for k, v in d.items()}
    assert 10 <= len(flat) + sum(not isinstance(v, dict) for v in head.values()) <= 15
    assert all(metrics[name.split(".")[0]][name.split(".")[1]] == v for name, v in flat.items())
    assert "test.tp" not in flat and head["stress_worst_drop_balanced_accuracy"] == 0.07
    assert head["threshold"] == 0.4 and head["ood_test_pass"] == 0.98


def test_test_intervals_are_over_patients_and_hold_the_point(tmp_path):
    import pandas as pd

    y, prob = validation(n=200)
    split = tmp_path / "split.csv"
    rows = [{"split": "val", "patient_id": "v"}] * 7  # other splits' rows are not the test's patients
    pd.DataFrame(rows + [{"split": "test", "patient_id": f"p{i}"} for i in range(200)]).to_csv(split, index=False)
    per_film = evaluate.test_intervals(y, prob, 0.5, str(split), 300)
    pd.DataFrame(rows + [{"split": "test", "patient_id": f"p{i // 10}"} for i in range(200)]).to_csv(split,
                                                                                                  index=False)
    per_patient = evaluate.test_intervals(y, prob, 0.5, str(split), 300)
    assert (per_film["films"], per_film["patients"], per_patient["patients"]) == (200, 200, 20)
    point = evaluate.score(y, prob, 0.5, prevalence=0.5)
    for k in ("accuracy", "recall", "specificity", "roc_auc"):
        assert per_film[k][0] <= point[k] <= per_film[k][1]
    # ten films a patient are not ten independent films: the interval widens
    assert per_patient["accuracy"][1] - per_patient["accuracy"][0] > per_film["accuracy"][1] - per_film["accuracy"][0]
    assert evaluate.test_intervals(y, prob, 0.5, str(split), 0) == {}
