"""pneumonia-monitor: a site's scored films against the model's reference (drift tests, the score store, the
MLflow record)."""
