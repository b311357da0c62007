"""Parameters: params.yaml holds every value; this module holds only their types, choices and ranges.

`load()` checks the whole file once (pydantic v2) into frozen sections: an unknown, missing, mistyped
or out-of-range key is a `ConfigError` that names the key, raised before any work starts. There are no
defaults here, so a value can never disagree with params.yaml.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError

from tasks.core.errors import StepError
from tasks.core.sections import Below1, Count, Pluggable, Positive, Rate, Section, Share, describe, first_error

PARAMS_FILE = "params.yaml"


class ConfigError(StepError):
    """params.yaml is missing a key, has an unknown one, or a value of the wrong kind or range."""


class Paths(Section):
    raw: str
    manifest: str
    pixels: str
    quarantine: str
    patient_salt: str
    ingest_report: str
    validation: str
    data_docs: str
    data_preview: str
    split: str
    split_report: str
    model_dir: str
    history: str
    train_report: str
    metrics: str
    headline: str
    sweep: str
    figures: str
    curves: str
    predictions: str
    registry: str
    model_card: str  # tasks.records.card: <this>.md and <this>.html
    sites: str  # one folder per onboarded site (tasks.sites)
    monitoring: str  # one folder per monitored site: the films scored, each batch's drift report (tasks.monitoring)
    pacs: str  # one folder per site the reading room serves: ledger, outbox, audit trail (tasks.pacs)
    dvc_remote: str  # the local DVC remote flows set up when the checkout has none (`~` is the home folder)


class Data(Section):
    image_size: Positive


class Ingest(Pluggable):
    registry, where, select = "SOURCES", "ingest", "source"
    source: str  # tasks.core.plugins.SOURCES; its settings: ingest.<source>
    input: str
    on_bad_image: Literal["fail", "skip"]
    min_side: Positive
    max_pixels: Positive
    max_archive_bytes: Positive
    workers: Positive


class Validate(Section):
    min_per_class: Count
    pneumonia_fraction: tuple[Share, Share]
    width: tuple[Positive, Positive]
    height: tuple[Positive, Positive]


class Split(Section):
    val: Below1
    test: Below1
    min_source_val: Count
    seed: int


class Model(Pluggable):
    registry, where, select = "MODELS", "model", "name"
    name: str  # tasks.core.plugins.MODELS; its settings: model.<name>


class FastCnn(Section):
    stem: Positive
    stem_pool: bool
    filters: tuple[Positive, ...]
    convs_per_block: Positive
    dropout: Below1


class Augment(Pluggable):
    registry, where = "AUGMENTATIONS", "train.augment"  # every key a step of tasks.core.plugins.AUGMENTATIONS


class Train(Section):
    epochs: Positive
    batch_size: Positive
    learning_rate: Rate
    patience: Positive
    class_weight: Literal["balanced", "none"]
    label_smoothing: Below1
    normalize: Literal["equalize", "scale"]
    distribute: Literal["none", "mirrored", "multi_worker"]
    precision: Literal["float32", "bfloat16", "auto"]  # tasks.training.precision.policy
    seed: int
    augment: Augment


class Sites(Section):
    query: Literal["random", "typiclust", "badge", "ood"]  # tasks.sites.query.STRATEGIES
    budget: Positive
    measure: Count  # films drawn at random to measure the site model on (tasks.sites.cli); 0: none
    folds: Annotated[int, Field(ge=2, le=10)]
    steps: Positive
    learning_rate: Rate
    site_share: Annotated[float, Field(gt=0, lt=1)]
    target_sensitivity: Share
    metric: Literal["roc_auc", "accuracy", "balanced_accuracy", "specificity"]
    min_improvement: Annotated[float, Field(ge=0)]
    margin: Annotated[float, Field(ge=0, lt=0.5)]  # non-inferiority margin of the first site model (tasks.sites.gate)
    bootstrap: Positive
    seed: int


class Monitor(Section):
    alpha: Annotated[float, Field(gt=0, lt=1)]
    components: Positive
    permutations: Annotated[int, Field(ge=99)]
    min_films: Annotated[int, Field(ge=5)]
    max_films: Annotated[int, Field(ge=20)]
    seed: int


class Ood(Section):
    pass_rate: Annotated[float, Field(gt=0.5, le=1)]  # of validation images under the threshold
    generated: Annotated[int, Field(ge=1)]  # images per generated kind (tasks.measure.ood.KINDS)
    seed: int


class Reference(Section):
    films: Positive
    seed: int


class Evaluate(Pluggable):
    registry, where, select = "THRESHOLDS", "evaluate", "threshold"
    threshold: str  # tasks.core.plugins.THRESHOLDS; its settings: evaluate.<threshold>
    target_sensitivity: Share  # the settings of `target_sensitivity`
    calibrate: Literal["platt", "temperature", "none"]
    prevalence: Annotated[float, Field(gt=0, lt=1)]
    tta: Annotated[int, Field(ge=0, le=5)]  # tasks.measure.inference.MAX_TTA fixed views
    gradcam: Count
    bootstrap: Count  # resamples of the test patients for the intervals (tasks.evaluate.test_intervals); 0: none
    stress: dict[str, float]
    ood: Ood
    reference: Reference


class Tracking(Section):
    uri: str
    artifacts: str
    experiment: str
    ui: str  # where links point for a local store (a tracking server's links use its own address)


class Register(Section):
    model_name: str
    metric: str  # register checks it names a test metric
    min_improvement: Annotated[float, Field(ge=0)]  # a negative one would promote a worse model
    min_sensitivity: Share
    min_specificity: Share


class Orchestration(Section):
    stage_timeout_minutes: Positive  # flows.stages.run_stage kills a stage that runs longer
    notify_block: str  # flows.notify.send: "<block-type-slug>/<name>" of a Prefect notification block, or ""


class IntendedUse(Section):
    """Who and what the model is for (tasks.imaging.intended_use refuses the rest before scoring)."""
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    views: tuple[str, ...]
    age_years: tuple[Count, Count]  # whole years, both ends included
    allow_missing: bool  # a film without body part, view or age passes (false: refused)


class Pacs(Section):
    url: str  # the archive's DICOMweb root; $PNEUMONIA_PACS_URL overrides; credentials only from the environment
    lookback_days: Count  # QIDO-RS asks for studies of the last N days (StudyDate); 0: every study
    chunk: Positive  # instances retrieved, scored and stored at a time
    retries: Count  # of a refused connection or a 5xx, with exponential backoff
    backoff_seconds: Annotated[float, Field(ge=0)]
    timeout_seconds: Rate


class Params(Section):
    paths: Paths
    data: Data
    ingest: Ingest
    validate_: Validate = Field(alias="validate")  # `validate` is a BaseModel method
    split: Split
    model: Model
    train: Train
    sites: Sites
    monitor: Monitor
    evaluate: Evaluate
    tracking: Tracking
    register_: Register = Field(alias="register")  # `register` too (BaseModel's ABC metaclass)
    orchestration: Orchestration
    intended_use: IntendedUse
    pacs: Pacs

    # the sections under their params.yaml names
    @property
    def validate(self) -> Validate:
        return self.validate_

    @property
    def register(self) -> Register:
        return self.register_


def read_yaml(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run from the repository root or pass the params file")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        what = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}{where}: {what}; fix that line (YAML indents with spaces, never tabs)") from None


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Load and check params.yaml (every section, so a typo fails before any work)."""
    try:
        return Params.model_validate(read_yaml(path))
    except ValidationError as err:
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(f"{path}: {describe(first_error(err), Params)}{more}") from None
