"""Every registered version carries its model card: written from the run's records (its numbers are
metrics.json's), logged on the version's run, linked from the version's description, printed by pneumonia-card."""
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.files import read_json
from tasks.records import card

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_the_registered_version_has_a_card_with_the_runs_own_numbers(registry):
    p, client, name = registry
    report = read_json(p.paths.registry)
    md, html = card.files(p)
    text = md.read_text()
    m, split = read_json(p.paths.metrics), read_json(p.paths.split_report)
    test, ci = m["test"], m["test_intervals"]
    for label, key in (("ROC-AUC", "roc_auc"), ("sensitivity", "recall"), ("specificity", "specificity"),
                       ("accuracy", "accuracy")):
        assert f"| {label} | {test[key]:.3f} ({ci[key][0]:.3f} to {ci[key][1]:.3f}) |" in text, label
    assert f"threshold {m['threshold']:.4f}" in text
    for s, r in split.items():
        assert f"| {s} | {r['images']} | {r['patients']} | {r['normal']} | {r['pneumonia']} |" in text
    assert f"# Model card: {name} version {report['version']}" in text
    assert "patients aged 1 to 5 years" in text and "Not** a stand-alone diagnosis" in text
    assert "No subgroup in this data" in text  # demo file names say no pneumonia kind
    assert "<table>" in html.read_text() and "<script" not in html.read_text()
    version = client.get_model_version(name, str(report["version"]))
    assert "Model card: " in version.description and \
        f"/runs/{report['run_id']}/artifacts/model_card/v{report['version']}" in version.description
    shown = subprocess.run([str(BIN / "pneumonia-card"), f"models:/{name}/{report['version']}"], capture_output=True,
                           text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == text  # the card on the version's run is the one the stage wrote
    client.delete_run(report["run_id"])
    gone = subprocess.run([str(BIN / "pneumonia-card"), f"models:/{name}/{report['version']}"], capture_output=True,
                          text=True)
    assert gone.returncode == 2 and len(gone.stderr.splitlines()) == 1
    assert f"version {report['version']} of {name}: its run {report['run_id']} is gone" in gone.stderr
