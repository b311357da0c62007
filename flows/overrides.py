"""`key.sub=value` overrides applied to params.yaml as `dvc exp run -S` applies them (comments kept), checked
by tasks.core.config before anything runs; a bad one is a StageRejected naming it and leaves the file as it was."""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from flows.stages import StageRejected


def split(setting: str) -> list[str]:
    """'a.b=1,c.d=[1,2]' -> ['a.b=1', 'c.d=[1,2]']: several overrides joined by commas (a list keeps its own)."""
    return re.split(r",(?=[\w.]+=)", setting)


def edited_params(overrides: list[str], root: Path = Path(".")) -> Path:
    """params.yaml with `key.sub=value` overrides applied, keeping its comments (as `dvc exp run -S` does),
    written beside it as `params.yaml.new` and checked by tasks.core.config; returns that file. A bad override
    (not key=value, unknown key or section, below a value, wrong type, out of range) raises StageRejected
    naming it, and nothing is left behind."""
    from ruamel.yaml import YAML

    from tasks.core import config

    ry = YAML()
    ry.width = 4096  # never fold a long value (a URL) onto a second line
    path = root / "params.yaml"
    config.read_yaml(path)  # a params.yaml that is not YAML fails here with its line, not inside ruamel
    data = ry.load(path.read_text())
    for item in overrides:
        key, _, raw = item.partition("=")
        if not _:
            raise StageRejected(f"override {item!r} is not key=value (e.g. train.epochs=3)")
        *parents, leaf = key.split(".")
        node = data
        for depth, part in enumerate(parents):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parents[:depth]) or "params.yaml"
                raise StageRejected(f"override {item!r}: {where} has no section {part!r}")
            node = node[part]
        if not isinstance(node, dict):
            raise StageRejected(f"override {item!r}: {'.'.join(parents)} is a value, not a section")
        node[leaf] = yaml.safe_load(raw)
    tmp = path.with_name(path.name + ".new")
    with open(tmp, "w") as fh:
        ry.dump(data, fh)
    try:
        config.load(tmp)
    except config.ConfigError as err:
        tmp.unlink()
        raise StageRejected(f"override {' '.join(overrides)} rejected, params.yaml left as it was: "
                            f"{str(err).removeprefix(f'{tmp}: ')}") from None
    return tmp


def load_with(overrides: list[str], root: Path = Path(".")):
    """tasks.core.config's Params of params.yaml with `overrides` applied; params.yaml is left as it is."""
    from tasks.core import config

    edited = edited_params(overrides, root)
    try:
        return config.load(edited)
    finally:
        edited.unlink()


def check_params(overrides: list[str], root: Path = Path(".")) -> None:
    """Raise StageRejected (or ConfigError) when params.yaml, with `overrides` applied, would be refused."""
    edited_params(overrides, root).unlink()


def set_params(overrides: list[str], root: Path = Path(".")) -> None:
    """Apply the overrides to params.yaml in one rename, after the check of `edited_params`: a bad override
    leaves the file as it was."""
    os.replace(edited_params(overrides, root), root / "params.yaml")
