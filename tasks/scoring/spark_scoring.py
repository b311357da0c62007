"""Archive-scale scoring on Spark: `pneumonia-predict --engine spark SOURCE... --output OUT.parquet`.

Spark reads the files (its `binaryFile` source: folders, globs, or an `s3a://` prefix where the cluster has
the connector), and the registered model scores them through `mlflow.pyfunc.spark_udf`: the same pyfunc, and so
the same decoder, calibration, threshold and out-of-distribution score, as `pneumonia-predict` and `mlflow
models serve`. Spark adds I/O and partitioning only; the scores equal the local path's (tests: 1e-6).

- The alias is resolved once per job (`models:/name@champion` pinned to its version before the UDF is made), so a
  promotion during the job never mixes two versions in one output.
- A file the model cannot read (not an image, truncated, a DICOM without pixels, over the size limits) becomes a
  row with its reason in `error` and no score; the job does not fail.
- The output is written to `OUT.parquet.partial/` and swapped in whole when the job ends: a job killed at any
  instant leaves the last complete output (or none), and a rerun neither duplicates nor drops a row.

`--master` is Spark's (default `local[2]`: this machine's cores). On a cluster, run the same command under
`spark-submit --master spark://HOST:7077` with the executors' Python holding the model's requirements
(`requirements.txt` of the registered model, docs/serving.md); `env_manager="local"` uses the executors' own
environment as it is.
"""
from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pandas as pd

from tasks.core.errors import StepError
from tasks.imaging.images import IMAGE_SUFFIXES

SCORES = "probability double, label string, threshold double, ood_score double, in_distribution boolean"
SCORE_NAMES = [column.split()[0] for column in SCORES.split(", ")]
COLUMNS = ["file", "probability", "label", "threshold", "ood_score", "in_distribution", "model_uri", "model_version",
           "error"]


def session(master: str = "local[2]"):
    """A Spark session on `master`, without its web UI, logging errors only; in local mode bound to 127.0.0.1,
    its Python workers this interpreter (the project and the model's requirements are installed here)."""
    import logging
    import os
    import sys

    from pyspark.sql import SparkSession

    if master.startswith("local"):  # Spark starts its workers with `python3` of PATH otherwise
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # one core per task, as Spark schedules them: TensorFlow would otherwise start a thread per core in
        # every worker, and local[N] would run N times N threads on N cores
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    # MLflow warns that env_manager="local" uses the executors' environment as it is, which is the point here
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its gateway says INFO on every connection it closes
    log4j = Path(__file__).with_name("spark_log4j2.properties")
    builder = SparkSession.builder.master(master).appName("pneumonia-predict")
    if master.startswith("local"):  # a cluster's executors must reach the driver: loopback in local mode only
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    spark = (builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.sql.chunkBase64String.enabled", "false")  # base64() in one line, as the model reads it
             # Spark counts each file as at least openCostInBytes (4 MiB) when it cuts partitions: films of 20 to
             # 50 KB then made tasks of 32 films, each loading the model (28 films/s instead of about 250)
             .config("spark.sql.files.openCostInBytes", str(64 * 1024))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stock() -> str:
    """A small grey PNG, base64: what the model is sent in place of a file it cannot read."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def unreadable(content: pd.Series) -> pd.Series:
    """Per file: why the model cannot read it (tasks.scoring.serving's own checks and decoder), or None."""
    from tasks.scoring.serving import BadRow, decode_images

    def why(data: bytes) -> str | None:
        try:
            decode_images([base64.b64encode(data).decode()], 8)
        except BadRow as err:
            return err.reason
        return None

    return content.map(why)


def job(sources: list[str], output: Path, uri: str, version: str, master: str = "local[2]") -> dict:
    """One scoring job: a session on `master`, the alias in `uri` pinned to one version for the whole job, the
    sources scored into `output`; returns score's summary."""
    from tasks.records import registry

    pinned = registry.pinned(uri)  # one version for the whole job, whatever moves the alias meanwhile
    spark = session(master)
    try:
        return score(spark, [str(Path(s).resolve()) if "://" not in s else s for s in sources], pinned, version,
                     Path(output))
    finally:
        spark.stop()


def score(spark, sources: list[str], uri: str, version: str, output: Path) -> dict:
    """Score every image file under `sources` with the model at `uri` (already pinned to `version`) into the
    Parquet folder `output`; returns {rows, scored, errors, pneumonia, seconds, unreadable: {file: why}}."""
    start = time.perf_counter()
    table = plan(spark, sources, uri, version)
    partial = output.with_name(output.name + ".partial")
    table.write.mode("overwrite").parquet(str(partial))  # a killed job leaves only this, overwritten on rerun
    swap(partial, output)
    summary = pd.read_parquet(output, columns=["file", "label", "error"])
    bad = summary[summary.error.notna()]
    return {"rows": len(summary), "scored": len(summary) - len(bad), "errors": len(bad),
            "pneumonia": int((summary.label == "PNEUMONIA").sum()), "seconds": time.perf_counter() - start,
            "unreadable": dict(zip(bad.file.head(10), bad.error.head(10)))}  # the first ten, named


def plan(spark, sources: list[str], uri: str, version: str):
    """The job's DataFrame, one row per image file under `sources`: COLUMNS."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    suffixes = "|".join(s.lstrip(".") for s in sorted(IMAGE_SUFFIXES))
    try:
        files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(sources)
                 .filter(F.lower(F.col("path")).rlike(rf"\.({suffixes})$")))
    except Exception as err:  # noqa: BLE001 - Spark's AnalysisException: a path that does not exist
        raise StepError(f"Spark cannot read {', '.join(sources)} ({str(err).splitlines()[0][:200]})") from None
    local = F.regexp_replace("path", "^file:", "").alias("file")  # local files named as the local path names them
    if row_errors(uri):  # the model itself returns a row's reason instead of refusing the batch: one decode
        predict = mlflow.pyfunc.spark_udf(spark, uri, result_type=f"{SCORES}, error string", env_manager="local",
                                          params={"errors": "rows"})
        scored = files.select(local, predict(F.base64("content")).alias("out"))
        error = F.col("out.error")
    else:
        scored = checked_first(files, local, mlflow.pyfunc.spark_udf(spark, uri, result_type=SCORES,
                                                                     env_manager="local"))
        error = F.col("error")
    # scores only where the file was scored: the UDF's result conversion makes a missing label "None" and a missing
    # in_distribution True
    readable = F.coalesce(error, F.lit("")) == ""
    return (scored.select("file", *[F.when(readable, F.col(f"out.{name}")).alias(name) for name in SCORE_NAMES],
                          F.when(~readable, error).alias("error"))
            .withColumn("model_uri", F.lit(uri)).withColumn("model_version", F.lit(version)).select(*COLUMNS))


def row_errors(uri: str) -> bool:
    """Whether the model at `uri` takes the `errors` param (tasks.scoring.serving.predict_column), as models
    packaged by this version do; older ones are scored by `checked_first`)."""
    from mlflow.models import get_model_info

    from tasks.scoring.serving import takes_errors

    return takes_errors(get_model_info(uri).signature)


def checked_first(files, local, predict):
    """Scoring for a model packaged before its `errors` param, whose predict refuses a whole batch for one file
    it cannot read: a pandas UDF checks each file first with the model's own decoder (one decode more per
    file; `error`), and a file that fails is sent as a stock image (`out`: scores that `plan` drops). One pass
    over the files (a split into good and bad branches read and checked every file twice)."""
    from pyspark.sql import functions as F

    checked = files.select(local, F.col("content"), F.pandas_udf(unreadable, "string")("content").alias("error"))
    image = F.when(F.col("error").isNull(), F.base64("content")).otherwise(F.lit(stock()))
    return checked.select("file", "error", predict(image).alias("out"))


def swap(partial: Path, output: Path) -> None:
    """Put the finished `partial` folder in `output`'s place: the old output moves aside first and goes last, so
    a kill at any instant leaves a complete output under one of the two names."""
    old = output.with_name(output.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if output.exists():
        output.rename(old)
    partial.rename(output)
    shutil.rmtree(old, ignore_errors=True)
