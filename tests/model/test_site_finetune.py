"""Fine-tuning on labelled site films moves the model toward the site's labels, and cross-fitting scores each
film with a model that never saw it."""
import numpy as np
import pytest

from tasks import train
from tasks.scoring.contract import ServingConfig
from tasks.sites import finetune
from tests.helpers import TINY_TRAIN, deep_update, write_params

pytestmark = pytest.mark.slow


def test_site_labels_that_differ_from_train_move_the_site_scores_their_way(tiny_workdir):
    from tasks.imaging.data import load_splits
    from tasks.measure.inference import raw_scores

    still = {"rotation": 0.0, "zoom": 0.0, "shift": 0.0, "brightness": 0.0, "contrast": 0.0}
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {
        "train": {"epochs": 10, "augment": still},
        "sites": {"steps": 150, "learning_rate": 0.0002, "site_share": 0.9}}))
    splits = load_splits(p.paths)
    model, _, _ = train.fit(p, splits)
    images = np.concatenate([splits["val"][0], splits["test"][0]])  # films the source never trained on
    y = np.concatenate([splits["val"][1], splits["test"][1]]).astype(int)
    flipped = 1 - y  # a "site" whose labels disagree with everything the source taught
    from tasks.sites.adapt import clone

    def tuned_on(labels):
        m = finetune.fine_tune(clone(model), (images, labels), splits["train"], p.sites, p.train, p.train.normalize, 0)
        return raw_scores(m, images, p.train.normalize)

    agree, disagree = tuned_on(y), tuned_on(flipped)  # same start, same seed, same draws: only the labels differ

    def separation(scores):  # how much higher the truly sick films score than the normal ones
        return scores[y == 1].mean() - scores[y == 0].mean()

    assert separation(agree) > separation(disagree) + 0.05
    assert disagree[y == 0].mean() > agree[y == 0].mean()  # what the site calls pneumonia went up
    assert disagree[y == 1].mean() < agree[y == 1].mean()


def test_crossfit_scores_every_film_with_a_model_adapted_without_it(tiny_workdir, monkeypatch):
    from tasks.imaging.data import load_splits

    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 1}, "sites": {"steps": 2}}))
    splits = load_splits(p.paths)
    model, _, _ = train.fit(p, splits)
    images = np.concatenate([splits["val"][0], splits["test"][0]])
    y = np.concatenate([splits["val"][1], splits["test"][1]]).astype(int)
    patients = np.arange(len(y)) // 2
    trained_on = []
    real = finetune.fine_tune

    def spy(m, site, *args):
        trained_on.append({img.tobytes() for img in site[0]})
        return real(m, site, *args)

    monkeypatch.setattr(finetune, "fine_tune", spy)
    oof, folds = finetune.crossfit(lambda: model, (images, y), patients, splits["train"], p.sites, p.train,
                                   ServingConfig(image_size=p.data.image_size, normalize=p.train.normalize,
                                                 threshold=0.5), seed=0, log=lambda *_: None)
    assert len(trained_on) == p.sites.folds and np.isfinite(oof).all()
    for k, seen in enumerate(trained_on):
        assert not seen & {img.tobytes() for img in images[folds == k]}  # fold k never in its own model's data
        assert seen == {img.tobytes() for img in images[folds != k]}
