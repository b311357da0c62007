import os

import pytest

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder as cwd: steps write their relative paths here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder with params.yaml and ingested + split tiny demo data (made once per session)."""
    from tasks import ingest, split
    from tests.helpers import TINY_TRAIN, write_params

    folder = tmp_path_factory.mktemp("tiny")
    old = os.getcwd()
    os.chdir(folder)
    try:
        p = write_params(folder, TINY_TRAIN)
        ingest.run(p)
        split.run(p)
    finally:
        os.chdir(old)
    return folder


@pytest.fixture
def tiny_workdir(tiny_data, workdir):
    """cwd = a private copy of `tiny_data`, ready for train/evaluate."""
    import shutil

    shutil.copytree(tiny_data, workdir, dirs_exist_ok=True)
    return workdir
