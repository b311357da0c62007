"""The `pneumonia-training` flow: one Prefect task per DVC stage, in dvc.yaml order.

    pneumonia-pipeline [key=value ...]      # or python -m flows.pipeline; e.g. train.epochs=3

Each stage runs through `dvc repro --single-item`, so a rerun after a failure skips what
already finished, and `dvc status` is clean after a successful run. Transient failures are
retried with backoff; a rejected input or parameter (exit 2) stops the flow at once.
Overrides are applied as `dvc exp run -S` would. Every run that trains is saved as a DVC experiment
(`--name`, else `run-<UTC time>`), named on the MLflow run of its evaluation (tag `dvc_experiment`), so
a nightly run never overwrites the last; a run without overrides when `dvc status` is clean (no new data,
code or params) stops in seconds and says so.
After the last stage, `dvc push` sends data, model and package to the checkout's default DVC remote
(when none is set, a local folder outside the checkout: `paths.dvc_remote`), so a fresh clone gets
them back with `dvc pull`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.tasks import exponential_backoff

from flows import notify, stages
from flows.overrides import check_params, set_params
from flows.settings import TrainingSettings
from tasks.core.errors import EXIT_REJECTED, StepError


def transient(task, task_run, state) -> bool:
    """Retry only failures a retry can fix; a StageRejected (bad data or params) or a StageTimedOut is final."""
    try:
        state.result()
    except (stages.StageRejected, stages.StageTimedOut):
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=transient)
def run_stage(stage: str, run_name: str) -> str:
    """One DVC stage; its MLflow run (train's) is named `run_name` and names this flow run."""
    from prefect.runtime import flow_run

    from tasks.core import config
    from tasks.records import tracking

    minutes = config.load().orchestration.stage_timeout_minutes
    env = {tracking.RUN_NAME_ENV: run_name, tracking.FLOW_RUN_ENV: f"{flow_run.name} ({flow_run.id})"}
    return stages.run_stage(stage, get_run_logger().info, timeout=60 * minutes, env=env)


def _read(path: str) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5))
def push() -> str:
    """Data, model and package to the DVC remote, so a fresh clone restores them with `dvc pull`."""
    from tasks.core import config

    return stages.push(config.load().paths.dvc_remote, get_run_logger().info)


@task
def summary() -> str:
    """A markdown report of this run: data version, key metrics, registry decision, links to MLflow; sent to the
    notification block (`orchestration.notify_block`) when the run made a new champion."""
    from tasks.core import config

    p = config.load()
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").exists() else {}
    data_md5 = next((o.get("md5") for o in lock.get("stages", {}).get("ingest", {}).get("outs", [])
                     if o.get("path") == p.paths.pixels), "n/a")
    test = _read(p.paths.metrics).get("test", {})
    reg = _read(p.paths.registry)
    rows = "\n".join(f"| {k} | {test[k]:.4f} |" for k in ("accuracy", "recall", "specificity", "f1", "roc_auc")
                     if k in test)
    run, version = f"`{reg.get('run_id', 'n/a')}`", f"{reg.get('model_name', 'n/a')} v{reg.get('version', '?')}"
    if reg.get("run_id"):  # links into MLflow's UI (its model-training view)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from tasks.records import tracking

        try:
            found = MlflowClient(tracking.tracking_uri(p)).get_run(reg["run_id"]).info
            run = f"[{found.run_name}]({tracking.run_link(p, found.experiment_id, found.run_id)}) (`{found.run_id}`)"
        except MlflowException:  # the store went away after register: the summary keeps the plain id
            pass
        version = f"[{version}]({tracking.version_link(p, reg['model_name'], reg['version'])})"
    markdown = (f"# pneumonia-training\n\n- data: `{p.ingest.source}` pixels md5 `{data_md5}`\n"
                f"- MLflow run: {run}, model `{reg.get('model_uri', 'n/a')}`\n"
                f"- registry: {version} "
                f"**{'promoted' if reg.get('promoted') else 'not promoted'}**: {reg.get('reason', '')}\n\n"
                f"| test metric | value |\n|---|---|\n{rows}\n")
    create_markdown_artifact(markdown, key="pneumonia-training-summary", description="run summary")
    if reg.get("promoted"):
        notify.send(p.orchestration.notify_block, f"pneumonia-training: {reg['model_name']} v{reg['version']} is "
                    "the new @champion", markdown)
    return markdown


def report_failure(flow, flow_run, state) -> None:
    """Prefect's on_failure hook: a markdown artifact `pneumonia-training-failure` saying what failed, sent to
    the notification block (`orchestration.notify_block`) and, when `PNEUMONIA_FAILURE_WEBHOOK` is set, POSTed
    as JSON to that URL (for a run without a Prefect server). A channel that fails is logged, never raised."""
    import os

    message = str(state.message or state.name)
    markdown = (f"# pneumonia-training failed\n\n- flow run: `{flow_run.name}` (`{flow_run.id}`)\n"
                f"- state: {state.name}\n\n```\n{message[-3000:]}\n```\n")
    create_markdown_artifact(markdown, key="pneumonia-training-failure", description="why the run failed")
    notify.send(notify.configured_block(), f"pneumonia-training run {flow_run.name} failed", markdown)
    notify.post(os.environ.get("PNEUMONIA_FAILURE_WEBHOOK"),
                {"text": f"pneumonia-training run {flow_run.name} failed: {message[-1000:]}",
                 "flow_run_id": str(flow_run.id), "state": state.name})


@task
def record_experiment(name: str) -> str:
    """The run as the DVC experiment `name`, and the name on the MLflow run of its evaluation."""
    from mlflow import MlflowClient

    from tasks.core import config
    from tasks.records import tracking

    stages.save_experiment(name)
    p = config.load()
    run_id = _read(p.paths.registry).get("run_id")
    if run_id:
        MlflowClient(tracking.tracking_uri(p)).set_tag(run_id, "dvc_experiment", name)
    get_run_logger().info(f"recorded as DVC experiment `{name}` (`dvc exp show`; MLflow tag dvc_experiment)")
    return name


@flow(name="pneumonia-training", log_prints=True, on_failure=[report_failure])
def pneumonia_training(settings: TrainingSettings | None = None, overrides: list[str] | None = None,
                       experiment_name: str | None = None) -> str:
    """Run every DVC stage in order and record the run as a DVC experiment; without settings or overrides and
    with nothing new since the last run (`dvc status` clean: no new data, code or params), stop at once and say so.

    Args:
        settings: typed values of the params.yaml keys most often changed (empty: the file's value)
        overrides: any other params.yaml key, as `key.sub=value` strings (e.g. `model.name=seed_cnn`)
        experiment_name: the DVC experiment (and MLflow run) name; default `run-<UTC time>`
    """
    import time

    overrides = [*(settings.overrides() if settings else []), *(overrides or [])]
    with stages.workspace_lock("pneumonia-training"):
        if overrides:
            set_params(overrides)
        elif not (todo := stages.changed()):
            markdown = "# pneumonia-training\n\nnothing new since the last run (`dvc status` is clean): not retrained\n"
            get_run_logger().info("nothing new since the last run (dvc status is clean: no new data, code or "
                                  "params): nothing to retrain")
            create_markdown_artifact(markdown, key="pneumonia-training-summary", description="run summary")
            return markdown
        else:
            get_run_logger().info(f"stages to rerun (dvc status): {', '.join(todo)}")
        name = experiment_name or time.strftime("run-%Y%m%d-%H%M%S", time.gmtime())
        previous = None
        for stage in stages.stage_names():  # waiting for the previous one gives the flow's graph its edges
            previous = run_stage.with_options(name=stage)(stage, name, wait_for=[previous] if previous else None,
                                                          return_state=True)
            previous.result()  # raises, and so stops the flow, when the stage failed for good
        push()
        markdown = summary()
        record_experiment(name)
    return markdown


def main(argv: list[str] | None = None) -> None:
    """`pneumonia-pipeline`: the flow, run in this folder (a checkout with params.yaml and dvc.yaml)."""
    ap = stages.parser("pneumonia-pipeline", __doc__)
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="params.yaml values for this run")
    ap.add_argument("--name", help="name of the DVC experiment that records a run with overrides")
    args = ap.parse_args(argv)
    if bad := [o for o in args.overrides if "=" not in o]:
        ap.error(f"overrides are key=value, got {' '.join(bad)}")
    try:  # before Prefect starts: a bad params.yaml or override, or a busy workspace, is one line and exit 2
        check_params(args.overrides)
        stages.check_workspace_free()
    except (stages.StageRejected, StepError) as err:
        print(f"pneumonia-pipeline: error: {err}", file=sys.stderr)
        sys.exit(EXIT_REJECTED)
    pneumonia_training(overrides=args.overrides or None, experiment_name=args.name)


if __name__ == "__main__":
    main(sys.argv[1:])
