"""Extension points: one registry each for data sources, model builders, augmentation steps and threshold
methods. A new one costs one module (the implementation and, if it takes settings, their pydantic section)
and one params.yaml section under the name it is registered with.

| registry | chosen by | its settings in params.yaml | the implementation is called as |
|---|---|---|---|
| SOURCES | `ingest.source` | `ingest.<name>` | `fn(settings, ingest, workdir) -> Path` (a folder or an .npz) |
| MODELS | `model.name` | `model.<name>` | `fn(settings, image_size) -> keras.Model` (uncompiled) |
| AUGMENTATIONS | every key of `train.augment` | `train.augment.<name>` | `fn(settings, seed) -> keras layer or None` |
| THRESHOLDS | `evaluate.threshold` | `evaluate.<name>` | `fn(y, prob, settings) -> float` |

A source returns a folder in the Kaggle layout (`<split>/<CLASS>/<files>`, read and decoded by ingest) or an
`.npz` in the MedMNIST layout (`<split>_images`, `<split>_labels`). An augmentation returns None to stand
aside (the flip, when off). Settings are validated when params.yaml is loaded (tasks.core.config), so a typo fails
before any work; an entry with no settings type takes none (its section may be left out).

Entries come from the built-ins below (named by "module:attribute", imported on first use, so checking params
never imports keras) and from installed packages' entry points in the group `pneumonia_mlops.<registry>`
(`sources`, `models`, `augmentations`, `thresholds`), each pointing at an `Entry`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any


class UnknownEntry(KeyError):
    """No entry of that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve(target: Any) -> Any:
    """An object, or the one a "module:attribute" string names."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Entry:
    """One implementation: `target` (a callable or "module:attribute") and `settings`, the type its params
    section is validated as (a pydantic model, a plain type, or "module:attribute"; None: it takes none)."""

    target: Any
    settings: Any = None


class Registry:
    """Named entries of one kind; entry points of `pneumonia_mlops.<kind>` are read on the first lookup."""

    def __init__(self, kind: str, builtin: dict[str, Entry]):
        self.kind, self.entries, self._loaded = kind, dict(builtin), False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for ep in entry_points(group=f"pneumonia_mlops.{self.kind}"):
                self.entries.setdefault(ep.name, ep.load())

    def names(self) -> list[str]:
        self._load()
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def entry(self, name: str) -> Entry:
        if name not in self:
            raise UnknownEntry(f"{name!r} is not a known {self.kind[:-1]}; known: {', '.join(self.names())}")
        return self.entries[name]

    def get(self, name: str):
        """The implementation of `name`."""
        return resolve(self.entry(name).target)

    def settings(self, name: str):
        """The type `name`'s params section is validated as, or None."""
        return resolve(self.entry(name).settings)


SOURCES = Registry("sources", {
    "demo": Entry("tasks.sources.demo:source", "tasks.sources.demo:Demo"),
    "folder": Entry("tasks.sources.folder:source"),
    "medmnist": Entry("tasks.sources.medmnist:source", "tasks.sources.medmnist:MedMNIST"),
})
MODELS = Registry("models", {
    "fast_cnn": Entry("tasks.training.model:fast_cnn", "tasks.core.config:FastCnn"),
    "seed_cnn": Entry("tasks.training.model:seed_cnn"),
})
AUGMENTATIONS = Registry("augmentations", {
    "rotation": Entry("tasks.training.augment:rotation", "tasks.core.sections:Amount"),
    "zoom": Entry("tasks.training.augment:zoom", "tasks.core.sections:Amount"),
    "shift": Entry("tasks.training.augment:shift", "tasks.core.sections:Amount"),
    "brightness": Entry("tasks.training.augment:brightness", "tasks.core.sections:Amount"),
    "contrast": Entry("tasks.training.augment:contrast", "tasks.core.sections:Amount"),
    "horizontal_flip": Entry("tasks.training.augment:horizontal_flip", bool),
})
THRESHOLDS = Registry("thresholds", {
    "target_sensitivity": Entry("tasks.measure.metrics:target_sensitivity_threshold", "tasks.core.sections:Share"),
    "youden": Entry("tasks.measure.metrics:youden_threshold"),
})
