"""Latency of the served champion: p50/p95/p99 and images/s for 1-image and 32-image requests.

    python benchmarks/serve_latency.py [--model-uri models:/pneumonia-classifier-demo@champion] [--requests 50]

Starts `mlflow models serve` on 127.0.0.1 against this checkout's tracking store (or MLFLOW_TRACKING_URI),
posts real images from the demo set (or --images DIR), and stops the server.
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.mlflow_server import free_port, wait_http  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-uri", default="models:/pneumonia-classifier-demo@champion")
    ap.add_argument("--images", default="data/raw/demo/chest_xray/train")
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    files = sorted(Path(args.images).rglob("*.png")) + sorted(Path(args.images).rglob("*.jpeg"))
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files[:256]]
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path('mlruns/mlflow.db').resolve()}")
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", args.model_uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port), "-w", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ping", 180, server)
        for batch in (1, 32):
            times = []
            for i in range(args.requests + 3):
                rows = [[encoded[(i * batch + j) % len(encoded)]] for j in range(batch)]
                start = time.perf_counter()
                reply = requests.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["image"],
                                                                                       "data": rows}}, timeout=120)
                reply.raise_for_status()
                if i >= 3:  # warm-up requests are not counted
                    times.append(time.perf_counter() - start)
            ms = np.array(times) * 1000
            print(f"batch {batch:2d}: p50 {np.percentile(ms, 50):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms  "
                  f"p99 {np.percentile(ms, 99):7.1f} ms  {batch * len(ms) / (ms.sum() / 1000):6.1f} images/s")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
