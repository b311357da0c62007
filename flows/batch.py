"""The `batch-score` flow: a whole archive scored on Spark with the registered model, for deployments.

    python -m flows.batch SOURCE... --output OUT.parquet [--model-uri URI] [--master spark://HOST:7077]
                          [--monitor SITE]

One Prefect task runs tasks.scoring.spark_scoring.job (Spark reads, mlflow.pyfunc.spark_udf scores; the same model and
scores as `pneumonia-predict`), retried once (a cluster may lose an executor; the output is swapped in whole, so
a retry neither duplicates nor drops rows); the flow leaves a markdown artifact `batch-score` with the counts.
With `--monitor SITE` the output is then a drift check of that site: the `pneumonia-monitor` flow on the table
(tasks.monitoring.backfill), with its report, MLflow run and alert.
`prefect.yaml` deploys it (`batch-score`, run on demand).
"""
from __future__ import annotations

import sys

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact


@task(retries=1, retry_delay_seconds=30)
def score(sources: list[str], output: str, model_uri: str, version: str, master: str) -> dict:
    from tasks.scoring import spark_scoring

    return spark_scoring.job(sources, output, model_uri, version, master)


@flow(name="batch-score", log_prints=True)
def batch_score(sources: list[str], output: str, model_uri: str | None = None, master: str = "local[2]",
                monitor: str | None = None) -> dict:
    """Score every image file under `sources` into the Parquet folder `output`, then, given a site name in
    `monitor`, test the output for drift; returns the counts (and `monitor`: the monitor flow's outcome)."""
    from tasks.core import config
    from tasks.records import registry

    uri = model_uri or registry.champion_uri(config.load())
    out = score(sources, output, uri, registry.version_of(uri), master)
    create_markdown_artifact(f"# batch-score\n\n- model `{uri}`\n- {out['rows']} files -> `{output}`: "
                             f"{out['scored']} scored ({out['pneumonia']} called PNEUMONIA), {out['errors']} could "
                             f"not be read, {out['seconds']:.0f} s on `{master}`\n", key="batch-score",
                             description="archive scoring on Spark")
    if monitor:
        from flows.monitor import pneumonia_monitor

        out["monitor"] = pneumonia_monitor(monitor, scores=output)
    return out


def main(argv: list[str] | None = None) -> None:
    from tasks import cli

    ap = cli.parser("python -m flows.batch", __doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--output", required=True)
    ap.add_argument("--model-uri")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--monitor", metavar="SITE", help="then test the output for drift as this site's films")
    args = ap.parse_args(argv)
    if not args.output.endswith(".parquet"):
        ap.error(f"--output {args.output}: give a .parquet folder")

    def work() -> dict:
        if args.monitor:  # a bad site name refused before the job
            from tasks.core import config
            from tasks.monitoring.monitor import folder

            folder(config.load(), args.monitor)
        return batch_score(args.sources, args.output, args.model_uri, args.master, args.monitor)

    cli.guard("batch-score", work)


if __name__ == "__main__":
    main(sys.argv[1:])
