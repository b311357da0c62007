"""register (a site's DVC stage): add the site model to the registry and move `@site-<name>` only on a win.

    python -m tasks.sites.gate NAME      # what `pneumonia-site adapt` runs after adapt, through `dvc repro`

The candidate's number is its site value of `sites.metric` on the **measurement sample** when its labels
hold both classes (films `pneumonia-site query` drew at random and adapt never trained on), else its
cross-fitted value on the labelled films (tasks.sites.adapt: films neither its weights nor its threshold saw;
biased when a query picked the hardest films). It must beat, by `sites.min_improvement`, the incumbent on the
same films: the current `@site-<name>` version's own value when it was measured on the same films (same
labels file, or same measurement sample), else the source model (the champion it was adapted from, which
never saw the site's films) scored on them. Its sensitivity and specificity on those films must also clear
`register.min_sensitivity` and `min_specificity`, the champion's floors. `@champion` is never touched.
Writes the site's `registry.json`.
"""
from __future__ import annotations

import logging

from tasks import registry, tracking
from tasks.config import Params
from tasks.errors import StepError
from tasks.files import file_md5, read_json, write_json
from tasks.sites import stage

log = logging.getLogger(__name__)


def floors(after: dict, min_sensitivity: float, min_specificity: float, basis: str = "cross-fitted") -> str | None:
    """Why the candidate's operating point is not servable (`register.min_*` floors), or None.

    A few dozen labels can raise the ranking while the threshold they give misses (measured: 25 labels, AUC
    0.992 but sensitivity 76 %, docs/sites.md), so a win on the metric alone does not promote."""
    if after["recall"] < min_sensitivity:
        return f"{basis} site sensitivity {after['recall']:.3f} is below register.min_sensitivity {min_sensitivity}"
    if after["specificity"] < min_specificity:
        return (f"{basis} site specificity {after['specificity']:.3f} is below register.min_specificity "
                f"{min_specificity}")
    return None


def basis(report: dict) -> tuple[dict, dict, str]:
    """(the candidate's metrics, the source model's on the same films, what they are measured on)."""
    if report.get("measured"):
        return report["measured"]["after"], report["measured"]["before"], "measurement-sample"
    return report["after"], report["before"], "cross-fitted"


def decide(candidate: float, incumbent: float, metric: str, min_improvement: float, against: str):
    gain = candidate - incumbent
    if gain >= min_improvement and gain > 0:
        return True, f"site {metric} {candidate:.4f} beats {against} {incumbent:.4f} by {gain:+.4f}"
    return False, (f"site {metric} {candidate:.4f} vs {against} {incumbent:.4f}: gain {gain:+.4f} is not above "
                   f"sites.min_improvement {min_improvement}")


def incumbent(p: Params, name: str, report: dict):
    """(current site version or None, its comparable value, what it is)."""
    metric = p.sites.metric
    current = registry.aliased(p, stage.alias(name))
    _, source, on = basis(report)
    same = "site_measure_md5" if on == "measurement-sample" else "site_labels_md5"
    mine = report["measure_md5"] if on == "measurement-sample" else report["labels_md5"]
    if current is not None and current.tags.get(same) == mine and f"site/{metric}" in current.tags:
        return current, float(current.tags[f"site/{metric}"]), f"@{stage.alias(name)} v{current.version} (same films)"
    return current, float(source[metric]), f"source model {report['source_model']} on the same films"


def run(p: Params, name: str) -> dict:
    f = stage.files(p, name)
    report = read_json(f["report"])
    run_ = tracking.find_run(p, "site_report_md5", file_md5(f["report"]))  # tasks.sites.runs tagged it
    if run_ is None or "servable_model_uri" not in run_.data.tags:
        raise StepError(f"no MLflow run recorded {f['report']}: rerun the site's adapt (`dvc repro -f "
                        f"{f['config'].parent}/dvc.yaml:adapt`)")
    metric = p.sites.metric
    current, value, against = incumbent(p, name, report)
    a, _, on = basis(report)
    promote, reason = decide(float(a[metric]), value, metric, p.sites.min_improvement, f"{against} ({on})")
    refused = floors(a, p.register.min_sensitivity, p.register.min_specificity, on)
    if refused:
        promote, reason = False, f"{refused} ({reason})"
    tags = {"site": name, "site_labels": str(report["labels"]), "site_labels_md5": report["labels_md5"],
            "site_query": report["query"], "source_model": report["source_model"], "site_basis": on,
            **({"site_measure_md5": report["measure_md5"]} if on == "measurement-sample" else {}),
            "decision": "promoted" if promote else "rejected", "reason": reason,
            **{f"site/{k}": str(a[k]) for k in ("roc_auc", "accuracy", "recall", "specificity", "balanced_accuracy")}}
    description = (f"Site {name}: adapted from {report['source_model']} on {report['labels']} labelled films "
                   f"(labels md5 {report['labels_md5']}, query {report['query']}). On the site ({on}): "
                   f"ROC-AUC {a['roc_auc']:.3f}, accuracy {a['accuracy']:.3f}, sensitivity {a['recall']:.3f}, "
                   f"specificity {a['specificity']:.3f}. {'Promoted to' if promote else 'Not promoted to'} "
                   f"@{stage.alias(name)}: {reason}.")
    version = registry.add_version(p, run_.data.tags["servable_model_uri"], tags=tags, description=description)
    if promote:  # a ChampionMoved here exits 1: another checkout moved the site's alias while this one decided
        registry.promote(p, version, current, stage.alias(name))
    out = {"site": name, "alias": stage.alias(name), "version": int(version.version), "promoted": promote,
           "reason": reason, "run_id": run_.info.run_id, "before": int(current.version) if current else None,
           "after": int(version.version) if promote else (int(current.version) if current else None)}
    write_json(f["registry"], out)
    log.info(f"site {name}: {registry.model_name(p)} v{version.version} "
             f"{'PROMOTED to @' + stage.alias(name) if promote else 'not promoted'}: {reason}")
    return out


if __name__ == "__main__":
    stage.main("site register", __doc__, run)
