"""The training flow's typed parameters: the params.yaml keys a scheduled or hand-started run most often
changes, each with the type and range tasks.core.config gives it (the one place types live).

Prefect renders them as a form in its UI and checks a deployment run's values against their schema before
the run is created (a 0 in `epochs` is refused there, naming the field); any other key goes through the
flow's `overrides` list of `key=value` strings, checked by tasks.core.config before anything runs.
"""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

# flow parameter: (params.yaml key, what a user reads beside the field)
KEYS = {
    "source": ("ingest.source", "where the images come from: folder (a chest_xray folder or zip), medmnist, demo"),
    "input": ("ingest.input", "the chest_xray folder or zip (folder), the npz cache (medmnist)"),
    "epochs": ("train.epochs", "training epochs (the best validation AUC's weights are kept)"),
    "learning_rate": ("train.learning_rate", "Adam's initial rate; a cosine takes it to 5 % of itself"),
    "batch_size": ("train.batch_size", "images per training step"),
    "seed": ("train.seed", "the training seed (weights, shuffling, augmentation)"),
    "split_seed": ("split.seed", "the seed of the patient-grouped split"),
    "target_sensitivity": ("evaluate.target_sensitivity", "the sensitivity the threshold is chosen for, on validation"),
}


def _field(key: str, doc: str):
    """An optional field with the type and constraints of `key` in tasks.core.config.Params (None: keep params.yaml)."""
    from tasks.core.config import Params

    section, name = key.split(".")
    info = Params.model_fields[section].annotation.model_fields[name]
    kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return Optional[kind], Field(None, description=f"{key}: {doc}")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def overrides(self) -> list[str]:
        """The set fields as `key=value` overrides of params.yaml, in the order of KEYS."""
        return [f"{KEYS[name][0]}={value}" for name, value in self.model_dump().items() if value is not None]


TrainingSettings = create_model("TrainingSettings", __base__=_Base, __doc__="Values of params.yaml for this run; "
                                "an empty field keeps the file's value.",
                                **{name: _field(key, doc) for name, (key, doc) in KEYS.items()})
