"""The `pneumonia-site` flow: a site's worklist, then its adapted model once the reviewer's labels arrive.

    python -m flows.site --site NAME --images DIR [--labels FILE] [--budget N]

Each run looks at the labels file: while it is absent, or unchanged since the site's last adaptation, the
flow (re)writes the worklist (`pneumonia-site query`); when it appears or changes, it adapts
(`pneumonia-site adapt`, the site's DVC stages and the `@site-<name>` gate). Both run as subprocesses of the
same commands users type, so the flow adds only scheduling, retries and a markdown artifact with the
site report. `prefect.yaml` deploys it (`site-onboarding`).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows import stages


def labels_changed(site: str, labels: str | None) -> bool:
    """The labels file exists and differs from the copy the site last adapted on."""
    import yaml

    from tasks.core import config
    from tasks.core.files import file_md5
    from tasks.sites import stage

    if not labels or not Path(labels).is_file():
        return False
    path = stage.files(config.load(), site)["config"]
    adapted = yaml.safe_load(path.read_text()).get("labels_md5") if path.exists() else None
    return adapted != file_md5(labels)


@task
def site_command(args: list[str]) -> str:
    """One `pneumonia-site` command; its output goes to the flow's log; a refusal (exit 2) fails the run."""
    log = get_run_logger()
    proc = subprocess.run([sys.executable, "-m", "tasks.sites.cli", *args], capture_output=True, text=True,
                          env=stages.dvc_env())
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip():
            log.info(line)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return proc.stdout


@flow(name="pneumonia-site", log_prints=True)
def pneumonia_site(site: str, images: str, labels: str | None = None, budget: int | None = None) -> str:
    """Query while there are no new labels; adapt when they appear or change; report as an artifact."""
    if labels_changed(site, labels):
        out = site_command(["adapt", "--site", site, "--images", images, "--labels", labels])
        title = "adapted"
    else:
        extra = ["--budget", str(budget)] if budget is not None else []
        out = site_command(["query", "--site", site, "--images", images, *extra])
        title = "worklist"
    markdown = f"# site {site}: {title}\n\n```\n{out.strip()}\n```\n"
    create_markdown_artifact(markdown, key=f"site-{site}", description=f"pneumonia-site {title}")
    return markdown


def main(argv: list[str] | None = None) -> None:
    from tasks import cli
    from tasks.core import config
    from tasks.monitoring.monitor import check_arguments

    ap = cli.parser("python -m flows.site", __doc__.split("\n\n")[0])
    ap.add_argument("--site", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--budget", type=cli.count)
    args = ap.parse_args(argv)

    def checked_then_run():
        check_arguments(config.load(), args.site, args.images)  # before Prefect starts: one line, exit 2
        pneumonia_site(args.site, args.images, args.labels, args.budget)

    cli.guard("pneumonia-site flow", checked_then_run)


if __name__ == "__main__":
    main(sys.argv[1:])
