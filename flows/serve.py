"""Serve the retraining schedule locally: `python -m flows.serve [--cron '0 3 * * *']` (needs a Prefect API)."""
from __future__ import annotations

import argparse

from flows.pipeline import pneumonia_training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cron", default="0 3 * * *")
    ap.add_argument("--name", default="local-retrain")
    args = ap.parse_args()
    pneumonia_training.serve(name=args.name, cron=args.cron, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
