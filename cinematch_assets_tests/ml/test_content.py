"""Content vectors and the ridge mapping into the models' spaces, in numpy: each part of
a vector, missing parts, the tag vocabulary, and a mapping that recovers a planted linear
map with its regularization chosen on held-out movies. No Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinematch_assets.ml.lists.build import ScoreScale
from cinematch_assets.ml.lists.new_movies import (
    audience_cuts,
    fill_bar,
    new_slot_threshold,
    observed_bias_shift,
)
from cinematch_assets.ml.models.content import (
    ContentVectors,
    content_vectors,
    fit_ridge,
    held_out_mask,
    tune_ridge,
)
from cinematch_assets.ml.models.titles import main_title, title_links, title_phrases, title_vectors
from cinematch_assets.ml.selection.cold import _top_k, _top_k_by_block

MOVIES = pd.DataFrame(
    {
        "movieId": [30, 10, 20, 40],
        "genres": [["Comedy"], ["Animation", "Comedy"], ["(no genres listed)"], ["Drama"]],
        "release_year": [1995, 1999, None, 2004],
    }
)
TAGS = pd.DataFrame(
    {
        "movieId": [10, 30, 10, 20, 40],
        "tag_key": ["pixar", "pixar", "funny", "one-off", "funny"],
        "users": [3, 1, 1, 1, 1],
    }
)
NO_GENOME = pd.DataFrame({"movieId": [], "tag": [], "relevance": []})


def column(vectors: ContentVectors, name: str) -> np.ndarray:
    return vectors.matrix[:, vectors.names.index(name)]


def test_each_part_is_unit_length_or_empty_and_rows_follow_sorted_ids():
    vectors = content_vectors(MOVIES, TAGS, NO_GENOME, vocabulary=10)
    assert vectors.movie_ids.tolist() == [10, 20, 30, 40]
    assert [n for n in vectors.names if n.startswith("genre:")] == [
        "genre:Animation", "genre:Comedy", "genre:Drama"
    ]  # fmt: skip
    for part in ("genre", "decade", "tag"):
        norms = np.linalg.norm(vectors.matrix[:, vectors.part(part)], axis=1)
        assert np.allclose(norms[norms > 0], 1.0)
    # Movie 20: no genres, no year, only a tag on one movie (not in the vocabulary).
    assert not vectors.matrix[1].any()
    assert column(vectors, "genre:Animation")[0] == pytest.approx(2**-0.5)
    assert column(vectors, "decade:1990s").tolist() == [1, 0, 1, 0]
    assert column(vectors, "decade:2000s").tolist() == [0, 0, 0, 1]
    assert not any(n.startswith("genome:") for n in vectors.names)


def test_tags_are_tf_idf_over_the_tags_on_most_movies():
    vectors = content_vectors(MOVIES, TAGS, NO_GENOME, vocabulary=1)
    assert [n for n in vectors.names if n.startswith("tag:")] == ["tag:funny"]
    vectors = content_vectors(MOVIES, TAGS, NO_GENOME, vocabulary=10)
    assert [n for n in vectors.names if n.startswith("tag:")] == ["tag:funny", "tag:pixar"]
    tags = vectors.matrix[:, vectors.part("tag")]
    # Movie 10: pixar given by 3 people weighs more than funny given by 1 (same idf).
    assert tags[0, 1] > tags[0, 0] > 0
    assert tags[0, 1] / tags[0, 0] == pytest.approx(np.log1p(3) / np.log1p(1))


def test_genome_relevance_is_centred_and_missing_movies_stay_empty():
    genome = pd.DataFrame(
        {"movieId": [10, 10, 30, 30], "tag": ["pixar", "dark", "pixar", "dark"],
         "relevance": [0.9, 0.1, 0.3, 0.7]}
    )  # fmt: skip
    vectors = content_vectors(MOVIES, TAGS, genome, vocabulary=10)
    block = vectors.matrix[:, vectors.part("genome")]
    names = [n for n in vectors.names if n.startswith("genome:")]
    assert names == ["genome:dark", "genome:pixar"]
    assert np.allclose(np.linalg.norm(block[[0, 2]], axis=1), 1.0)
    assert not block[[1, 3]].any()
    assert block[0, 1] > 0 > block[2, 1]


def test_rows_of_unknown_movies_are_zeros():
    vectors = content_vectors(MOVIES, TAGS, NO_GENOME)
    rows = vectors.rows(np.array([40, 99, 10]))
    assert np.array_equal(rows[0], vectors.matrix[3])
    assert not rows[1].any()
    assert np.array_equal(rows[2], vectors.matrix[0])


def test_ridge_recovers_a_planted_map_and_tuning_prefers_little_shrinkage_without_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 12))
    truth = rng.normal(size=(12, 5))
    y = x @ truth + 2.0
    ridge = fit_ridge(x, y, reg=1e-6)
    assert np.allclose(ridge.weights, truth, atol=1e-5)
    assert np.allclose(ridge.predict(x[:3]), y[:3], atol=1e-4)
    held = held_out_mask(np.arange(400), 0.25, seed=1)
    assert 60 < held.sum() < 140
    search = tune_ridge(x, y, [0.01, 100.0, 10_000.0], held)
    assert search.best == 0.01
    assert search.errors[0.01] < search.errors[100.0] < search.errors[10_000.0]


def test_noisy_targets_want_more_regularization():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 40))
    y = x[:, :1] + rng.normal(scale=3.0, size=(60, 1))
    held = held_out_mask(np.arange(60), 0.3, seed=2)
    assert tune_ridge(x, y, [1e-3, 100.0], held).best == 100.0


def test_top_k_is_sorted_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]])
    assert _top_k(scores, 3).tolist() == [[1, 3, 2], [0, 2, 1]]
    assert _top_k(scores, 10).shape == (2, 4)


def test_top_k_by_block_is_top_k_of_the_whole_matrix():
    scores = np.random.default_rng(5).random((23, 17))
    whole = _top_k(scores, 4)
    assert np.array_equal(_top_k_by_block(lambda users: scores[users], 23, 4, block=5), whole)
    assert _top_k_by_block(lambda users: scores[users], 0, 4).shape == (0, 4)


def test_a_new_movies_few_ratings_move_its_bias_like_a_damped_mean():
    """Residuals (stars minus the content's prediction) over count + damping, as the
    rating model learns a known movie's bias: no rating, no shift; more ratings, closer
    to their mean residual."""
    # Movie 0: two ratings 1 above its prediction; 2: one 3 below; 3: eight 0.8 above.
    sums, counts = np.array([2.0, 0.0, -3.0, 6.4, 0.0]), np.array([2, 0, 1, 8, 0])
    shift = observed_bias_shift(sums, counts, damping=2.0)
    np.testing.assert_allclose(shift, [0.5, 0.0, -1.0, 0.64, 0.0])
    # A rating model fitted without damping (the article's variant): the plain mean
    # residual, and still no shift, not 0/0, for a movie nobody rated.
    shift = observed_bias_shift(sums, counts, damping=0.0)
    np.testing.assert_allclose(shift, [1.0, 0.0, -3.0, 0.8, 0.0])


def test_the_liked_bar_weighs_each_held_out_movie_the_same():
    """A blockbuster liked by 99 users at z 5 and nine small movies liked once each at z
    0.1 to 0.9: weighed by pairs the blockbuster sets the bar, weighed by movie the small
    ones do (each movie a tenth of the weight: the 45th percentile is the fifth smallest
    movie's score)."""
    z = np.concatenate([np.full(99, 5.0), np.arange(1, 10) / 10])
    movies = np.concatenate([np.zeros(99, np.int64), np.arange(1, 10)])
    assert np.quantile(z, 0.5) == 5.0
    assert new_slot_threshold(z, movies, 0.45) == pytest.approx(0.5)
    assert new_slot_threshold(z, movies, 0.95) == 5.0
    # Nothing learned from: no movie takes a slot.
    assert new_slot_threshold(np.array([np.nan]), np.array([1]), 0.5) == np.inf


def test_the_fill_bar_lets_new_movies_take_at_most_their_share_of_the_slots():
    """Over every user's slots, the share of (user, slot) pairs a new movie can take
    above the bar is at most `share`, and the best-matched pairs are the ones kept; a
    movie below a user's audience cut never counts."""
    rng = np.random.default_rng(3)
    known = rng.normal(size=(50, 4)).astype(np.float32)
    new = rng.normal(size=(30, 4)).astype(np.float32)
    users = rng.normal(size=(200, 4)).astype(np.float32)
    scale = ScoreScale.of(known)
    z = scale.standardize(users, users @ new.T)
    audience = audience_cuts(users, new, scale, 0.2)
    eligible = np.where(z >= audience, z, -np.inf)
    for share in (0.1, 0.3, 0.5):
        bar = fill_bar(users, new, scale, audience, 2, share, block=7)
        taken = np.minimum((eligible >= bar).sum(axis=1), 2).sum()
        assert share * 400 - 2 <= taken <= share * 400
    # No cap, or no slot: nothing raises the threshold.
    assert fill_bar(users, new, scale, audience, 2, 1.0) == -np.inf
    assert fill_bar(users, new, scale, audience, 0, 0.3) == -np.inf
    # None: no new movie passes; a negative share is a mistake, said so.
    assert not (eligible >= fill_bar(users, new, scale, audience, 2, 0.0)).any()
    with pytest.raises(ValueError, match="0 or more"):
        fill_bar(users, new, scale, audience, 2, -0.1)


def test_title_phrases_are_words_and_word_pairs_without_articles():
    assert title_phrases("Lego Batman Movie, The") == {
        "lego", "batman", "movie", "lego batman", "batman movie"
    }  # fmt: skip
    assert title_phrases("Pride & Prejudice") == title_phrases("Pride and Prejudice")
    assert title_phrases("Rocky III") == title_phrases("Rocky 3") == {"rocky"}
    assert title_phrases(None) == set()
    # The other titles MovieLens adds in parentheses are not the film's name.
    assert title_phrases("Shrek Forever After (a.k.a. Shrek: The Final Chapter)") == {
        "shrek", "forever", "after", "shrek forever", "forever after"
    }  # fmt: skip
    assert main_title("Evangelion: 2.0 You Can (Not) Advance (Evangerion: Ha)") == (
        "Evangelion: 2.0 You Can (Not) Advance"
    )
    assert main_title("(500) Days of Summer") == "(500) Days of Summer"


def test_a_sequel_is_close_to_its_franchise_and_a_common_word_is_not_enough():
    titles = {
        1: "Toy Story", 2: "Toy Story 2", 3: "Toy Story 3", 4: "Toy Story 4",
        5: "Lego Movie, The", 6: "Lego Batman Movie, The", 7: "Movie 43",
        8: "Scary Movie", 9: "Heat", 10: "Heat Wave", 11: "Toy Story of Terror",
        12: "Summer Heat",
    }  # fmt: skip
    # A catalog's worth of other titles, so that phrase frequencies are a catalog's.
    titles |= {100 + i: f"Other{i} {'Movie' if i % 10 == 0 else 'Words'}" for i in range(400)}
    vectors = title_vectors(list(titles), list(titles.values()))
    known = np.array([1, 2, 3, 5, 7, 8, 9, 11])
    similar = title_links(vectors, np.array([4, 6, 12]), known, 0.3).matrix.toarray()
    assert (similar[0, :3] >= 0.3).all()  # Toy Story 4: Toy Story 1, 2 and 3
    assert similar[0, 7] >= 0.3  # and the later Toy Story of Terror: both ways in time
    assert similar[1, 3] >= 0.3  # The Lego Batman Movie: The Lego Movie
    assert similar[1, 4] == similar[1, 5] == 0  # "movie" alone links nothing
    assert similar[0, 3:7].sum() == 0
    assert similar[2].sum() == 0  # "Heat" leads no "Summer Heat": a word further in
    # Unit rows; a title sharing no phrase is a row of zeros.
    norms = np.sqrt(vectors.matrix.multiply(vectors.matrix).sum(axis=1)).A1
    assert (norms <= 1 + 1e-6).all() and norms[np.searchsorted(vectors.movie_ids, 9)] > 0
    assert vectors.rows(np.array([99])).nnz == 0


def test_titles_link_only_films_that_share_their_genres():
    """A sequel shares its franchise's genres; a namesake does not: "Game Night" does not
    follow "The Game", nor the 1950 "Dark City" the 1998 one."""
    titles = {
        1: ("Game, The", ["Drama", "Mystery", "Thriller"]),
        2: ("Game Night", ["Action", "Comedy", "Crime", "Horror"]),
        3: ("Dark City", ["Adventure", "Film-Noir", "Sci-Fi", "Thriller"]),
        4: ("Dark City", ["Crime", "Drama", "Film-Noir", "Mystery"]),
        5: ("Shrek 2", ["Adventure", "Animation", "Children", "Comedy", "Musical", "Romance"]),
        6: ("Shrek Forever After", ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]),
        7: ("Game Night", []),  # genres unknown: the title decides
    }
    titles |= {100 + i: (f"Other{i} Words", ["Drama"]) for i in range(400)}
    ids = list(titles)
    vectors = title_vectors(ids, [t for t, _ in titles.values()], [g for _, g in titles.values()])
    new, known = np.array([2, 4, 6, 7]), np.array([1, 3, 5])
    by_title = title_links(vectors, new, known, 0.3).matrix.toarray() > 0
    assert by_title[0, 0] and by_title[1, 1] and by_title[2, 2] and by_title[3, 0]
    linked = title_links(vectors, new, known, 0.3, min_shared_genres=0.5).matrix.toarray() > 0
    assert linked.tolist() == [
        [False, False, False],  # Game Night / The Game: no genre in common
        [False, False, False],  # Dark City 1950 / 1998: one of four
        [False, False, True],  # Shrek Forever After / Shrek 2: four of five
        [True, False, False],  # no genres to compare
    ]
