"""Module names from before `tasks/` was grouped in folders, for models packaged before it.

A packaged model ships `tasks/` as its code and its pyfunc imports helpers by name (`tasks.serving`,
`tasks.ood`, ...). Loaded in a fresh process it runs its own copy; loaded where `tasks` is already imported
(pneumonia-predict, the reading room, a site's adapt) it gets this checkout's modules, so each old name resolves
to the module that holds the code now: the same module object, not a copy.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# each folder and the modules that moved into it, under their old names
FOLDERS = {
    "core": "errors files plugins sections config native suite repro",
    "imaging": "dicom images preprocess stress preview data",
    "training": "model batches augment precision system",
    "measure": "inference metrics intervals ood reference gradcam plots evaluation_figures evaluation_report subgroups",
    "records": "tracking registry card show_card",
    "scoring": "serving pyfunc_model server_log predict spark_scoring",
    "monitoring": "monitor monitor_store drift",
}
MOVED = {f"tasks.{m}": f"tasks.{folder}.{m}" for folder, names in FOLDERS.items() for m in names.split()}
MOVED["tasks.pacs.intended_use"] = "tasks.imaging.intended_use"


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds only the names in MOVED; the import system binds each to its new module."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        """The module was run under its new name; nothing to run again."""


def install() -> None:
    if not any(isinstance(f, OldNames) for f in sys.meta_path):
        sys.meta_path.append(OldNames())  # last: only a name no other finder knows reaches it
