"""pneumonia-pacs: the reading room of a site. One pass takes the archive's new chest films over DICOMweb,
refuses those the model is not meant for, scores the rest with the model the site is served and stores a
DICOM Structured Report for each back into its study. The scored films join the site's monitoring: once
`monitor.min_films` wait they are tested for drift as pneumonia-monitor tests a folder (tasks/pacs/watch.py).

    pneumonia-pacs --site st1 [--pacs http://127.0.0.1:8042/dicom-web] [--model-uri URI]   # one pass
    pneumonia-pacs audit --site st1 [--last N]                                              # the audit trail

The archive's address is --pacs, else $PNEUMONIA_PACS_URL, else params.yaml `pacs.url`; credentials come from
the environment only (PNEUMONIA_PACS_USER and PNEUMONIA_PACS_PASSWORD, or PNEUMONIA_PACS_TOKEN). Exit 0 after a
pass; 2 for bad input (a bad site name, no model); 1 when the archive is down or refused a store (the results
wait in the site's outbox and the next pass stores them). The Prefect deployment `pacs-inbox` runs a pass on
a schedule (flows/pacs.py).
"""
from __future__ import annotations

import sys

AUDIT_COLUMNS = ["time", "study", "instance", "version", "decision", "event", "reason", "label", "probability",
                 "in_distribution", "result"]


def report(out: dict) -> str:
    """The pass's printout: counts and reasons, never a film's UID or header value."""
    lines = [f"pneumonia-pacs {out['site']}: model {out['model']} (version {out['version']}); "
             f"{out['films']} new film(s) in {out['seconds']:.1f} s"]
    lines.append(f"  scored {out['scored']} ({out['pneumonia']} PNEUMONIA), refused {out['refused']}"
                 + (f", {out['gone']} gone from the archive before retrieval" if out["gone"] else ""))
    lines += [f"  refused {n}: {why}" for why, n in sorted(out["reasons"].items(), key=lambda kv: -kv[1])]
    lines.append(f"  {out['stored']} result(s) stored in the archive, {out['waiting']} waiting in the outbox")
    drift = out.get("drift")
    if drift:
        lines.append(f"  monitoring: batch {drift['batch']} of {drift['films']} scored films tested against the "
                     f"reference: {'DRIFT in ' + ', '.join(drift['drifted']) if drift['drift'] else 'no drift'}")
    if out.get("alert"):
        lines.append(f"  ALERT: {out['alert']}")
    return "\n".join(lines)


def show_audit(p, site: str, last: int) -> int:
    import pandas as pd

    from tasks.pacs import audit, inbox

    trail = audit.read(inbox.site_folder(p, site))
    if trail.empty:
        print(f"no audit trail for site {site} yet ({inbox.site_folder(p, site) / audit.FILE})")
        return 0
    trail = trail.reindex(columns=AUDIT_COLUMNS).tail(last) if last else trail.reindex(columns=AUDIT_COLUMNS)
    trail["reason"] = trail.reason.str.slice(0, 36)  # the whole reason is in the file and the SR
    trail["probability"] = trail.probability.round(4)
    with pd.option_context("display.width", 250):
        print(trail.dropna(axis=1, how="all").fillna("").to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    from tasks import cli
    from tasks.core import config
    from tasks.sites.stage import check_name

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = cli.parser("pneumonia-pacs", __doc__.split("\n\n")[0])
    trail = bool(argv) and argv[0] == "audit"
    if trail:
        argv = argv[1:]
        ap.prog = "pneumonia-pacs audit"
    ap.add_argument("--site", required=True, help="the site's name (lower-case letters, digits and -)")
    if trail:
        ap.add_argument("--last", type=cli.count, default=50, help="lines to show (0: all; default 50)")
    else:
        ap.add_argument("--pacs", help="the archive's DICOMweb root (default $PNEUMONIA_PACS_URL, else pacs.url)")
        ap.add_argument("--model-uri", help="score with this model (default: the site's @site-<name>, else "
                                            "@champion)")
    args = ap.parse_args(argv)

    def work() -> int:
        from tasks.pacs import archive, inbox
        from tasks.records import tracking

        check_name(args.site)
        cli.configure_logging()  # TensorFlow's retracing notes off the printout
        p = config.load()
        if trail:
            return show_audit(p, args.site, args.last)
        archive.url(p.pacs, args.pacs)  # a bad address refused before the tracking store is touched
        tracking.configure(p)
        print(report(inbox.run_pass(p, args.site, args.pacs, args.model_uri)))
        return 0

    return cli.guard("pneumonia-pacs", work)


if __name__ == "__main__":
    sys.exit(main())
