"""Pipeline steps. Each module holds one step's logic: a pure core plus `run(params)`.

DVC runs them as `python -m tasks.<step>`; Prefect (flows/) orchestrates the same stages.
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
