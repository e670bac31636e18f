"""The Spark session resource: configuration, Spark Connect, and the optional Delta engine."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest

from cinematch_assets.ml.models.als import fit_als
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.spark import (
    DELTA_SQL_CONF,
    SparkResource,
    delta_maven_package,
    parse_conf,
    session_conf,
)
from cinematch_assets_tests.conftest import REPO_ROOT


def test_parse_conf_accepts_spaces_and_commas():
    assert parse_conf("spark.a=1 spark.b=x=y,spark.c=") == {
        "spark.a": "1",
        "spark.b": "x=y",
        "spark.c": "",
    }
    assert parse_conf(None) == {}
    with pytest.raises(ValueError, match="key=value"):
        parse_conf("spark.executor.memory")


def test_local_sessions_stay_on_loopback_and_extra_conf_wins():
    conf = session_conf(
        master="local[*]",
        driver_memory="3g",
        shuffle_partitions=8,
        ui_enabled=False,
        extra_conf={"spark.sql.shuffle.partitions": "16"},
        checkpoint_dir="/data/spark-checkpoints",
    )
    assert conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.sql.shuffle.partitions"] == "16"
    assert conf["spark.ui.enabled"] == "false"
    cluster = session_conf(
        master="spark://head:7077",
        driver_memory="3g",
        shuffle_partitions=8,
        ui_enabled=True,
        extra_conf={},
        checkpoint_dir="/data/spark-checkpoints",
        delta_jars=True,
    )
    assert "spark.driver.host" not in cluster
    assert DELTA_SQL_CONF.items() <= cluster.items()


def test_spark_config_is_a_connect_clients_when_remote_is_set():
    """dagster-pyspark builds the session from this dict: a `spark.remote` key makes it a
    Spark Connect session, so master, memory and the rest belong to the server."""
    resource = SparkResource(
        master="local[*]", remote="sc://spark-head:15002", conf={"spark.sql.ansi.enabled": "true"}
    )
    assert resource.spark_config == {
        "spark.remote": "sc://spark-head:15002",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
    }


def test_spark_config_of_a_classic_session_asks_for_delta_only_when_needed():
    classic = SparkResource(master="spark://head:7077", remote="", driver_memory="3g")
    assert classic.spark_config["spark.master"] == "spark://head:7077"
    assert classic.spark_config["spark.driver.memory"] == "3g"
    assert "spark.remote" not in classic.spark_config
    assert "spark.jars.packages" not in classic.spark_config
    with_delta = SparkResource(master="local[1]", remote="", delta_jars=True)
    assert with_delta.spark_config["spark.jars.packages"] == delta_maven_package()
    assert delta_maven_package().startswith("io.delta:delta-spark_4.2_2.13:4.")
    given = SparkResource(remote="", delta_jars=True, conf={"spark.jars": "/opt/delta.jar"})
    assert "spark.jars.packages" not in given.spark_config


def test_resource_reads_its_defaults_from_the_environment(monkeypatch):
    monkeypatch.setenv("CINEMATCH_SPARK_MASTER", "spark://head:7077")
    monkeypatch.setenv("CINEMATCH_SPARK_CONF", "spark.executor.memory=4g")
    monkeypatch.setenv("CINEMATCH_SPARK_SHUFFLE_PARTITIONS", "64")
    monkeypatch.setenv("CINEMATCH_DELTA_ENGINE", "spark")
    resource = SparkResource()
    assert resource.master == "spark://head:7077"
    assert resource.conf == {"spark.executor.memory": "4g"}
    assert resource.shuffle_partitions == 64
    assert resource.delta_jars is True
    assert resource.driver_memory.endswith("g")  # a quarter of this machine's memory


def test_checkpoints_follow_the_data_root(tmp_path):
    resource = SparkResource(remote="", data_root=DataRoot(home=str(tmp_path)))
    assert resource.spark_config["spark.checkpoint.dir"] == str(tmp_path / "spark-checkpoints")


def test_shared_session_has_the_project_settings(spark):
    """The suite's session comes from the resource, i.e. from dagster-pyspark."""
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.master") == "local[2]"
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") == "TIMESTAMP_MICROS"


SESSION_WITH_UI = """
import os, sys
from cinematch_assets.resources.spark import SparkResource
spark = SparkResource(master="local[1]", remote="", driver_memory="1g", shuffle_partitions=2,
                      ui_enabled=True, conf={}, delta_jars=False).spark_session
spark.range(10).count()
print(spark.sparkContext.uiWebUrl, flush=True)
sys.stdin.read()  # up until the test has looked
"""


def _listening(pids: set[int]) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(address, port) of every TCP socket these processes listen on (Linux /proc)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                # /proc writes addresses as 32-bit words in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                ip = ipaddress.ip_address(words)
                found.append((getattr(ip, "ipv4_mapped", None) or ip, int(port, 16)))
    return found


def _family(pid: int) -> set[int]:
    children = {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children |= _family(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return children


def test_a_local_session_listens_on_loopback_only_ui_included():
    """Every socket of the driver JVM and its Python side, the Spark UI's among them, is
    bound to 127.0.0.1: nobody else on the network reads the job's environment."""
    env = {k: v for k, v in os.environ.items() if k != "SPARK_LOCAL_IP"}
    process = subprocess.Popen(
        [sys.executable, "-c", SESSION_WITH_UI],
        cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        ui = process.stdout.readline().strip()
        assert ui, "no session"
        sockets = _listening(_family(process.pid))
    finally:
        process.communicate("", timeout=60)
    ui_port = int(ui.rsplit(":", 1)[1])
    assert ui_port in {port for _, port in sockets}
    exposed = [(str(address), port) for address, port in sockets if not address.is_loopback]
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_graph_up_to_gold_runs_on_spark_connect(tmp_path):
    """Every asset and check from raw to Gold through a local Spark Connect server: proof
    that nothing there needs RDDs or `sparkContext`, which Spark Connect does not offer.
    (The models need more data than synthetic-tiny to pass their checks.)"""
    env = {
        **os.environ,
        "CINEMATCH_SPARK_REMOTE": "local[2]",
        "CINEMATCH_HOME": str(tmp_path),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.pipeline",
            "--variant",
            "synthetic-tiny",
            "--home",
            str(tmp_path / "run"),
            "--groups",
            "raw",
            "bronze",
            "silver",
            "gold",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout)
    assert report["success"]
    rows = report["rows"]
    assert rows["bronze/ratings"] == rows["silver/ratings_clean"] > 0
    assert (
        rows["gold/train_features_ml"] + rows["gold/test_features_ml"]
        == rows["gold/ratings_filtered"]
    )


def small_ratings(spark):
    return spark.createDataFrame(
        [(u, m, float(u * m % 5 + 1)) for u in range(40) for m in range(30) if (u + m) % 3],
        "userId int, movieId int, rating float",
    )


# Java's BLAS and LAPACK, as on a machine without a system libblas.so.3/liblapack.so.3.
JAVA_LINEAR_ALGEBRA = (
    "-Ddev.ludovic.netlib.blas.allowNative=false -Ddev.ludovic.netlib.lapack.allowNative=false"
)
ALS_ON_A_SMALL_STACK = textwrap.dedent(
    f"""
    import json
    from cinematch_assets.ml.models.als import fit_als
    from cinematch_assets.resources.spark import SparkResource
    from cinematch_assets_tests.resources.test_spark_resource import small_ratings

    options = "-Xss640k {JAVA_LINEAR_ALGEBRA}"
    spark = SparkResource(
        master="local[2]", remote="", conf={{"spark.driver.extraJavaOptions": options}}
    ).spark_session
    model = fit_als(
        small_ratings(spark), rating_col="rating", rank=4, reg_param=0.1, max_iter=20, seed=1
    )
    jvm = spark.sparkContext._jvm
    factors = {{r["id"]: list(r["features"]) for r in model.itemFactors.collect()}}
    print(json.dumps([
        spark.sparkContext.getCheckpointDir(),
        jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName(),
        jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getSimpleName(),
        factors,
    ]))
    """
)


def test_als_fits_on_java_linear_algebra_with_a_small_stack_and_no_checkpoints(spark, tmp_path):
    """Each ALS iteration deepens the lineage that task serialization walks recursively;
    checkpoints cut it often enough that a fit still succeeds with 640 KB of the JVM's
    default 1 MB thread stack (with Spark's default interval of 10 the JVM dies there of a
    StackOverflowError). The checkpoints go when the process ends. The fit runs on Java's
    BLAS and LAPACK, the fallback of a machine without native ones, and finds the factors
    this session finds (native where the machine has them)."""
    run = subprocess.run(
        [sys.executable, "-c", ALS_ON_A_SMALL_STACK],
        cwd=REPO_ROOT, env={**os.environ, "CINEMATCH_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    folder, blas, lapack, factors = json.loads(run.stdout.splitlines()[-1])
    assert "JNI" not in blas and "JNI" not in lapack, (blas, lapack)
    assert len(factors) == 30
    here = fit_als(small_ratings(spark), rating_col="rating", rank=4, reg_param=0.1,
                   max_iter=20, seed=1)  # fmt: skip
    for row in here.itemFactors.collect():
        assert row["features"] == pytest.approx(factors[str(row["id"])], abs=1e-4)
    checkpoints = DataRoot(home=str(tmp_path)).checkpoints
    assert Path(urlparse(folder).path).parent.resolve() == checkpoints.resolve()
    assert checkpoints.is_dir() and not any(checkpoints.iterdir())


def _delta_jars() -> list[str]:
    """Delta Lake JARs available without Maven: CINEMATCH_DELTA_JARS or an Ivy cache."""
    listed = [p for p in os.environ.get("CINEMATCH_DELTA_JARS", "").split(",") if p]
    cached = [str(p) for d in Path.home().glob(".ivy2*/jars") for p in d.glob("io.delta_*.jar")]
    return listed or cached


SPARK_ENGINE_INTEROP = textwrap.dedent(
    """
    import sys
    from cinematch_assets.storage.delta_reader import read_delta
    from cinematch_assets.storage.delta_tables import read_table, write_table
    from cinematch_assets.resources.spark import SparkResource

    root, jars = sys.argv[1], sys.argv[2]
    spark = SparkResource(master="local[1]", remote="", delta_jars=True,
                          conf={"spark.jars": jars}).spark_session
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string")
    write_table(df, f"{root}/by_spark", engine="spark")
    write_table(df, f"{root}/by_delta_rs", engine="delta-rs")
    assert read_delta(f"{root}/by_spark").num_rows == 2
    assert read_table(spark, f"{root}/by_delta_rs", engine="spark").count() == 2
    assert read_table(spark, f"{root}/by_spark", engine="delta-rs").count() == 2
    print("ok")
    """
)


@pytest.mark.skipif(
    not _delta_jars(),
    reason="Delta Lake JARs for Spark are not available (they come from Maven Central, "
    "which this machine cannot reach); set CINEMATCH_DELTA_JARS=a.jar,b.jar to run",
)
def test_spark_delta_engine_interoperates_with_delta_rs(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", SPARK_ENGINE_INTEROP, str(tmp_path), ",".join(_delta_jars())],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-4000:]
