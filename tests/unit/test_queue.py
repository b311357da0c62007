"""flows.queue: which path params a temporary copy of the repository (DVC's queue) could not resolve."""
import subprocess

from flows import queue


def test_untracked_relative_paths_become_absolute_and_the_rest_stay(tmp_path):
    repo = tmp_path / "repo"
    (repo / "tasks/sources").mkdir(parents=True)
    (repo / "tasks/sources/demo.py").write_text("# generator\n")
    (repo / "data/raw").mkdir(parents=True)
    (repo / "data/raw/site.zip").write_bytes(b"PK")  # inside the checkout but not tracked
    (tmp_path / "shared/chest_xray").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "tasks"], check=True)

    base = {"ingest.input": "tasks/sources/demo.py"}
    assert queue.portable({}, base, repo) == {}  # tracked input: a copy holds it

    out = queue.portable({"ingest.input": "../shared/chest_xray", "train.epochs": 3}, base, repo)
    assert out == {"ingest.input": str((tmp_path / "shared/chest_xray").resolve()), "train.epochs": 3}

    out = queue.portable({}, {"ingest.input": "data/raw/site.zip"}, repo)
    assert out == {"ingest.input": str((repo / "data/raw/site.zip").resolve())}  # set in base, overridden

    absolute = str(tmp_path / "shared/chest_xray")
    assert queue.portable({"ingest.input": absolute}, base, repo) == {"ingest.input": absolute}
