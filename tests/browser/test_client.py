"""clients/js/analytics.js in headless Chromium, sending to `anl serve` from a page of another origin.

The test pages (pages/client.html for the ES module, pages/classic.html for the classic build) and the
client are served by a static server of their own, so every request to the API is cross-origin, as on
the site. The API's WSGI app is wrapped to record what reaches it, so a test waits for the client's
requests instead of sleeping. Chromium is given a desktop browser's User-Agent (`desktop_browser`): the
server ignores headless browsers (one test shows it).

The package's own checks run Node.js tools (esbuild, TypeScript) that `npm ci` installs into
clients/js/node_modules when they are missing (`js_tools`).
"""

from __future__ import annotations

import fcntl
import functools
import io
import json
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support import BATCH

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
CLIENT = JS / "analytics.js"
CLASSIC = JS / "dist" / "analytics.min.js"
PAGES = Path(__file__).resolve().parent / "pages"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WAIT_S = 10.0


class Recorder:
    """WSGI middleware that records each request to the API with the answer it got."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        answer: dict[str, Any] = {}

        def recording_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            answer["status"] = int(status.split()[0])
            answer["headers"] = {k.lower(): v for k, v in headers}
            return start_response(status, headers, *args)

        payload = b"".join(self.app(environ, recording_start_response))
        if environ["PATH_INFO"].startswith("/api/v1/analytics/events"):
            with self.changed:
                self.requests.append(
                    {
                        "method": environ["REQUEST_METHOD"],
                        "path": environ["PATH_INFO"],
                        "content_type": environ.get("CONTENT_TYPE", ""),
                        "origin": environ.get("HTTP_ORIGIN"),
                        "body": json.loads(body) if body else None,
                        "status": answer["status"],
                        "headers": answer["headers"],
                        "answer": json.loads(payload) if payload else None,
                    }
                )
                self.changed.notify_all()
        return [payload]

    def posts(self) -> list[dict[str, Any]]:
        with self.changed:
            return [r for r in self.requests if r["method"] == "POST"]

    def wait_posts(self, count: int) -> list[dict[str, Any]]:
        """The first `count` POSTs, once they have been answered."""
        with self.changed:
            done = self.changed.wait_for(
                lambda: sum(r["method"] == "POST" for r in self.requests) >= count, timeout=WAIT_S
            )
        posts = self.posts()
        assert done, f"expected {count} POSTs to the ingest routes, got {len(posts)}"
        return posts


class QuietStaticHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The test page and the client on an origin of their own (a static server on a free port)."""
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(PAGES / "client.html", root / "client.html")
    shutil.copy(PAGES / "classic.html", root / "classic.html")
    shutil.copy(CLIENT, root / "analytics.js")
    shutil.copy(CLASSIC, root / "analytics.min.js")
    handler = functools.partial(QuietStaticHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder(live_server) -> Recorder:
    recorder = Recorder(live_server.server.get_app())
    live_server.server.set_app(recorder)
    return recorder


class Page:
    """The test page in the browser, sending to the live server."""

    def __init__(self, browser: Any, site: str, live_server: Any, recorder: Recorder) -> None:
        self.browser = browser
        self.site = site
        self.live_server = live_server
        self.recorder = recorder

    def open(self, *track: str, page: str = "client.html", **params: Any) -> None:
        query = [("endpoint", self.live_server.url), *(("track", t) for t in track), *params.items()]
        self.browser.get(f"{self.site}/{page}?{urlencode(query)}")
        self.wait_for("return window.clientReady === true")

    def reload(self) -> None:
        self.browser.refresh()
        self.wait_for("return window.clientReady === true")

    def run(self, script: str, *args: Any) -> Any:
        return self.browser.execute_script(script, *args)

    def wait_for(self, script: str, *args: Any) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.browser, WAIT_S, poll_frequency=0.05).until(
            lambda driver: driver.execute_script(script, *args)
        )

    def track(self, *args: Any) -> None:
        self.run("window.analytics.track(...arguments)", *args)

    def flush(self) -> int:
        return self.run("return window.analytics.flush()")

    def pageview(self) -> None:
        self.run("window.analytics.pageview()")

    def pending(self) -> int:
        return self.run("return window.analytics.pending")

    def errors(self) -> list[str]:
        return self.run("return window.pageErrors")


def totals(live_server: Any, entity_id: str, entity_type: str = "movie") -> dict[str, Any]:
    """Flush now, then the entity's totals through the query API."""
    live_server.flush()
    url = f"{live_server.url}/api/v1/analytics/jav/{entity_type}/{entity_id}/totals"
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def new_id() -> str:
    return str(uuid.uuid4())


def sent(posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event of these POSTs, in order."""
    return [event for post in posts for event in post["body"]["events"]]


@pytest.fixture
def page(desktop_browser, site, live_server, recorder) -> Page:
    return Page(desktop_browser, site, live_server, recorder)


def test_a_tracked_view_is_sent_as_a_text_plain_beacon_and_counted(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}")
    assert page.flush() == 1

    [post] = recorder.wait_posts(1)
    assert post["path"] == BATCH
    assert post["content_type"].startswith("text/plain")  # a simple request: no preflight
    assert post["origin"] == page.site
    assert not [r for r in recorder.requests if r["method"] == "OPTIONS"]
    [event] = post["body"]["events"]
    assert UUID.match(event["event_id"])
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", event["occurred_at"])
    assert {k: v for k, v in event.items() if k not in ("event_id", "occurred_at")} == {
        "domain": "jav",
        "entity_type": "movie",
        "entity_id": movie,
        "action": "view",
    }
    assert post["status"] == 202
    assert post["answer"] == {"accepted": 1, "duplicates": 0, "ignored": 0, "rejected": []}
    assert page.run("return window.beacons.length") == 1

    assert totals(live_server, movie)["views"] == 1
    assert page.errors() == []


def test_a_reload_within_the_dedupe_window_records_no_view(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}")
    page.flush()
    page.reload()  # tracks the view again on load
    page.flush()

    first, second = recorder.wait_posts(2)
    assert first["body"]["events"][0]["event_id"] == second["body"]["events"][0]["event_id"]
    assert second["answer"]["accepted"] == 0
    assert second["answer"]["duplicates"] == 1
    assert totals(live_server, movie)["views"] == 1


def test_a_reload_after_the_dedupe_window_counts_again(page, live_server, recorder):
    movie = new_id()
    window_s = 0.8
    page.open(f"view:movie:{movie}", window=int(window_s * 1000))
    tracked_at = time.monotonic()
    page.flush()
    recorder.wait_posts(1)
    time.sleep(max(0.0, window_s + 0.1 - (time.monotonic() - tracked_at)))
    page.browser.refresh()
    page.wait_for("return window.clientReady === true")
    page.flush()

    first, second = recorder.wait_posts(2)
    assert first["body"]["events"][0]["event_id"] != second["body"]["events"][0]["event_id"]
    assert second["answer"]["accepted"] == 1
    assert totals(live_server, movie)["views"] == 2


def test_a_rating_records_its_value_clamped_to_one_to_five(page, live_server, recorder):
    rated, clamped_high, clamped_low, not_a_number = new_id(), new_id(), new_id(), new_id()
    page.open()
    page.track("rating", "movie", rated, {"value": 4})
    page.track("rating", "movie", clamped_high, {"value": 9})
    page.track("rating", "movie", clamped_low, {"value": -2})
    for bad in ("4", None, True, [4], {}):
        page.track("rating", "movie", not_a_number, {"value": bad})
    page.run("window.analytics.track('rating', 'movie', arguments[0], {value: NaN})", not_a_number)
    page.track("rating", "movie", not_a_number)
    page.flush()

    [post] = recorder.wait_posts(1)
    assert [(e["entity_id"], e["value"]) for e in post["body"]["events"]] == [
        (rated, 4),
        (clamped_high, 5),
        (clamped_low, 1),
    ]
    assert post["answer"]["accepted"] == 3
    for movie, value in ((rated, 4), (clamped_high, 5), (clamped_low, 1)):
        counted = totals(live_server, movie)
        assert (counted["ratings_count"], counted["ratings_sum"], counted["ratings_avg"]) == (1, value, value)
    assert totals(live_server, not_a_number)["ratings_count"] == 0


def test_identical_actions_in_one_page_life_are_sent_once_in_one_batch(page, live_server, recorder):
    movie, actor, tag = new_id(), new_id(), 1234
    page.open(api="factory")
    for _ in range(3):
        page.track("view", "movie", movie)
        page.track("download", "movie", movie)
        page.track("favorite", "actor", actor)
        page.track("watchlist", "movie", movie)
        page.track("view", "tag", tag)  # the site's integer tag ids
        page.track("rating", "movie", movie, {"value": 3})
    page.track("rating", "movie", movie, {"value": 5})  # a changed rating is another action
    assert page.run("return window.analytics.pending") == 7
    assert page.flush() == 1
    assert page.flush() == 0  # nothing left

    [post] = recorder.wait_posts(1)
    events = post["body"]["events"]
    assert [(e["action"], e["entity_id"], e.get("value")) for e in events] == [
        ("view", movie, None),
        ("download", movie, None),
        ("favorite", actor, None),
        ("watchlist", movie, None),
        ("view", "1234", None),
        ("rating", movie, 3),
        ("rating", movie, 5),
    ]
    assert len({e["event_id"] for e in events}) == 7
    assert post["answer"]["accepted"] == 7
    assert page.run("return window.beacons.length + window.fetches.length") == 1
    counted = totals(live_server, movie)
    assert {k: counted[k] for k in ("views", "downloads", "watchlists", "ratings_count", "ratings_sum")} == {
        "views": 1,
        "downloads": 1,
        "watchlists": 1,
        "ratings_count": 2,
        "ratings_sum": 8,
    }
    assert totals(live_server, actor, "actor")["favorites"] == 1
    assert totals(live_server, "1234", "tag")["views"] == 1


def test_a_queue_of_more_than_100_events_is_split_into_batches(page, live_server, recorder):
    first_tag = random.randrange(10**9, 10**12) * 1000  # tag ids are integers
    page.open()
    # the client sends a full batch at once and the rest on flush
    page.run(
        "for (let i = 0; i < 150; i++) window.analytics.track('view', 'tag', arguments[0] + i)", first_tag
    )
    assert page.flush() == 1

    posts = recorder.wait_posts(2)  # two beacons in flight at once: answered in either order
    assert sorted(len(p["body"]["events"]) for p in posts) == [50, 100]
    assert sorted(p["answer"]["accepted"] for p in posts) == [50, 100]
    assert sorted(e["entity_id"] for e in sent(posts)) == sorted(str(first_tag + i) for i in range(150))


def test_ids_are_sent_in_their_types_form_and_others_dropped(page, live_server, recorder):
    movie, actor = new_id(), new_id()
    page.open()
    page.track("view", "movie", movie.upper())  # one movie whatever case the page holds
    page.track("view", "movie", movie)  # the same movie: a repeat within the page view
    page.track("favorite", "actor", actor.upper())
    for bad in ("NEWB-0001", "17", movie.replace("-", ""), "m1"):
        page.track("download", "movie", bad)  # not a UUID: dropped, never sent
    for bad in ("042", "-1", "x1", 1.5):
        page.track("view", "tag", bad)
    page.track("view", "provider", "acme_studio-2")
    page.flush()

    [post] = recorder.wait_posts(1)
    assert [(e["entity_type"], e["entity_id"]) for e in post["body"]["events"]] == [
        ("movie", movie),
        ("actor", actor),
        ("provider", "acme_studio-2"),
    ]
    assert post["answer"]["accepted"] == 3
    assert totals(live_server, movie)["views"] == 1


def test_queued_events_are_sent_every_few_seconds_without_a_flush(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}", interval=200)
    [post] = recorder.wait_posts(1)
    assert post["body"]["events"][0]["entity_id"] == movie
    assert totals(live_server, movie)["views"] == 1


def test_queued_events_are_sent_when_the_page_is_left(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}")
    page.browser.get("about:blank")  # pagehide
    [post] = recorder.wait_posts(1)
    assert post["body"]["events"][0]["entity_id"] == movie
    assert totals(live_server, movie)["views"] == 1


def test_queued_events_are_sent_when_the_page_is_hidden(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}")
    page.run(
        "window.states = [];"
        "document.addEventListener('visibilitychange', () => states.push(document.visibilityState))"
    )
    tab = page.browser.current_window_handle
    page.browser.switch_to.new_window("tab")  # the page's tab goes to the background
    [post] = recorder.wait_posts(1)
    assert post["body"]["events"][0]["entity_id"] == movie
    page.browser.switch_to.window(tab)
    assert page.run("return window.states")[0] == "hidden"
    assert page.flush() == 0  # nothing left to send
    assert totals(live_server, movie)["views"] == 1


@pytest.mark.parametrize("beacon", ["beacon-false", "beacon-missing"])
def test_fetch_with_keepalive_is_used_when_the_beacon_is_refused_or_missing(
    page, live_server, recorder, beacon
):
    movie = new_id()
    page.open(f"view:movie:{movie}", **{"break": beacon})
    page.flush()

    [post] = recorder.wait_posts(1)
    assert post["content_type"].startswith("text/plain")
    assert post["headers"].get("access-control-allow-origin") == "*"
    # the page reads the answer: the cross-origin response passed the browser's CORS check
    fetched = page.wait_for("return window.fetches.length === 1 && window.fetches[0].answer")
    assert fetched["accepted"] == 1
    init = page.run("return window.fetches[0].init")
    assert (init["method"], init["keepalive"], init["headers"]) == (
        "POST",
        True,
        {"content-type": "text/plain"},
    )
    assert totals(live_server, movie)["views"] == 1
    assert page.errors() == []


def test_the_client_never_throws_into_the_page(page, live_server, recorder):
    loaded, later = new_id(), new_id()
    page.open(f"view:movie:{loaded}", **{"break": "crypto,storage"})
    thrown = page.run(
        """
        const a = window.analytics, thrown = [];
        const calls = [
          () => a.configure(null),  // sends the queue first, then a client with the defaults
          () => a.configure({get endpoint() { throw new Error("boom"); }}),
          () => a.configure({endpoint: {toString() { throw new Error("boom"); }}}),
          () => a.default({endpoint: {toString() { throw new Error("boom"); }}}).track(),
          () => a.configure({endpoint: arguments[0], flushIntervalMs: 60000}),
          () => a.track(),
          () => a.track(null, null, null, null),
          () => a.track("view"),
          () => a.track("like", "movie", "abc"),
          () => a.track("view", "user", "abc"),
          () => a.track("view", "movie", "not valid!"),
          () => a.track("view", "movie", "x".repeat(65)),
          () => a.track("view", "movie", -1),
          () => a.track("view", "movie", 1.5),
          () => a.track("view", "movie", {toString() { throw new Error("boom"); }}),
          () => a.track(Symbol("view"), "movie", "abc"),
          () => a.track("rating", "movie", "abc", null),
          () => a.track("rating", "movie", "abc", {get value() { throw new Error("boom"); }}),
          () => a.track("view", "movie", arguments[1], "not options"),
        ];
        for (const call of calls) { try { call(); } catch (e) { thrown.push(String(e)); } }
        return thrown;
        """,
        live_server.url,
        later,
    )
    assert thrown == []
    assert page.flush() == 1
    first, second = recorder.wait_posts(2)
    # the view tracked on load went out on the first reconfigure; each event has a fallback id
    events = [*first["body"]["events"], *second["body"]["events"]]
    assert [e["entity_id"] for e in events] == [loaded, later]
    for event in events:
        assert re.match(r"^[A-Za-z0-9._:-]{1,128}$", event["event_id"])
        assert not UUID.match(event["event_id"])
    assert [first["answer"]["accepted"], second["answer"]["accepted"]] == [1, 1]
    assert totals(live_server, loaded)["views"] == 1
    assert totals(live_server, later)["views"] == 1
    assert page.run("return sessionStorage.length") == 0  # nothing could be stored

    page.open(f"view:movie:{new_id()}", **{"break": "storage-access,beacon-missing,fetch"})
    assert page.run("try { sessionStorage; return false; } catch (e) { return e.name; }") == "SecurityError"
    page.flush()
    assert page.run("return window.fetches.length") == 2  # keepalive, then a plain retry: both refused
    assert page.errors() == []
    try:
        logs = page.browser.get_log("browser")
    except Exception:  # not every driver keeps the console log
        logs = []
    assert [entry for entry in logs if entry.get("level") == "SEVERE"] == []


def test_a_headless_browser_is_ignored_by_the_server(browser, site, live_server, recorder):
    movie = new_id()
    page = Page(browser, site, live_server, recorder)
    page.open(f"view:movie:{movie}")
    page.flush()
    [post] = recorder.wait_posts(1)
    assert post["answer"] == {"accepted": 0, "duplicates": 0, "ignored": 1, "rejected": []}
    assert totals(live_server, movie)["views"] == 0


# Page views: the dedupe is per page view, not per module lifetime.


def test_a_movie_viewed_again_after_a_pageview_call_counts_again(page, live_server, recorder):
    a, b = new_id(), new_id()
    page.open(f"view:movie:{a}")
    page.pageview()  # an SPA router's hook
    page.track("view", "movie", b)
    page.pageview()
    page.track("view", "movie", a)
    page.flush()

    [post] = recorder.wait_posts(1)
    events = post["body"]["events"]
    assert [e["entity_id"] for e in events] == [a, b, a]
    assert len({e["event_id"] for e in events}) == 3
    assert post["answer"]["accepted"] == 3
    assert totals(live_server, a)["views"] == 2
    assert totals(live_server, b)["views"] == 1


def test_a_history_navigation_to_another_path_starts_a_new_page_view(page, live_server, recorder):
    a, b = new_id(), new_id()
    page.open(f"view:movie:{a}")
    page.run("history.pushState({}, '', '/movies/' + arguments[0])", b)  # what an SPA router does
    page.track("view", "movie", b)
    page.run("history.back()")  # popstate, back on the first path
    page.wait_for("return location.pathname === '/client.html'")
    page.track("view", "movie", a)
    page.flush()

    [post] = recorder.wait_posts(1)
    assert [e["entity_id"] for e in post["body"]["events"]] == [a, b, a]
    assert post["answer"]["accepted"] == 3
    assert totals(live_server, a)["views"] == 2


def test_a_history_change_of_query_or_hash_only_stays_in_the_page_view(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}")
    page.run("history.pushState({}, '', '?tab=comments')")
    page.track("view", "movie", movie)
    page.run("history.replaceState({scroll: 120}, '', '#cast')")  # a router saving its scroll position
    page.track("view", "movie", movie)
    page.flush()

    [post] = recorder.wait_posts(1)
    assert [e["entity_id"] for e in post["body"]["events"]] == [movie]
    assert totals(live_server, movie)["views"] == 1


def test_history_navigation_is_not_followed_when_turned_off(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}", history="off")
    page.run("history.pushState({}, '', '/movies/other')")
    page.track("view", "movie", movie)
    page.flush()

    [post] = recorder.wait_posts(1)
    assert [e["entity_id"] for e in post["body"]["events"]] == [movie]
    assert totals(live_server, movie)["views"] == 1


def test_a_movie_viewed_again_on_a_new_page_load_counts_again(page, live_server, recorder):
    a, b = new_id(), new_id()
    for movie in (a, b, a):  # links followed, not reloads: each load is a page view
        page.open(f"view:movie:{movie}")
        page.flush()

    posts = recorder.wait_posts(3)
    events = sent(posts)
    assert [e["entity_id"] for e in events] == [a, b, a]
    assert events[0]["event_id"] != events[2]["event_id"]
    assert [p["answer"]["accepted"] for p in posts] == [1, 1, 1]
    assert totals(live_server, a)["views"] == 2


def test_a_view_repeated_after_the_dedupe_window_in_one_page_view_counts_again(page, live_server, recorder):
    movie = new_id()
    window_s = 0.8
    page.open(f"view:movie:{movie}", window=int(window_s * 1000), api="factory")
    tracked_at = time.monotonic()
    page.track("view", "movie", movie)  # within the window: dropped
    assert page.pending() == 1
    time.sleep(max(0.0, window_s + 0.1 - (time.monotonic() - tracked_at)))
    page.track("view", "movie", movie)
    page.flush()

    [post] = recorder.wait_posts(1)
    first, second = post["body"]["events"]
    assert first["event_id"] != second["event_id"]
    assert post["answer"]["accepted"] == 2
    assert totals(live_server, movie)["views"] == 2


def test_a_reload_carries_on_the_page_view_it_reloads(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}")
    page.pageview()
    page.track("view", "movie", movie)  # a view of the second page view
    page.flush()
    page.reload()  # tracks the view again on load
    page.flush()

    first, second = recorder.wait_posts(2)
    loaded, viewed_again = first["body"]["events"]
    [reloaded] = second["body"]["events"]
    assert reloaded["event_id"] == viewed_again["event_id"] != loaded["event_id"]
    assert second["answer"]["duplicates"] == 1
    assert totals(live_server, movie)["views"] == 2


def test_a_router_initial_pageview_call_keeps_a_reload_from_counting(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}", pageview="first")
    page.flush()
    page.reload()
    page.flush()

    first, second = recorder.wait_posts(2)
    assert first["body"]["events"][0]["event_id"] == second["body"]["events"][0]["event_id"]
    assert second["answer"]["duplicates"] == 1
    assert totals(live_server, movie)["views"] == 1


# Downloads: each attempt counts (the design's Decision 1); a double click does not.


def test_a_double_click_on_a_download_counts_once(page, live_server, recorder):
    movie = new_id()
    page.open()
    page.track("download", "movie", movie)
    page.track("download", "movie", movie)
    page.flush()

    [post] = recorder.wait_posts(1)
    assert [(e["action"], e["entity_id"]) for e in post["body"]["events"]] == [("download", movie)]
    assert totals(live_server, movie)["downloads"] == 1


def test_each_download_attempt_after_the_double_click_window_counts(page, live_server, recorder):
    movie = new_id()
    double_click_s = 0.5
    page.open(doubleclick=int(double_click_s * 1000))
    page.track("download", "movie", movie)
    tracked_at = time.monotonic()
    time.sleep(max(0.0, double_click_s + 0.1 - (time.monotonic() - tracked_at)))
    page.track("download", "movie", movie)
    page.flush()

    [post] = recorder.wait_posts(1)
    first, second = post["body"]["events"]
    assert first["event_id"] != second["event_id"]
    assert post["answer"]["accepted"] == 2
    assert totals(live_server, movie)["downloads"] == 2


def test_a_download_tracked_again_after_a_reload_counts_again(page, live_server, recorder):
    movie = new_id()
    page.open(f"download:movie:{movie}")
    page.flush()
    page.reload()
    page.flush()

    first, second = recorder.wait_posts(2)
    assert first["body"]["events"][0]["event_id"] != second["body"]["events"][0]["event_id"]
    assert [first["answer"]["accepted"], second["answer"]["accepted"]] == [1, 1]
    assert totals(live_server, movie)["downloads"] == 2


# The classic-script build (dist/analytics.min.js).


def test_the_classic_build_adds_one_global_and_counts_a_view(page, live_server, recorder):
    movie = new_id()
    page.open(f"view:movie:{movie}", page="classic.html")
    assert page.run("return window.addedGlobals") == ["AnalyticsClient"]
    assert page.flush() == 1

    [post] = recorder.wait_posts(1)
    assert [(e["action"], e["entity_id"]) for e in post["body"]["events"]] == [("view", movie)]
    assert post["answer"]["accepted"] == 1
    assert totals(live_server, movie)["views"] == 1
    assert page.errors() == []


# The package: types, classic build, version and files, checked with its own tools.


def run_js(*command: str) -> str:
    """A command in clients/js; its output, or a failure that shows it."""
    done = subprocess.run(command, cwd=JS, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def js_tools() -> Path:
    """clients/js/node_modules with the locked esbuild and TypeScript: `npm ci` when missing."""
    tools = [JS / "node_modules" / ".bin" / name for name in ("esbuild", "tsc")]
    assert shutil.which("node") and shutil.which("npm"), "Node.js and npm are needed (Debian: nodejs, npm)"
    with open(JS / "package-lock.json") as lock:  # one installer at a time (pytest -n)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not all(tool.exists() for tool in tools):
                run_js("npm", "ci", "--no-audit", "--no-fund")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return JS


@pytest.fixture(scope="session")
def exported(js_tools: Path) -> dict[str, Any]:
    """What analytics.d.ts declares beside what the module and the classic build export."""
    return json.loads(run_js("node", "test/exports.mjs"))


def test_the_type_declarations_declare_exactly_the_module_exports(exported):
    assert exported["declared"]["exports"] == exported["module"]["exports"]
    assert exported["module"]["defaultIsCreateAnalytics"] is True


def test_the_type_declarations_declare_exactly_what_a_client_has(exported):
    assert exported["declared"]["client"] == exported["module"]["client"]


def test_the_classic_build_exposes_the_module_exports_under_one_global(exported):
    assert exported["classic"]["globals"] == ["AnalyticsClient"]
    assert exported["classic"]["exports"] == sorted(exported["module"]["exports"])


def test_the_documented_calls_type_check_against_the_declarations(js_tools):
    run_js("node_modules/.bin/tsc", "-p", "tsconfig.json")  # test/usage.ts, through `exports`


def test_the_committed_classic_build_is_the_build_of_the_module(js_tools, tmp_path):
    rebuilt = tmp_path / "analytics.min.js"
    run_js("node", "build.mjs", str(rebuilt))
    assert rebuilt.read_bytes() == CLASSIC.read_bytes(), "dist/ is stale: run `npm run build` in clients/js"


def test_the_version_is_the_same_in_package_json_module_build_and_changelog(exported):
    version = exported["packageVersion"]
    assert exported["module"]["version"] == version
    assert exported["classic"]["version"] == version
    changelog = (JS / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", changelog, re.MULTILINE).group(1) == version


def test_the_package_ships_the_module_its_types_the_classic_build_and_docs(js_tools):
    [packed] = json.loads(run_js("npm", "pack", "--dry-run", "--json"))
    assert sorted(f["path"] for f in packed["files"]) == [
        "CHANGELOG.md",
        "README.md",
        "analytics.d.ts",
        "analytics.js",
        "dist/analytics.min.js",
        "package.json",
    ]
