"""Site onboarding: a hospital's own films, the few worth labelling, and a model adapted to them.

    pneumonia-site query  --site NAME --images DIR --budget N   # worklist.csv + contact_sheet.png
    pneumonia-site adapt  --site NAME --images DIR --labels F   # models:/<model>@site-NAME
    pneumonia-site report --site NAME                           # site metrics with 95 % intervals

Everything a site has lives in `<paths.sites>/<NAME>/`: `site.yaml` (its images folder and the pinned source
model), the worklist, the validated copy of the reviewer's labels, and a `dvc.yaml` whose stages (`adapt`,
`register`) DVC runs, so the labels and the images are versioned inputs with their hashes in the site's
`dvc.lock`. Modules: `films` (the site's files, patients and labels), `query` (which films to label),
`finetune` (the adaptation, its cross-fitting and the served operating point), `adapt` (the adapt stage),
`package` (the site model's servable parts), `runs` (its MLflow run), `gate` (the site alias), `cli` (the
commands), `report` (what `report` prints), `stage` (the site folder and its DVC stages); the metrics'
intervals over patients come from tasks.measure.intervals.
"""
