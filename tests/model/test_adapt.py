"""Self-training on unlabelled site images: pseudo-labels from scores only, cross-fitted test scores."""
import numpy as np
import pandas as pd
import pytest

from tasks import adapt, evaluate, site, train
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
    folds = site.patient_folds(patients, 3, seed=1)
    for pid in set(patients):
        assert len(set(folds[patients == pid])) == 1
    assert set(folds) == {0, 1, 2}
    assert (site.patient_folds(patients, 3, seed=1) == folds).all()


def test_site_thresholds_call_the_prevalence_share_and_never_use_their_own_fold():
    rng = np.random.default_rng(0)
    scores = rng.random(400)
    assert np.mean(scores >= site.prevalence_threshold(scores, 0.63)) == pytest.approx(0.63, abs=0.01)
    folds = np.arange(400) % 2
    thresholds = site.crossfit_thresholds(scores, folds, 0.63)
    moved = scores.copy()
    moved[folds == 0] += 0.5  # fold 0's own scores do not set fold 0's threshold
    again = site.crossfit_thresholds(moved, folds, 0.63)
    assert np.allclose(again[folds == 0], thresholds[folds == 0])
    assert not np.allclose(again[folds == 1], thresholds[folds == 1])
    # one row per fold model: fold k's threshold comes from row k (its own model) on the other folds' images
    by_fold = np.stack([scores, scores + 10.0])
    per_image = site.crossfit_thresholds(by_fold, folds, 0.63)
    assert np.allclose(per_image[folds == 0], thresholds[folds == 0])
    assert np.allclose(per_image[folds == 1], thresholds[folds == 1] + 10.0)


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
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"site": {"images": "test", "folds": 2},
                                                           "adapt": {"enabled": True, "epochs": 1},
                                                           "evaluate": {"threshold": "site_prevalence"}}))
    report = train.run(p)
    assert report["adapt"]["site_images"] == (pd.read_csv(p.paths.split).split == "test").sum()
    folds = np.load(adapt.crossfit_dir(p) / "folds.npy")
    frame = pd.read_csv(p.paths.split)
    test_patients = frame.patient_id[frame.split == "test"].to_numpy()
    assert len(folds) == len(test_patients) and set(folds) == {0, 1}
    for pid in set(test_patients):
        assert len(set(folds[test_patients == pid])) == 1
    assert all((adapt.crossfit_dir(p) / f"fold{k}.keras").exists() for k in (0, 1))

    import keras

    final = keras.saving.load_model(train.model_path(p), compile=False)
    used = []

    def spy(model, images):  # which model scored the test images
        used.append(model)
        return np.full(len(images), float(len(used)))

    by_fold = adapt.crossfit_scores(p, np.zeros((len(folds), 48, 48), np.uint8), spy)
    assert by_fold.shape == (2, len(folds)) and len({id(m) for m in used}) == 2 and final not in used

    result = evaluate.run(p)
    assert 0 <= result["test"]["roc_auc_before_adaptation"] <= 1 and "roc_auc" in result["test"]
    assert result["threshold_method"] == "site_prevalence" and 0 < result["threshold"] < 1
    test = pd.read_csv(p.paths.predictions).query("split == 'test'")
    assert 0 < test.prediction.mean() < 1  # a few images per fold here: the exact share is checked above on 400

    from tasks.data import load_splits

    splits = load_splits(p.paths)
    splits["test"] = (splits["test"][0], None)  # adaptation runs without the test labels: it never reads them
    final.save(tiny_workdir / "copy.keras")
    assert adapt.adapt(p, tiny_workdir / "copy.keras", splits, log=lambda m: None)["folds"] == 2


@pytest.mark.slow
def test_a_site_folder_of_images_is_read_and_a_bad_one_is_named(tiny_workdir):
    from tasks.data import load_splits

    folder = tiny_workdir / "site"
    folder.mkdir()
    for i in range(6):
        (folder / f"s{i}.png").write_bytes(image_bytes(100 + i, fmt="PNG"))
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"site": {"images": str(folder)}}))
    assert site.images(p, load_splits(p.paths)).shape == (6, 48, 48)
    (folder / "broken.png").write_bytes(b"not an image")
    with pytest.raises(StepError, match="broken.png"):
        site.images(p, load_splits(p.paths))
    q = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"site": {"images": str(tiny_workdir / "nowhere")}}))
    with pytest.raises(StepError, match="not a folder of images"):
        site.images(q, load_splits(q.paths))


def test_site_options_without_a_site_are_rejected_before_any_work(workdir):
    p = write_params(workdir, {"evaluate": {"threshold": "site_prevalence"}})  # no model, no data: fails first
    with pytest.raises(StepError, match="site_prevalence needs the site's images"):
        evaluate.run(p)
    q = write_params(workdir, {"adapt": {"enabled": True}})
    with pytest.raises(StepError, match="adapt.enabled needs the site's images"):
        adapt.enabled(q)


@pytest.mark.slow
def test_site_prevalence_threshold_without_adaptation(tiny_workdir):
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"site": {"images": "test"},
                                                           "evaluate": {"threshold": "site_prevalence"}}))
    train.run(p)
    result = evaluate.run(p)
    test = pd.read_csv(p.paths.predictions).query("split == 'test'")
    # the served threshold: the top `prevalence` share of the site's (here the test split's) calibrated scores
    assert result["threshold"] == pytest.approx(np.quantile(test.probability, 1 - p.evaluate.prevalence))
    expected = site.crossfit_thresholds(test.probability.to_numpy(), site.test_folds(p), p.evaluate.prevalence)
    assert (test.prediction.to_numpy() == (test.probability.to_numpy() >= expected)).all()  # each fold by the other
