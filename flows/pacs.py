"""The `pacs-inbox` flow: one pass of a site's reading room (tasks/pacs/), for a Prefect schedule.

    python -m flows.pacs --site st1 [--pacs URL] [--model-uri URI]     # what the deployment runs

One Prefect task runs tasks.pacs.inbox.run_pass (the logic, with no Prefect in it), retried twice with a delay
when the archive is down or refused a store (its results wait in the site's outbox, so a retry loses nothing and
stores nothing twice); the flow leaves a markdown artifact `pacs-<site>` with the pass's counts. `prefect.yaml`
deploys it (`pacs-inbox`, every five minutes once the site's parameters are set).
"""
from __future__ import annotations

import sys

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact


@task(retries=2, retry_delay_seconds=60)
def one_pass(site: str, pacs: str | None, model_uri: str | None) -> dict:
    from tasks.core import config
    from tasks.pacs import inbox
    from tasks.records import tracking

    p = config.load()
    tracking.configure(p)
    return inbox.run_pass(p, site, pacs, model_uri, progress=False)


@flow(name="pacs-inbox", log_prints=True)
def pacs_inbox(site: str, pacs: str | None = None, model_uri: str | None = None) -> dict:
    """The archive's new films of `site` scored and their results stored back; returns the pass's counts."""
    from tasks.pacs.cli import report

    out = one_pass(site, pacs, model_uri)
    text = report(out)
    print(text)
    create_markdown_artifact(f"# pacs-inbox: site {site}\n\n```\n{text}\n```\n", key=f"pacs-{site}",
                             description=f"pneumonia-pacs, site {site}")
    if out["alert"]:  # the pass's scored films drifted from the model's reference (tasks/pacs/watch.py)
        from flows import notify

        notify.drift_alert("pneumonia-pacs", site, {**out, "model_uri": out["model"], "result": out["drift"]})
    return out


def main(argv: list[str] | None = None) -> None:
    from tasks import cli
    from tasks.sites.stage import check_name

    ap = cli.parser("python -m flows.pacs", __doc__.split("\n\n")[0])
    ap.add_argument("--site", required=True)
    ap.add_argument("--pacs")
    ap.add_argument("--model-uri")
    args = ap.parse_args(argv)
    cli.guard("pacs-inbox", lambda: pacs_inbox(check_name(args.site), args.pacs, args.model_uri))


if __name__ == "__main__":
    main(sys.argv[1:])
