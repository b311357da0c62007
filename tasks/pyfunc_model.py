"""The served model's code, logged as an MLflow "model from code" (no pickled class).

MLflow runs this file when it loads the model: `set_model` names the PythonModel. Decoding and
scoring are tasks.serving's functions, shipped with the model through `code_paths`.
"""
from __future__ import annotations

import json

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class PneumoniaModel(mlflow.pyfunc.PythonModel):
    """Input: DataFrame with an `image` column of base64 image files. Output: probability, label, threshold,
    ood_score, in_distribution (tasks.serving)."""

    def load_context(self, context):
        import keras

        from tasks import ood
        from tasks.serving import predict_frame

        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False, safe_mode=True)
        with open(context.artifacts["config"]) as fh:
            self.config = json.load(fh)
        self.detector = ood.load(context.artifacts["ood"])  # plain arrays, allow_pickle=False
        # warm-up: trace the compiled forward pass now (it accepts any batch size), not on the first request
        size = self.config["image_size"]
        predict_frame(self.model, self.config, self.detector, np.zeros((1, size, size), np.uint8))

    def predict(self, context, model_input, params=None):
        from tasks.serving import decode_images, predict_frame

        if "image" not in getattr(model_input, "columns", []):
            raise MlflowException("input needs an `image` column of base64 image files",
                                  error_code=INVALID_PARAMETER_VALUE)
        try:
            images = decode_images(list(model_input["image"]), self.config["image_size"])
        except ValueError as err:
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from None
        return predict_frame(self.model, self.config, self.detector, images)


mlflow.models.set_model(PneumoniaModel())
