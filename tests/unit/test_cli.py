"""The command lines: `--help` prints usage and exits without running anything; bad arguments exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("script", ["pneumonia-pipeline", "pneumonia-sweep", "pneumonia-predict"])
def test_console_scripts_are_installed(script):
    done = subprocess.run([str(Path(sys.executable).parent / script), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and f"usage: {script}" in done.stdout
