"""The sweep flow: parameter sets as DVC experiments, chosen on validation, the winner registered."""
import json
import sys

import pytest
import yaml

from tests.helpers import TINY_TRAIN, deep_update
from tests.pipeline.conftest import RepoCopy

pytestmark = pytest.mark.slow


def test_sweep_runs_experiments_and_registers_the_best_on_validation(tmp_path):
    repo = RepoCopy(tmp_path / "repo")
    repo.params(deep_update(TINY_TRAIN, {"register": {"min_sensitivity": 0.0, "min_specificity": 0.0}}))
    repo.run("git", "commit", "-qam", "tiny params")
    grid = {"common": {"evaluate.target_sensitivity": 0.9}, "select": "val_worst_balanced_accuracy",
            "experiments": {"one-epoch": {"train.epochs": 1, "evaluate.threshold": "youden"},
                            "three-epochs": {"train.epochs": 3}}}
    (repo / "grid.yaml").write_text(yaml.safe_dump(grid))
    proc = repo.run(sys.executable, "-m", "flows.sweep", "grid.yaml")
    shown = json.loads(repo.run("dvc", "exp", "show", "--json").stdout)
    names = {e["name"] for commit in shown for e in (commit.get("experiments") or [])}
    assert {"one-epoch", "three-epochs"} <= names, names
    refs = repo.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    ran = {ref.rsplit("/", 1)[1]: yaml.safe_load(repo.run("git", "show", f"{ref}:params.yaml").stdout) for ref in refs}
    assert ran["one-epoch"]["evaluate"]["threshold"] == "youden"
    assert ran["three-epochs"]["evaluate"]["threshold"] == "target_sensitivity"  # no leak from the previous set
    assert ran["three-epochs"]["evaluate"]["target_sensitivity"] == 0.9
    best = next(line for line in (proc.stdout + proc.stderr).splitlines() if "best on validation:" in line)
    registry = json.loads((repo / "reports/registry.json").read_text())
    assert registry["version"] == 1 and registry["model_name"] == "pneumonia-classifier-demo"
    winner = best.split("best on validation: ")[1].split()[0]
    applied = yaml.safe_load((repo / "params.yaml").read_text())
    assert applied["train"]["epochs"] == grid["experiments"][winner]["train.epochs"]  # the workspace holds the winner
    assert applied["evaluate"]["target_sensitivity"] == 0.9  # `common` reached every experiment

    results = json.loads((repo / "reports/sweep.json").read_text())
    rows = {r["name"]: r for r in results["results"]}
    assert set(rows) == {"one-epoch", "three-epochs"} and results["best"] == winner
    assert rows[winner]["val_worst_balanced_accuracy"] == max(r["val_worst_balanced_accuracy"] for r in rows.values())
    for name, row in rows.items():  # each row is that experiment's own run, not the last one's
        assert row["epochs"] <= grid["experiments"][name]["train.epochs"] and row["train_seconds"] > 0
        assert row["val_worst_balanced_accuracy"] <= row["val_balanced_accuracy"]
    table = (repo / "reports/sweep.md").read_text()
    assert f"**{winner}**" in table and "`train.epochs=3`" in table and "target_sensitivity" not in table
