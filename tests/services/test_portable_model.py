"""The packaged model installs anywhere: a fresh virtualenv with nothing but the model's own pinned
`requirements.txt` (from the package index) loads it, the project's code coming from the package's
`code_paths`, and scores films exactly as the pipeline's environment does."""
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SCORE = """import base64, json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.DataFrame({"image": [base64.b64encode(open(f, "rb").read()).decode() for f in sys.argv[2:]]})
print(json.dumps(model.predict(frame).to_dict(orient="list")))
"""


def test_a_fresh_virtualenv_from_the_models_requirements_scores_as_the_pipeline(champion_dir, tmp_path):
    package = champion_dir / "models/package"
    requirements = (package / "requirements.txt").read_text().split()
    assert requirements and all("==" in r for r in requirements)  # every requirement pinned
    assert not any(r.startswith("pneumonia-mlops") for r in requirements)  # the project travels as code
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", "-r", str(package / "requirements.txt")],
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-2000:]
    films = sorted((champion_dir / "data/raw/demo/chest_xray").rglob("*.png"))[:3]
    (tmp_path / "score.py").write_text(SCORE)
    outside = tmp_path / "elsewhere"  # no checkout, no project on the path: only what the package carries
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(venv / "bin/python"), str(tmp_path / "score.py"), str(package), *map(str, films)],
                          cwd=outside, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    here = mlflow.pyfunc.load_model(str(package)).predict(
        pd.DataFrame({"image": [base64.b64encode(Path(f).read_bytes()).decode() for f in films]}))
    assert np.allclose(fresh["probability"], here.probability, atol=1e-6)
    assert np.allclose(fresh["ood_score"], here.ood_score, atol=1e-6)
    assert fresh["label"] == here.label.tolist()
    no_project = subprocess.run([str(venv / "bin/python"), "-c", "import tasks"], cwd=outside, env=env,
                                capture_output=True, text=True)
    assert no_project.returncode != 0  # the fresh environment has no copy of the project of its own


def test_a_package_built_before_the_folders_scores_in_this_checkout(champion_dir, tmp_path):
    """A version registered before tasks/ was grouped in folders imports its helpers by the old names
    (`tasks.serving`, `tasks.native`, ...). Where `tasks` is already imported (pneumonia-predict, the reading
    room, a site's adapt) those names must reach this checkout's modules (tasks/core/moved.py)."""
    import tasks  # noqa: F401  as in every command of the project

    old = shutil.copytree(champion_dir / "models/package", tmp_path / "package")
    shutil.copy(Path(__file__).with_name("pyfunc_model_before_folders.py"), old / "pyfunc_model.py")
    assert "from tasks.serving import" in (old / "pyfunc_model.py").read_text()
    films = sorted((champion_dir / "data/raw/demo/chest_xray").rglob("*.png"))[:3]
    frame = pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in films]})
    then = mlflow.pyfunc.load_model(str(old)).predict(frame)
    now = mlflow.pyfunc.load_model(str(champion_dir / "models/package")).predict(frame)
    assert np.allclose(then.probability, now.probability, atol=1e-6)
    assert then.label.tolist() == now.label.tolist()
