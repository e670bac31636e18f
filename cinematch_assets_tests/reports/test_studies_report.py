"""The studies card's check of its user sample against the product's all-users number."""

from __future__ import annotations

import pandas as pd

from cinematch_assets.ml.lists.build import ListPolicy
from cinematch_assets.reports.evaluation import sample_check

CHAMPION = ListPolicy("ease", 0.0, 0.35, 3.0)


def tables(on_sample: float, ci: float, everyone: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    studies = pd.DataFrame(
        [
            {"name": CHAMPION.name, "role": "candidate", "ndcg": on_sample, "ndcg_ci": ci},
            {"name": "other", "role": "candidate", "ndcg": 0.5, "ndcg_ci": 0.01},
        ]
    )
    product = pd.DataFrame(
        [{"name": "served ranking without new movies", "ndcg": everyone, "ndcg_ci": 0.001}]
    )
    return studies, product


def test_the_sample_lands_inside_or_outside_its_interval():
    assert "0.1200 ± 0.0100" in sample_check(*tables(0.12, 0.01, 0.115), CHAMPION)
    assert "inside the interval" in sample_check(*tables(0.12, 0.01, 0.115), CHAMPION)
    assert "**outside** the interval" in sample_check(*tables(0.12, 0.01, 0.135), CHAMPION)


def test_nothing_to_say_without_the_rows():
    studies, product = tables(0.12, 0.01, 0.115)
    assert sample_check(studies[studies["name"] == "other"], product, CHAMPION) == ""
    assert sample_check(studies, product.iloc[0:0], CHAMPION) == ""


def test_without_new_slots_the_served_lists_are_the_champions_order():
    studies, _ = tables(0.12, 0.01, 0.115)
    product = pd.DataFrame(
        [
            {"name": "served ranking", "ndcg": 0.118, "ndcg_ci": 0.001},
            {"name": "most popular", "ndcg": 0.05, "ndcg_ci": 0.001},
        ]
    )
    check = sample_check(studies, product, CHAMPION)
    assert "served ranking): 0.1180, inside the interval" in check
