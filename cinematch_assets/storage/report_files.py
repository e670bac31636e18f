"""The reports on disk: where each report lives and the manifest of its charts, in one
place for the writer (`reports.charts`) and the app, as `serving_files` is for serving.
No plotly, no Spark.

    $CINEMATCH_HOME/reports/
      eda/  ml/  studies/         one folder per report
        charts.json               {"title", "charts": [chart name, ...]} in display order
        <chart>.json <chart>.html the plotly figure, and a standalone page of it
        index.html plotly.min.js  every chart on one page, readable offline
      ml/model_card.md ml/metrics.json  studies/studies_card.md studies/metrics.json
      eda/eda_stats.json
"""

from __future__ import annotations

import json
from pathlib import Path

from cinematch_assets.storage.atomic_files import write_atomic

CHART_MANIFEST = "charts.json"
STUDIES_CARD = "studies_card.md"


def reports_dir(home: Path) -> Path:
    return Path(home) / "reports"


def eda_dir(home: Path) -> Path:
    return reports_dir(home) / "eda"


def models_dir(home: Path) -> Path:
    return reports_dir(home) / "ml"


def model_card_path(home: Path) -> Path:
    return models_dir(home) / "model_card.md"


def studies_dir(home: Path) -> Path:
    return reports_dir(home) / "studies"


def studies_card_path(home: Path) -> Path:
    return studies_dir(home) / STUDIES_CARD


def chart_json(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.json"


def chart_html(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.html"


def write_chart_manifest(folder: Path, title: str, names: list[str]) -> Path:
    return write_atomic(
        Path(folder) / CHART_MANIFEST, json.dumps({"title": title, "charts": names}, indent=2)
    )


def chart_names(folder: Path) -> list[str]:
    """The report's charts in display order; none when it has not been written (or its
    manifest cannot be read)."""
    try:
        manifest = json.loads((Path(folder) / CHART_MANIFEST).read_text(encoding="utf-8"))
        return [str(name) for name in manifest["charts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
