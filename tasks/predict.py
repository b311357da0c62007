"""predict: score image files with a registered model (default: this project's `@champion`).

    pneumonia-predict IMAGE_OR_FOLDER... [--model-uri models:/pneumonia-classifier@champion] [--gradcam DIR]

Prints one row per image: probability, label, the threshold the model uses, and `ood_score` /
`in_distribution`: whether the image looks like the frontal chest X-rays the model was trained on
(tasks.ood). A label of an image that is not in distribution means nothing, and the printout says so.
"""
from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.images import IMAGE_SUFFIXES


def image_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(f for f in item.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item} does not exist")
    if not files:
        raise FileNotFoundError(f"no image files in {', '.join(inputs)}")
    return files


def predict_files(model, files: list[Path]) -> pd.DataFrame:
    frame = pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in files]})
    out = model.predict(frame)
    return pd.concat([pd.DataFrame({"file": [str(f) for f in files]}), out.reset_index(drop=True)], axis=1)


def write_gradcam(model, files: list[Path], folder: Path) -> list[Path]:
    """Grad-CAM overlays of each file, from the Keras model inside the pyfunc."""
    from tasks.gradcam import heatmaps
    from tasks.images import load_gray
    from tasks.plots import image_grid
    from tasks.preprocess import normalize

    inner = model.unwrap_python_model()
    cfg = inner.config
    pixels = [load_gray(f.read_bytes(), cfg["image_size"]) for f in files]
    x = normalize(np.stack(pixels), cfg["normalize"])
    cams = heatmaps(inner.model, x)
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(image_grid(x[i:i + 1, ..., 0], [f.name], folder / f"{f.stem}_gradcam.png", "Grad-CAM",
                            overlays=cams[i:i + 1], cols=1)) for i, f in enumerate(files)]


def default_uri() -> str:
    from tasks import config
    from tasks.registry import champion_uri

    return champion_uri(config.load())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pneumonia-predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="image files or folders")
    ap.add_argument("--model-uri", help="any MLflow model URI (default: this project's @champion from params.yaml)")
    ap.add_argument("--gradcam", type=Path, metavar="DIR", help="also write Grad-CAM overlays here")
    args = ap.parse_args(argv)
    from tasks import config, registry, tracking

    if Path("params.yaml").exists():  # inside a checkout: use its tracking store
        tracking.configure(config.load())
    uri = args.model_uri or default_uri()
    try:
        files = image_files(args.inputs)
        model = registry.load(uri)
        table = predict_files(model, files)
    except (FileNotFoundError, LookupError) as err:
        print(f"pneumonia-predict: error: {err}", file=sys.stderr)
        return 1
    print(f"model: {uri}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    outside = table.file[~table.in_distribution.astype(bool)].tolist()
    if outside:
        print(f"warning: {len(outside)} image(s) do not look like the frontal chest X-rays the model learned "
              f"(in_distribution false), so their labels mean nothing: {', '.join(outside)}", file=sys.stderr)
    if args.gradcam:
        for path in write_gradcam(model, files, args.gradcam):
            print(f"Grad-CAM: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
