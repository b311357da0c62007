"""The building blocks of params.yaml's sections (tasks.core.config): the frozen `Section`, the value types, the
`Pluggable` section whose keys name entries of a registry (tasks.core.plugins), and the sentences that name a bad
key. No values live here."""
from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tasks.core import plugins


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1)]
Below1 = Annotated[float, Field(ge=0, lt=1)]
Amount = Annotated[float, Field(ge=0)]
Rate = Annotated[float, Field(gt=0)]


class Pluggable(Section):
    """A section whose other keys name entries of a registry (tasks.core.plugins), each validated as that entry's
    settings. `select` is the field that chooses one entry (None: every key is an active entry, in order);
    `where` is the section's place in params.yaml, for messages."""

    model_config = ConfigDict(extra="allow", frozen=True)
    registry: ClassVar[str]
    where: ClassVar[str]
    select: ClassVar[str | None] = None

    @model_validator(mode="after")
    def _entries(self):
        known = getattr(plugins, self.registry)
        extra = self.__pydantic_extra__
        for key, raw in extra.items():
            if key not in known:
                raise ValueError(f"unknown key `params.{self.where}.{key}`; known keys: "
                                 f"{', '.join(keys_at(type(self), ()))}")
            extra[key] = settings_value(known.settings(key), raw, f"params.{self.where}.{key}")
        if self.select:
            chosen = getattr(self, self.select)
            if chosen not in known:
                raise ValueError(f"`params.{self.where}.{self.select}`: {chosen!r} is not known; choose one of "
                                 f"{', '.join(known.names())}")
            if known.settings(chosen) is not None and self.setting(chosen) is None:
                raise ValueError(f"missing key `params.{self.where}.{chosen}` (the settings of {chosen})")
        return self

    def setting(self, name: str | None = None):
        """The settings of entry `name` (default: the chosen one), or None when it has none."""
        name = name or getattr(self, self.select)
        return getattr(self, name) if name in type(self).model_fields else self.__pydantic_extra__.get(name)

    def active(self) -> list[tuple[str, object]]:
        """(name, settings) of every entry given, in params.yaml order."""
        return list(self.__pydantic_extra__.items())


def settings_value(kind, raw, key: str):
    """`raw` validated as an entry's settings type (no type: an empty section only); `key` names it."""
    if kind is None:
        if raw:
            raise ValueError(f"`{key}` takes no settings; leave it empty ({{}})")
        return None
    try:
        return TypeAdapter(kind).validate_python(raw)
    except ValidationError as err:
        raise ValueError(describe(first_error(err), kind, key)) from None


def keys_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a mapping may hold at `loc` below the section `root`."""
    model = root
    for part in loc:
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        kind = field.annotation if field is not None else entry_settings(model, part)
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            return []
        model = kind
    names = {f.alias or name for name, f in model.model_fields.items()}
    if issubclass(model, Pluggable):
        names |= set(getattr(plugins, model.registry).names())
    return sorted(names)


def entry_settings(model: type[BaseModel], name: str):
    """The settings type of entry `name` when `model` is a pluggable section, else None."""
    if not issubclass(model, Pluggable):
        return None
    try:
        return getattr(plugins, model.registry).settings(name)
    except plugins.UnknownEntry:
        return None


def describe(error: dict, root: type[BaseModel], prefix: str = "params") -> str:
    """One pydantic error of validating `root` (found at `prefix`) as a sentence that names the key."""
    key = ".".join([prefix, *map(str, error["loc"])])
    if error["type"] == "extra_forbidden":
        known = keys_at(root, error["loc"][:-1]) if isinstance(root, type) and issubclass(root, BaseModel) else []
        return f"unknown key `{key}`; known keys: {', '.join(known)}"
    if error["type"] == "missing":
        return f"missing key `{key}`"
    if error["type"] == "value_error":  # a pluggable section's own check: the message names the key
        return str(error["ctx"]["error"])
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"`{key}`: {message}, got {error['input']!r}"


def first_error(err: ValidationError) -> dict:
    """The error to name: a typo shows as an unknown key and a missing one, so the unknown key first."""
    return sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]


def flat_params(obj, prefix: str = "") -> dict[str, str]:
    """Sections (or dicts) as {'train.augment.zoom': '0.1', ...}: the params MLflow logs and the training
    fingerprint hashes."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(by_alias=True)
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, (BaseModel, dict)):
            out.update(flat_params(value, name + "."))
        else:
            out[name] = str(value)
    return out
