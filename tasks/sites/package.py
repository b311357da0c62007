"""The site model's servable parts (tasks.sites.adapt writes them): the out-of-distribution detector refitted
on the adapted features, the monitoring reference from the site's own films, `model/` and the MLflow pyfunc
`package/`, checked to score as the adapted model does."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.imaging import films as film_folder
from tasks.measure import ood, reference
from tasks.scoring.contract import ServingConfig
from tasks.sites import stage

CHECKED = 16  # films re-scored through the saved package


def refit_ood(model, splits: dict, mode: str, pass_rate: float) -> dict:
    """The out-of-distribution detector on the adapted model's own features (train fit, validation threshold)."""
    from tasks.measure.inference import scores_and_features

    fitted = ood.fit(scores_and_features(model, splits["train"][0], mode)[1], splits["train"][1])
    fitted["threshold"] = ood.threshold(ood.distance(scores_and_features(model, splits["val"][0], mode)[1], fitted),
                                        pass_rate)
    return fitted


def site_reference(p: Params, model, serving: ServingConfig, detector: dict, folder: str, labelled: set[str]) -> dict:
    """The adapted model's monitoring reference: a seeded sample of the site's films it was not trained on,
    scored by the served functions (the site, not the source, is what its batches should look like)."""
    from tasks.scoring.serving import predict_frame

    unseen = [f for f in film_folder.listing(folder) if f not in labelled]
    r = p.evaluate.reference
    chosen = [unseen[i] for i in reference.sample(len(unseen), r.films, r.seed)]
    if not chosen:
        raise StepError(f"{folder}: every film is labelled, none is left for the monitoring reference")
    frame, features = predict_frame(model, serving, detector, film_folder.load(folder, chosen, serving.image_size),
                                    features=True)
    return reference.build(features, frame.probability.to_numpy(), frame.ood_score.to_numpy(), serving.threshold)


def save(p: Params, name: str, model, serving: ServingConfig, detector: dict, ref: dict, example: bytes) -> Path:
    """model/ and package/ of the site; returns the package folder."""
    import mlflow

    from tasks.scoring.serving import pyfunc_spec

    f = stage.files(p, name)
    shutil.rmtree(f["model"], ignore_errors=True)
    f["model"].mkdir(parents=True)
    model.save(f["model"] / "model.keras")
    serving.save(f["model"] / "serving.json")
    ood.save(f["model"] / "ood.npz", detector)
    reference.save(f["model"] / "reference.npz", ref)
    shutil.rmtree(f["package"], ignore_errors=True)
    spec = pyfunc_spec(f["model"], example)
    mlflow.pyfunc.save_model(str(f["package"]), **spec)
    return f["package"]


def check_package(folder: Path, images: np.ndarray, expected: np.ndarray) -> float:
    import mlflow

    from tasks.imaging.images import png_bytes

    frame = pd.DataFrame({"image": [base64.b64encode(png_bytes(img)).decode() for img in images]})
    served = mlflow.pyfunc.load_model(str(folder)).predict(frame).probability.to_numpy()
    return float(np.max(np.abs(served - expected)))
