"""Ingest throughput on the real train split: images/s with 1 and 2 decode processes.

    python benchmarks/ingest.py [--data ../shared/data/chest_xray] [--size 128]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tasks.core import config
from tasks.ingest import ingest_files
from tasks.sources import folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray"))
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    cands = folder.candidates(Path(args.data))
    rates = {}
    for workers in (1, 2):
        start = time.perf_counter()
        cfg = config.load().ingest.model_copy(update={"workers": workers})
        manifest, pixels, _ = ingest_files(cands, cfg, args.size)
        seconds = time.perf_counter() - start
        rates[workers] = len(manifest) / seconds
        print(f"workers={workers}: {len(manifest)} images in {seconds:.1f} s = {rates[workers]:.0f} img/s "
              f"-> {pixels.nbytes / 2**20:.0f} MiB store")
    print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
