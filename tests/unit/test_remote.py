"""The flows' DVC remote: a local default outside the checkout when none is set, a user's remote kept."""
import subprocess
import sys
from pathlib import Path

from flows import stages


def dvc(*args, cwd):
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, capture_output=True,
                          text=True, check=True).stdout


def test_a_checkout_without_remote_gets_the_local_default_and_a_users_remote_is_kept(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc("init", "-q", cwd=repo)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert stages.ensure_remote("~/storage", repo) == "local"
    assert (tmp_path / "home/storage").is_dir()  # `~` expanded, outside the checkout
    assert str(tmp_path / "home/storage") in dvc("remote", "list", cwd=repo)
    assert "storage" not in (repo / ".dvc/config").read_text()  # nothing committed changes
    dvc("remote", "add", "--local", "-f", "-d", "team", str(tmp_path / "team"), cwd=repo)
    assert stages.ensure_remote("~/storage", repo) == "team"
