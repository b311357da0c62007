"""What main commits: the product, not a run's results (a run on another CPU cannot reproduce them)."""
import subprocess

from flows import stages
from tests.helpers import REPO


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def test_main_commits_no_run_results_and_git_ignores_none():
    results = stages.run_results(REPO)
    assert "dvc.lock" in results and "reports/headline.json" in results and "reports/metrics.json" in results
    assert git("ls-files", "--", *results).stdout == ""  # a fresh clone's first run modifies no tracked file
    for path in results:  # DVC refuses to save an experiment whose lock or metrics Git ignores
        assert git("check-ignore", "-q", path).returncode == 1, f"{path} is git-ignored"
