-- Rollups: exact aggregates the analyst queries (schemas/queries/) read without FINAL, kept by
-- materialized views on every insert into signals_cold and signals_hot. They are exact because
-- the sink writes each row once (docs/exactly-once.md): a view sees each insert once, and a
-- retried insert the sink knows may be a repeat writes only the rows not stored yet.
--
-- Which rows each counts. A signal that arrived anonymous is one cold row, and, once its visitor
-- is identified, one hot row `rehydrated` under the lead; any other signal is one hot row. So
-- counts of signals read cold rows and hot rows that are not `rehydrated` (each signal once);
-- what belongs to a lead (its touches, its active days) reads every hot row, its anonymous past
-- included; distinct visitors and leads are uniqHLL12 states, which a repeat cannot inflate.
--
-- Read them with GROUP BY and sum / -Merge, never row by row: SummingMergeTree and
-- AggregatingMergeTree fold rows of one key only when parts merge, and on a cluster one key has
-- rows on several shards (a visitor's cold rows live on its shard, its lead's hot rows on the
-- lead's).

-- Signals per org, day (of the event), source, kind and event, each signal once.
-- arrived_anonymous: how many of them arrived without a lead (cold when written).
CREATE TABLE IF NOT EXISTS signals_daily (
    org_id String,
    day Date,
    source String,
    kind String,
    event String,
    signals UInt64,
    arrived_anonymous UInt64
) ENGINE = SummingMergeTree() PARTITION BY toYYYYMM(day) ORDER BY (org_id, day, source, kind, event);

CREATE MATERIALIZED VIEW IF NOT EXISTS signals_daily_from_cold TO signals_daily AS
SELECT org_id, event_date AS day, source, kind, event, count() AS signals, count() AS arrived_anonymous
FROM signals_cold
GROUP BY org_id, day, source, kind, event;

CREATE MATERIALIZED VIEW IF NOT EXISTS signals_daily_from_hot TO signals_daily AS
SELECT org_id, event_date AS day, source, kind, event, count() AS signals, toUInt64(0) AS arrived_anonymous
FROM signals_hot
WHERE attributed_by != 'rehydrated'
GROUP BY org_id, day, source, kind, event;

-- Distinct visitors (anonymous ids) and leads active per org and day. A lead is active on the
-- days of its anonymous past too, once rehydrated. uniqHLL12: a state of 2.5 KB whatever the
-- day's traffic (uniq's grows to 256 KB, and unmerged parts hold one per insert), exact up to
-- 16 ids, within about 1.6% beyond.
CREATE TABLE IF NOT EXISTS active_daily (
    org_id String,
    day Date,
    visitors AggregateFunction(uniqHLL12, String),
    leads AggregateFunction(uniqHLL12, String)
) ENGINE = AggregatingMergeTree() PARTITION BY toYYYYMM(day) ORDER BY (org_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS active_daily_from_cold TO active_daily AS
SELECT org_id, event_date AS day, uniqHLL12StateIf(anonymous_id, anonymous_id != '') AS visitors,
       uniqHLL12StateIf(lead_email, 0) AS leads
FROM signals_cold
GROUP BY org_id, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS active_daily_from_hot TO active_daily AS
SELECT org_id, event_date AS day, uniqHLL12StateIf(anonymous_id, anonymous_id != '') AS visitors,
       uniqHLL12State(lead_email) AS leads
FROM signals_hot
GROUP BY org_id, day;

-- Each lead's signals (its anonymous past included), and its first and last touch: the source
-- and event of its earliest and latest signal by event time (ties broken by signal id).
CREATE TABLE IF NOT EXISTS lead_touches (
    org_id String,
    lead_email String,
    signals AggregateFunction(count),
    anonymous_before AggregateFunction(count),
    first_ms AggregateFunction(min, UInt64),
    first_source AggregateFunction(argMin, String, Tuple(UInt64, UInt64)),
    first_event AggregateFunction(argMin, String, Tuple(UInt64, UInt64)),
    last_ms AggregateFunction(max, UInt64),
    last_source AggregateFunction(argMax, String, Tuple(UInt64, UInt64)),
    last_event AggregateFunction(argMax, String, Tuple(UInt64, UInt64))
) ENGINE = AggregatingMergeTree() ORDER BY (org_id, lead_email);

CREATE MATERIALIZED VIEW IF NOT EXISTS lead_touches_from_hot TO lead_touches AS
SELECT org_id, lead_email, countState() AS signals, countStateIf(attributed_by = 'rehydrated') AS anonymous_before,
       minState(event_ms) AS first_ms,
       argMinState(source, (event_ms, signal_id)) AS first_source, argMinState(event, (event_ms, signal_id)) AS first_event,
       maxState(event_ms) AS last_ms,
       argMaxState(source, (event_ms, signal_id)) AS last_source, argMaxState(event, (event_ms, signal_id)) AS last_event
FROM signals_hot
GROUP BY org_id, lead_email;

-- Each visitor (anonymous id): the event time of its first signal, and of its first signal that
-- arrived attributed to a lead (its identification; 0 while it is anonymous).
CREATE TABLE IF NOT EXISTS visitors (
    org_id String,
    anonymous_id String,
    first_seen_ms AggregateFunction(min, UInt64),
    identified_ms AggregateFunction(min, UInt64)
) ENGINE = AggregatingMergeTree() ORDER BY (org_id, anonymous_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS visitors_from_cold TO visitors AS
SELECT org_id, anonymous_id, minState(event_ms) AS first_seen_ms, minStateIf(event_ms, 0) AS identified_ms
FROM signals_cold
WHERE anonymous_id != ''
GROUP BY org_id, anonymous_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS visitors_from_hot TO visitors AS
SELECT org_id, anonymous_id, minState(event_ms) AS first_seen_ms,
       minStateIf(event_ms, attributed_by != 'rehydrated') AS identified_ms
FROM signals_hot
WHERE anonymous_id != ''
GROUP BY org_id, anonymous_id;
