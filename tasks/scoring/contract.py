"""The serving contract: what a packaged model's `serving.json` says about turning pixels into a decision.

Written by evaluate (the pipeline's model) and by a site's adapt (tasks.sites.package); read by the pyfunc, the
batch and Spark paths, monitoring, the reading room and the site loop, all through `ServingConfig`. Packages
written before a field existed are handled here, once: no `bias` (temperature scaling only) means 0, no `tta`
means none. A pyfunc loaded from an older package may still hold the plain dict; `ServingConfig.of` takes both.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    image_size: int  # the square the film is resized to (data.image_size)
    normalize: str  # tasks.imaging.preprocess.normalize's mode (train.normalize)
    threshold: float  # on the calibrated probability: at or above it, PNEUMONIA
    temperature: float = 1.0  # calibration: sigmoid(logit(raw) / temperature + bias)
    bias: float = 0.0
    tta: int = 0  # test-time augmentation passes (evaluate.tta)

    @classmethod
    def of(cls, config: ServingConfig | dict) -> ServingConfig:
        """A ServingConfig from itself or from serving.json's dict (keys it does not know are ignored)."""
        if isinstance(config, cls):
            return config
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(config)
        if missing:
            raise ValueError(f"serving config lacks {', '.join(sorted(missing))}: package the model again")
        return cls(**{k: v for k, v in config.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> ServingConfig:
        return cls.of(json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        from tasks.core.files import write_json

        write_json(path, dataclasses.asdict(self))

    def with_point(self, op: dict) -> ServingConfig:
        """The same preprocessing with another operating point ({temperature, bias, threshold})."""
        return dataclasses.replace(self, temperature=float(op["temperature"]), bias=float(op.get("bias", 0.0)),
                                   threshold=float(op["threshold"]))

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated probability of the network's raw scores."""
        from tasks.measure.metrics import apply_temperature

        return apply_temperature(raw, self.temperature, self.bias)

    def decide(self, prob: np.ndarray) -> np.ndarray:
        """True where the calibrated probability says PNEUMONIA."""
        return np.asarray(prob) >= self.threshold
