"""Store figures: MongoDB calls per flush batch (counted, never timed) and MySQL rows/s.

MongoDB calls are counted on what the flush sends: with MONGODB_URI set, a pymongo CommandListener
sees every command the server receives (`find` and `getMore` apart); without it, the rollup adapter
runs on the embedded emulation through a wrapper that counts each collection method called. The
emulation is never timed: its writes cost time in proportion to the collection's size.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from anl import servers
from common import (
    BATCH_SIZE,
    Events,
    PrivateRedis,
    Row,
    Schema,
    install_container,
    load_function,
    movie_ids,
    new_container,
    send,
    settings_env,
    spread,
)

TARGET_WRITE_ROWS_S = 50_000
PREFIX = "analytics_entity_"  # of the rollup collections' names: left out of the table


def short(collection: str) -> str:
    """A collection's name in the tables: daily, totals, ..., site_series."""
    return collection.removeprefix(PREFIX).removeprefix("analytics_")


class CountingDatabase:
    """A database whose collections count each method called, as (collection, method)."""

    def __init__(self, database: Any, calls: Counter[str]) -> None:
        self._db, self._calls = database, calls

    def __getitem__(self, name: str) -> Any:
        return _CountingCollection(self._db[name], name, self._calls)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class _CountingCollection:
    def __init__(self, collection: Any, name: str, calls: Counter[str]) -> None:
        self._collection, self._name, self._calls = collection, name, calls

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._collection, attr)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[f"{attr} {short(self._name)}"] += 1
            return value(*args, **kwargs)

        return counted


def mongo_counter(uri: str | None, database: str) -> tuple[Counter[str], dict[str, Any]]:
    """The calls counter and the container overrides that make the flush's MongoDB calls count."""
    calls: Counter[str] = Counter()
    if uri:
        from pymongo import monitoring

        class Listener(monitoring.CommandListener):
            def started(self, event: Any) -> None:
                name = "collection" if event.command_name == "getMore" else event.command_name
                target = event.command.get(name)
                if isinstance(target, str) and target.startswith("analytics_"):  # not hello, auth, ...
                    calls[f"{event.command_name} {short(target)}"] += 1

            def succeeded(self, event: Any) -> None: ...

            def failed(self, event: Any) -> None: ...

        monitoring.register(Listener())  # every client made afterwards, the container's included
        return calls, {}
    import warnings

    import mongomock_ng
    from analytics_pipeline.adapters.mongo_rollups import MongoRollupStore

    warnings.filterwarnings("ignore", message="'batch_size' is accepted", category=UserWarning)
    db = CountingDatabase(mongomock_ng.MongoClient()[database], calls)
    return calls, {"rollups": MongoRollupStore(db, serialize=True)}


def mongo_calls(mysql_url: str, mongodb_uri: str | None, scratch: Path, batch_sizes: tuple[int, ...]) -> dict:
    """MongoDB calls of one flushed batch of N movies (each with a `jav` row), into new documents,
    then again into the same documents; the flush runs as its Lambda function does."""
    server = "MongoDB (MONGODB_URI)" if mongodb_uri else "embedded emulation, counted"
    out: dict[str, Any] = {"server": server, "sizes": {}, "problems": []}
    schema = Schema(mysql_url)
    handler = load_function("ingest")
    try:
        for n in batch_sizes:
            uuids = movie_ids(n, seed=n)
            schema.create_jav(uuids)
            database = f"anl_bench_{os.getpid()}_{n}"
            calls, overrides = mongo_counter(mongodb_uri, database)
            with PrivateRedis() as server:
                env = settings_env(
                    server.url, "benchmg", scratch, MYSQL_URL=schema.url, FLUSH_BATCH_SIZE=str(n)
                )
                if mongodb_uri:
                    env |= {"MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database}
                container = install_container(env, **overrides)
                events = Events(uuids)
                container.flush.prepare()
                out["prepare"] = dict(calls)
                result: dict[str, Any] = {}
                for label in ("new documents", "documents and baselines exist"):
                    bad = send(handler, events.batches(max(1, n // BATCH_SIZE)), BATCH_SIZE)
                    calls.clear()
                    report = container.flush.run()
                    result[label] = {
                        "calls": dict(sorted(calls.items())),
                        "total": sum(calls.values()),
                        "report": (report.batches, report.entities, report.mysql_written, report.errors),
                    }
                    if bad or result[label]["report"] != (1, n, n, []):
                        out["problems"].append(
                            f"{n} movies, {label}: {bad} answers not accepted; flush (batches, "
                            f"entities, rows written, errors) {result[label]['report']}"
                        )
                out["sizes"][n] = result
            if mongodb_uri:
                import pymongo

                pymongo.MongoClient(mongodb_uri).drop_database(database)
    finally:
        schema.drop()
    return out


# the write_totals of other commits, timed beside today's in the same rounds (benchmarks/v1.py)
BEFORE = "6f82a10"  # the commit this week's work started from: the last sync and the read-back
V1 = "d62612f"  # layout v1: no last sync, no read-back (the 133,557 rows/s of the first release)
LOCKED = "f10b073"  # the locking read and one UPDATE per chunk, the chunks one after the other
SERIAL = "today, one connection"  # today's statements, the chunks one after the other (writers=1)
EARLIER = (
    (LOCKED, "locking read, one connection"),
    (BEFORE, "last sync and read-back"),
    (V1, "v1: the columns only"),
)


def earlier_replica(rev: str, url: str, **names: Any) -> Any:
    """`rev`'s MySqlReplicaStore, its module loaded from that commit's tree under a name of its own
    (it imports today's ports and rollups, which still hold what it uses). A commit where the adapter
    is a package (`adapters/mysql_replica/`) has its modules loaded under that name too, their imports
    of one another renamed to it."""
    import importlib.abc
    import importlib.util
    import sys

    import v1

    adapters = v1.checkout(rev) / "layers/shared/analytics_pipeline/adapters"
    name = f"bench_mysql_replica_{rev}"
    module = sys.modules.get(name)
    if module is None:
        package = adapters / "mysql_replica"
        if not package.is_dir():
            spec = importlib.util.spec_from_file_location(name, adapters / "mysql_replica.py")
        else:

            class Renamed(importlib.machinery.SourceFileLoader):
                def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> Any:  # type: ignore[override]
                    text = bytes(data).decode().replace("analytics_pipeline.adapters.mysql_replica", name)
                    return compile(text, path, "exec", dont_inherit=True)

            class Finder(importlib.abc.MetaPathFinder):
                def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
                    if not fullname.startswith(name + "."):
                        return None
                    file = package / (fullname.rsplit(".", 1)[1] + ".py")
                    return importlib.util.spec_from_file_location(
                        fullname, file, loader=Renamed(fullname, str(file))
                    )

            sys.meta_path.insert(0, Finder())
            init = str(package / "__init__.py")
            spec = importlib.util.spec_from_file_location(
                name, init, loader=Renamed(name, init), submodule_search_locations=[str(package)]
            )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module.MySqlReplicaStore.from_url(url, **names)


def mysql_rates(mysql_url: str, scratch: Path, rows: int, rounds: int) -> dict[str, Any]:
    """write_totals and capture_baselines of `rows` movies on a `jav` table of as many rows, each
    round with a baseline table of its own; every write raises every row. In each round the
    write_totals of BEFORE and of V1 run too, in turn (the order rotating), on the same table."""
    schema = Schema(mysql_url)
    uuids = movie_ids(rows, seed=11)
    schema.create_jav(uuids)
    write, unchanged, capture, again_rates, problems = [], [], [], [], []
    earlier: dict[str, list[float]] = {SERIAL: [], LOCKED: [], BEFORE: [], V1: []}
    value = 1_000_000
    try:
        for r in range(rounds):
            env = settings_env("redis://127.0.0.1:1/0", "benchmy", scratch)
            replica = new_container(
                env | {"MYSQL_URL": schema.url, "MYSQL_BASELINE_TABLE": f"bl_{r}"}
            ).replica
            replica.ensure_schema()
            from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore

            others = {
                SERIAL: MySqlReplicaStore.from_url(
                    schema.url, baseline_table=f"bls_{r}", state_table=f"sts_{r}", writers=1
                ),
                LOCKED: earlier_replica(
                    LOCKED, schema.url, baseline_table=f"bll_{r}", state_table=f"stl_{r}"
                ),
                BEFORE: earlier_replica(
                    BEFORE, schema.url, baseline_table=f"blb_{r}", state_table=f"stb_{r}"
                ),
                V1: earlier_replica(V1, schema.url),
            }
            for name in (SERIAL, LOCKED, BEFORE):
                others[name].ensure_schema()
                others[name].capture_baselines(uuids)
            t0 = time.perf_counter()
            captured = replica.capture_baselines(uuids)
            t1 = time.perf_counter()
            replica.capture_baselines(uuids)
            t2 = time.perf_counter()
            runs = ["today", *others]
            runs = runs[r % len(runs) :] + runs[: r % len(runs)]
            for run in runs:
                value += 1  # above every earlier value
                totals = [(u, value, value // 100) for u in uuids]
                if run == "today":
                    t3 = time.perf_counter()
                    first = replica.write_totals(totals)
                    t4 = time.perf_counter()
                    again = replica.write_totals(totals)  # the same values: GREATEST keeps each row
                    t5 = time.perf_counter()
                    found = (len(first.changed), len(first.missing), len(again.changed), len(again.missing))
                    if (len(captured), *found) != (rows, rows, 0, 0, 0):
                        problems.append(
                            f"round {r}: baselines, changed, missing, changed again, missing again:"
                            f" {(len(captured), *found)}"
                        )
                    write.append(rows / (t4 - t3))
                    unchanged.append(rows / (t5 - t4))
                else:
                    started = time.perf_counter()
                    others[run].write_totals(totals)
                    earlier[run].append(rows / (time.perf_counter() - started))
            capture.append(rows / (t1 - t0))
            again_rates.append(rows / (t2 - t1))
        sums = schema.execute("SELECT SUM(views), SUM(downloads), COUNT(*) FROM jav")[0]
        expected = (rows * value, rows * (value // 100), rows)
        if tuple(int(v) for v in sums) != expected:
            problems.append(f"jav sums {sums}, expected {expected}")
    finally:
        schema.drop()
    server_cpu = mysql_server_cpu(rows, rounds)
    return {
        "server_cpu": server_cpu,
        "rows": rows,
        "write": write,
        "unchanged": unchanged,
        "capture": capture,
        "again": again_rates,
        "earlier": earlier,
        "problems": problems,
    }


class PrivateMariaDB:
    """A throw-away mariadbd on a free port in a temporary directory: its process CPU time is this
    benchmark's alone, which the shared server's (other users' tests) is not."""

    def __enter__(self) -> PrivateMariaDB:
        import pymysql

        self._dir = tempfile.TemporaryDirectory(prefix="anl-bench-mariadb-")
        data, sock = Path(self._dir.name) / "data", Path(self._dir.name) / "sock"
        install = [shutil.which("mariadb-install-db") or "mariadb-install-db", "--no-defaults"]
        install += [f"--datadir={data}", "--user=root", "--auth-root-authentication-method=normal"]
        subprocess.run([*install, "--skip-test-db"], check=True, capture_output=True, timeout=300)
        self.port = servers.free_port()
        command = [shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}"]
        command += ["--user=root", f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={sock}"]
        command += ["--skip-log-error", "--innodb-buffer-pool-size=256M"]
        # the shared server's (and the site's) character set: a latin1 `jav` would compare its uuids
        # with the baseline table's utf8mb4 ones through a conversion
        command += ["--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"]
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                root = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
                break
            except pymysql.MySQLError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("the private mariadbd did not start") from None
                time.sleep(0.2)
        with root.cursor() as cur:
            cur.execute("CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY 'bench'")
            cur.execute("GRANT ALL ON *.* TO 'bench'@'127.0.0.1'")
        root.close()
        self.url = f"mysql://bench:bench@127.0.0.1:{self.port}"
        return self

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._dir.cleanup()


def mysql_server_cpu(rows: int, rounds: int) -> dict[str, Any]:
    """MariaDB's own CPU time for write_totals of `rows` movies (every row raised), today's and the
    earlier commits' in turn, on a private mariadbd; with the client process's CPU beside it."""
    if not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()) or not shutil.which(
        "mariadb-install-db"
    ):
        return {"skipped": "mariadbd or mariadb-install-db not found"}
    found: dict[str, list[tuple[float, float]]] = {"today": [], SERIAL: [], LOCKED: [], BEFORE: [], V1: []}
    with PrivateMariaDB() as server:
        schema = Schema(server.url)
        uuids = movie_ids(rows, seed=12)
        schema.create_jav(uuids)
        from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore

        writers = {
            "today": MySqlReplicaStore.from_url(
                schema.url, baseline_table="bl_today", state_table="st_today"
            ),
            SERIAL: MySqlReplicaStore.from_url(
                schema.url, baseline_table="bl_serial", state_table="st_serial", writers=1
            ),
            LOCKED: earlier_replica(LOCKED, schema.url, baseline_table="bl_locked", state_table="st_locked"),
            BEFORE: earlier_replica(BEFORE, schema.url, baseline_table="bl_before", state_table="st_before"),
            V1: earlier_replica(V1, schema.url),
        }
        for name in ("today", SERIAL, LOCKED, BEFORE):
            writers[name].ensure_schema()
            writers[name].capture_baselines(uuids)
        value = 1_000
        try:
            for r in range(rounds):
                order = list(writers) if r % 2 == 0 else list(writers)[::-1]
                for name in order:
                    value += 1
                    totals = [(u, value, value // 10) for u in uuids]
                    server0, client0 = server.cpu_seconds(), time.process_time()
                    writers[name].write_totals(totals)
                    found[name].append((server.cpu_seconds() - server0, time.process_time() - client0))
        finally:
            schema.drop()
    return {"rows": rows, "cpu": found}


def mongo_rows(mongo: dict[str, Any]) -> list[Row]:
    out, sizes = [], mongo["sizes"]
    for n, result in sizes.items():
        for label, r in result.items():
            detail = ", ".join(f"{k} {v}" for k, v in r["calls"].items())
            out.append(
                Row(f"MongoDB calls, one flush batch of {n} movies, {label}", f"{r['total']} = {detail}")
            )
    labels = list(next(iter(sizes.values())))
    totals = {label: [sizes[n][label]["total"] for n in sizes] for label in labels}
    measured = "; ".join(f"{label}: " + " vs ".join(map(str, t)) for label, t in totals.items())
    constant = all(len(set(t)) == 1 for t in totals.values())
    figure = f"MongoDB calls per flush batch, {' vs '.join(map(str, sizes))} movies"
    out.append(Row(figure, measured, "the same for any size", constant))
    prepare = ", ".join(f"{k} {v}" for k, v in mongo["prepare"].items())
    out.append(Row("MongoDB calls once per container (prepare)", prepare))
    return out


def mysql_rows(mysql: dict[str, Any]) -> list[Row]:
    # An absolute rate: load from the machine's other users only slows a round down, so the target
    # is judged on the fastest round, the least disturbed one; the median is shown beside it.
    met = max(mysql["write"]) >= TARGET_WRITE_ROWS_S
    target = f">= {TARGET_WRITE_ROWS_S:,} rows/s (fastest round)"
    return [
        Row(
            f"MySQL write_totals, {mysql['rows']:,} movies (every row raised)",
            rate(mysql["write"]),
            target,
            met,
        ),
        Row("MySQL write_totals, values unchanged", rate(mysql["unchanged"])),
        *(
            Row(
                f"MySQL write_totals, every row raised: today / {rev} ({what}), side by side",
                f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x);"
                f" {rev} fastest {max(rates):,.0f} rows/s",
            )
            for rev, what in ((SERIAL, "the chunks one after the other"), *EARLIER)
            if (rates := mysql["earlier"].get(rev))
            and (ratios := [a / b for a, b in zip(mysql["write"], rates, strict=True)])
        ),
        *server_cpu_rows(mysql.get("server_cpu", {})),
        Row("MySQL capture_baselines, first capture", rate(mysql["capture"])),
        Row("MySQL capture_baselines, already captured", rate(mysql["again"])),
    ]


def rate(values: list[float]) -> str:
    return f"fastest {max(values):,.0f} rows/s; median {spread(values, ',.0f')}"


def server_cpu_rows(found: dict[str, Any]) -> list[Row]:
    if "cpu" not in found:
        return [
            Row("MariaDB CPU per write_totals (private mariadbd)", f"not measured: {found.get('skipped')}")
        ]
    cpu, rows = found["cpu"], found["rows"]

    def per_row(name: str, which: int) -> float:  # the mean: a clock tick is 1 µs a row in one round
        return statistics.mean(c[which] for c in cpu[name]) * 1e6 / rows

    names = [name for name in ("today", SERIAL, LOCKED, BEFORE, V1) if cpu.get(name)]

    out = [
        Row(
            f"MariaDB CPU / client CPU per row written, private mariadbd ({rows:,} rows, every row raised):"
            f" {'; '.join(names)}",
            "; ".join(f"{per_row(n, 0):.1f} / {per_row(n, 1):.1f} µs" for n in names),
        )
    ]
    for rev in names[1:]:
        ratios = [(a[0] + a[1]) / (b[0] + b[1]) for a, b in zip(cpu["today"], cpu[rev], strict=True)]
        out.append(
            Row(
                f"MariaDB + client CPU per write_totals, today / {rev}, side by side",
                f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)",
            )
        )
    return out
