"""The abuse limits' settings: caps, the IPv6 prefix and the dedupe key, validated in one place."""

from __future__ import annotations

import pytest
from analytics_pipeline.config import load_settings, parse_entity_caps
from analytics_pipeline.errors import ConfigurationError


def test_default_caps_are_the_contracts():
    assert load_settings({}).caps == {
        "view": (20, 3600),
        "download": (20, 3600),
        "favorite": (3, 86400),
        "watchlist": (3, 86400),
        "rating": (3, 86400),
    }


def test_caps_can_be_off_or_partial():
    assert parse_entity_caps("off") == {}
    assert parse_entity_caps(" view=5/d ") == {"view": (5, 86400)}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("view=20", "not action=N/h"),
        ("views=20/h", "'views' is not an action"),
        ("view=0/h", "1-65535"),
        ("view=20/h,view=3/d", "capped twice"),
        ("view=20/w", "not action=N/h"),
    ],
)
def test_a_bad_cap_is_named(raw, named):
    with pytest.raises(ConfigurationError, match=f"ENTITY_CAPS: .*{named}"):
        load_settings({"ENTITY_CAPS": raw})


@pytest.mark.parametrize("prefix", ["31", "129", "x"])
def test_the_ipv6_prefix_is_checked(prefix):
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_IPV6_PREFIX"):
        load_settings({"RATE_LIMIT_IPV6_PREFIX": prefix})


def test_a_short_dedupe_key_is_refused():
    with pytest.raises(ConfigurationError, match="DEDUPE_KEY"):
        load_settings({"DEDUPE_KEY": "short"})


def test_the_key_and_its_secret_are_not_both_set():
    with pytest.raises(ConfigurationError, match="set DEDUPE_KEY or DEDUPE_KEY_SECRET_ARN, not both"):
        load_settings({"DEDUPE_KEY": "k" * 20, "DEDUPE_KEY_SECRET_ARN": "arn:aws:secretsmanager:x"})


def test_the_previous_key_is_not_the_current_one():
    with pytest.raises(ConfigurationError, match="DEDUPE_KEY_PREVIOUS"):
        load_settings({"DEDUPE_KEY": "k" * 20, "DEDUPE_KEY_PREVIOUS": "k" * 20})
