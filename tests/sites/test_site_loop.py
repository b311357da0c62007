"""The site loop end to end in a real git+DVC checkout with a real MLflow registry: the demo champion, a
worklist from the site's films, a refused labels file that writes nothing, then the adaptation that serves
`@site-<name>` while `@champion` stays where it was."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import TINY_TRAIN, deep_update

pytestmark = pytest.mark.slow
SITE = {"sites": {"steps": 8, "folds": 2, "bootstrap": 50, "budget": 12, "measure": 10},
        "evaluate": {"tta": 0, "gradcam": 0, "ood": {"generated": 4}},
        "register": {"min_sensitivity": 0.0, "min_specificity": 0.0}}  # a tiny model must become the champion


def aliases(repo, name="pneumonia-classifier-demo") -> dict:
    code = ("import json, mlflow; from tasks import config, tracking; tracking.configure(config.load()); "
            f"print(json.dumps(mlflow.MlflowClient().get_registered_model('{name}').aliases))")
    return json.loads(repo.run("python", "-c", code).stdout.strip().splitlines()[-1])


def test_query_adapt_report_and_the_site_alias(repo_copy, site_films):
    repo = repo_copy
    repo.params(deep_update(TINY_TRAIN, SITE))
    repo.run("dvc", "repro", "register")
    champion = aliases(repo)["champion"]

    q = repo.run("pneumonia-site", "query", "--site", "st1", "--images", str(site_films))
    assert "12 to label (badge)" in q.stdout
    worklist = pd.read_csv(repo / "sites/st1/worklist.csv")
    assert len(worklist) == 12 and worklist.path.is_unique and worklist.reason.str.startswith("badge").all()
    assert (repo / "sites/st1/contact_sheet.png").stat().st_size > 5000
    sample = pd.read_csv(repo / "sites/st1/measure.csv").path  # drawn at random, kept out of the worklist
    assert len(sample) == 10 and not set(sample) & set(worklist.path) and "measurement sample: 10 films" in q.stdout
    offered = [(site_films / path).read_bytes() for path in [*worklist.path, *sample]]
    assert len(set(offered)) == len(offered)  # a film exported twice is offered once
    pinned = yaml.safe_load((repo / "sites/st1/site.yaml").read_text())["source_model"]
    assert pinned == f"models:/pneumonia-classifier-demo/{champion}"

    truth = ["PNEUMONIA" if path.startswith("PNEUMONIA") else "NORMAL" for path in worklist.path]
    bad = repo / "bad.csv"
    bad.write_text("path,label\n" + "".join(f"{p},{t}\n" for p, t in zip(worklist.path, truth)) + "nope.png,NORMAL\n")
    refused = repo.run("pneumonia-site", "adapt", "--site", "st1", "--labels", str(bad), check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "row 13 (nope.png)" in refused.stderr
    assert not (repo / "sites/st1/labels.csv").exists() and "site-st1" not in aliases(repo)

    good = repo / "labels.csv"
    labelled = [*worklist.path, *sample]
    truth = ["PNEUMONIA" if path.startswith("PNEUMONIA") else "NORMAL" for path in labelled]
    good.write_text("path,label\n" + "".join(f"{p},{t}\n" for p, t in zip(labelled, truth)))
    # run by its path with its environment off PATH, as cron or systemd run it: it finds its own dvc
    off_path = {**repo.env, "PATH": "/usr/bin:/bin"}
    adapted = subprocess.run([str(Path(sys.executable).parent / "pneumonia-site"), "adapt", "--site", "st1",
                              "--labels", str(good)], cwd=repo.path, env=off_path, capture_output=True, text=True,
                             timeout=900)
    assert adapted.returncode == 0, adapted.stderr[-3000:]
    assert "adapted (cross-fitted)" in adapted.stdout and "ROC-AUC" in adapted.stdout
    assert "oneDNN" not in adapted.stdout + adapted.stderr  # TensorFlow's native notice stays out

    # labels of one class to adapt on: refused before the site's labels change, in the stage's own words
    kept = (repo / "sites/st1/labels.csv").read_bytes()
    one_class = repo / "one_class.csv"
    one_class.write_text("path,label\n" + "".join(f"{p},{t}\n" for p, t in zip(labelled, truth) if t == "NORMAL"))
    refused = repo.run("pneumonia-site", "adapt", "--site", "st1", "--labels", str(one_class), check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("pneumonia-site adapt: error: ") and "patients of each class" in refused.stderr
    assert "failed to reproduce" not in refused.stdout + refused.stderr
    assert (repo / "sites/st1/labels.csv").read_bytes() == kept  # the labels the site adapted on are still there
    report = json.loads((repo / "sites/st1/report.json").read_text())
    assert report["labels"] == 12 and report["folds"] == 2 and report["query"] == "badge"  # trained on: the worklist
    assert report["measured"]["films"] == 10 and report["measured"]["normal"] == 5  # measured on: the sample
    assert report["fitted_on"] == "measurement sample"  # so is the served threshold, nested
    for when in ("before", "after"):
        lo, hi = report[when]["accuracy_ci"]
        assert lo <= report[when]["accuracy"] <= hi
    registry = json.loads((repo / "sites/st1/registry.json").read_text())
    assert "against the source model on 22 labelled films" in registry["reason"]  # the worklist and the sample
    now = aliases(repo)
    assert now["champion"] == champion  # the champion is never touched
    assert (now.get("site-st1") == registry["version"]) == registry["promoted"]
    card = (repo / "sites/st1/model_card.md").read_text()  # the site version's card, from report.json
    m = report["measured"]["after"]
    assert f"version {registry['version']} (site st1)" in card and "12 films (" in card
    assert f"| adapted | {m['films']} | " in card and f"{m['roc_auc']:.3f} [{m['roc_auc_ci'][0]:.3f}, " in card
    assert repo.run("pneumonia-card", f"models:/pneumonia-classifier-demo/{registry['version']}").stdout == card
    lock = yaml.safe_load((repo / "sites/st1/dvc.lock").read_text())
    deps = {d["path"]: d for d in lock["stages"]["adapt"]["deps"]}
    assert "md5" in deps["sites/st1/labels.csv"] and str(site_films) in deps  # the labels and the films, hashed
    assert "md5" in deps["sites/st1/measure.csv"]  # and the measurement sample
    assert repo.run("dvc", "status", "sites/st1/dvc.yaml").stdout.strip() in ("", "Data and pipelines are up to date.")

    version = registry["version"]
    served = repo.run("pneumonia-predict", str(site_films / "NORMAL"),
                      "--model-uri", f"models:/pneumonia-classifier-demo/{version}")
    assert served.stdout.count("NORMAL") + served.stdout.count("PNEUMONIA") >= 20
    shown = repo.run("pneumonia-site", "report", "--site", "st1")
    assert "source model" in shown.stdout and f"v{version}" in shown.stdout
    assert "on the measurement sample: 10 films" in shown.stdout

    # the site flow: the labels it adapted on are unchanged, so a scheduled run only rewrites the worklist
    repo.env.update({"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "PREFECT_HOME": str(repo / ".prefect"),
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    before = (repo / "sites/st1/worklist.csv").stat().st_mtime_ns
    flowed = repo.run("python", "-m", "flows.site", "--site", "st1", "--images", str(site_films), "--labels", str(good))
    assert "12 to label (badge)" in flowed.stdout + flowed.stderr
    assert (repo / "sites/st1/worklist.csv").stat().st_mtime_ns > before
    assert json.loads((repo / "sites/st1/registry.json").read_text())["version"] == version  # nothing re-adapted
