"""The serving contract (tasks/scoring/contract.py): serving.json as written by evaluate and a site's adapt, and
as packages written before a field existed left it."""
import json

import numpy as np
import pytest

from tasks.measure.metrics import apply_temperature
from tasks.scoring.contract import ServingConfig


def test_a_config_saved_is_the_config_loaded(tmp_path):
    cfg = ServingConfig(image_size=48, normalize="equalize", threshold=0.3, temperature=1.7, bias=-0.2, tta=2)
    cfg.save(tmp_path / "serving.json")
    assert ServingConfig.load(tmp_path / "serving.json") == cfg
    assert set(json.loads((tmp_path / "serving.json").read_text())) == {
        "image_size", "normalize", "threshold", "temperature", "bias", "tta"}


def test_a_package_from_before_platt_and_tta_loads_with_neither(tmp_path):
    (tmp_path / "serving.json").write_text(json.dumps({"image_size": 64, "normalize": "none", "temperature": 2.0,
                                                       "threshold": 0.5, "note": "a key it does not know"}))
    cfg = ServingConfig.load(tmp_path / "serving.json")
    assert (cfg.bias, cfg.tta) == (0.0, 0)
    assert ServingConfig.of(cfg) is cfg


def test_a_config_without_its_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        ServingConfig.of({"image_size": 64, "normalize": "none"})


def test_calibrate_and_decide_are_the_pipelines_calibration_and_threshold():
    raw = np.linspace(0.01, 0.99, 50)
    cfg = ServingConfig(image_size=48, normalize="none", threshold=0.4, temperature=1.5, bias=0.3)
    prob = cfg.calibrate(raw)
    assert np.allclose(prob, apply_temperature(raw, 1.5, 0.3))
    assert (cfg.decide(prob) == (prob >= 0.4)).all() and 0 < cfg.decide(prob).sum() < len(raw)
    moved = cfg.with_point({"temperature": 1.0, "bias": 0.0, "threshold": 0.9})
    assert (moved.image_size, moved.normalize, moved.threshold) == (48, "none", 0.9)
    assert cfg.threshold == 0.4  # frozen: the original is unchanged
