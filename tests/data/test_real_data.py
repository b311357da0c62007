"""The real Kaggle train split, on a subset: counts, patient grouping, no leakage. Skips without ../shared."""
import shutil

import pandas as pd
import pytest

from tasks import ingest, split, validate
from tests.helpers import SHARED_DATA, write_params

pytestmark = [pytest.mark.realdata, pytest.mark.skipif(not (SHARED_DATA / "train").is_dir(),
                                                        reason=f"{SHARED_DATA} is absent")]


@pytest.fixture
def subset(tmp_path):
    """Every 8th file of each class folder: a few hundred images with their real names."""
    root = tmp_path / "chest_xray"
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / "train" / cls).mkdir(parents=True)
        for path in sorted((SHARED_DATA / "train" / cls).iterdir())[::8]:
            shutil.copy(path, root / "train" / cls / path.name)
    return root


def test_real_subset_ingests_validates_and_splits_without_leakage(workdir, subset):
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(subset)}})
    manifest = ingest.run(p)
    n_files = sum(1 for _ in subset.rglob("*.jpeg"))
    assert len(manifest) == n_files
    assert set(manifest["mode"]) == {"RGB"} and set(manifest.width) == {224}
    assert manifest.patient_id.str.match(r"^(person\d+|IM-\d+|NORMAL2-IM-\d+)$").all()
    validate.run(p)
    frame = split.run(p)
    assert frame.groupby("patient_id").split.nunique().max() == 1
    assert frame.groupby("sha256").split.nunique().max() == 1
    balance = pd.Series(frame.groupby("split").label.mean())
    assert balance.max() - balance.min() < 0.06
