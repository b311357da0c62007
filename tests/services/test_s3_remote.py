"""The S3-compatible DVC remote the Compose stack uses (MinIO there), configured as its worker is: the
endpoint from AWS_ENDPOINT_URL, credentials from the environment. MinIO needs a container engine, which
this machine lacks, so an S3 server runs in-process on 127.0.0.1 (moto's, speaking the real S3 HTTP API);
dvc-s3 pushes to it and a fresh clone pulls back byte for byte."""
import os
import subprocess

import pytest

from flows import stages
from tests.mlflow_server import free_port

moto_server = pytest.importorskip("moto.server", reason="moto[s3] + flask (the dev extra) serve S3 locally")
pytest.importorskip("dvc_s3", reason="dvc-s3 (the s3 extra) talks to S3 remotes")
pytestmark = pytest.mark.slow


def git(*args, cwd):
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True)


def test_push_to_an_s3_remote_and_pull_into_a_fresh_clone(tmp_path, monkeypatch):
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")  # as docker/compose.yaml's worker
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minio-user")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minio-password")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        import boto3

        boto3.client("s3").create_bucket(Bucket="dvc")  # docker/compose.yaml's minio-bucket job

        repo = tmp_path / "repo"
        (repo / "models").mkdir(parents=True)
        payload = os.urandom(300_000)
        (repo / "models/model.keras").write_bytes(payload)
        git("init", "-q", cwd=repo)
        run = lambda *a, cwd=repo: subprocess.run(a, cwd=cwd, env=stages.dvc_env(), check=True,  # noqa: E731
                                                   capture_output=True, text=True)
        run("dvc", "init", "-q")
        run("dvc", "add", "models/model.keras")
        run("dvc", "remote", "add", "-d", "minio", "s3://dvc")  # docs/tracking.md's command for the Compose remote
        git("add", "-A", cwd=repo)
        git("commit", "-qm", "model", cwd=repo)

        logged = []
        assert stages.push(str(tmp_path / "unused-local-default"), logged.append, repo) == "minio"
        assert not (tmp_path / "unused-local-default").exists()  # a configured remote is kept
        objects = boto3.client("s3").list_objects_v2(Bucket="dvc").get("Contents", [])
        assert objects and logged and "minio" in logged[0]

        clone = tmp_path / "clone"
        git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
        run("dvc", "pull", cwd=clone)
        assert (clone / "models/model.keras").read_bytes() == payload
        assert "up to date" in run("dvc", "status", cwd=clone).stdout
    finally:
        server.stop()
