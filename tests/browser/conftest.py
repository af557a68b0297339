"""Browser tests: `anl serve`'s WSGI app on a free port, driven by Debian's headless Chromium.

The server runs in a thread of the test process, over the test's container (real Redis under the
test's key prefix, the test's Mongo database), so a test can flush and query what the page sent.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import pytest
from anl.serve import Scheduler, SilentHandler, ThreadingServer, build_app

from tests.support import BROWSER

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class LiveServer:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.server = make_server(
            "127.0.0.1", 0, build_app(scheduler), server_class=ThreadingServer, handler_class=SilentHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def flush(self) -> dict[str, Any]:
        """One scheduled tick now: flush, then watchdog."""
        return self.scheduler.tick()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server(make_container, rollups) -> Iterator[LiveServer]:
    make_container(overrides={"rollups": rollups}, RATE_LIMIT_PER_MINUTE="1000")
    server = LiveServer(Scheduler(every_s=3600))  # the test ticks it
    yield server
    server.close()


def chromium(profile: Path, user_agent: str | None = None) -> Any:
    """Headless Chromium (Debian's package) through its WebDriver; fails, never skips, when missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
        *([f"--user-agent={user_agent}"] if user_agent else []),
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for get_log("browser")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium with its own agent (HeadlessChrome), which ingest ignores as a bot."""
    driver = chromium(tmp_path / "profile")
    yield driver
    driver.quit()


@pytest.fixture
def desktop_browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium that presents a desktop browser's agent, so ingest counts what it sends.

    A DevTools override of the agent does not reach the beacons a page sends as it is left, so the
    agent is set on the command line.
    """
    driver = chromium(tmp_path / "desktop-profile", user_agent=BROWSER)
    yield driver
    driver.quit()
