"""The served model's code, logged as an MLflow "model from code" (no pickled class).

MLflow runs this file when it loads the model: `set_model` names the PythonModel. Decoding and
scoring are tasks.scoring.serving's functions, shipped with the model through `code_paths`.
"""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class PneumoniaModel(mlflow.pyfunc.PythonModel):
    """Input: DataFrame with an `image` column of base64 image files, any number of rows (scored
    tasks.scoring.serving.CHUNK at a time; an HTTP request is capped at tasks.scoring.serving.MAX_ROWS).
    Output: probability, label, threshold, ood_score, in_distribution (tasks.scoring.serving); with the param
    `errors="rows"`, a row that cannot be decoded is not refused with the batch: it has no scores and its reason
    in an added `error` column."""

    def load_context(self, context):
        from tasks.core.native import import_tensorflow

        import_tensorflow()  # its native start-up notices kept out of every process that loads the model
        import keras

        from tasks.measure import ood, reference
        from tasks.scoring.contract import ServingConfig
        from tasks.scoring.server_log import quiet_disconnects
        from tasks.scoring.serving import http_request, predict_frame

        if http_request():  # in the scoring server: a client hanging up mid-request is one line, not a traceback
            quiet_disconnects()

        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False, safe_mode=True)
        self.config = ServingConfig.load(context.artifacts["config"])
        self.detector = ood.load(context.artifacts["ood"])  # plain arrays, allow_pickle=False
        # what monitoring compares a site's films with (tasks.measure.reference); models packaged before it have none
        self.reference = reference.load(context.artifacts["reference"]) if "reference" in context.artifacts else None
        # warm-up: trace the compiled forward pass now (it accepts any batch size), not on the first request
        size = self.config.image_size
        predict_frame(self.model, self.config, self.detector, np.zeros((1, size, size), np.uint8))

    # DataFrame in and out: the type hint MLflow takes as "no schema from hints" (the signature is declared in
    # tasks.scoring.serving.pyfunc_spec); without any hint MLflow warns on every load
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from tasks.scoring.serving import check_request, http_request, predict_column

        if "image" not in getattr(model_input, "columns", []):
            raise MlflowException("input needs an `image` column of base64 image files",
                                  error_code=INVALID_PARAMETER_VALUE)
        column = list(model_input["image"])
        try:
            if http_request():  # the request limits guard the HTTP server, not the model
                check_request(column)
            out = predict_column(self.model, self.config, self.detector, column,
                                 errors=(params or {}).get("errors", "raise"))
        except ValueError as err:  # a BadRow keeps its row as the cause, for batch callers
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from err
        if http_request() and "error" in out:  # JSON's null for a bad row's missing scores, not a bare NaN
            out = out.astype(object).where(out.notna(), None)
        return out


mlflow.models.set_model(PneumoniaModel())
