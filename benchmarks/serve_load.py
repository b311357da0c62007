"""The served model under concurrent load: latency percentiles, errors, throughput and server memory.

    python benchmarks/serve_load.py [--model-uri models:/pneumonia-classifier-demo@champion]
        [--clients 4] [--seconds 20] [--max-requests 2000] [--rows 1] [--workers 1 2]

For each worker count, starts `mlflow models serve -w N` on 127.0.0.1, lets `--clients` threads post
`--rows`-image requests back to back until `--seconds` pass or `--max-requests` are sent (it stops by
itself), and prints p50/p99 latency, the error count, requests and images per second, and the resident
memory of the server's process tree after warm-up, at the end and at its peak (sampled every 0.5 s).
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import psutil
import requests
from served import body, encoded_images, serve


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and its children (the gunicorn/uvicorn workers)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def sample_memory(proc: psutil.Process, rss: list, stop: threading.Event) -> None:
    """Append the tree's resident bytes to `rss` every 0.5 s until `stop` is set."""
    while not stop.wait(0.5):
        rss.append(tree_rss(proc))


def load(url: str, encoded: list[str], clients: int, seconds: float, max_requests: int, rows: int):
    """(latencies in s, error count, wall time) of `clients` threads posting until time or count runs out."""
    latencies, errors, lock = [], [0], threading.Lock()
    sent = iter(range(max_requests))
    deadline = time.perf_counter() + seconds

    def client():
        session = requests.Session()
        while time.perf_counter() < deadline:
            with lock:
                i = next(sent, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                ok = session.post(f"{url}/invocations", json=body(encoded, i * rows, rows), timeout=60).ok
            except requests.RequestException:
                ok = False
            with lock:
                latencies.append(time.perf_counter() - start)
                errors[0] += not ok

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.array(latencies), errors[0], time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-uri", default="models:/pneumonia-classifier-demo@champion")
    ap.add_argument("--images", default="data/raw/demo/chest_xray/train")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-requests", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=1, help="images per request")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    encoded = encoded_images(args.images)
    rates = {}
    for workers in args.workers:
        with serve(args.model_uri, workers) as (url, server):
            proc = psutil.Process(server.pid)
            load(url, encoded, args.clients, 3.0, 20 * workers, args.rows)  # warm every worker up
            rss, stop = [tree_rss(proc)], threading.Event()
            sampler = threading.Thread(target=sample_memory, args=(proc, rss, stop))
            sampler.start()
            lat, errors, wall = load(url, encoded, args.clients, args.seconds, args.max_requests, args.rows)
            stop.set()
            sampler.join()
            rss.append(tree_rss(proc))
        ms = lat * 1000
        rates[workers] = len(lat) * args.rows / wall
        print(f"workers {workers}, {args.clients} clients, {args.rows} image(s)/request: {len(lat)} requests in "
              f"{wall:.1f} s, errors {errors}, p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
              f"{len(lat) / wall:.1f} requests/s, {rates[workers]:.1f} images/s; server memory after warm-up "
              f"{rss[0] / 2**20:.0f} MiB, at the end {rss[-1] / 2**20:.0f} MiB, peak {max(rss) / 2**20:.0f} MiB")
    if len(rates) > 1:
        base = min(rates)
        print("throughput vs " + f"{base} worker(s): " + ", ".join(f"{w} workers x{rates[w] / rates[base]:.2f}"
                                                                    for w in sorted(rates) if w != base))


if __name__ == "__main__":
    main()
