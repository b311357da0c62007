"""The edge to the MLflow Model Registry: the registered name and alias, the champion, new versions.

register decides (tasks/register.py: `decide` is pure); this module reads and writes the registry.
predict and register's re-scoring load models through `load`. Nothing happens at import time.
"""
from __future__ import annotations

from tasks.core.config import Params

ALIAS = "champion"
VERSION_TAGS = ("data_source", "data_md5", "model")  # of tracking.run_tags: what a reader filters versions on
MODEL_NOTE = ("Pneumonia in frontal chest X-rays, as an MLflow pyfunc. In: base64 image files (PNG, JPEG, DICOM, "
              "...) in an `image` column. Out: the calibrated `probability` of pneumonia, the `label` (NORMAL or "
              "PNEUMONIA) at the `threshold` chosen on validation, `ood_score` and `in_distribution` (false: the "
              "image does not look like the chest films the model learned, and its label means nothing). "
              "`@champion` is the version to serve; `@site-<name>` is a hospital's own adapted version. Each "
              "version's description says what it was trained on and why it was or was not promoted.")


def model_name(p: Params) -> str:
    """Demo data registers under its own name, so it can never replace a model trained on real data."""
    return p.register.model_name + ("-demo" if p.ingest.source == "demo" else "")


def load(uri: str):
    """The pyfunc model at any MLflow model URI; LookupError (with MLflow's message) when it cannot be loaded."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except (OSError, MlflowException) as err:
        where = f" (artifacts at {source})" if (source := artifact_source(uri)) else ""
        raise LookupError(f"cannot load {uri}{where}: {err}; the model's files are missing or unreadable: restore "
                          "them, or point at another version with --model-uri") from None


URI = r"models:/([^/@]+)(?:/(\d+)|@(.+))"  # models:/name/N or models:/name@alias


def registered(uri: str):
    """The registry version a `models:/name/N` or `models:/name@alias` URI names now (MlflowException when the
    registry cannot tell), None for any other URI (a path, a run)."""
    import re

    import mlflow

    match = re.fullmatch(URI, uri.rstrip("/"))
    if not match:
        return None
    name, number, alias = match.groups()
    client = mlflow.MlflowClient()
    return client.get_model_version(name, number) if number else client.get_model_version_by_alias(name, alias)


def artifact_source(uri: str) -> str | None:
    """Where a registered version's files live (its `source`), or None for other URIs or an unreachable registry."""
    from mlflow.exceptions import MlflowException

    try:
        version = registered(uri)
    except MlflowException:
        return None
    return f"version {version.version}: {version.source}" if version else None


def evaluated_model(p: Params) -> tuple[str, str]:
    """(run id, model URI) of the servable model logged with the workspace's `paths.metrics`.

    LookupError when no run recorded these metrics, or none logged their package (a step ran without its
    tracking record)."""
    from tasks.records import tracking

    run = tracking.evaluation_run(p)
    if run is None:
        raise LookupError(f"no MLflow run in {tracking.tracking_uri(p)} recorded the evaluation in "
                          f"{p.paths.metrics}: rerun it (`dvc repro -f -s evaluate`, then `dvc repro`)")
    if "servable_model_uri" not in run.data.tags:
        raise LookupError(f"MLflow run {run.info.run_id} holds no packaged model: rerun the package stage "
                          "(`dvc repro -f -s package`, then `dvc repro`)")
    return run.info.run_id, run.data.tags["servable_model_uri"]


def absent(err) -> bool:
    """Whether an MlflowException says the model or its alias does not exist (and nothing else: a timeout, a
    5xx or a permission error is not 'no champion')."""
    code = getattr(err, "error_code", "")
    message = str(err).lower()
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "alias" in message
                                                  and "not found" in message)


def site_alias(site: str) -> str:
    """The alias of a site's own model: `site-<name>` (the name checked by tasks.sites.stage.check_name)."""
    return f"site-{site}"


def aliased(p: Params, alias: str = ALIAS):
    """The version `alias` points at, or None when the model or the alias does not exist yet. Any other
    registry failure propagates (exit 1, which the flow retries): deciding against 'no champion' when
    the registry could not be read would promote on the floors alone."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from tasks.records import tracking

    try:
        return mlflow.MlflowClient(tracking.tracking_uri(p)).get_model_version_by_alias(model_name(p), alias)
    except MlflowException as err:
        if absent(err):
            return None
        raise


def champion(p: Params):
    """The champion's version, or None (see `aliased`)."""
    return aliased(p, ALIAS)


def served_uri(p: Params, site: str | None = None) -> str:
    """What a site is served: `models:/<model>@site-<site>` when it has its own model, else the champion's URI."""
    if site and aliased(p, site_alias(site)) is not None:
        return f"models:/{model_name(p)}@{site_alias(site)}"
    return champion_uri(p)


def version_of(uri: str) -> str:
    """The registry version a `models:/name@alias` or `models:/name/N` URI names now, else '' (a path, a run);
    LookupError when the alias or model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        version = registered(uri)
    except MlflowException as err:
        if absent(err):
            raise LookupError(f"{uri} does not exist: run the pipeline first (`pneumonia-pipeline`) or pass "
                              "--model-uri") from None
        raise
    return str(version.version) if version else ""


def pinned(uri: str) -> str:
    """`uri` with an alias resolved to the version it names now (`models:/name/N`), so a later move of the alias
    does not change what was pinned; other URIs as they are."""
    return at_version(uri, version_of(uri))


def at_version(uri: str, version: str) -> str:
    """`models:/name@alias` as `models:/name/<version>` (the version it named when something was scored with it);
    other URIs, or no version, as they are."""
    if not uri.startswith("models:/") or "@" not in uri or not version:
        return uri
    return f"models:/{uri.removeprefix('models:/').split('@', 1)[0]}/{version}"


def champion_uri(p: Params) -> str:
    return f"models:/{model_name(p)}@{ALIAS}"


def add_version(p: Params, model_uri: str, tags: dict[str, str], description: str):
    """Register the logged model at `model_uri` (`models:/m-…`) as a new version of the project's model, tagged
    with `tags` and what it was trained on (VERSION_TAGS of tracking.run_tags), with `description` followed by
    the whole data and code version as the version's description (what the registry UI shows first)."""
    import contextlib
    import io

    import mlflow

    from tasks.records import tracking

    tracking.configure(p)
    data = tracking.run_tags(p)
    # MLflow prints "Successfully registered model" and "Created version N" to stderr: the caller's own line says
    # which version, with the decision; an error still raises
    with contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(model_uri, model_name(p), tags={**tags, **{k: data[k] for k in VERSION_TAGS}})
    text = (f"{description}\n\nData: {data['data_source']} images at {data['image_size']} px, pixels md5 "
            f"{data['data_md5']}, split md5 {data['split_md5']}; code {data['git_commit']}; model {data['model']}.")
    client = mlflow.MlflowClient()
    client.update_model_version(model_name(p), version.version, description=text)
    client.update_registered_model(model_name(p), description=MODEL_NOTE)
    return version


class ChampionMoved(RuntimeError):
    """The alias moved between the decision and the promotion (another register ran meanwhile)."""


def promote(p: Params, version, decided_against, alias: str = ALIAS) -> None:
    """Point `alias` (the champion's, or a site's) at `version`: the one write that moves an alias. The alias is
    read again first: if it no longer points where it pointed when the decision was made (`decided_against`, a
    version or None), another register moved it meanwhile and ChampionMoved is raised; the alias is left alone."""
    import mlflow

    from tasks.records import tracking

    now = aliased(p, alias)
    before = decided_against.version if decided_against else None
    if (now.version if now else None) != before:
        raise ChampionMoved(f"@{alias} of {model_name(p)} moved from v{before} to v{now.version if now else None} "
                            f"while version {version.version} was being decided: run register again")
    mlflow.MlflowClient(tracking.tracking_uri(p)).set_registered_model_alias(model_name(p), alias, version.version)
