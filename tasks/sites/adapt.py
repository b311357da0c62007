"""adapt (a site's DVC stage): fine-tune the pinned source model on the site's labelled films.

    python -m tasks.sites.adapt NAME      # what `pneumonia-site adapt` runs through `dvc repro`

Reads the site's `site.yaml`, its validated `labels.csv`, the films under its images folder and the source
training split (`paths.pixels`, `paths.split`). Writes under `<paths.sites>/NAME/`: `model/` (the adapted
Keras model, its serving config with the site's calibration and threshold, and the out-of-distribution
detector refitted on the adapted features), `package/` (the servable MLflow pyfunc, checked to reproduce
the model's scores to 1e-5), `predictions.csv` (each labelled film's cross-fitted score and decision),
`site_scores.png` and `report.json`: the source model and the adapted one on the labelled films, every
number from films the weights and the threshold never used, with 95 % intervals over patients.
"""
from __future__ import annotations

import logging
import sys
import time

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.core.files import atomic, file_md5, write_json
from tasks.imaging import films as film_folder
from tasks.measure import intervals, subgroups
from tasks.recorders import site as runs
from tasks.records import registry, tracking
from tasks.scoring.contract import ServingConfig
from tasks.sites import films, finetune, stage
from tasks.sites.package import CHECKED, check_package, refit_ood, save, site_reference

log = logging.getLogger(__name__)


def source(uri: str):
    """(keras model, serving config, pyfunc) of the source model at a registry URI."""
    try:
        pyfunc = registry.load(uri)
    except LookupError as err:
        raise StepError(f"source model {uri} cannot be loaded ({str(err).splitlines()[0]}); run "
                        "`pneumonia-site query` again to pin the current champion") from None
    inner = pyfunc.unwrap_python_model()
    return inner.model, ServingConfig.of(inner.config), pyfunc


def source_data(p: Params, uri: str) -> dict:
    """The source training split, checked to be the data the source model was trained on."""
    from tasks.imaging.data import load_splits

    version = registry.registered(uri)  # None for a model given by its path: nothing to check against
    trained_on = version.tags.get("data_md5") if version else None
    if trained_on and trained_on != file_md5(p.paths.pixels):
        raise StepError(f"{p.paths.pixels} is not the data {uri} was trained on: check out that data "
                        "(`dvc checkout`, or rerun the pipeline on it) before adapting")
    return load_splits(p.paths)


def clone(model):
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def adapt(p: Params, name: str) -> dict:
    """Cross-fit, adapt, measure and save one site's model; returns the report."""
    from tasks.imaging.images import png_bytes
    from tasks.measure import plots
    from tasks.measure.inference import raw_scores

    s, cfg = stage.read(p, name), p.sites
    f = stage.files(p, name)
    everything = films.read_labels(f["labels"], s["images"])
    labels, held = worklist_and_sample(everything, films.read_measure(f["measure"]), cfg.folds, f["labels"])
    y = labels.label.to_numpy()
    start = time.perf_counter()
    base, serving, _ = source(s["source_model"])
    splits = source_data(p, s["source_model"])
    x = film_folder.load(s["images"], labels.path.tolist(), serving.image_size, progress=sys.stderr.isatty())
    mode, tta = serving.normalize, serving.tta
    before_prob = serving.calibrate(raw_scores(base, x, mode, tta))
    before = intervals.with_intervals(y, before_prob, serving.threshold, labels.patient_id, cfg.bootstrap, cfg.seed)
    oof, folds = finetune.crossfit(lambda: clone(base), (x, y), labels.patient_id.to_numpy(), splits["train"], cfg,
                                   p.train, serving, cfg.seed, log.info)
    point = finetune.site_point(p)  # the pipeline's calibration and threshold method, at the site's target
    prob, threshold = finetune.nested(y, oof, folds, point)
    after = intervals.with_intervals(y, prob, threshold, labels.patient_id, cfg.bootstrap, cfg.seed)
    log.info(f"site: adapting the served model on all {len(y)} labelled films")
    model = finetune.fine_tune(clone(base), (x, y), splits["train"], cfg, p.train, mode, cfg.seed)
    op, fitted_on, measured, sample = served(s, held, base, model, serving, (y, oof), point, cfg)
    evidence = pd.concat([pd.DataFrame({"part": "worklist", "patient_id": labels.patient_id.astype(str), "label": y,
                                        "source": before_prob, "candidate": prob}), sample], ignore_index=True)
    detector = refit_ood(model, splits, mode, p.evaluate.ood.pass_rate)
    adapted = serving.with_point(op)
    ref = site_reference(p, model, adapted, detector, s["images"], set(everything.path))
    package = save(p, name, model, adapted, detector, ref, png_bytes(x[0]))
    expected = adapted.calibrate(raw_scores(model, x[:CHECKED], mode, tta))
    gap = check_package(package, x[:CHECKED], expected)
    if not gap <= 1e-5:
        raise StepError(f"the site package scores {gap:.2e} away from the adapted model: not kept")
    pd.DataFrame({"path": labels.path, "label": y, "fold": folds, "probability": prob, "threshold": threshold,
                  "prediction": (prob >= threshold).astype(int)}).to_csv(f["predictions"], index=False)
    with atomic(f["evidence"]) as tmp:  # every labelled film's two scores: what the site gate decides on
        evidence.to_csv(tmp, index=False)
    plots.score_shift(y, before_prob, y, prob,
                      float(np.mean(threshold)), f["figure"], names=("source model", "adapted, cross-fitted"))
    report = {"site": name, "source_model": s["source_model"], "labels": int(len(y)),
              "labels_md5": file_md5(f["labels"]), "films_md5": films_md5(labels.sha256),
              "normal": int((y == 0).sum()), "pneumonia": int(y.sum()),
              "folds": int(folds.max() + 1), "query": read_query(f), "steps": cfg.steps,
              "learning_rate": cfg.learning_rate, "seconds": round(time.perf_counter() - start, 1),
              "before": before, "after": after, "served": op, "fitted_on": fitted_on, "package_gap": gap,
              "measured": measured,
              "measure_md5": file_md5(f["measure"]) if f["measure"].exists() else None}
    write_json(f["report"], report)
    log.info(f"site {name}: {len(y)} labelled films; source model vs adapted (cross-fitted, 95 % intervals):\n"
             + intervals.table({"source model": before, "adapted": after}))
    if measured:
        log.info(f"site {name}: the measurement sample ({measured['films']} films never trained on; served "
                 f"operating point fitted on the {fitted_on}, nested when that is the sample):\n"
                 + intervals.table({"source model": measured["before"], "adapted": measured["after"]}))
    return report


def worklist_and_sample(everything: pd.DataFrame, sample: set[str], folds: int, file) -> tuple[pd.DataFrame,
                                                                                            pd.DataFrame]:
    """(the labelled films to adapt on, the labelled films of the measurement sample and of its patients);
    StepError naming `file` when the films to adapt on hold fewer than `folds` patients of a class, which
    cross-fitting needs. `pneumonia-site adapt` checks this before it writes anything of the site."""
    in_sample = everything.path.isin(sample) | everything.patient_id.astype(str).isin(
        set(map(str, films.patients(sorted(sample)))))
    labels, held = everything[~in_sample].reset_index(drop=True), everything[in_sample].reset_index(drop=True)
    y = labels.label.to_numpy()
    normal, sick = finetune.class_patients(labels.patient_id.to_numpy(), y)
    if min(normal, sick) < folds:
        raise StepError(f"{file}: {int((y == 0).sum())} NORMAL films of {normal} patient(s) and {int(y.sum())} "
                        f"PNEUMONIA films of {sick} to adapt on (the measurement sample's aside); label films of at "
                        f"least {folds} patients of each class (sites.folds) so each fold can be measured")
    return labels, held


def served(s: dict, held: pd.DataFrame, base, model, serving: ServingConfig, worklist: tuple, point, cfg):
    """(served calibration and threshold, what it was fitted on, the measurement-sample numbers or None, the
    sample's evidence for the gate: part, patient_id, label, source and candidate probability per film): the
    adapted model scores the labelled films of the measurement sample and `finetune.served_point` chooses, with
    `point` (the evaluate section at the site's target, finetune.site_point);
    the source model is measured there at its own threshold (what the site has without adapting)."""
    from tasks.measure import metrics as M
    from tasks.measure.inference import raw_scores

    y = held.label.to_numpy()
    if len(np.unique(y)) < 2:
        if len(held):
            log.warning(f"site: the {len(held)} labelled films of the measurement sample hold one class only: "
                        "the operating point comes from the worklist's cross-fitted scores")
        return M.operating_point(*worklist, point), "worklist", None, pd.DataFrame()
    x = film_folder.load(s["images"], held.path.tolist(), serving.image_size)
    mode, tta = serving.normalize, serving.tta
    source = serving.calibrate(raw_scores(base, x, mode, tta))
    patients = held.patient_id.to_numpy()
    op, fitted_on, prob, threshold = finetune.served_point(worklist, (y, raw_scores(model, x, mode, tta)), patients,
                                                           cfg.folds, point, cfg.seed)
    if fitted_on == "worklist":
        log.warning(f"site: the measurement sample holds fewer than {cfg.folds} patients of a class: the operating "
                    "point comes from the worklist's cross-fitted scores")
    sample = pd.DataFrame({"part": "sample", "patient_id": patients.astype(str), "label": y, "source": source,
                           "candidate": prob})
    paths = held.path.to_numpy()
    return op, fitted_on, {
        "films": int(len(y)), "normal": int((y == 0).sum()), "pneumonia": int(y.sum()),
        "before": intervals.with_intervals(y, source, serving.threshold, patients, cfg.bootstrap, cfg.seed),
        "after": intervals.with_intervals(y, prob, threshold, patients, cfg.bootstrap, cfg.seed),
        "subgroups": {"before": subgroups.table(paths, y, source, serving.threshold, patients, cfg.bootstrap,
                                                cfg.seed),
                      "after": subgroups.table(paths, y, prob, threshold, patients, cfg.bootstrap, cfg.seed)}}, sample


def films_md5(digests) -> str:
    """One hash of the labelled films' contents (their sha256s, in order): the images the model was adapted on."""
    import hashlib

    return hashlib.md5(" ".join(digests).encode()).hexdigest()


def read_query(f: dict) -> str:
    """The strategy the worklist was drawn with (`labels` when the films came from elsewhere)."""
    if not f["worklist"].exists():
        return "none"
    return ",".join(sorted(set(pd.read_csv(f["worklist"]).strategy.astype(str))))


def run(p: Params, name: str) -> dict:
    """Adapt, then record the run in MLflow (the site gate finds it by the report's md5)."""
    tracking.configure(p)
    report = adapt(p, name)
    runs.record_site(p, name, report, stage.files(p, name))
    return report


if __name__ == "__main__":
    from tasks.core.native import import_tensorflow

    import_tensorflow()  # its start-up notices kept out of `pneumonia-site adapt`'s output
    stage.main("site adapt", __doc__, run)
