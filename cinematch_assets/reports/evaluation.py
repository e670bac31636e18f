"""The model report (prediction-analysis, tuning and metric charts, and the model card of
the product run) and the studies report (ablation, candidates on test, discovery curve,
cold movies, and their card, from the studies run)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cinematch_assets.ml.lists.build import ListPolicy
from cinematch_assets.ml.models.artifacts import Trained
from cinematch_assets.ml.models.ease import EaseModel
from cinematch_assets.ml.models.ranking import RankingModel
from cinematch_assets.ml.models.rating import RatingModel
from cinematch_assets.ml.selection.evaluation import (
    BIAS_BASELINE,
    GLOBAL_MEAN,
    Evaluation,
    Served,
    prediction_analysis,
)
from cinematch_assets.ml.selection.studies import discovery_curve
from cinematch_assets.reports.charts import BLUE, GREEN, GREY, ORANGE, PURPLE, style, write_report

ROLE_COLORS = {"model": BLUE, "baseline": GREY, "ablation": PURPLE}
RANKER_COLORS = {"als": BLUE, "ease": ORANGE}
BASELINE_COLORS = (GREY, GREEN, ORANGE, PURPLE)


def stars_colors(table: pd.DataFrame) -> dict[str, str]:
    """A colour per model of the prediction charts (the stars models of the evaluation
    table, not ablations): blue for the model, the baselines in the table's order."""
    stars = table[(table["task"] == "stars") & (table["role"] != "ablation")]
    baselines = iter(BASELINE_COLORS)
    return {
        name: BLUE if role == "model" else next(baselines, GREY)
        for name, role in zip(stars["name"], stars["role"], strict=True)
    }


def _error_figure(errors: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    for name, color in colors.items():
        mine = errors[errors["model"] == name]
        # The global mean's "error" is just the spread of the ratings.
        if mine.empty or name == GLOBAL_MEAN:
            continue
        share = mine["rows"] / mine["rows"].sum()
        fig.add_scatter(
            x=mine["error"], y=share, name=name, mode="lines+markers", line={"color": color}
        )
    fig.update_xaxes(title="predicted - actual stars")
    fig.update_yaxes(title="share of test rows", tickformat=".0%")
    return style(
        fig, "Error distribution", "Prediction minus the held-out rating, every test row", 460
    )


def _actual_vs_predicted_figure(by_rating: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    model = next(name for name, color in colors.items() if color == BLUE)
    for name in (model, BIAS_BASELINE):
        mine = by_rating[by_rating["model"] == name]
        if mine.empty:
            continue
        # A box per rating level from the prediction quantiles (whiskers at p10/p90).
        fig.add_trace(
            go.Box(
                x=mine["rating"],
                q1=mine["p25"],
                median=mine["p50"],
                q3=mine["p75"],
                lowerfence=mine["p10"],
                upperfence=mine["p90"],
                name=name,
                marker_color=colors[name],
            )
        )
    fig.add_scatter(
        x=[0.5, 5.0],
        y=[0.5, 5.0],
        mode="lines",
        name="perfect",
        line={"dash": "dot", "color": GREY},
    )
    fig.update_layout(boxmode="group")
    fig.update_xaxes(title="actual stars (held-out)", dtick=0.5)
    fig.update_yaxes(title="predicted stars", range=[0.4, 5.1])
    return style(
        fig,
        "Actual vs predicted",
        "Predictions per actual rating: median, quartiles, 10th-90th percentile",
        500,
    )


def _mae_figure(by_rating: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    for name, color in colors.items():
        mine = by_rating[by_rating["model"] == name]
        if not mine.empty:
            fig.add_bar(x=mine["rating"], y=mine["mae"], name=name, marker_color=color)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="actual stars (held-out)", dtick=0.5)
    fig.update_yaxes(title="mean absolute error")
    return style(
        fig,
        "MAE by rating level",
        "Models regress to the mean: the extremes are hardest",
        460,
    )


def _tuning_label(row: Mapping[str, Any], parameters: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {row[name]}" for name in parameters)


def _tuning_figure(rating: Trained[RatingModel], ranking: Trained[RankingModel]) -> go.Figure:
    rating_als = rating.training.searches["als_search"]
    ranking_als = ranking.training.searches["als_search"]
    fig = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=(
            f"rating model: mean validation {rating_als.metric} (lower is better)",
            f"ranking model: validation {ranking_als.metric} (higher is better)",
        ),
        vertical_spacing=0.18,
    )
    for row_number, result in ((1, rating_als), (2, ranking_als)):
        key = f"mean {result.metric}"
        fig.add_bar(
            y=[_tuning_label(row, result.parameters) for row in result.rows],
            x=[row[key] for row in result.rows],
            orientation="h",
            marker_color=[BLUE if row is result.best else GREY for row in result.rows],
            showlegend=False,
            row=row_number,
            col=1,
        )
    # The baselines on the same validation data.
    for row_number, trained in ((1, rating), (2, ranking)):
        fig.add_vline(
            x=trained.training.baseline_validation,
            line={"dash": "dot", "color": GREEN},
            row=row_number,
            col=1,
        )
    values = [row[f"mean {rating_als.metric}"] for row in rating_als.rows]
    values.append(rating.training.baseline_validation)
    fig.update_xaxes(range=[min(values) * 0.99, max(values) * 1.01], row=1, col=1)
    return style(
        fig,
        "Tuning results",
        f"{rating.training.tuning_plan} (rating) · {ranking.training.tuning_plan} (ranking); "
        "dotted: bias baseline / most popular on the same data; blue: chosen",
        200 + 36 * (len(rating_als.rows) + len(ranking_als.rows)) + 160,
    )


def _metrics_figure(
    table: pd.DataFrame, k: int, title: str = "Every model side by side"
) -> go.Figure:
    table = table[table["role"].isin(["model", "baseline", "ablation"])]
    stars = table[table["task"] == "stars"]
    lists = table[table["task"] == "lists"]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "RMSE on held-out ratings (lower is better)",
            f"NDCG@{k} (higher is better)",
        ),
        horizontal_spacing=0.35,
    )
    for col, rows, metric in ((1, stars, "rmse"), (2, lists, "ndcg")):
        fig.add_bar(
            y=rows["name"],
            x=rows[metric].astype(float),
            orientation="h",
            marker_color=[ROLE_COLORS[role] for role in rows["role"]],
            text=[f"{value:.4f}" for value in rows[metric].astype(float)],
            textposition="auto",
            showlegend=False,
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    finite = [v for v in stars["rmse"].astype(float) if math.isfinite(v)]
    if finite:
        fig.update_xaxes(range=[min(finite) * 0.95, max(finite) * 1.02], row=1, col=1)
    return style(
        fig,
        title,
        "Held-out Gold test split · blue: the models, grey: baselines, purple: ablation",
        140 + 34 * max(len(stars), len(lists)) + 120,
    )


def _candidates_figure(
    table: pd.DataFrame, candidates: list[ListPolicy], champion: ListPolicy, k: int
) -> go.Figure:
    """Every candidate served order on the test split: NDCG against coverage."""
    rows = table.set_index("name")
    fig = go.Figure()
    for ranker, color in RANKER_COLORS.items():
        mine = [p for p in candidates if p.ranker == ranker and p.name in rows.index]
        if not mine:
            continue
        fig.add_scatter(
            x=[float(rows.loc[p.name, "coverage"]) for p in mine],
            y=[float(rows.loc[p.name, "ndcg"]) for p in mine],
            mode="markers",
            name={"als": "implicit ALS", "ease": "EASE"}[ranker],
            text=[p.name for p in mine],
            hovertemplate="%{text}<br>coverage %{x:.3f}, NDCG %{y:.4f}<extra></extra>",
            marker={"color": color, "size": [16 if p == champion else 9 for p in mine]},
        )
    fig.update_xaxes(title="catalog coverage of the top-k lists")
    fig.update_yaxes(title=f"NDCG@{k} (held-out)")
    return style(
        fig,
        "Candidate served orders",
        f"Held-out test split; large: the champion chosen on validation ({champion.name})",
        480,
    )


def _discovery_figure(table: pd.DataFrame, champion: ListPolicy, k: int) -> go.Figure:
    """The champion with a growing popularity penalty: accuracy against discovery."""
    rows = table.set_index("name")
    curve = [p for p in discovery_curve(champion) if p.name in rows.index]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06)
    labels = [f"penalty {p.popularity_penalty:g}" for p in curve]
    ndcg = [float(rows.loc[p.name, "ndcg"]) for p in curve]
    for col, metric, title in (
        (1, "coverage", "catalog coverage"),
        (2, "novelty", "novelty (bits)"),
    ):
        fig.add_scatter(
            x=[float(rows.loc[p.name, metric]) for p in curve],
            y=ndcg,
            mode="lines+markers+text",
            text=labels,
            textposition="top right",
            line={"color": GREEN},
            showlegend=False,
            row=1,
            col=col,
        )
        fig.update_xaxes(title=title, row=1, col=col)
    fig.update_yaxes(title=f"NDCG@{k} (held-out)", row=1, col=1)
    return style(
        fig,
        "More discovery: the popularity penalty's price",
        "The served order with the popularity penalty raised step by step (what the app's "
        "'more discovery' control does)",
        460,
    )


# The next period's rows by kind, from their ids: what the chart colours them by.
NEXT_PERIOD_COLORS = {"served": BLUE, "most_popular": GREY, "recently_popular": GREY}


def _next_period_figure(table: pd.DataFrame, k: int) -> go.Figure:
    """Every order's NDCG@k on the ratings after T, with its 95% interval."""
    rows = table[table["role"] == "next_period"]
    kinds = rows["id"].str.removeprefix("next_period:")
    colors = [
        NEXT_PERIOD_COLORS.get(kind, ORANGE if "(candidate)" in name else GREEN)
        for kind, name in zip(kinds, rows["name"], strict=True)
    ]
    fig = go.Figure(
        go.Bar(
            y=rows["name"],
            x=rows["ndcg"].astype(float),
            error_x={"type": "data", "array": rows["ndcg_ci"].astype(float)},
            orientation="h",
            marker_color=colors,
            text=[f"{value:.4f}" for value in rows["ndcg"].astype(float)],
            # At the bar's start: its end is where the interval's whisker crosses it.
            textposition="inside",
            insidetextanchor="start",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title=f"NDCG@{k} on the ratings after T")
    return style(
        fig,
        "The next period: trained before T, judged on what came after",
        "Blue: the served order (its procedure replayed before T); grey: baselines; green: "
        "each model alone; orange: candidates. Bars: 95% intervals over users",
        160 + 40 * len(rows),
    )


def evaluation_figures(
    analysis: Mapping[str, pd.DataFrame],
    rating: Trained[RatingModel],
    ranking: Trained[RankingModel],
    table: pd.DataFrame,
    *,
    k: int,
) -> dict[str, go.Figure]:
    """The model report's charts, in display order."""
    colors = stars_colors(table)
    return {
        "model_metrics": _metrics_figure(table, k),
        "tuning_results": _tuning_figure(rating, ranking),
        "error_distribution": _error_figure(analysis["errors"], colors),
        "actual_vs_predicted": _actual_vs_predicted_figure(analysis["by_rating"], colors),
        "mae_by_rating": _mae_figure(analysis["by_rating"], colors),
    }


def studies_figures(
    table: pd.DataFrame, *, candidates: list[ListPolicy], champion: ListPolicy, k: int
) -> dict[str, go.Figure]:
    """The studies report's charts, in display order (`table`: every study's rows)."""
    figures = {}
    if table["role"].isin(["ablation", "baseline"]).any():
        figures["ablation"] = _metrics_figure(table, k, title="Ablation and the article's variant")
    if (table["role"] == "candidate").any():
        figures["candidates"] = _candidates_figure(table, candidates, champion, k)
    if (table["role"] == "discovery").any() or (table["role"] == "candidate").any():
        figures["discovery"] = _discovery_figure(table, champion, k)
    if (table["role"] == "next_period").any():
        figures["next_period"] = _next_period_figure(table, k)
    return figures


def run_stamp(run_id: str) -> str:
    """Which run wrote a report, and when."""
    return f"Dagster run `{run_id[:8]}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_markdown(table: pd.DataFrame) -> str:
    """The table for a reader: its labels (`name`) and the metrics it has, not the ids."""
    columns = [c for c in table.columns if c != "id" and table[c].notna().any()]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += [
        "| " + " | ".join(_fmt(row[c]) for c in columns) + " |" for _, row in table.iterrows()
    ]
    return "\n".join(lines) + "\n"


def _params_markdown(trained: Trained) -> str:
    values = trained.parameters() | trained.training.summary()
    return "\n".join(f"- {name}: `{_fmt(value)}`" for name, value in values.items())


def model_card(
    rating: Trained[RatingModel],
    ranking: Trained[RankingModel],
    ease: Trained[EaseModel],
    champion: ListPolicy,
    validation: pd.DataFrame,
    table: pd.DataFrame,
    versions: Mapping[str, int | None],
    *,
    k: int,
    run: str,
    liked_users: int,
) -> str:
    """Markdown: what was fitted on what, how it was tuned, and how what is served scored
    on test (`run`: which run wrote it; `liked_users`: the test users with a liked movie,
    of whom the lists were scored on a sample)."""
    rating_bias = rating.training.searches["bias_search"]
    rating_als = rating.training.searches["als_search"]
    ranking_als = ranking.training.searches["als_search"]
    ease_search = ease.training.searches["search"]
    inputs = "\n".join(f"- `{key}`: Delta version {version}" for key, version in versions.items())
    stars_model = table[(table["role"] == "model") & (table["task"] == "stars")]
    served = table[table["id"] == "served"].iloc[0]
    scored = int(served["users"])
    who = (
        f"all {liked_users:,} test users with a liked movie"
        if scored >= liked_users
        else f"a seeded sample: {scored:,} of the {liked_users:,} test users with a liked movie"
    )
    return f"""# CineMatch model card

The product run: {run}. The studies (ablation, every candidate on test, the cold-movie \
protocol) have their own card, from the run that made them.

## Data
{inputs}
- training rows: {rating.training.train_rows:,}; test rows per model: \
{int(stars_model["rows"].iloc[0]):,}

## Rating model (`ml/als_rating_model`): stars
Explicit ALS, predicted stars = global mean + user bias + movie bias + u.v, clipped to [0.5, 5].

{_params_markdown(rating)}

Bias baseline tuning ({rating_bias.metric}, {rating.training.tuning_plan}):

{rating_bias.markdown()}
ALS tuning ({rating_als.metric}, rows the model cannot score get the bias baseline):

{rating_als.markdown()}
## Ranking model (`ml/als_ranking_model`): what to show
Implicit-feedback ALS over who rated what; confidence 1 + alpha x value.

{_params_markdown(ranking)}

Tuning ({ranking_als.metric}, {ranking.training.tuning_plan}):

{ranking_als.markdown()}
## EASE (`ml/ease_ranking_model`): the ranking challenger
Closed-form item-item weights over who rated what (Steck 2019).

{_params_markdown(ease)}

Tuning ({ease_search.metric}, {ease.training.tuning_plan}):

{ease_search.markdown()}
## The served order (`ml/ranking_champion`)
**{champion.name}**: chosen on validation (the models refitted on the validation split's \
training part), the best NDCG@{k} among the candidates whose lists cover enough of the \
catalog. Every candidate on validation:

{metrics_markdown(validation)}
## Held-out evaluation (Gold test split, never used for fitting or tuning)
The served order: NDCG@{k} {served["ndcg"]:.4f} ± {served["ndcg_ci"]:.4f} ({scored:,} of \
{liked_users:,} users), {served["ndcg"] / _most_popular_ndcg(table):.2f}x most popular on \
the same users.

{HELD_OUT.format(k=k)} Stars on every test row; lists on {who}; `_ci`: the half-width of a \
mean's 95% interval over users (normal approximation).

{metrics_markdown(table)}"""


def _most_popular_ndcg(table: pd.DataFrame) -> float:
    return float(table.loc[table["id"] == "most_popular", "ndcg"].iloc[0]) or float("nan")


HELD_OUT = """Stars: every test row, cold rows predicted by the bias baseline. Lists: top-{k} \
among the movies a user did not rate in training, relevant = test rating >= 4; the served \
ranking's are the served lists, built by the same code. Novelty: mean -log2 of a shown \
movie's share of training ratings; Gini: of exposure over the training catalog; \
below_floor: share of entries predicted below 3 stars."""


def studies_card(
    table: pd.DataFrame,
    versions: Mapping[str, int | None],
    *,
    k: int,
    run: str,
    sample: Mapping[str, int],
    cold: Mapping[str, Any] | None,
    cv: Mapping[str, Any] | None = None,
    check: str = "",
    next_period: Mapping[str, Any] | None = None,
) -> str:
    """Markdown: every study's rows, on which models and data (`versions`), from which
    run; `sample`: test users in all and in the sample the lists were scored on; `check`:
    what `sample_check` says; `next_period`: the next-period study's details."""
    inputs = "\n".join(f"- `{key}`: Delta version {version}" for key, version in versions.items())
    users = (
        f"every one of the {sample['test_users']:,} test users"
        if sample["sampled"] >= sample["test_users"]
        else f"a seeded sample of {sample['sampled']:,} of the {sample['test_users']:,} test users"
    )
    return f"""# CineMatch studies

The studies run: {run}. What judges the design, on the product's models and split:

{inputs}

## Ablation, the article's variant, every candidate order on test
{HELD_OUT.format(k=k)} Stars on every test row; lists on {users}; `_ci`: the half-width of \
a mean's 95% interval over those users (normal approximation). Roles: `ablation` (a chosen \
model refitted with one choice flipped), `candidate` (every order the champion was chosen \
from on validation), `discovery` (the champion with a growing popularity penalty). \
{check}

{metrics_markdown(table[~table["role"].isin(["cold", "cv", "next_period"])])}\
{_next_period_markdown(table, next_period, k)}{_cold_markdown(table, cold, k)}\
{_cv_markdown(table, cv)}"""


def _next_period_markdown(table: pd.DataFrame, details: Mapping[str, Any] | None, k: int) -> str:
    if not details or "cutoff" not in details:
        return ""
    return f"""
## The next period (role `next_period`): as deployed
{next_period_sentence(details, k)}

Gold's ratings (train and test) cut at T = {details["cutoff"]}: {details["rows_before"]:,} \
before, {details.get("ratings_after", details["rows_after"]):,} after, {details["rows_after"]:,} \
of them by people who also rated before. The served procedure \
replayed on the ratings before T (each model's search with the product's grids, the champion \
among the product's candidates) chose **{details["served_order"]}**: {details["why"]}. Lists: \
top-{k} among the movies a user had not rated before T, relevant = rated >= 4 after T; \
{details["users"]:,} users. Recently popular: the movies most rated in the \
{details["recent_days"]} days before T. Candidates: EASE with its other Gram, EASE + ALS \
with nothing added, RP3beta and the sequence model (the last two tuned on the replay's \
validation split, NDCG@{k}: {details.get("rp3beta_validation", "")}; \
{details.get("sequence_validation", "")}).

{metrics_markdown(table[table["role"] == "next_period"])}"""


def next_period_sentence(details: Mapping[str, Any], k: int = 10) -> str:
    """One sentence: how the served order did on the next period against recently
    popular, for a reader who has not read the study."""
    difference, ci = details["ndcg_difference"], details["ndcg_difference_ci"]
    outcome = "beat" if difference - ci > 0 else "lost to" if difference + ci < 0 else "tied with"
    return (
        f"Trained on every rating before {details['cutoff']} and judged on what "
        f"{details['users']:,} people rated after it, the served order {outcome} the movies "
        f"most rated in the {details['recent_days']} days before: NDCG@{k} "
        f"{details['ndcg_served']:.4f} against {details['ndcg_recently_popular']:.4f}, a "
        f"difference of {difference:+.4f} ± {ci:.4f} (95% interval, paired by user)."
    )


NEXT_PERIOD_HEADING = "## On the next period"


def with_next_period(card: str, details: Mapping[str, Any], k: int = 10) -> str:
    """The model card with its next-period section (`studies/next_period` on these
    models) added, or replaced when a studies run wrote one before."""
    kept = card.split(f"\n{NEXT_PERIOD_HEADING}\n")[0].rstrip("\n")
    return f"""{kept}

{NEXT_PERIOD_HEADING}
{next_period_sentence(details, k)} (`studies/next_period`; the studies card has every order.)
"""


def _cv_markdown(table: pd.DataFrame, cv: Mapping[str, Any] | None) -> str:
    if not cv or "cv_choice" not in cv:
        return ""
    verdict = (
        "the same settings as the product's one validation split"
        if cv["agrees"]
        else f"other settings than the product's one validation split ({cv['product_choice']})"
    )
    rows = table[table["role"] == "cv"][["name", "rmse"]]
    return f"""
## The rating model's search by cross-validation (role `cv`)
The product tunes on one validation split of the training data; {cv["tuning"]} of the same \
settings chose {cv["cv_choice"]}: {verdict}. Mean validation RMSE over the folds:

{metrics_markdown(rows)}"""


def sample_check(studies: pd.DataFrame, product: pd.DataFrame) -> str:
    """Does the product's held-out NDCG of the served lists, scored on a seeded sample of
    the test users, agree with the same lists on every test user (`served_every_user`)?
    Both numbers with their 95% intervals, and whether each lies in the other's."""
    everyone = studies[studies["id"] == "served_every_user"]
    sampled = product[product["id"] == "served"]
    if everyone.empty or sampled.empty or sampled["ndcg_ci"].isna().all():
        return ""
    ndcg, ci = float(sampled["ndcg"].iloc[0]), float(sampled["ndcg_ci"].iloc[0])
    truth, truth_ci = float(everyone["ndcg"].iloc[0]), float(everyone["ndcg_ci"].iloc[0])
    users, every = int(sampled["users"].iloc[0]), int(everyone["users"].iloc[0])

    def where(inside: bool) -> str:
        return "inside" if inside else "**outside**"

    return (
        f"The served lists' NDCG@10: {ndcg:.4f} ± {ci:.4f} on the product's sample "
        f"({users:,} of {every:,} users); {truth:.4f} ± {truth_ci:.4f} on every one of "
        f"them (`studies/served_every_user`): every user's value is "
        f"{where(abs(truth - ndcg) <= ci)} the sample's interval, and the sample's "
        f"{where(abs(ndcg - truth) <= truth_ci)} every user's."
    )


def _cold_markdown(table: pd.DataFrame, cold: Mapping[str, Any] | None, k: int) -> str:
    if not cold or "ratings" not in cold:
        return ""
    return f"""
## New movies (role `cold`): content alone
{cold["held_out_movies"]:,} of the {cold["gold_movies"]:,} Gold movies held out of training \
entirely (all {cold["ratings"]:,} of their ratings, by {cold["users"]:,} users), the models \
refitted on the rest, and ridge regressions from content vectors to the ranking model's movie \
factors (regularization {cold["ranking_reg"]:g}) and to the rating model's movie bias and \
factors ({cold["rating_reg"]:g}), tuned on warm movies held out of the mapping's fit. Lists: \
the held-out movies ranked for each user who rated one, relevant = rated >= 4, NDCG@{k} among \
them; stars: every rating of a held-out movie. The New for you row's order is the content \
model's score on each user's own scale plus the title weight chosen on validation times the \
similarity of a title like one the user liked in training, each movie offered only to its \
exploration budget's share of these users (its lists can be short); "without titles" drops \
the title; "content without ..." refits the mapping without one part of the content vectors.

{metrics_markdown(table[table["role"] == "cold"])}"""


def write_evaluation_report(
    out_dir: Path,
    figures: Mapping[str, go.Figure],
    card: str,
    table: pd.DataFrame,
    *,
    title: str = "CineMatch models",
    card_name: str = "model_card.md",
) -> dict[str, Path]:
    """The charts (HTML + JSON), the card (`card_name`) and metrics.json."""
    records = json.loads(table.to_json(orient="records"))
    return write_report(
        out_dir,
        title=title,
        figures=figures,
        data_files={card_name: card, "metrics.json": json.dumps(records, indent=2) + "\n"},
    )


def write_model_report(
    out_dir: Path,
    served: Served,
    evaluation: Evaluation,
    validation: pd.DataFrame,
    versions: Mapping[str, int | None],
    *,
    k: int,
    run: str,
    liked_users: int,
) -> tuple[str, dict[str, Path]]:
    """The product run's report: the model card, the charts and the metrics (`validation`:
    the champion's candidates and their validation scores; `liked_users`: the test users
    with a liked movie). Returns the card and paths."""
    table = evaluation.table()
    card = model_card(
        served.rating, served.ranking, served.ease, served.champion, validation, table,
        versions, k=k, run=run, liked_users=liked_users,
    )  # fmt: skip
    figures = evaluation_figures(
        prediction_analysis(evaluation.predictions), served.rating, served.ranking, table, k=k
    )
    return card, write_evaluation_report(out_dir, figures, card, table)
