"""What train + evaluate log to MLflow, checked through MlflowClient: sqlite default and a real server."""
import json

import pandas as pd
import pytest

from tasks.cli import execute
from tasks.records import tracking
from tests.helpers import TINY_TRAIN, write_params
from tests.mlflow_server import mlflow_server

pytestmark = pytest.mark.slow


def check_run(p, uri):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = tracking.evaluation_run(p)  # found by the md5 of the metrics file evaluate wrote
    assert run.info.run_id == tracking.train_run(p).info.run_id  # one run per trained model
    assert run.data.params["train.epochs"] == str(p.train.epochs)
    assert run.data.params["model.name"] == "fast_cnn"
    epochs = len(pd.read_csv(p.paths.history))
    for metric in ("loss", "val_loss", "accuracy", "val_auc", "val_precision", "val_recall"):
        assert len(client.get_metric_history(run.info.run_id, metric)) == epochs, metric
    # system metrics sampled by the train step, one per epoch, under the names the UI's System metrics tab reads
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(cpu) == epochs and all(0 <= m.value <= 100 for m in cpu)
    rss = client.get_metric_history(run.info.run_id, "system/train_process_rss_megabytes")
    assert len(rss) == epochs and all(m.value > 100 for m in rss)  # TensorFlow alone takes more
    for metric in ("test/accuracy", "test/roc_auc", "test/specificity", "val/f1", "threshold"):
        assert metric in run.data.metrics
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}  # the UI's "Datasets" panel
    assert set(inputs) == {"demo-train", "demo-val", "demo-test"}
    contexts = {name: {t.key: t.value for t in d.tags}["mlflow.data.context"] for name, d in inputs.items()}
    assert contexts == {"demo-train": "training", "demo-val": "validation", "demo-test": "test"}
    assert len({d.dataset.digest for d in inputs.values()}) == 3  # three different splits
    split = pd.read_csv(p.paths.split)
    assert json.loads(inputs["demo-val"].dataset.profile)["num_rows"] == int((split.split == "val").sum())
    tags = run.data.tags
    assert tags["data_source"] == "demo" and len(tags["data_md5"]) == 32 and tags["image_size"] == "48"
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"stress.json", "ood.json"} <= artifacts  # the breakdowns as tables, not dozens of one-point charts
    assert not any(k.startswith(("stress/contrast", "ood/flagged_noise")) for k in run.data.metrics)
    assert run.data.metrics["stress/worst_drop_balanced_accuracy"] == pytest.approx(
        max(m["drop_balanced_accuracy"] for m in json.loads(open(p.paths.metrics).read())["stress"].values()))
    figures = {f.path for f in client.list_artifacts(run.info.run_id, "figures")}
    assert {"figures/confusion_matrix.png", "figures/roc.png", "figures/training_curves.png"} <= figures
    model_uri = run.data.tags["servable_model_uri"]  # the package stage's model, logged to this run
    assert model_uri.startswith("models:/m-")
    logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert logged.source_run_id == run.info.run_id
    linked = {m.key: m for m in logged.metrics}  # the test metrics, linked to the model and the test dataset
    assert linked["test/roc_auc"].value == pytest.approx(run.data.metrics["test/roc_auc"])
    assert linked["test/roc_auc"].dataset_digest == inputs["demo-test"].dataset.digest
    history = pd.read_csv(p.paths.history)
    best = history.loc[history.val_auc.idxmax()]  # the checkpoint's epoch, not epoch 0
    assert linked["val_auc"].step == int(best.epoch) and linked["val_auc"].value == pytest.approx(best.val_auc)
    assert linked["loss"].value == pytest.approx(best.loss)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "pneumonia-classifier-demo"  # demo data never shares an experiment with real data
    return run


def test_sqlite_default_store(tiny_workdir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = write_params(tiny_workdir, TINY_TRAIN)
    execute("train", p)
    execute("evaluate", p)
    execute("package", p)
    assert (tiny_workdir / "mlruns/mlflow.db").exists()
    check_run(p, "sqlite:///mlruns/mlflow.db")


def test_tracking_server_from_env(tiny_workdir, monkeypatch):
    p = write_params(tiny_workdir, TINY_TRAIN)
    with mlflow_server(tiny_workdir) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        execute("train", p)
        execute("evaluate", p)
        execute("package", p)
        check_run(p, url)
    assert not (tiny_workdir / "mlruns/mlflow.db").exists()  # nothing went to the local default
