"""The `pneumonia-sweep` flow: several parameter sets as DVC experiments, the best one to the registry gate.

    python -m flows.sweep [sweep.yaml] [--only NAME ...]

Each set runs `dvc exp run -n NAME -S ... evaluate` (a DVC experiment, an MLflow run). Experiments are
chosen on validation ROC-AUC only, never on test; the winner is applied with `dvc exp apply` and
`register` runs on it. Runs are sequential: the workspace holds one experiment at a time, and on a
2-core machine parallel training only slows each run down.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task

from flows import stages
from flows.pipeline import transient


def exp_args(name: str, overrides: dict) -> list[str]:
    sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={json.dumps(value)}")]
    return ["dvc", "exp", "run", "-n", name, *sets, "evaluate"]


@task(retries=1, retry_delay_seconds=10, retry_condition_fn=transient)
def experiment(name: str, overrides: dict) -> dict:
    """Run one parameter set up to evaluate; return its validation and test metrics."""
    logger = get_run_logger()
    proc = subprocess.run(exp_args(name, overrides), env=stages.dvc_env(), capture_output=True, text=True)
    if proc.returncode:
        error = stages.StageRejected if f"exited with {stages.EXIT_REJECTED}" in proc.stderr else stages.StageFailed
        raise error(f"experiment {name} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    from tasks import config

    metrics = json.loads(Path(config.load().paths.metrics).read_text())
    logger.info(f"{name}: val ROC-AUC {metrics['val']['roc_auc']:.4f}, test ROC-AUC {metrics['test']['roc_auc']:.4f}")
    return {"name": name, "val_roc_auc": metrics["val"]["roc_auc"], "test": metrics["test"]}


@flow(name="pneumonia-sweep", log_prints=True)
def pneumonia_sweep(grid: str = "sweep.yaml", only: list[str] | None = None) -> dict:
    sets = yaml.safe_load(Path(grid).read_text())["experiments"]
    results = [experiment.with_options(name=f"exp-{name}")(name, overrides or {})
               for name, overrides in sets.items() if not only or name in only]
    best = max(results, key=lambda r: r["val_roc_auc"])  # selected on validation, never on test
    print(f"best on validation: {best['name']} (val ROC-AUC {best['val_roc_auc']:.4f})")
    subprocess.run(["dvc", "exp", "apply", best["name"]], env=stages.dvc_env(), check=True)
    stages.run_stage("register", print)
    return {"results": results, "best": best["name"]}


if __name__ == "__main__":
    args = sys.argv[1:]
    only = args[args.index("--only") + 1:] if "--only" in args else None
    grid = args[0] if args and not args[0].startswith("--") else "sweep.yaml"
    pneumonia_sweep(grid, only)
