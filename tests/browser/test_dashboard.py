"""The admin dashboard in headless Chromium.

One test drives it end to end on `anl serve` (what the local server answers today); the others drive it
against a stand-in of its server side (tests/browser/dashboard_standin.py): the period rankings, the
site-wide series, labels, the status route, config.json and an OIDC provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from analytics_pipeline.bootstrap import container
from analytics_pipeline.models import CountedEvent
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.dashboard_standin import StandIn, s256
from tests.pipeline import counted

pytestmark = pytest.mark.browser

WAIT_S = 15
SCREENSHOTS = Path("/tmp/dashboard-screenshots")
ABP = "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"  # a movie of the stand-in, labelled ABP-123


def views(
    event_id: str, entity_id: str, day: str, amount: int, entity_type: str = "movie"
) -> list[CountedEvent]:
    """Many views of one entity on one day: one event each, as ingest counts them."""
    return [
        CountedEvent(f"{event_id}-{i}", "jav", entity_type, entity_id, day, (("views", 1),))
        for i in range(amount)
    ]


def today() -> date:
    return datetime.now(UTC).date()


def days_ago(n: int) -> str:
    return (today() - timedelta(days=n)).isoformat()


def open_dashboard(browser: Any, url: str, **params: str) -> None:
    browser.get(f"{url}/dashboard?{urlencode(params)}")


def wait_for(browser: Any, css: str) -> Any:
    waiting = WebDriverWait(browser, WAIT_S, ignored_exceptions=(WebDriverException,))
    return waiting.until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def wait_ready(browser: Any, *ids: str) -> None:
    for element_id in ids:
        wait_for(browser, f"#{element_id}[data-state='ready']")


def wait_message(browser: Any, fragment: str) -> None:
    """Wait until the message area says `fragment` (across the page loads of a sign-in, during which
    the driver may find no page to ask at all: any WebDriverException is waited out)."""
    WebDriverWait(browser, WAIT_S, ignored_exceptions=(WebDriverException,)).until(
        lambda d: fragment in d.find_element(By.ID, "messages").text
    )


def text(browser: Any, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def top_rows(browser: Any) -> list[list[str]]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#top-table tbody tr[data-entity-id]")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def top_ids(browser: Any) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#top-table tbody tr[data-entity-id]")
    return [row.get_attribute("data-entity-id") for row in rows]


def totals(browser: Any) -> dict[str, str]:
    cells = browser.find_elements(By.CSS_SELECTOR, "#totals dd[data-field]")
    return {cell.get_attribute("data-field"): cell.text for cell in cells}


def line(browser: Any, chart: str, name: str) -> list[str]:
    group = browser.find_element(By.CSS_SELECTOR, f"#{chart} svg g.line.{name}")
    return group.get_attribute("data-values").split(",")


def set_value(browser: Any, element_id: str, value: str) -> None:
    browser.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id,
        value,
    )


def query_of(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


def api_calls(stand_in: StandIn, suffix: str) -> list[dict[str, str]]:
    return [query for path, query, _ in stand_in.api.requests if path.endswith(suffix)]


# --- end to end on `anl serve` ---------------------------------------------------------------------------

# movie and actor ids are UUIDs; these sort as their names do (a ranking's ties go by entity_id)
ALPHA, BRAVO, CHARLIE, DELTA = (f"{n:08x}-0000-4000-8000-000000000000" for n in (0xA, 0xB, 0xC, 0xD))


@pytest.fixture
def seeded(live_server, clock):
    """Three movies and an actor counted on the days around the test clock (2026-03-01), then flushed."""
    events = [
        counted("e-1", ALPHA, "2026-02-27"),
        *views("e-2", ALPHA, "2026-02-28", 1200),
        *views("e-3", ALPHA, "2026-03-01", 34),
        counted("e-4", ALPHA, "2026-02-28", "download"),
        counted("e-5", ALPHA, "2026-03-01", "download"),
        counted("e-6", ALPHA, "2026-02-28", "rating", 4),
        counted("e-7", ALPHA, "2026-03-01", "rating", 5),
        *views("e-8", BRAVO, "2026-02-28", 7),
        counted("e-9", BRAVO, "2026-02-28", "favorite"),
        *views("e-10", CHARLIE, "2026-03-01", 7),  # ties with BRAVO: entity_id decides
        *views("e-11", DELTA, "2026-03-01", 5000, entity_type="actor"),
    ]
    outcome = container().hot_store.record(events, None, clock())
    assert all(outcome.counted)
    report = live_server.flush()
    assert report["flush"]["dirty"] == 0 and report["flush"]["errors"] == []
    return live_server


def test_dashboard_on_anl_serve_shows_the_ranking_totals_and_series_of_a_custom_period(seeded, browser):
    open_dashboard(browser, seeded.url, entity=ALPHA, **{"from": "2026-02-25", "to": "2026-03-01"})
    wait_ready(browser, "top-table", "totals", "series")
    assert browser.find_element(By.ID, "period").get_attribute("value") == "custom"

    rows = top_rows(browser)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert top_ids(browser) == [ALPHA, BRAVO, CHARLIE]
    assert rows[0][2:] == ["1,235", "2", "0", "0", "2", "4.50"]  # the average rating, not the sum (9)

    assert totals(browser) == {
        "views": "1,235",
        "downloads": "2",
        "favorites": "0",
        "watchlists": "0",
        "ratings_count": "2",
        "ratings_avg": "4.50",
        # no MYSQL_STATE: the site's own figures are unknown here, never 0
        "favorites_active": "not configured",
        "watchlists_active": "not configured",
        "ratings_current_count": "not configured",
        "ratings_current_avg": "not configured",
    }
    assert line(browser, "series-chart", "current") == ["0", "0", "1", "1200", "34"]
    assert "1,235 views in the period" in text(browser, "#series-caption")

    browser.find_element(By.CSS_SELECTOR, f"#top-table tr[data-entity-id='{BRAVO}'] button").click()
    wait_for(browser, f"#totals[data-entity='{BRAVO}'][data-state='ready']")
    assert totals(browser)["ratings_avg"] == "—"
    assert f"entity={BRAVO}" in browser.current_url
    assert "Page error" not in browser.find_element(By.ID, "messages").get_attribute("textContent")


def console(browser: Any) -> list[dict[str, Any]]:
    """What the page wrote to the console (and what Chromium logged there: refused requests, CSP)."""
    return [entry for entry in browser.get_log("browser") if entry.get("source") != "deprecation"]


def test_dashboard_on_anl_serve_loads_with_an_empty_console_under_its_policy(seeded, browser):
    import urllib.request

    open_dashboard(browser, seeded.url, **{"from": "2026-02-25", "to": "2026-03-01"})
    wait_ready(browser, "top-table", "totals", "series", "trend", "status")
    # its own icon, allowed by its own policy (a data: icon was refused on every load)
    icon = browser.find_element(By.CSS_SELECTOR, "link[rel='icon']").get_attribute("href")
    assert icon == f"{seeded.url}/dashboard/favicon.svg"
    with urllib.request.urlopen(icon) as answer:
        assert answer.headers["Content-Type"] == "image/svg+xml" and answer.read().startswith(b"<svg")
    with urllib.request.urlopen(f"{seeded.url}/dashboard") as answer:
        policy = dict(
            part.strip().split(" ", 1) for part in answer.headers["Content-Security-Policy"].split(";")
        )
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    assert policy["img-src"] == "'self'" and policy["default-src"] == "'self'"
    assert console(browser) == []


def test_dashboard_on_anl_serve_says_what_its_status_does_not_have_yet(seeded, browser):
    """The local file spool has no dead-letter queue, and no parity report was recorded: said so in
    words, neither red nor 0."""
    open_dashboard(browser, seeded.url, **{"from": "2026-02-25", "to": "2026-03-01"})
    wait_ready(browser, "status")
    figures = status_figures(browser)
    assert figures["dead-letter"] == "n/a (file spool)"
    assert figures["parity-days"] == "no report yet"
    assert figures["checked"] != "unknown"  # the fixture's tick ran the watchdog
    assert browser.find_elements(By.CSS_SELECTOR, "#status dd.unknown") == []
    assert not browser.find_element(By.ID, "status-errors").is_displayed()


def test_a_domain_from_the_address_is_checked_before_any_request_uses_it(seeded, browser):
    open_dashboard(browser, seeded.url, domain="nope", **{"from": "2026-02-25", "to": "2026-03-01"})
    wait_ready(browser, "top-table")
    assert 'Domain "nope" is not configured here (jav): showing jav instead.' in text(browser, "#messages")
    assert top_ids(browser) == [ALPHA, BRAVO, CHARLIE]
    assert query_of(browser.current_url)["domain"] == "jav"
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#domain option")]
    assert options == ["jav"]  # the configured domains are the choice


# --- against the stand-in -----------------------------------------------------------------------------------


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn(movie_url="https://site.example/movies/{entity_id}")
    yield server
    server.close()


def parity_run(at: str, **figures: Any) -> dict[str, Any]:
    """The summary of one recorded parity run, as the status carries it under parity.last."""
    zero = dict.fromkeys(
        ("checked", "matched", "mismatched", "missing_rows", "held_above", "in_flight", "outside"), 0
    )
    counts = {**zero, **figures}
    ok = counts["checked"] > 0 and counts["mismatched"] == 0 and counts["outside"] == 0
    return {"at": at, "source": "watchdog", "mode": "sync", "ok": ok, **counts}


def seed_periods(stand_in: StandIn) -> None:
    """m-recent leads the last 7 days; m-older leads over 90 days; ratings set the averages apart."""
    api = stand_in.api
    api.add("movie", "m-recent", days_ago(1), views=30, ratings_count=2, ratings_sum=6)
    api.add("movie", "m-older", days_ago(40), views=500, ratings_count=6, ratings_sum=27)
    api.add("movie", "m-older", days_ago(2), views=3)
    api.add("movie", "m-few", days_ago(3), views=1, ratings_count=1, ratings_sum=5)
    api.add("movie", "m-previous", days_ago(10), views=20)  # in the 7 days before the last 7
    api.add("actor", "a-1", days_ago(1), views=999)
    api.labels.update({"m-recent": "ABC-001", "m-older": "XYZ-123"})
    api.status = {
        "lag": {
            "dirty": 3,
            "in_flight": 1,
            "oldest_dirty_s": 12.5,
            "oldest_in_flight_s": 2.0,
            "last_flush_age_s": 40,
        },
        "spool": {"pending": 7},
        "dead_letter": {"pending": 2},
        "watchdog": {"checked": 120, "mismatches": 0, "errors": 0, "at": "2026-12-01T10:00:00Z"},
        "parity": {"clean_days": 3, "last": parity_run("2026-12-01T03:00:00Z", checked=1000)},
        "errors": [],
    }


def test_period_picker_ranks_by_what_was_counted_in_the_period_and_keeps_it_in_the_url(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "top-table")
    assert top_ids(browser) == ["m-recent", "m-older", "m-few"]
    asked = api_calls(stand_in, "/movie/top")[-1]
    assert (asked["from"], asked["to"], asked["counter"]) == (days_ago(6), days_ago(0), "views")

    Select(browser.find_element(By.ID, "period")).select_by_value("90d")
    wait_for(browser, "#top-table[data-state='ready'] tr[data-entity-id='m-previous']")
    assert top_ids(browser) == ["m-older", "m-recent", "m-previous", "m-few"]
    assert query_of(browser.current_url)["period"] == "90d"
    assert browser.find_element(By.ID, "from").get_attribute("value") == days_ago(89)

    browser.get(browser.current_url)  # the deep link brings the same period back
    wait_ready(browser, "top-table")
    assert browser.find_element(By.ID, "period").get_attribute("value") == "90d"
    assert top_ids(browser)[0] == "m-older"


def test_this_month_runs_from_the_first_of_the_month_to_today(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="month")
    wait_ready(browser, "top-table")
    assert api_calls(stand_in, "/movie/top")[-1]["from"] == today().replace(day=1).isoformat()
    assert api_calls(stand_in, "/movie/top")[-1]["to"] == today().isoformat()


def test_custom_range_from_the_date_fields_becomes_a_custom_deep_link(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "top-table")
    set_value(browser, "from", days_ago(45))
    wait_for(browser, "#top-table[data-state='ready'] tr[data-entity-id='m-previous']")
    query = query_of(browser.current_url)
    assert (query["period"], query["from"], query["to"]) == ("custom", days_ago(45), days_ago(0))
    assert browser.find_element(By.ID, "period").get_attribute("value") == "custom"


def test_a_range_that_ends_before_it_starts_is_refused_before_asking_the_api(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="custom", **{"from": days_ago(1), "to": days_ago(5)})
    wait_message(browser, "From: must not be after To")
    assert api_calls(stand_in, "/top") == []


def test_trend_draws_the_previous_period_beside_the_current_one_with_the_change(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "trend")
    current = line(browser, "trend-chart", "current")
    previous = line(browser, "trend-chart", "previous")
    assert len(current) == len(previous) == 7
    assert current[5] == "30" and current[4] == "3" and current[3] == "1"  # 1, 2 and 3 days ago
    assert previous[3] == "20"  # 10 days ago is the 4th day of the 7 before
    assert text(browser, "#trend-current") == "34"
    assert text(browser, "#trend-previous") == "20"
    assert text(browser, "#trend-change") == "+70 %"
    series = api_calls(stand_in, "/movie/series")
    assert {"from": days_ago(13), "to": days_ago(7), "bucket": "day"} in series


def test_labels_link_to_the_movie_through_the_url_template(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "top-table")
    link = browser.find_element(By.CSS_SELECTOR, "tr[data-entity-id='m-recent'] a.label")
    assert link.text == "ABC-001"
    assert link.get_attribute("href") == "https://site.example/movies/m-recent"
    assert link.get_attribute("rel") == "noopener noreferrer"
    # a movie without a label: its id, and still a link
    unlabelled = browser.find_element(By.CSS_SELECTOR, "tr[data-entity-id='m-few']")
    assert unlabelled.find_elements(By.CSS_SELECTOR, "a.label") == []
    assert unlabelled.find_element(By.CSS_SELECTOR, "a.open").get_attribute("href").endswith("/movies/m-few")


def test_without_a_url_template_labels_are_shown_without_links(browser):
    server = StandIn(movie_url=None)
    try:
        seed_periods(server)
        open_dashboard(browser, server.url, period="7d")
        wait_ready(browser, "top-table")
        row = browser.find_element(By.CSS_SELECTOR, "tr[data-entity-id='m-recent']")
        assert row.find_element(By.CSS_SELECTOR, ".label").text == "ABC-001"
        assert row.find_elements(By.TAG_NAME, "a") == []
    finally:
        server.close()


def test_tables_show_the_average_rating_and_rank_by_it_above_min_ratings(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="90d")
    wait_ready(browser, "top-table")
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#top-table thead th")]
    assert "average rating" in headers and "ratings sum" not in headers
    assert top_rows(browser)[0][-1] == "4.50"  # m-older: 27 / 6
    assert not browser.find_element(By.ID, "min-ratings").is_displayed()

    Select(browser.find_element(By.ID, "counter")).select_by_value("ratings_avg")
    assert browser.find_element(By.ID, "min-ratings").is_displayed()
    set_value(browser, "min-ratings", "2")
    wait_for(browser, "#top-table[data-state='ready'][data-count='2']")
    assert top_ids(browser) == ["m-older", "m-recent"]  # 4.5 then 3.0; m-few has one rating only
    assert api_calls(stand_in, "/movie/top")[-1]["min_ratings"] == "2"
    assert query_of(browser.current_url)["min_ratings"] == "2"
    assert text(browser, "#trend-current") == "4.22"  # the period's ratings: (6 + 27 + 5) / (2 + 6 + 1)
    assert text(browser, "#trend-previous") == "—"  # no rating before: no average, and no change
    assert text(browser, "#trend-change") == "—"


def status_figures(browser: Any) -> dict[str, str]:
    cells = browser.find_elements(By.CSS_SELECTOR, "#status dd")
    return {cell.get_attribute("id").removeprefix("status-"): cell.text for cell in cells}


def test_status_shows_lag_spool_dead_letter_and_the_watchdogs_last_check(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url)
    wait_ready(browser, "status")
    figures = status_figures(browser)
    assert figures | {"watchdog-at": "", "parity-last": ""} == {
        "dirty": "3",
        "in-flight": "1",
        "oldest-dirty": "12.5",
        "oldest-in-flight": "2",
        "last-flush": "40",
        "spool": "7",
        "dead-letter": "2",
        "checked": "120",
        "mismatches": "0",
        "watchdog-errors": "0",
        "watchdog-at": "",
        "parity-days": "3 days",
        "parity-last": "",
    }
    assert figures["watchdog-at"].startswith("2026-12-01 10:00:00 UTC (")
    assert figures["parity-last"].startswith("2026-12-01 03:00:00 UTC (")
    assert figures["parity-last"].endswith("ago) — clean: 1,000 checked, 0 mismatches, run by the watchdog")
    assert "warn" in browser.find_element(By.ID, "status").get_attribute("class")  # 2 in the dead letter
    assert not browser.find_element(By.ID, "status-errors").is_displayed()


def test_a_status_check_that_did_not_run_shows_as_unknown_never_as_zero(stand_in, browser):
    seed_periods(stand_in)
    refused = "connection refused"
    stand_in.api.status = {
        "lag": None,
        "spool": {"pending": 0},
        "dead_letter": None,
        "watchdog": None,
        "parity": None,
        "errors": [
            {"check": "redis", "message": refused},
            {"check": "dead_letter", "message": "queue unreadable"},
            {"check": "watchdog", "message": refused},
            {"check": "parity", "message": refused},
        ],
    }
    open_dashboard(browser, stand_in.url)
    wait_for(browser, "#status[data-state='error']")
    figures = status_figures(browser)
    for name in (
        "dirty",
        "in-flight",
        "last-flush",
        "dead-letter",
        "checked",
        "mismatches",
        "watchdog-errors",
        "parity-days",
        "parity-last",
    ):
        assert figures[name] == "unknown", name
    assert figures["spool"] == "0"  # that check ran: its 0 is a real 0
    errors = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#status-errors li")]
    assert "redis: connection refused" in errors
    assert "dead_letter: queue unreadable" in errors
    assert "watchdog: connection refused" in errors


FRESH_STATUS = {
    "lag": {
        "dirty": 0,
        "in_flight": 0,
        "oldest_dirty_s": 0,
        "oldest_in_flight_s": 0,
        "last_flush_age_s": None,
    },
    "spool": {"pending": 0},
    "dead_letter": None,  # a file spool: no dead-letter queue, and no error
    "watchdog": None,  # not run yet, and no error
    "parity": {"clean_days": 0, "last": None},  # no parity run recorded yet
    "errors": [],
}


def test_before_the_first_run_and_with_a_file_spool_the_status_says_so_without_alarm(stand_in, browser):
    seed_periods(stand_in)
    stand_in.api.status = FRESH_STATUS
    open_dashboard(browser, stand_in.url)
    wait_ready(browser, "status")
    figures = status_figures(browser)
    assert figures["dead-letter"] == "n/a (file spool)"
    assert figures["watchdog-at"] == "waiting for the first run (every minute)"
    assert (figures["checked"], figures["mismatches"], figures["watchdog-errors"]) == ("—", "—", "—")
    assert figures["parity-days"] == "no report yet"  # not a streak of 0 that a report made
    assert figures["parity-last"] == "no parity report recorded yet (the watchdog runs one each UTC day)"
    assert figures["last-flush"] == "—"
    assert browser.find_elements(By.CSS_SELECTOR, "#status dd.unknown") == []  # no red "unknown"
    assert not browser.find_element(By.ID, "status-errors").is_displayed()
    classes = browser.find_element(By.ID, "status").get_attribute("class").split()
    assert "failed" not in classes and "warn" not in classes


def test_a_queue_spool_without_a_dead_letter_queue_is_named_as_such(stand_in, browser):
    seed_periods(stand_in)
    stand_in.api.status = {**FRESH_STATUS, "spool": {"pending": 0, "kind": "sqs"}}
    open_dashboard(browser, stand_in.url)
    wait_ready(browser, "status")
    assert status_figures(browser)["dead-letter"] == "n/a (no dead-letter queue)"


def test_the_parity_streak_and_a_report_that_found_mismatches(stand_in, browser):
    seed_periods(stand_in)
    last = parity_run("2026-12-07T03:00:00Z", checked=998, matched=994, mismatched=2, missing_rows=2)
    stand_in.api.status = {**FRESH_STATUS, "parity": {"clean_days": 0, "last": last}}
    open_dashboard(browser, stand_in.url)
    wait_ready(browser, "status")
    figures = status_figures(browser)
    assert figures["parity-days"] == "0 days"
    assert figures["parity-last"].endswith(
        "— not clean: 998 checked, 2 mismatches, 2 without a row in the site's table, run by the watchdog"
    )
    streak = browser.find_element(By.ID, "status-parity-days").find_element(By.XPATH, "..")
    assert "bad" in streak.get_attribute("class").split()
    assert "warn" in browser.find_element(By.ID, "status").get_attribute("class").split()

    stand_in.api.status = {
        **FRESH_STATUS,
        "parity": {"clean_days": 7, "last": {**last, "ok": True, "mismatched": 0, "source": "anl"}},
    }
    browser.find_element(By.ID, "refresh").click()
    wait_for(browser, "#status-parity-days[data-value='7']")
    assert "good" in streak.get_attribute("class").split()  # the rollout's gate: a week of clean reports
    assert text(browser, "#status-parity-last").endswith("run by anl parity")


def test_a_failed_status_request_shows_every_figure_as_unknown(stand_in, browser):
    seed_periods(stand_in)
    stand_in.api.status = None  # the stand-in answers 500
    open_dashboard(browser, stand_in.url)
    wait_for(browser, "#status[data-state='error']")
    assert set(status_figures(browser).values()) <= {"unknown", "unknown: no check read"}
    assert "Pipeline status: HTTP 500" in text(browser, "#messages")


# --- sign-in ---------------------------------------------------------------------------------------------


@pytest.fixture
def signing_in(request) -> Iterator[StandIn]:
    server = StandIn(signin=True, **getattr(request, "param", {}))
    seed_periods(server)
    yield server
    server.close()


def session_token(browser: Any) -> str | None:
    return browser.execute_script("return sessionStorage.getItem('anl.dashboard.token')")


def test_sign_in_runs_the_pkce_flow_and_the_api_calls_carry_the_token(signing_in, browser):
    open_dashboard(browser, signing_in.url, period="7d", counter="downloads")
    wait_ready(browser, "top-table")
    assert signing_in.provider is not None
    [asked] = signing_in.provider.authorizations
    assert asked["response_type"] == "code" and asked["scope"] == "openid"
    assert asked["client_id"] == "dashboard-client"
    assert asked["redirect_uri"] == f"{signing_in.url}/dashboard"
    assert asked["code_challenge_method"] == "S256"
    [traded] = signing_in.provider.token_requests
    assert s256(traded["code_verifier"]) == asked["code_challenge"] and len(traded["code_verifier"]) >= 43

    # the code left the address bar; the deep link came back
    query = query_of(browser.current_url)
    assert "code" not in query and "state" not in query
    assert (query["period"], query["counter"]) == ("7d", "downloads")
    assert '"access_token":"tok-' in session_token(browser)
    assert browser.execute_script("return localStorage.length") == 0
    authorizations = {auth for _, _, auth in signing_in.api.requests}
    assert authorizations == {f"Bearer {next(iter(signing_in.api.tokens))}"}
    assert text(browser, "#session-text") == "Signed in"
    assert browser.find_element(By.ID, "sign-out").is_displayed()


def test_sign_out_forgets_the_token_and_does_not_sign_in_again_by_itself(signing_in, browser):
    open_dashboard(browser, signing_in.url)
    wait_ready(browser, "top-table")
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, "#session[data-state='signed-out']")
    assert signing_in.provider is not None
    assert [logout["client_id"] for logout in signing_in.provider.logouts] == ["dashboard-client"]
    assert session_token(browser) is None
    assert len(signing_in.provider.authorizations) == 1
    calls = len(signing_in.api.requests)
    assert "Sign in to see the analytics" in text(browser, "#messages")
    assert not browser.find_element(By.ID, "status").is_displayed()  # no figures that could pass for zeros
    assert browser.find_element(By.ID, "sign-in").is_displayed()
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, "#session[data-state='signed-in']")
    wait_ready(browser, "top-table")
    assert len(signing_in.provider.authorizations) == 2 and len(signing_in.api.requests) > calls


@pytest.mark.parametrize("signing_in", [{"accept_tokens": False}], indirect=True)
def test_a_token_the_api_refuses_gets_one_new_sign_in_then_a_clear_message(signing_in, browser):
    open_dashboard(browser, signing_in.url)
    wait_message(browser, "refused the token (HTTP 401)")
    assert signing_in.provider is not None
    assert len(signing_in.provider.authorizations) == 2  # one new sign-in, no loop
    assert browser.find_element(By.ID, "sign-in").is_displayed()


@pytest.mark.parametrize("signing_in", [{"forbidden": True}], indirect=True)
def test_an_account_that_is_not_an_admin_gets_a_clear_message(signing_in, browser):
    open_dashboard(browser, signing_in.url)
    wait_message(browser, "HTTP 403")
    assert "may not read the analytics" in text(browser, "#messages")
    assert signing_in.provider is not None and len(signing_in.provider.authorizations) == 1


# --- layout and accessibility -------------------------------------------------------------------------------

OVERFLOW = """
const width = document.documentElement.clientWidth;
const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const box = el.getBoundingClientRect();
  if (box.width === 0 || box.right <= width + 0.5) continue;
  let parent = el.parentElement, inside = false;
  while (parent && parent !== document.body) {
    if (scrolls(parent)) { inside = true; break; }
    parent = parent.parentElement;
  }
  if (!inside) out.push(`${el.tagName.toLowerCase()}#${el.id}`);
}
return {out, page: document.documentElement.scrollWidth, width};
"""


@pytest.mark.parametrize(("width", "name"), [(360, "phone"), (1280, "desktop")])
def test_the_dashboard_fits_the_screen_without_overflowing(stand_in, browser, width, name):
    seed_periods(stand_in)
    browser.set_window_size(width, 2400)
    open_dashboard(browser, stand_in.url, period="30d")
    wait_ready(browser, "top-table", "trend", "status", "totals", "series")
    fits_and_is_saved(browser, f"dashboard-{name}")


def fits_and_is_saved(browser: Any, name: str) -> None:
    found = browser.execute_script(OVERFLOW)
    assert found["out"] == [] and found["page"] <= found["width"], found
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000


def _state_site(stand_in: StandIn) -> None:
    stand_in.api.site_state = {
        ABP: {"favorites": 4, "watchlists": 2, "ratings": [5, 4, 4]},
        "m-older": {"favorites": 9},
    }


def _parity_failed(stand_in: StandIn) -> None:
    last = parity_run(
        "2026-12-07T03:00:00Z", checked=998, mismatched=2, missing_rows=1, mode="shadow", outside=3
    )
    stand_in.api.status = {**FRESH_STATUS, "parity": {"clean_days": 0, "last": last}}


# each state the dashboard can be in, as (address, set-up, what to wait for)
STATES: dict[str, tuple[dict[str, str], Any, str]] = {
    "status-fresh": ({}, lambda s: setattr(s.api, "status", FRESH_STATUS), "#status[data-state='ready']"),
    "status-parity": ({}, _parity_failed, "#status[data-state='ready']"),
    "movie-state": ({"entity": ABP}, _state_site, "#totals[data-state='ready']"),
    "not-configured": ({"entity": ABP}, None, "#totals[data-state='ready']"),
    "no-such-movie": (
        {"entity": "99999999-9999-4999-8999-999999999999"},
        None,
        "#totals[data-state='missing']",
    ),
    "ratings-axis": ({"entity": ABP, "counter": "ratings_avg"}, None, "#series[data-state='ready']"),
    "state-ranking": ({"counter": "favorites_active"}, _state_site, "#top-table[data-state='ready']"),
    "empty-table": ({"period": "custom", "from": "2020-01-01", "to": "2020-01-31"}, None, "#top-empty"),
    "actor-labels": ({"type": "actor"}, None, "#top-table[data-state='ready']"),
    "glossary": ({}, None, "#glossary[open]"),
}


@pytest.mark.parametrize("width", [360, 1280])
@pytest.mark.parametrize("state", list(STATES))
def test_each_state_fits_the_screen_and_is_saved_as_a_screenshot(stand_in, browser, state, width):
    address, set_up, ready = STATES[state]
    seed_labels(stand_in)
    if set_up:
        set_up(stand_in)
    browser.set_window_size(width, 2400)
    open_dashboard(browser, stand_in.url, **{"period": "7d", **address})
    wait_ready(browser, "top-table", "status")
    if state == "glossary":
        browser.find_element(By.CSS_SELECTOR, "#glossary summary").click()
    wait_for(browser, ready)
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, ready))
    fits_and_is_saved(browser, f"{state}-{width}")


def test_every_control_has_a_label_and_the_table_has_headers(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url)
    wait_ready(browser, "top-table")
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select')].filter((el) => el.labels.length === 0)"
        ".map((el) => el.id)"
    )
    assert unlabelled == []
    headers = browser.find_elements(By.CSS_SELECTOR, "#top-table thead th")
    assert {th.get_attribute("scope") for th in headers} == {"col"}
    assert (
        browser.find_element(By.CSS_SELECTOR, "#top-table th.active").get_attribute("aria-sort")
        == "descending"
    )


def test_keyboard_focus_is_visible_and_enter_on_a_row_selects_it(stand_in, browser):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "top-table", "totals")
    button = browser.find_element(By.CSS_SELECTOR, "tr[data-entity-id='m-few'] button")
    browser.execute_script("arguments[0].focus()", button)
    button.send_keys(Keys.ENTER)  # focus by keyboard, as a tab would
    wait_for(browser, "#totals[data-entity='m-few'][data-state='ready']")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused)
    assert outline not in ("", "none")


# --- one entity: labels, lookup by label, no such entity, the site's state figures --------------------------


def seed_labels(stand_in: StandIn) -> None:
    seed_periods(stand_in)
    api = stand_in.api
    api.add("movie", ABP, days_ago(2), views=12, ratings_count=1, ratings_sum=5)
    api.add("actor", "a-2", days_ago(1), views=5)
    api.add("tag", "17", days_ago(1), views=3)
    api.labels.update({ABP: "ABP-123", "a-1": "Jane Doe", "17": "drama"})
    api.titles.update({ABP: "A Long Title of the Movie"})


def entity_form(browser: Any, value: str) -> None:
    field = browser.find_element(By.ID, "entity-id")
    field.clear()
    field.send_keys(value, Keys.ENTER)


def test_every_type_shows_its_label_with_the_id_beneath_and_a_movie_its_title(stand_in, browser):
    seed_labels(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "top-table")
    cell = browser.find_element(By.CSS_SELECTOR, f"tr[data-entity-id='{ABP}'] td.entity")
    assert [line for line in cell.text.splitlines()] == ["ABP-123", "A Long Title of the Movie", ABP]

    for kind, entity_id, label in (("actor", "a-1", "Jane Doe"), ("tag", "17", "drama")):
        Select(browser.find_element(By.ID, "entity-type")).select_by_value(kind)
        wait_for(browser, f"#top-table[data-state='ready'] tr[data-entity-id='{entity_id}']")
        cell = browser.find_element(By.CSS_SELECTOR, f"tr[data-entity-id='{entity_id}'] td.entity")
        assert cell.text.splitlines() == [label, entity_id]
        assert cell.find_elements(By.TAG_NAME, "a") == []  # the site's page is a movie's only
    unlabelled = browser.find_element(By.CSS_SELECTOR, "tr[data-entity-id='17']")  # still the tag ranking
    assert unlabelled.find_element(By.CSS_SELECTOR, ".label").text == "drama"


def test_a_movie_is_looked_up_by_its_code_through_the_apis_label_search(stand_in, browser):
    seed_labels(stand_in)
    open_dashboard(browser, stand_in.url, period="7d")
    wait_ready(browser, "top-table", "totals")
    entity_form(browser, "abp-123")  # the site's code, in any case
    wait_for(browser, f"#totals[data-entity='{ABP}'][data-state='ready']")
    assert api_calls(stand_in, "/movie/lookup") == [{"label": "abp-123"}]
    assert query_of(browser.current_url)["entity"] == ABP
    name = browser.find_element(By.CSS_SELECTOR, "#totals .entity-name").text.splitlines()
    assert name[:2] == ["ABP-123", "A Long Title of the Movie"] and name[2].startswith(ABP)
    assert text(browser, "#entity-caption") == "ABP-123"


def test_without_a_label_search_the_lookup_reads_the_labels_of_the_rankings(browser):
    server = StandIn(movie_url=None)
    try:
        seed_labels(server)
        server.api.lookup = False  # the API answers the route 404
        open_dashboard(browser, server.url, period="7d")
        wait_ready(browser, "top-table", "totals")
        entity_form(browser, "ABP-123")
        wait_for(browser, f"#totals[data-entity='{ABP}'][data-state='ready']")
        ranked = api_calls(server, "/movie/top")[-1]
        assert (ranked["limit"], "from" in ranked) == ("100", False)  # all time, the most the API gives

        entity_form(browser, "NO SUCH")
        wait_message(browser, 'No movie labelled "NO SUCH" among the 100 highest of each ranking')
        assert query_of(browser.current_url)["entity"] == ABP  # the selection stays
        entity_form(browser, "NOPE-999")  # could be an id: shown as one, and said
        wait_for(browser, "#totals[data-entity='NOPE-999'][data-state='missing']")
        assert "NOPE-999" in text(browser, "#messages") and "shown as an id" in text(browser, "#messages")
    finally:
        server.close()


def test_an_id_with_nothing_counted_and_no_label_is_no_such_movie_not_zeros(stand_in, browser):
    seed_labels(stand_in)
    unknown = "99999999-9999-4999-8999-999999999999"
    open_dashboard(browser, stand_in.url, period="7d", entity=unknown)
    wait_for(browser, f"#totals[data-entity='{unknown}'][data-state='missing']")
    assert "No such movie: nothing was ever counted for this id, and no label is known for it." in text(
        browser, "#totals"
    )
    assert totals(browser) == {}  # no row of zeros
    assert not browser.find_element(By.ID, "series").is_displayed()  # nor a chart of them

    entity_form(browser, "NOPE-999")  # a code nobody has (or an id): no such movie either
    wait_for(browser, "#totals[data-entity='NOPE-999'][data-state='missing']")
    assert api_calls(stand_in, "/movie/lookup")[-1] == {"label": "NOPE-999"}
    entity_form(browser, "NO SUCH")  # no id looks like that: said, and the selection stays
    wait_message(browser, 'No movie labelled "NO SUCH".')
    assert query_of(browser.current_url)["entity"] == "NOPE-999"


def test_the_sites_state_figures_are_shown_with_their_words_when_configured(stand_in, browser):
    seed_labels(stand_in)
    stand_in.api.site_state = {ABP: {"favorites": 4, "watchlists": 2, "ratings": [5, 4, 4]}}
    open_dashboard(browser, stand_in.url, period="7d", entity=ABP)
    wait_ready(browser, "totals")
    figures = totals(browser)
    assert (figures["favorites"], figures["ratings_avg"]) == ("0", "5.00")  # events: one rating of 5
    assert figures["favorites_active"] == "4" and figures["watchlists_active"] == "2"
    assert figures["ratings_current_count"] == "3" and figures["ratings_current_avg"] == "4.33"
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#totals h4")]
    assert headings == ["Counted events, all time", "On the site now (its own tables)"]
    meaning = browser.find_element(By.CSS_SELECTOR, "#totals dd[data-field='favorites']").find_element(
        By.XPATH, ".."
    )
    assert "A favorite removed on the site is not subtracted" in meaning.get_attribute("title")
    glossary = browser.find_element(By.ID, "glossary")
    glossary.find_element(By.TAG_NAME, "summary").click()
    words = glossary.text
    assert "is not subtracted" in words and "MYSQL_STATE" in words and "which is not 0" in words


def test_without_the_sites_tables_the_state_figures_say_not_configured(stand_in, browser):
    seed_labels(stand_in)
    open_dashboard(browser, stand_in.url, period="7d", entity=ABP)
    wait_ready(browser, "totals")
    figures = totals(browser)
    for name in ("favorites_active", "watchlists_active", "ratings_current_count", "ratings_current_avg"):
        assert figures[name] == "not configured", name
    assert "(MYSQL_STATE)" in text(browser, "[data-testid='state-not-configured']")

    Select(browser.find_element(By.ID, "entity-type")).select_by_value("actor")
    wait_for(browser, "#totals[data-entity='a-1'][data-state='ready']")  # the ranking's first, selected once
    assert "favorites_active" not in totals(browser)  # the site's tables hold movies only


def test_ranking_by_a_state_figure_asks_for_the_sites_now_and_charts_its_events(stand_in, browser):
    seed_labels(stand_in)
    stand_in.api.site_state = {ABP: {"favorites": 4}, "m-older": {"favorites": 9}, "m-gone": {"favorites": 1}}
    open_dashboard(browser, stand_in.url, period="7d", counter="favorites_active")
    wait_ready(browser, "top-table", "trend")
    assert top_ids(browser) == ["m-older", ABP, "m-gone"]
    asked = api_calls(stand_in, "/movie/top")[-1]
    assert asked["counter"] == "favorites_active" and "from" not in asked and "to" not in asked
    header = browser.find_element(By.CSS_SELECTOR, "#top-table th.active")
    assert (header.text, header.get_attribute("aria-sort")) == ("favorites now", "descending")
    assert top_rows(browser)[0][2] == "9"  # the figure ranked by comes first, in sight on a phone
    assert "from the site's tables, now" in text(browser, "#top-caption")
    assert "the site's tables keep no history of favorites now" in text(browser, "#trend-caption")
    assert (
        browser.find_element(By.CSS_SELECTOR, "#trend-chart svg").get_attribute("data-counter") == "favorites"
    )

    Select(browser.find_element(By.ID, "counter")).select_by_value("ratings_current_avg")
    assert browser.find_element(By.ID, "min-ratings").is_displayed()

    Select(browser.find_element(By.ID, "entity-type")).select_by_value("actor")  # the site's tables: movies
    wait_for(browser, "#top-table[data-state='ready'] tr[data-entity-id='a-1']")
    assert browser.find_element(By.ID, "counter").get_attribute("value") == "views"
    assert api_calls(stand_in, "/actor/top")[-1]["counter"] == "views"
    option = browser.find_element(By.CSS_SELECTOR, "#counter option[value='favorites_active']")
    assert not option.is_enabled()


def test_a_state_ranking_the_api_cannot_answer_says_why(stand_in, browser):
    seed_labels(stand_in)  # no site_state: not configured
    open_dashboard(browser, stand_in.url, period="7d", counter="favorites_active")
    wait_for(browser, "#top-table[data-state='error']")
    assert "counter: favorites_active needs the site's tables (MYSQL_STATE)" in text(browser, "#messages")
    assert browser.find_element(By.ID, "top-empty").is_displayed()


def test_average_ratings_are_charted_on_the_one_to_five_scale(stand_in, browser):
    seed_labels(stand_in)
    open_dashboard(browser, stand_in.url, period="7d", counter="ratings_avg", entity=ABP)
    wait_ready(browser, "series", "trend")
    for chart in ("series-chart", "trend-chart"):
        svg = browser.find_element(By.CSS_SELECTOR, f"#{chart} svg")
        assert svg.get_attribute("data-ticks") == "1,2,3,4,5"
        labels = [t.text for t in svg.find_elements(By.CSS_SELECTOR, "text.y-label")]
        assert labels == ["1", "2", "3", "4", "5"]
    # the one rated day (a 5) sits on the top line, not below an axis that runs to 6
    dot = browser.find_element(By.CSS_SELECTOR, "#series-chart g.current circle.dot")
    top_line = browser.find_elements(By.CSS_SELECTOR, "#series-chart svg line")[-1]
    assert float(dot.get_attribute("cy")) == pytest.approx(float(top_line.get_attribute("y1")), abs=0.1)


VISIBLE_WHOLE = """
const el = arguments[0], box = el.getBoundingClientRect();
return {left: box.left, right: box.right, width: document.documentElement.clientWidth,
        clipped: el.scrollWidth > el.clientWidth};
"""


@pytest.mark.parametrize("width", [360, 1280])
def test_the_empty_rankings_message_is_shown_whole_on_a_phone(stand_in, browser, width):
    seed_labels(stand_in)
    browser.set_window_size(width, 1600)
    long_ago = {"from": "2020-01-01", "to": "2020-01-31"}
    open_dashboard(browser, stand_in.url, period="custom", **long_ago)
    wait_ready(browser, "top-table")
    note = browser.find_element(By.ID, "top-empty")
    assert note.is_displayed() and note.text == "Nothing counted in this period."
    box = browser.execute_script(VISIBLE_WHOLE, note)
    assert box["left"] >= 0 and box["right"] <= box["width"] and not box["clipped"], box


def test_a_domain_or_entity_from_the_address_that_could_name_another_path_is_never_requested(
    stand_in, browser
):
    seed_periods(stand_in)
    open_dashboard(browser, stand_in.url, period="7d", domain="..", entity="..")
    wait_ready(browser, "top-table", "status")
    assert 'Domain "..": 1\u201332 characters of A-Z a-z 0-9 _ -: showing jav instead.' in text(
        browser, "#messages"
    )
    assert "Entity id from the address: 1\u201364 characters" in text(browser, "#messages")
    paths = [path for path, _, _ in stand_in.api.requests]
    assert paths and all(
        path == "/api/v1/analytics/status" or path.startswith("/api/v1/analytics/jav/") for path in paths
    )
    assert all(".." not in path for path in paths)
    address = query_of(browser.current_url)
    assert address["domain"] == "jav" and address["entity"] == "m-recent"  # the ranking's first, chosen anew
