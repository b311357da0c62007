"""What MLflow keeps: runs (tracking), the registry edge (every alias lookup and move) and the model card."""
