"""The command lines: `--help` prints usage and exits without running anything; bad arguments exit 2."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flows.pipeline  # noqa: F401  imported before any capture: Prefect binds its log handlers to stderr then
import flows.sweep  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_a_step_prints_its_docstring_on_help_and_runs_nothing(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([sys.executable, "-m", "tasks.train", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: python -m tasks.train" in done.stdout
    assert "model.keras" in done.stdout  # the step's own docstring
    assert list(tmp_path.iterdir()) == []  # no params read, no model written
    wrong = subprocess.run([sys.executable, "-m", "tasks.evaluate", "--epochs", "3"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "unrecognized arguments: --epochs 3" in wrong.stderr


@pytest.mark.parametrize("module, prog, bad, message", [
    ("flows.pipeline", "pneumonia-pipeline", "train.epochs", "overrides are key=value"),
    ("flows.sweep", "pneumonia-sweep", "missing-grid.yaml", "missing-grid.yaml does not exist")])
def test_flow_commands_print_usage_and_refuse_bad_arguments(module, prog, bad, message, capsys, tmp_path,
                                                            monkeypatch):
    import importlib

    main = importlib.import_module(module).main
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and f"usage: {prog}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main([bad])
    assert done.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing ran


def console_scripts() -> list[str]:
    import tomllib

    return sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


@pytest.mark.parametrize("script", console_scripts())
def test_console_scripts_are_installed(script):
    done = subprocess.run([str(Path(sys.executable).parent / script), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and f"usage: {script}" in done.stdout


def test_commands_import_tensorflow_without_its_native_start_up_notices():
    env = {k: v for k, v in os.environ.items() if k != "PNEUMONIA_DEBUG"}
    plain = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env,
                           timeout=120)
    quiet = subprocess.run([sys.executable, "-c", "import sys; from tasks.core.native import import_tensorflow; "
                            "import_tensorflow(); import tensorflow; sys.stderr.write('still writes\\n')"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr.strip() == "still writes", quiet.stderr
    assert "oneDNN" in plain.stderr or plain.stderr.strip() == "", plain.stderr  # what the quiet import hides


def test_a_bare_make_lists_the_targets_and_runs_nothing():
    from tests.helpers import REPO

    dry = subprocess.run(["make", "-n", "--no-print-directory"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and "flows.pipeline" not in dry.stdout and "pip install" not in dry.stdout, dry.stdout
    shown = subprocess.run(["make", "--no-print-directory"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    listed = {line.split()[1] for line in shown.stdout.splitlines() if line.startswith("  make ")}
    assert {"demo", "test", "test-fast", "ui", "help"} <= listed, shown.stdout


@pytest.mark.parametrize("override, message", [
    ("data.image_size.x=1", "override 'data.image_size.x=1': data.image_size is a value, not a section"),
    ("train.learning_rate=abc", "`params.train.learning_rate`: input should be a valid number"),
    ("evaluate.target_sensitivity=1.5", "`params.evaluate.target_sensitivity`: input should be less than or equal"),
    ("train.epoch=3", "unknown key `params.train.epoch`"),
    ("nope.x=1", "params.yaml has no section 'nope'")])
def test_a_bad_override_is_one_line_before_the_flow_starts(override, message, tmp_path):
    (tmp_path / "params.yaml").write_text(before := (ROOT / "params.yaml").read_text())
    env = {"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([sys.executable, "-m", "flows.pipeline", override], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("pneumonia-pipeline: error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert (tmp_path / "params.yaml").read_text() == before and sorted(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


@pytest.mark.parametrize("module, prog", [("flows.pipeline", "pneumonia-pipeline"), ("flows.sweep", "pneumonia-sweep")])
def test_a_busy_workspace_is_one_line_before_the_flow_starts(module, prog, tmp_path):
    """A second pipeline (or sweep) while a flow holds the checkout: refused in one line naming the holder, exit 2,
    before Prefect starts (no flow run, no traceback)."""
    from flows import stages

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "sweep.yaml").write_text((ROOT / "sweep.yaml").read_text())
    env = {"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)}
    with stages.workspace_lock("pneumonia-training", root=tmp_path):
        done = subprocess.run([sys.executable, "-m", module], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env=env)
    assert done.returncode == 2 and done.stdout == "", done.stderr[-2000:]
    assert done.stderr.startswith(f"{prog}: error: the workspace {tmp_path.resolve()} is in use by ")
    assert f'"pid": {os.getpid()}' in done.stderr and "wait for it to finish" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_params_file_that_is_not_yaml_names_its_line(tmp_path):
    from tasks.core import config

    (tmp_path / "params.yaml").write_text("data:\n  image_size: 128\ntrain:\n\tepochs: 3\n")
    with pytest.raises(config.ConfigError, match=r"params.yaml line 4: found character '\\t'.*never tabs"):
        config.load(tmp_path / "params.yaml")


@pytest.mark.slow  # MLflow waits about 20 s for the lock before it gives up
def test_a_locked_tracking_store_is_one_line_and_retried(workdir, capsys, monkeypatch):
    import sqlite3

    import mlflow

    from tasks import cli
    from tests.helpers import write_params

    write_params(workdir)
    uri = f"sqlite:///{workdir / 'store.db'}"
    mlflow.MlflowClient(uri).create_registered_model("first")  # the store exists
    lock = sqlite3.connect(workdir / "store.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process (a UI, a second run) holds the store

    def run(p):  # what register does: write to the registry
        mlflow.MlflowClient(uri).create_registered_model("second")

    with pytest.raises(SystemExit) as done:
        cli.main("register", run, [])
    out, err = capsys.readouterr()
    assert "SQL" not in out + err and "Traceback" not in out + err  # MLflow's own report of the fault stays quiet
    err = [line for line in err.splitlines() if line.startswith("register: ")]
    assert done.value.code == 1  # a fault the flow retries, not a rejection
    assert err == ["register: error: the MLflow store is locked by another process (a UI, a second run): let it "
                   "finish or stop it, then rerun; the step repeats its work (database is locked)"]
    lock.rollback()
    lock.close()


def test_known_faults_keep_their_traceback_under_pneumonia_debug(workdir, monkeypatch):
    from tasks import cli
    from tests.helpers import write_params

    write_params(workdir)

    def run(p):
        raise RuntimeError("(sqlite3.OperationalError) attempt to write a readonly database")

    with pytest.raises(SystemExit) as done:
        cli.main("register", run, [])
    assert done.value.code == 2  # read-only: a retry cannot help
    monkeypatch.setenv("PNEUMONIA_DEBUG", "1")
    with pytest.raises(RuntimeError, match="readonly database"):
        cli.main("register", run, [])
