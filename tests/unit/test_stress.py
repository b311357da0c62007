import numpy as np
import pytest

from tasks.imaging import stress


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(40, 216, (4, 64, 64)).astype(np.uint8)


def test_contrast_scales_the_spread_by_its_factor(images):
    out = stress.contrast(images, 0.5)
    assert out.std(axis=(1, 2)) == pytest.approx(images.std(axis=(1, 2)) * 0.5, rel=0.02)
    assert out.mean(axis=(1, 2)) == pytest.approx(images.mean(axis=(1, 2)), abs=0.6)


def test_gamma_applies_its_exponent(images):
    out = stress.gamma(images, 2.0)
    assert np.abs(out - np.round((images / 255.0) ** 2 * 255)).max() <= 1


def test_noise_has_the_configured_std(images):
    flat = np.full((8, 64, 64), 128, np.uint8)
    assert (stress.noise(flat, 8.0).astype(float) - 128).std() == pytest.approx(8.0, rel=0.05)


def test_blur_spreads_a_point_by_its_sigma():
    point = np.zeros((1, 41, 41), np.uint8)
    point[0, 20, 20] = 255
    out = stress.blur(point, 2.0)[0].astype(float)
    ys = np.arange(41) - 20
    profile = out.sum(axis=1) / out.sum()
    assert np.sqrt((profile * ys ** 2).sum()) == pytest.approx(2.0, rel=0.2)


def test_resolution_loses_detail_but_keeps_shape(images):
    out = stress.resolution(images, 0.25)
    assert out.shape == images.shape
    assert np.abs(np.diff(out.astype(float), axis=2)).mean() < np.abs(np.diff(images.astype(float), axis=2)).mean() / 2


def test_unknown_perturbation_is_named(images):
    with pytest.raises(ValueError, match="unknown perturbation"):
        stress.perturbed(images, {"rotation": 10})
