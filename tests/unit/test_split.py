import numpy as np
import pandas as pd
import pytest

from tasks import split
from tests.helpers import defaults


def manifest(n_patients=200, source_splits=None, seed=0):
    """A synthetic manifest: patients with 1-3 images, ~70 % pneumonia."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = int(rng.random() < 0.7)
        src = source_splits(p) if source_splits else "train"
        for i in range(rng.integers(1, 4)):
            rows.append({"path": f"{p}-{i}", "patient_id": f"P{p}", "label": label, "sha256": f"{p}-{i}",
                         "source_split": src})
    return pd.DataFrame(rows)


def test_patient_grouped_stratified_and_seeded():
    m = manifest()
    cfg = defaults("split", val=0.15, test=0.15, seed=3)
    s = split.assign(m, cfg)
    frame = m.assign(split=s)
    split.check_leakage(frame)  # no patient in two splits
    assert frame.groupby("patient_id").split.nunique().max() == 1
    fractions = frame.split.value_counts(normalize=True)
    assert fractions["test"] == pytest.approx(0.15, abs=0.04) and fractions["val"] == pytest.approx(0.15, abs=0.04)
    balance = frame.groupby("split").label.mean()
    assert balance.max() - balance.min() < 0.08  # stratified
    assert s.equals(split.assign(m, cfg))  # seeded
    assert not s.equals(split.assign(m, defaults("split", val=0.15, test=0.15, seed=4)))


def test_source_test_is_kept_and_small_source_val_folds_into_train():
    m = manifest(source_splits=lambda p: "test" if p < 40 else ("val" if p < 44 else "train"))
    s = split.assign(m, defaults("split", val=0.2, min_source_val=100))
    assert (s[m.source_split == "test"] == "test").all()
    assert (s[m.source_split != "test"] != "test").all()
    assert set(s[m.source_split == "val"]) <= {"train", "val"}  # Kaggle's 16 images are not a val set


def test_large_source_val_is_kept():
    m = manifest(source_splits=lambda p: "test" if p < 40 else ("val" if p < 100 else "train"))
    s = split.assign(m, defaults("split", min_source_val=10))
    assert (s[m.source_split == "val"] == "val").all() and (s[m.source_split == "train"] == "train").all()


def test_patient_in_source_test_never_reaches_train():
    m = manifest(source_splits=lambda p: "test" if p < 40 else "train")
    extra = m[m.patient_id == "P0"].assign(source_split="train", path="x", sha256="x")
    m = pd.concat([m, extra], ignore_index=True)
    s = split.assign(m, defaults("split"))
    assert set(s[m.patient_id == "P0"]) == {"test", "excluded"}
    split.check_leakage(m.assign(split=s))


def test_leakage_check_names_the_problem():
    frame = pd.DataFrame({"patient_id": ["a", "a", "b"], "sha256": ["1", "2", "3"], "split": ["train", "test", "val"]})
    with pytest.raises(split.Leakage, match="patient_id"):
        split.check_leakage(frame)
    frame = pd.DataFrame({"patient_id": ["a", "b"], "sha256": ["1", "1"], "split": ["train", "test"]})
    with pytest.raises(split.Leakage, match="sha256"):
        split.check_leakage(frame)
