"""What each command records in MLflow, in one place: `stages` (the pipeline's steps, through tasks.cli),
`monitoring` (pneumonia-monitor's tested batches), `site` (a site's adapt). They sit at the top beside the runner:
each reads a command's finished result and writes nothing a stage's output depends on (tasks.records.tracking is
the edge they write through)."""
