"""The model card of a registered version, written by the register stage from the run's own records (metrics,
ingest and split reports, params.yaml, the registry's decision): nothing typed by hand twice.

Its headings follow the CHAI Applied Model Card (release information, summary, uses and directions, warnings,
trust ingredients, key metrics, resources; docs/model_card.md maps them to TRIPOD+AI's items). Markdown and
HTML at `paths.model_card` (.md, .html); tasks.recorders logs both on the version's run (`model_card/v<N>/`) and
links them from the version's description; `pneumonia-card URI` (tasks/records/show_card.py) prints a version's card.
"""
from __future__ import annotations

from pathlib import Path

from tasks.core.config import Params
from tasks.core.files import read_json

ARTIFACT = "model_card"  # the folder of the version's run that holds each version's card


def artifact_dir(version) -> str:
    """Where a version's card lives on its run: one folder per version, since a run re-registered (register
    rerun on the same model) backs several versions."""
    return f"{ARTIFACT}/v{version}"
THRESHOLDS = {"target_sensitivity": "the most specific threshold reaching {target:.0%} sensitivity on validation",
              "youden": "Youden's J (sensitivity + specificity - 1) at its maximum on validation"}


def files(p: Params) -> tuple[Path, Path]:
    """(markdown, html) of the card of the workspace's current version: `paths.model_card` .md and .html."""
    return Path(f"{p.paths.model_card}.md"), Path(f"{p.paths.model_card}.html")


def _ci(value, interval=None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text + (f" ({interval[0]:.{digits}f} to {interval[1]:.{digits}f})" if interval else "")


def markdown(p: Params, report: dict, data: dict) -> str:
    """The card of the version `report` (register's decision record) from the workspace's records and `data`
    (tracking.run_tags: the data's md5 and the code's commit)."""
    from tasks.imaging.intended_use import describe
    from tasks.measure import subgroups

    m, ingest, split = read_json(p.paths.metrics), read_json(p.paths.ingest_report), read_json(p.paths.split_report)
    test, ci = m["test"], m.get("test_intervals", {})
    name, version = report["model_name"], report["version"]
    rule = THRESHOLDS.get(m["threshold_method"], m["threshold_method"]).format(target=p.evaluate.target_sensitivity)
    worst = max(m["stress"].items(), key=lambda kv: kv[1]["drop_balanced_accuracy"])
    rows = subgroups.markdown(m.get("subgroups", []))
    kinds = {r["group"]: r for r in m.get("subgroups", [])}
    viral = kinds.get("viral", {}).get("sensitivity")
    lines = [
        f"# Model card: {name} version {version}",
        "",
        "Written by the register stage from this version's own records (`metrics.json`, the ingest and split "
        "reports, `params.yaml`, the registry's decision); headings of the CHAI Applied Model Card.",
        "",
        "## Release information",
        "",
        "| | |", "|---|---|",
        f"| model | `models:/{name}/{version}`, MLflow run `{report['run_id']}` |",
        f"| registry decision | {'promoted to @champion' if report['promoted'] else 'not promoted'}: "
        f"{report['reason']} |",
        f"| code | git commit `{data['git_commit']}` |",
        f"| data | source `{data['data_source']}`, {data['image_size']} px; pixels md5 `{data['data_md5']}`, split "
        f"md5 `{data['split_md5']}` |",
        "",
        "## Summary",
        "",
        f"A convolutional network (`{data['model']}`) that gives the calibrated probability of pneumonia in a "
        "frontal chest radiograph, a label at a fixed operating point, and a flag for images unlike the films it "
        "learned. It is a second reader for paediatric frontal chest films.",
        "",
        "## Uses and directions",
        "",
        "- **Intended use**: to help a radiologist or clinician prioritise and read paediatric frontal chest "
        "films, as a second reader beside the film. **Not** a stand-alone diagnosis, and **not** for ruling "
        "pneumonia out: the operating point trades specificity for sensitivity.",
        "- **Intended users**: radiologists, paediatricians and emergency clinicians; ML engineers who run it.",
        f"- **Target population and acquisition**: {describe(p.intended_use)}. The reading room "
        "(`pneumonia-pacs`) refuses other films on their DICOM header before scoring, and the out-of-distribution "
        "flag refuses images unlike the training films.",
        "- **Out of scope**: adults, lateral views, other body parts and modalities, colour or multi-frame images, "
        "follow-up of a known pneumonia, and any population or hospital this card does not report.",
        "",
        "## Warnings",
        "",
        "- Acquisition shifts cost accuracy: the stress test's largest drop is "
        f"{worst[1]['drop_balanced_accuracy']:.1%} balanced accuracy under `{worst[0]}` (validation re-scored; "
        "table below). A new hospital's films differ: watch them with `pneumonia-monitor` and adapt with "
        "`pneumonia-site` before relying on the label.",
        f"- Calibrated ({m['calibration']}) on validation films of the training source; positive and negative "
        f"predictive values assume a prevalence of {p.evaluate.prevalence:.0%}.",
        "- Populations never shown: adults, other countries and vendors than the training source, DICOM-only "
        "archives; subgroups by sex, age band, view and manufacturer are not measured yet (no such data).",
        *([f"- Viral pneumonia: sensitivity {_ci(*cell_ci(viral))} on the test split (subgroups below)."]
          if viral else []),
        "",
        "## Trust ingredients",
        "",
        "### Development data",
        "",
        f"Source `{ingest['source']}`: {ingest['images']} films, "
        + ", ".join(f"{n} {c}" for c, n in ingest["per_class"].items()) + ".",
        "",
        "| split | films | patients | normal | pneumonia |", "|---|---|---|---|---|",
        *[f"| {s} | {r['images']} | {r['patients']} | {r['normal']} | {r['pneumonia']} |" for s, r in split.items()],
        "",
        "### Evaluation on the test split (scored once, 95 % intervals over patients)",
        "",
        "| metric | value |", "|---|---|",
        f"| ROC-AUC | {_ci(test['roc_auc'], ci.get('roc_auc'))} |",
        f"| sensitivity | {_ci(test['recall'], ci.get('recall'))} |",
        f"| specificity | {_ci(test['specificity'], ci.get('specificity'))} |",
        f"| accuracy | {_ci(test['accuracy'], ci.get('accuracy'))} |",
        f"| PR-AUC | {_ci(test['pr_auc'])} |",
        f"| Brier score | {_ci(test['brier'])} |",
        f"| expected calibration error | {_ci(test['ece'])} (before calibration {_ci(test['ece_uncalibrated'])}) |",
        "",
        f"Operating point: threshold {m['threshold']:.4f} on the calibrated probability, chosen as {rule}. "
        f"Test films: {ci.get('films', test['tp'] + test['tn'] + test['fp'] + test['fn'])}, patients: "
        f"{ci.get('patients', 'n/a')}.",
        "",
        "### Stress test (validation re-scored under simulated acquisition shifts)",
        "",
        "| shift | ROC-AUC | sensitivity | specificity | balanced accuracy drop |", "|---|---|---|---|---|",
        *[f"| {s} | {r['roc_auc']:.3f} | {r['recall']:.3f} | {r['specificity']:.3f} | "
          f"{r['drop_balanced_accuracy']:.1%} |" for s, r in m["stress"].items()],
        "",
        "### Out-of-distribution flag",
        "",
        f"Passes {m['ood']['val_pass']:.1%} of validation and {m['ood']['test_pass']:.1%} of test films; flags "
        + ", ".join(f"{k.removeprefix('flagged_').replace('_', ' ')} {v:.0%}" for k, v in m["ood"].items()
                    if k.startswith("flagged_")) + " of generated non-X-ray images.",
        "",
        "### Results by subgroup (fairlearn MetricFrame, 95 % intervals over patients)",
        "",
        rows,
        "",
        "## Key metrics",
        "",
        f"- Usefulness: ROC-AUC {_ci(test['roc_auc'], ci.get('roc_auc'))} on the test split.",
        f"- Safety: sensitivity {_ci(test['recall'], ci.get('recall'))} at the served threshold; "
        f"{m['ood']['test_pass']:.1%} of test films pass the out-of-distribution flag.",
        "- Fairness: " + (", ".join(f"sensitivity {g} {_ci(*cell_ci(r['sensitivity']))}" for g, r in kinds.items()
                                   if r.get("sensitivity")) or "no subgroup in this data") + ".",
        "",
        "## Resources",
        "",
        "The project's README (the manual), docs/model_card.md (this card's headings), docs/pacs.md (the "
        "intended-use gate), docs/sites.md (adapting to a hospital), docs/monitoring.md (drift).",
    ]
    return "\n".join(lines) + "\n"


def site_markdown(p: Params, name: str, report: dict, decision: dict, model: str) -> str:
    """The card of a site's version (`pneumonia-site adapt`'s gate): the site, its labels and query, the source
    model, and the site before and after adaptation with 95 % intervals over patients, from the site's
    `report.json` and the gate's decision."""
    from tasks.imaging.intended_use import describe
    from tasks.measure import intervals, subgroups

    measured = report.get("measured")
    lines = [
        f"# Model card: {model} version {decision['version']} (site {name})",
        "",
        "Written by the site's register stage from the site's `report.json` and the gate's decision; headings of "
        "the CHAI Applied Model Card. The source model's own card holds its development data and test results.",
        "",
        "## Release information",
        "",
        "| | |", "|---|---|",
        f"| model | `models:/{model}/{decision['version']}`, MLflow run `{decision['run_id']}` |",
        f"| registry decision | {'promoted to' if decision['promoted'] else 'not promoted to'} @{decision['alias']}: "
        f"{decision['reason']} |",
        f"| adapted from | `{report['source_model']}` |",
        f"| labels | {report['labels']} films ({report['normal']} NORMAL, {report['pneumonia']} PNEUMONIA), query "
        f"`{report['query']}`, md5 `{report['labels_md5']}` |",
        "",
        "## Summary",
        "",
        f"The source model fine-tuned on site {name}'s labelled films, with its threshold fitted on the site's "
        f"{'measurement sample' if measured else 'labelled films'}: served to that site only, as "
        f"`@{decision['alias']}`.",
        "",
        "## Uses and directions",
        "",
        f"- **Intended use**: as the source model's (a second reader for paediatric frontal chest films; not a "
        f"stand-alone diagnosis, not for ruling out), at site {name} only.",
        f"- **Target population and acquisition**: {describe(p.intended_use)}; site {name}'s acquisition.",
        "",
        "## Warnings",
        "",
        f"- Every site number comes from {report['labels']} labelled films"
        + (f" and a {measured['films']}-film measurement sample" if measured else "")
        + ": the intervals below are wide, and a later change of the site's films needs `pneumonia-monitor`.",
        "",
        "## Trust ingredients: the site before and after adaptation (95 % intervals over patients)",
        "",
    ]
    if measured:
        lines += [f"On the measurement sample ({measured['films']} films drawn at random, never trained on):", "",
                  intervals.table({"source model": measured["before"], "adapted": measured["after"]}), "",
                  "By subgroup, adapted (fairlearn MetricFrame):", "",
                  subgroups.markdown((measured.get("subgroups") or {}).get("after", [])), ""]
    lines += [f"On the labelled films ({report['folds']}-fold patient-grouped cross-fitting):", "",
              intervals.table({"source model": report["before"], "adapted (cross-fitted)": report["after"]}), "",
              "## Resources", "", "docs/sites.md (how a site is adapted and measured), docs/model_card.md."]
    return "\n".join(lines) + "\n"


def cell_ci(cell) -> tuple:
    """A subgroup cell [value, low, high] as _ci's (value, interval) arguments."""
    value, low, high = cell
    return value, (None if low is None else [low, high])


def html(text: str, title: str) -> str:
    """The card as one self-contained HTML page (no script, no external style)."""
    import markdown as md

    body = md.markdown(text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.25em .6em}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>" \
           f"<body>{body}</body></html>\n"


def write(p: Params, report: dict, data: dict) -> tuple[Path, Path]:
    """Write the card of `report`'s version, markdown and HTML, atomically; returns their paths."""
    return save(markdown(p, report, data), files(p), f"{report['model_name']} v{report['version']}")


def save(text: str, out: tuple[Path, Path], title: str) -> tuple[Path, Path]:
    """`text` as markdown and HTML at `out`, each written atomically."""
    from tasks.core.files import atomic

    for path, content in zip(out, (text, html(text, title))):
        with atomic(path) as tmp:
            tmp.write_text(content)
    return out


def log(p: Params, model: str, version, run_id: str, out: tuple[Path, Path]) -> None:
    """Log the card `out` on the version's run (under artifact_dir(version)) and link it from the end of the
    version's description, what the registry UI shows first."""
    import mlflow

    from tasks.records.tracking import VIEW, configure, run_link

    configure(p)
    client = mlflow.MlflowClient()
    folder = artifact_dir(version)
    for path in out:
        client.log_artifact(run_id, str(path), folder)
    page = run_link(p, client.get_run(run_id).info.experiment_id, run_id).split("?")[0]
    current = client.get_model_version(model, str(version))
    client.update_model_version(model, str(version), description=(
        f"{current.description}\n\nModel card: {page}/artifacts/{folder}?{VIEW} (`{folder}/model_card.md` and "
        f"`.html` of the run; `pneumonia-card models:/{model}/{version}` prints it)."))
