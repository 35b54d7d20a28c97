-- lead_summaries: what lead_touches (migration 9) kept, with each lead's first and last touch as
-- one min / max of a string that sorts as (event time, signal id). lead_touches kept them as six
-- argMin / argMax / min / max states, which 18.16 folds through generic values: 1.3 s to fold
-- 1.3 M leads, where these two take 0.6 s. The touch string is, in order: the event time in
-- milliseconds plus 10^13 (14 digits), the signal id's high and low ten digits each plus 10^10
-- (11 digits each), the length of the source plus 100000 (6 digits), the source, the event.
-- schemas/queries/first_and_last_touch.sql reads it.
--
-- A table of a new name, so that on a cluster its replicas have a path of their own in ZooKeeper
-- (one of a table dropped while a replica was down can outlive it). lead_touches and its view
-- are dropped first, the view before its table, so no insert feeds a table that is gone. A
-- database with signals in it answers the lead questions only for what is written after this
-- migration, until `sigstage rollups rebuild` runs with the sink stopped (docs/analytics.md).
DROP TABLE IF EXISTS lead_touches_from_hot;

DROP TABLE IF EXISTS lead_touches;

CREATE TABLE IF NOT EXISTS lead_summaries (
    org_id String,
    lead_email String,
    signals AggregateFunction(count),
    anonymous_before AggregateFunction(count),
    first_touch AggregateFunction(min, String),
    last_touch AggregateFunction(max, String)
) ENGINE = AggregatingMergeTree() ORDER BY (org_id, lead_email);

CREATE MATERIALIZED VIEW IF NOT EXISTS lead_summaries_from_hot TO lead_summaries AS
SELECT org_id, lead_email, countState() AS signals, countStateIf(attributed_by = 'rehydrated') AS anonymous_before,
       minState(concat(toString(event_ms + 10000000000000), toString(intDiv(signal_id, 10000000000) + 10000000000),
                       toString(signal_id % 10000000000 + 10000000000), toString(length(source) + 100000), source,
                       event) AS touch) AS first_touch,
       maxState(touch) AS last_touch
FROM signals_hot
GROUP BY org_id, lead_email;
