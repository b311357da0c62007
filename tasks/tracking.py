"""The one module that talks to MLflow. Nothing happens at import time.

The tracking URI is `MLFLOW_TRACKING_URI` when set, else `tracking.uri` (sqlite under
mlruns/). One MLflow run per pipeline run: train starts it and records its id in
`paths.mlflow_run`; evaluate and register reopen it. A re-evaluation of a trained model with other
`evaluate` params (an evaluate-only DVC experiment) gets its own child run instead, so no
configuration's metrics overwrite another's.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from tasks.config import Params
from tasks.files import read_json, write_json


def experiment_name(p: Params) -> str:
    """Demo data logs to its own experiment, so it can never be compared with real data."""
    return p.tracking.experiment + ("-demo" if p.ingest.source == "demo" else "")


def tracking_uri(p: Params) -> str:
    """`MLFLOW_TRACKING_URI`, else `tracking.uri`; a relative sqlite path is made absolute (and its folder
    created), because MLflow caches stores by URI and a relative one would follow a later change of cwd."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or p.tracking.uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    return uri


def configure(p: Params) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id."""
    import mlflow

    uri = tracking_uri(p)
    mlflow.set_tracking_uri(uri)
    name = experiment_name(p)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        # a server stores artifacts itself; a local sqlite store keeps them beside it under mlruns/
        location = None if uri.startswith("http") else Path(p.tracking.artifacts).resolve().as_uri()
        return mlflow.create_experiment(name, artifact_location=location)
    return experiment.experiment_id


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_tags(p: Params) -> dict[str, str]:
    """Git commit, the DVC (md5) hashes of the data trained on, the source and image size."""
    return {"git_commit": git_commit(), "data_md5": file_md5(p.paths.pixels), "split_md5": file_md5(p.paths.split),
            "data_source": p.ingest.source, "image_size": str(p.data.image_size), "model": p.model.name}


def recorded_run_id(p: Params) -> str | None:
    """The MLflow run id that train recorded for this pipeline run, if any."""
    path = Path(p.paths.mlflow_run)
    return read_json(path)["run_id"] if path.exists() else None


@contextmanager
def pipeline_run(p: Params, run_id: str | None):
    """Open an MLflow run: `run_id` reopens one (evaluate, register, a resumed train); None starts one.
    Its id is recorded in `paths.mlflow_run` (train's output) when that file is missing."""
    import mlflow

    experiment_id = configure(p)
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id) as run:
        if run_id is None or not Path(p.paths.mlflow_run).exists():
            write_json(p.paths.mlflow_run, {"run_id": run.info.run_id, "experiment_id": experiment_id,
                                            "tracking_uri": mlflow.get_tracking_uri()})
        yield run


def logged_params(p: Params) -> dict[str, str]:
    """The params a pipeline run logs: every section a model's result depends on."""
    sections = ("data", "ingest", "split", "model", "train", "site", "adapt", "evaluate")
    return flat_params({k: getattr(p, k) for k in sections})


@contextmanager
def evaluation_run(p: Params):
    """The run evaluate logs to: train's run when it was logged with these `evaluate` params, else a new
    child run of it (tag `mlflow.parentRunId`) with the full current params."""
    import mlflow

    train_id = recorded_run_id(p)
    configure(p)
    parent = mlflow.MlflowClient().get_run(train_id)
    params = logged_params(p)
    if all(parent.data.params.get(k) == v for k, v in params.items() if k.startswith("evaluate.")):
        with pipeline_run(p, train_id) as run:
            yield run
        return
    tags = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
    with mlflow.start_run(experiment_id=parent.info.experiment_id, run_name=f"{parent.info.run_name}-reeval",
                          tags={**tags, "mlflow.parentRunId": train_id}) as run:
        mlflow.log_params(params)
        yield run


def flat_params(obj, prefix: str = "") -> dict[str, str]:
    """A nested dataclass/dict as {'train.augment.zoom': '0.1', ...} for mlflow.log_params."""
    import dataclasses

    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) or isinstance(value, dict):
            out.update(flat_params(value, name + "."))
        else:
            out[name] = str(value)
    return out


def epoch_logger():
    """A Keras callback logging every epoch's metrics (and learning rate) to the active run."""
    import keras
    import mlflow

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            mlflow.log_metrics(metrics, step=epoch)

    return EpochLogger()
