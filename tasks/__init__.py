"""Pipeline steps. Each module holds one step's logic: a pure core plus `run(params)`.

DVC runs them as `python -m tasks.<step>`; Prefect (flows/) orchestrates the same stages.
This package never imports Prefect.
"""
import os
import warnings

# Quiet defaults, set before anything imports TensorFlow or MLflow (each can be overridden from the
# environment): TensorFlow's C++ INFO and WARNING lines (CPU feature notes, oneDNN notices) and MLflow's
# download bars for a few small artifacts are not the pipeline's story; errors still print.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# the served model declares its signature explicitly (tasks.serving.pyfunc_spec): type hints would add nothing
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)
