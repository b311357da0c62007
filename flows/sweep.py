"""The `pneumonia-sweep` flow: several parameter sets as DVC experiments, the best one to the registry gate.

    pneumonia-sweep [sweep.yaml] [--only NAME ...] [--jobs N]     # or python -m flows.sweep

The grid file holds `experiments: {name: {param: value}}`, optional `common: {param: value}` applied
to every set (the data source, say), optional `seeds: [42, 1, 2]` (each set runs once per
`train.seed`, as experiments `<name>-s<seed>`, and is judged on its mean: seed-to-seed spread here is
1 to 5 points) and optional `select:` (a key of flows.sweep_grid.selection_scores). Each set runs
`dvc exp run -n NAME -S ... package` (up to the servable model, which the winner needs) on the params
the sweep started with (a DVC experiment, an MLflow run). Experiments are chosen on validation only,
never on test; the winner is applied with `dvc exp apply` and `register` runs on it. A results table
(validation, stress test, internal test, training time) goes to `paths.sweep` and the flow's Prefect
artifact. By default runs are sequential in the workspace (on a 2-core machine parallel training only
slows each run down); `--jobs N` runs N at a time in DVC's queue (flows/queue.py), for machines with
the cores for it. Either way the winner is chosen on validation only and registered from its own files.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows import queue, stages
from flows.pipeline import transient
from flows.sweep_grid import choose, expand, result_row, table
from tasks import cli
from tasks.core import config
from tasks.core.errors import EXIT_REJECTED
from tasks.core.sections import flat_params
from tasks.records import tracking


def write_results(out: Path, markdown: str, results: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    out.with_suffix(".json").write_text(results)


def measured_row(name: str, overrides: dict, metrics: bytes, train: bytes) -> dict:
    """An experiment's row from its metrics and train report, with the MLflow run that logged its model
    (found by the metrics file's md5)."""
    row = result_row(name, overrides, json.loads(metrics), json.loads(train))
    run = tracking.find_run(config.load(), "metrics_md5", queue.md5(metrics))
    row["run_id"] = run.info.run_id if run else None
    return row


@task(retries=1, retry_delay_seconds=10, retry_condition_fn=transient)
def experiment(name: str, overrides: dict, base_params: str) -> dict:
    """Run one parameter set on top of `base_params` (params.yaml's text) up to package; return its row."""
    logger = get_run_logger()
    # `dvc exp run` leaves the last experiment's params in the workspace and builds the next one on top:
    # start every set from the params the sweep started with, or one set's overrides leak into the next
    Path(config.PARAMS_FILE).write_text(base_params)
    proc = subprocess.run(queue.exp_args(name, overrides), env=stages.dvc_env(), capture_output=True, text=True)
    if proc.returncode:
        error = stages.StageRejected if f"exited with {stages.EXIT_REJECTED}" in proc.stderr else stages.StageFailed
        raise error(f"experiment {name} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    p = config.load()
    row = measured_row(name, overrides, Path(p.paths.metrics).read_bytes(), Path(p.paths.train_report).read_bytes())
    logger.info(f"{name}: val ROC-AUC {row['val_roc_auc']:.4f}, worst-shift balanced accuracy "
                f"{row['val_worst_balanced_accuracy']:.3f}, trained in {row['train_seconds']:.0f} s")
    return row


@task
def queued_experiments(runs: list[tuple[str, str, dict]], base_params: str, jobs: int) -> list[dict]:
    """Run the experiments `jobs` at a time in DVC's queue (temporary copies of the repository); their rows
    in grid order. Any failure raises StageFailed with the end of its log, after all have finished."""
    import os

    logger = get_run_logger()
    Path(config.PARAMS_FILE).write_text(base_params)
    p = config.load()
    base = flat_params({"ingest": p.ingest})
    names = [name for _, name, _ in runs]
    subprocess.run(["dvc", "queue", "remove", *names], env=stages.dvc_env(), capture_output=True)  # a past try's
    for _, name, overrides in runs:
        Path(config.PARAMS_FILE).write_text(base_params)  # each experiment starts from the sweep's params
        queue.enqueue(name, queue.portable(overrides, base))
    Path(config.PARAMS_FILE).write_text(base_params)
    env = {**stages.dvc_env(), "MLFLOW_TRACKING_URI": tracking.tracking_uri(p)}  # one store for every copy
    # N trainings share the cores: without this each would start a thread per core and they would thrash
    env.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    logger.info(f"{len(names)} experiments queued; starting {jobs} DVC queue workers")
    queue.start(jobs, env)
    states = queue.wait(names, logger.info)
    failed = [name for name in names if states[name] != "Success"]
    if failed:
        raise stages.StageFailed(f"experiments {', '.join(failed)} failed; `dvc queue logs {failed[0]}` ends:\n"
                                 + queue.logs(failed[0])[-2000:])
    rows = []
    for _, name, overrides in runs:
        rev = queue.commit(name)
        rows.append(measured_row(name, overrides, queue.read(rev, p.paths.metrics),
                                 queue.read(rev, p.paths.train_report)))
    return rows


@flow(name="pneumonia-sweep", log_prints=True)
def pneumonia_sweep(grid: str = "sweep.yaml", only: list[str] | None = None, jobs: int = 1) -> dict:
    """The grid's experiments under one MLflow parent run (their training runs are its children); `jobs` > 1
    runs them that many at a time in DVC's queue."""
    import os

    with stages.workspace_lock("pneumonia-sweep"):  # experiments rewrite params.yaml: one run per checkout
        p = config.load()
        parent = tracking.start_sweep(p, f"sweep-{Path(grid).stem}")
        os.environ[tracking.SWEEP_RUN_ENV] = parent  # `dvc exp run` passes it on to train's record
        results = None
        try:
            results = sweep(grid, only, jobs)
        finally:
            os.environ.pop(tracking.SWEEP_RUN_ENV, None)
            tracking.finish_sweep(config.load(), parent, results)
        return {**results, "run_id": parent}


def sweep(grid: str, only: list[str] | None, jobs: int = 1) -> dict:
    spec = yaml.safe_load(Path(grid).read_text())
    common, select = spec.get("common") or {}, spec.get("select", "val_roc_auc")
    if select not in ("val_roc_auc", "val_worst_balanced_accuracy"):
        raise ValueError(f"{grid}: `select` must be val_roc_auc or val_worst_balanced_accuracy, got {select!r}")
    runs = [run for run in expand(spec) if not only or run[0] in only]
    if not runs:
        raise ValueError(f"{grid}: no experiment to run (--only {only} matches none of {list(spec['experiments'])})")
    out = Path(config.load().paths.sweep)
    base_params = Path(config.PARAMS_FILE).read_text()
    rows: list[dict] = []

    def add(set_name: str, row: dict) -> tuple[str, str, str, str]:
        row["set"] = set_name
        row["overrides"] = {k: v for k, v in row["overrides"].items() if k not in common}  # what differs
        rows.append(row)
        best_set, best = choose(rows, select)  # selected on validation, never on test
        markdown = table(rows, select, best_set)
        results = json.dumps({"select": select, "best_set": best_set, "best": best, "results": rows}, indent=2)
        write_results(out, markdown, results)  # rewritten after each experiment: a long sweep shows progress
        return best_set, best, markdown, results

    if jobs > 1:
        for (set_name, *_), row in zip(runs, queued_experiments(runs, base_params, jobs)):
            best_set, best, markdown, results = add(set_name, row)
    else:
        for set_name, name, overrides in runs:
            best_set, best, markdown, results = add(set_name, experiment.with_options(name=f"exp-{name}")(
                name, overrides, base_params))
    get_run_logger().info(f"best on validation: {best} ({select}, set {best_set})")
    create_markdown_artifact(markdown, key="sweep-results", description="pneumonia-sweep results")
    subprocess.run(["dvc", "exp", "apply", best], env=stages.dvc_env(), check=True)
    write_results(out, markdown, results)  # the apply may clear files Git does not track
    stages.run_stage("register", get_run_logger().info)
    stages.push(config.load().paths.dvc_remote)  # the winner's data, model and package, as the pipeline does
    return {"results": rows, "best": best, "select": select}


def main(argv: list[str] | None = None) -> None:
    """`pneumonia-sweep`: the sweep flow on a grid file, run in this folder."""
    ap = stages.parser("pneumonia-sweep", __doc__)
    ap.add_argument("grid", nargs="?", default="sweep.yaml", help="the grid file (default: sweep.yaml)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these sets of the grid")
    ap.add_argument("--jobs", "-j", type=cli.positive, default=1, metavar="N",
                    help="experiments run at once in DVC's queue (default 1: one after another in the workspace)")
    args = ap.parse_args(argv)
    if not Path(args.grid).is_file():
        ap.error(f"{args.grid} does not exist: pass a grid file such as benchmarks/generalization.yaml")
    try:  # before Prefect starts: a busy workspace is one line and exit 2
        stages.check_workspace_free()
    except stages.StageRejected as err:
        ap.exit(EXIT_REJECTED, f"pneumonia-sweep: error: {err}\n")
    pneumonia_sweep(args.grid, args.only, args.jobs)


if __name__ == "__main__":
    main(sys.argv[1:])
