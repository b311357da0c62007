import numpy as np
import pytest
from sklearn import metrics as skm

from tasks.measure import metrics as M


@pytest.fixture
def preds():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.7).astype(int)
    prob = np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1)
    return y, prob


def test_threshold_metrics_equal_sklearn(preds):
    y, prob = preds
    m = M.at_threshold(y, prob, 0.5)
    pred = (prob >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert [[m["tn"], m["fp"]], [m["fn"], m["tp"]]] == skm.confusion_matrix(y, pred).tolist()
    free = M.threshold_free(y, prob)
    assert free["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert free["brier"] == pytest.approx(skm.brier_score_loss(y, prob))


def test_threshold_selection_on_a_constructed_case():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    prob = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # youden: 0.7 gives sens 3/4, spec 4/4 (J=0.75); 0.4 gives sens 1, spec 3/4 (J=0.75); first max is 0.7
    assert M.pick_threshold(y, prob, "youden") == pytest.approx(0.7)
    # every positive caught: the highest threshold with sensitivity 1 is 0.4
    assert M.pick_threshold(y, prob, "target_sensitivity", 1.0) == pytest.approx(0.4)
    assert M.pick_threshold(y, prob, "target_sensitivity", 0.75) == pytest.approx(0.7)
    with pytest.raises(KeyError, match="'magic' is not a known threshold; known: target_sensitivity, youden"):
        M.pick_threshold(y, prob, "magic")


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < true_p).astype(int)
    overconfident = M.sigmoid(M.logit(true_p) * 3)  # logits three times too large
    t = M.fit_temperature(y, overconfident)
    assert t == pytest.approx(3, rel=0.15)
    assert M.ece(y, M.apply_temperature(overconfident, t)) < M.ece(y, overconfident) / 2


def test_prevalence_adjustment_matches_bayes():
    out = M.at_prevalence(0.9, 0.8, 0.3)
    assert out["ppv"] == pytest.approx(0.9 * 0.3 / (0.9 * 0.3 + 0.2 * 0.7))
    assert out["npv"] == pytest.approx(0.8 * 0.7 / (0.8 * 0.7 + 0.1 * 0.3))
    assert out["accuracy"] == pytest.approx(0.9 * 0.3 + 0.8 * 0.7)


def test_ece_is_zero_for_perfect_calibration_per_bin():
    prob = np.repeat([0.25, 0.75], 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert M.ece(y, prob) == pytest.approx(0.0)


def test_platt_scaling_fixes_a_biased_model_that_temperature_cannot():
    rng = np.random.default_rng(2)
    true_p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < true_p).astype(int)
    biased = M.sigmoid(M.logit(true_p) - 1.5)  # under-calls pneumonia, like a class-weighted model
    t, b = M.fit_platt(y, biased)
    assert b == pytest.approx(1.5, abs=0.25) and t == pytest.approx(1.0, abs=0.15)
    temperature_only = M.apply_temperature(biased, M.fit_temperature(y, biased))
    assert M.ece(y, M.apply_temperature(biased, t, b)) < M.ece(y, temperature_only)


def test_calibration_of_a_perfectly_separated_validation_set_stays_finite():
    y = np.array([0] * 40 + [1] * 60)
    prob = np.concatenate([np.linspace(0.01, 0.3, 40), np.linspace(0.7, 0.99, 60)])  # no overlap at all
    for t, b in (M.fit_platt(y, prob), (M.fit_temperature(y, prob), 0.0)):
        calibrated = M.apply_temperature(prob, t, b)
        assert t > 0.1 and 1e-6 < calibrated.min() and calibrated.max() < 1 - 1e-6  # a finite slope
        assert M.pick_threshold(y, calibrated, "target_sensitivity", 0.95) < 0.99


def test_best_threshold_accuracy_is_the_best_cut_and_respects_ties():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    prob = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # cut at 0.7: one positive (0.4) missed, every negative right -> 7/8; no cut does better
    assert M.best_threshold_accuracy(y, prob) == pytest.approx(7 / 8)
    brute = max(M.at_threshold(y, prob, t)["accuracy"] for t in [*prob, 1.1])
    assert M.best_threshold_accuracy(y, prob) == pytest.approx(brute)
    # tied scores cannot be split: all four share 0.5, so the best is calling all one class
    assert M.best_threshold_accuracy(np.array([0, 1, 1, 0]), np.full(4, 0.5)) == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    y, prob = (rng.random(300) < 0.6).astype(int), rng.random(300).round(2)
    brute = max(M.at_threshold(y, prob, t)["accuracy"] for t in [*np.unique(prob), 1.1])
    assert M.best_threshold_accuracy(y, prob) == pytest.approx(brute)
