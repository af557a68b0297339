from __future__ import annotations

from analytics_pipeline.vocabulary import COUNTERS, RANK_BY, RATINGS_AVG, STATE_FIGURES, STATE_TABLES


def test_a_ranking_is_by_any_counter_the_average_rating_or_a_state_figure():
    assert (*COUNTERS, RATINGS_AVG, *STATE_FIGURES) == RANK_BY


def test_every_state_figure_comes_from_one_state_table():
    listed = [figure for figures in STATE_TABLES.values() for figure in figures]
    assert sorted(listed) == sorted(STATE_FIGURES) and len(set(listed)) == len(listed)
