"""A scores table's checks before pneumonia-monitor --scores loads a model (tasks.monitoring.backfill.read)."""
from pathlib import Path

import pandas as pd
import pytest

from tasks.core import config
from tasks.core.errors import StepError
from tasks.monitoring import backfill
from tests.helpers import REPO


@pytest.fixture
def p():
    return config.load(REPO / "params.yaml")


def table(n: int, uri: str = "models:/m@champion", version: str = "3") -> pd.DataFrame:
    return pd.DataFrame({"file": [f"/films/f{i}.png" for i in range(n)], "probability": [i / n for i in range(n)],
                         "ood_score": 0.5, "model_uri": uri, "model_version": version})


def test_error_rows_are_left_out_and_the_alias_is_pinned_to_the_version_scored(p, tmp_path):
    rows = table(25).assign(error=None)
    rows.loc[3, ["probability", "error"]] = [None, "not an image"]
    rows.to_parquet(tmp_path / "out.parquet")
    read = backfill.read(p, tmp_path / "out.parquet")
    assert len(read) == 24 and "/films/f3.png" not in set(read.file)
    assert backfill.model_uri(read) == "models:/m/3"
    rows.to_csv(tmp_path / "out.csv", index=False)
    assert len(backfill.read(p, tmp_path / "out.csv")) == 24
    assert backfill.model_uri(table(1, uri="runs:/abc/model", version="")) == "runs:/abc/model"


@pytest.mark.parametrize("rows, words", [
    (pd.concat([table(20), table(20, version="4")]), "holds the scores of 2 models"),
    (table(5), "holds 5 scored film(s); the drift test needs monitor.min_films (20)"),
    (table(30).drop(columns="ood_score"), "has no `ood_score` column"),
])
def test_a_table_that_cannot_be_one_batch_is_refused(p, tmp_path, rows, words):
    rows.to_csv(tmp_path / "out.csv", index=False)
    with pytest.raises(StepError, match=words.replace("(", r"\(").replace(")", r"\)")):
        backfill.read(p, tmp_path / "out.csv")
