"""pneumonia-monitor's MLflow record: one run per tested batch, in the model's monitoring experiment."""
from __future__ import annotations

from tasks.core.config import Params
from tasks.core.sections import flat_params
from tasks.monitoring.drift import TESTS
from tasks.records import tracking

MONITORING_NOTE = ("Monitoring runs (pneumonia-monitor): one per scored batch of a site's films, with the drift "
                   "tests' statistics and p-values against the model's reference, the verdict as tags, and the "
                   "batch's report and figure (counts and statistics only: no file name or pixel).")


def record_monitoring(p: Params, experiment: str, site: str, out: dict) -> str:
    """One run per tested batch in `experiment` (`<model>-monitoring`): the site, model and verdict as tags,
    the `monitor` params, each test's statistic and p-value, the rates, and the batch's report and figure
    (counts and statistics only: no file name or pixel). Returns the run id."""
    import mlflow

    r = out["result"]
    experiment_id = tracking.configure(p, experiment, MONITORING_NOTE)
    tags = {"site": site, "model_uri": out["model_uri"], "model_version": out["model_version"], "batch": r["batch"],
            "drift": str(r["drift"]).lower(), "drifted": ",".join(r["drifted"]) or "none"}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{site}-{r['batch']}", tags=tags) as run:
        mlflow.log_params(flat_params({"monitor": p.monitor}))
        mlflow.log_metrics({"films": r["films"], "pneumonia_rate": r["pneumonia_rate"],
                            "pneumonia_rate_reference": r["pneumonia_rate_reference"],
                            "median_probability": r["median_probability"], "drift": float(r["drift"])})
        mlflow.log_metrics({f"{t}/{k}": float(r[t][k]) for t in TESTS for k in ("statistic", "p_value")})
        mlflow.log_artifact(r["report"], "monitoring")
        mlflow.log_artifact(r["figure"], "monitoring")
        return run.info.run_id
