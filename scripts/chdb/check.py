#!/usr/bin/env python3
"""Checks sigstage's ClickHouse SQL against the newest ClickHouse engine, in process (chdb).

What `sigstage migrate` and the sink send, on a fresh database in a temporary folder:

1. every migration of schemas/migrations/, split into statements as schemas/src/migrations.rs
   does, applied in order (twice: they must be idempotent) in database `sigstage`, after the
   `schema_migrations` table, as runtime/src/migrate.rs does;
2. a few rows in signals_hot, signals_cold, identities and leads, written as the sink writes
   them (rehydration with the sink's own statement, sink/src/sql/), then every analyst query of
   schemas/queries/, each checked against what the rows imply;
3. one insert of signals spanning 150 months, which current ClickHouse refuses (code 252, more
   than `max_partitions_per_insert_block` = 100 partitions), then the same rows split as the sink
   splits them (sink/src/rows.rs, MAX_MONTHS_PER_INSERT), all stored; and the same for
   rehydrating a visitor with that history.

Prints the engine's version and one summary line; exits 1 naming what failed. Run it through
scripts/chdb/check.sh, which provides chdb.
"""

import datetime
import json
import os
import re
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
        r'Migration \{ version: (\d+), name: "([^"]+)", sql: include_str!\("\.\./migrations/([^"]+)"\) \}', source
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
    migrations, table_ddl = rust_migrations()
    count = 0
    for run in (1, 2):
        db.run(f"CREATE DATABASE IF NOT EXISTS {DATABASE}", "CREATE DATABASE")
        db.run(f"USE {DATABASE}", "USE")
        db.run(table_ddl, "schema_migrations (MIGRATIONS_TABLE_DDL)")
        for version, name, path in migrations:
            sql = path.read_text()
            for n, statement in enumerate(statements(sql), 1):
                head = " ".join(statement.split()[:6])
                db.run(statement, f"migration {version} ({name}, {path.name}), statement {n} [{head} ...]"
                       + (" applied again" if run == 2 else ""))
                count += run == 1
            if run == 1:
                row = {"version": version, "name": name, "checksum": checksum(sql), "applied_at_ms": BASE_MS}
                insert(db, "schema_migrations", list(row), [row], f"migration {version}: schema_migrations row")
    recorded = db.run("SELECT version, name, checksum, applied_at_ms FROM schema_migrations FINAL ORDER BY version",
                      "runtime/src/migrate.rs: recorded migrations")
    expect("schema_migrations", [r[:2] for r in recorded], [[str(v), n] for v, n, _ in migrations])
    return len(migrations), count


def analyst_data(db, sink):
    """A small org as the sink leaves it, replays included; answers the rows written."""
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
    # A batch and its replay: the same rows again, written later.
    for replay in (0, 1):
        written = BASE_MS + DAY_MS + replay
        insert(db, "signals_cold", SIGNAL_COLUMNS, [dict(r, written_ms=written) for r in cold], "insert signals_cold")
        insert(db, "signals_hot", SIGNAL_COLUMNS, [dict(r, written_ms=written) for r in hot], "insert signals_hot")
        insert(db, "identities", IDENTITY_COLUMNS, [dict(r, linked_ms=r["linked_ms"] + replay) for r in links],
               "insert identities")
        insert(db, "leads", LEAD_COLUMNS, [dict(r, created_ms=r["created_ms"] + replay) for r in leads],
               "insert leads")
        sink.rehydrate([("acme", link["anonymous_id"], link["email"]) for link in links], written)
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


def query(db, name):
    path = ROOT / "schemas/queries" / name
    return db.run(path.read_text(), f"schemas/queries/{name}")


def analyst_queries(db, sink, hot, cold):
    acme_hot = [r for r in hot if r["org_id"] == "acme"]
    per_lead = {}
    for r in acme_hot:
        per_lead.setdefault(r["lead_email"], []).append(r)
    want = sorted(
        ([lead, str(len(rs)), str(sum(r["attributed_by"] == "rehydrated" for r in rs)),
          str(min(r["event_ms"] for r in rs)), str(max(r["event_ms"] for r in rs))] for lead, rs in per_lead.items()),
        key=lambda row: (-int(row[1]), row[0]),
    )
    expect("schemas/queries/signals_per_lead.sql", query(db, "signals_per_lead.sql"), want)

    daily = {}
    for r in acme_hot + [r for r in cold if r["org_id"] == "acme"]:
        day = datetime.datetime.fromtimestamp(r["event_ms"] / 1000, datetime.timezone.utc).date().isoformat()
        daily.setdefault((day, r["source"]), set()).add(r["signal_id"])
    want = [[day, source, str(len(ids))] for (day, source), ids in sorted(daily.items())]
    expect("schemas/queries/daily_signals_by_source.sql", query(db, "daily_signals_by_source.sql"), want)

    # jo@acme.io was identified on two devices (v1, v3); sam@acme.io on none.
    want = [["jo@acme.io", "Acme", "CTO", "2"], ["sam@acme.io", "Acme Corp", "", "0"]]
    expect("schemas/queries/leads_with_identities.sql", query(db, "leads_with_identities.sql"), want)

    expect("schemas/queries/unlinked_cold_signals.sql (after rehydration)", query(db, "unlinked_cold_signals.sql"),
           [["0"]])
    # The invariant query must see a link the sink has not rehydrated yet: v2's one cold signal.
    insert(db, "identities", IDENTITY_COLUMNS, [{"org_id": "acme", "anonymous_id": "v2", "email": "sam@acme.io",
           "name": "", "company": "", "title": "", "signal_id": 6, "linked_ms": BASE_MS + 3 * DAY_MS}],
           "insert identities (v2)")
    expect("schemas/queries/unlinked_cold_signals.sql (v2 linked, not rehydrated)",
           query(db, "unlinked_cold_signals.sql"), [["1"]])
    sink.rehydrate([("acme", "v2", "sam@acme.io")], BASE_MS + 3 * DAY_MS)
    expect("schemas/queries/unlinked_cold_signals.sql (v2 rehydrated)", query(db, "unlinked_cold_signals.sql"),
           [["0"]])
    return len(list((ROOT / "schemas/queries").glob("*.sql")))


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
    expect("schemas/queries/unlinked_cold_signals.sql (150 months)", query(db, "unlinked_cold_signals.sql"), [["0"]])
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
            hot, cold = analyst_data(db, sink)
            queries = analyst_queries(db, sink, hot, cold)
            chunks, max_months, rehydrations = months_of_history(db, sink)
            edge_months(db)
        except Failed as failure:
            print(f"chdb check FAILED on ClickHouse {version}: {failure}", file=sys.stderr)
            return 1
        finally:
            db.close()
    print(
        f"chdb check OK: ClickHouse {version}: {migrations} migrations ({statement_count} statements, applied twice), "
        f"{queries} analyst queries with the expected results, sink rehydration; 150 months in one insert refused "
        f"(code 252), stored as {chunks} inserts of <= {max_months} months and {rehydrations} rehydration "
        f"statements; {db.queries} statements in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
