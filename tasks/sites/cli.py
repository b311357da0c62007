"""pneumonia-site: onboard a hospital: pick the films worth labelling, adapt on the labels, report.

    pneumonia-site query  --site NAME (--images DIR | --pacs [URL]) [--budget N] [--strategy S] [--exclude CSV]
                          [--model-uri URI]
    pneumonia-site review --site NAME [--port N]          # the reviewer's page on 127.0.0.1 (tasks/sites/review.py)
    pneumonia-site adapt  --site NAME [--labels labels.csv] [--images DIR]
    pneumonia-site report --site NAME

`query` scores the site's films with the source model (default: the current `@champion`, pinned by version in
the site's `site.yaml`) and writes `worklist.csv` and `contact_sheet.png` under `<paths.sites>/NAME/`: the films
to label, none already labelled and none of `--exclude` (films kept to measure the site on). With `--pacs`
the films come from the hospital's archive (tasks/pacs/pull.py: the chest films the model is meant for, copied
once under salted names into `<paths.pacs>/NAME/films/`). A reviewer labels
them on `review`'s page (saved as `reviewed.csv`, adapt's default) or writes labels.csv (`path,label` with NORMAL
or PNEUMONIA; a `patient_id` column is optional). `adapt` checks it
against the site's films, copies it into the site folder and runs the site's DVC stages (`adapt`, `register`):
`models:/<model>@site-NAME` moves only on a win. Errors are one line and exit 2; a refused labels file
writes nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tasks import cli
from tasks.core import config
from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.core.files import atomic
from tasks.imaging import films as film_folder
from tasks.records import registry, tracking
from tasks.sites import films, stage


def held_out(f: dict) -> set[str]:
    path = f["config"].parent / "held_out.csv"
    return set(pd.read_csv(path).path.astype(str)) if path.exists() else set()


def excluded(file: str) -> list[str]:
    """The `path` column of --exclude; StepError naming the file and the fix."""
    try:
        return pd.read_csv(file).path.astype(str).tolist()
    except (OSError, AttributeError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise StepError(f"{file}: not a CSV with a `path` column; give --exclude the films kept apart "
                        "to measure the site on (path,...)") from None


def source_uri(p: Params, given: str | None) -> str:
    """A registry URI pinned to a version: `given` (resolved if it is an alias), else the current champion."""
    try:
        return registry.pinned(given or registry.champion_uri(p))
    except LookupError as err:
        raise StepError(str(err)) from None


def query(p: Params, args) -> int:
    from tasks.measure import ood, plots
    from tasks.measure.inference import scores_and_features
    from tasks.sites import query as strategies
    from tasks.sites.adapt import source

    name = stage.check_name(args.site)
    f = stage.files(p, name)
    paths = film_folder.listing(args.images)
    exclude = set(films.relative(x, Path(args.images)) for x in excluded(args.exclude)) \
        if args.exclude else held_out(f)
    labelled = {str(x) for key in ("labels", "reviewed") if f[key].exists() for x in pd.read_csv(f[key]).path}
    excluded_patients = set(films.patients(sorted(exclude)))
    taken = exclude | labelled | films.read_measure(f["measure"])
    pool = [x for x in film_folder.distinct(args.images, paths, taken)  # a film's twin is never offered
            if x not in exclude and films.patients([x])[0] not in excluded_patients]
    # the measurement sample: drawn at random once, before any strategy looks at the films, then kept
    # (at most a third of the films, so a small inbox still leaves films for the worklist)
    measured = films.read_measure(f["measure"]) or set(
        films.measurement_sample(pool, min(p.sites.measure, len(pool) // 3), p.sites.seed))
    measured_patients = set(films.patients(sorted(measured)))
    pool = [x for x, pid in zip(pool, films.patients(pool)) if pid not in measured_patients]
    if not pool:
        raise StepError(f"{args.images}: every film is excluded; nothing to query")
    uri = source_uri(p, args.model_uri)
    model, serving, pyfunc = source(uri)
    x = film_folder.load(args.images, pool, serving.image_size, progress=True)
    raw, features = scores_and_features(model, x, serving.normalize, serving.tta)
    prob = serving.calibrate(raw)
    ood_score = ood.scores(features, pyfunc.unwrap_python_model().detector)
    done = np.array([i for i, path in enumerate(pool) if path in labelled], int)
    strategy = args.strategy or p.sites.query
    budget = p.sites.budget if args.budget is None else args.budget  # 0: only the measurement sample
    idx, reasons = strategies.select(strategy, features, prob, ood_score, done, budget, p.sites.seed)
    if measured and not f["measure"].exists():
        f["measure"].parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"path": sorted(measured)}).to_csv(f["measure"], index=False)
    cfg = stage.write(p, name, args.images, uri)
    if args.exclude:
        pd.DataFrame({"path": sorted(exclude)}).to_csv(f["config"].parent / "held_out.csv", index=False)
    worklist = pd.DataFrame({"rank": np.arange(1, len(idx) + 1), "path": [pool[i] for i in idx],
                             "strategy": strategy, "reason": reasons, "probability": prob[idx].round(4),
                             "ood_score": ood_score[idx].round(3)})
    worklist.to_csv(f["worklist"], index=False)
    f["sheet"].unlink(missing_ok=True)  # a sheet of an earlier worklist would show films no longer asked for
    if len(idx):
        plots.image_grid(x[idx], [f"#{r} {Path(pool[i]).name[:22]}" for r, i in zip(worklist["rank"], idx)],
                         f["sheet"], f"site {name}: {len(idx)} films to label ({strategy})", cols=10)
    print(f"site {name}: {len(pool)} films scored with {uri}; {len(idx)} to label ({strategy}), "
          f"{len(done)} already labelled")
    print(f"worklist: {f['worklist']}   contact sheet: {f['sheet']}   images: {cfg['images']}")
    if measured:
        print(f"measurement sample: {len(measured)} films drawn at random ({f['measure']}): label them too; they "
              "measure the site model and are never trained on")
    which = "the worklist and the sample" if measured else "the worklist"
    print(f"next: label {which} on `pneumonia-site review --site {name}` (or write labels.csv: path,label with "
          f"NORMAL|PNEUMONIA), then `pneumonia-site adapt --site {name}`")
    return 0


def review(p: Params, args) -> int:
    from tasks.sites import review as page

    name = stage.check_name(args.site)
    f = stage.files(p, name)
    cfg = stage.read(p, name)
    if not f["worklist"].exists():
        raise StepError(f"site {name} has no worklist ({f['worklist']}): run `pneumonia-site query` first")
    worklist = pd.read_csv(f["worklist"]).path.astype(str).tolist()
    film_folder.listing(cfg["images"])  # the site's films are still where query found them
    ordered = page.order(worklist, sorted(films.read_measure(f["measure"])), p.sites.seed)
    page.serve(page.Review(ordered, Path(cfg["images"]), f["reviewed"]), name, f["config"].parent, args.port)
    return 0


def adapt(p: Params, args) -> int:
    from tasks.core.repro import StageRejected, run_stage
    from tasks.sites.adapt import worklist_and_sample

    name = stage.check_name(args.site)
    f = stage.files(p, name)
    cfg = stage.read(p, name)
    if args.labels is None:  # the review page's labels
        if not f["reviewed"].exists():
            raise StepError(f"no labels for site {name}: label the films on `pneumonia-site review --site {name}`, "
                            "or give --labels labels.csv")
        args.labels = str(f["reviewed"])
    if not Path(".dvc").is_dir():
        raise StepError("run pneumonia-site inside the project's checkout (a DVC repository): the site's "
                        "stages are DVC stages")
    images = args.images or cfg["images"]
    film_folder.listing(images)  # a folder that holds films
    # every check the labels must pass, the stage's included, before anything of the site is written
    labels = films.read_labels(args.labels, images, held_out(f))
    worklist_and_sample(labels, films.read_measure(f["measure"]), p.sites.folds, args.labels)
    if args.images and Path(images).resolve() != Path(cfg["images"]):
        cfg = stage.write(p, name, images, cfg["source_model"])
    out = pd.DataFrame({"path": labels.path, "label": np.where(labels.label == 1, "PNEUMONIA", "NORMAL"),
                        "patient_id": labels.patient_id})
    with atomic(f["labels"]) as tmp:
        out.to_csv(tmp, index=False)
    stage.remember_labels(p, name, args.labels)
    print(f"site {name}: {len(out)} labels checked and versioned as {f['labels']} "
          f"({int((labels.label == 0).sum())} NORMAL, {int(labels.label.sum())} PNEUMONIA)")
    try:  # the dvc beside this interpreter (run off PATH too); a stage's refusal is its own line
        run_stage(str(f["config"].parent / "dvc.yaml"), print, args=())
    except StageRejected as err:
        raise StepError(str(err).split(": error: ", 1)[-1]) from None
    return report(p, args)


def report(p: Params, args) -> int:
    from tasks.sites.report import show

    show(p, args.site)
    return 0


def from_archive(p: Params, site: str, url: str | None) -> Path:
    """The site's films pulled from the archive (only those not yet pulled); a line of counts on stderr."""
    from tasks.pacs.pull import pull

    folder, counts = pull(p, site, url)
    print(f"pneumonia-site: {counts['new']} film(s) pulled from the archive, {counts['held']} already here, "
          f"{counts['refused']} outside the intended use; the site's films: {folder}", file=sys.stderr)
    return folder


def parser() -> argparse.ArgumentParser:
    ap = cli.parser("pneumonia-site", __doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("query", help="pick the site's films worth labelling")
    q.add_argument("--site", required=True)
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of the site's films")
    source.add_argument("--pacs", nargs="?", const="", metavar="URL",
                        help="the films from the archive's DICOMweb root (default $PNEUMONIA_PACS_URL, else pacs.url)")
    q.add_argument("--budget", type=cli.count, help="films to label (default: params.yaml sites.budget; 0: only the "
                   "measurement sample)")
    q.add_argument("--strategy", choices=("random", "typiclust", "badge", "ood"),
                   help="default: params.yaml sites.query")
    q.add_argument("--exclude", help="CSV with a `path` column: films kept apart to measure the site on")
    q.add_argument("--model-uri", help="source model (default: the current @champion)")
    a = sub.add_parser("adapt", help="adapt on the reviewer's labels and register @site-NAME on a win")
    a.add_argument("--site", required=True)
    a.add_argument("--labels", help="CSV: path,label (NORMAL|PNEUMONIA)[,patient_id] (default: the review page's)")
    a.add_argument("--images", help="the site's films (default: the folder given to query)")
    v = sub.add_parser("review", help="the reviewer's page: label the worklist and the sample, one film at a time")
    v.add_argument("--site", required=True)
    v.add_argument("--port", type=cli.count, default=0, help="port on 127.0.0.1 (default: a free one)")
    r = sub.add_parser("report", help="the site's metrics before and after adaptation, with 95 %% intervals")
    r.add_argument("--site", required=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.guard(f"pneumonia-site {args.command}", lambda: command(args))


def command(args) -> int:
    from tasks.core.native import import_tensorflow

    p = config.load()
    stage.check_name(args.site)  # a bad name or folder is refused in a second, before TensorFlow loads
    if getattr(args, "exclude", None):
        excluded(args.exclude)
    if getattr(args, "pacs", None) is not None:  # the address and the source model checked before the archive is read
        from tasks.pacs.archive import url

        url(p.pacs, args.pacs or None)
        tracking.configure(p)
        args.model_uri = source_uri(p, args.model_uri)
        args.images = str(from_archive(p, args.site, args.pacs or None))
    if getattr(args, "images", None):
        film_folder.listing(args.images)
    if args.command != "query":
        stage.read(p, args.site)  # adapt, review and report need a site that query set up
    if args.command == "review":  # a web page: neither TensorFlow nor the tracking store
        return review(p, args)
    import_tensorflow()  # its start-up notices kept off the terminal
    tracking.configure(p)
    return {"query": query, "adapt": adapt, "report": report}[args.command](p, args)


if __name__ == "__main__":
    sys.exit(main())
