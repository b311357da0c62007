"""Pipeline steps. Each module holds one step's logic: a pure core plus `run(params)`.

DVC runs them as `python -m tasks.<step>`; Prefect (flows/) orchestrates the same stages.
This package never imports Prefect.
"""
