"""The admin dashboard in headless Chromium: top-N, an entity's totals and series, the lag, the errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from analytics_pipeline.bootstrap import container
from analytics_pipeline.models import CountedEvent
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.pipeline import counted

pytestmark = pytest.mark.browser

WAIT_S = 15


def views(event_id: str, entity_id: str, day: str, amount: int, entity_type: str = "movie") -> CountedEvent:
    """Many views of one entity on one day, counted as one increment."""
    return CountedEvent(event_id, "jav", entity_type, entity_id, day, (("views", amount),))


@pytest.fixture
def seeded(live_server, clock):
    """Three movies and an actor counted on the days around the test clock (2026-03-01), then flushed."""
    events = [
        counted("e-1", "m-alpha", "2026-02-27"),
        views("e-2", "m-alpha", "2026-02-28", 1200),
        views("e-3", "m-alpha", "2026-03-01", 34),
        counted("e-4", "m-alpha", "2026-02-28", "download"),
        counted("e-5", "m-alpha", "2026-03-01", "download"),
        counted("e-6", "m-alpha", "2026-02-28", "rating", 4),
        counted("e-7", "m-alpha", "2026-03-01", "rating", 5),
        views("e-8", "m-bravo", "2026-02-28", 7),
        counted("e-9", "m-bravo", "2026-02-28", "favorite"),
        views("e-10", "m-charlie", "2026-03-01", 7),  # ties with m-bravo: entity_id decides
        views("e-11", "a-delta", "2026-03-01", 5000, entity_type="actor"),
    ]
    outcome = container().hot_store.record(events, None, clock())
    assert all(outcome.counted)
    report = live_server.flush()
    assert report["flush"]["dirty"] == 0 and report["flush"]["errors"] == []
    return live_server


def open_dashboard(browser: Any, server: Any, **params: str) -> None:
    browser.get(f"{server.url}/dashboard?{urlencode(params)}")


def wait_for(browser: Any, css: str) -> Any:
    return WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def wait_ready(browser: Any, *ids: str) -> None:
    for element_id in ids:
        wait_for(browser, f"#{element_id}[data-state='ready']")


def text(browser: Any, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def top_rows(browser: Any) -> list[list[str]]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#top-table tbody tr[data-entity-id]")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def totals(browser: Any) -> dict[str, str]:
    cells = browser.find_elements(By.CSS_SELECTOR, "#totals dd[data-field]")
    return {cell.get_attribute("data-field"): cell.text for cell in cells}


def bars(browser: Any) -> list[tuple[str, int]]:
    rects = browser.find_elements(By.CSS_SELECTOR, "#series-chart svg rect.bar")
    return [(rect.get_attribute("data-period"), int(rect.get_attribute("data-value"))) for rect in rects]


def png_summary(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct colours of every 8th pixel of every 8th row of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    assert depth == 8 and colour in (2, 6) and interlace == 0
    channels = 4 if colour == 6 else 3
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        if y % 8 == 0:
            for x in range(0, width, 8):
                colours.add(bytes(line[x * channels : x * channels + 3]))
        previous = line
    return width, height, colours


def test_dashboard_shows_top_totals_series_and_lag(seeded, browser, tmp_path: Path):
    open_dashboard(
        browser,
        seeded,
        type="movie",
        entity="m-alpha",
        bucket="day",
        **{"from": "2026-02-25", "to": "2026-03-01"},
        counter="views",
    )
    wait_ready(browser, "top-table", "totals", "series", "lag")
    assert browser.title == "Analytics dashboard"

    # top-N: highest first, ties by entity_id, numbers with thousands separators; no actor among movies
    rows = top_rows(browser)
    assert [row[:3] for row in rows] == [
        ["1", "m-alpha", "1,235"],
        ["2", "m-bravo", "7"],
        ["3", "m-charlie", "7"],
    ]
    assert rows[0][3:] == ["2", "0", "0", "2", "9"]  # downloads, favorites, watchlists, ratings count/sum
    assert rows[1][3:] == ["0", "1", "0", "0", "0"]

    # the deep-linked entity: every counter and the average rating
    assert text(browser, "#totals .entity-name code") == "m-alpha"
    assert totals(browser) == {
        "views": "1,235",
        "downloads": "2",
        "favorites": "0",
        "watchlists": "0",
        "ratings_count": "2",
        "ratings_sum": "9",
        "ratings_avg": "4.50",
    }
    selected = browser.find_elements(By.CSS_SELECTOR, "#top-table tr.selected")
    assert [row.get_attribute("data-entity-id") for row in selected] == ["m-alpha"]

    # the series: one bar per day of the range, zeros included, with axis labels
    assert bars(browser) == [
        ("2026-02-25", 0),
        ("2026-02-26", 0),
        ("2026-02-27", 1),
        ("2026-02-28", 1200),
        ("2026-03-01", 34),
    ]
    x_labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#series-chart .x-label")]
    assert x_labels[0] == "2026-02-25" and set(x_labels) <= {p for p, _ in bars(browser)}
    y_labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#series-chart .y-label")]
    assert y_labels[0] == "0" and "1,000" in y_labels
    assert "1,235 views in all" in text(browser, "#series-caption")

    # the watchdog's lag figures
    assert text(browser, "#lag-dirty") == "0"
    assert text(browser, "#lag-in-flight") == "0"
    assert text(browser, "#lag-mismatches") == "0"
    assert text(browser, "#lag-oldest-in-flight") == "0"
    assert text(browser, "#lag-last-flush-age") != ""
    assert "UTC" in text(browser, "#lag-at")
    assert browser.find_element(By.ID, "messages").is_displayed() is False

    browser.set_window_size(1280, 1200)  # the whole page, the chart included
    path = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(path))
    data = path.read_bytes()
    width, height, colours = png_summary(data)
    assert (width, height) >= (800, 600) and len(data) > 20_000
    assert len(colours) >= 8  # text, panels, bars, highlights: not a blank page

    # clicking another entity selects it
    browser.find_element(By.CSS_SELECTOR, "#top-table tr[data-entity-id='m-bravo'] button").click()
    wait_for(browser, "#totals[data-entity='m-bravo'][data-state='ready']")
    wait_for(browser, "#series[data-state='ready'] rect.bar[data-period='2026-02-28'][data-value='7']")
    assert totals(browser)["views"] == "7"
    assert totals(browser)["favorites"] == "1"
    assert totals(browser)["ratings_avg"] == "—"
    assert [value for _, value in bars(browser)] == [0, 0, 0, 7, 0]
    assert "entity=m-bravo" in browser.current_url

    # typing an id; the counter picker redraws the chart with another counter
    entity_input = browser.find_element(By.ID, "entity-id")
    entity_input.clear()
    entity_input.send_keys("m-alpha\n")
    wait_for(browser, "#totals[data-entity='m-alpha'][data-state='ready']")
    Select(browser.find_element(By.ID, "counter")).select_by_value("downloads")
    wait_for(browser, "#series-chart svg[data-counter='downloads']")
    wait_for(browser, "#top-table[data-state='ready'] th.active[data-counter='downloads']")
    wait_for(browser, "#series[data-state='ready']")
    assert [value for _, value in bars(browser)] == [0, 0, 0, 1, 1]
    assert [row[1] for row in top_rows(browser)] == ["m-alpha", "m-bravo", "m-charlie"]


def set_value(browser: Any, element_id: str, value: str) -> None:
    browser.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id,
        value,
    )


def test_dashboard_shows_api_errors_and_default_ranges(seeded, browser):
    open_dashboard(
        browser, seeded, entity="m-alpha", bucket="day", **{"from": "2020-01-01", "to": "2026-03-01"}
    )
    wait_ready(browser, "totals")
    error = wait_for(browser, "#series[data-state='error']") and browser.find_element(By.ID, "series-error")
    assert error.is_displayed()
    assert error.text == "to: the range covers 2252 periods of a day; at most 400 are served"
    assert browser.find_elements(By.CSS_SELECTOR, "#series-chart rect") == []

    # a range the API accepts clears the message
    set_value(browser, "from", "2026-02-01")
    wait_ready(browser, "series")
    assert not browser.find_element(By.ID, "series-error").is_displayed()
    assert len(bars(browser)) == 29 and bars(browser)[-1] == ("2026-03-01", 34)

    # from after to: the API's message again
    set_value(browser, "from", "2026-03-05")
    wait_for(browser, "#series[data-state='error']")
    assert text(browser, "#series-error") == "from: must not be after to"

    # each bucket's default range, ending today
    for bucket, periods in (("week", 26), ("month", 12), ("year", 5), ("day", 30)):
        Select(browser.find_element(By.ID, "bucket")).select_by_value(bucket)
        wait_for(browser, f"#series[data-state='ready'] svg[data-bucket='{bucket}']")
        assert len(bars(browser)) == periods, bucket

    # a bad parameter of the top-N shows the API's message in the message area
    open_dashboard(browser, seeded, domain="nope")
    wait_for(browser, "#top-table[data-state='error']")
    messages = browser.find_element(By.ID, "messages")
    assert messages.is_displayed()
    assert "domain: must be one of: jav" in messages.text

    # a server that went away: a network error in the message area, the page still usable
    seeded.close()
    browser.find_element(By.ID, "refresh").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: "network error" in d.find_element(By.ID, "messages").text)
    assert "Page error" not in browser.find_element(By.ID, "messages").text
