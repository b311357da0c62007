"""Self-training on unlabelled site images: pseudo-labels from scores only, cross-fitted test scores."""
import numpy as np
import pandas as pd
import pytest

from tasks import adapt, evaluate, train
from tasks.cli import StepError
from tests.helpers import TINY_TRAIN, deep_update, image_bytes, write_params


def test_pseudo_labels_take_the_extremes_and_leave_the_middle_out():
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.6, 0.3, 0.7])
    idx, labels = adapt.pseudo_labels(scores, positive_share=0.25, negative_share=0.25)
    assert dict(zip(idx.tolist(), labels.tolist())) == {1: 0.0, 4: 0.0, 3: 1.0, 0: 1.0}
    idx, labels = adapt.pseudo_labels(scores, 0.0, 0.0)
    assert len(idx) == 0 and len(labels) == 0


def test_folds_keep_each_patient_whole_and_use_every_fold():
    patients = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "f", "f"])
    folds = adapt.patient_folds(patients, 3, seed=1)
    for pid in set(patients):
        assert len(set(folds[patients == pid])) == 1
    assert set(folds) == {0, 1, 2}
    assert (adapt.patient_folds(patients, 3, seed=1) == folds).all()


@pytest.mark.slow
def test_self_training_moves_the_site_scores_toward_their_pseudo_labels(tiny_workdir):
    from tasks.data import load_splits
    from tasks.inference import raw_scores

    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 2}}))
    splits = load_splits(p.paths)
    model, _, _ = train.fit(p, splits)
    site = splits["test"][0]
    before = raw_scores(model, site, p.train.normalize)
    idx, labels = adapt.pseudo_labels(before, 0.4, 0.4)
    cfg = deep_update(TINY_TRAIN, {"adapt": {"epochs": 3, "learning_rate": 0.003, "repeat": 20}})
    q = write_params(tiny_workdir, cfg)
    tuned = adapt.fine_tune(model, splits["train"], splits["val"], site, q.adapt, q.train, log=lambda m: None)
    after = raw_scores(tuned, site, q.train.normalize)
    gap = lambda s: s[idx[labels == 1]].mean() - s[idx[labels == 0]].mean()  # noqa: E731
    assert gap(after) > gap(before)  # the confident site images were pushed further apart


@pytest.mark.slow
def test_site_test_cross_fits_and_evaluate_scores_each_image_with_a_model_that_never_saw_it(tiny_workdir):
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"adapt": {"site": "test", "folds": 2, "epochs": 1}}))
    report = train.run(p)
    assert report["adapt"]["site_images"] == (pd.read_csv(p.paths.split).split == "test").sum()
    folds = np.load(adapt.crossfit_dir(p) / "folds.npy")
    frame = pd.read_csv(p.paths.split)
    test_patients = frame.patient_id[frame.split == "test"].to_numpy()
    assert len(folds) == len(test_patients) and set(folds) == {0, 1}
    for pid in set(test_patients):
        assert len(set(folds[test_patients == pid])) == 1
    assert all((adapt.crossfit_dir(p) / f"fold{k}.keras").exists() for k in (0, 1))

    seen = {}

    def spy(model, images):  # which model scored which test images
        seen[model.name + str(id(model))] = len(images)
        return np.zeros(len(images))

    import keras

    final = keras.saving.load_model(train.model_path(p), compile=False)
    adapt.test_scores(p, final, np.zeros((len(folds), 48, 48), np.uint8), spy)
    assert sorted(seen.values()) == sorted(np.bincount(folds).tolist())  # one fold model per fold, never `final`

    result = evaluate.run(p)
    assert 0 <= result["test"]["roc_auc_before_adaptation"] <= 1 and "roc_auc" in result["test"]

    from tasks.data import load_splits

    splits = load_splits(p.paths)
    splits["test"] = (splits["test"][0], None)  # adaptation runs without the test labels: it never reads them
    final.save(tiny_workdir / "copy.keras")
    assert adapt.adapt(p, tiny_workdir / "copy.keras", splits, log=lambda m: None)["folds"] == 2


@pytest.mark.slow
def test_a_site_folder_of_images_is_read_and_a_bad_one_is_named(tiny_workdir):
    from tasks.data import load_splits

    site = tiny_workdir / "site"
    site.mkdir()
    for i in range(6):
        (site / f"s{i}.png").write_bytes(image_bytes(100 + i, fmt="PNG"))
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"adapt": {"site": str(site)}}))
    assert adapt.site_images(p, load_splits(p.paths)).shape == (6, 48, 48)
    (site / "broken.png").write_bytes(b"not an image")
    with pytest.raises(StepError, match="broken.png"):
        adapt.site_images(p, load_splits(p.paths))
    q = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"adapt": {"site": str(tiny_workdir / "nowhere")}}))
    with pytest.raises(StepError, match="not a folder of images"):
        adapt.site_images(q, load_splits(q.paths))
