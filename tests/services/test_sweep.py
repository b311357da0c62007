"""The sweep flow: parameter sets as DVC experiments, chosen on validation, the winner registered."""
import json
import sys

import pytest
import yaml

from tests.helpers import TINY_TRAIN, deep_update
from tests.pipeline.conftest import RepoCopy

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("jobs", [1, 2], ids=["in-workspace", "dvc-queue-2-workers"])
def test_sweep_runs_experiments_and_registers_the_best_on_validation(tmp_path, jobs):
    repo = RepoCopy(tmp_path / "repo")
    # more patients than the tiny default: a validation split large enough to tell a trained model from an
    # untrained one
    repo.params(deep_update(TINY_TRAIN, {"register": {"min_sensitivity": 0.0, "min_specificity": 0.0},
                                         "ingest": {"demo": {"patients": 150}},
                                         "paths": {"dvc_remote": str(tmp_path / "dvc-store")}}))
    repo.run("git", "commit", "-qam", "tiny params")
    # the winner runs first: the last experiment's files are what the workspace holds before `dvc exp apply`
    grid = {"common": {"evaluate.target_sensitivity": 0.9}, "select": "val_roc_auc",
            "experiments": {"good": {"train.epochs": 6},
                            "bad": {"train.epochs": 1, "train.learning_rate": 0.00001, "evaluate.threshold": "youden"}}}
    (repo / "grid.yaml").write_text(yaml.safe_dump(grid))
    proc = repo.run(sys.executable, "-m", "flows.sweep", "grid.yaml", "--jobs", str(jobs))
    shown = json.loads(repo.run("dvc", "exp", "show", "--json").stdout)
    names = {e["name"] for commit in shown for e in (commit.get("experiments") or [])}
    assert {"good", "bad"} <= names, names
    refs = repo.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    ran = {ref.rsplit("/", 1)[1]: ref for ref in refs if ref.rsplit("/", 1)[1] in grid["experiments"]}
    assert set(ran) == {"good", "bad"}, refs
    params = {name: yaml.safe_load(repo.run("git", "show", f"{ref}:params.yaml").stdout) for name, ref in ran.items()}
    assert params["bad"]["evaluate"]["threshold"] == "youden"
    assert params["good"]["evaluate"]["threshold"] == "target_sensitivity"  # no leak between sets
    assert params["bad"]["evaluate"]["target_sensitivity"] == 0.9
    for name, ref in ran.items():  # each experiment carries its own metrics file, so `dvc exp show` sees it
        committed = json.loads(repo.run("git", "show", f"{ref}:reports/metrics.json").stdout)
        assert committed["val"]["roc_auc"] > 0 and "mlflow_run_id" not in committed, name
    best = next(line for line in (proc.stdout + proc.stderr).splitlines() if "best on validation:" in line)
    winner = best.split("best on validation: ")[1].split()[0]
    applied = yaml.safe_load((repo / "params.yaml").read_text())
    assert applied["train"]["epochs"] == grid["experiments"][winner]["train.epochs"]  # the workspace holds the winner
    assert applied["evaluate"]["target_sensitivity"] == 0.9  # `common` reached every experiment

    results = json.loads((repo / "reports/sweep.json").read_text())
    rows = {r["name"]: r for r in results["results"]}
    assert set(rows) == {"good", "bad"} and results["best"] == winner == "good", rows
    assert rows["good"]["val_roc_auc"] > rows["bad"]["val_roc_auc"]
    for name, row in rows.items():  # each row is that experiment's own run, not the last one's
        assert row["epochs"] <= grid["experiments"][name]["train.epochs"] and row["train_seconds"] > 0
        assert row["val_worst_balanced_accuracy"] <= row["val_balanced_accuracy"]
    assert rows["good"]["run_id"] != rows["bad"]["run_id"]

    # the registered version is the winner's model, though `bad` ran last
    registry = json.loads((repo / "reports/registry.json").read_text())
    assert registry["version"] == 1 and registry["model_name"] == "pneumonia-classifier-demo"
    assert registry["run_id"] == rows["good"]["run_id"]
    assert registry["candidate"] == pytest.approx(rows["good"]["test_roc_auc"])
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    assert client.get_model_version(registry["model_name"], "1").run_id == rows["good"]["run_id"]
    assert client.get_run(rows["good"]["run_id"]).info.run_name == "good"  # named after the DVC experiment
    # one parent run for the sweep, each experiment's training run its child
    [sweep_run] = client.search_runs([client.get_experiment_by_name("pneumonia-classifier-demo").experiment_id],
                                     "tags.sweep = 'sweep-grid'")
    assert sweep_run.info.status == "FINISHED" and sweep_run.data.tags["best_experiment"] == "good"
    assert sweep_run.data.tags["best_run_id"] == rows["good"]["run_id"]
    for row in rows.values():
        assert client.get_run(row["run_id"]).data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
    assert {a.path for a in client.list_artifacts(sweep_run.info.run_id)} >= {"sweep.md", "sweep.json"}
    assert any((tmp_path / "dvc-store").rglob("*"))  # the winner's outputs were pushed to the DVC remote
    table = (repo / "reports/sweep.md").read_text()
    assert f"**{winner}**" in table and "`train.learning_rate=1e-05`" in table and "target_sensitivity" not in table
