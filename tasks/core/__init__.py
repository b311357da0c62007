"""The floor every other part stands on: errors, atomic files, params (config, sections, plugins), quiet native
imports, the Great Expectations runner and the `dvc repro` runner. Imports nothing else of the project."""
