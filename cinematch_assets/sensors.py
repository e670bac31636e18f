"""The sensor that serves the app's visitors between product runs: it watches the app
ratings table's Delta version and requests a light run when the served lists do not take
it in yet."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from deltalake import DeltaTable

from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files

# A run in one of these is queued or running: the next waits for it.
IN_FLIGHT = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def app_ratings_sensor(job, interval_seconds: int):
    """The sensor, requesting `job` (the light run's) at most every `interval_seconds`."""

    @sensor(
        name="app_ratings_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description="Serves the app's visitors between product runs: when ratings were "
        "saved in the app since the served lists were made, requests the light run "
        f"({job.name}), at most one every {interval_seconds} s and none while one is in "
        "flight. Off until switched on in the UI.",
    )
    def watch(context: SensorEvaluationContext, data_root: DataRoot) -> SensorResult | SkipReason:
        home = data_root.path
        manifest = files.read_manifest(home)
        if manifest is None:
            return SkipReason("Nothing is served yet: the product run comes first.")
        table = app_ratings.ratings_path(home)
        if not DeltaTable.is_deltatable(str(table)):
            return SkipReason("No ratings were saved in the app yet.")
        version = DeltaTable(str(table)).version()
        if manifest.get(files.APP_RATINGS_VERSION) == version:
            return SkipReason(f"The served lists take in the app's ratings (v{version}).")
        in_flight = context.instance.get_run_records(
            RunsFilter(job_name=job.name, statuses=IN_FLIGHT), limit=1
        )
        if in_flight:
            return SkipReason(f"A light run is in flight ({in_flight[0].dagster_run.run_id}).")
        # One run per (served version, app table version): a failed run is not retried
        # until either moves.
        return SensorResult(run_requests=[RunRequest(run_key=f"{manifest['version']}@v{version}")])

    return watch
