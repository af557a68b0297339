"""A stand-in for the dashboard's server side: its files, config.json, the read API and an OIDC provider.

The API answers in the contract's shapes (period rankings, site-wide series, labels of every type, the
site's state figures, status with its parity streak) from a small table of daily counts, so the
dashboard's tests can drive what the query function does not serve yet. Beyond the contract it can serve
the label search the dashboard asks for first (`{type}/lookup?label=`; `lookup=False` answers it 404,
as an API without it does). The files go out with the query function's Content-Security-Policy. The
provider implements the authorization code flow with PKCE (S256 checked) on a port of its own, so the
token request is cross-origin as with a real provider.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import make_server

from anl.serve import SilentHandler, ThreadingServer

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboard"
API = "/api/v1/analytics"
COUNTERS = ("views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum")
STATE = ("favorites_active", "watchlists_active", "ratings_current_count", "ratings_current_avg")
Answer = tuple[int, dict[str, str], bytes]


def dashboard_csp() -> str:
    """The query function's policy for the dashboard's files, read from its source (loading the module
    would build the pipeline's container)."""
    tree = ast.parse((ROOT / "functions" / "query" / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DASHBOARD_CSP" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise LookupError("functions/query/app.py: no DASHBOARD_CSP")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@dataclass
class StandInApi:
    """The read API over `counts[(entity_type, entity_id)][day] = {counter: n}`."""

    counts: dict[tuple[str, str], dict[str, dict[str, int]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # entity_id -> label, whatever its type
    titles: dict[str, str] = field(default_factory=dict)  # entity_id -> title (beside a movie's code)
    # MYSQL_STATE: the site's favorites/watchlists/ratings of each movie; None: not configured
    site_state: dict[str, dict[str, Any]] | None = None
    lookup: bool = True  # False: no label search route (404), as an API without it
    domains: tuple[str, ...] = ("jav",)
    status: dict[str, Any] | None = None
    tokens: set[str] | None = None  # None: no token needed (a local `anl serve`)
    forbidden: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)

    def add(self, entity_type: str, entity_id: str, day: str, **counters: int) -> None:
        bucket = self.counts.setdefault((entity_type, entity_id), {}).setdefault(
            day, dict.fromkeys(COUNTERS, 0)
        )
        for name, value in counters.items():
            bucket[name] += value

    def _sum(self, entity_type: str, entity_id: str, days: Iterable[str] | None) -> dict[str, int]:
        total = dict.fromkeys(COUNTERS, 0)
        per_day = self.counts.get((entity_type, entity_id), {})
        for day, counts in per_day.items():
            if days is None or day in days:
                for name in COUNTERS:
                    total[name] += counts[name]
        return total

    @staticmethod
    def _avg(counts: dict[str, int]) -> float | None:
        return counts["ratings_sum"] / counts["ratings_count"] if counts["ratings_count"] else None

    def answer(self, path: str, query: dict[str, str], authorization: str | None) -> Answer:
        self.requests.append((path, query, authorization))
        if self.tokens is not None:
            given = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
            if given is None or given not in self.tokens | self.forbidden:
                return _json(401, {"message": "Unauthorized"})
            if given in self.forbidden:
                return _json(403, {"message": "Forbidden"})
        parts = path[len(API) + 1 :].split("/")
        if parts == ["status"]:
            return _json(200, self.status) if self.status is not None else _json(500, {"status": "error"})
        if parts[0] not in self.domains:
            message = f"must be one of: {', '.join(self.domains)}"
            return _json(400, {"status": "rejected", "errors": [{"field": "domain", "message": message}]})
        if len(parts) == 3 and parts[2] == "lookup" and self.lookup:
            return _json(200, {"items": self._lookup(parts[1], query.get("label", ""))})
        first, last = query.get("from"), query.get("to")
        if first and last and first > last:
            return _json(
                400, {"status": "rejected", "errors": [{"field": "from", "message": "must not be after to"}]}
            )
        if len(parts) == 3 and parts[2] == "top":
            if query.get("counter") in STATE and self.site_state is None:
                message = f"{query['counter']} needs the site's tables (MYSQL_STATE)"
                errors = [{"field": "counter", "message": message}]
                return _json(400, {"status": "rejected", "errors": errors})
            return _json(200, {"items": self._top(parts[1], query)})
        if len(parts) == 3 and parts[2] == "series":
            ids = [entity_id for kind, entity_id in self.counts if kind == parts[1]]
            return _json(200, self._series(parts[1], ids, query))
        if len(parts) == 4 and parts[3] == "series":
            return _json(200, self._series(parts[1], [parts[2]], query))
        if len(parts) == 4 and parts[3] == "totals":
            counts = self._sum(parts[1], parts[2], None)
            body = {**counts, "ratings_avg": self._avg(counts), **self._site(parts[1], parts[2])}
            return _json(200, body)
        return _json(404, {"status": "not_found"})

    def _site(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """What the site's tables say of an entity: its label, a movie's title and state figures."""
        movie = entity_type == "movie"
        return {
            "label": self.labels.get(entity_id),
            "title": self.titles.get(entity_id) if movie else None,
            **(self._state(entity_id) if movie else dict.fromkeys(STATE)),
        }

    def _state(self, entity_id: str) -> dict[str, Any]:
        """The contract's four state figures of a movie: null when MYSQL_STATE is not configured."""
        if self.site_state is None:
            return dict.fromkeys(STATE)
        held = self.site_state.get(entity_id, {})
        ratings = held.get("ratings", [])
        return {
            "favorites_active": held.get("favorites", 0),
            "watchlists_active": held.get("watchlists", 0),
            "ratings_current_count": len(ratings),
            "ratings_current_avg": sum(ratings) / len(ratings) if ratings else None,
        }

    def _lookup(self, entity_type: str, label: str) -> list[dict[str, Any]]:
        kinds = {entity_id: kind for kind, entity_id in self.counts}
        return [
            {"entity_id": entity_id, "label": name, "title": self.titles.get(entity_id)}
            for entity_id, name in sorted(self.labels.items())
            if name.lower() == label.lower() and kinds.get(entity_id, entity_type) == entity_type
        ]

    def _top(self, entity_type: str, query: dict[str, str]) -> list[dict[str, Any]]:
        days = set(_days(query["from"], query["to"])) if "from" in query else None
        counter = query.get("counter", "views")
        floor = int(query.get("min_ratings", "5"))
        rows = []
        ids = {entity_id for kind, entity_id in self.counts if kind == entity_type}
        if counter in STATE and entity_type == "movie":
            ids |= set(self.site_state or {})  # ranked from the site's tables, counted or not
        for entity_id in sorted(ids):
            counts = self._sum(entity_type, entity_id, days)
            held = self._state(entity_id) if entity_type == "movie" else dict.fromkeys(STATE)
            if counter not in STATE and not any(counts.values()):
                continue
            average = self._avg(counts)
            if counter == "ratings_avg":
                if counts["ratings_count"] < floor:
                    continue
                key = average
            elif counter == "ratings_current_avg":
                if held["ratings_current_count"] < floor:
                    continue
                key = held[counter]
            elif counter in STATE:
                if not held[counter]:
                    continue
                key = held[counter]
            else:
                key = counts[counter]
            rows.append(
                (
                    -key,
                    entity_id,
                    {
                        "entity_id": entity_id,
                        **counts,
                        "ratings_avg": average,
                        **self._site(entity_type, entity_id),
                    },
                )
            )
        rows.sort(key=lambda row: (row[0], row[1]))
        return [row[2] for row in rows[: int(query.get("limit", "10"))]]

    def _series(self, entity_type: str, ids: list[str], query: dict[str, str]) -> dict[str, Any]:
        points = []
        for day in _days(query["from"], query["to"]):
            point = dict.fromkeys(COUNTERS, 0)
            for entity_id in ids:
                for name, value in self.counts.get((entity_type, entity_id), {}).get(day, {}).items():
                    point[name] += value
            points.append({"period": day, **point})
        return {"bucket": query.get("bucket", "day"), "points": points}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class StandInProvider:
    """An OpenID provider that signs everyone in at once, and checks the PKCE pair as a real one does."""

    client_id: str
    api: StandInApi
    accept_tokens: bool = True  # False: the API refuses every token it issues (a misconfigured audience)
    forbidden: bool = False  # True: the API answers 403 to its tokens (not an admin)
    url: str = ""
    authorizations: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    logouts: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)
    _serial: Any = field(default_factory=itertools.count)

    def answer(self, method: str, path: str, query: dict[str, str], body: dict[str, str]) -> Answer:
        if path == "/.well-known/openid-configuration":
            return _json(
                200,
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "end_session_endpoint": f"{self.url}/logout",
                },
                {"Access-Control-Allow-Origin": "*"},
            )
        if path == "/authorize":
            self.authorizations.append(query)
            code = f"code-{next(self._serial)}"
            self._codes[code] = query
            back = urlencode({"code": code, "state": query.get("state", "")})
            return 302, {"Location": f"{query['redirect_uri']}?{back}"}, b""
        if path == "/token" and method == "POST":
            self.token_requests.append(body)
            asked = self._codes.pop(body.get("code", ""), None)
            cors = {"Access-Control-Allow-Origin": "*"}
            if (
                asked is None
                or body.get("grant_type") != "authorization_code"
                or body.get("client_id") != self.client_id
                or body.get("redirect_uri") != asked.get("redirect_uri")
                or asked.get("code_challenge_method") != "S256"
                or s256(body.get("code_verifier", "")) != asked.get("code_challenge")
            ):
                return _json(400, {"error": "invalid_grant"}, cors)
            token = f"tok-{next(self._serial)}"
            if self.forbidden:
                self.api.forbidden.add(token)
            elif self.accept_tokens:
                assert self.api.tokens is not None
                self.api.tokens.add(token)
            return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}, cors)
        if path == "/logout":
            self.logouts.append(query)
            return 302, {"Location": query["post_logout_redirect_uri"]}, b""
        return _json(404, {"error": "not_found"})


def _wsgi(handle: Callable[[dict[str, Any]], Answer]) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, headers, body = handle(environ)
        reason = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
        start_response(
            f"{status} {reason.get(status, 'Error')}", [*headers.items(), ("Cache-Control", "no-store")]
        )
        return [body]

    return app


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}


class Served:
    """One WSGI app on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.server = make_server(
            "127.0.0.1", 0, app, server_class=ThreadingServer, handler_class=SilentHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StandIn:
    """The dashboard's origin (files, config.json, API) and, when signing in, a provider's origin."""

    def __init__(self, signin: bool = False, movie_url: str | None = None, **provider: Any) -> None:
        self.api = StandInApi(tokens=set() if signin else None)
        self.provider = StandInProvider("dashboard-client", self.api, **provider) if signin else None
        self.movie_url = movie_url
        self.csp = dashboard_csp()
        self._provider_server = Served(_wsgi(self._provider)) if self.provider else None
        if self.provider and self._provider_server:
            self.provider.url = self._provider_server.url
            # a real provider is on https:, which the policy allows; this one is plain http on localhost
            self.csp = self.csp.replace("connect-src ", f"connect-src {self.provider.url} ", 1)
        self._server = Served(_wsgi(self._site))
        self.url = self._server.url

    def _provider(self, environ: dict[str, Any]) -> Answer:
        assert self.provider is not None
        body = b""
        if environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        form = {key: values[-1] for key, values in parse_qs(body.decode()).items()}
        return self.provider.answer(environ["REQUEST_METHOD"], environ["PATH_INFO"], _query(environ), form)

    def _site(self, environ: dict[str, Any]) -> Answer:
        path = environ["PATH_INFO"]
        files = {
            "/dashboard": ("index.html", "text/html; charset=utf-8"),
            "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
            "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
            "/dashboard/favicon.svg": ("favicon.svg", "image/svg+xml"),
        }
        if path in files:
            name, kind = files[path]
            headers = {"Content-Type": kind, "Content-Security-Policy": self.csp}
            return 200, headers, (DASHBOARD / name).read_bytes()
        if path == "/dashboard/config.json":
            issuer = self.provider.url if self.provider else None
            client = self.provider.client_id if self.provider else None
            config = {"issuer": issuer, "client_id": client, "api": API, "movie_url": self.movie_url}
            return _json(200, {**config, "domains": list(self.api.domains)})
        if path.startswith(API + "/"):
            return self.api.answer(path, _query(environ), environ.get("HTTP_AUTHORIZATION"))
        return _json(404, {"status": "not_found"})

    def close(self) -> None:
        self._server.close()
        if self._provider_server:
            self._provider_server.close()
