"""Typed, frozen parameters loaded from params.yaml.

`load()` turns each section into a frozen dataclass; an unknown or missing key is a
`ConfigError` that names the key and the file, raised before any work starts.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tasks.cli import StepError

PARAMS_FILE = "params.yaml"


class ConfigError(StepError):
    """params.yaml is missing a key, has an unknown one, or a value of the wrong kind."""


@dataclass(frozen=True)
class Paths:
    raw: str
    manifest: str
    pixels: str
    quarantine: str
    ingest_report: str
    validation: str
    data_docs: str
    data_preview: str
    split: str
    split_report: str
    model_dir: str = "models"
    history: str = "reports/history.csv"
    train_report: str = "reports/train.json"
    metrics: str = "reports/metrics.json"
    sweep: str = "reports/sweep.md"  # the sweep flow's results table (and .json beside it)
    figures: str = "reports/figures"
    curves: str = "reports/curves"
    predictions: str = "reports/predictions.csv"
    registry: str = "reports/registry.json"


@dataclass(frozen=True)
class Data:
    image_size: int = 128


@dataclass(frozen=True)
class Demo:
    patients: int = 160
    max_images_per_patient: int = 3
    pneumonia_fraction: float = 0.7
    size: int = 128
    seed: int = 7


@dataclass(frozen=True)
class MedMNIST:
    size: int = 128
    url: str = "https://zenodo.org/records/10519652/files/pneumoniamnist{suffix}.npz?download=1"
    md5: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ingest:
    source: str = "demo"
    input: str = "tasks/sources/demo.py"
    on_bad_image: str = "fail"
    min_side: int = 32
    max_pixels: int = 80_000_000
    max_archive_bytes: int = 8_000_000_000
    workers: int = 2
    demo: Demo = Demo()
    medmnist: MedMNIST = MedMNIST()


@dataclass(frozen=True)
class Validate:
    min_per_class: int = 20
    pneumonia_fraction: tuple = (0.2, 0.9)
    width: tuple = (32, 10000)
    height: tuple = (32, 10000)


@dataclass(frozen=True)
class Split:
    val: float = 0.15
    test: float = 0.15
    min_source_val: int = 100
    seed: int = 42


@dataclass(frozen=True)
class Model:
    name: str = "fast_cnn"
    stem: int = 24
    stem_pool: bool = True
    filters: tuple = (48, 96, 192)
    convs_per_block: int = 2
    dropout: float = 0.3
    crop: float = 0.0


@dataclass(frozen=True)
class Augment:
    rotation: float = 0.03
    zoom: float = 0.1
    shift: float = 0.06
    brightness: float = 0.1
    contrast: float = 0.25
    low_resolution: float = 1.0
    noise: float = 0.0
    horizontal_flip: bool = False


@dataclass(frozen=True)
class Train:
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 0.002
    patience: int = 5
    class_weight: str = "balanced"
    label_smoothing: float = 0.05
    normalize: str = "equalize"
    distribute: str = "none"
    seed: int = 42
    mixup: float = 0.0
    ema: float = 0.0
    augment: Augment = Augment()


@dataclass(frozen=True)
class Site:
    images: str = "none"
    folds: int = 2


@dataclass(frozen=True)
class Adapt:
    enabled: bool = False
    epochs: int = 3
    learning_rate: float = 0.0002
    positive_share: float = 0.5
    negative_share: float = 0.25
    repeat: int = 5


@dataclass(frozen=True)
class Evaluate:
    threshold: str = "target_sensitivity"
    target_sensitivity: float = 0.95
    calibrate: str = "platt"
    prevalence: float = 0.63
    tta: int = 3
    gradcam: int = 4
    stress: dict = field(default_factory=lambda: {"contrast": 0.7, "gamma": 1.4, "blur": 1.0, "noise": 8.0,
                                                  "resolution": 0.5})


@dataclass(frozen=True)
class Tracking:
    uri: str = "sqlite:///mlruns/mlflow.db"
    artifacts: str = "mlruns/artifacts"
    experiment: str = "pneumonia-classifier"


@dataclass(frozen=True)
class Register:
    model_name: str = "pneumonia-classifier"
    metric: str = "roc_auc"
    min_improvement: float = 0.002
    min_sensitivity: float = 0.85
    min_specificity: float = 0.6


@dataclass(frozen=True)
class Params:
    paths: Paths
    data: Data = Data()
    ingest: Ingest = Ingest()
    validate: Validate = Validate()
    split: Split = Split()
    model: Model = Model()
    train: Train = Train()
    site: Site = Site()
    adapt: Adapt = Adapt()
    evaluate: Evaluate = Evaluate()
    tracking: Tracking = Tracking()
    register: Register = Register()


FLOAT_1_1 = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def build(cls, values, where: str):
    """Build dataclass `cls` from a mapping, recursing into nested dataclass fields."""
    if not isinstance(values, dict):
        raise ConfigError(f"params.yaml: `{where}` must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"params.yaml: unknown key `{where}.{unknown[0]}`; known keys: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"params.yaml: missing key `{where}.{f.name}`")
            continue
        value, hint = values[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = build(hint, value, f"{where}.{f.name}")
        elif hint is tuple and isinstance(value, list):
            value = tuple(value)
        elif hint is float and isinstance(value, str) and FLOAT_1_1.fullmatch(value):
            value = float(value)  # YAML 1.1 reads `1e-4` (no dot) as a string; it is the number a user meant
        elif hint in (int, float, str) and not isinstance(value, (int, float) if hint is float else hint):
            raise ConfigError(f"params.yaml: `{where}.{f.name}` must be {hint.__name__}, got {value!r}")
        kwargs[f.name] = value
    return cls(**kwargs)


def read_yaml(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run from the repository root or pass the params file")
    return yaml.safe_load(path.read_text()) or {}


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Load and check params.yaml (every section, so a typo fails before any work)."""
    return build(Params, read_yaml(path), "params")


def flat_params(obj, prefix: str = "") -> dict[str, str]:
    """A nested dataclass/dict as {'train.augment.zoom': '0.1', ...}: the params MLflow logs and the
    training fingerprint hashes."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) or isinstance(value, dict):
            out.update(flat_params(value, name + "."))
        else:
            out[name] = str(value)
    return out
