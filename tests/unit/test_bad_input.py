"""Bad input to every console script and flow entry point: one line naming the path, name or flag, exit 2, before
anything is written, run by the script's path with its environment off PATH (as cron or systemd run it)."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, image_bytes

BIN = Path(sys.executable).parent
IMAGES = "films"  # a folder of two films, made in each test's folder
EMPTY = "empty"  # a folder without a film
SCORES = "scores.csv"  # a table that is not pneumonia-predict's


def script(name: str) -> list[str]:
    return [str(BIN / name)]


def module(name: str) -> list[str]:
    return [sys.executable, "-m", name]


CASES = [
    # (command, arguments, the program's name in the line, words the line must hold)
    (script("pneumonia-predict"), ["missing.jpeg"], "pneumonia-predict", "missing.jpeg does not exist"),
    (script("pneumonia-predict"), [EMPTY], "pneumonia-predict", "no image files in empty"),
    (script("pneumonia-predict"), ["--engine", "spark", "missing", "--output", "o.parquet"], "pneumonia-predict",
     "missing does not exist"),
    (script("pneumonia-predict"), ["--engine", "spark", IMAGES, "--output", "o.csv"], "pneumonia-predict",
     "--engine spark writes a Parquet folder"),
    (module("flows.batch"), [IMAGES, "--output", "o.csv"], "python -m flows.batch", "give a .parquet folder"),
    (module("flows.batch"), [IMAGES, "--output", "o.parquet", "--monitor", "../x"], "batch-score", "site name '../x'"),
    (script("pneumonia-monitor"), ["--site", "st1", "--images", "missing"], "pneumonia-monitor",
     "missing is not a folder"),
    (script("pneumonia-monitor"), ["--site", "st1", "--images", EMPTY], "pneumonia-monitor", "empty holds no image"),
    (script("pneumonia-monitor"), ["--site", "../../escape", "--images", IMAGES], "pneumonia-monitor",
     "site name '../../escape'"),
    (script("pneumonia-monitor"), ["--site", "st1", "--scores", "missing.parquet"], "pneumonia-monitor",
     "missing.parquet does not exist: give the table `pneumonia-predict --output` wrote"),
    (script("pneumonia-monitor"), ["--site", "st1", "--scores", "params.yaml"], "pneumonia-monitor",
     "params.yaml is not a .parquet, .csv or .json table"),
    (script("pneumonia-monitor"), ["--site", "st1", "--scores", SCORES], "pneumonia-monitor",
     f"{SCORES} has no `ood_score` column"),
    (script("pneumonia-monitor"), ["--site", "st1", "--scores", SCORES, "--images", IMAGES], "pneumonia-monitor",
     "argument --images: not allowed with argument --scores"),
    (script("pneumonia-monitor"), ["--site", "st1", "--scores", SCORES, "--model-uri", "models:/m/1"],
     "pneumonia-monitor", "--scores names the model its films were scored with: drop --model-uri"),
    (script("pneumonia-site"), ["query", "--site", "a/b", "--images", IMAGES], "pneumonia-site query",
     "site name 'a/b'"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--images", "missing"], "pneumonia-site query",
     "missing is not a folder"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--images", IMAGES, "--budget", "-5"], "pneumonia-site query",
     "argument --budget: '-5' is not a whole number of 0 or more"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--images", IMAGES, "--budget", "ten"],
     "pneumonia-site query",
     "argument --budget: 'ten' is not a whole number"),
    (script("pneumonia-site"), ["adapt", "--site", "..", "--labels", "labels.csv"], "pneumonia-site adapt",
     "site name '..'"),
    (script("pneumonia-site"), ["adapt", "--site", "st1", "--labels", "labels.csv"], "pneumonia-site adapt",
     "site 'st1' is not set up"),
    (script("pneumonia-site"), ["report", "--site", "st1"], "pneumonia-site report", "site 'st1' is not set up"),
    (script("pneumonia-site"), ["review", "--site", "st1"], "pneumonia-site review", "site 'st1' is not set up"),
    (script("pneumonia-site"), ["review", "--site", "st1", "--port", "-1"], "pneumonia-site review",
     "argument --port: '-1' is not a whole number"),
    (script("pneumonia-site"), ["adapt", "--site", "st1"], "pneumonia-site adapt", "site 'st1' is not set up"),
    (module("flows.site"), ["--site", "st1", "--images", IMAGES, "--budget", "-1"], "python -m flows.site",
     "argument --budget: '-1' is not a whole number"),
    (module("flows.site"), ["--site", "../x", "--images", IMAGES], "pneumonia-site flow", "site name '../x'"),
    (module("flows.site"), ["--site", "st1", "--images", EMPTY], "pneumonia-site flow", "empty holds no image"),
    (script("pneumonia-sweep"), ["sweep.yaml", "--jobs", "0"], "pneumonia-sweep",
     "argument --jobs/-j: '0' is not a whole number of 1 or more"),
    (script("pneumonia-pacs"), ["--site", "../x"], "pneumonia-pacs", "site name '../x'"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--images", IMAGES, "--exclude", "missing.csv"],
     "pneumonia-site query", "missing.csv: not a CSV with a `path` column"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--pacs", "http://127.0.0.1:9/dicom-web", "--exclude",
                                "missing.csv"], "pneumonia-site query", "missing.csv: not a CSV with a `path` column"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--pacs", "pacs.example.org"], "pneumonia-site query",
     "is not an http(s) DICOMweb root"),
    (script("pneumonia-site"), ["query", "--site", "st1", "--pacs", "http://x", "--images", IMAGES],
     "pneumonia-site query", "argument --images: not allowed with argument --pacs"),
    (script("pneumonia-pacs"), ["--site", "st1", "--pacs", "pacs.example.org"], "pneumonia-pacs",
     "'pacs.example.org' is not an http(s) DICOMweb root"),
    (script("pneumonia-pacs"), ["audit", "--site", "st1", "--last", "-1"], "pneumonia-pacs audit",
     "argument --last: '-1' is not a whole number"),
    (module("flows.pacs"), ["--site", "A B"], "pacs-inbox", "site name 'A B'"),
    (module("flows.serve"), ["--cron", "nope"], "python -m flows.serve", "--cron 'nope' is not a cron expression"),
]


@pytest.mark.parametrize("command, args, prog, words", CASES, ids=[" ".join([c[0][-1], *c[1]]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(command, args, prog, words, tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "sweep.yaml").write_text((REPO / "sweep.yaml").read_text())
    (tmp_path / EMPTY).mkdir()
    (tmp_path / EMPTY / "notes.txt").write_text("no films here")
    (tmp_path / SCORES).write_text("file,probability\nfilm.png,0.3\n")
    for i in range(2):
        (tmp_path / IMAGES / "NORMAL").mkdir(parents=True, exist_ok=True)
        (tmp_path / IMAGES / "NORMAL" / f"IM-000{i}-0001.jpeg").write_bytes(image_bytes(i))
    before = sorted(tmp_path.rglob("*"))
    home = tmp_path.parent / f"{tmp_path.name}-home"  # Prefect makes its home folder when it is imported
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(home), "PREFECT_HOME": str(home / ".prefect"),
           "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"{prog}: error: ") and words in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert sorted(tmp_path.rglob("*")) == before  # no site, monitoring or report folder, no MLflow store
