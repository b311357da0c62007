"""The `pneumonia-monitor` flow: score a site's new films with the model it is served and test them for drift.

    pneumonia-monitor --site NAME --images DIR [--model-uri URI]     # or python -m flows.monitor
    pneumonia-monitor --site NAME --scores OUT.parquet               # a scored archive (pneumonia-predict's table)

One Prefect task runs tasks.monitoring.monitor, or tasks.monitoring.backfill for a table of scores (the logic,
with no Prefect in it); the flow leaves a markdown artifact
`monitor-<site>` with the tests' table and the batch's picture, and when a drift test crosses its threshold
(`monitor.alpha` in params.yaml) it logs the alert and POSTs it to `PNEUMONIA_ALERT_WEBHOOK` when that is set.
Exit status: 0, also on drift (the alert is the news); 1 when a film could not be read (the others are scored
and kept); 2 when the input cannot be used (a bad site name, a folder that is missing or holds no film, a
model that cannot be loaded): checked before the flow starts where it can be, one line either way.
`prefect.yaml` schedules it (`site-monitoring`).
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows import notify


@task
def score_and_test(site: str, images: str | None, model_uri: str | None, scores: str | None) -> dict:
    from tasks.core import config
    from tasks.monitoring import backfill, monitor

    if scores:
        return backfill.run(config.load(), site, scores)
    return monitor.run(config.load(), site, images, model_uri, progress=False)


def markdown(out: dict, min_films: int) -> str:
    from tasks.monitoring.monitor import summary

    text = f"# monitoring: site {out['site']}\n\n" + summary(out, min_films)
    figure = (out["result"] or {}).get("figure")
    if figure and Path(figure).exists():  # inline, so the artifact shows the picture wherever it is read
        text += f"\n![drift]({'data:image/png;base64,' + base64.b64encode(Path(figure).read_bytes()).decode()})\n"
    return text


@flow(name="pneumonia-monitor", log_prints=True)
def pneumonia_monitor(site: str, images: str | None = None, model_uri: str | None = None,
                      scores: str | None = None) -> dict:
    """Score the new films under `images` (or take the table `scores` of a scored archive), test the batch,
    report; alert on drift."""
    from tasks.core import config

    log = get_run_logger()
    out = score_and_test(site, images, model_uri, scores)
    create_markdown_artifact(markdown(out, config.load().monitor.min_films), key=f"monitor-{site}",
                             description=f"pneumonia-monitor, site {site}")
    for path, why in out["errors"].items():
        log.error(f"{Path(images) / path}: {why}; the other films were scored")
    if out["alert"]:
        log.warning(f"ALERT: {out['alert']}")
        notify.drift_alert("pneumonia-monitor", site, out)
    return out


def main(argv: list[str] | None = None) -> int:
    from tasks import cli

    ap = cli.parser("pneumonia-monitor", __doc__.split("\n\n")[0])
    ap.add_argument("--site", required=True, help="the site's name (its model is models:/<model>@site-<name>)")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="the folder of the site's films (read, never changed)")
    source.add_argument("--scores", help="the table pneumonia-predict --output wrote for an archive (either engine)")
    ap.add_argument("--model-uri", help="monitor this model instead of the one the site is served")
    args = ap.parse_args(argv)
    if args.scores and args.model_uri:
        ap.error("--scores names the model its films were scored with: drop --model-uri")
    return cli.guard("pneumonia-monitor", lambda: monitor(args))


def monitor(args) -> int:
    from tasks.core import config
    from tasks.core.native import import_tensorflow
    from tasks.monitoring import backfill
    from tasks.monitoring.monitor import check_arguments, folder, summary

    p = config.load()
    if args.scores:  # before Prefect starts: one line and exit 2
        folder(p, args.site)
        backfill.read(p, args.scores)
    else:
        check_arguments(p, args.site, args.images)
    import_tensorflow()  # its start-up notices kept off the terminal
    out = pneumonia_monitor(args.site, args.images, args.model_uri, args.scores)
    print(summary(out, p.monitor.min_films))  # the flow's log already named each unreadable film
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
