import contextlib
import os

import pytest

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


SESSION_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _isolated_tracking_uri():
    """mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ, which subprocesses of later
    tests would inherit: put back the session's value after every test (not the value at the test's start:
    a module-scoped fixture may have set it before)."""
    yield
    if SESSION_TRACKING_URI is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = SESSION_TRACKING_URI


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
    with contextlib.chdir(folder):
        p = write_params(folder, TINY_TRAIN)
        ingest.run(p)
        split.run(p)
    return folder


@pytest.fixture
def tiny_workdir(tiny_data, workdir):
    """cwd = a private copy of `tiny_data`, ready for train/evaluate."""
    import shutil

    shutil.copytree(tiny_data, workdir, dirs_exist_ok=True)
    return workdir


SERVER_WORDS = ("server", "serve", "worker", "postgres", "initdb", "chromium", "chromedriver")


@pytest.fixture(autouse=True)
def _fast_tests_stay_fast(request, monkeypatch):
    """The `slow` marker is true: a test without it that fits a Keras model or starts a server fails, so
    `make test-fast` (`-m "not slow"`) never does either."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    import subprocess

    import keras

    def no_fit(*args, **kwargs):
        raise AssertionError("this test fits a model: mark it @pytest.mark.slow")

    popen = subprocess.Popen.__init__

    def no_server(self, args, *rest, **kwargs):
        words = [str(a) for a in (args if isinstance(args, (list, tuple)) else [args])]
        if any(w in SERVER_WORDS or w.endswith(("/postgres", "/chromium")) for w in words):
            raise AssertionError(f"this test starts a server ({' '.join(words)[:80]}): mark it @pytest.mark.slow")
        popen(self, args, *rest, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    monkeypatch.setattr(subprocess.Popen, "__init__", no_server)
    yield
