"""What `pneumonia-site report` prints: the site model before and after adaptation, with 95 % intervals over
patients, on the measurement sample (the site's estimate) and then on the films the query picked, and the
registry's decision. Read from the site's `report.json` and `registry.json`; nothing is computed here."""
from __future__ import annotations

from tasks.core.config import Params
from tasks.core.errors import StepError
from tasks.core.files import read_json
from tasks.measure import intervals, subgroups
from tasks.records import registry
from tasks.sites import stage


def show(p: Params, name: str) -> None:
    name = stage.check_name(name)
    f = stage.files(p, name)
    if not f["report"].exists():
        raise StepError(f"site {name} has no report yet ({f['report']}): run `pneumonia-site adapt --site {name} "
                        "--labels labels.csv`")
    r = read_json(f["report"])
    print(f"site {name}: {r['labels']} films labelled to adapt on ({r['normal']} NORMAL, {r['pneumonia']} PNEUMONIA, "
          f"query {r['query']}), source {r['source_model']}; 95 % intervals over patients")
    worklist = intervals.table({"source model": r["before"], "adapted (cross-fitted)": r["after"]})
    if r.get("measured"):
        m = r["measured"]
        print(f"on the measurement sample: {m['films']} films drawn at random, never trained on ({m['normal']} NORMAL, "
              f"{m['pneumonia']} PNEUMONIA); the site's estimate, and what the site gate decides on")
        if r.get("fitted_on") == "measurement sample":
            print("the served threshold is fitted on these films; each patient here is decided by the threshold "
                  "of the others (nested)")
        print(intervals.table({"source model": m["before"], "adapted": m["after"]}))
        if (m.get("subgroups") or {}).get("after"):
            print("by pneumonia's kind, adapted (fairlearn MetricFrame):\n"
                  + subgroups.markdown(m["subgroups"]["after"]))
        print(f"on the films the query picked ({r['folds']}-fold patient-grouped cross-fitting, each fold at the "
              "others' threshold): the hardest films, not an estimate of the site")
    else:
        print(f"on the labelled films ({r['folds']}-fold patient-grouped cross-fitting, each fold at the others' "
              "threshold)")
    print(worklist)
    if f["registry"].exists():
        g = read_json(f["registry"])
        print(f"registry: v{g['version']} {'is now' if g['promoted'] else 'not promoted to'} @{g['alias']}: "
              f"{g['reason']}")
        if g["after"] is not None:
            print(f"serve it: pneumonia-predict FILES --model-uri models:/{registry.model_name(p)}@{g['alias']} "
                  f"(v{g['after']})")
    print(f"figure: {f['figure']}")
