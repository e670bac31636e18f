"""The Spark session: one per process, configured from env vars or Dagster run config.

Local mode is the default. The same pipeline runs on a cluster by setting `master`
(`spark://host:7077`, `yarn`, `k8s://...`) or on Spark Connect by setting `remote`
(`sc://host:15002`); that is why no code in the pipeline touches RDDs or `sparkContext`.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
from importlib import metadata
from urllib.parse import urlparse

import pyspark
from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

from cinematch_assets import settings
from cinematch_assets.ops.java import ensure_java
from cinematch_assets.resources.data_root import DataRoot

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
# SQL settings every session gets, whatever the deployment (Spark Connect included).
SQL_CONF: dict[str, str] = {
    # Spark's default (INT96) is deprecated and not what other Delta readers expect.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Timestamps mean the same on every machine and in every report.
    "spark.sql.session.timeZone": "UTC",
}
# Settings of a session this process starts itself (a Connect server owns its own).
LAUNCH_CONF: dict[str, str] = {
    "spark.app.name": "cinematch",
    "spark.log.level": "WARN",
    # Progress bars garble Dagster's captured logs.
    "spark.ui.showConsoleProgress": "false",
    # Python workers score blocks with numpy: one BLAS thread each, Spark runs one per core.
    **{
        f"spark.executorEnv.{name}": "1"
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    },
}


# Spark's own Delta Lake support (engine "spark"): the JARs come from spark.jars(.packages)
# or, when neither is set, from Maven (`delta_maven_package`).
DELTA_SQL_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def parse_conf(text: str | None) -> dict[str, str]:
    """Parse `key=value` pairs separated by whitespace or commas (CINEMATCH_SPARK_CONF)."""
    conf: dict[str, str] = {}
    for item in (text or "").replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(
                f"CINEMATCH_SPARK_CONF: expected key=value pairs, got {item!r} "
                "(example: 'spark.executor.memory=4g spark.executor.cores=2')"
            )
        conf[key] = value
    return conf


def session_conf(
    *,
    master: str,
    driver_memory: str,
    shuffle_partitions: int,
    ui_enabled: bool,
    extra_conf: dict[str, str],
    checkpoint_dir: str,
    delta_jars: bool = False,
) -> dict[str, str]:
    """The full `spark.*` configuration for a classic (non-Connect) session."""
    conf = {
        **SQL_CONF,
        **LAUNCH_CONF,
        "spark.master": master,
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.ui.enabled": str(ui_enabled).lower(),
        # ALS checkpoints its factors every few iterations (als.CHECKPOINT_INTERVAL); without
        # a directory the lineage grows until task serialization overflows the stack.
        "spark.checkpoint.dir": checkpoint_dir,
    }
    if master.startswith("local"):
        # Local mode needs no network: skip hostname resolution and stay on loopback.
        conf["spark.driver.host"] = LOOPBACK
        conf["spark.driver.bindAddress"] = LOOPBACK
    if delta_jars:
        conf.update(DELTA_SQL_CONF)
    conf.update(extra_conf)
    return conf


def delta_maven_package() -> str:
    """Spark's Delta Lake package matching the installed delta-spark and PySpark (the
    coordinates delta-spark's `configure_spark_with_delta_pip` asks Maven for)."""
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"


def spark_config(
    *,
    master: str,
    remote: str,
    driver_memory: str,
    shuffle_partitions: int,
    ui_enabled: bool,
    extra_conf: dict[str, str],
    checkpoint_dir: str,
    delta_jars: bool = False,
) -> dict[str, str]:
    """The complete `spark.*` configuration of the session: a Spark Connect client's when
    `remote` is set (the server owns everything else), a classic session's otherwise."""
    if remote:
        return {**SQL_CONF, **extra_conf, "spark.remote": remote}
    conf = session_conf(
        master=master,
        driver_memory=driver_memory,
        shuffle_partitions=shuffle_partitions,
        ui_enabled=ui_enabled,
        extra_conf=extra_conf,
        checkpoint_dir=checkpoint_dir,
        delta_jars=delta_jars,
    )
    if delta_jars and not {"spark.jars", "spark.jars.packages"} & conf.keys():
        conf["spark.jars.packages"] = delta_maven_package()
    return conf


_CHECKPOINTS_REMOVED_AT_EXIT: set[str] = set()


def remove_checkpoints_at_exit(session: SparkSession) -> None:
    """Delete the session's own checkpoint folder (a folder per SparkContext inside
    spark.checkpoint.dir) when this process ends. ALS's checkpoints serve its models only
    while they are in use; kept, they would pile up under the data root run after run.
    Other processes' folders are left alone, so overlapping runs are safe."""
    folder = session.sparkContext.getCheckpointDir()
    if not folder or folder in _CHECKPOINTS_REMOVED_AT_EXIT:
        return
    _CHECKPOINTS_REMOVED_AT_EXIT.add(folder)
    context = session.sparkContext

    def remove() -> None:
        try:
            if folder.startswith("file:"):  # even after the session was stopped
                local = urlparse(folder).path
                if os.path.isdir(local):
                    shutil.rmtree(local)
            else:  # HDFS, S3...: through the JVM, still up (this runs before PySpark's exit)
                path = context._jvm.org.apache.hadoop.fs.Path(folder)
                path.getFileSystem(context._jsc.hadoopConfiguration()).delete(path, True)
        except Exception as error:  # e.g. the session was stopped first
            log.warning("could not remove the Spark checkpoints in %s: %s", folder, error)

    atexit.register(remove)


class SparkResource(ConfigurableResource):
    """Owns the process's SparkSession, through dagster-pyspark's `LazyPySparkResource`:
    created on first use of `spark_session` and then shared by every asset of a run (the
    in-process executor keeps one JVM per run).

    This resource assembles the `spark_config` dict that `LazyPySparkResource` builds the
    session from (local, `spark://`, YARN, Kubernetes, or Spark Connect through a
    `spark.remote` key) out of env vars and run config, and makes sure a usable Java is
    there first.
    """

    master: str = Field(
        default_factory=settings.spark_master,
        description="Spark master: local[*], spark://host:7077, yarn, k8s://... "
        "(env CINEMATCH_SPARK_MASTER).",
    )
    remote: str = Field(
        default_factory=settings.spark_remote,
        description="Spark Connect URL such as sc://host:15002; when set, `master` and the "
        "local JVM are not used (env CINEMATCH_SPARK_REMOTE).",
    )
    driver_memory: str = Field(
        default_factory=settings.spark_driver_memory,
        description="spark.driver.memory (env CINEMATCH_SPARK_DRIVER_MEMORY; default 25% of "
        "RAM, 1 to 32 GB).",
    )
    shuffle_partitions: int = Field(
        default_factory=settings.spark_shuffle_partitions,
        description="spark.sql.shuffle.partitions (env CINEMATCH_SPARK_SHUFFLE_PARTITIONS; "
        "default 2 x cores, at least 4).",
    )
    ui_enabled: bool = Field(
        default_factory=settings.spark_ui,
        description="Serve the Spark UI on :4040 (env CINEMATCH_SPARK_UI=false to turn off).",
    )
    conf: dict[str, str] = Field(
        default_factory=lambda: parse_conf(settings.spark_conf()),
        description="Extra spark.* settings (env CINEMATCH_SPARK_CONF='k=v k2=v2').",
    )
    delta_jars: bool = Field(
        default_factory=lambda: settings.delta_engine() == "spark",
        description="Load Spark's Delta Lake extension (for CINEMATCH_DELTA_ENGINE=spark); "
        "JARs from spark.jars(.packages) in `conf`, else downloaded from Maven.",
    )
    data_root: DataRoot = Field(
        default_factory=DataRoot, description="Where the checkpoints go (spark.checkpoint.dir)."
    )
    _pyspark: LazyPySparkResource | None = PrivateAttr(default=None)

    @property
    def spark_config(self) -> dict[str, str]:
        return spark_config(
            master=self.master,
            remote=self.remote,
            driver_memory=self.driver_memory,
            shuffle_partitions=self.shuffle_partitions,
            ui_enabled=self.ui_enabled,
            extra_conf={key: str(value) for key, value in self.conf.items()},
            checkpoint_dir=str(self.data_root.checkpoints),
            delta_jars=self.delta_jars,
        )

    @property
    def runs_locally(self) -> bool:
        """Executors are in this process: local mode, or a Connect server started here."""
        return self.remote.startswith("local") if self.remote else self.master.startswith("local")

    @property
    def spark_session(self) -> SparkSession:
        """The session, created on first use (later uses, and other resources of this
        process, get the same one: Spark's `getOrCreate`)."""
        if self._pyspark is None:
            # A Connect client needs no JVM, unless it starts a local server itself.
            if not self.remote or self.remote.startswith("local"):
                ensure_java()
            if self.runs_locally:
                # Local Python workers run this interpreter (its venv has numpy and pandas),
                # not whatever `python3` comes first on PATH.
                os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
                # The UI binds to SPARK_LOCAL_IP, else to every interface: a laptop on a
                # shared network would show the job's environment to anyone. Loopback
                # unless the user exposes it on purpose (SPARK_LOCAL_IP=0.0.0.0).
                os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
            self._pyspark = LazyPySparkResource(spark_config=self.spark_config)
            if not self.remote:  # a Connect server keeps its own checkpoints
                remove_checkpoints_at_exit(self._pyspark.spark_session)
        return self._pyspark.spark_session
