import json
from pathlib import Path

import pandas as pd
import pytest

from tasks import ingest, validate
from tests.helpers import TINY_DEMO, write_params


@pytest.fixture
def demo_params(workdir):
    p = write_params(workdir, TINY_DEMO)
    ingest.run(p)
    return p


def test_clean_manifest_passes_and_writes_docs_and_preview(demo_params):
    p = demo_params
    validate.run(p)
    result = json.loads(open(p.paths.validation).read())
    assert result["success"] and result["failures"] == []
    assert (Path(p.paths.data_docs) / "index.html").read_text().lstrip().startswith("<")
    assert open(p.paths.data_preview, "rb").read(4) == b"\x89PNG"


def test_duplicate_image_across_patients_fails_with_one_line_per_failure(demo_params):
    p = demo_params
    manifest = pd.read_csv(p.paths.manifest)
    manifest.loc[1, "sha256"] = manifest.loc[0, "sha256"]
    manifest.loc[1, "patient_id"] = "SOMEONE-ELSE"
    manifest.loc[2, "class"] = "COVID"
    manifest.to_csv(p.paths.manifest, index=False)
    with pytest.raises(validate.SuiteFailed) as err:
        validate.run(p)
    lines = str(err.value).splitlines()
    assert any("belong to two patients" in line and manifest.path[1] in line for line in lines)
    assert any("`class`" in line and "COVID" in line for line in lines)
    assert "index.html" in lines[-1]
    saved = json.loads(open(p.paths.validation).read())
    assert not saved["success"] and len(saved["failures"]) >= 2
    assert list((Path(p.paths.data_docs) / "validations").rglob("*.html")), "Data Docs show the failed run"


def test_class_balance_bounds_come_from_params(workdir):
    p = write_params(workdir, {**TINY_DEMO, "validate": {"min_per_class": 5, "pneumonia_fraction": [0.9, 1.0]}})
    ingest.run(p)
    with pytest.raises(validate.SuiteFailed, match="expect_column_mean_to_be_between on `label`"):
        validate.run(p)


def test_identical_bytes_under_two_labels_are_a_conflict_named_by_file(demo_params):
    p = demo_params
    manifest = pd.read_csv(p.paths.manifest)
    normal, sick = manifest.index[manifest.label == 0][0], manifest.index[manifest.label == 1][0]
    manifest.loc[sick, ["sha256", "patient_id"]] = manifest.loc[normal, ["sha256", "patient_id"]].to_numpy()
    manifest.to_csv(p.paths.manifest, index=False)
    with pytest.raises(validate.SuiteFailed) as err:
        validate.run(p)
    conflict = [line for line in str(err.value).splitlines() if "label conflict" in line]
    assert len(conflict) == 1 and "2 file(s)" in conflict[0]
    assert manifest.path[normal] in conflict[0] and manifest.path[sick] in conflict[0]


def test_a_split_with_one_class_is_refused(demo_params):
    p = demo_params
    manifest = pd.read_csv(p.paths.manifest)
    manifest.loc[manifest.index[manifest.label == 1][:10], "source_split"] = "test"  # a test split of pneumonia only
    manifest.to_csv(p.paths.manifest, index=False)
    with pytest.raises(validate.SuiteFailed, match="a source split holds one class only"):
        validate.run(p)
