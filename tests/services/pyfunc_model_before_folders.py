# ruff: noqa: I001  (verbatim: its module names no longer exist as files, so the sorter takes them for third-party)
# The served model's code as packaged before tasks/ was grouped in folders (tasks/pyfunc_model.py at 5cea6a8),
# verbatim below this comment: tests/services/test_portable_model.py loads a package carrying it.
"""The served model's code, logged as an MLflow "model from code" (no pickled class).

MLflow runs this file when it loads the model: `set_model` names the PythonModel. Decoding and
scoring are tasks.serving's functions, shipped with the model through `code_paths`.
"""
from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class PneumoniaModel(mlflow.pyfunc.PythonModel):
    """Input: DataFrame with an `image` column of base64 image files, any number of rows (scored
    tasks.serving.CHUNK at a time; an HTTP request is capped at tasks.serving.MAX_ROWS). Output: probability,
    label, threshold, ood_score, in_distribution (tasks.serving)."""

    def load_context(self, context):
        from tasks.native import import_tensorflow

        import_tensorflow()  # its native start-up notices kept out of every process that loads the model
        import keras

        from tasks import ood, reference
        from tasks.server_log import quiet_disconnects
        from tasks.serving import http_request, predict_frame

        if http_request():  # in the scoring server: a client hanging up mid-request is one line, not a traceback
            quiet_disconnects()

        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False, safe_mode=True)
        with open(context.artifacts["config"]) as fh:
            self.config = json.load(fh)
        self.detector = ood.load(context.artifacts["ood"])  # plain arrays, allow_pickle=False
        # what monitoring compares a site's films with (tasks.reference); models packaged before it have none
        self.reference = reference.load(context.artifacts["reference"]) if "reference" in context.artifacts else None
        # warm-up: trace the compiled forward pass now (it accepts any batch size), not on the first request
        size = self.config["image_size"]
        predict_frame(self.model, self.config, self.detector, np.zeros((1, size, size), np.uint8))

    # DataFrame in and out: the type hint MLflow takes as "no schema from hints" (the signature is declared in
    # tasks.serving.pyfunc_spec); without any hint MLflow warns on every load
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from tasks.serving import check_request, http_request, predict_column

        if "image" not in getattr(model_input, "columns", []):
            raise MlflowException("input needs an `image` column of base64 image files",
                                  error_code=INVALID_PARAMETER_VALUE)
        column = list(model_input["image"])
        try:
            if http_request():  # the request limits guard the HTTP server, not the model
                check_request(column)
            return predict_column(self.model, self.config, self.detector, column)
        except ValueError as err:  # a BadRow keeps its row as the cause, for batch callers
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from err


mlflow.models.set_model(PneumoniaModel())
