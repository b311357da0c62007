"""register (a site's DVC stage): add the site model to the registry and move `@site-<name>` only on a win.

    python -m tasks.sites.gate NAME      # what `pneumonia-site adapt` runs after adapt, through `dvc repro`

Against the source model (the champion it was adapted from, which never saw the site's films), the gate
decides on every labelled film with its uncertainty (`paired`): the ROC-AUC difference between the candidate
and the source model on the worklist (cross-fitted: films neither its weights nor its threshold saw) and the
measurement sample together (`evidence.csv` of adapt), with a 95 % interval over `sites.bootstrap` resamples
of whole patients; the candidate is refused when it is worse beyond that interval or worse by more than
`sites.margin`, and kept otherwise (a site model also brings the site's own calibration and threshold). One number on a
50-film sample, whose interval is about +-0.03, once threw away a model 4.5 points better on films it never saw.
Against an incumbent `@site-<name>` version measured on the same films (same labels file, or same measurement
sample), the candidate's value of `sites.metric` (on the sample when it holds both classes, else cross-fitted)
must beat that version's own by `sites.min_improvement`. Its sensitivity and specificity on those films must also clear
`register.min_sensitivity` and `min_specificity`, the champion's floors. `@champion` is never touched.
Writes the site's `registry.json`.
"""
from __future__ import annotations

import logging

from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.core.files import file_md5, read_json, write_json
from tasks.records import card, registry, tracking
from tasks.sites import stage

log = logging.getLogger(__name__)


def floors(after: dict, min_sensitivity: float, min_specificity: float, basis: str = "cross-fitted") -> str | None:
    """Why the candidate's operating point is not servable (`register.min_*` floors), or None.

    A few dozen labels can raise the ranking while the threshold they give misses (measured: 25 labels, AUC
    0.992 but sensitivity 76 %, docs/lab/sites.md), so a win on the metric alone does not promote."""
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


def paired(evidence, margin: float, n: int, seed: int) -> tuple[bool, str]:
    """(promote, why) from every labelled film's source and candidate probabilities (a frame with label,
    patient_id, source, candidate): the ROC-AUC difference with its 95 % interval of the paired patient
    bootstrap. Refused when the candidate is worse beyond the interval, or worse by more than `margin`; kept
    otherwise (better, or not shown worse: it also brings the site's own calibration and threshold)."""
    from tasks.measure.intervals import paired_auc_difference

    d = paired_auc_difference(evidence.label, evidence.candidate, evidence.source, evidence.patient_id, n, seed)
    said = (f"ROC-AUC {d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] against the source model on "
            f"{d['films']} labelled films of {d['patients']} patients (worklist cross-fitted and measurement sample, "
            "95 % interval over patients)")
    if d["high"] < 0:
        return False, f"{said}: worse than the source model beyond the interval"
    if d["difference"] < -margin:
        return False, f"{said}: worse by more than sites.margin {margin}"
    verdict = "better beyond the interval" if d["low"] > 0 else f"not worse beyond the interval (sites.margin {margin})"
    return True, f"{said}: {verdict}"


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
    run_ = tracking.find_run(p, "site_report_md5", file_md5(f["report"]))  # tasks.recorders.site tagged it
    if run_ is None or "servable_model_uri" not in run_.data.tags:
        raise StepError(f"no MLflow run recorded {f['report']}: rerun the site's adapt (`dvc repro -f "
                        f"{f['config'].parent}/dvc.yaml:adapt`)")
    metric = p.sites.metric
    current, value, against = incumbent(p, name, report)
    a, _, on = basis(report)
    if against.startswith("source model") and metric == "roc_auc" and f["evidence"].exists():
        import pandas as pd

        promote, reason = paired(pd.read_csv(f["evidence"]), p.sites.margin, p.sites.bootstrap, p.sites.seed)
    else:
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
    written = card.save(card.site_markdown(p, name, report, out, registry.model_name(p)),
                        (f["card"], f["card_html"]), f"{registry.model_name(p)} v{version.version}")
    card.log(p, registry.model_name(p), version.version, out["run_id"], written)
    log.info(f"site {name}: {registry.model_name(p)} v{version.version} "
             f"{'PROMOTED to @' + stage.alias(name) if promote else 'not promoted'}: {reason}")
    return out


if __name__ == "__main__":
    stage.main("site register", __doc__, run)
