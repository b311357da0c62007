"""Serve the retraining schedule locally: `python -m flows.serve [--cron '0 3 * * *']` (needs a Prefect API)."""
from __future__ import annotations

from flows.pipeline import pneumonia_training


def main(argv: list[str] | None = None) -> None:
    from tasks import cli

    ap = cli.parser("python -m flows.serve", __doc__)
    ap.add_argument("--cron", default="0 3 * * *")
    ap.add_argument("--name", default="local-retrain")
    args = ap.parse_args(argv)
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:  # before Prefect starts: one line, exit 2
        CronSchedule(cron=args.cron)
    except ValidationError:
        ap.error(f"--cron {args.cron!r} is not a cron expression (minute hour day month weekday, e.g. '0 3 * * *')")
    pneumonia_training.serve(name=args.name, cron=args.cron, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
