"""The edge to MLflow's runs: the store and experiment (`configure`), the tags that tie a run to the data and
code, and finding a run again. What each finished step logs is in tasks.recorders; the registry's reads and
writes are in tasks/records/registry.py. The tracking URI is `MLFLOW_TRACKING_URI` when set, else `tracking.uri`
(sqlite under mlruns/).

Runs are found again by the content of the files the steps wrote, not by a file of run ids: train's
run is tagged with the md5 of the model file, evaluate's with the md5 of `paths.metrics`. DVC restores
those files exactly (`dvc checkout`, `dvc exp apply`), so the run found is always the run of the
workspace's model and metrics. Nothing happens at import time.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tasks.core.config import Params
from tasks.core.files import file_md5, model_path
from tasks.core.sections import flat_params


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


EXPERIMENT_NOTE = ("Training runs of the pneumonia pipeline (ingest, validate, split, train, evaluate, package, "
                   "register): one run per trained model with its per-epoch curves, its test metrics with 95 % "
                   "intervals, figures, the servable model and the registry's decision. A run named `<name>-reeval` "
                   "re-evaluates its parent's model with other evaluate params; a run `site-<name>` adapts the "
                   "champion to a hospital's labelled films (pneumonia-site).")



def configure(p: Params, name: str | None = None, note: str = EXPERIMENT_NOTE) -> str:
    """Point MLflow at the configured store and experiment (`name`, default the project's; created with `note`
    as its description); returns the experiment id."""
    import mlflow

    uri = tracking_uri(p)
    mlflow.set_tracking_uri(uri)
    name = name or experiment_name(p)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        # a server stores artifacts itself; a local sqlite store keeps them beside it under mlruns/
        location = None if uri.startswith("http") else Path(p.tracking.artifacts).resolve().as_uri()
        return mlflow.create_experiment(name, artifact_location=location, tags={"mlflow.note.content": note})
    return experiment.experiment_id


VIEW = "workflowType=machine_learning"  # MLflow 3's model-training view; its UI opens in the GenAI view otherwise


def ui_url(p: Params) -> str:
    """The MLflow UI that links open: a tracking server's own address, else `tracking.ui` (`make ui`)."""
    uri = tracking_uri(p)
    return (uri if uri.startswith("http") else p.tracking.ui).rstrip("/")


def run_link(p: Params, experiment_id: str, run_id: str) -> str:
    return f"{ui_url(p)}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW}"


def version_link(p: Params, model: str, version) -> str:
    return f"{ui_url(p)}/#/models/{model}/versions/{version}?{VIEW}"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_tags(p: Params) -> dict[str, str]:
    """Git commit, the DVC (md5) hashes of the data trained on, the source and image size."""
    return {"git_commit": git_commit(), "data_md5": file_md5(p.paths.pixels), "split_md5": file_md5(p.paths.split),
            "data_source": p.ingest.source, "image_size": str(p.data.image_size), "model": p.model.name}


def find_run(p: Params, tag: str, value: str):
    """The latest run of this project's experiment tagged `tag=value`, or None."""
    import mlflow

    experiment_id = configure(p)
    runs = mlflow.MlflowClient().search_runs([experiment_id], f"tags.{tag} = '{value}'",
                                             order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def train_run(p: Params):
    """The run that recorded the training of the current model file (found by its md5), or None."""
    return find_run(p, "model_md5", file_md5(model_path(p)))


def evaluation_run(p: Params):
    """The run that recorded the current `paths.metrics` (found by its md5) and holds the servable model, or
    None."""
    return find_run(p, "metrics_md5", file_md5(p.paths.metrics))


def logged_params(p: Params) -> dict[str, str]:
    """The params a pipeline run logs: every section a model's result depends on."""
    sections = ("data", "ingest", "split", "model", "train", "evaluate")
    return flat_params({k: getattr(p, k) for k in sections})


SWEEP_RUN_ENV = "PNEUMONIA_SWEEP_RUN"  # set by the sweep flow: its parent run's id
RUN_NAME_ENV = "PNEUMONIA_RUN_NAME"  # set by the training flow: the DVC experiment its run is recorded as
FLOW_RUN_ENV = "PNEUMONIA_FLOW_RUN"  # set by the training flow: its Prefect flow run, "name (id)"


def start_sweep(p: Params, name: str) -> str:
    """A parent run for a sweep (its experiments' training runs become its children); returns its id."""
    import mlflow

    experiment_id = configure(p)
    return mlflow.MlflowClient().create_run(experiment_id, run_name=name, tags={"sweep": name}).info.run_id


def finish_sweep(p: Params, run_id: str, results: dict | None) -> None:
    """Close the sweep's run: its results table and rows as artifacts, the chosen experiment as tags and
    its validation score as a metric; FAILED when the sweep stopped before it had results."""
    import mlflow

    configure(p)
    client = mlflow.MlflowClient()
    if results is None:
        client.set_terminated(run_id, "FAILED")
        return
    best = next(r for r in results["results"] if r["name"] == results["best"])
    client.set_tag(run_id, "best_experiment", results["best"])
    client.set_tag(run_id, "best_run_id", best["run_id"])
    client.log_metric(run_id, f"best_{results['select']}", best[results["select"]])
    sweep_md = Path(p.paths.sweep)
    for path in (sweep_md, sweep_md.with_suffix(".json")):
        if path.exists():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
