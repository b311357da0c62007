"""The registered model's name and alias: shared by register (which moves the alias) and predict (which loads it)."""
from __future__ import annotations

from tasks.config import Params

ALIAS = "champion"


def model_name(p: Params) -> str:
    """Demo data registers under its own name, so it can never replace a model trained on real data."""
    return p.register.model_name + ("-demo" if p.ingest.source == "demo" else "")
