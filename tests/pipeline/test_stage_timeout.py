"""Running one DVC stage for the flow: a hung stage is killed at `orchestration.stage_timeout_minutes`, with
everything it started, and the flow's stage task does not retry it; what the flow relays of a stage's output
is the stage's own story, not DVC's advice."""
import subprocess
import sys
import time

import pytest
import yaml

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


def test_the_flow_relays_the_stage_s_lines_not_dvc_s_advice(tmp_path):
    # a stage that writes an output (so DVC updates its lock file and advises on it), a log line, a progress bar
    cmd = (f"{sys.executable} -c \"import sys; open('out.txt', 'w').write('x'); "
           f"sys.stderr.write('work:  50%|#####     | 1/2\\rwork: 100%|##########| 2/2\\n'); "
           f"print('work: 2 items done')\"")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"work": {"cmd": cmd, "outs": ["out.txt"]}}}))
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(args, cwd=tmp_path, check=True, env=stages.dvc_env())
    relayed = []
    output = stages.run_stage("work", relayed.append, root=tmp_path)
    assert "git add" in output and "autostage" in output, "DVC gave its advice (else this test checks nothing)"
    assert "work: 2 items done" in relayed
    advice = ("git add", "autostage", "dvc push", "lock file", "%|")  # the command's echo (">") excepted
    assert not [line for line in relayed if not line.startswith(">") and any(a in line for a in advice)], relayed
