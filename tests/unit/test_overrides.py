"""flows/overrides.py and flows/stages.py without a server: overrides applied as `dvc exp run -S` applies them,
refused whole when one is bad, and the workspace lock."""
import subprocess
import sys
from pathlib import Path

import pytest

from flows import overrides, stages
from tests.helpers import REPO


def test_flow_runs_exactly_the_dvc_stages_in_order():
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "--name-only"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    assert stages.stage_names(REPO) == out
    assert stages.stage_names(REPO)[:3] == ["ingest", "validate", "split"]


def test_overrides_keep_comments_and_reject_unknown_sections(tmp_path):
    original = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(original)
    overrides.set_params(["train.learning_rate=0.001"], tmp_path)
    expected = original.replace("  learning_rate: 0.002        # peak", "  learning_rate: 0.001        # peak")
    assert expected != original and (tmp_path / "params.yaml").read_text() == expected
    with pytest.raises(stages.StageRejected, match="no section"):
        overrides.set_params(["nope.x=1"], tmp_path)


def test_a_setting_splits_into_its_overrides_and_a_list_stays_whole():
    setting = "model.fast_cnn.filters=[32,64,128],data.image_size=96"
    assert overrides.split(setting) == ["model.fast_cnn.filters=[32,64,128]", "data.image_size=96"]
    assert overrides.split("train.epochs=3") == ["train.epochs=3"]


def test_params_loaded_with_overrides_leave_params_yaml_as_it_was(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    p = overrides.load_with(overrides.split("train.epochs=3,model.fast_cnn.filters=[16,32,64]"), tmp_path)
    assert p.train.epochs == 3 and list(p.model.fast_cnn.filters) == [16, 32, 64]
    assert (tmp_path / "params.yaml").read_text() == (REPO / "params.yaml").read_text()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("override, match", [("train.epochs=many", "params.train.epochs"),
                                             ("train.epoch=3", "unknown key `params.train.epoch`"),
                                             ("train.class_weight=auto", "'balanced' or 'none'")])
def test_a_bad_override_leaves_params_yaml_as_it_was(tmp_path, override, match):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    with pytest.raises(stages.StageRejected, match=match):
        overrides.set_params(["train.batch_size=16", override], tmp_path)
    assert (tmp_path / "params.yaml").read_text() == (REPO / "params.yaml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_second_run_on_the_workspace_stops_and_names_the_first(tmp_path):
    code = ("import sys, time; from pathlib import Path; from flows import stages\n"
            "with stages.workspace_lock('first-flow', Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(stages.StageRejected, match=f"in use by .*first-flow.*{holder.pid}"):
            with stages.workspace_lock("second-flow", tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with stages.workspace_lock("second-flow", tmp_path):  # the holder died: the OS released its lock
        assert "second-flow" in (tmp_path / stages.LOCK_FILE).read_text()
