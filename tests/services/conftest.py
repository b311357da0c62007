"""A tiny registered champion (gate floors open) that the registry, batch and monitoring tests start from."""
import contextlib
import shutil

import mlflow
import pytest
from mlflow import MlflowClient

from tasks.cli import execute
from tasks.records import tracking
from tasks.records.registry import model_name
from tests.helpers import TINY_TRAIN, deep_update, write_params

OPEN_GATE = deep_update(TINY_TRAIN, {"register": {"min_sensitivity": 0.0, "min_specificity": 0.0}})


@pytest.fixture(scope="session")
def champion_dir(tiny_data, tmp_path_factory):
    """A tiny trained, evaluated and registered pipeline run (gate floors open), as the cwd's template."""
    folder = tmp_path_factory.mktemp("champion")
    shutil.copytree(tiny_data, folder, dirs_exist_ok=True)
    with contextlib.chdir(folder):
        p = write_params(folder, OPEN_GATE)
        execute("train", p)
        execute("evaluate", p)
        execute("package", p)
        first = execute("register", p)
    assert first["promoted"] and first["champion_before"] is None
    return folder


@pytest.fixture
def registry(champion_dir, workdir, monkeypatch):
    shutil.copytree(champion_dir, workdir, dirs_exist_ok=True)
    # champion_dir's set-up points MLFLOW_TRACKING_URI at its own store during the first test that uses it: this
    # test's copy must not write there (a deleted run would be gone from every later copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = write_params(workdir, OPEN_GATE)
    uri = tracking.tracking_uri(p)
    mlflow.set_tracking_uri(uri)
    return p, MlflowClient(uri), model_name(p)


