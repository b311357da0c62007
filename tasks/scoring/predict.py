"""predict: score image files with a registered model (default: this project's `@champion`).

    pneumonia-predict IMAGE_OR_FOLDER... [--model-uri models:/pneumonia-classifier@champion]
                      [--output preds.csv|.json|.parquet] [--gradcam DIR]
    pneumonia-predict --engine spark SOURCE... --output OUT.parquet [--master local[2]]   # an archive

Scores folders of any size, CHUNK files at a time (bounded memory), with a progress bar. One row per image:
probability, label, the threshold the model uses, and `ood_score` / `in_distribution`: whether the image looks
like the frontal chest X-rays the model was trained on (tasks.measure.ood); a label of an image that is not in
distribution means nothing, and the printout says so. `--output` also writes every row with the model URI
and version. A missing input, inputs without an image file or a model that cannot be loaded is one line and
exit status 2, before anything is scored; a file that cannot be read or decoded gets one line on stderr and
exit status 1, after the others are scored and written.
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import StepError
from tasks.imaging.films import under
from tasks.imaging.images import IMAGE_SUFFIXES

CHUNK = 256  # files read and sent to the model at a time
PRINTED = 20  # rows printed when there are more (--output holds them all)
FORMATS = {".csv", ".json", ".parquet"}


def image_files(inputs: list[str]) -> list[Path]:
    """The image files of `inputs` (files, or folders searched recursively); StepError for a path that does not
    exist or inputs that hold no image file."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(item / rel for rel in under(item))
        elif item.is_file():
            files.append(item)
        else:
            raise StepError(f"{item} does not exist: give image files or folders of them")
    if not files:
        raise StepError(f"no image files in {', '.join(inputs)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _bad_row(err) -> int | None:
    """The input row an error from the model's predict names (tasks.scoring.serving.BadRow), else None."""
    from tasks.scoring.serving import BadRow

    while err is not None:
        if isinstance(err, BadRow):
            return err.row
        err = err.__cause__
    return None


def _score_chunk(model, files: list[Path], errors: dict) -> pd.DataFrame | None:
    """Score files through the pyfunc; a file that cannot be read goes to `errors` (see `score_payloads`)."""
    payloads, kept = [], []
    for f in files:
        try:
            payloads.append(f.read_bytes())
            kept.append(f)
        except OSError as err:  # removed or unreadable since it was listed
            errors[f] = f"cannot be read ({err.strerror or err})"
    return score_payloads(model, kept, payloads, errors)


def score_payloads(model, names: list, payloads: list[bytes], errors: dict, features: bool = False):
    """The one scoring path of every command (a folder, the archive's instances): image files' bytes through the
    pyfunc, one row per name (`file`, then the model's columns). A payload the model cannot decode goes to
    `errors` under its name, with the model's reason (in the same pass, through the pyfunc's `errors="rows"`,
    where the model takes that param; else the rest is scored again without it); None when none is left. With
    `features`, (table, the (N, D) penultimate features monitoring tests): the pyfunc's own predict_column, which
    its predict runs, asked for the features too."""
    from mlflow.exceptions import MlflowException

    from tasks.scoring.serving import predict_column, takes_errors

    names, encoded = list(names), [base64.b64encode(b).decode() for b in payloads]
    if not features and takes_errors(model.metadata.signature):  # one pass, the model naming each bad file
        out = model.predict(pd.DataFrame({"image": encoded}), params={"errors": "rows"})
        bad = (out.error != "").to_numpy()
        errors.update((names[i], out.error[i]) for i in np.flatnonzero(bad))
        if bad.all():
            return None
        return pd.concat([pd.DataFrame({"file": [str(names[i]) for i in np.flatnonzero(~bad)]}),
                          out[~bad].drop(columns="error").astype({"in_distribution": bool}).reset_index(drop=True)],
                         axis=1)
    # a model packaged before the `errors` param (or features asked): a bad payload is named, left out, and the
    # rest scored again
    inner = model.unwrap_python_model() if features else None
    while names:
        try:
            if features:
                out, feats = predict_column(inner.model, inner.config, inner.detector, encoded, features=True)
            else:
                out = model.predict(pd.DataFrame({"image": encoded}))
        except (MlflowException, ValueError) as err:
            row = _bad_row(err)
            if row is None:
                raise
            errors[names[row]] = str(err).split(": ", 1)[-1]
            del names[row], encoded[row]
            continue
        table = pd.concat([pd.DataFrame({"file": [str(f) for f in names]}), out.reset_index(drop=True)], axis=1)
        return (table, feats) if features else table
    return (None, None) if features else None


def predict_files(model, files: list[Path], progress: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """(one row per scored file, {file: why it was not scored}); `progress` None shows a bar on a terminal."""
    from tqdm import tqdm

    errors: dict = {}
    parts = []
    with tqdm(total=len(files), unit="img", desc="scoring", disable=not progress if progress is not None
              else None, file=sys.stderr) as bar:
        for start in range(0, len(files), CHUNK):
            chunk = files[start:start + CHUNK]
            part = _score_chunk(model, chunk, errors)
            if part is not None:
                parts.append(part)
            bar.update(len(chunk))
    columns = ["file", "probability", "label", "threshold", "ood_score", "in_distribution"]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return table, errors


def write_table(table: pd.DataFrame, path: Path) -> Path:
    """The table as CSV, JSON (records) or Parquet, by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".json":
        table.to_json(path, orient="records", indent=1)
    else:
        table.to_parquet(path, index=False)
    return path


def write_gradcam(model, files: list[Path], folder: Path) -> list[Path]:
    """Grad-CAM overlays of each file, from the Keras model inside the pyfunc."""
    from tasks.imaging.images import load_gray
    from tasks.imaging.preprocess import normalize
    from tasks.measure.gradcam import heatmaps
    from tasks.measure.plots import image_grid
    from tasks.scoring.contract import ServingConfig

    inner = model.unwrap_python_model()
    cfg = ServingConfig.of(inner.config)
    pixels = [load_gray(f.read_bytes(), cfg.image_size) for f in files]
    x = normalize(np.stack(pixels), cfg.normalize)
    cams = heatmaps(inner.model, x)
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(image_grid(x[i:i + 1, ..., 0], [f.name], folder / f"{f.stem}_gradcam.png", "Grad-CAM",
                            overlays=cams[i:i + 1], cols=1)) for i, f in enumerate(files)]


def default_uri() -> str:
    from tasks.core import config
    from tasks.records.registry import champion_uri

    return champion_uri(config.load())


def main(argv: list[str] | None = None) -> int:
    from tasks import cli

    ap = cli.parser("pneumonia-predict", __doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="image files or folders")
    ap.add_argument("--model-uri", help="any MLflow model URI (default: this project's @champion from params.yaml)")
    ap.add_argument("--output", type=Path, metavar="FILE", help="write every row here (.csv, .json or .parquet)")
    ap.add_argument("--gradcam", type=Path, metavar="DIR", help="also write Grad-CAM overlays here")
    ap.add_argument("--engine", choices=("local", "spark"), default="local",
                    help="spark: read and score on Spark (an archive; --output OUT.parquet)")
    ap.add_argument("--master", default="local[2]", help="with --engine spark: Spark's master (default local[2])")
    args = ap.parse_args(argv)
    if args.output and args.output.suffix not in FORMATS:
        ap.error(f"--output {args.output}: use a .csv, .json or .parquet file")
    if args.engine == "spark" and (args.output is None or args.output.suffix != ".parquet" or args.gradcam):
        ap.error("--engine spark writes a Parquet folder: give --output OUT.parquet (and no --gradcam)")
    return cli.guard("pneumonia-predict", lambda: (score_on_spark if args.engine == "spark" else score)(args))


def served_model(args) -> tuple[str, str]:
    """(model URI, its registry version or ''): --model-uri, else this checkout's @champion; StepError when the
    registry has no such model."""
    from tasks.core import config
    from tasks.records import registry, tracking

    if Path("params.yaml").exists():  # inside a checkout: use its tracking store
        tracking.configure(config.load())
    uri = args.model_uri or default_uri()
    try:
        return uri, registry.version_of(uri)
    except LookupError as err:
        raise StepError(str(err)) from None


def score(args) -> int:
    """The command's work: 0, or 1 when a file could not be scored (the others were)."""
    from tasks.core.native import import_tensorflow
    from tasks.records import registry

    files = image_files(args.inputs)  # bad inputs refused in a second, before TensorFlow and the model load
    import_tensorflow()  # its start-up notices kept off the terminal
    uri, version = served_model(args)
    try:
        model = registry.load(uri)
    except LookupError as err:
        raise StepError(str(err)) from None
    table, errors = predict_files(model, files)
    print(f"model: {uri}" + (f" (version {version})" if version else ""))
    if args.output:
        write_table(table.assign(model_uri=uri, model_version=version), args.output)
        print(f"{len(table)} image(s) scored -> {args.output}")
    shown = table if args.output is None and len(table) <= 2 * PRINTED else table.head(PRINTED)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if len(shown) < len(table):
        where = f"all in {args.output}" if args.output else "--output FILE writes them all"
        print(f"... {len(table) - len(shown)} more rows ({(table.label == 'PNEUMONIA').sum()} of {len(table)} "
              f"called PNEUMONIA); {where}")
    outside = table.file[~table.in_distribution.astype(bool)].tolist()
    if outside:
        named = ", ".join(outside[:10]) + (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
        print(f"warning: {len(outside)} image(s) do not look like the frontal chest X-rays the model learned "
              f"(in_distribution false), so their labels mean nothing: {named}", file=sys.stderr)
    if args.gradcam:
        for path in write_gradcam(model, [Path(f) for f in table.file], args.gradcam):
            print(f"Grad-CAM: {path}")
    for f, why in errors.items():
        print(f"pneumonia-predict: error: {f}: {why}; the other files were scored", file=sys.stderr)
    return 1 if errors else 0


def score_on_spark(args) -> int:
    """`--engine spark`: the same model through mlflow.pyfunc.spark_udf; 0, or 1 when a file could not be read."""
    from tasks.scoring import spark_scoring

    for item in args.inputs:  # a local path must exist; a URI (s3a://, hdfs://) is Spark's to read
        if "://" not in item and not Path(item).exists():
            raise StepError(f"{item} does not exist: give image files or folders of them")
    uri, version = served_model(args)
    out = spark_scoring.job(args.inputs, args.output, uri, version, args.master)
    print(f"model: {uri}" + (f" (version {version})" if version else "") + f"; Spark {args.master}")
    print(f"{out['rows']} file(s) -> {args.output}: {out['scored']} scored ({out['pneumonia']} called PNEUMONIA), "
          f"{out['errors']} could not be read, in {out['seconds']:.1f} s")
    for f, why in out["unreadable"].items():
        print(f"pneumonia-predict: error: {f}: {why}; the other files were scored", file=sys.stderr)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
