"""The site loop's MLflow record: one run per site adaptation (what tasks.sites.gate registers), tagged with the
md5 of the site's report, by which the gate finds it again."""
from __future__ import annotations

from tasks.core.config import Params
from tasks.core.files import file_md5
from tasks.core.sections import flat_params
from tasks.measure.intervals import SHOWN
from tasks.records import tracking

SITE_METRICS = ("accuracy", "recall", "specificity", "roc_auc", "balanced_accuracy")


def record_site(p: Params, name: str, report: dict, files: dict) -> str:
    """One run per site adaptation in the project's experiment (`site-<name>`): the `sites` params; the site,
    label count, labels md5, query strategy and what the threshold was fitted on as tags; the source and
    adapted site metrics with their intervals, the labels and predictions, and the site package as a logged
    model (its URI in the tag `servable_model_uri`, which the site gate registers); returns the run id."""
    import mlflow
    import numpy as np

    from tasks.imaging.images import png_bytes
    from tasks.scoring.serving import pyfunc_spec

    experiment_id = tracking.configure(p)
    tags = {"site": name, "site_labels": str(report["labels"]), "site_labels_md5": report["labels_md5"],
            "site_films_md5": report["films_md5"], "site_query": report["query"],
            "site_threshold_from": report.get("fitted_on", "worklist"),
            "source_model": report["source_model"], "git_commit": tracking.git_commit(),
            "site_report_md5": file_md5(files["report"])}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"site-{name}", tags=tags) as run:
        mlflow.log_params(flat_params({"sites": p.sites, "train.batch_size": p.train.batch_size}))
        sets = {"site": report, **({"site/measured": report["measured"]} if report.get("measured") else {})}
        for prefix, where in sets.items():  # cross-fitted on the labels, and on the measurement sample
            for when in ("before", "after"):
                m = where[when]
                mlflow.log_metrics({f"{prefix}/{when}/{k}": float(m[k]) for k in SITE_METRICS})
                mlflow.log_metrics({f"{prefix}/{when}/{k}_ci_{end}": float(m[f"{k}_ci"][i]) for k in SHOWN
                                    for i, end in enumerate(("low", "high"))})
        mlflow.log_metric("site/seconds", report["seconds"])
        for key in ("report", "labels", "predictions", "figure"):
            mlflow.log_artifact(str(files[key]), "site")
        model = files["model"]
        example = png_bytes(np.zeros((8, 8), np.uint8))
        info = mlflow.pyfunc.log_model(name="model", **pyfunc_spec(model, example))
        mlflow.set_tag("servable_model_uri", info.model_uri)
        return run.info.run_id
