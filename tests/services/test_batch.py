"""Batch scoring through the registered pyfunc: any number of rows, the same scores as one image at a time."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tasks.scoring import predict, serving

pytestmark = pytest.mark.slow


def films(n: int) -> list[Path]:
    """n demo films of the champion's data (repeated when there are fewer), copied under ./inbox."""
    source = sorted(Path("data/raw/demo/chest_xray").rglob("*.png"))
    inbox = Path("inbox")
    inbox.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        target = inbox / f"film-{i:04d}.png"
        target.write_bytes(source[i % len(source)].read_bytes())
        out.append(target)
    return out


def encoded(files) -> pd.DataFrame:
    return pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in files]})


@pytest.mark.parametrize("n", [70, 200])
def test_the_pyfunc_scores_any_number_of_rows_as_it_scores_one(registry, n):
    _, _, name = registry
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    files = films(n)
    batch = model.predict(encoded(files))
    assert len(batch) == n > serving.MAX_ROWS
    for i in (0, serving.CHUNK - 1, serving.CHUNK, n - 1):  # both sides of a chunk boundary
        alone = model.predict(encoded(files[i:i + 1]))
        assert abs(batch.probability[i] - alone.probability[0]) <= 1e-5
        assert abs(batch.ood_score[i] - alone.ood_score[0]) <= 1e-5
        assert batch.label[i] == alone.label[0]


def test_a_bad_row_in_a_batch_is_named_by_its_row(registry):
    _, _, name = registry
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    frame = encoded(films(serving.CHUNK + 5))
    frame.loc[serving.CHUNK + 2, "image"] = base64.b64encode(b"not an image").decode()
    with pytest.raises(mlflow.exceptions.MlflowException, match=f"row {serving.CHUNK + 2}: not an image"):
        model.predict(frame)


def test_with_errors_rows_a_bad_row_is_a_row_with_its_reason(registry):
    _, _, name = registry
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    frame = encoded(films(serving.CHUNK + 5))
    bad = [3, serving.CHUNK + 2]  # one in each chunk
    whole = model.predict(frame)
    for i in bad:
        frame.loc[i, "image"] = base64.b64encode(b"not an image").decode()
    out = model.predict(frame, params={"errors": "rows"})
    assert len(out) == len(frame) and list(out.columns[-1:]) == ["error"]
    assert out.error[bad].str.startswith("not an image").all() and out.probability[bad].isna().all()
    good = out.index.difference(bad)
    assert (out.error[good] == "").all() and (out.label[good] == whole.label[good]).all()
    assert np.abs(out.probability[good] - whole.probability[good]).max() <= 1e-6
    with pytest.raises(mlflow.exceptions.MlflowException, match="errors"):
        model.predict(frame, params={"errors": "skip"})


def test_a_model_packaged_before_the_errors_param_names_the_same_bad_files_with_the_same_scores(registry,
                                                                                              tmp_path):
    import shutil

    import yaml

    files = films(serving.CHUNK + 5)
    for i in (3, serving.CHUNK + 2):
        files[i].write_bytes(b"not an image")
    before = tmp_path / "before"
    shutil.copytree("models/package", before)
    mlmodel = yaml.safe_load((before / "MLmodel").read_text())
    del mlmodel["signature"]["params"]
    (before / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (now, now_errors), (old, old_errors) = (predict.predict_files(mlflow.pyfunc.load_model(str(uri)), files,
                                                                  progress=False)
                                            for uri in (Path("models/package").resolve(), before))
    assert set(now_errors) == set(old_errors) == {files[3], files[serving.CHUNK + 2]}
    assert now_errors == old_errors and list(now.file) == list(old.file) and len(now) == len(files) - 2
    assert np.abs(now.probability - old.probability).max() <= 1e-6 and (now.label == old.label).all()
    assert now.in_distribution.dtype == bool and (now.in_distribution == old.in_distribution).all()


def test_predict_cli_writes_every_row_and_names_the_files_it_could_not_read(registry, capsys):
    _, client, name = registry
    files = films(70)
    Path("inbox/broken.png").write_bytes(b"\x89PNG truncated")
    version = client.get_model_version_by_alias(name, "champion").version
    for suffix in (".csv", ".json", ".parquet"):
        out = Path(f"preds{suffix}")
        assert predict.main(["inbox", "--output", str(out)]) == 1  # exit 1: one file was not scored
        captured = capsys.readouterr()
        assert "broken.png" in captured.err and "the other files were scored" in captured.err
        table = {".csv": pd.read_csv, ".json": pd.read_json, ".parquet": pd.read_parquet}[suffix](out)
        assert len(table) == 70 and set(table.file) == {str(f) for f in files}
        assert {"probability", "label", "threshold", "ood_score", "in_distribution", "model_version"} <= set(table)
        assert (table.model_version.astype(str) == str(version)).all()
        assert set(table.label) <= {"NORMAL", "PNEUMONIA"} and table.probability.between(0, 1).all()


def test_a_file_removed_after_listing_is_reported_and_the_rest_scored(registry):
    _, _, name = registry
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    files = films(10)
    files[3].unlink()
    table, errors = predict.predict_files(model, files, progress=False)
    assert list(errors) == [files[3]] and "cannot be read" in errors[files[3]]
    assert len(table) == 9 and str(files[3]) not in set(table.file)


def test_an_empty_inbox_is_one_clear_error(registry, capsys):
    Path("empty").mkdir()
    (Path("empty") / "notes.txt").write_text("no films here")
    with pytest.raises(SystemExit) as done:
        predict.main(["empty"])
    assert done.value.code == 2 and "no image files in empty" in capsys.readouterr().err


def test_mlflow_models_predict_scores_200_rows(registry):
    _, _, name = registry
    files = films(200)
    Path("input.json").write_text(json.dumps({"dataframe_split": encoded(files).to_dict(orient="split")}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "models", "predict", "-m",
                           f"models:/{name}@champion", "-i", "input.json", "-o", "output.json", "-t", "json",
                           "--env-manager", "local"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(Path("output.json").read_text())["predictions"]
    assert len(rows) == 200
    local = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(encoded(files[:1]))
    assert np.isclose(rows[0]["probability"], local.probability[0], atol=1e-5)


def test_the_model_names_its_pinned_requirements_and_not_the_project(registry):
    from importlib.metadata import version

    _, _, name = registry
    wanted = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{name}@champion")).read_text().split()
    assert not any(line.startswith("pneumonia-mlops") for line in wanted), wanted
    assert f"tensorflow-cpu=={version('tensorflow-cpu')}" in wanted and f"pydicom=={version('pydicom')}" in wanted
    assert all("==" in line for line in wanted if not line.startswith("-"))


def test_a_champion_whose_files_were_deleted_is_named_with_its_version(registry, capsys):
    from urllib.parse import urlparse

    _, client, name = registry
    version = client.get_model_version_by_alias(name, "champion")
    model_id = version.source.removeprefix("models:/")  # register registers the logged model by its URI
    files = Path(urlparse(mlflow.get_logged_model(model_id).artifact_location).path)
    aside = files.with_name(files.name + ".aside")
    files.rename(aside)  # the champion's files are gone (put back after: the session's champion is shared)
    try:
        with pytest.raises(SystemExit) as done:
            predict.main([str(films(1)[0])])
        assert done.value.code == 2
    finally:
        aside.rename(files)
    err = capsys.readouterr().err
    assert err.startswith(f"pneumonia-predict: error: cannot load models:/{name}@champion (artifacts at version "
                          f"{version.version}: {version.source}")
    assert "restore them, or point at another version with --model-uri" in err and "Traceback" not in err
