"""The `pneumonia-sweep` flow: several parameter sets as DVC experiments, the best one to the registry gate.

    pneumonia-sweep [sweep.yaml] [--only NAME ...] [--jobs N]     # or python -m flows.sweep

The grid file holds `experiments: {name: {param: value}}`, optional `common: {param: value}` applied
to every set (the data source, say), optional `seeds: [42, 1, 2]` (each set runs once per
`train.seed`, as experiments `<name>-s<seed>`, and is judged on its mean: seed-to-seed spread here is
1 to 5 points) and optional `select:` (a key of `selection_scores`). Each set runs
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
from tasks import config, tracking
from tasks.sections import flat_params


def selection_scores(metrics: dict) -> dict[str, float]:
    """Validation-only scores a grid can select on.

    `val_roc_auc`: ranking on clean validation. `val_worst_balanced_accuracy`: balanced accuracy at the
    chosen threshold on clean validation or under its worst simulated acquisition shift, whichever is lower
    (clean validation AUC saturates near 1 on this data; robustness to shift is what transfers).
    """
    worst = min([metrics["val"]["balanced_accuracy"]] + [m["balanced_accuracy"] for m in metrics["stress"].values()])
    return {"val_roc_auc": metrics["val"]["roc_auc"], "val_worst_balanced_accuracy": worst}


def result_row(name: str, overrides: dict, metrics: dict, train: dict) -> dict:
    val, test = metrics["val"], metrics["test"]
    worst = max(metrics["stress"].items(), key=lambda kv: kv[1]["drop_balanced_accuracy"])
    return {"name": name, "overrides": overrides, **selection_scores(metrics),
            "val_balanced_accuracy": val["balanced_accuracy"],
            "val_specificity_at_95_sensitivity": val["specificity_at_95_sensitivity"], "val_ece": val["ece"],
            "worst_shift": worst[0], "worst_shift_drop": worst[1]["drop_balanced_accuracy"],
            "test_accuracy": test["accuracy"], "test_recall": test["recall"], "test_specificity": test["specificity"],
            "test_roc_auc": test["roc_auc"], "test_best_threshold_accuracy": test["best_threshold_accuracy"],
            "test_specificity_at_95_sensitivity": test["specificity_at_95_sensitivity"],
            "train_seconds": train["seconds"], "epochs": train["epochs"],
            "stress_drop_balanced_accuracy": {k: m["drop_balanced_accuracy"] for k, m in metrics["stress"].items()}}


def expand(spec: dict) -> list[tuple[str, str, dict]]:
    """(set, experiment name, overrides) for every set of the grid, once per seed when `seeds` is given."""
    common, seeds = spec.get("common") or {}, spec.get("seeds")
    out = []
    for name, overrides in spec["experiments"].items():
        overrides = {**common, **(overrides or {})}
        if seeds:
            out.extend((name, f"{name}-s{seed}", {**overrides, "train.seed": seed}) for seed in seeds)
        else:
            out.append((name, name, overrides))
    return out


def by_set(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows grouped by their set, in the order the sets first ran."""
    sets: dict[str, list[dict]] = {}
    for r in rows:
        sets.setdefault(r["set"], []).append(r)
    return sets


def choose(rows: list[dict], select: str) -> tuple[str, str]:
    """(best set, its best experiment): the set with the highest mean `select` over its seeds (validation
    only, never test), and within it the seed that scored highest, whose model goes to the registry."""
    sets = by_set(rows)
    best_set = max(sets, key=lambda k: sum(r[select] for r in sets[k]) / len(sets[k]))
    return best_set, max(sets[best_set], key=lambda r: r[select])["name"]


COLUMNS = [("val_roc_auc", "val AUC", 1, 4), ("val_balanced_accuracy", "val bal. acc", 100, 1),
           ("worst_shift_drop", "worst shift drop (pts)", 100, 1), ("test_accuracy", "test acc", 100, 1),
           ("test_recall", "test sens", 100, 1), ("test_specificity", "test spec", 100, 1),
           ("test_roc_auc", "test AUC", 1, 3), ("test_best_threshold_accuracy", "test acc at best threshold", 100, 1),
           ("test_specificity_at_95_sensitivity", "test spec at 95 % sens", 100, 1)]


def mean_sd(values: list[float], scale: float, digits: int) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{scale * mean:.{digits}f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{scale * mean:.{digits}f} ± {scale * sd:.{digits}f}"


def table(rows: list[dict], select: str, best: str) -> str:
    """Markdown: one row per set (mean ± sd over its seeds), the selected set in bold. The test columns are
    reported, never used to choose."""
    head = ("| experiment | changes | seeds | " + " | ".join(c[1] for c in COLUMNS) + " | train |\n|"
            + "---|" * (len(COLUMNS) + 4))
    lines = [head]
    for name, group in by_set(rows).items():
        label = f"**{name}**" if name == best else name
        changes = ", ".join(f"`{k}={v}`" for k, v in group[0]["overrides"].items() if k != "train.seed") or "defaults"
        cells = [mean_sd([r[key] for r in group], scale, digits) for key, _, scale, digits in COLUMNS]
        minutes = mean_sd([r["train_seconds"] / 60 for r in group], 1, 1)
        lines.append(f"| {label} | {changes} | {len(group)} | " + " | ".join(cells) + f" | {minutes} min |")
    return "\n".join(lines) + f"\n\nSelected on the mean `{select}` over seeds (validation only): **{best}**.\n"


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
    ap.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                    help="experiments run at once in DVC's queue (default 1: one after another in the workspace)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    if not Path(args.grid).is_file():
        ap.error(f"{args.grid} does not exist: pass a grid file such as benchmarks/generalization.yaml")
    pneumonia_sweep(args.grid, args.only, args.jobs)


if __name__ == "__main__":
    main(sys.argv[1:])
