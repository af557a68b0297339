"""MYSQL_LABELS, MYSQL_STATE and MYSQL_TITLE_COLUMN: parsed and checked once, named when wrong; and the
statement time limit each site read carries."""

from __future__ import annotations

import pytest
from analytics_pipeline.config import load_settings
from analytics_pipeline.errors import ConfigurationError

MYSQL = {"MYSQL_URL": "mysql://anl:pw@127.0.0.1:3306/site"}


def test_labels_and_state_are_parsed_into_their_parts():
    s = load_settings(
        {
            **MYSQL,
            "MYSQL_LABELS": " actor=actors.uuid.name , tag=tags.id.name,",
            "MYSQL_STATE": (
                "favorites=favorites.jav_id,watchlists=watchlists.jav_id,ratings=ratings.jav_id.rating"
            ),
            "MYSQL_TITLE_COLUMN": "title",
        }
    )
    assert s.mysql_labels == {"actor": ("actors", "uuid", "name"), "tag": ("tags", "id", "name")}
    assert s.mysql_state == {
        "favorites": ("favorites", "jav_id"),
        "watchlists": ("watchlists", "jav_id"),
        "ratings": ("ratings", "jav_id", "rating"),
    }
    assert s.mysql_title_column == "title"


def test_unset_they_name_nothing():
    s = load_settings(MYSQL)
    assert (s.mysql_labels, s.mysql_state, s.mysql_title_column) == ({}, {}, None)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MYSQL_LABELS": "movie=jav.uuid.title"}, "MYSQL_LABELS: movies are labelled from MYSQL_TABLE"),
        ({"MYSQL_LABELS": "actor=actors.name"}, "MYSQL_LABELS: actor: expected table.id_column.label_column"),
        ({"MYSQL_LABELS": "studio=s.id.name"}, "MYSQL_LABELS: 'studio' is not an entity type"),
        (
            {"MYSQL_LABELS": "actor=actors.uuid.name`; DROP"},
            "MYSQL_LABELS: actor: .* is not a MySQL identifier",
        ),
        ({"MYSQL_LABELS": "actor=a.b.c,actor=d.e.f"}, "MYSQL_LABELS: actor is named twice"),
        ({"MYSQL_LABELS": "actors.uuid.name"}, "MYSQL_LABELS: .* is not an entry like"),
        ({"MYSQL_STATE": "likes=likes.jav_id"}, "MYSQL_STATE: 'likes' is not a state table"),
        (
            {"MYSQL_STATE": "ratings=ratings.jav_id"},
            "MYSQL_STATE: ratings: expected table.jav_id_column.rating",
        ),
        ({"MYSQL_STATE": "favorites=f.jav_id.extra"}, "MYSQL_STATE: favorites: expected table.jav_id_column"),
        ({"MYSQL_TITLE_COLUMN": "title, password"}, "MYSQL_TITLE_COLUMN"),
    ],
)
def test_a_bad_entry_is_refused_and_named(env, named):
    with pytest.raises(ConfigurationError, match=named):
        load_settings({**MYSQL, **env})


@pytest.mark.parametrize("name", ["MYSQL_LABELS", "MYSQL_STATE", "MYSQL_TITLE_COLUMN"])
def test_naming_the_sites_tables_without_mysql_is_refused(name):
    value = {"MYSQL_LABELS": "tag=tags.id.name", "MYSQL_STATE": "favorites=f.jav_id"}.get(name, "title")
    with pytest.raises(ConfigurationError, match=f"{name} names the site's tables, but MYSQL_URL"):
        load_settings({name: value})
