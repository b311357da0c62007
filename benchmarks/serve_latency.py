"""Latency of the served champion: p50/p95/p99 and images/s for 1-image and 32-image requests.

    python benchmarks/serve_latency.py [--model-uri models:/pneumonia-classifier-demo@champion] [--requests 50]

Starts `mlflow models serve` on 127.0.0.1 against this checkout's tracking store (or MLFLOW_TRACKING_URI),
posts real images from the demo set (or --images DIR) one request at a time, and stops the server.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import requests
from served import body, encoded_images, serve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-uri", default="models:/pneumonia-classifier-demo@champion")
    ap.add_argument("--images", default="data/raw/demo/chest_xray/train")
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    encoded = encoded_images(args.images)
    with serve(args.model_uri) as (url, _):
        for batch in (1, 32):
            times = []
            for i in range(args.requests + 3):
                start = time.perf_counter()
                reply = requests.post(f"{url}/invocations", json=body(encoded, i * batch, batch), timeout=120)
                reply.raise_for_status()
                if i >= 3:  # warm-up requests are not counted
                    times.append(time.perf_counter() - start)
            ms = np.array(times) * 1000
            print(f"batch {batch:2d}: p50 {np.percentile(ms, 50):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms  "
                  f"p99 {np.percentile(ms, 99):7.1f} ms  {batch * len(ms) / (ms.sum() / 1000):6.1f} images/s")


if __name__ == "__main__":
    main()
