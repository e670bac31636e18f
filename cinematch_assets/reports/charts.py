"""What every CineMatch report shares: the dark chart style and the files a report is.

A report is a folder (layout in `storage.report_files`): one standalone HTML page and one
plotly JSON per chart (the app re-renders the JSON), the manifest naming the charts in
order, an `index.html` with every chart, data files, and the `plotly.min.js` they all
load, so the pages render offline. Every file is written atomically: a reader sees the
old file or the new one, never half.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from cinematch_assets.storage import report_files
from cinematch_assets.storage.atomic_files import write_atomic

TEMPLATE = "plotly_dark"
BACKGROUND = "#111111"  # plotly_dark's paper colour, so the HTML pages blend in
BLUE, GREEN, ORANGE, GREY, RED, PURPLE = (
    "#636efa",
    "#00cc96",
    "#ffa15a",
    "#8c8c8c",
    "#ef553b",
    "#ab63fa",
)
PLOTLY_JS = "plotly.min.js"


def style(fig: go.Figure, title: str, subtitle: str, height: int) -> go.Figure:
    """The house style: dark template, bold title with a subtitle, legend on top."""
    fig.update_layout(
        template=TEMPLATE,
        title={"text": f"<b>{title}</b>", "subtitle": {"text": subtitle}, "x": 0.01},
        height=height,
        margin={"t": 110, "l": 80, "r": 80, "b": 70},
        font={"size": 13},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        hoverlabel={"font_size": 13},
    )
    return fig


def page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
  body {{ background: {BACKGROUND}; color: #e6e6e6; margin: 0 auto; max-width: 1280px;
         padding: 16px 24px; font-family: "Open Sans", Verdana, Arial, sans-serif; }}
  h1 {{ font-weight: 600; }}
  table {{ border-collapse: collapse; margin-bottom: 24px; }}
  td, th {{ padding: 4px 16px 4px 0; border-bottom: 1px solid #333; text-align: left; }}
  .chart {{ margin-bottom: 32px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def html_table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """An HTML table of escaped cells."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header or [])
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table>\n{f'<tr>{head}</tr>' if head else ''}\n{body}\n</table>"


def write_report(
    out_dir: Path,
    *,
    title: str,
    figures: Mapping[str, go.Figure],
    intro_html: str = "",
    data_files: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write one HTML and one JSON file per chart, the data files, then index.html (title,
    `intro_html`, every chart). Returns the paths by file name."""
    out_dir = Path(out_dir)
    # plotly.js first and index.html last, so no page ever points at a missing file.
    written = [write_atomic(out_dir / PLOTLY_JS, get_plotlyjs())]
    charts = []
    for name, fig in figures.items():
        written.append(write_atomic(report_files.chart_json(out_dir, name), fig.to_json()))
        # A fixed div id keeps the HTML byte-for-byte reproducible (plotly's default is random).
        chart = fig.to_html(full_html=False, include_plotlyjs="directory", div_id=name)
        written.append(
            write_atomic(
                report_files.chart_html(out_dir, name),
                page(f"{title}: {name.replace('_', ' ')}", chart),
            )
        )
        charts.append(
            f'<div class="chart">'
            f"{fig.to_html(full_html=False, include_plotlyjs=False, div_id=f'{name}-chart')}</div>"
        )
    for name, text in (data_files or {}).items():
        written.append(write_atomic(out_dir / name, text))
    written.append(report_files.write_chart_manifest(out_dir, title, list(figures)))
    body = (
        f'<script charset="utf-8" src="{PLOTLY_JS}"></script>\n'
        f"<h1>{html.escape(title)}</h1>\n{intro_html}\n" + "\n".join(charts)
    )
    written.append(write_atomic(out_dir / "index.html", page(title, body)))
    return {path.name: path for path in written}
