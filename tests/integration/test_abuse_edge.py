"""What one client can do at the edge, tried as an attacker would: long agents, foreign origins, case
variants and forms of entity ids, reads that would run too long. Through the handlers in-process and
over HTTP with `anl serve`'s app; the checks' order is the contract's."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from typing import Any

import pymysql
import pytest
from analytics_pipeline.adapters.bots import MAX_AGENT_CHARS
from analytics_pipeline.adapters.mongo_rollups import DAILY, MONTHLY, TOTALS, MongoRollupStore
from analytics_pipeline.rollups import Entity
from anl import cli
from anl.local import http_event, load_handler, response_json
from pymongo.errors import ExecutionTimeout

from tests.browser.conftest import LiveServer
from tests.pipeline import Pipeline, counted
from tests.support import BROWSER, SERVER_KEY, Client, event

EVENTS = "/api/v1/analytics/events"
BATCH = f"{EVENTS}/batch"
API = "/api/v1/analytics"
SITE = "https://www.example.com"
FOREIGN = "https://counter-farm.example.net"
MOVIE = "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"


def counted_views(pipeline: Pipeline, entity_id: str, entity_type: str = "movie") -> int:
    pipeline.flush()
    doc = pipeline.mongo_state()[TOTALS].get(("jav", entity_type, entity_id, None))
    return 0 if doc is None else int(doc["views"])


@pytest.fixture
def pipeline(make_container, rollups, clock) -> Pipeline:
    return Pipeline(make_container, rollups, clock)


@pytest.fixture
def guarded(pipeline: Pipeline, ingest_handler) -> Client:
    """Ingest with ALLOWED_ORIGINS set to the site's origin (and a second one, with a port)."""
    pipeline.build(ALLOWED_ORIGINS=f"{SITE}, http://localhost:8080")
    return Client(ingest_handler)


# --- agents: over 512 characters a bot, both headers --------------------------------------------------


def long_agent(length: int) -> str:
    return (BROWSER + " " + "a" * length)[:length]


def test_an_agent_of_512_characters_is_judged_and_one_of_513_is_a_bot(pipeline, clock, ingest_handler):
    client = Client(ingest_handler)
    judged = event(clock)
    assert client.post(EVENTS, judged, agent=long_agent(MAX_AGENT_CHARS))[1] == {
        "status": "accepted",
        "duplicate": False,
    }
    refused = event(clock)
    status, answer, _ = client.post(EVENTS, refused, agent=long_agent(MAX_AGENT_CHARS + 1))
    assert (status, answer) == (202, {"status": "ignored", "reason": "bot"})
    assert counted_views(pipeline, judged["entity_id"]) == 1
    assert counted_views(pipeline, refused["entity_id"]) == 0


@pytest.mark.parametrize("length", [MAX_AGENT_CHARS + 1, 2048, 8192])
def test_a_long_forwarded_agent_makes_a_backends_batch_a_bots(pipeline, clock, ingest_handler, length):
    client = Client(ingest_handler)
    events = [event(clock) for _ in range(3)]
    headers = {"authorization": f"Bearer {SERVER_KEY}", "x-client-user-agent": long_agent(length)}
    status, answer, _ = client.post(BATCH, {"events": events}, agent="site-backend/1.0", headers=headers)
    assert (status, answer) == (202, {"accepted": 0, "duplicates": 0, "ignored": 3, "rejected": []})
    assert all(counted_views(pipeline, e["entity_id"]) == 0 for e in events)


def test_a_long_agent_with_a_crawler_name_past_512_is_still_a_bot(pipeline, clock, ingest_handler):
    # the limit is not a truncation: what follows character 512 cannot make a long agent a browser's
    agent = long_agent(600)
    assert Client(ingest_handler).post(EVENTS, event(clock), agent=agent)[1]["reason"] == "bot"


# --- origins: a foreign Origin is a 403 that counts nothing -------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        SITE,
        "HTTPS://WWW.EXAMPLE.COM",  # scheme and host compare without case
        "https://www.example.com:443",  # the default port is the same origin
        "http://localhost:8080",
    ],
)
def test_the_sites_origins_and_no_origin_are_counted(guarded, clock, origin):
    assert guarded.post(EVENTS, event(clock), headers={"origin": origin})[0] == 202
    assert guarded.post(EVENTS, event(clock))[0] == 202  # no Origin: a backend, curl


@pytest.mark.parametrize(
    "origin",
    [
        FOREIGN,
        "http://www.example.com",  # another scheme is another origin
        "https://www.example.com:8443",
        "https://example.com",
        "https://www.example.com.evil.example",
        "http://localhost:8081",
        "null",  # a sandboxed frame, a file: no origin at all is not the site
        "",
        "https://www.example.com/path",
    ],
)
def test_a_foreign_origin_is_forbidden_and_counts_nothing(guarded, pipeline, clock, origin):
    one = event(clock)
    status, answer, _ = guarded.post(EVENTS, one, headers={"origin": origin})
    assert (status, answer) == (403, {"status": "forbidden"})
    batch = [event(clock) for _ in range(3)]
    assert guarded.post(BATCH, {"events": batch}, headers={"origin": origin})[:2] == (
        403,
        {"status": "forbidden"},
    )
    for sent in (one, *batch):
        assert counted_views(pipeline, sent["entity_id"]) == 0
    # nothing was marked either: the same ids from the site count
    assert guarded.post(EVENTS, one, headers={"origin": SITE})[1] == {
        "status": "accepted",
        "duplicate": False,
    }


def test_without_allowed_origins_any_origin_is_judged_as_before(pipeline, clock, ingest_handler):
    assert Client(ingest_handler).post(EVENTS, event(clock), headers={"origin": FOREIGN})[0] == 202


def test_the_checks_run_in_the_contracts_order(guarded, clock):
    foreign = {"origin": FOREIGN}
    # size (413) before the origin
    huge = {"events": [event(clock, padding="x" * 70_000)]}
    assert guarded.post(BATCH, huge, headers=foreign)[0] == 413
    # the server key (401) before the origin
    bad_key = {**foreign, "authorization": "Bearer not-a-configured-key-0000"}
    assert guarded.post(EVENTS, event(clock), headers=bad_key)[0] == 401
    # the origin (403) before the body's shape (400) and the agent (a bot's 202)
    assert guarded.post(EVENTS, b"{not json", headers=foreign)[0] == 403
    assert guarded.post(EVENTS, event(clock), agent="Googlebot/2.1", headers=foreign)[0] == 403
    # a trusted backend that names a foreign origin is refused too
    key = {**foreign, "authorization": f"Bearer {SERVER_KEY}"}
    assert guarded.post(EVENTS, event(clock), headers=key)[0] == 403


def test_cors_admits_only_the_allowed_origins_when_they_are_set():
    from analytics_pipeline.http import new_resolver
    from aws_lambda_powertools.event_handler import Response

    app = new_resolver("*", origins=(SITE, "http://localhost:8080"))

    @app.post(EVENTS)
    def post() -> Response[Any]:
        return Response(202, "application/json", "{}")

    def preflight(origin: str) -> dict[str, str]:
        headers = {"origin": origin, "access-control-request-method": "POST"}
        return app.resolve(http_event("OPTIONS", EVENTS, headers=headers), None).get("headers") or {}

    assert preflight(SITE)["Access-Control-Allow-Origin"] == SITE
    assert preflight("http://localhost:8080")["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "Access-Control-Allow-Origin" not in preflight(FOREIGN)


# --- entity ids: one form per type, UUIDs lower-cased at ingest and in the read paths -----------------


def test_a_movie_sent_in_upper_case_is_the_lower_case_movie(pipeline, ingest_handler, clock):
    client = Client(ingest_handler)
    upper, mixed = MOVIE.upper(), "0D6c7A4e-8A52-4f7E-B2c1-3B9d2F5e6A70"
    for entity_id in (upper, mixed, MOVIE):
        assert client.post(EVENTS, event(clock, entity_id=entity_id))[0] == 202
    assert counted_views(pipeline, MOVIE) == 3
    assert ("jav", "movie", upper, None) not in pipeline.mongo_state()[TOTALS]
    get = load_handler("query")
    for path_id in (MOVIE, upper, mixed):
        answer = get(http_event("GET", f"{API}/jav/movie/{path_id}/totals"), None)
        assert (answer["statusCode"], response_json(answer)["views"]) == (200, 3)
    series = get(
        http_event(
            "GET",
            f"{API}/jav/movie/{upper}/series",
            query={"bucket": "day", "from": "2026-03-01", "to": "2026-03-01"},
        ),
        None,
    )
    assert response_json(series)["points"][0]["views"] == 3


@pytest.mark.parametrize(
    ("entity_type", "entity_id"),
    [
        ("movie", "NEWB-0001"),
        ("movie", "m1"),
        ("movie", "17"),
        ("movie", MOVIE.replace("-", "")),
        ("actor", "A_b-9"),
        ("tag", "017"),
        ("tag", "tag-1"),
        ("provider", "a.b"),
    ],
)
def test_an_id_in_another_form_is_a_400_on_entity_id_and_a_rejected_entry(
    pipeline, ingest_handler, clock, entity_type, entity_id
):
    client = Client(ingest_handler)
    bad = event(clock, entity_type=entity_type, entity_id=entity_id)
    status, answer, _ = client.post(EVENTS, bad)
    assert (status, [e["field"] for e in answer["errors"]]) == (400, ["entity_id"])
    good = event(clock)
    status, answer, _ = client.post(BATCH, {"events": [bad, good]})
    assert (status, answer["accepted"], [r["index"] for r in answer["rejected"]]) == (202, 1, [0])
    assert answer["rejected"][0]["errors"][0]["field"] == "entity_id"
    get = load_handler("query")
    read = get(http_event("GET", f"{API}/jav/{entity_type}/{entity_id}/totals"), None)
    assert (read["statusCode"], response_json(read)["errors"][0]["field"]) == (400, "entity_id")


def test_each_type_counts_its_own_form(pipeline, ingest_handler, clock):
    client = Client(ingest_handler)
    for entity_type, entity_id in (("actor", MOVIE.upper()), ("tag", "42"), ("provider", "Acme_2")):
        assert client.post(EVENTS, event(clock, entity_type=entity_type, entity_id=entity_id))[0] == 202
    assert counted_views(pipeline, MOVIE, "actor") == 1
    assert counted_views(pipeline, "42", "tag") == 1
    assert counted_views(pipeline, "Acme_2", "provider") == 1


# --- over HTTP: `anl serve`'s app on a port --------------------------------------------------------------


@pytest.fixture
def served(make_container, rollups):
    make_container(overrides={"rollups": rollups}, ALLOWED_ORIGINS=SITE)
    from anl.serve import Scheduler

    server = LiveServer(Scheduler(every_s=3600))
    yield server
    server.close()


def http(server: LiveServer, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    for name, value in {"Content-Type": "application/json", "User-Agent": BROWSER, **headers}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_over_http_origins_agents_and_id_case_hold(served, clock):
    assert http(served, "POST", EVENTS, event(clock), Origin=FOREIGN) == (403, {"status": "forbidden"})
    long = http(served, "POST", EVENTS, event(clock), **{"User-Agent": long_agent(2048)})
    assert long == (202, {"status": "ignored", "reason": "bot"})
    movie = str(uuid.uuid4())
    assert http(served, "POST", EVENTS, event(clock, entity_id=movie.upper()), Origin=SITE)[0] == 202
    bad = http(served, "POST", EVENTS, event(clock, entity_id="NEWB-0001"), Origin=SITE)
    assert (bad[0], bad[1]["errors"][0]["field"]) == (400, "entity_id")
    served.flush()
    status, totals = http(served, "GET", f"{API}/jav/movie/{movie.upper()}/totals")
    assert (status, totals["views"]) == (200, 1)
    assert http(served, "GET", f"{API}/jav/movie/NEWB-0001/totals")[0] == 400


def test_over_http_a_stopped_read_answers_503_and_admin_answers_are_not_stored(make_container, mongo_db):
    stopped = ExecutionTimeout("operation exceeded time limit", 50)
    rollups = MongoRollupStore(Recording(mongo_db, stopped), serialize=True)
    make_container(overrides={"rollups": rollups})
    from anl.serve import Scheduler

    server = LiveServer(Scheduler(every_s=3600))
    try:
        request = urllib.request.Request(f"{server.url}{API}/jav/movie/top?from=2026-01-01&to=2026-12-31")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 503
        assert json.loads(refused.value.read()) == {"status": "unavailable"}
        assert int(refused.value.headers["Retry-After"]) >= 1
        with urllib.request.urlopen(f"{server.url}{API}/status", timeout=30) as response:
            assert response.headers["Cache-Control"] == "private, no-store"
    finally:
        server.close()


# --- reads: a time limit at the store, 503 with Retry-After -------------------------------------------


class Recording:
    """A database whose collections record the keyword arguments of every read, or raise a fault."""

    def __init__(self, db: Any, fault: Exception | None = None) -> None:
        self._db, self.fault = db, fault
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.arguments: list[tuple[Any, ...]] = []

    def __getitem__(self, name: str) -> Any:
        return _Collection(self, self._db[name], name)


class _Collection:
    def __init__(self, owner: Recording, real: Any, name: str) -> None:
        self._owner, self._real, self._name = owner, real, name

    def __getattr__(self, attr: str) -> Any:
        real = getattr(self._real, attr)
        if attr not in ("find", "find_one", "aggregate"):
            return real

        def read(*args: Any, **kwargs: Any) -> Any:
            self._owner.calls.append((self._name, attr, kwargs))
            self._owner.arguments.append(args)
            if self._owner.fault is not None:
                raise self._owner.fault
            return real(*args, **kwargs)

        return read


READS = [
    (f"{API}/jav/movie/{MOVIE}/totals", {}),
    (f"{API}/jav/movie/top", {}),
    (f"{API}/jav/movie/top", {"counter": "ratings_avg"}),
    (f"{API}/jav/movie/top", {"from": "2026-01-01", "to": "2026-03-31"}),
    (f"{API}/jav/movie/{MOVIE}/series", {"bucket": "day", "from": "2026-01-01", "to": "2026-01-31"}),
    (f"{API}/jav/movie/series", {"bucket": "month", "from": "2026-01-01", "to": "2026-12-31"}),
]


@pytest.mark.parametrize(("path", "query"), READS)
def test_every_read_passes_the_time_limit_to_the_store(make_container, mongo_db, path, query):
    recording = Recording(mongo_db)
    make_container(
        overrides={"rollups": MongoRollupStore(recording, serialize=True)}, QUERY_TIME_LIMIT_MS="1234"
    )
    answer = load_handler("query")(http_event("GET", path, query=query), None)
    assert answer["statusCode"] == 200
    assert recording.calls
    for _, method, kwargs in recording.calls:
        limit = kwargs.get("maxTimeMS") if method == "aggregate" else kwargs.get("max_time_ms")
        assert limit == 1234, (method, kwargs)


@pytest.mark.parametrize(("path", "query"), READS)
def test_a_read_stopped_at_its_time_limit_answers_503_with_retry_after(make_container, mongo_db, path, query):
    stopped = ExecutionTimeout("operation exceeded time limit", 50)
    make_container(overrides={"rollups": MongoRollupStore(Recording(mongo_db, stopped), serialize=True)})
    answer = load_handler("query")(http_event("GET", path, query=query), None)
    assert (answer["statusCode"], response_json(answer)) == (503, {"status": "unavailable"})
    assert int(answer["headers"]["Retry-After"]) >= 1


def test_the_flush_and_parity_reads_are_not_time_limited(make_container, mongo_db, clock):
    recording = Recording(mongo_db)
    pipeline = Pipeline(make_container, MongoRollupStore(recording, serialize=True), clock)
    pipeline.count([counted("e1", MOVIE, "2026-03-01")])
    pipeline.flush()
    movie = Entity("jav", "movie", MOVIE)
    # what the flush, the watchdog and parity read: never stopped half-way by the query's limit
    pipeline.container.rollups.totals([movie])
    pipeline.container.rollups.bucket_sums("day", [movie])
    list(pipeline.container.rollups.iter_totals("jav", "movie", 10))
    assert len(recording.calls) >= 4
    assert all("max_time_ms" not in kwargs and "maxTimeMS" not in kwargs for _, _, kwargs in recording.calls)


def test_a_ranking_of_whole_months_reads_the_monthly_rollups_and_answers_as_the_days_do(
    make_container, mongo_db, clock
):
    recording = Recording(mongo_db)
    pipeline = Pipeline(make_container, MongoRollupStore(recording, serialize=True), clock)
    movies = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 6)]
    days = ["2025-12-31", "2026-01-01", "2026-01-15", "2026-02-28", "2026-03-01", "2026-03-02", "2026-04-01"]
    events = [
        counted(f"{m}-{d}-{k}", m, d, action)
        for i, m in enumerate(movies)
        for j, d in enumerate(days)
        for k, action in enumerate(["view"] * ((i * 3 + j * 5) % 4 + 1) + ["download"] * (i % 2))
    ]
    pipeline.count(events)
    pipeline.flush()
    get = load_handler("query")

    def top(first: str, last: str, counter: str = "views") -> list[tuple[str, int]]:
        recording.calls.clear()
        recording.arguments.clear()
        query = {"from": first, "to": last, "counter": counter, "limit": "100"}
        answer = response_json(get(http_event("GET", f"{API}/jav/movie/top", query=query), None))
        return [(item["entity_id"], item[counter]) for item in answer["items"]]

    def by_days(first: str, last: str, counter: str = "views") -> list[tuple[str, int]]:
        sums: dict[str, int] = {}
        for e in events:
            if first <= e.day <= last:
                sums[e.entity_id] = sums.get(e.entity_id, 0) + dict(e.increments).get(counter, 0)
        ranked = sorted(((m, n) for m, n in sums.items()), key=lambda item: (-item[1], item[0]))
        return ranked

    for first, last in (
        ("2026-01-01", "2026-03-31"),  # whole months only
        ("2025-12-31", "2026-03-01"),  # an edge day either side
        ("2026-01-02", "2026-02-27"),  # no whole month: the days alone
        ("2025-12-01", "2026-04-30"),
    ):
        for counter in ("views", "downloads"):
            assert top(first, last, counter) == by_days(first, last, counter), (first, last, counter)
    top("2025-12-31", "2026-03-31")
    [(collection, method, _)] = recording.calls
    assert (collection, method) == (DAILY, "aggregate")  # one aggregation: the months by $unionWith
    [(stages,)] = recording.arguments
    unions = [stage["$unionWith"] for stage in stages if "$unionWith" in stage]
    assert [u["coll"] for u in unions] == [MONTHLY]
    assert unions[0]["pipeline"][0]["$match"]["month"] == {"$gte": "2026-01", "$lte": "2026-03"}
    assert stages[0]["$match"]["$or"] == [{"date": {"$gte": "2025-12-31", "$lte": "2025-12-31"}}]
    top("2026-01-02", "2026-02-27")
    assert not any("$unionWith" in stage for stage in recording.arguments[0][0])


def test_admin_answers_are_private_and_no_store(pipeline):
    get = load_handler("query")
    for path, query in [*READS, (f"{API}/status", {})]:
        answer = get(http_event("GET", path, query=query), None)
        assert answer["headers"]["Cache-Control"] == "private, no-store", path


# --- what an operator finds: counts kept under an upper-case id, a site with upper-case uuids ---------


@pytest.fixture
def site(make_container, rollups, clock, legacy) -> Pipeline:
    return Pipeline(make_container, rollups, clock, legacy)


def test_a_site_whose_uuids_are_upper_case_is_matched(site, legacy, clock):
    upper = str(uuid.uuid4()).upper()
    mixed = "0D6c7A4e-8A52-4f7E-B2c1-3B9d2F5e6A70"
    legacy.insert([(upper, 100, 7), (mixed, 50, 0)])
    legacy.execute(f"UPDATE `{legacy.name}` SET title = 'NEWB-0001' WHERE uuid = %s", (upper,))
    report = site.container.backfill().run()
    assert (report.read, report.seeded, report.skipped_invalid_uuid) == (2, 2, 0)
    site.count([counted("a", upper.lower(), "2026-03-01"), counted("b", mixed.lower(), "2026-03-01")])
    site.flush()
    assert legacy.counts() == {upper: (101, 7), mixed: (51, 0)}
    totals = site.mongo_state()[TOTALS]
    assert totals[("jav", "movie", upper.lower(), None)]["views"] == 101
    assert all(key[2] == key[2].lower() for key in totals)
    assert site.container.parity().run().ok
    for env in ({}, {"MYSQL_READ_URL": legacy.url}):  # the writers' replica, and a read login's store
        reader = site.build(MYSQL_LABEL_COLUMN="title", **env).site
        assert (
            reader is not None and reader.facts("movie", [upper.lower()])[upper.lower()].label == "NEWB-0001"
        )


def test_parity_names_the_counts_kept_under_an_upper_case_id(site, legacy, clock, capsys):
    kept = str(uuid.uuid4())
    legacy.insert([(kept, 10, 0)])
    # counted before ids were lower-cased: the hot store takes what it is given
    site.count([counted("a", kept, "2026-03-01"), counted("b", kept.upper(), "2026-03-01")])
    site.flush()
    report = site.container.parity().run()
    assert report.malformed_ids == [kept.upper()]
    assert report.exit_status == 1
    assert cli.main(["parity"]) == 1
    assert f"MALFORMED ID {kept.upper()}" in capsys.readouterr().out
    assert cli.main(["parity", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["malformed_ids"] == [kept.upper()]


READ_GRANT = re.compile(r"^GRANT .+ ON site\.(\w+) TO 'analytics_read'@'%';$", re.MULTILINE)


def test_the_documented_read_login_labels_a_ranking_and_can_change_nothing(site, legacy, mysql_schema):
    from tests.integration.test_mysql_grants import ROOT as REPO
    from tests.integration.test_mysql_grants import as_root

    grants = READ_GRANT.findall((REPO / "docs" / "deploying.md").read_text())
    assert grants[0] == "jav"  # and the site's own tables the labels and state figures read
    user, password = f"r{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    schema = mysql_schema["database"]
    as_root(
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"
        f" GRANT SELECT ON `{schema}`.`{legacy.name}` TO '{user}'@'127.0.0.1';"
    )
    try:
        movie = str(uuid.uuid4())
        legacy.insert([(movie.upper(), 5, 0)])
        legacy.execute(f"UPDATE `{legacy.name}` SET title = 'NEWB-0001'")
        site.count([counted("a", movie, "2026-03-01")])
        site.flush()
        p = mysql_schema
        read_url = f"mysql://{user}:{password}@{p['host']}:{p['port']}/{schema}"
        # the writers' URL names no server here: the labels can only come through the read login
        unreachable = "mysql://nobody:nothing@127.0.0.1:9/nodb"
        site.build(MYSQL_READ_URL=read_url, MYSQL_URL=unreachable, MYSQL_LABEL_COLUMN="title")
        answer = load_handler("query")(http_event("GET", f"{API}/jav/movie/top"), None)
        assert [(i["entity_id"], i["label"]) for i in response_json(answer)["items"]] == [
            (movie, "NEWB-0001")
        ]
        reader = pymysql.connect(
            host=p["host"], port=p["port"], user=user, password=password, database=schema
        )
        with pytest.raises(pymysql.MySQLError), reader.cursor() as cur:
            cur.execute(f"UPDATE `{legacy.name}` SET views = 0")
        reader.close()
    finally:
        as_root(f"DROP USER IF EXISTS '{user}'@'127.0.0.1';")


def test_a_query_function_given_the_read_uri_reads_with_it_and_cannot_write(make_container):
    from analytics_pipeline.errors import ConfigurationError

    uri = "mongodb://reader:pw@read-replica.invalid:27017/"
    container = make_container(MONGODB_READ_URI=uri, QUERY_TIME_LIMIT_MS="750")
    reader = container.read_rollups
    assert isinstance(reader, MongoRollupStore) and reader._limit_ms == 750
    servers = reader._db.client.topology_description.server_descriptions()
    assert set(servers) == {("read-replica.invalid", 27017)}  # a client of its own, on the read URI
    reader._db.client.close()
    with pytest.raises(ConfigurationError, match="MONGODB_URI"):
        _ = container.rollups  # no writer's login: nothing to write with
