"""pneumonia-card: print the model card of a registered version (tasks/records/card.py writes it at registration).

    pneumonia-card models:/pneumonia-classifier@champion     # or models:/NAME/N

A version without a card (registered before cards were written) or whose run is gone from the tracking store
is one line naming it, exit 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tasks.core.errors import StepError
from tasks.records.card import artifact_dir


def read(uri: str) -> str:
    """The card of the registered version `uri` names (models:/NAME/N or models:/NAME@ALIAS), from its run;
    StepError naming the version when it has none or its run is gone."""
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    from tasks.records import registry

    try:
        version = registry.registered(uri)
    except MlflowException as err:
        if registry.absent(err):
            raise StepError(f"{uri} does not exist in the registry: list the versions in the MLflow UI") from None
        raise
    if version is None:
        raise StepError(f"{uri} is not a registered version: give models:/NAME/N or models:/NAME@ALIAS")
    where = f"version {version.version} of {version.name}"
    try:
        gone = mlflow.MlflowClient().get_run(version.run_id).info.lifecycle_stage == "deleted"
    except MlflowException:
        gone = True
    if gone:
        raise StepError(f"{where}: its run {version.run_id} is gone from the tracking store, and its card with "
                        "it; the version's description still says what it was trained on")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=f"{artifact_dir(version.version)}/model_card.md", dst_path=tmp)
        except (MlflowException, OSError):
            raise StepError(f"{where} has no model card (registered before cards were written): register it "
                            "again, or read its description in the MLflow UI") from None
        return Path(path).read_text()


def main(argv: list[str] | None = None) -> int:
    from tasks import cli
    from tasks.core import config
    from tasks.records import tracking

    ap = cli.parser("pneumonia-card", __doc__.split("\n\n")[0])
    ap.add_argument("uri", help="models:/NAME/N or models:/NAME@ALIAS")
    args = ap.parse_args(argv)

    def work() -> int:
        if Path("params.yaml").exists():  # inside a checkout: use its tracking store
            tracking.configure(config.load())
        print(read(args.uri), end="")
        return 0

    return cli.guard("pneumonia-card", work)


if __name__ == "__main__":
    sys.exit(main())
