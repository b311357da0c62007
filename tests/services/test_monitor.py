"""pneumonia-monitor on a real registry: new films only, drift flagged on shifted films and not on like ones,
the alert, MLflow runs, and bad inboxes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.core import config
from tasks.core.errors import StepError
from tasks.monitoring import monitor
from tasks.sources import demo
from tasks.sources.demo import Demo
from tests.helpers import webhook

pytestmark = pytest.mark.slow


def fresh_films(folder: Path, shifted: bool = False) -> Path:
    """Films of the demo acquisition from patients the model never saw; `shifted` shows the chest smaller inside
    a black border, as another detector size or collimation would."""
    root = demo.generate(Demo(patients=24, max_images_per_patient=2, pneumonia_fraction=0.6, size=64, seed=123),
                         folder / "gen")
    out = folder / "inbox"
    for i, path in enumerate(sorted(root.rglob("*.png"))):
        img = Image.open(path)
        if shifted:
            framed = Image.new("L", img.size, 0)
            framed.paste(img.resize((img.width * 7 // 10, img.height * 7 // 10)), (img.width * 3 // 20,) * 2)
            img = framed
        out.mkdir(parents=True, exist_ok=True)
        img.save(out / f"film-{i:03d}.png")
    return out


@pytest.fixture
def monitored(registry):
    p, client, name = registry
    cfg = config.read_yaml(Path("params.yaml"))
    cfg["monitor"]["min_films"] = 10
    Path("params.yaml").write_text(__import__("yaml").safe_dump(cfg, sort_keys=False))
    return config.load(), client, name


def test_like_films_pass_and_are_never_scored_twice(monitored, tmp_path):
    p, client, name = monitored
    inbox = fresh_films(tmp_path)
    first = monitor.run(p, "st1", inbox)
    assert first["model_uri"] == f"models:/{name}@champion" and first["scored"] == len(list(inbox.iterdir()))
    assert first["result"] is not None and not first["result"]["drift"], first["result"]
    assert first["alert"] is None and first["errors"] == {}
    stored = Path(p.paths.monitoring) / "st1"
    table = json.loads((stored / "batches" / f"{first['result']['batch']}.json").read_text())
    assert table["films"] == first["scored"]
    assert str(inbox) not in json.dumps(table) and "film-" not in json.dumps(table)  # no file names in the report
    again = monitor.run(p, "st1", inbox)  # nothing new: nothing scored, no batch
    assert again["scored"] == 0 and again["result"] is None and again["waiting"] == 0
    runs = mlflow.search_runs(experiment_names=[f"{name}-monitoring"], output_format="list")
    assert [r.data.tags["site"] for r in runs] == ["st1"] and runs[0].data.tags["drift"] == "false"
    assert 0 < runs[0].data.metrics["features/p_value"] <= 1


def test_shifted_films_raise_the_alert_through_the_cli_and_webhook(monitored, tmp_path):
    p, _, name = monitored
    inbox = fresh_films(tmp_path, shifted=True)
    (inbox / "broken.png").write_bytes(b"\x89PNG not really")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp_path / ".prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    with webhook() as (url, bodies):
        done = subprocess.run([str(Path(sys.executable).parent / "pneumonia-monitor"), "--site", "st2", "--images",
                               str(inbox)], env={**env, "PNEUMONIA_ALERT_WEBHOOK": url}, capture_output=True,
                              text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]  # one film could not be read; the others were scored
    assert "broken.png" in done.stderr and "the other films were scored" in done.stderr
    assert "**ALERT**" in done.stdout and "pneumonia-site query --site st2" in done.stdout, done.stdout
    assert len(bodies) == 1 and bodies[0]["site"] == "st2" and bodies[0]["drifted"]
    assert all(0 <= v <= 1 for v in bodies[0]["p_values"].values())
    stored = Path(p.paths.monitoring) / "st2"
    assert len(list((stored / "batches").glob("*.png"))) == 1
    scored = (stored / "scored.csv").read_text()
    assert scored.count("\n") - 1 == len(list(inbox.glob("film-*.png")))


def test_an_unusable_inbox_is_one_clear_error_and_writes_nothing(monitored, tmp_path):
    p, _, _ = monitored
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no films")
    with pytest.raises(StepError, match="holds no image files"):
        monitor.run(p, "st3", empty)
    with pytest.raises(StepError, match="is not a folder"):
        monitor.run(p, "st3", tmp_path / "missing")
    assert not (Path(p.paths.monitoring) / "st3" / "scored.csv").exists()


def test_a_model_without_a_reference_is_refused(monitored, tmp_path):
    p, _, name = monitored
    package = Path("models/package")
    import yaml

    mlmodel = yaml.safe_load((package / "MLmodel").read_text())
    artifacts = mlmodel["flavors"]["python_function"]["artifacts"]
    del artifacts["reference"]
    (package / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(StepError, match="without a monitoring reference"):
        monitor.run(p, "st4", fresh_films(tmp_path), model_uri=str(package.resolve()))


def test_a_batch_smaller_than_min_films_waits(monitored, tmp_path):
    p, _, _ = monitored
    inbox = fresh_films(tmp_path)
    keep = sorted(inbox.iterdir())[:5]
    for f in sorted(inbox.iterdir())[5:]:
        f.unlink()
    out = monitor.run(p, "st5", inbox)
    assert out["scored"] == len(keep) and out["result"] is None and out["waiting"] == len(keep)
    assert np.load(Path(p.paths.monitoring) / "st5" / "features.npy").shape[0] == len(keep)


def scored_table(name: str, inbox: Path, out: Path) -> pd.DataFrame:
    """`pneumonia-predict inbox --output out`'s table, written as the command writes it."""
    from tasks.records import registry
    from tasks.scoring import predict

    uri = f"models:/{name}@champion"
    table, errors = predict.predict_files(registry.load(uri), sorted(inbox.iterdir()), progress=False)
    assert not errors
    table = table.assign(model_uri=uri, model_version=registry.version_of(uri))
    predict.write_table(table, out)
    return table


def test_a_scored_archive_is_one_drift_check_through_the_cli(monitored, tmp_path):
    p, _, name = monitored
    inbox = fresh_films(tmp_path, shifted=True)
    table = scored_table(name, inbox, tmp_path / "scores.parquet")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(tmp_path / ".prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    done = subprocess.run([str(Path(sys.executable).parent / "pneumonia-monitor"), "--site", "back",
                           "--scores", str(tmp_path / "scores.parquet")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"a table of {len(table)} scored film(s), {len(table)} of them scored again" in done.stdout, done.stdout
    assert "**ALERT**" in done.stdout, done.stdout
    stored = Path(p.paths.monitoring) / "back"
    [report] = (stored / "batches").glob("archive-*.json")
    result = json.loads(report.read_text())
    assert result["films"] == len(table) and result["features"]["films_tested"] == len(table) and result["drift"]
    assert "film-" not in report.read_text() and str(inbox) not in report.read_text()
    assert not (stored / "scored.csv").exists()  # the site's store of scored films is not touched
    runs = mlflow.search_runs(experiment_names=[f"{name}-monitoring"], output_format="list")
    assert [r.data.tags["batch"] for r in runs] == [result["batch"]]
    assert runs[0].data.tags["model_uri"] == f"models:/{name}/{table.model_version[0]}"  # the version it scored


def test_an_archive_whose_films_changed_since_the_job_is_refused(monitored, tmp_path):
    from tasks.monitoring import backfill, drift

    p, _, name = monitored
    cfg = config.read_yaml(Path("params.yaml"))
    cfg["monitor"]["max_films"] = 20  # the feature test takes a sample of the table's films
    Path("params.yaml").write_text(__import__("yaml").safe_dump(cfg, sort_keys=False))
    p = config.load()
    inbox = fresh_films(tmp_path)
    table = scored_table(name, inbox, tmp_path / "scores.csv")
    out = backfill.run(p, "like", tmp_path / "scores.csv")
    assert out["films"] == len(table) and out["sampled"] == 20 and not out["result"]["drift"], out["result"]
    sampled = sorted(table.file.iloc[drift.sample(len(table), 20, p.monitor.seed)])
    probability = table.set_index("file").probability
    other = next(f for f in table.file if f not in sampled and abs(probability[f] - probability[sampled[0]]) > .01)
    Path(sampled[0]).write_bytes(Path(other).read_bytes())  # a film replaced since the job scored it
    batches = sorted((Path(p.paths.monitoring) / "like" / "batches").iterdir())
    with pytest.raises(StepError, match="from the table's probability: the films or the model are not the ones"):
        backfill.run(p, "like", tmp_path / "scores.csv")
    Path(sampled[1]).unlink()
    with pytest.raises(StepError, match="its film cannot be read here"):
        backfill.run(p, "like", tmp_path / "scores.csv")
    assert sorted((Path(p.paths.monitoring) / "like" / "batches").iterdir()) == batches  # nothing new written
