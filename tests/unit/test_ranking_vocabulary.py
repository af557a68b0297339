from __future__ import annotations

from analytics_pipeline.vocabulary import COUNTERS, RANK_BY, RATINGS_AVG


def test_a_ranking_is_by_any_counter_or_the_average_rating():
    assert (*COUNTERS, RATINGS_AVG) == RANK_BY
