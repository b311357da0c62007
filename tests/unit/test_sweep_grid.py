"""The sweep's grid expansion over seeds, its validation-only choice and its mean ± sd table (no DVC here)."""
import pytest

from flows.sweep_grid import choose, expand, table


def row(set_name, seed, val_auc, test_acc):
    return {"set": set_name, "name": f"{set_name}-s{seed}", "overrides": {"train.dropout": 0.2, "train.seed": seed},
            "val_roc_auc": val_auc, "val_worst_balanced_accuracy": val_auc, "val_balanced_accuracy": 0.9,
            "worst_shift_drop": 0.01, "test_accuracy": test_acc, "test_recall": 0.97, "test_specificity": 0.8,
            "test_roc_auc": 0.98, "test_best_threshold_accuracy": 0.94, "test_specificity_at_95_sensitivity": 0.9,
            "train_seconds": 600.0}


def test_every_set_runs_once_per_seed_with_common_overrides():
    spec = {"common": {"ingest.source": "folder"}, "seeds": [42, 1],
            "experiments": {"default": None, "dropout": {"train.dropout": 0.2}}}
    runs = expand(spec)
    assert [name for _, name, _ in runs] == ["default-s42", "default-s1", "dropout-s42", "dropout-s1"]
    assert runs[3] == ("dropout", "dropout-s1", {"ingest.source": "folder", "train.dropout": 0.2, "train.seed": 1})
    assert [name for _, name, _ in expand({"experiments": {"a": {}}})] == ["a"]  # no seeds: one run, its own name


def test_a_set_is_chosen_on_its_mean_over_seeds_never_on_test():
    # `lucky` has the best single seed and the best test accuracy; `steady` the best validation mean
    rows = [row("lucky", 42, 0.999, 0.99), row("lucky", 1, 0.90, 0.99),
            row("steady", 42, 0.97, 0.80), row("steady", 1, 0.98, 0.80)]
    assert choose(rows, "val_roc_auc") == ("steady", "steady-s1")
    md = table(rows, "val_roc_auc", "steady")
    lines = md.splitlines()
    assert "| **steady** | `train.dropout=0.2` | 2 | 0.9750 ± 0.0071 |" in lines[3]
    assert lines[2].startswith("| lucky |") and "train.seed" not in md
    assert "99.0 ± 0.0" in lines[2] and "10.0 ± 0.0 min" in lines[2]


def test_one_seed_shows_no_spread():
    assert "| one | `train.dropout=0.2` | 1 | 0.9000 |" in table([row("one", 42, 0.9, 0.9)], "val_roc_auc", "x")


@pytest.mark.parametrize("select, chosen", [("val_roc_auc", "b"), ("val_worst_balanced_accuracy", "a")])
def test_choice_follows_the_selection_score(select, chosen):
    # `a` ranks better under the worst shift, `b` by AUC: a choice that ignored `select` picks one set for both
    a, b = row("a", 1, 0.9, 0.9), row("b", 1, 0.95, 0.5)
    a["val_worst_balanced_accuracy"], b["val_worst_balanced_accuracy"] = 0.9, 0.8
    assert choose([a, b], select)[0] == chosen
