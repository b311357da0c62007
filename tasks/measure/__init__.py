"""What a model's scores say: inference, metrics and the operating point, intervals, results by subgroup,
the out-of-distribution detector, the monitoring reference, Grad-CAM and the figures and reports of evaluate."""
