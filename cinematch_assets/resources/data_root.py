"""The data root: every path the pipeline reads or writes derives from it, so moving it in
run config (or with CINEMATCH_HOME) moves the lake, the reports, the models, the serving
files and the checkpoints together. The reports' and the serving files' layouts take the
root (`path`) in `storage.report_files` and `storage.serving_files`, which the app shares."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from cinematch_assets import settings


class DataRoot(ConfigurableResource):
    home: str = Field(
        default_factory=lambda: str(settings.cinematch_home()),
        description="Where everything lives (env CINEMATCH_HOME, default ./data).",
    )

    @property
    def path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def lake(self) -> Path:
        """Delta tables, `<lake>/<layer>/<table>`."""
        return self.path / "lake"

    @property
    def raw(self) -> Path:
        """The MovieLens releases as extracted (or generated)."""
        return self.path / "raw"

    @property
    def models(self) -> Path:
        """Spark ML `save` of the fitted models (their factors are lake tables too)."""
        return self.path / "models"

    @property
    def checkpoints(self) -> Path:
        """Spark checkpoints: long ALS fits cut their lineage here."""
        return self.path / "spark-checkpoints"

    @property
    def dagster_io(self) -> Path:
        """Small Python values passed between steps (the raw asset's descriptor)."""
        return self.path / "dagster_io"

    @property
    def benchmarks(self) -> Path:
        return self.path / "benchmarks"
