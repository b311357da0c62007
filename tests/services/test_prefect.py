"""The pneumonia-training flow on a real Prefect server: fail-fast, deployment, schedule, worker run."""
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from flows import stages
from tests.helpers import TINY_TRAIN, deep_update, webhook
from tests.mlflow_server import free_port, wait_http
from tests.pipeline.conftest import RepoCopy

TINY_FLOW = deep_update(TINY_TRAIN, {"register": {"min_sensitivity": 0.0, "min_specificity": 0.0}})


@contextmanager
def prefect_server(home: Path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", 120, proc)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def task_runs(api: str, flow_run_id: str) -> dict[str, dict]:
    runs = requests.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}).json()
    return {r["name"].rsplit("-", 1)[0]: r for r in runs}


@pytest.mark.slow
def test_flow_on_a_real_prefect_server(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    with prefect_server(home) as api, webhook() as (hook_url, alerts), webhook() as (block_url, told):
        repo = RepoCopy(tmp_path / "repo", env={"PREFECT_API_URL": api, "PREFECT_HOME": str(home),
                                                "PNEUMONIA_REPO": str(tmp_path / "repo"),
                                                "PNEUMONIA_FAILURE_WEBHOOK": hook_url})
        # a Prefect notification block (here a custom webhook; Slack, Teams, email alike) hears of failures and
        # promotions
        payload = {"text": "{{subject}}", "body": "{{body}}"}  # Prefect fills in the message's subject and body
        repo.run(sys.executable, "-c", "from prefect.blocks.notifications import CustomWebhookNotificationBlock as C; "
                 f"C(name='alerts', url='{block_url}', json_data={payload!r}, allow_private_urls=True)"
                 ".save('pneumonia-alerts')")
        flow = deep_update(TINY_FLOW, {"orchestration": {"notify_block": "custom-webhook/pneumonia-alerts"}})
        # a failing data validation stops the flow at once: no retries, nothing downstream
        repo.params(deep_update(flow, {"validate": {"min_per_class": 100_000}}))
        failed = repo.run(sys.executable, "-m", "flows.pipeline", check=False)
        assert failed.returncode != 0
        flow_runs = requests.post(f"{api}/flow_runs/filter", json={}).json()
        assert [r["state_type"] for r in flow_runs] == ["FAILED"]
        runs = task_runs(api, flow_runs[0]["id"])
        assert runs["ingest"]["state_type"] == "COMPLETED"
        assert runs["validate"]["state_type"] == "FAILED" and runs["validate"]["run_count"] == 1
        assert "split" not in runs
        # the failure hook left an artifact and called the webhook, naming the stage
        failures = [a for a in requests.post(f"{api}/artifacts/filter", json={}).json()
                    if a["key"] == "pneumonia-training-failure"]
        assert len(failures) == 1 and "validate" in failures[0]["data"]
        assert len(alerts) == 1 and "validate" in alerts[0]["text"] and alerts[0]["state"] == "Failed"
        assert len(told) == 1 and "failed" in told[0]["text"] and "validate" in told[0]["body"], told
        manifest = repo / "data/prepared/manifest.csv"
        ingested_at = manifest.stat().st_mtime_ns

        # the scheduled deployment, triggered through the API and run by a worker
        store = tmp_path / "dvc-store"  # the checkout has no DVC remote: the flow sets this one up and pushes
        repo.params(deep_update(flow, {"paths": {"dvc_remote": str(store)}}))
        repo.run("prefect", "work-pool", "create", "--type", "process", "pneumonia-pool")
        repo.run("prefect", "--no-prompt", "deploy", "--all")
        deployment = requests.get(f"{api}/deployments/name/pneumonia-training/nightly-retrain").json()
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]
        limit = deployment.get("concurrency_limit") or (deployment.get("global_concurrency_limit") or {}).get("limit")
        assert limit == 1  # one run at a time per checkout
        site = requests.get(f"{api}/deployments/name/pneumonia-site/site-onboarding").json()
        assert [(s["schedule"]["cron"], s["active"]) for s in site["schedules"]] == [("*/30 * * * *", False)]
        assert {"site", "images", "labels"} <= set(site["parameter_openapi_schema"]["properties"])
        watch = requests.get(f"{api}/deployments/name/pneumonia-monitor/site-monitoring").json()
        assert [(s["schedule"]["cron"], s["active"]) for s in watch["schedules"]] == [("0 * * * *", False)]
        archive = requests.get(f"{api}/deployments/name/batch-score/batch-score").json()
        assert {"sources", "output", "model_uri", "master"} <= set(archive["parameter_openapi_schema"]["properties"])
        inbox = requests.get(f"{api}/deployments/name/pacs-inbox/pacs-inbox").json()
        assert [(s["schedule"]["cron"], s["active"]) for s in inbox["schedules"]] == [("*/5 * * * *", False)]
        assert {"site", "pacs", "model_uri"} <= set(inbox["parameter_openapi_schema"]["properties"])
        # typed parameters: a form with the types and ranges of tasks.core.config; a bad value is refused at creation
        schema = deployment["parameter_openapi_schema"]
        epochs = schema["definitions"]["TrainingSettings"]["properties"]["epochs"]["anyOf"][0]
        assert epochs == {"type": "integer", "exclusiveMinimum": 0}, epochs
        refused = requests.post(f"{api}/deployments/{deployment['id']}/create_flow_run",
                                json={"parameters": {"settings": {"epochs": 0}}})
        assert refused.status_code in (409, 422) and "epochs" in refused.text, refused.text[:500]
        epochs = TINY_FLOW["train"]["epochs"]  # the value params.yaml has: a typed run that changes nothing
        repo.run("prefect", "deployment", "run", "pneumonia-training/nightly-retrain", "--param",
                 f'settings={{"epochs": {epochs}}}')
        worked = repo.run("prefect", "worker", "start", "--pool", "pneumonia-pool", "--run-once", timeout=900)
        story = worked.stdout + worked.stderr  # the pipeline's own story: no DVC advice, no library warnings
        assert "train: " in story and "register: " in story
        for noise in ("git add dvc.lock", "autostage", "UserWarning", "Created version", "Validating input example"):
            assert noise not in story, (noise, story[-3000:])
        flow_runs = requests.post(f"{api}/flow_runs/filter",
                                  json={"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}).json()
        done = [r for r in flow_runs if r["state_type"] == "COMPLETED"]
        assert len(done) == 1, [r["state_type"] for r in flow_runs]
        runs = task_runs(api, done[0]["id"])
        names = stages.stage_names(repo.path)
        for stage in names:
            assert runs[stage]["state_type"] == "COMPLETED", stage
        for before, stage in zip(names, names[1:]):  # the flow's graph has the stages' order as its edges
            assert [i["id"] for i in runs[stage]["task_inputs"]["wait_for"]] == [runs[before]["id"]], stage
        assert runs["summary"]["state_type"] == "COMPLETED" and runs["push"]["state_type"] == "COMPLETED"
        assert manifest.stat().st_mtime_ns == ingested_at  # the rerun skipped the stage that had finished
        status = repo.run("dvc", "status")
        assert "changed" not in status.stdout  # DVC is clean after the flow
        run_id = json.loads((repo / "reports/registry.json").read_text())["run_id"]  # the run register read
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
        assert client.get_run(run_id).info.status == "FINISHED"
        artifacts = requests.post(f"{api}/artifacts/filter", json={}).json()
        assert any(a["key"] == "pneumonia-training-summary" for a in artifacts)
        assert len(alerts) == 1  # a successful run calls no webhook
        assert len(told) == 2 and "is the new @champion" in told[1]["text"], told  # the first model promoted
        refs = repo.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
        experiment = client.get_run(run_id).data.tags["dvc_experiment"]  # the scheduled run is an experiment
        assert experiment.startswith("run-") and any(r.endswith(f"/{experiment}") for r in refs), (experiment, refs)
        # the MLflow run is named after the experiment, names the flow run, and the summary links to both in MLflow
        run = client.get_run(run_id)
        assert run.info.run_name == experiment
        assert run.data.tags["prefect_flow_run"] == f"{done[0]['name']} ({done[0]['id']})"
        assert done[0]["name"] in run.data.tags["mlflow.note.content"]
        assert "Training runs of the pneumonia pipeline" in client.get_experiment(
            run.info.experiment_id).tags["mlflow.note.content"]
        summary = [a for a in artifacts if a["key"] == "pneumonia-training-summary"][-1]["data"]
        assert (f"[{experiment}](http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}"
                "?workflowType=machine_learning)") in summary, summary
        assert "](http://127.0.0.1:5000/#/models/" in summary, summary
        quiet = repo.run(sys.executable, "-m", "flows.pipeline")  # nothing new: stops at once and says so
        assert "nothing new since the last run" in quiet.stdout + quiet.stderr
        assert "Running stage" not in quiet.stdout + quiet.stderr

        # the monitoring deployment, run by a worker on the site's films with the champion just registered
        inbox = repo / "data/raw/demo/chest_xray/train"
        repo.run("prefect", "deployment", "run", "pneumonia-monitor/site-monitoring", "--param", "site=st1",
                 "--param", f"images={inbox}")
        repo.run("prefect", "worker", "start", "--pool", "pneumonia-pool", "--run-once", timeout=600)
        watched = requests.post(f"{api}/flow_runs/filter",
                                json={"flow_runs": {"deployment_id": {"any_": [watch["id"]]}}}).json()
        assert [r["state_type"] for r in watched] == ["COMPLETED"]
        report = [a for a in requests.post(f"{api}/artifacts/filter", json={}).json() if a["key"] == "monitor-st1"]
        assert len(report) == 1 and "site `st1`" in report[0]["data"] and "| features |" in report[0]["data"]
        assert (repo / "monitoring/st1/scored.csv").exists()

    # the runs changed no committed file but the params they were given: their results are new files
    changed = repo.run("git", "status", "--porcelain", "--untracked-files=no").stdout.split()
    assert changed == ["M", "params.yaml"], changed
    # a fresh clone elsewhere gets data, model and package back from the remote, and has nothing to rerun
    repo.run("git", "add", "-A")
    repo.run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "trained")
    clone = tmp_path / "clone"
    repo.run("git", "clone", "-q", str(repo.path), str(clone))
    assert stages.ensure_remote(str(store), clone) == "local"
    env = {**repo.env, "PYTHONPATH": str(clone)}
    pulled = subprocess.run(["dvc", "pull"], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert (clone / "models/model.keras").exists() and (clone / "models/package/MLmodel").exists()
    status = subprocess.run(["dvc", "status"], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert "up to date" in status.stdout, status.stdout
    again = subprocess.run(["dvc", "repro"], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout[-2000:]
