"""What the serving benchmarks share: a real `mlflow models serve` on 127.0.0.1, and images to send it."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.mlflow_server import free_port, wait_http  # noqa: E402


def encoded_images(folder: str, limit: int = 256) -> list[str]:
    """Base64 strings of the first `limit` PNG/JPEG files under `folder` (what a client sends)."""
    files = sorted(Path(folder).rglob("*.png")) + sorted(Path(folder).rglob("*.jpeg"))
    if not files:
        raise SystemExit(f"no .png or .jpeg files under {folder}: pass --images DIR (run the pipeline for demo data)")
    return [base64.b64encode(f.read_bytes()).decode() for f in files[:limit]]


def body(encoded: list[str], start: int, rows: int) -> dict:
    """An /invocations request of `rows` images taken round-robin from `encoded`."""
    return {"dataframe_split": {"columns": ["image"],
                                "data": [[encoded[(start + j) % len(encoded)]] for j in range(rows)]}}


@contextmanager
def serve(model_uri: str, workers: int = 1):
    """Yield (url, server process) of `mlflow models serve` for `model_uri`, stopped on exit. The tracking
    store is MLFLOW_TRACKING_URI, else this checkout's sqlite store."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path('mlruns/mlflow.db').resolve()}")
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ping", 180, server)
        yield url, server
    finally:
        server.terminate()
        server.wait(30)
