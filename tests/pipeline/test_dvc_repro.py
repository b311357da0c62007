"""The real `dvc repro` on tiny generated data: runs, is a no-op the second time, reruns only what changed."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flows import stages
from tests.helpers import CHROMIUM, TINY_DEMO

pytestmark = pytest.mark.slow
DATA_STAGES = ["ingest", "validate", "split"]


def ran(output: str) -> list[str]:
    return [s for s in DATA_STAGES if f"Running stage '{s}'" in output]


def test_repro_noop_and_param_change(repo_copy):
    repo_copy.params(TINY_DEMO)
    first = repo_copy.run("dvc", "repro", *DATA_STAGES)
    assert ran(first.stdout) == DATA_STAGES
    # each step reports through logging, configured once by tasks.cli, and DVC shows it
    assert any(line.startswith("split:") and "patients" in line for line in first.stdout.splitlines())
    assert "validate: " in first.stdout and "rows passed all expectations" in first.stdout
    assert "Created temporary directory" not in first.stdout + first.stderr  # GX's INFO line, quieted
    frame = pd.read_csv(repo_copy / "data/prepared/split.csv")
    assert set(frame.split) == {"train", "val", "test"}
    assert frame.groupby("patient_id").split.nunique().max() == 1

    second = repo_copy.run("dvc", "repro", *DATA_STAGES)
    assert ran(second.stdout) == []
    status = repo_copy.run("dvc", "status", *DATA_STAGES)
    assert "up to date" in status.stdout.lower() or status.stdout.strip() == ""

    repo_copy.params({**TINY_DEMO, "split": {"seed": 7}})
    third = repo_copy.run("dvc", "repro", *DATA_STAGES)
    assert ran(third.stdout) == ["split"]
    assert not pd.read_csv(repo_copy / "data/prepared/split.csv").split.equals(frame.split)


def test_failing_suite_stops_the_pipeline(repo_copy):
    repo_copy.params({**TINY_DEMO, "validate": {"min_per_class": 10_000}})
    proc = repo_copy.run("dvc", "repro", *DATA_STAGES, check=False)
    assert proc.returncode != 0
    assert "too few images of a class" in proc.stderr + proc.stdout
    assert not (repo_copy / "data/prepared/split.csv").exists()
    assert json.loads((repo_copy / "reports/validation.json").read_text())["success"] is False
    assert (repo_copy / "reports/data_docs/index.html").exists()


def test_params_seen_before_restore_the_trained_model_from_the_run_cache(repo_copy):
    """Back to params trained before, `dvc repro` restores the model and its history instead of retraining
    (the run cache: every output of train, cached or not, is saved with it)."""
    from tests.helpers import TINY_TRAIN, deep_update

    repo_copy.params(TINY_TRAIN)
    repo_copy.run("dvc", "repro", "train")
    model, history = (repo_copy / "models/model.keras").read_bytes(), (repo_copy / "reports/history.csv").read_text()
    repo_copy.params(deep_update(TINY_TRAIN, {"train": {"learning_rate": 0.001}}))
    other = repo_copy.run("dvc", "repro", "train")
    assert "Running stage 'train'" in other.stdout
    assert "Warning" not in other.stdout + other.stderr, (other.stdout + other.stderr)[-3000:]  # MLflow's hints
    repo_copy.params(TINY_TRAIN)
    back = repo_copy.run("dvc", "repro", "train")
    assert "Running stage 'train'" not in back.stdout and "train: " not in back.stdout  # no training ran
    assert "cached" in back.stdout.lower()
    assert (repo_copy / "models/model.keras").read_bytes() == model
    assert (repo_copy / "reports/history.csv").read_text() == history


@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing (apt-get install chromium): the page was not drawn")
def test_dvc_plots_draw_offline_one_metric_per_chart(repo_copy, tmp_path):
    """`dvc plots show` writes a page that draws every chart with no network (vega inlined by the repo's HTML
    template), and each training chart holds one metric (train and validation), not every column."""
    import re

    from tests.helpers import chromium

    epochs = range(4)
    history = pd.DataFrame({"epoch": epochs, "loss": [0.7, 0.5, 0.4, 0.3], "val_loss": [0.6, 0.5, 0.45, 0.4],
                            "accuracy": [0.6, 0.7, 0.8, 0.9], "val_accuracy": [0.6, 0.7, 0.75, 0.8],
                            "auc": [0.6, 0.8, 0.9, 0.95], "val_auc": [0.7, 0.8, 0.85, 0.9],
                            "learning_rate": [0.002, 0.0015, 0.001, 0.0005], "system/cpu": [90, 91, 92, 93]})
    (repo_copy / "reports/curves").mkdir(parents=True, exist_ok=True)
    history.to_csv(repo_copy / "reports/history.csv", index=False)
    pd.DataFrame({"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]}).to_csv(repo_copy / "reports/curves/roc.csv", index=False)
    pd.DataFrame({"recall": [1, 0.8, 0], "precision": [0.6, 0.9, 1]}).to_csv(repo_copy / "reports/curves/pr.csv",
                                                                               index=False)
    pd.DataFrame({"actual": ["NORMAL", "PNEUMONIA"], "predicted": ["NORMAL", "NORMAL"]}).to_csv(
        repo_copy / "reports/curves/confusion.csv", index=False)
    repo_copy.run("dvc", "plots", "show", "-o", "plots")
    page = (repo_copy / "plots/index.html").read_text()
    assert "<script src=" not in page and "cdn.jsdelivr" not in page  # nothing to fetch
    specs = dict(re.findall(r'<div id = "(\w+)">\s*<script type = "text/javascript">\s*var spec = (.*?);\n', page,
                            re.S))
    assert {"loss", "accuracy", "auc", "reports_history_csv"} <= set(specs)
    for metric in ("loss", "accuracy", "auc"):  # the lines drawn: one per `field` of the chart's rows
        drawn = {row["field"] for row in json.loads(specs[metric])["data"]["values"]}
        assert drawn == {metric, f"val_{metric}"}, (metric, drawn)
    dom = chromium((repo_copy / "plots/index.html").as_uri(), tmp_path / "plots.png", offline=True)
    assert dom.count('class="marks"') == len(specs)  # every chart drawn, offline


def test_a_register_that_fails_keeps_the_last_decision(tmp_path):
    """DVC deletes a stage's outputs before it runs the stage, unless they persist: register's decision record
    does, so a register that fails (a locked or read-only store) leaves the last decision in place. Checked on
    dvc.yaml's own declaration, run by the real dvc on a stage that fails the same way."""
    import subprocess
    import sys

    import yaml

    from flows.stages import dvc_env
    from tests.helpers import REPO

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = next(o for o in stages["register"]["outs"] if isinstance(o, dict) and "${paths.registry}" in o)
    out = {"reports/registry.json": declared["${paths.registry}"]}
    assert out["reports/registry.json"] == {"cache": False, "persist": True}
    (tmp_path / "reports").mkdir()
    (tmp_path / "ok").write_text("1")
    # like register: the decision is written last, only when everything before it worked
    cmd = f"{sys.executable} -c \"import sys; sys.exit(1) if open('ok').read() != '1' else None; " \
          "open('reports/registry.json', 'w').write('1')\""
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"register": {"cmd": cmd, "deps": ["ok"],
                                                                                "outs": [out]}}}))
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        subprocess.run(args, cwd=tmp_path, check=True, env=dvc_env(), capture_output=True)
    (tmp_path / "ok").write_text("0")  # the next register fails before it writes its decision
    failed = subprocess.run(["dvc", "repro", "-q"], cwd=tmp_path, env=dvc_env(), capture_output=True, text=True)
    assert failed.returncode != 0
    assert (tmp_path / "reports/registry.json").read_text() == "1", "the last decision was deleted"


def test_a_checkout_s_first_run_is_saved_as_an_experiment_with_its_results(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.gitconfig: no user.name or user.email
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text("x: 1\n")
    (repo / "score.py").write_text("open('m.json', 'w').write('{\"auc\": 0.5}')\n")
    (repo / "dvc.yaml").write_text(  # a stage that writes an uncached metric, like evaluate's headline
        "stages:\n  score:\n    cmd: python score.py\n    params: [x]\n    metrics:\n    - m.json:\n"
        "        cache: false\n")
    me = ["-c", "user.name=t", "-c", "user.email=t@t"]
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], ["git", *me, "add", "-A"],
                ["git", *me, "commit", "-qm", "init"], [dvc, "repro", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, env=stages.dvc_env())
    assert stages.untracked(stages.run_results(repo), repo) == ["dvc.lock", "m.json"]  # as on a fresh clone
    assert stages.save_experiment("run-1", repo) == "run-1"
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout.split()
    [ref] = [ref for ref in refs if ref.endswith("/run-1")]
    saved = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"dvc.lock", "m.json"} <= set(saved), saved  # `dvc exp show` and `dvc exp apply` have its figures
