"""What `make bench` measures beyond the pipeline's own benchmark (run from the repo root)."""

from pathlib import Path


def scratch_dagster_home(folder: Path) -> Path:
    """`folder` as a Dagster home of its own (runs, event log), telemetry off."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return folder
