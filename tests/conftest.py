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
