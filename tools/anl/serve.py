"""`anl serve`: the ingest and query routes on a local port, with flush and watchdog on their schedule.

Requests go through the same handlers as in Lambda (real requests become payload-2.0 events, source
IP and headers included). The same process also serves the OpenAPI document, an interactive API page,
the admin dashboard and the browser client.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from analytics_pipeline.observability import logger

from anl.local import load_function, load_handler, project_root
from anl.wsgi import make_app

DOCS_PATH = "/api/v1/analytics/docs"
_swagger_enabled = False
_swagger_lock = threading.Lock()


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

    def tick(self) -> dict[str, Any]:
        for name in ("flush", "watchdog"):
            try:
                self.last[name] = load_handler(name)({"source": "anl-serve"}, None)
            except Exception as exc:  # a failed run is reported and retried on the next tick
                logger.exception("scheduled run failed", function=name)
                self.last[name] = {"errors": [f"{type(exc).__name__}: {exc}"]}
        self.last["at"] = time.time()
        return self.last

    def start(self) -> None:
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
    from anl.openapi import openapi_document

    load_handler("ingest")
    query_app = load_function("query").app
    global _swagger_enabled
    with _swagger_lock:
        if not _swagger_enabled:  # once per process: the query app lives as long as the process
            query_app.enable_swagger(path=DOCS_PATH, title="Analytics query API")
            _swagger_enabled = True

    document = openapi_document().encode()

    def status() -> tuple[int, str, bytes]:
        body = {
            "flush": scheduler.last.get("flush"),
            "watchdog": scheduler.last.get("watchdog"),
            "at": scheduler.last.get("at"),
            "every_s": scheduler.every_s,
        }
        return 200, "application/json", json.dumps(body, default=str).encode()

    def index() -> tuple[int, str, bytes]:
        links = [
            ("/dashboard", "admin dashboard"),
            (DOCS_PATH, "interactive API page"),
            ("/openapi.json", "OpenAPI document"),
            ("/clients/js/analytics.js", "browser client"),
        ]
        items = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in links)
        page = f"<!doctype html><title>analytics</title><h1>Analytics pipeline</h1><ul>{items}</ul>"
        return 200, "text/html; charset=utf-8", page.encode()

    pages = {
        "/": index,
        "/openapi.json": lambda: (200, "application/json", document),
        "/dashboard": _file_page("dashboard/index.html"),
        "/dashboard/": _file_page("dashboard/index.html"),
        "/dashboard/dashboard.js": _file_page("dashboard/dashboard.js"),
        "/dashboard/dashboard.css": _file_page("dashboard/dashboard.css"),
        "/dashboard/status.json": status,
        "/clients/js/analytics.js": _file_page("clients/js/analytics.js"),
    }
    return make_app(pages)


def serve(host: str, port: int, every_s: float, quiet: bool = False) -> None:
    """Serve until interrupted."""
    scheduler = Scheduler(every_s)
    app = build_app(scheduler)
    handler = SilentHandler if quiet else QuietHandler
    with make_server(host, port, app, server_class=ThreadingServer, handler_class=handler) as server:
        scheduler.start()
        bound = server.server_address[1]
        print(
            f"serving on http://{host}:{bound}/  (dashboard /dashboard, API page {DOCS_PATH})",
            file=sys.stderr,
        )
        print(f"flush and watchdog run every {every_s:g} s; Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            scheduler.stop()
