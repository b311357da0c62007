"""The model users pull: an MLflow pyfunc that takes raw image bytes and returns a decision.

Input: a DataFrame with an `image` column of base64-encoded image files (any format
tasks.imaging.images decodes). Output: `probability` (calibrated P(pneumonia)), `label`
(NORMAL/PNEUMONIA), the `threshold` used, `ood_score` (tasks.measure.ood: distance to the training
X-rays over the threshold) and `in_distribution` (ood_score <= 1; when false the input does not
look like the frontal chest X-rays the model learned, and its label means nothing). Preprocessing is
tasks.imaging.images.load_gray + tasks.measure.inference.scores_and_features
(tasks.imaging.preprocess.normalize): the very functions training and evaluation used.
"""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

import numpy as np

from tasks.scoring.contract import ServingConfig

# limits of one HTTP request (`mlflow models serve`): each refusal is a 400 that names the row and the limit. The
# model itself scores any number of rows, CHUNK at a time, so a batch job, `mlflow models predict` and
# spark_udf are not capped.
MAX_ROWS = 64  # images per request
MAX_REQUEST_BYTES = 64 * 2**20  # all encoded images of a request
MAX_IMAGE_BYTES = 20 * 2**20  # one encoded image (everywhere: it guards the decoder)
MAX_IMAGE_PIXELS = 50_000_000  # declared width x height, checked before the pixels are decoded
CHUNK = 64  # rows decoded and scored at a time: memory does not grow with the number of rows
ERRORS = ("raise", "rows")  # the pyfunc's `errors` param (its signature's params schema; default "raise")
SERVER_ENV = "__pyfunc_model_path__"  # set by `mlflow models serve` for its scoring-server process only


class BadRow(ValueError):
    """One input row cannot be scored; `row` is its position in the model input."""

    def __init__(self, row: int, reason: str):
        super().__init__(f"row {row}: {reason}")
        self.row, self.reason = row, reason


def http_request() -> bool:
    """Whether this process is MLflow's HTTP scoring server (`mlflow models serve`, the serving image), where
    the request limits apply. `mlflow models predict` and in-process loads are not."""
    import os

    return bool(os.environ.get(SERVER_ENV))


def check_request(column: list) -> None:
    """The HTTP request limits: rows and total encoded bytes; ValueError naming the limit."""
    if len(column) > MAX_ROWS:
        raise ValueError(f"{len(column)} rows in one request, over the {MAX_ROWS}-row limit: split the request "
                         "(or score files in batch: pneumonia-predict FOLDER --output preds.csv)")
    total = 0
    for i, value in enumerate(column):
        total += len(value) * 3 // 4 if isinstance(value, (str, bytes)) else 0  # decoded size of the base64
        if total > MAX_REQUEST_BYTES:
            raise ValueError(f"row {i}: the request's images pass {MAX_REQUEST_BYTES:,} bytes in all: split the "
                             "request")


def decode_images(column, size: int, first_row: int = 0, bad: dict | None = None) -> np.ndarray:
    """base64 strings -> uint8 (N, size, size); a bad entry raises BadRow naming its row (counted from
    `first_row`) and the limit, or, given a dict `bad`, is left out and recorded there as {row: reason}."""
    if bad is not None:
        out = []
        for i, value in enumerate(column, start=first_row):
            try:
                out.append(decode_images([value], size, first_row=i)[0])
            except BadRow as err:
                bad[err.row] = err.reason
        return np.stack(out) if out else np.empty((0, size, size), np.uint8)
    from tasks.imaging.images import BadImage, load_gray

    out = []
    for i, value in enumerate(column, start=first_row):
        if not isinstance(value, (str, bytes)):
            raise BadRow(i, f"`image` is a {type(value).__name__}, not a string; send a base64-encoded image file")
        if not value:
            raise BadRow(i, "`image` is empty; send a base64-encoded image file")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadRow(i, "`image` is not valid base64") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise BadRow(i, f"image is {len(data):,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit")
        try:
            out.append(load_gray(data, size, max_pixels=MAX_IMAGE_PIXELS))
        except BadImage as err:
            raise BadRow(i, str(err)) from None
    return np.stack(out) if out else np.empty((0, size, size), np.uint8)


def predict_frame(model, config: ServingConfig | dict, detector: dict, images: np.ndarray, features: bool = False):
    """uint8 images -> DataFrame(probability, label, threshold, ood_score, in_distribution) with the
    calibration in `config` and the out-of-distribution `detector` (tasks.measure.ood); with `features`, also the
    (N, D) penultimate features the scores came from (what monitoring compares with the reference)."""
    import pandas as pd

    from tasks.measure import ood
    from tasks.measure.inference import scores_and_features

    config = ServingConfig.of(config)
    raw, feats = scores_and_features(model, images, config.normalize, config.tta)
    prob = config.calibrate(raw)
    ood_score = ood.scores(feats, detector)
    frame = pd.DataFrame({"probability": prob.astype(float),
                          "label": np.where(config.decide(prob), "PNEUMONIA", "NORMAL"),
                          "threshold": float(config.threshold), "ood_score": ood_score.astype(float),
                          "in_distribution": ood_score <= 1.0})
    return (frame, feats) if features else frame


def predict_column(model, config: ServingConfig | dict, detector: dict, column, features: bool = False,
                   errors: str = "raise"):
    """Any number of base64 images, CHUNK at a time (bounded memory), with the scores of predict_frame
    (the same function on the same pixels, so a row scores alike alone or in a batch of any size). `errors`
    "raise": a row that cannot be decoded raises BadRow; "rows": it gets no scores and its reason in an added
    `error` column ("" on the rows scored: a string column whatever the batch holds, as Spark's result types
    need), so one pass scores a batch that holds bad files (Spark's job)."""
    import pandas as pd

    column, config = list(column), ServingConfig.of(config)
    if not column:
        raise ValueError("no rows to score: send at least one image")
    if errors not in ERRORS:
        raise ValueError(f"errors={errors!r}: use one of {', '.join(ERRORS)}")
    rows = errors == "rows"
    if rows and features:
        raise ValueError("features are given for batches without errors only (errors='raise')")
    from concurrent.futures import ThreadPoolExecutor

    def decoded(start: int):
        bad = {} if rows else None
        return decode_images(column[start:start + CHUNK], config.image_size, first_row=start, bad=bad), bad

    frames, feats = [], []
    # the next chunk is decoded in a thread while this one is scored (PIL and TensorFlow release the GIL):
    # the decoder no longer waits for the network, nor the network for the decoder; memory stays two chunks
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(decoded, 0)
        for start in range(0, len(column), CHUNK):
            images, bad = pending.result()
            if start + CHUNK < len(column):
                pending = pool.submit(decoded, start + CHUNK)
            if rows:
                frames.append(with_errors(model, config, detector, images, bad, start,
                                          min(CHUNK, len(column) - start)))
                continue
            frame, f = predict_frame(model, config, detector, images, features=True)
            frames.append(frame)
            feats.append(f)
    frame = pd.concat(frames, ignore_index=True)
    return (frame, np.concatenate(feats)) if features else frame


def takes_errors(signature) -> bool:
    """Whether a model with this MLflow signature takes the `errors` param (models packaged before it do not)."""
    params = getattr(signature, "params", None)
    return params is not None and any(spec.name == "errors" for spec in params.params)


def with_errors(model, config: ServingConfig, detector: dict, images: np.ndarray, bad: dict, first_row: int,
                count: int):
    """A chunk of `count` rows from `first_row`: the decoded `images` scored, the rows in `bad` ({row: reason})
    without scores and with their reason in `error`."""
    import pandas as pd

    rows = range(first_row, first_row + count)
    good = [i for i in rows if i not in bad]
    frame = (predict_frame(model, config, detector, images).set_axis(good) if good else
             pd.DataFrame(columns=["probability", "label", "threshold", "ood_score", "in_distribution"], dtype=float))
    return frame.reindex(rows).assign(error=[bad.get(i, "") for i in rows]).reset_index(drop=True)


# what the served code imports: pinned to this environment's versions. The project itself travels as
# code_paths, never as a requirement (no index has it, and an unregistered name invites dependency confusion)
REQUIREMENTS = ("mlflow", "tensorflow-cpu", "keras", "numpy", "pandas", "scipy", "scikit-learn", "pillow", "pydicom")


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def example_image(pixels: str | Path) -> bytes:
    """The signature's example input: the first image of the prepared pixel store, as a PNG file."""
    from tasks.imaging.images import png_bytes

    return png_bytes(np.load(pixels, mmap_mode="r")[0])


ARTIFACTS = {"keras_model": "model.keras", "config": "serving.json", "ood": "ood.npz", "reference": "reference.npz"}


def pyfunc_spec(folder: str | Path, example_image: bytes) -> dict:
    """The arguments of `mlflow.pyfunc.save_model` / `log_model` for the model in `folder` (its ARTIFACTS: the
    Keras model, the serving config, the out-of-distribution detector and the monitoring reference): the one
    description of the package, whether it is saved to a folder (the package stage, a site's adapt) or logged
    to a run (tasks.recorders)."""
    import pandas as pd
    from mlflow.models import infer_signature

    here = Path(__file__).resolve().parent
    example = pd.DataFrame({"image": [base64.b64encode(example_image).decode()]})
    output = pd.DataFrame({"probability": [0.5], "label": ["PNEUMONIA"], "threshold": [0.5], "ood_score": [0.5],
                           "in_distribution": [True]})
    return {"python_model": str(here / "pyfunc_model.py"),  # a model from code, not a pickle
            "artifacts": {key: str(Path(folder) / name) for key, name in ARTIFACTS.items()},
            "signature": infer_signature(example, output, params={"errors": ERRORS[0]}), "input_example": example,
            "pip_requirements": pip_requirements(),
            "code_paths": [str(here.parent)]}  # the whole of tasks/: the model carries the decoder it was trained with
