"""The query API's models against the vocabulary: the counters are named in one place."""

from __future__ import annotations

from analytics_pipeline.query_api import Counters
from analytics_pipeline.vocabulary import COUNTERS


def test_the_answers_carry_every_counter_of_the_vocabulary_in_its_order():
    # the model spells them out for the type checker and the OpenAPI document; this keeps them one list
    assert tuple(Counters.model_fields) == COUNTERS
