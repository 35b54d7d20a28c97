#!/usr/bin/env python3
"""Checks sigstage's ClickHouse SQL against the newest ClickHouse engine, in process (chdb).

What `sigstage migrate` and the sink send, on a fresh database in a temporary folder:

1. every migration of schemas/migrations/, split into statements as schemas/src/migrations.rs
   does, applied in order (twice: they must be idempotent) in database `sigstage`, after the
   `schema_migrations` table, as runtime/src/migrate.rs does;
2. a few rows in signals_hot, signals_cold, identities and leads, written as the sink writes
   them (rehydration with the sink's own statement, sink/src/sql/, run twice); then, in a
   database of their own, the signals of tests/it/analytics.rs as the sink writes them, the
   rollups filled by their views, and every query of schemas/queries/ bound as `sigstage query
   NAME --print` binds it, each answering exactly what that test expects on 18.16;
3. one insert of signals spanning 150 months, which current ClickHouse refuses (code 252, more
   than `max_partitions_per_insert_block` = 100 partitions), then the same rows split as the sink
   splits them (sink/src/rows.rs, MAX_MONTHS_PER_INSERT), all stored; and the same for
   rehydrating a visitor with that history;
4. the cluster layout, in a second session given scripts/chdb/cluster.xml (an in-process
   testkeeper, the macros, cluster `sigstage` of one shard whose replica is this process): every
   statement `sigstage migrate --print` prints with SIGSTAGE_CLICKHOUSE_CLUSTER=sigstage (the
   binary is built first with `cargo build --bin sigstage`, a no-op when it is current;
   SIGSTAGE_BIN names another), each parsed as printed (formatQuery), then run without its
   `ON CLUSTER` (chdb refuses it, code 392), twice: every Replicated*MergeTree table registered
   in the keeper under its expanded macros, every Distributed table answering. chdb never
   activates a replicated table (it has no interserver address, so the table stays read-only and
   a write is refused, code 242, which is checked), so the sink's writes of step 2 then go,
   with runtime::clickhouse::CLUSTER_SETTINGS, through the same Distributed tables and views over
   MergeTree twins of the local tables (the printed cluster DDL with `Replicated` and its ZooKeeper
   arguments taken out), and every table must hold what the same writes leave in a database of
   the single layout, row for row.

Prints the engine's version and one summary line; exits 1 naming what failed. Run it through
scripts/chdb/check.sh, which provides chdb.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The project's ClickHouse runs in UTC (scripts/clickhouse/config.xml); event_date's default
# and the expected days below depend on it. Set before chdb loads.
os.environ["TZ"] = "UTC"

import chdb  # noqa: E402
from chdb import session as chdb_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "sigstage"
CLUSTER = "sigstage"  # the cluster of scripts/chdb/cluster.xml
DAY_MS = 86_400_000


class Failed(Exception):
    """A check failed; the message names the migration, query or step."""


# --- What the Rust code does, read from it --------------------------------------------------


def rust_migrations():
    """(version, name, path) of every migration, and the schema_migrations DDL, as listed in
    schemas/src/migrations.rs; checked against the files in schemas/migrations/."""
    source = (ROOT / "schemas/src/migrations.rs").read_text()
    ddl = re.search(r'MIGRATIONS_TABLE_DDL: &str = "(.*?)";', source, re.S)
    listed = re.findall(
        r'Migration \{\s*version: (\d+),\s*name: "([^"]+)",\s*sql: include_str!\("\.\./migrations/([^"]+)"\),?\s*\}', source
    )
    if not ddl or not listed:
        raise Failed("schemas/src/migrations.rs: cannot find MIGRATIONS_TABLE_DDL or MIGRATIONS; update check.py")
    files = sorted(p.name for p in (ROOT / "schemas/migrations").glob("*.sql"))
    if [file for _, _, file in listed] != files:
        raise Failed(f"schemas/migrations/*.sql {files} differ from MIGRATIONS in schemas/src/migrations.rs {listed}")
    return [(int(v), name, ROOT / "schemas/migrations" / file) for v, name, file in listed], ddl.group(1)


def statements(sql):
    """Migration::statements: drop `--` comment lines, split on `;`, trim, drop empty ones."""
    without_comments = "".join(line + "\n" for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def checksum(sql):
    """Migration::checksum: FNV-1a 64 of the file's bytes."""
    value = 0xCBF29CE484222325
    for byte in sql.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def max_months_per_insert():
    found = re.search(r"pub const MAX_MONTHS_PER_INSERT: usize = (\d+);", (ROOT / "sink/src/rows.rs").read_text())
    if not found:
        raise Failed("sink/src/rows.rs: cannot find MAX_MONTHS_PER_INSERT; update check.py")
    return int(found.group(1))


def month_of(event_ms):
    """rows::month_of: months since 1970-01 of the row's partition, seconds saturated at 2106."""
    moment = datetime.datetime.fromtimestamp(min(event_ms // 1000, 2**32 - 1), datetime.timezone.utc)
    return (moment.year - 1970) * 12 + moment.month - 1


def yyyymm(month):
    return (1970 + month // 12) * 100 + month % 12 + 1


def month_chunks(rows, month, max_months):
    """rows::month_chunks: rows sorted by month, cut into runs of at most max_months months."""
    chunk, months, current = [], 0, None
    for row in rows:
        if month(row) != current:
            if months == max_months:
                yield chunk
                chunk, months = [], 0
            current, months = month(row), months + 1
        chunk.append(row)
    if chunk:
        yield chunk


# --- SQL helpers ----------------------------------------------------------------------------


def literal(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0") + "'"


def bind(sql, *values):
    """The clickhouse crate's `?` binds, for the sink's statements."""
    parts = sql.split("?")
    if len(parts) != len(values) + 1:
        raise Failed(f"{len(parts) - 1} binds in {sql!r}, {len(values)} values")
    return parts[0] + "".join(literal(v) + part for v, part in zip(values, parts[1:]))


def error_code(error):
    found = re.search(r"Code: (\d+)", str(error))
    return int(found.group(1)) if found else None


class Db:
    def __init__(self, path):
        self.session = chdb_session.Session(path)
        self.queries = 0

    def run(self, sql, what):
        """Runs one statement; its rows as lists of strings (TabSeparated)."""
        self.queries += 1
        try:
            result = self.session.query(sql, "TabSeparated")
        except Exception as error:  # chdb raises its ChdbError (or RuntimeError in older versions)
            raise Failed(f"{what}: {one_line(error)}") from None
        text = result.bytes().decode() if result is not None else ""
        return [line.split("\t") for line in text.splitlines()]

    def refused(self, sql, what):
        """Runs a statement that must fail; answers the error."""
        try:
            self.session.query(sql, "TabSeparated")
        except Exception as error:
            return error
        raise Failed(f"{what}: accepted, but current ClickHouse was expected to refuse it")

    def one(self, sql, what):
        rows = self.run(sql, what)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise Failed(f"{what}: expected one value, got {rows}")
        return rows[0][0]

    def close(self):
        self.session.close()


def one_line(error):
    return " ".join(str(error).split())[:600]


def expect(what, got, want):
    if got != want:
        raise Failed(f"{what}: expected {want!r}, got {got!r}")


# --- The rows -------------------------------------------------------------------------------

SIGNAL_COLUMNS = (
    "org_id lead_email signal_id anonymous_id user_id source kind event attributed_by mapped rules "
    "content_hash received_ms event_ms fields payload written_ms"
).split()
IDENTITY_COLUMNS = "org_id anonymous_id email name company title signal_id linked_ms".split()
LEAD_COLUMNS = "org_id email name company title first_signal_id created_ms".split()

BASE_MS = 1_714_986_000_000  # 2024-05-06T09:00:00Z


def signal(org, signal_id, anonymous_id, event_ms, lead="", attributed_by="", source="segment", kind="track",
           event="Viewed", written_ms=None):
    payload = {"type": kind, "event": event, "anonymousId": anonymous_id, "note": "it's \"quoted\" \\ and\ttabbed"}
    return {
        "org_id": org, "lead_email": lead, "signal_id": signal_id, "anonymous_id": anonymous_id, "user_id": "",
        "source": source, "kind": kind, "event": event, "attributed_by": attributed_by, "mapped": 1,
        "rules": ["rule_1"], "content_hash": f"{signal_id:064x}", "received_ms": event_ms + 150,
        "event_ms": event_ms, "fields": json.dumps({"company": "Acme"}), "payload": json.dumps(payload),
        "written_ms": written_ms or BASE_MS + DAY_MS,
    }


def insert(db, table, columns, rows, what):
    """One INSERT of `rows` (dicts), naming its columns as the sink's RowBinary inserts do, so
    defaults (event_date) are the server's."""
    values = ", ".join("(" + ", ".join(literal(row[c]) for c in columns) + ")" for row in rows)
    return db.run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}", what)


class Sink:
    """The sink's statements, as sink/src/store.rs sends them."""

    def __init__(self, db):
        self.db = db
        self.rehydrate_sql = (ROOT / "sink/src/sql/rehydrate.sql").read_text()
        self.cold_months_sql = (ROOT / "sink/src/sql/cold_months.sql").read_text()

    def rehydrate_range(self, links, written_ms, first, last):
        orgs = sorted({org for org, _, _ in links})
        visitors = [v for _, v, _ in links]
        keys = [f"{org}\0{v}" for org, v, _ in links]
        emails = [e for _, _, e in links]
        sql = bind(self.rehydrate_sql, keys, emails, written_ms, orgs, visitors, keys, first, last, orgs, emails)
        return sql, f"sink/src/sql/rehydrate.sql ({keys}, months {first}..{last})"

    def rehydrate(self, links, written_ms):
        """store::rehydrate: one statement for the links ((org, anonymousId, email) triples); by
        ranges of months if ClickHouse refuses it (252)."""
        sql, what = self.rehydrate_range(links, written_ms, 0, 2**32 - 1)
        try:
            self.db.session.query(sql, "TabSeparated")
            return 1
        except Exception as error:
            if error_code(error) != 252 or "Too many partitions" not in str(error):
                raise Failed(f"{what}: {one_line(error)}") from None
        orgs = sorted({org for org, _, _ in links})
        visitors = [v for _, v, _ in links]
        keys = [f"{org}\0{v}" for org, v, _ in links]
        months = [int(r[0]) for r in self.db.run(bind(self.cold_months_sql, orgs, visitors, keys),
                                                 "sink/src/sql/cold_months.sql")]
        step = max_months_per_insert()
        ranges = [months[i : i + step] for i in range(0, len(months), step)]
        for months_of_range in ranges:
            self.db.run(*self.rehydrate_range(links, written_ms, months_of_range[0], months_of_range[-1]))
        return 1 + len(ranges)


# --- The checks -----------------------------------------------------------------------------


def migrate(db):
    """Every migration in order, each applied twice before it is recorded, as `sigstage migrate`
    runs one again when it stopped before recording it."""
    migrations, table_ddl = rust_migrations()
    count = 0
    db.run(f"CREATE DATABASE IF NOT EXISTS {DATABASE}", "CREATE DATABASE")
    db.run(f"USE {DATABASE}", "USE")
    db.run(table_ddl, "schema_migrations (MIGRATIONS_TABLE_DDL)")
    for version, name, path in migrations:
        sql = path.read_text()
        for run in (1, 2):
            for n, statement in enumerate(statements(sql), 1):
                head = " ".join(statement.split()[:6])
                db.run(statement, f"migration {version} ({name}, {path.name}), statement {n} [{head} ...]"
                       + (" applied again" if run == 2 else ""))
                count += run == 1
        row = {"version": version, "name": name, "checksum": checksum(sql), "applied_at_ms": BASE_MS}
        insert(db, "schema_migrations", list(row), [row], f"migration {version}: schema_migrations row")
    recorded = db.run("SELECT version, name, checksum, applied_at_ms FROM schema_migrations FINAL ORDER BY version",
                      "runtime/src/migrate.rs: recorded migrations")
    expect("schema_migrations", [r[:2] for r in recorded], [[str(v), n] for v, n, _ in migrations])
    return len(migrations), count


def analyst_data(db, sink):
    """A small org as the sink leaves it, rehydration run twice; answers the rows written."""
    hot, cold = [], []
    # Visitor v1: three tracks while anonymous, then identified as jo@acme.io; v3 is jo on
    # another device; v2 never identified; globex is another org.
    for n in (1, 2, 3):
        cold.append(signal("acme", n, "v1", BASE_MS + n * 60_000))
    cold.append(signal("acme", 10, "v2", BASE_MS + DAY_MS, kind="page", event="page_view"))
    cold.append(signal("acme", 12, "v3", BASE_MS - 40 * DAY_MS, source="tracardi", kind="collect", event="visit"))
    cold.append(signal("globex", 11, "v9", BASE_MS))
    jo, sam = {"lead": "jo@acme.io", "attributed_by": "identity"}, {"lead": "sam@acme.io", "attributed_by": "signal"}
    hot.append(signal("acme", 4, "v1", BASE_MS + 600_000, **jo, kind="identify", event="identify"))
    hot.append(signal("acme", 5, "v1", BASE_MS + 2 * DAY_MS, **jo))
    hot.append(signal("acme", 6, "", BASE_MS + 2 * DAY_MS, **sam, source="generic", kind="signal", event="webhook"))
    links = [
        {"org_id": "acme", "anonymous_id": "v1", "email": "jo@acme.io", "name": "Jo", "company": "Acme",
         "title": "CTO", "signal_id": 4, "linked_ms": BASE_MS + 600_000},
        {"org_id": "acme", "anonymous_id": "v3", "email": "jo@acme.io", "name": "Jo", "company": "Acme",
         "title": "CTO", "signal_id": 12, "linked_ms": BASE_MS + 700_000},
    ]
    leads = [
        {"org_id": "acme", "email": "jo@acme.io", "name": "Jo", "company": "Acme", "title": "CTO",
         "first_signal_id": 4, "created_ms": BASE_MS + 600_000},
        {"org_id": "acme", "email": "sam@acme.io", "name": "Sam", "company": "Acme Corp", "title": "",
         "first_signal_id": 6, "created_ms": BASE_MS + 2 * DAY_MS},
    ]
    # Each row once, as the sink writes them (docs/exactly-once.md); rehydration runs twice,
    # as a replayed batch would run it.
    written = BASE_MS + DAY_MS
    insert(db, "signals_cold", SIGNAL_COLUMNS, [dict(r, written_ms=written) for r in cold], "insert signals_cold")
    insert(db, "signals_hot", SIGNAL_COLUMNS, [dict(r, written_ms=written) for r in hot], "insert signals_hot")
    insert(db, "identities", IDENTITY_COLUMNS, links, "insert identities")
    insert(db, "leads", LEAD_COLUMNS, leads, "insert leads")
    for replay in (0, 1):
        sink.rehydrate([("acme", link["anonymous_id"], link["email"]) for link in links], written + replay)
    rehydrated = [dict(r, lead_email="jo@acme.io", attributed_by="rehydrated") for r in cold
                  if r["org_id"] == "acme" and r["anonymous_id"] in ("v1", "v3")]
    # Rehydration leaves out what is hot already: run twice, it wrote each row once, physically.
    expect("sink/src/sql/rehydrate.sql run twice (rows without FINAL)",
           db.run("SELECT count() FROM signals_hot WHERE attributed_by = 'rehydrated'", "count rehydrated"),
           [[str(len(rehydrated))]])
    links_of = (ROOT / "sink/src/sql/links_of.sql").read_text()
    got = db.run(bind(links_of, ["acme"], ["v1", "v3", "v2"], ["acme\0v1", "acme\0v3", "acme\0v2"]),
                 "sink/src/sql/links_of.sql")
    expect("sink/src/sql/links_of.sql", sorted(got), [["acme", "v1", "jo@acme.io"], ["acme", "v3", "jo@acme.io"]])
    return hot + rehydrated, cold


ALL_DAYS = ("2000-01-01", "2100-12-31")


def library_sql(binary, name, org, *params, days=ALL_DAYS):
    """A query of schemas/queries/ bound as `sigstage query NAME --print` binds it (checked
    literals: 18.16 has no query parameters, and this engine reads the same SQL)."""
    command = [binary, "query", name, "--org", org, "--since", days[0], "--until", days[1], "--print"]
    for param in params:
        command += ["--param", param]
    env = {name: value for name, value in os.environ.items() if not name.startswith("SIGSTAGE_")}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        raise Failed(f"sigstage query {name} --print: exit {run.returncode}: {run.stderr.strip()}")
    return run.stdout


def ms(text):
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def library_queries(scratch_db, binary):
    """Every query of the library on the signals of tests/it/analytics.rs, written as the sink
    writes them into a database of their own; each answer must be the one that test expects on
    18.16 through the whole pipeline."""
    db = scratch_db
    db.run("CREATE DATABASE IF NOT EXISTS library", "CREATE DATABASE library")
    db.run("USE library", "USE library")
    migrations, _ = rust_migrations()
    for version, name, path in migrations:
        for statement in statements(path.read_text()):
            db.run(statement, f"library: migration {version} ({name})")
    def track(org, n, visitor, event, at, **hot):
        return signal(org, n, visitor, ms(at), event=event, **hot)
    jo = {"lead": "jo@acme.io"}
    cold = [track("acme", 1, "v1", "Pricing Page Viewed", "2026-03-01T10:00:00Z"),
            track("acme", 2, "v1", "Demo Requested", "2026-03-02T10:00:00Z"),
            track("acme", 4, "v2", "Pricing Page Viewed", "2026-03-01T12:00:00Z"),
            track("acme", 5, "v2", "Demo Requested", "2026-03-10T12:00:00Z"),
            track("other", 6, "v1", "Pricing Page Viewed", "2026-03-01T10:00:00Z")]
    hot = [dict(r, lead_email="jo@acme.io", attributed_by="rehydrated") for r in cold[:2]] + [
        signal("acme", 3, "v1", ms("2026-03-03T10:00:00Z"), **jo, attributed_by="signal", kind="identify", event="identify"),
        track("acme", 7, "v1", "Page Viewed", "2026-03-04T10:00:00Z", **jo, attributed_by="identity"),
        signal("acme", 8, "", ms("2026-03-02T09:00:00Z"), lead="sam@acme.io", attributed_by="signal", source="hubspot",
               kind="signal", event="Form Submitted")]
    insert(db, "signals_cold", SIGNAL_COLUMNS, [dict(r, written_ms=BASE_MS) for r in cold], "library: signals_cold")
    insert(db, "signals_hot", SIGNAL_COLUMNS, [dict(r, written_ms=BASE_MS) for r in hot], "library: signals_hot")
    insert(db, "identities", IDENTITY_COLUMNS, [{"org_id": "acme", "anonymous_id": "v1", "email": "jo@acme.io",
           "name": "", "company": "", "title": "", "signal_id": 3, "linked_ms": BASE_MS}], "library: identities")

    def ask(name, *params, org="acme", days=ALL_DAYS):
        return db.run(library_sql(binary, name, org, *params, days=days), f"schemas/queries/{name}.sql")
    t = lambda at: str(ms(at))  # noqa: E731
    day = 86_400_000
    wanted = {
        ("signals_by_source_and_day",): [
            ["2026-03-01", "segment", "2", "2"], ["2026-03-02", "hubspot", "1", "0"], ["2026-03-02", "segment", "1", "1"],
            ["2026-03-03", "segment", "1", "0"], ["2026-03-04", "segment", "1", "0"], ["2026-03-10", "segment", "1", "1"]],
        ("top_events",): [["Demo Requested", "track", "2"], ["Pricing Page Viewed", "track", "2"],
                          ["Form Submitted", "signal", "1"], ["Page Viewed", "track", "1"], ["identify", "identify", "1"]],
        ("daily_active",): [["2026-03-01", "2", "1"], ["2026-03-02", "1", "2"], ["2026-03-03", "1", "1"],
                            ["2026-03-04", "1", "1"], ["2026-03-10", "1", "0"]],
        ("lead_timeline", "lead=jo@acme.io"): [
            [t("2026-03-01T10:00:00Z"), "1", "segment", "track", "Pricing Page Viewed", "rehydrated", "v1"],
            [t("2026-03-02T10:00:00Z"), "2", "segment", "track", "Demo Requested", "rehydrated", "v1"],
            [t("2026-03-03T10:00:00Z"), "3", "segment", "identify", "identify", "signal", "v1"],
            [t("2026-03-04T10:00:00Z"), "7", "segment", "track", "Page Viewed", "identity", "v1"]],
        ("first_and_last_touch",): [
            ["jo@acme.io", "segment", "Pricing Page Viewed", t("2026-03-01T10:00:00Z"), "segment", "Page Viewed",
             t("2026-03-04T10:00:00Z"), "4", "2"],
            ["sam@acme.io", "hubspot", "Form Submitted", t("2026-03-02T09:00:00Z"), "hubspot", "Form Submitted",
             t("2026-03-02T09:00:00Z"), "1", "0"]],
        ("leads_by_first_touch",): [["hubspot", "1", "0"], ["segment", "1", "1"]],
        ("time_to_identification",): [["1", "0", str(2 * day), str(2 * day)]],
        ("identification_by_day",): [["2026-03-01", "2", "0"], ["2026-03-03", "0", "1"]],
        ("funnel", "first=Pricing Page Viewed", "then=Demo Requested", "days=7"): [["2", "1"]],
        ("funnel", "first=Pricing Page Viewed", "then=Demo Requested", "days=10"): [["2", "2"]],
        ("unlinked_cold_signals",): [["0"]],
    }
    for (name, *params), want in wanted.items():
        expect(f"schemas/queries/{name}.sql {' '.join(params)}", ask(name, *params), want)
    expect("signals_by_source_and_day for org other", ask("signals_by_source_and_day", org="other"),
           [["2026-03-01", "segment", "1", "1"]])
    expect("signals_by_source_and_day on 2026-03-02 only",
           len(ask("signals_by_source_and_day", days=("2026-03-02", "2026-03-02"))), 2)
    # The invariant finds a cold signal of an identified visitor left without its hot row.
    insert(db, "signals_cold", SIGNAL_COLUMNS, [dict(signal("acme", 9, "v1", ms("2026-03-05T00:00:00Z")),
           written_ms=BASE_MS)], "library: an unattributed cold row")
    expect("schemas/queries/unlinked_cold_signals.sql (one left unattributed)", ask("unlinked_cold_signals"), [["1"]])
    db.run(f"USE {DATABASE}", f"USE {DATABASE}")
    return len(wanted) + 3


def months_of_history(db, sink):
    """A back-dated history over 150 months: refused as one insert, stored as the sink splits it."""
    max_months = max_months_per_insert()
    start = datetime.datetime(2012, 1, 1, 12, tzinfo=datetime.timezone.utc)
    rows = []
    for n in range(150):
        moment = start.replace(year=2012 + n // 12, month=n % 12 + 1)
        rows.append(signal("backfill", 1000 + n, "archive", int(moment.timestamp() * 1000)))
    # Newest first, as an import might send them: the sink sorts by month.
    rows.reverse()
    error = db.refused(
        "INSERT INTO signals_cold (" + ", ".join(SIGNAL_COLUMNS) + ") VALUES "
        + ", ".join("(" + ", ".join(literal(r[c]) for c in SIGNAL_COLUMNS) + ")" for r in rows),
        "one insert of signals over 150 months")
    if error_code(error) != 252 or "Too many partitions for single INSERT block" not in str(error):
        raise Failed(f"one insert over 150 months: expected code 252 (Too many partitions for single INSERT block), "
                     f"got: {one_line(error)}")
    expect("signals_cold rows after the refused insert",
           db.one("SELECT count() FROM signals_cold WHERE org_id = 'backfill'", "count"), "0")

    ordered = sorted(rows, key=lambda r: month_of(r["event_ms"]))
    chunks = list(month_chunks(ordered, lambda r: month_of(r["event_ms"]), max_months))
    for i, chunk in enumerate(chunks, 1):
        insert(db, "signals_cold", SIGNAL_COLUMNS, chunk,
               f"split insert {i}/{len(chunks)} ({len({month_of(r['event_ms']) for r in chunk})} months)")
    expect("signals_cold rows after the split inserts (count without FINAL)",
           db.one("SELECT count() FROM signals_cold WHERE org_id = 'backfill'", "count"), "150")
    # The sink's month is the server's partition.
    stored = db.run("SELECT event_ms, toYYYYMM(event_date) FROM signals_cold WHERE org_id = 'backfill'", "months")
    for event_ms, partition in stored:
        expect(f"partition of event_ms {event_ms}", int(partition), yyyymm(month_of(int(event_ms))))

    # Rehydrating that visitor: one INSERT ... SELECT is refused as well; the sink falls back to
    # ranges of months.
    sql, what = sink.rehydrate_range([("backfill", "archive", "archivist@backfill.io")], BASE_MS, 0, 2**32 - 1)
    error = db.refused(sql, what)
    expect(f"{what}: error code", error_code(error), 252)
    statements_sent = sink.rehydrate([("backfill", "archive", "archivist@backfill.io")], BASE_MS)
    expect("signals_hot rows after rehydrating 150 months",
           db.one("SELECT count() FROM signals_hot WHERE org_id = 'backfill'", "count"), "150")
    insert(db, "identities", IDENTITY_COLUMNS, [{"org_id": "backfill", "anonymous_id": "archive",
           "email": "archivist@backfill.io", "name": "", "company": "", "title": "", "signal_id": 1000,
           "linked_ms": BASE_MS}], "insert identities (archive)")
    invariant = library_sql(sigstage_binary()[0], "unlinked_cold_signals", "backfill", days=("2012-01-01", "2024-12-31"))
    expect("schemas/queries/unlinked_cold_signals.sql (150 months)", db.run(invariant, "the invariant"), [["0"]])
    return len(chunks), max_months, statements_sent


def edge_months(db):
    """rows::month_of against the server's event_date default, at the edges it assumes."""
    edges = [0, 999, 2_678_399_999, 2_678_400_000, 951_782_400_000, 1_709_251_199_999, 1_709_251_200_000,
             (2**32 - 1) * 1000, 2**32 * 1000, 2**64 - 1]
    rows = [dict(signal("edges", n, "e", ms), received_ms=0) for n, ms in enumerate(edges)]
    insert(db, "signals_cold", SIGNAL_COLUMNS, rows, "insert edge months")
    stored = db.run("SELECT event_ms, toYYYYMM(event_date) FROM signals_cold WHERE org_id = 'edges' ORDER BY event_ms",
                    "edge months")
    for event_ms, partition in stored:
        expect(f"sink/src/rows.rs month_of({event_ms}) vs the server's toYYYYMM(event_date)",
               yyyymm(month_of(int(event_ms))), int(partition))


def retention(db, binary):
    """Per-org retention by TTL (control/src/retention.rs): the statements `sigstage retention sql`
    prints (what `retention enforce` runs on a server with TTL) delete one org's signals older
    than its days and nothing else, once merged; the table then shows a TTL (what enforce looks
    for), and the statement for no policy removes it."""
    now = int(time.time() * 1000)
    today = now - now % DAY_MS + DAY_MS // 2
    rows = [signal(org, 9_000 + n, "r", today - days * DAY_MS) for n, (org, days) in
            enumerate([("ret-a", 100), ("ret-a", 10), ("ret-b", 100)])]
    for table in ("signals_hot", "signals_cold"):
        insert(db, table, SIGNAL_COLUMNS, rows, f"retention: {table}")

    def sql(*policies):
        run = subprocess.run([binary, "retention", "sql", *policies], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            raise Failed(f"sigstage retention sql {' '.join(policies)}: {run.stderr.strip()}")
        return [s for s in statements(run.stdout)]

    for statement in sql("ret-a=30", "ret-c=30", "ret-d=7"):
        db.run(statement, "control/src/retention.rs ttl_statement")
    for table in ("signals_hot", "signals_cold"):
        db.run(f"OPTIMIZE TABLE {table} FINAL", f"retention: merge {table}")
        kept = db.run(f"SELECT org_id, dateDiff('day', event_date, toDate(fromUnixTimestamp64Milli({today}))) FROM {table} "
                      "WHERE org_id LIKE 'ret-%' ORDER BY org_id, event_date", f"retention: {table} kept")
        expect(f"retention TTL on {table}: ret-a's 100-day-old row gone, the rest kept", kept,
               [["ret-a", "10"], ["ret-b", "100"]])
        has_ttl = db.one("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = "
                         f"'{table}' AND position(create_table_query, ' TTL ') > 0", "retention: the table shows its TTL")
        expect(f"retention: {table} shows a TTL", has_ttl, "1")
    for statement in sql():
        db.run(statement, "control/src/retention.rs ttl_statement, no policy")
    for table in ("signals_hot", "signals_cold"):
        has_ttl = db.one("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = "
                         f"'{table}' AND position(create_table_query, ' TTL ') > 0", "retention: TTL removed")
        expect(f"retention: {table} TTL removed", has_ttl, "0")
    return len(rows) * 2


# --- The cluster layout ---------------------------------------------------------------------

CLUSTER_CONFIG = ROOT / "scripts/chdb/cluster.xml"
ON_CLUSTER = re.compile(rf" ON CLUSTER {CLUSTER}\b")
# `ENGINE = ReplicatedX('path', 'replica'[, args])`: the engine and its ZooKeeper arguments.
REPLICATED = re.compile(r"ENGINE = Replicated(\w+)\('([^']*)', '([^']*)'(?:, )?")
CREATED = re.compile(r"^CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS (?:\w+\.)?(\w+) ")
DROPPED = re.compile(r"^DROP TABLE IF EXISTS (?:\w+\.)?(\w+)")
ENGINE = re.compile(r" ENGINE = (\w+)\(")


def head(statement):
    return " ".join(statement.split()[:6]) + " ..."


def sigstage_binary():
    """The sigstage binary and how it was found: SIGSTAGE_BIN, else target/debug/sigstage, built
    first (`cargo build --bin sigstage`, a no-op when it is current)."""
    named = os.environ.get("SIGSTAGE_BIN")
    if named:
        if not os.access(named, os.X_OK):
            raise Failed(f"SIGSTAGE_BIN={named} is not an executable; unset it to build target/debug/sigstage")
        return named, "SIGSTAGE_BIN"
    started = time.monotonic()
    command = ["cargo", "build", "--quiet", "--bin", "sigstage", "--message-format=json-render-diagnostics"]
    try:
        built = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise Failed("cargo is not on PATH: install Rust (rustup), or set SIGSTAGE_BIN to a sigstage binary") from None
    if built.returncode != 0:
        raise Failed(f"{' '.join(command[:5])} failed (exit {built.returncode}, see above); fix the build first")
    executables = [message["executable"] for message in map(json.loads, built.stdout.splitlines())
                   if message.get("reason") == "compiler-artifact" and message.get("executable")
                   and message["target"]["name"] == "sigstage"]
    if not executables:
        raise Failed(f"{' '.join(command[:5])} named no sigstage executable; set SIGSTAGE_BIN")
    return executables[-1], f"built or current in {time.monotonic() - started:.1f} s"


def printed(binary, **settings):
    """The statements `sigstage migrate --print` prints for these SIGSTAGE_CLICKHOUSE_* settings
    (and no other SIGSTAGE_ variable), split as check.py splits a migration (schemas/src/
    migrations.rs splits them on `;`, so none holds one), and a name for them."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SIGSTAGE_")}
    env.update({f"SIGSTAGE_CLICKHOUSE_{name.upper()}": value for name, value in settings.items()})
    what = "migrate --print with " + " ".join(f"SIGSTAGE_CLICKHOUSE_{n.upper()}={v}" for n, v in settings.items())
    run = subprocess.run([binary, "migrate", "--print"], env=env, capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        raise Failed(f"{what}: exit {run.returncode}: {one_line(run.stderr)}")
    found = statements(run.stdout)
    if not found:
        raise Failed(f"{what}: printed no statement")
    return found, what


def cluster_settings():
    """runtime::clickhouse::CLUSTER_SETTINGS: what every role's client sets on a cluster."""
    source = (ROOT / "runtime/src/clickhouse.rs").read_text()
    found = re.search(r"pub const CLUSTER_SETTINGS: [^=]+=\s*\[(.*?)\];", source, re.S)
    pairs = re.findall(r'\("(\w+)", "([^"]*)"\)', found.group(1)) if found else []
    if not pairs:
        raise Failed("runtime/src/clickhouse.rs: cannot find CLUSTER_SETTINGS; update check.py")
    return pairs


def standing(printed_statements):
    """{table: the statement that made it} of the tables the statements leave: a table a later
    statement drops is gone, and one it makes again is the later one."""
    made = {}
    for statement in printed_statements:
        created, dropped = CREATED.match(statement), DROPPED.match(statement)
        if dropped:
            made.pop(dropped.group(1), None)
        elif created:
            made[created.group(2)] = statement
    return made


def engines(printed_statements, database):
    """{table: engine} of what the statements leave, as system.tables names them."""
    for statement in printed_statements:
        known = CREATED.match(statement) or DROPPED.match(statement)
        if not known and not statement.startswith(f"CREATE DATABASE IF NOT EXISTS {database}"):
            raise Failed(f"cannot tell what this statement creates: {head(statement)}; update check.py")
    made = {}
    for table, statement in standing(printed_statements).items():
        engine = ENGINE.search(statement)
        if CREATED.match(statement).group(1) == "MATERIALIZED VIEW":
            made[table] = "MaterializedView"
        elif engine:
            made[table] = engine.group(1)
        else:
            raise Failed(f"cannot tell the engine of: {head(statement)}; update check.py")
    return made


def cluster_schema(db, cluster, what):
    """The cluster statements: parsed as printed, then applied twice without ON CLUSTER; every
    table as printed, the replicated ones in the keeper under the macros, the Distributed ones
    answering; a write to a replicated table refused (chdb never activates one)."""
    expect(f"{CLUSTER_CONFIG.relative_to(ROOT)}: cluster {CLUSTER} (shard, replica, is_local)",
           db.run(f"SELECT shard_num, replica_num, is_local FROM system.clusters WHERE cluster = '{CLUSTER}'",
                  "system.clusters"), [["1", "1", "1"]])
    for n, statement in enumerate(cluster, 1):
        if not ON_CLUSTER.search(statement):
            raise Failed(f"{what}, statement {n} [{head(statement)}]: no ON CLUSTER {CLUSTER}")
        db.run(f"SELECT formatQuery({literal(statement)})", f"{what}, statement {n} [{head(statement)}] as printed")
    # Again, what the statements leave: migrate never runs a migration again once a later one ran,
    # so a table a later migration drops is not made again (chdb's replicas, never active, leave
    # their paths in the keeper when dropped).
    left = standing(cluster)
    again = [s for s in cluster if not DROPPED.match(s) and (not CREATED.match(s) or left.get(CREATED.match(s).group(2)) is s)]
    for run, applied in ((1, cluster), (2, again)):
        for n, statement in enumerate(applied, 1):
            db.run(ON_CLUSTER.sub("", statement), f"{what}, statement {n} [{head(statement)}] without ON CLUSTER"
                   + (", applied again" if run == 2 else ""))

    want = engines(cluster, DATABASE)
    got = dict(db.run(f"SELECT name, engine FROM system.tables WHERE database = '{DATABASE}'", "system.tables"))
    expect(f"{what}: tables and engines made", got, want)
    macros = dict(db.run("SELECT macro, substitution FROM system.macros", "system.macros"))

    def expand(text):
        return re.sub(r"\{(\w+)\}", lambda m: macros.get(m.group(1), m.group(0)), text)

    want = sorted([CREATED.match(s).group(2), expand(r.group(2)), expand(r.group(3)), "1"]
                  for s in standing(cluster).values() for r in [REPLICATED.search(s)] if r)
    got = db.run(f"SELECT table, zookeeper_path, replica_name, is_readonly FROM system.replicas "
                 f"WHERE database = '{DATABASE}' ORDER BY table", "system.replicas")
    expect(f"{what}: replicated tables in the keeper (table, path, replica, read-only)", got, want)
    distributed = sorted(name for name, engine in engines(cluster, DATABASE).items() if engine == "Distributed")
    for table in distributed:
        expect(f"{what}: SELECT count() FROM Distributed table {table}",
               db.one(f"SELECT count() FROM {DATABASE}.{table}", f"Distributed table {table}"), "0")

    row = signal("acme", 1, "v1", BASE_MS)
    error = db.refused(
        f"INSERT INTO {DATABASE}.signals_cold ({', '.join(SIGNAL_COLUMNS)}) SETTINGS insert_distributed_sync = 1, "
        f"insert_keeper_max_retries = 0 VALUES ({', '.join(literal(row[c]) for c in SIGNAL_COLUMNS)})",
        "a write through Distributed table signals_cold to its replicated table")
    if error_code(error) != 242:
        raise Failed(f"a write to a replicated table in chdb: expected code 242 (TABLE_IS_READ_ONLY: chdb has no "
                     f"interserver address, so it never activates a replica), got: {one_line(error)}")
    return {"replicated": len(want), "distributed": len(distributed),
            "views": sum(e == "MaterializedView" for e in engines(cluster, DATABASE).values())}


def select_all(db, database, table):
    """Every physical row of a table (no FINAL), aggregate states finalized, sorted."""
    columns = db.run(f"SELECT name, type FROM system.columns WHERE database = '{database}' AND table = '{table}' "
                     f"ORDER BY position", f"columns of {database}.{table}")
    select = ", ".join(f"finalizeAggregation({name})" if kind.startswith("AggregateFunction") else name
                       for name, kind in columns)
    return sorted(db.run(f"SELECT {select} FROM {database}.{table}", f"rows of {database}.{table}"))


def sink_writes_through_distributed(db, twin, twin_what, single, single_what):
    """The sink's writes of analyst_data, once into a database of the single layout, once through
    the cluster layout's Distributed tables and views over MergeTree twins of its local tables,
    with CLUSTER_SETTINGS: every table the same, row for row, and nothing twice under a
    Distributed table. Answers the tables compared and how many hold rows."""
    single_db, twin_db = f"{DATABASE}_single", f"{DATABASE}_twin"
    # Rows counted physically: merges would fold replays at their own pace in each database.
    db.run("SYSTEM STOP MERGES", "SYSTEM STOP MERGES")
    for n, statement in enumerate(single, 1):
        db.run(statement, f"{single_what}, statement {n} [{head(statement)}]")
        if n == 1:  # CREATE DATABASE; the rest name no database (migrate runs them in it)
            db.run(f"USE {single_db}", f"USE {single_db}")
    twins = [REPLICATED.sub(lambda m: f"ENGINE = {m.group(1)}(", ON_CLUSTER.sub("", s)) for s in twin]
    for n, statement in enumerate(twins, 1):
        if "Replicated" in statement:
            raise Failed(f"{twin_what}, statement {n} [{head(statement)}]: a Replicated engine check.py cannot "
                         f"make a MergeTree twin of; update REPLICATED in check.py")
        db.run(statement, f"{twin_what}, statement {n} [{head(statement)}] as a MergeTree twin")

    what = f"the sink's writes into database {single_db} (single layout)"
    try:
        analyst_data(db, Sink(db))
        settings = cluster_settings()
        db.run("SET " + ", ".join(f"{name} = {literal(value)}" for name, value in settings), "CLUSTER_SETTINGS")
        db.run(f"USE {twin_db}", f"USE {twin_db}")
        what = (f"the sink's writes through database {twin_db}'s Distributed tables "
                f"({', '.join(f'{n}={v}' for n, v in settings)})")
        analyst_data(db, Sink(db))
    except Failed as failure:
        raise Failed(f"{what}: {failure}") from None

    tables = [name for name, engine in engines(single, single_db).items() if engine != "MaterializedView"]
    distributed = {name for name, engine in engines(twin, twin_db).items() if engine == "Distributed"}
    with_rows = 0
    for table in tables:
        want = select_all(db, single_db, table)
        got = select_all(db, twin_db, table)
        if got != want:
            kind = "Distributed table" if table in distributed else "table"
            raise Failed(f"table {table}: through {twin_db}'s {kind} {len(got)} rows, {len(want)} on one server; "
                         f"first differences: "
                         f"{[r for r in got if r not in want][:2]} / {[r for r in want if r not in got][:2]}")
        if table in distributed:
            expect(f"{twin_db}.{table}_local (physical rows beneath the Distributed table)",
                   select_all(db, twin_db, f"{table}_local"), got)
        with_rows += bool(want)
    if with_rows < 4:
        raise Failed(f"only {with_rows} tables hold rows after the sink's writes; expected at least signals_hot, "
                     f"signals_cold, identities and leads")
    return len(tables), with_rows


def cluster_layout():
    """Step 4 of the docstring, in a session of its own given scripts/chdb/cluster.xml."""
    binary, build = sigstage_binary()
    cluster, what = printed(binary, cluster=CLUSTER, database=DATABASE)
    twin, twin_what = printed(binary, cluster=CLUSTER, database=f"{DATABASE}_twin")
    single, single_what = printed(binary, database=f"{DATABASE}_single")
    with tempfile.TemporaryDirectory(prefix="sigstage-chdb-cluster-") as scratch:
        db = Db(f"{scratch}?config-file={CLUSTER_CONFIG}")
        try:
            made = cluster_schema(db, cluster, what)
            tables, with_rows = sink_writes_through_distributed(db, twin, twin_what, single, single_what)
        finally:
            # Closing a session that holds read-only replicated tables hangs (chdb 4.4): drop them.
            try:
                db.session.query(f"DROP DATABASE IF EXISTS {DATABASE} SYNC")
            finally:
                db.close()
    return dict(made, statements=len(cluster), build=build, tables=f"{tables} tables ({with_rows} with rows)",
                queries=db.queries)


def main():
    started, version = time.monotonic(), "?"
    with tempfile.TemporaryDirectory(prefix="sigstage-chdb-") as scratch:
        db = Db(scratch)
        try:
            version = db.one("SELECT version()", "SELECT version()")
            chdb_version = getattr(chdb, "__version__", "?")
            print(f"chdb {chdb_version}, ClickHouse {version}")
            migrations, statement_count = migrate(db)
            sink = Sink(db)
            analyst_data(db, sink)
            queries = library_queries(db, sigstage_binary()[0])
            chunks, max_months, rehydrations = months_of_history(db, sink)
            edge_months(db)
            retained = retention(db, sigstage_binary()[0])
        except Failed as failure:
            print(f"chdb check FAILED on ClickHouse {version}: {failure}", file=sys.stderr)
            return 1
        finally:
            db.close()
    statements_sent = db.queries
    try:
        cluster = cluster_layout()
    except Failed as failure:
        print(f"chdb check FAILED on ClickHouse {version}, cluster layout: {failure}", file=sys.stderr)
        return 1
    print(
        f"chdb check OK: ClickHouse {version}: {migrations} migrations ({statement_count} statements, applied twice), "
        f"the library's queries with {queries} expected answers (those of tests/it/analytics.rs), sink rehydration; 150 months in one insert refused "
        f"(code 252), stored as {chunks} inserts of <= {max_months} months and {rehydrations} rehydration "
        f"statements; per-org retention by TTL over {retained} rows; cluster {CLUSTER}: {cluster['statements']} statements of migrate --print "
        f"(binary {cluster['build']}) parsed with ON CLUSTER and applied twice without it on a testkeeper "
        f"({cluster['replicated']} Replicated*MergeTree under their macros, {cluster['distributed']} Distributed, "
        f"{cluster['views']} views), a write to a replicated table refused in process (code 242), the sink's writes "
        f"through the Distributed tables over MergeTree twins: {cluster['tables']} as on one server, row for "
        f"row; {statements_sent + cluster['queries']} statements in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
