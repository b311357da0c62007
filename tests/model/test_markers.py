"""Laterality-marker augmentation: bright letters stamped in a top corner of a chosen share of images."""
import numpy as np
import pytest

from tasks import markers
from tests.helpers import defaults


@pytest.fixture(scope="module")
def stamps():
    return markers.bank(64)


def test_the_bank_holds_every_text_regular_and_bold_within_its_box(stamps):
    side = round(markers.BOX * 64)
    assert stamps.shape[1:] == (side, side) and stamps.dtype == np.float32
    assert len(stamps) >= 2 * len(set(markers.TEXTS))  # each text at least once in each weight
    assert stamps.max() == pytest.approx(1.0) and (stamps.reshape(len(stamps), -1).max(axis=1) > 0.9).all()
    assert not stamps[:, -1, :].any() and not stamps[:, :, -1].any()  # nothing cut off at the box's edge


def test_stamps_land_in_a_top_corner_and_only_brighten(stamps):
    x = np.full((64, 64, 64, 1), 0.3, np.float32)
    out = markers.stamp(x, stamps, 1.0, seed=0).numpy()
    changed = np.abs(out - x)[..., 0] > 1e-6
    assert changed.any(axis=(1, 2)).all()  # rate 1: every image
    assert (out >= x - 1e-7).all() and out.max() <= 1.0
    rows, cols = np.nonzero(changed.any(axis=0))
    region = markers.REGION * 64
    assert rows.max() < region + 1  # top band only
    assert ((cols < region + 1) | (cols >= 64 - region - 1)).all()  # left or right corner, never the middle
    left = changed[:, :, : 32].any(axis=(1, 2)).mean()
    assert 0.5 < left < 0.95  # most on the left, some on the right
    assert np.array_equal(markers.stamp(x, stamps, 0.0, seed=0).numpy(), x)  # rate 0: untouched


def test_the_share_of_stamped_images_follows_the_rate(stamps):
    x = np.zeros((400, 64, 64, 1), np.float32)
    share = (markers.stamp(x, stamps, 0.5, seed=1).numpy().max(axis=(1, 2, 3)) > 0).mean()
    assert 0.4 < share < 0.6


def test_training_batches_carry_markers_when_asked():
    from tasks.data import datasets

    rng = np.random.default_rng(0)
    images, labels = np.full((16, 64, 64), 60, np.uint8), (rng.random(16) > 0.5).astype(np.float32)
    still = defaults("train").augment.model_copy(update=dict(rotation=0.0, zoom=0.0, shift=0.0, brightness=0.0,
                                                             contrast=0.0))
    for share, expect in ((0.0, False), (1.0, True)):
        t = defaults("train", normalize="scale", augment=still.model_copy(update={"markers": share}))
        x, _, _ = next(iter(datasets((images, labels), (images[:4], labels[:4]), t, 16)[0]))
        assert (x.numpy().max(axis=(1, 2, 3)) > 0.7).all() == expect
