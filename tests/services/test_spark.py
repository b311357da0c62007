"""`pneumonia-predict --engine spark`: Spark local[2] reads the films and mlflow.pyfunc.spark_udf scores them with the
registered champion; the scores equal the local path's, unreadable files are rows, a killed job is rerun whole."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.scoring import predict
from tests.services.test_batch import films
from tests.unit.test_dicom import dicom_bytes

pytestmark = pytest.mark.slow
JAVA = shutil.which("java")


@pytest.fixture
def archive(registry):
    """200 films, 3 DICOM studies of the same pixels as three of them, and 2 files that are not images."""
    if JAVA is None:
        pytest.skip("no Java runtime (Debian's openjdk-17-jre-headless; .ci/run installs it): Spark cannot start")
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -c constraints.txt '.[spark]')")
    from PIL import Image

    files = films(200)
    for i in range(3):
        pixels = np.asarray(Image.open(files[i]).convert("L"))
        Path(f"inbox/study-{i}.dcm").write_bytes(dicom_bytes(pixels))
    Path("inbox/notes.png").write_bytes(b"not an image")
    Path("inbox/cut.png").write_bytes(files[0].read_bytes()[:100])
    return registry


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    script = str(Path(sys.executable).parent / "pneumonia-predict")
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=600, **kwargs)


def test_spark_scores_equal_the_local_path_and_unreadable_files_are_rows(archive):
    p, client, name = archive
    done = run("--engine", "spark", "inbox", "--output", "out.parquet")
    assert done.returncode == 1, done.stderr[-3000:]  # two files could not be read; every other one was scored
    table = pd.read_parquet("out.parquet")
    assert list(table.columns) == ["file", "probability", "label", "threshold", "ood_score", "in_distribution",
                                   "model_uri", "model_version", "error"]
    assert len(table) == 205 and table.file.is_unique
    champion = client.get_model_version_by_alias(name, "champion").version
    assert set(table.model_version) == {str(champion)}
    assert set(table.model_uri) == {f"models:/{name}/{champion}"}  # the alias resolved once, for the whole job
    bad = table[table.error.notna()].set_index("file")
    import pyarrow.dataset

    assert pyarrow.dataset.dataset("out.parquet").to_table().column("probability").null_count == 2  # null, not NaN
    assert {Path(f).name for f in bad.index} == {"notes.png", "cut.png"} and bad.probability.isna().all()
    assert "2 could not be read" in done.stdout and "notes.png" in done.stderr and "Traceback" not in done.stderr

    import mlflow

    local, errors = predict.predict_files(mlflow.pyfunc.load_model(f"models:/{name}@champion"),
                                          sorted(Path("inbox").iterdir()), progress=False)
    assert {Path(f).name for f in errors} == {"notes.png", "cut.png"}
    local["file"] = [str(Path(f).resolve()) for f in local.file]
    both = local.merge(table, on="file", suffixes=("_local", "_spark"))
    assert len(both) == 203  # 200 films and the 3 DICOM studies
    for column in ("probability", "ood_score", "threshold"):
        assert np.abs(both[f"{column}_local"] - both[f"{column}_spark"]).max() <= 1e-6
    assert (both.label_local == both.label_spark).all()
    studies = both[both.file.str.endswith(".dcm")].sort_values("file")
    as_png = both.set_index("file").loc[[str(Path(f"inbox/film-{i:04d}.png").resolve()) for i in range(3)]]
    assert np.abs(studies.probability_spark.to_numpy() - as_png.probability_spark.to_numpy()).max() <= 1e-6

    from tasks.monitoring import backfill  # the job's output is also a drift check (pneumonia-monitor --scores)

    checked = backfill.run(p, "archive", "out.parquet")
    assert checked["films"] == 203 and checked["sampled"] == min(203, p.monitor.max_films)
    assert checked["model_version"] == str(champion) and checked["result"]["films"] == 203


def test_a_job_killed_while_it_writes_is_rerun_into_one_complete_output(archive):
    proc = subprocess.Popen([str(Path(sys.executable).parent / "pneumonia-predict"), "--engine", "spark", "inbox",
                             "--output", "out.parquet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while not Path("out.parquet.partial").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its Spark JVM and workers, mid-write
    proc.wait()
    assert not Path("out.parquet").exists()
    done = run("--engine", "spark", "inbox", "--output", "out.parquet")
    assert done.returncode == 1, done.stderr[-3000:]
    table = pd.read_parquet("out.parquet")
    assert len(table) == 205 and table.file.is_unique  # nothing twice, nothing missing
    assert not Path("out.parquet.partial").exists()


def test_a_model_packaged_before_its_errors_param_is_scored_alike(archive, tmp_path):
    """Such a model's predict refuses a whole batch for one bad file: each file is checked first instead."""
    import yaml

    from tasks.scoring import spark_scoring

    package = tmp_path / "before"
    shutil.copytree("models/package", package)
    mlmodel = yaml.safe_load((package / "MLmodel").read_text())
    del mlmodel["signature"]["params"]
    (package / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    assert spark_scoring.row_errors("models/package") and not spark_scoring.row_errors(str(package))
    spark = spark_scoring.session("local[2]")
    try:
        tables = [spark_scoring.score(spark, [str(Path("inbox").resolve())], uri, "", tmp_path / f"{i}.parquet")
                  for i, uri in enumerate(("models/package", str(package)))]
    finally:
        spark.stop()
    assert [t["errors"] for t in tables] == [2, 2] and tables[0]["unreadable"] == tables[1]["unreadable"]
    now, before = (pd.read_parquet(tmp_path / f"{i}.parquet").set_index("file").sort_index() for i in range(2))
    assert (now.index == before.index).all() and (now.label.fillna("") == before.label.fillna("")).all()
    assert np.nanmax(np.abs(now.probability - before.probability)) <= 1e-6
    assert (now.probability.isna() == before.probability.isna()).all()


def test_the_batch_flow_scores_and_then_tests_the_output_for_drift(archive, tmp_path):
    p, _, name = archive
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / ".prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    done = subprocess.run([sys.executable, "-m", "flows.batch", "inbox", "--output", "out.parquet", "--monitor",
                           "archive"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(pd.read_parquet("out.parquet")) == 205
    [report] = (Path(p.paths.monitoring) / "archive" / "batches").glob("archive-*.json")
    assert json.loads(report.read_text())["films"] == 203  # the scored rows, not the 2 errors
