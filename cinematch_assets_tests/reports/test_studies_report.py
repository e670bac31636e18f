"""The studies card's check of the product's sampled list numbers against every user's."""

from __future__ import annotations

import pandas as pd

from cinematch_assets.reports.evaluation import sample_check


def tables(sampled: float, ci: float, everyone: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    studies = pd.DataFrame(
        [
            {"id": "served_every_user", "ndcg": everyone, "ndcg_ci": 0.002, "users": 200_000},
            {"id": "candidate:other", "ndcg": 0.5, "ndcg_ci": 0.01, "users": 20_000},
        ]
    )
    product = pd.DataFrame(
        [
            {"id": "served", "ndcg": sampled, "ndcg_ci": ci, "users": 20_000},
            {"id": "most_popular", "ndcg": 0.05, "ndcg_ci": 0.001, "users": 20_000},
        ]
    )
    return studies, product


def test_the_sample_and_every_user_are_compared_both_ways():
    close = sample_check(*tables(0.1204, 0.0027, 0.1193))
    assert "0.1204 ± 0.0027 on the product's sample (20,000 of 200,000 users)" in close
    assert "0.1193 ± 0.0020 on every one" in close
    assert "inside the sample's interval, and the sample's inside every user's" in close
    near = sample_check(*tables(0.1220, 0.0027, 0.1193))
    assert "inside the sample's interval, and the sample's **outside** every user's" in near
    far = sample_check(*tables(0.1300, 0.0027, 0.1193))
    assert "**outside** the sample's interval" in far


def test_nothing_to_say_without_the_rows():
    studies, product = tables(0.12, 0.01, 0.115)
    assert sample_check(studies[studies["id"] != "served_every_user"], product) == ""
    assert sample_check(studies, product.iloc[0:0]) == ""
