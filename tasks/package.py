"""package: the servable model as an MLflow pyfunc folder, checked against what evaluate measured.

Saves `<paths.model_dir>/package` from the trained model and the serving config evaluate chose
(`<model_dir>/serving.json`: preprocessing, calibration, threshold). Before it is kept, the package is
loaded back through MLflow and must give evaluate's validation probabilities and out-of-distribution
scores (`paths.predictions`) for a sample of validation images sent as PNG files, to 1e-5: what is
registered and served is what was measured. Serve it without a registry: `mlflow models serve -m
models/package`. tasks.recorders logs the same package to the evaluation's MLflow run, and register
registers that logged model.
"""
from __future__ import annotations

import base64
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.cli import main
from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.core.files import model_path, ood_path, reference_path, serving_config
from tasks.imaging.images import png_bytes

log = logging.getLogger(__name__)

CHECKED = 16  # validation images re-scored through the package


def package_dir(p: Params) -> Path:
    return Path(p.paths.model_dir) / "package"


def check(p: Params, folder: Path) -> float:
    """Largest |package - evaluate| over a sample of validation images, of the probability and of the
    out-of-distribution score."""
    import mlflow

    from tasks.imaging.data import load_splits

    images = load_splits(p.paths)["val"][0][:CHECKED]
    columns = ["probability", "ood_score"]
    expected = pd.read_csv(p.paths.predictions).query("split == 'val'")[columns].to_numpy()[:CHECKED]
    frame = pd.DataFrame({"image": [base64.b64encode(png_bytes(img)).decode() for img in images]})
    served = mlflow.pyfunc.load_model(str(folder)).predict(frame)[columns].to_numpy()
    return float(np.max(np.abs(served - expected)))


def run(p: Params) -> dict:
    import mlflow

    from tasks.scoring.serving import example_image, pyfunc_spec

    needed = [serving_config(p), ood_path(p), reference_path(p), Path(p.paths.predictions)]
    if not all(path.exists() for path in needed):
        raise StepError(f"{', '.join(map(str, needed))}: one is missing; run evaluate first")
    folder = package_dir(p)
    shutil.rmtree(folder, ignore_errors=True)  # save_model refuses an existing folder
    spec = pyfunc_spec(model_path(p).parent, example_image(p.paths.pixels))
    mlflow.pyfunc.save_model(str(folder), **spec)
    gap = check(p, folder)
    if not gap <= 1e-5:
        shutil.rmtree(folder)
        raise StepError(f"the package scores validation images {gap:.2e} away from evaluate's "
                        f"{p.paths.predictions}: the served model would not be the measured one")
    log.info(f"package: {folder} (an MLflow pyfunc; serve it with `mlflow models serve -m {folder}`): "
          f"reproduces evaluate's validation probabilities and ood scores to {gap:.1e}")
    return {"folder": str(folder), "max_gap": gap}


if __name__ == "__main__":
    main("package", run)
