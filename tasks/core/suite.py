"""Run a Great Expectations suite over a pandas frame: the one way the pipeline validates tabular data (the
image manifest in tasks.validate, a site's labels in tasks.sites.films).

`check(frame, rules, name)` returns whether every expectation held, the failed ones in the order of `rules`
(each with its column, its kwargs and GX's result) and GX's results as JSON. With `docs_dir`, Data Docs are
built there. The caller turns a failure into its own one-line message; GX prints nothing (no progress bars,
no analytics).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Failure:
    """One failed expectation: its GX type, the column it checks (the first of a pair; "table" for table rules)
    and its result."""

    type: str
    column: str
    kwargs: dict
    result: dict

    def rows(self, frame: pd.DataFrame) -> pd.Series:
        """Which rows of `frame` break a column rule: a pair not equal, a value not in the set or out of bounds."""
        values = frame[self.column]
        if "column_B" in self.kwargs:
            return values != frame[self.kwargs["column_B"]]
        if "value_set" in self.kwargs:
            return ~values.isin(self.kwargs["value_set"])
        low, high = self.kwargs.get("min_value"), self.kwargs.get("max_value")
        return ((values < low) if low is not None else False) | ((values > high) if high is not None else False)


def check(frame: pd.DataFrame, rules: list, name: str, docs_dir: str | Path | None = None
          ) -> tuple[bool, list[Failure], dict]:
    """Validate `frame` with the expectations `rules`: (success, failures in rule order, results as JSON)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX sets this module's logger to INFO itself ("Created temporary directory ... for ephemeral docs site")
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    actions = []
    if docs_dir is not None:
        context.add_data_docs_site(site_name="local", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["local"])]
    batch = context.data_sources.add_pandas(name).add_dataframe_asset("rows") \
        .add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for i, rule in enumerate(rules):
        rule.meta = {**(rule.meta or {}), "rule": i}  # GX returns results in its own order
        suite.add_expectation(rule)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(name=name, validation_definitions=[definition],
                                                       actions=actions))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    failures = []
    for run_result in result.run_results.values():
        for r in run_result.results:
            if not r.success:
                c = r.expectation_config
                kwargs = {k: v for k, v in c.kwargs.items() if k != "batch_id"}
                failure = Failure(c.type, kwargs.get("column", kwargs.get("column_A", "table")), kwargs, dict(r.result))
                failures.append((c.meta["rule"], failure))
    return result.success, [f for _, f in sorted(failures, key=lambda t: t[0])], result.describe_dict()
