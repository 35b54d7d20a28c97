-- Rules applied to stored signals (`sigstage rules apply`, control/src/apply.rs): one row per
-- job, a new version at each step (its state and how far it has read); read with FINAL. A job
-- resumes from its cursor, the (event time, signal id) of the last signal it sent on.
CREATE TABLE IF NOT EXISTS history_jobs (
    org_id String,
    job_id String,
    rule_id String,
    since_ms UInt64,
    until_ms UInt64,
    state String,
    cursor_ms UInt64,
    cursor_id UInt64,
    total UInt64,
    read UInt64,
    sent UInt64,
    error String,
    -- Stored signals read a second, at most.
    rate UInt32,
    started_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, job_id);
