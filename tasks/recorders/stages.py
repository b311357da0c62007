"""What each finished step logs to MLflow: `tasks.cli` calls `record(step, params, result)` after a step
succeeded; no step logs to a run itself (package writes an MLflow model folder, a file format).

One MLflow run per trained model: train's record starts it, evaluate's logs into it (or into a child run when
the same model is re-evaluated with other `evaluate` params, so no configuration's metrics overwrite
another's), package's logs the servable model there, register's tags it. Runs are found with tasks.records.tracking.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from tasks.core.config import Params
from tasks.core.files import file_md5, model_path, read_json
from tasks.records import tracking
from tasks.records.tracking import SWEEP_RUN_ENV, configure, evaluation_run, logged_params, run_tags, train_run


def record(step: str, p: Params, result) -> None:
    """Log what `step` computed and wrote (its return value `result` and its declared files) to MLflow.
    Steps without a record (ingest, validate, split) log nothing."""
    recorders = {"train": record_train, "evaluate": record_evaluate, "package": record_package,
                 "register": record_register}
    if step in recorders:
        recorders[step](p, result)


LINKED_METRICS = ("roc_auc", "accuracy", "recall", "specificity", "f1", "balanced_accuracy")


def record_train(p: Params, report: dict) -> None:
    """A new run: params, data tags, the md5 of the model file (how evaluate finds the run again), one
    point per epoch for every curve of `paths.history`, and the training time. Under a sweep it is a child
    of the sweep's run."""
    import mlflow
    import pandas as pd

    experiment_id = configure(p)
    parent, flow_run = os.environ.get(SWEEP_RUN_ENV), os.environ.get(tracking.FLOW_RUN_ENV)
    start = {"mlflow.note.content": describe_training(p, report, flow_run)}  # the run page's description
    start.update({"mlflow.parentRunId": parent} if parent else {})
    start.update({"prefect_flow_run": flow_run} if flow_run else {})
    # named after the DVC experiment it is recorded as (`dvc exp run`, the training flow); MLflow's random name
    # only under a bare `dvc repro`
    name = os.environ.get("DVC_EXP_NAME") or os.environ.get(tracking.RUN_NAME_ENV)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=start):
        tags = describe_model_run(p)
        history = pd.read_csv(p.paths.history)
        for row in history.to_dict("records"):
            epoch = int(row.pop("epoch"))
            mlflow.log_metrics({k: float(v) for k, v in row.items()}, step=epoch)
        mlflow.log_metrics({"train_seconds": report["seconds"], "train_images_per_second": report["images_per_second"]})
        mlflow.log_artifact(p.paths.history, "curves")
        log_datasets(p, tags)


def describe_training(p: Params, report: dict, flow_run: str | None) -> str:
    """A training run's description: what was trained on what, how long, and what started it."""
    started = f"the Prefect flow run {flow_run}" if flow_run else "`dvc repro`"
    return (f"`{p.model.name}` trained on `{p.ingest.source}` data ({report['train_images']} images at "
            f"{p.data.image_size} px) for {report['epochs']} epochs in {report['seconds']:.0f} s; the weights of the "
            f"best validation AUC ({report['best_val_auc']}) are the model. Started by {started}.")


def describe_model_run(p: Params) -> dict[str, str]:
    """Params and tags of a new run of the workspace's model, the model file's md5 among them (how the run is
    found again); returns the tags."""
    import mlflow

    tags = {**run_tags(p), "model_md5": file_md5(model_path(p))}
    mlflow.log_params(logged_params(p))
    mlflow.set_tags(tags)
    return tags


def log_datasets(p: Params, tags: dict[str, str]) -> None:
    """The train, val and test splits as the run's MLflow datasets (the UI's "Datasets" panel): their rows
    of the split file, the source the images came from, and a digest of the DVC hashes of the pixel
    store and the split file with the split's name, so equal digests mean the same images and labels."""
    import mlflow
    import pandas as pd

    frame = pd.read_csv(p.paths.split)
    with dataset_warnings_off():
        for split, context in (("train", "training"), ("val", "validation"), ("test", "test")):
            mlflow.log_input(split_dataset(p, frame, split, tags), context=context)


@contextmanager
def dataset_warnings_off():
    """MLflow's warnings about a dataset it is given (and infers a schema of, when it is logged): that its
    local-path source is ambiguous (it registers that kind twice) and that integer columns cannot hold missing
    values (the split file has none, by validation). Neither is the user's to act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer column")
        yield


def split_dataset(p: Params, frame, split: str, tags: dict[str, str]):
    """One split of `frame` (the split file) as an MLflow dataset; its digest comes from run_tags' DVC hashes
    (not read again) and the split's name."""
    import hashlib

    import mlflow

    rows = frame[frame.split == split].reset_index(drop=True)
    digest = hashlib.md5(f"{tags['data_md5']} {tags['split_md5']} {split}".encode()).hexdigest()[:16]
    with dataset_warnings_off():
        return mlflow.data.from_pandas(rows, source=str(Path(p.ingest.input).resolve()), targets="label",
                                       name=f"{p.ingest.source}-{split}", digest=digest)


@contextmanager
def _evaluation_run(p: Params):
    """Train's run when it was logged with these `evaluate` params, else a new child run of it (tag
    `mlflow.parentRunId`) with the full current params; a model no run trained gets a run of its own."""
    import mlflow

    experiment_id = configure(p)
    parent, params = train_run(p), logged_params(p)
    if parent is None:
        with mlflow.start_run(experiment_id=experiment_id):
            describe_model_run(p)
            yield
        return
    if all(parent.data.params.get(k) == v for k, v in params.items() if k.startswith("evaluate.")):
        with mlflow.start_run(run_id=parent.info.run_id):
            yield
        return
    # not the parent's model_md5: the model file must keep leading to its training run
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{parent.info.run_name}-reeval",
                          tags={**run_tags(p), "mlflow.parentRunId": parent.info.run_id}):
        mlflow.log_params(params)
        yield


def record_evaluate(p: Params, result: dict) -> None:
    """Metrics, figures and predictions on the training's run; tagged with the md5 of `paths.metrics`."""
    import mlflow
    import pandas as pd

    with _evaluation_run(p):
        mlflow.log_metrics({f"{s}/{k}": float(v) for s in ("val", "test") for k, v in result[s].items()})
        mlflow.log_metrics({k: float(result[k]) for k in ("temperature", "bias", "threshold")})
        mlflow.log_metrics({f"test/{k}_ci_{end}": float(v) for k, ci in result.get("test_intervals", {}).items()
                            if isinstance(ci, list) for end, v in zip(("low", "high"), ci)})
        # the breakdowns as one table each (the run's Artifacts, and comparable across runs in the UI's
        # Evaluation view), the headline of each as a metric: 40 single-bar charts said less than two tables
        stress, ood = result["stress"], result["ood"]
        mlflow.log_table(pd.DataFrame([{"shift": name, **m} for name, m in stress.items()]), "stress.json")
        kinds = {k.removeprefix("flagged_"): v for k, v in ood.items() if k.startswith("flagged_")}
        mlflow.log_table(pd.DataFrame({"kind": list(kinds), "flagged": list(kinds.values())}), "ood.json")
        if result.get("subgroups"):
            mlflow.log_table(pd.DataFrame(result["subgroups"]).astype(str), "subgroups.json")
        mlflow.log_metrics({"stress/worst_drop_balanced_accuracy": max(m["drop_balanced_accuracy"] for m in
                                                                       stress.values()),
                            **{f"ood/{k}": float(ood[k]) for k in ("val_pass", "test_pass", "threshold")},
                            "ood/flagged_min": min(kinds.values())})
        for path in sorted(Path(p.paths.figures).glob("*.png")):
            mlflow.log_artifact(str(path), "figures")
        mlflow.log_artifact(p.paths.metrics)
        mlflow.log_artifact(p.paths.predictions)
        mlflow.set_tag("metrics_md5", file_md5(p.paths.metrics))


def checkpoint_epoch(p: Params) -> int:
    """The epoch whose weights train kept (the best validation AUC, as ModelCheckpoint and EarlyStopping chose)."""
    import pandas as pd

    history = pd.read_csv(p.paths.history)
    return int(history.epoch[history.val_auc.idxmax()])


def record_package(p: Params, result: dict) -> None:
    """The servable pyfunc (the package stage's model and serving config) logged to the evaluation's run,
    its `models:/m-…` URI kept as the run's tag `servable_model_uri` (what register registers)."""
    import mlflow
    import pandas as pd

    from tasks.scoring.serving import example_image, pyfunc_spec

    run = evaluation_run(p)
    if run is None:
        raise LookupError(f"no MLflow run recorded the evaluation in {p.paths.metrics}: rerun evaluate")
    with mlflow.start_run(run_id=run.info.run_id):
        # at the checkpoint's epoch: the model's page links the metrics logged at its step, so it shows the
        # train and validation figures of the weights it holds (at step 0 it showed the first epoch's)
        info = mlflow.pyfunc.log_model(name="model", step=checkpoint_epoch(p),
                                       **pyfunc_spec(model_path(p).parent, example_image(p.paths.pixels)))
        mlflow.set_tag("servable_model_uri", info.model_uri)
        # the test metrics again, linked to the logged model and the test dataset: the model's own page shows them
        # (the dataset's digest from the run's own data tags, not from hashing the pixel store again)
        test = read_json(p.paths.metrics)["test"]
        linked = {f"test/{k}": float(test[k]) for k in LINKED_METRICS if k in test}
        with dataset_warnings_off():
            mlflow.log_metrics(linked, model_id=info.model_id,
                               dataset=split_dataset(p, pd.read_csv(p.paths.split), "test", run.data.tags))


def record_register(p: Params, report: dict) -> None:
    """The registry's decision as tags of the run that logged the registered model."""
    import mlflow

    from tasks.records import card

    configure(p)
    with mlflow.start_run(run_id=report["run_id"]):
        mlflow.set_tags({"registry.version": report["version"], "registry.decision": report["promoted"],
                         "registry.reason": report["reason"]})
    card.log(p, report["model_name"], report["version"], report["run_id"], card.files(p))
