"""One scoring path for evaluate, the stress test and serving, with optional test-time augmentation."""

import numpy as np
import pytest

from tasks.imaging.preprocess import normalize
from tasks.measure import inference
from tasks.measure.metrics import apply_temperature
from tasks.scoring.contract import ServingConfig
from tasks.scoring.serving import predict_frame
from tasks.training.model import build_model
from tests.helpers import defaults, write_params


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return build_model(defaults("model"), 64)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, (5, 64, 64)).astype(np.uint8)


def test_shift_moves_pixels_by_the_offset_and_fills_with_zero():
    x = np.random.default_rng(0).random((2, 10, 12, 1)).astype(np.float32)
    moved = inference.shifted(x, 2, -3)
    assert np.array_equal(moved[:, 2:, :9], x[:, :8, 3:])
    assert not moved[:, :2].any() and not moved[:, :, 9:].any()


def test_zoom_keeps_the_centre_and_magnifies():
    x = np.zeros((1, 20, 20, 1), np.float32)
    x[0, 8:12, 8:12] = 1  # a 4-pixel square in the middle
    big = inference.zoomed(x, 2.0)
    assert big[0, 10, 10, 0] == 1 and big.sum() == pytest.approx(4 * x.sum(), rel=0.3)


def test_views_count_and_range():
    x = np.zeros((1, 32, 32, 1), np.float32)
    assert [len(inference.views(x, k)) for k in range(inference.MAX_TTA + 1)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="evaluate.tta"):
        inference.views(x, inference.MAX_TTA + 1)


def test_raw_scores_average_the_model_over_the_views(model, images):
    x = normalize(images, "equalize")
    assert np.allclose(inference.raw_scores(model, images, "equalize"), model.predict(x, verbose=0)[:, 0], atol=1e-6)
    manual = np.mean([model.predict(v, verbose=0)[:, 0] for v in inference.views(x, 3)], axis=0)
    assert np.allclose(inference.raw_scores(model, images, "equalize", tta=3), manual, atol=1e-6)


def test_the_compiled_pass_is_keras_predict_for_any_batch_and_each_model(model):
    many = np.random.default_rng(2).integers(0, 256, (37, 64, 64)).astype(np.uint8)  # 37 x 2 views: 3 chunks
    x = normalize(many, "scale")
    expected = np.mean([model.predict(v, verbose=0)[:, 0] for v in inference.views(x, 1)], axis=0)
    assert np.allclose(inference.raw_scores(model, many, "scale", tta=1, batch_size=32), expected, atol=1e-6)
    narrow = defaults("model").fast_cnn.model_copy(update={"filters": (8,)})
    other = build_model(defaults("model", fast_cnn=narrow), 48)  # another model, another input size
    small = many[:3, :48, :48]
    assert np.allclose(inference.raw_scores(other, small, "scale"),
                       other.predict(normalize(small, "scale"), verbose=0)[:, 0], atol=1e-6)
    assert inference.forward(model) is inference.forward(model)  # compiled once per model


def test_features_are_the_last_layers_input_of_the_image_itself(model, images):
    import keras

    x = normalize(images, "equalize")
    penultimate = keras.Model(model.inputs, model.layers[-1].input).predict(x, verbose=0)
    scores, features = inference.scores_and_features(model, images, "equalize", tta=3, batch_size=4)
    assert features.shape == (len(images), model.layers[-1].input.shape[-1])
    assert np.allclose(features, penultimate, atol=1e-5)  # the first view, not an average of the views
    assert np.allclose(scores, inference.raw_scores(model, images, "equalize", 3), atol=1e-6)


def test_serving_scores_as_evaluate_did(model, images):
    from tasks.measure import ood

    served_config = ServingConfig(image_size=images.shape[1], normalize="equalize", tta=2, temperature=0.7, bias=0.3,
                                  threshold=0.4)
    raw, features = inference.scores_and_features(model, images, "equalize", 2)
    detector = ood.fit(np.concatenate([features] * 4), np.arange(4 * len(images)) % 2)
    detector["threshold"] = float(np.median(ood.distance(features, detector)))
    served = predict_frame(model, served_config, detector, images)
    evaluated = apply_temperature(raw, 0.7, 0.3)
    assert np.allclose(served.probability, evaluated, atol=1e-6)
    assert (served.label == np.where(evaluated >= 0.4, "PNEUMONIA", "NORMAL")).all()
    assert np.allclose(served.ood_score, ood.scores(features, detector), atol=1e-6)
    assert (served.in_distribution == (served.ood_score <= 1)).all() and 0 < served.in_distribution.sum() < len(images)


def test_bad_tta_is_rejected_before_any_work(workdir):
    from tasks.core.errors import StepError

    with pytest.raises(StepError, match=r"`params.evaluate.tta`: input should be less than or equal to 5, got 6"):
        write_params(workdir, {"evaluate": {"tta": inference.MAX_TTA + 1}})  # params fail at load, before any work


def test_train_batches_carry_the_class_weight_of_each_label():
    from tasks.training.batches import class_weights, datasets

    still = defaults("train").augment.model_copy(update=dict(rotation=0.0, zoom=0.0, shift=0.0, brightness=0.0,
                                                             contrast=0.0))
    t = defaults("train", augment=still, normalize="scale")
    labels = np.array([0, 1] * 8 + [1] * 16, np.float32)  # 16 normal, 24 pneumonia: unequal class weights
    x = (labels[:, None, None] * 255).astype(np.uint8).repeat(8, 1).repeat(8, 2)  # pixel value = label
    batch_x, batch_y, batch_w = (a.numpy() for a in next(iter(datasets((x, labels), (x[:2], labels[:2]), t, 32)[0])))
    assert np.allclose(batch_x.mean(axis=(1, 2, 3)), batch_y, atol=1e-5)  # images keep their own label
    w = class_weights(labels, "balanced")
    assert w[0] > w[1] and np.allclose(batch_w, np.where(batch_y == 1, w[1], w[0]))
