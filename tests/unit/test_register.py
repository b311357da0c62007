"""register's gate on fixture metrics (no registry): the floors, the minimum improvement, and whether a win
is within what the test split can tell apart."""
import pytest

from tasks import register
from tests.helpers import defaults

CFG = defaults("register", metric="roc_auc", min_improvement=0.002, min_sensitivity=0.85, min_specificity=0.6)
GOOD = {"roc_auc": 0.980, "recall": 0.95, "specificity": 0.80}


def test_a_floor_refuses_before_any_comparison():
    promote, reason = register.decide({**GOOD, "specificity": 0.5}, None, CFG)
    assert not promote and "specificity 0.500 is below the floor 0.6" in reason


def test_the_gain_must_clear_the_minimum_and_the_reason_says_if_it_is_inside_the_interval():
    promote, reason = register.decide(GOOD, {"roc_auc": 0.975}, CFG, [0.970, 0.990])
    assert promote and "by +0.0050" in reason
    assert "inside the candidate's 95 % interval [0.9700, 0.9900]: within the test split's noise" in reason
    promote, reason = register.decide(GOOD, {"roc_auc": 0.960}, CFG, [0.970, 0.990])
    assert promote and "outside the candidate's 95 % interval" in reason and "beyond the test split's noise" in reason
    promote, reason = register.decide(GOOD, {"roc_auc": 0.979}, CFG, [0.970, 0.990])
    assert not promote and "below register.min_improvement" in reason and "within the test split's noise" in reason
    assert "interval" not in register.decide(GOOD, {"roc_auc": 0.975}, CFG)[1]  # none known: none claimed


def test_a_metric_that_is_not_a_number_is_refused():
    with pytest.raises(register.StepError, match="not a finite number"):
        register.decide({**GOOD, "roc_auc": float("nan")}, {"roc_auc": 0.97}, CFG)
