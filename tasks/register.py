"""register: add the evaluated model to the MLflow Model Registry and move `@champion` only if it wins.

The gate compares the candidate with the current champion on the same test data (the
champion is re-scored when the test data changed), on `register.metric` with a minimum
improvement, and demands `register.min_sensitivity` / `min_specificity`. The alias move is
the last write, so a failure anywhere leaves the old champion in place. Writes `paths.registry`.
"""
from __future__ import annotations

import base64
import logging
import math
from pathlib import Path

import numpy as np

from tasks.cli import main
from tasks.core.config import Params, Register
from tasks.core.errors import StepError
from tasks.core.files import read_json, write_json
from tasks.measure.metrics import LOWER_IS_BETTER
from tasks.records import card, registry, tracking

log = logging.getLogger(__name__)
HEADLINE = ("roc_auc", "accuracy", "recall", "specificity")  # each version's test metrics as tags


def decide(candidate: dict, champion: dict | None, cfg: Register, interval: list | None = None) -> tuple[bool, str]:
    """(promote?, reason) from test metrics of the candidate and of the champion (None: no champion).

    `register.metric` is compared in its own direction (Brier, ECE: lower is better); a metric that is not
    a finite number on either side is a StepError, since NaN passes every comparison. With the candidate's
    95 % `interval` of the metric (over test patients), the reason says whether the champion's value lies
    inside it, that is whether the difference is within what the test split can tell apart."""
    metric = cfg.metric
    for who, values in (("candidate", candidate), ("champion", champion or {})):
        bad = [k for k in {metric, "recall", "specificity"} & set(values) if not math.isfinite(values[k])]
        if bad:
            raise StepError(f"the {who}'s test {', '.join(sorted(bad))} is not a finite number; "
                            f"check {'its evaluation' if who == 'candidate' else 'the champion'} before registering")
    floors = [("recall", cfg.min_sensitivity, "sensitivity"), ("specificity", cfg.min_specificity, "specificity")]
    for key, floor, label in floors:
        if candidate[key] < floor:
            return False, f"{label} {candidate[key]:.3f} is below the floor {floor} (register.min_{label})"
    if champion is None:
        return True, f"first model to clear the floors ({metric} {candidate[metric]:.4f})"
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    gain = sign * (candidate[metric] - champion[metric])  # > 0: the candidate is better
    noise = ""
    if interval:
        lo, hi = interval
        inside = lo <= champion[metric] <= hi
        noise = (f"; the champion's value is {'inside' if inside else 'outside'} the candidate's 95 % interval "
                 f"[{lo:.4f}, {hi:.4f}]: {'within' if inside else 'beyond'} the test split's noise")
    if gain < cfg.min_improvement:
        return False, (f"{metric} {candidate[metric]:.4f} vs champion {champion[metric]:.4f}: gain {gain:+.4f} is "
                       f"below register.min_improvement {cfg.min_improvement}{noise}")
    return True, f"{metric} {candidate[metric]:.4f} beats champion {champion[metric]:.4f} by {gain:+.4f}{noise}"


def rescore(model_uri: str, images: np.ndarray, labels: np.ndarray) -> dict:
    """Test metrics of a registered model on these images, through its own pyfunc (its own threshold)."""
    import pandas as pd

    from tasks.imaging.images import png_bytes
    from tasks.measure import metrics as M

    model = registry.load(model_uri)
    frame = pd.DataFrame({"image": [base64.b64encode(png_bytes(img)).decode() for img in images]})
    out = model.predict(frame)
    threshold = float(out.threshold.iloc[0])
    return {**M.at_threshold(labels, out.probability.to_numpy(), threshold),
            **M.threshold_free(labels, out.probability.to_numpy())}


def champion_metrics(p: Params, test: tuple, md5: str) -> tuple[object | None, dict | None, str]:
    """(champion version, its test metrics on today's test data, how they were obtained): the version's tags
    when they hold `register.metric` on the same test data, else the champion re-scored."""
    version = registry.champion(p)
    if version is None:
        return None, None, "no champion yet"
    if version.tags.get("test_md5") == md5 and f"test/{p.register.metric}" in version.tags:
        return version, {k.removeprefix("test/"): float(v) for k, v in version.tags.items()
                         if k.startswith("test/")}, "recorded on the same test data"
    images, labels = test
    return version, rescore(registry.champion_uri(p), images, labels.astype(int)), "re-scored on the new test data"


def test_md5(images: np.ndarray, labels: np.ndarray) -> str:
    """A hash of exactly the test images and labels, so 'the same test data' is checked, not assumed."""
    import hashlib

    return hashlib.md5(images.tobytes() + labels.astype(np.int8).tobytes()).hexdigest()


def describe(candidate: dict, promoted: bool, reason: str, champion, n_test: int) -> str:
    """The registry version's description: its test metrics and the gate's decision."""
    shown = ", ".join(f"{name} {candidate[key]:.4f}" for key, name in (
        ("roc_auc", "ROC-AUC"), ("accuracy", "accuracy"), ("recall", "sensitivity"), ("specificity", "specificity"))
        if key in candidate)
    against = f"champion v{champion.version}" if champion else "no champion"
    return (f"{'Promoted to @champion' if promoted else 'Not promoted'} against {against}: {reason}.\n\n"
            f"Test split ({n_test} images): {shown}.")


def run(p: Params) -> dict:
    from tasks.imaging.data import load_splits

    if not Path(p.paths.metrics).exists():
        raise StepError(f"{p.paths.metrics} is missing: run train and evaluate first (`dvc repro evaluate`)")
    metrics = read_json(p.paths.metrics)
    candidate = metrics["test"]
    if p.register.metric not in candidate:
        raise StepError(f"register.metric {p.register.metric!r} is not a test metric; choose from {sorted(candidate)}")
    try:
        run_id, model_uri = registry.evaluated_model(p)
    except LookupError as err:
        raise StepError(str(err)) from None
    test = load_splits(p.paths)["test"]  # read once: hashed, and re-scored by the champion if it changed
    md5 = test_md5(*test)
    champion, champ_metrics, how = champion_metrics(p, test, md5)
    promote, reason = decide(candidate, champ_metrics, p.register,
                             metrics.get("test_intervals", {}).get(p.register.metric))
    # the tags a reader filters the versions table on (the reason and every metric are in the description
    # and the run); the gate reads its metric back from them
    shown = {*HEADLINE, p.register.metric} & set(candidate)
    version = registry.add_version(p, model_uri, tags={
        "test_md5": md5, "decision": "promoted" if promote else "rejected",
        **{f"test/{k}": str(candidate[k]) for k in sorted(shown)}},
        description=describe(candidate, promote, reason, champion, len(test[1])))
    if promote:  # a ChampionMoved here exits 1: the flow's retry decides again against the new champion
        registry.promote(p, version, decided_against=champion)
    report = {"model_name": registry.model_name(p), "version": int(version.version), "promoted": promote,
              "reason": reason, "run_id": run_id, "model_uri": model_uri,
              "champion_before": int(champion.version) if champion else None, "champion_metrics_source": how,
              "champion_after": int(version.version) if promote else (int(champion.version) if champion else None),
              "metric": p.register.metric, "candidate": candidate.get(p.register.metric),
              "champion": champ_metrics.get(p.register.metric) if champ_metrics else None}
    write_json(p.paths.registry, report)
    card.write(p, report, tracking.run_tags(p))
    log.info(f"register: {report['model_name']} v{version.version} "
          f"{'PROMOTED to @champion' if promote else 'not promoted'}: {reason}")
    return report


if __name__ == "__main__":
    main("register", run)
