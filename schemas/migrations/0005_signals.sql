-- Where analysts meet the signals. Written by the sink from `signals.processed` and
-- `identities`; see the README's "ClickHouse tables" and `schemas/queries/`.
--
-- One row per signal attributed to a lead: signals that named an email, signals of an
-- identified visitor, and (`attributed_by` = 'rehydrated') the earlier anonymous signals of a
-- visitor once identified. A replayed batch writes the same key again, so count with FINAL or
-- uniqExact(signal_id), never count() over raw parts.
CREATE TABLE IF NOT EXISTS signals_hot (
    org_id String,
    lead_email String,
    signal_id UInt64,
    anonymous_id String,
    user_id String,
    source String,
    kind String,
    event String,
    attributed_by String,
    mapped UInt8,
    rules Array(String),
    content_hash String,
    received_ms UInt64,
    event_ms UInt64,
    fields String,
    payload String,
    written_ms UInt64,
    event_date Date DEFAULT toDate(toDateTime(intDiv(event_ms, 1000)))
) ENGINE = ReplacingMergeTree(written_ms) PARTITION BY toYYYYMM(event_date)
  ORDER BY (org_id, lead_email, signal_id);

-- One row per signal that arrived anonymous, ordered for lookup by visitor. Rows stay after
-- the visitor is identified (the hot table then has them too). Same columns as signals_hot;
-- lead_email and attributed_by are empty.
CREATE TABLE IF NOT EXISTS signals_cold (
    org_id String,
    lead_email String,
    signal_id UInt64,
    anonymous_id String,
    user_id String,
    source String,
    kind String,
    event String,
    attributed_by String,
    mapped UInt8,
    rules Array(String),
    content_hash String,
    received_ms UInt64,
    event_ms UInt64,
    fields String,
    payload String,
    written_ms UInt64,
    event_date Date DEFAULT toDate(toDateTime(intDiv(event_ms, 1000)))
) ENGINE = ReplacingMergeTree(written_ms) PARTITION BY toYYYYMM(event_date)
  ORDER BY (org_id, anonymous_id, signal_id);

-- Which lead each anonymous visitor turned out to be; the latest link wins (read with FINAL).
CREATE TABLE IF NOT EXISTS identities (
    org_id String,
    anonymous_id String,
    email String,
    name String,
    company String,
    title String,
    signal_id UInt64,
    linked_ms UInt64
) ENGINE = ReplacingMergeTree(linked_ms) ORDER BY (org_id, anonymous_id);

-- One row per lead (org, email) with the traits captured when it was first seen; a lead
-- announced twice keeps one row (read with FINAL).
CREATE TABLE IF NOT EXISTS leads (
    org_id String,
    email String,
    name String,
    company String,
    title String,
    first_signal_id UInt64,
    created_ms UInt64
) ENGINE = ReplacingMergeTree(created_ms) ORDER BY (org_id, email);
