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


def views(event_id: str, entity_id: str, day: str, amount: int, entity_type: str = "movie") -> CountedEvent:
    """Many views of one entity on one day, counted as one increment."""
    return CountedEvent(event_id, "jav", entity_type, entity_id, day, (("views", amount),))


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
        views("e-2", ALPHA, "2026-02-28", 1200),
        views("e-3", ALPHA, "2026-03-01", 34),
        counted("e-4", ALPHA, "2026-02-28", "download"),
        counted("e-5", ALPHA, "2026-03-01", "download"),
        counted("e-6", ALPHA, "2026-02-28", "rating", 4),
        counted("e-7", ALPHA, "2026-03-01", "rating", 5),
        views("e-8", BRAVO, "2026-02-28", 7),
        counted("e-9", BRAVO, "2026-02-28", "favorite"),
        views("e-10", CHARLIE, "2026-03-01", 7),  # ties with BRAVO: entity_id decides
        views("e-11", DELTA, "2026-03-01", 5000, entity_type="actor"),
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
    }
    assert line(browser, "series-chart", "current") == ["0", "0", "1", "1200", "34"]
    assert "1,235 views in the period" in text(browser, "#series-caption")

    browser.find_element(By.CSS_SELECTOR, f"#top-table tr[data-entity-id='{BRAVO}'] button").click()
    wait_for(browser, f"#totals[data-entity='{BRAVO}'][data-state='ready']")
    assert totals(browser)["ratings_avg"] == "—"
    assert f"entity={BRAVO}" in browser.current_url
    assert "Page error" not in browser.find_element(By.ID, "messages").get_attribute("textContent")


def test_dashboard_on_anl_serve_shows_the_apis_rejection_as_a_message(seeded, browser):
    open_dashboard(browser, seeded.url, domain="nope", **{"from": "2026-02-25", "to": "2026-03-01"})
    wait_for(browser, "#top-table[data-state='error']")
    assert "domain: must be one of: jav" in text(browser, "#messages")
    assert "Could not load the ranking" in text(browser, "#top-table tbody")


# --- against the stand-in -----------------------------------------------------------------------------------


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn(movie_url="https://site.example/movies/{entity_id}")
    yield server
    server.close()


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
    assert figures | {"watchdog-at": ""} == {
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
    }
    assert figures["watchdog-at"].startswith("2026-12-01 10:00:00 UTC (")
    assert "warn" in browser.find_element(By.ID, "status").get_attribute("class")  # 2 in the dead letter
    assert not browser.find_element(By.ID, "status-errors").is_displayed()


def test_a_status_check_that_did_not_run_shows_as_unknown_never_as_zero(stand_in, browser):
    seed_periods(stand_in)
    stand_in.api.status = {
        "lag": None,
        "spool": {"pending": 0},
        "dead_letter": None,
        "watchdog": None,
        "errors": [{"check": "redis", "message": "connection refused"}],
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
    ):
        assert figures[name] == "unknown", name
    assert figures["spool"] == "0"  # that check ran: its 0 is a real 0
    errors = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#status-errors li")]
    assert "redis: connection refused" in errors
    assert "dead_letter: not reported (the check did not run)" in errors
    assert "watchdog: not reported (the check did not run)" in errors


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
    found = browser.execute_script(OVERFLOW)
    assert found["out"] == [] and found["page"] <= found["width"], found
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{name}.png"
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000


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
