"""The out-of-distribution detector: distances, threshold, storage and the generated non-X-rays."""

import numpy as np
import pytest

from tasks.measure import ood


@pytest.fixture(scope="module")
def gaussian():
    """Two classes of 16-d features with correlated noise, as penultimate features are."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(16, 16))
    labels = rng.integers(0, 2, 3000)
    features = rng.normal(size=(3000, 16)) @ mix + labels[:, None] * 3.0
    return features, labels, mix


def test_the_threshold_passes_the_chosen_share_of_held_out_images(gaussian):
    features, labels, mix = gaussian
    fitted = ood.fit(features[:2000], labels[:2000])
    fitted["threshold"] = ood.threshold(ood.distance(features[2000:2500], fitted), 0.9)
    held_out = ood.scores(features[2500:], fitted)
    assert 0.85 < np.mean(held_out <= 1) < 0.95  # about 90 % of images the threshold never saw
    far = np.random.default_rng(1).normal(size=(100, 16)) @ mix * 4  # same mean, four times the spread
    assert np.mean(ood.scores(far, fitted) > 1) > 0.95


def test_the_distance_is_to_the_nearer_class_and_follows_the_covariance(gaussian):
    features, labels, _ = gaussian
    fitted = ood.fit(features, labels)
    assert np.allclose(ood.distance(fitted["means"], fitted), 0, atol=1e-9)
    # the squared Mahalanobis distance of the training features averages about their dimension
    assert 14 < ood.distance(features, fitted).mean() < 18


def test_saved_detector_loads_without_pickle(tmp_path, gaussian):
    features, labels, _ = gaussian
    fitted = {**ood.fit(features, labels), "threshold": 12.5}
    back = ood.load(ood.save(tmp_path / "models" / "ood.npz", fitted))
    assert back["threshold"] == 12.5 and np.array_equal(back["precision"], fitted["precision"])
    assert np.allclose(ood.scores(features[:5], back), ood.scores(features[:5], fitted))


def test_generated_inputs_are_every_kind_reproducible_and_unlike_the_xrays():
    xrays = np.random.default_rng(0).integers(40, 200, (3, 48, 48)).astype(np.uint8)
    a, b = ood.generated(xrays, 5, seed=3), ood.generated(xrays, 5, seed=3)
    assert tuple(a) == ood.KINDS
    for kind in ood.KINDS:
        assert a[kind].shape == (5, 48, 48) and a[kind].dtype == np.uint8 and np.array_equal(a[kind], b[kind])
    assert np.array_equal(a["inverted"][0], 255 - xrays[0])
    assert np.array_equal(a["upside_down"][1], xrays[1, ::-1, ::-1])
    assert all(np.ptp(img) == 0 for img in a["flat"])
    assert (a["text"] < 60).any(axis=(1, 2)).all() and (np.median(a["text"], axis=(1, 2)) >= 200).all()
