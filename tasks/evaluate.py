"""evaluate: calibrate and choose the operating point on validation, then measure on test once.

Writes `paths.headline` (a dozen metrics, declared under `metrics:` in dvc.yaml), `paths.metrics` (every
metric; `test_intervals`: the test split's 95 % intervals over patients; `subgroups`: the same per subgroup,
tasks.measure.subgroups), `paths.predictions`, curve CSVs under `paths.curves` (for `dvc plots`), figures under
`paths.figures`, the serving config `<model_dir>/serving.json` (preprocessing, calibration, threshold) and the
out-of-distribution detector `<model_dir>/ood.npz` (tasks.measure.ood, fitted on train, thresholded on validation) that
the packaged model carries. `evaluation` measures (writes nothing), `write` writes the files, `report`
(tasks.measure.evaluation_report) prints; the package stage turns the model and its serving config into the servable
pyfunc, and tasks.recorders logs all of it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.cli import main
from tasks.core.config import Params
from tasks.core.files import atomic, model_path, ood_path, reference_path, serving_config, write_json
from tasks.measure import intervals, ood, plots, reference, subgroups
from tasks.measure import metrics as M
from tasks.measure.evaluation_figures import figures, write_curves
from tasks.measure.evaluation_report import report
from tasks.scoring.contract import ServingConfig

log = logging.getLogger(__name__)


def score(y, prob, threshold: float, prevalence: float) -> dict:
    """Every metric of one split at `threshold`, plus the threshold-free ones and the deployment view."""
    m = {**M.at_threshold(y, prob, threshold), **M.threshold_free(y, prob)}
    deployed = M.at_prevalence(m["recall"], m["specificity"], prevalence)
    m.update({f"deployed_{k}": v for k, v in deployed.items()})
    return m


def stress_test(model, images, y, op: dict, p: Params, clean: dict) -> dict:
    """Validation re-scored under each simulated acquisition shift, with the drop from clean validation."""
    from tasks.imaging.stress import perturbed
    from tasks.measure.inference import raw_scores

    out = {}
    for name, shifted in perturbed(images, p.evaluate.stress).items():
        raw = raw_scores(model, shifted, p.train.normalize, p.evaluate.tta)
        m = score(y, M.apply_temperature(raw, op["temperature"], op["bias"]), op["threshold"], p.evaluate.prevalence)
        out[name] = {k: m[k] for k in ("roc_auc", "accuracy", "recall", "specificity", "balanced_accuracy")}
        out[name].update({f"drop_{k}": clean[k] - m[k] for k in ("roc_auc", "accuracy", "balanced_accuracy")})
    return out


@dataclass
class Evaluation:
    """What evaluate measured. `metrics` is the content of `paths.metrics`; the rest, per split ("val",
    "test"), is what the predictions, curves and figures are drawn from."""
    metrics: dict
    y: dict
    raw: dict
    prob: dict
    op: dict  # calibration and the served threshold
    ood: dict  # the fitted out-of-distribution detector (tasks.measure.ood)
    ood_scores: dict  # its score per image of val, test and each generated kind
    reference: dict  # what monitoring compares a site's films with (tasks.measure.reference)


def evaluation(p: Params, model, splits: dict) -> Evaluation:
    """Calibrate and choose the operating point on validation, score test once, stress-test validation.
    Writes nothing."""
    from tasks.measure.inference import raw_scores

    y = {s: splits[s][1].astype(int) for s in ("val", "test")}

    def score_with(m, images):
        return raw_scores(m, images, p.train.normalize, p.evaluate.tta)

    raw = {s: score_with(model, splits[s][0]) for s in ("val", "test")}
    op = M.operating_point(y["val"], raw["val"], p.evaluate)  # on validation only

    def calibrate(scores):
        return M.apply_temperature(scores, op["temperature"], op["bias"])

    prob = {s: calibrate(raw[s]) for s in raw}
    result = {s: score(y[s], prob[s], op["threshold"], p.evaluate.prevalence) for s in ("val", "test")}
    result["test"]["ece_uncalibrated"] = M.ece(y["test"], raw["test"])
    result["stress"] = stress_test(model, splits["val"][0], y["val"], op, p, result["val"])
    o = p.evaluate.ood
    fitted, ood_scores, result["ood"] = ood.measure(model, splits, p.train.normalize, o.pass_rate, o.generated, o.seed)
    result.update(op, threshold_method=p.evaluate.threshold, calibration=p.evaluate.calibrate)
    result["test_intervals"] = test_intervals(y["test"], prob["test"], op["threshold"], p.paths.split,
                                              p.evaluate.bootstrap)
    test = pd.read_csv(p.paths.split).query("split == 'test'")
    result["subgroups"] = subgroups.table(test.path.to_numpy(), y["test"], prob["test"], op["threshold"],
                                          test.patient_id.to_numpy(), p.evaluate.bootstrap)
    return Evaluation(result, y, raw, prob, op, fitted, ood_scores,
                      monitoring_reference(p, model, splits["val"][0], prob["val"], ood_scores["val"], op["threshold"]))


def test_intervals(y, prob, threshold: float, split_file: str, resamples: int) -> dict:
    """95 % intervals of the test split's accuracy, sensitivity, specificity and AUC from `resamples` bootstrap
    resamples of its patients (tasks.measure.intervals), with the number of films and patients; {} when 0."""
    if not resamples:
        return {}
    frame = pd.read_csv(split_file)
    patients = frame.patient_id[frame.split == "test"].to_numpy()
    m = intervals.with_intervals(y, prob, threshold, patients, resamples)
    return {**{k: m[f"{k}_ci"] for k in intervals.SHOWN}, "films": m["films"], "patients": m["patients"]}


def monitoring_reference(p: Params, model, images, prob, ood_score, threshold: float) -> dict:
    """tasks.measure.reference from a seeded sample of validation films: features by the served model's own pass."""
    from tasks.measure.inference import scores_and_features

    keep = reference.sample(len(images), p.evaluate.reference.films, p.evaluate.reference.seed)
    features = scores_and_features(model, images[keep], p.train.normalize)[1]
    return reference.build(features, prob[keep], ood_score[keep], threshold)


HEADLINE = {"test": ("accuracy", "roc_auc", "recall", "specificity", "specificity_at_95_sensitivity", "pr_auc",
                     "brier", "ece"), "val": ("accuracy", "roc_auc")}


def headline(metrics: dict) -> dict:
    """The dozen numbers a user compares runs on (`paths.headline`, what `dvc exp show` and `dvc metrics diff`
    list); every one of them and the rest stay in `paths.metrics`."""
    out = {split: {k: metrics[split][k] for k in keys} for split, keys in HEADLINE.items()}
    out["threshold"] = metrics["threshold"]
    out["stress_worst_drop_balanced_accuracy"] = max(m["drop_balanced_accuracy"] for m in metrics["stress"].values())
    out["ood_test_pass"] = metrics["ood"]["test_pass"]
    return out


def write(p: Params, model, splits: dict, ev: Evaluation) -> None:
    """The files of an evaluation: metrics (all, and the headline), predictions, curves, figures and the
    serving config."""
    from tasks.imaging.preprocess import normalize

    write_json(p.paths.metrics, ev.metrics)
    write_json(p.paths.headline, headline(ev.metrics))
    frame = pd.read_csv(p.paths.split)
    rows = [pd.DataFrame({"split": s, "path": frame.path[frame.split == s].to_numpy(), "label": ev.y[s],
                          "probability": ev.prob[s], "prediction": (ev.prob[s] >= ev.op["threshold"]).astype(int),
                          "ood_score": ev.ood_scores[s]})
            for s in ev.prob]
    with atomic(p.paths.predictions) as tmp:
        pd.concat(rows).to_csv(tmp, index=False)
    write_curves(ev.y["test"], ev.prob["test"], ev.prob["test"] >= ev.op["threshold"], p.paths.curves)
    figures(p, model, normalize(splits["test"][0], p.train.normalize), ev.y["test"], ev.prob["test"],
            ev.raw["test"], ev.metrics["test"], (ev.y["val"], ev.prob["val"]), ev.prob["test"] >= ev.op["threshold"])
    plots.ood_scores(ev.ood_scores, p.evaluate.ood.pass_rate, Path(p.paths.figures) / "ood_scores.png")
    ServingConfig(image_size=p.data.image_size, normalize=p.train.normalize, tta=p.evaluate.tta,
                  **ev.op).save(serving_config(p))
    ood.save(ood_path(p), ev.ood)
    reference.save(reference_path(p), ev.reference)


def run(p: Params) -> dict:
    import keras

    from tasks.imaging.data import load_splits

    model = keras.saving.load_model(model_path(p), compile=False, safe_mode=True)
    splits = load_splits(p.paths)
    ev = evaluation(p, model, splits)
    write(p, model, splits, ev)
    report(p, ev)
    return ev.metrics


if __name__ == "__main__":
    main("evaluate", run)
