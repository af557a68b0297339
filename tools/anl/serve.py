"""`anl serve`: the ingest and query routes on a local port, with flush and watchdog on their schedule.

Requests go through the same handlers as in Lambda (real requests become payload-2.0 events, source
IP and headers included): the dashboard's files and the pipeline's status come from the query function,
as in the deployment. The same process also serves the OpenAPI document, an interactive API page and
the browser client.
"""

from __future__ import annotations

import contextlib
import fcntl
import mimetypes
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from analytics_pipeline.errors import AnalyticsError
from analytics_pipeline.observability import logger

from anl.local import load_function, load_handler, project_root
from anl.wsgi import make_app

DOCS_PATH = "/api/v1/analytics/docs"


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class SilentHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class Scheduler:
    """Runs flush then watchdog every `every_s` seconds in a background thread, like the two schedules."""

    every_s: float
    last: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """0 turns the schedule off (flush with `anl flush`, or not at all)."""
        return self.every_s > 0

    def tick(self) -> dict[str, Any]:
        for name in ("flush", "watchdog"):
            try:
                self.last[name] = load_handler(name)({"source": "anl-serve"}, None)
            except AnalyticsError as exc:  # an operator's or a store's problem: one line, retried next tick
                logger.error("scheduled run failed", function=name, error=str(exc))
                self.last[name] = {"errors": [str(exc)]}
            except Exception as exc:  # a failed run is reported and retried on the next tick
                logger.exception("scheduled run failed", function=name)
                self.last[name] = {"errors": [f"{type(exc).__name__}: {exc}"]}
        self.last["at"] = time.time()
        return self.last

    def start(self) -> None:
        if not self.enabled:
            return

        def loop() -> None:
            while not self._stop.wait(self.every_s):
                self.tick()

        self._thread = threading.Thread(target=loop, name="anl-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _file_page(relative: str) -> Callable[[], tuple[int, str, bytes]]:
    def page() -> tuple[int, str, bytes]:
        path = project_root() / relative
        if not path.is_file():
            return 404, "application/json", b'{"status":"not_found"}'
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return 200, content_type, path.read_bytes()

    return page


def build_app(scheduler: Scheduler) -> Callable[..., Any]:
    """The WSGI app of `anl serve`."""
    from anl.apipage import api_page
    from anl.openapi import openapi_document

    load_handler("ingest")
    load_function("query")
    document = openapi_document().encode()
    docs_page = api_page(document.decode())  # every route, ingest and query

    def index() -> tuple[int, str, bytes]:
        links = [
            ("/dashboard", "admin dashboard"),
            (DOCS_PATH, "interactive API page"),
            ("/openapi.json", "OpenAPI document"),
            ("/clients/js/analytics.js", "browser client (ES module)"),
            ("/clients/js/dist/analytics.min.js", "browser client (classic script, one global)"),
        ]
        items = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in links)
        page = (
            '<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>analytics</title><h1>Analytics pipeline</h1><ul>{items}</ul>"
        )
        return 200, "text/html; charset=utf-8", page.encode()

    pages = {
        "/": index,
        "/openapi.json": lambda: (200, "application/json", document),
        DOCS_PATH: lambda: (200, "text/html; charset=utf-8", docs_page),
        "/clients/js/analytics.js": _file_page("clients/js/analytics.js"),
        "/clients/js/dist/analytics.min.js": _file_page("clients/js/dist/analytics.min.js"),
    }
    return make_app(pages)


class SpoolInUse(Exception):
    """Another `anl serve` holds this spool: sharing it, each would replay the other's events."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def lock_spool(path: str) -> int:
    """Hold `<path>.lock` for as long as this process runs (the lock goes with the process)."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolInUse(path) from None
    return fd


def _refuse(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Length", "0")])
    return []


def serve(host: str, port: int, every_s: float, quiet: bool = False) -> None:
    """Serve until interrupted. Each server spools to a file of its own (`.anl/spool-<port>` unless
    SPOOL_PATH is set), locked, so that no other server replays its events into another store."""
    handler = SilentHandler if quiet else QuietHandler
    # bind first: a port in use is reported before anything is loaded
    with make_server(host, port, _refuse, server_class=ThreadingServer, handler_class=handler) as server:
        bound = server.server_address[1]
        os.environ.setdefault("SPOOL_PATH", f".anl/spool-{bound}")
        lock = lock_spool(os.environ["SPOOL_PATH"])
        scheduler = Scheduler(every_s)
        try:
            server.set_app(build_app(scheduler))
            scheduler.start()
            print(
                f"serving on http://{host}:{bound}/  (dashboard /dashboard, API page {DOCS_PATH})",
                file=sys.stderr,
            )
            schedule = (
                f"flush and watchdog run every {every_s:g} s"
                if scheduler.enabled
                else "flush and watchdog do not run here (--flush-every 0)"
            )
            print(f"{schedule}; Ctrl-C stops", file=sys.stderr, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                server.serve_forever()
        finally:
            scheduler.stop()
            os.close(lock)
