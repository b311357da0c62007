"""The model users pull: an MLflow pyfunc that takes raw image bytes and returns a decision.

Input: a DataFrame with an `image` column of base64-encoded image files (any format
tasks.images decodes). Output: `probability` (calibrated P(pneumonia)), `label`
(NORMAL/PNEUMONIA), the `threshold` used, `ood_score` (tasks.ood: distance to the training
X-rays over the threshold) and `in_distribution` (ood_score <= 1; when false the input does not
look like the frontal chest X-rays the model learned, and its label means nothing). Preprocessing is
tasks.images.load_gray + tasks.inference.scores_and_features (tasks.preprocess.normalize): the very
functions training and evaluation used.
"""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

import numpy as np

# limits a client cannot get around; each refusal is a 400 that names the row and the limit
MAX_ROWS = 64  # images per request
MAX_IMAGE_BYTES = 20 * 2**20  # one encoded image
MAX_REQUEST_BYTES = 64 * 2**20  # all encoded images of a request
MAX_IMAGE_PIXELS = 50_000_000  # declared width x height, checked before the pixels are decoded


def decode_images(column, size: int) -> np.ndarray:
    """base64 strings -> uint8 (N, size, size); a bad entry raises ValueError naming its row and the limit."""
    from tasks.images import BadImage, load_gray

    column = list(column)
    if len(column) > MAX_ROWS:
        raise ValueError(f"{len(column)} rows in one request, over the {MAX_ROWS}-row limit: split the request")
    out, total = [], 0
    for i, value in enumerate(column):
        if not isinstance(value, (str, bytes)) or not value:
            raise ValueError(f"row {i}: `image` is empty; send a base64-encoded image file")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"row {i}: `image` is not valid base64") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise ValueError(f"row {i}: image is {len(data):,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit")
        total += len(data)
        if total > MAX_REQUEST_BYTES:
            raise ValueError(f"row {i}: the request's images pass {MAX_REQUEST_BYTES:,} bytes in all: split the "
                             "request")
        try:
            out.append(load_gray(data, size, max_pixels=MAX_IMAGE_PIXELS))
        except BadImage as err:
            raise ValueError(f"row {i}: {err}") from None
    return np.stack(out)


def predict_frame(model, config: dict, detector: dict, images: np.ndarray):
    """uint8 images -> DataFrame(probability, label, threshold, ood_score, in_distribution) with the
    calibration in `config` and the out-of-distribution `detector` (tasks.ood)."""
    import pandas as pd

    from tasks import ood
    from tasks.inference import scores_and_features
    from tasks.metrics import apply_temperature

    raw, features = scores_and_features(model, images, config["normalize"], config.get("tta", 0))
    prob = apply_temperature(raw, config["temperature"], config.get("bias", 0.0))
    threshold = config["threshold"]
    ood_score = ood.scores(features, detector)
    return pd.DataFrame({"probability": prob.astype(float),
                         "label": np.where(prob >= threshold, "PNEUMONIA", "NORMAL"),
                         "threshold": float(threshold), "ood_score": ood_score.astype(float),
                         "in_distribution": ood_score <= 1.0})


def pyfunc_spec(keras_path: str, config_path: str, ood_path: str, example_image: bytes) -> dict:
    """The arguments of `mlflow.pyfunc.save_model` / `log_model` for this model: the one description of the
    package, whether it is saved to a folder (the package stage) or logged to a run (tasks.tracking)."""
    import pandas as pd
    from mlflow.models import infer_signature

    tasks_dir = Path(__file__).resolve().parent
    example = pd.DataFrame({"image": [base64.b64encode(example_image).decode()]})
    output = pd.DataFrame({"probability": [0.5], "label": ["PNEUMONIA"], "threshold": [0.5], "ood_score": [0.5],
                           "in_distribution": [True]})
    return {"python_model": str(tasks_dir / "pyfunc_model.py"),  # a model from code, not a pickle
            "artifacts": {"keras_model": str(keras_path), "config": str(config_path), "ood": str(ood_path)},
            "signature": infer_signature(example, output), "input_example": example,
            "code_paths": [str(tasks_dir)]}  # the model carries the decoder it was trained with
