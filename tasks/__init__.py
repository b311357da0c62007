"""The pipeline's code. At the top: the seven stages (each a pure core plus `run(params)`), the runner every
command shares (cli) and what each command records in MLflow (recorders/); below them, folders from the floor up:
core, imaging, sources, training, measure, records, scoring, sites, monitoring, pacs (tests/unit/test_imports.py
holds the order: a folder imports only its own floor and those below).

DVC runs the stages as `python -m tasks.<step>`; Prefect (flows/) orchestrates the same stages.
This package never imports Prefect.
"""
import os
import warnings

# Quiet defaults, set before anything imports TensorFlow or MLflow (each can be overridden from the
# environment): TensorFlow's C++ INFO and WARNING lines (CPU feature notes, oneDNN notices), MLflow's
# download bars for a few small artifacts and its INFO lines ("Validating input example against model
# signature", each time a model is logged) are not the pipeline's story; warnings and errors still print.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# MLflow imports pyspark when it is installed (the spark extra), and pyspark 4.3 warns on import that pandas 3 is
# newer than it was tested with: a FutureWarning on every command's stderr, that this package's Spark tests answer
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

from tasks.core import moved  # noqa: E402  (after the environment defaults above: it imports nothing heavy)

moved.install()  # models packaged before the folders import their helpers by the old names
