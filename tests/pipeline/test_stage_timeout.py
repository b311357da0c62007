"""A hung stage is killed at `orchestration.stage_timeout_minutes`, with everything it started, and the
flow's stage task does not retry it."""
import subprocess
import sys
import time

import pytest

from flows import stages

pytestmark = pytest.mark.slow


def test_a_hung_stage_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "child.pid"
    # the stage's command starts a child that would outlive a kill of dvc alone
    cmd = (f"{sys.executable} -c \"import os, subprocess, sys, time; "
           f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
           f"open(r'{marker}', 'w').write(str(c.pid)); time.sleep(300)\"")
    (tmp_path / "dvc.yaml").write_text(f"stages:\n  hang:\n    cmd: {cmd}\n")
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(args, cwd=tmp_path, check=True, env=stages.dvc_env())
    start = time.monotonic()
    with pytest.raises(stages.StageTimedOut, match=r"ran longer than .* minutes and was killed \(orchestration"):
        stages.run_stage("hang", lambda line: None, root=tmp_path, timeout=8)
    assert time.monotonic() - start < 60
    child = int(marker.read_text())
    time.sleep(0.5)
    assert subprocess.run(["ps", "-o", "stat=", "-p", str(child)], capture_output=True, text=True).stdout.strip() \
        in ("", "Z"), "the stage's child process survived"


def test_a_timed_out_stage_is_not_retried():
    from prefect.states import Failed

    from flows.pipeline import transient

    state = Failed(data=stages.StageTimedOut("stage train ran longer than 180 minutes"))
    assert transient(None, None, state) is False
    assert transient(None, None, Failed(data=stages.StageFailed("tracking server down"))) is True
