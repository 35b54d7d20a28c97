//! sigstage on a ClickHouse cluster of the test's own (`scripts/stack.sh clickhouse-cluster`):
//! `sigstage migrate` makes every table `ON CLUSTER` (the signal tables sharded by visitor or
//! lead under `Distributed` tables of the names analysts use, the rest replicated to every
//! node), idempotently, and records the layout so the other one is refused; the pipeline then
//! writes to it exactly once.

use std::time::{Duration, Instant};

use schemas::migrations::{MIGRATIONS, ROLLUPS, SHARDED};

use crate::support::clickhouse_cluster::PrivateClickHouseCluster;
use crate::support::edge::{post_signals, TestEdge};
use crate::support::pipeline::{
    assert_no_row_twice_in, await_count, await_recovered, readyz, start_processor, start_ready, start_sink,
};
use crate::support::{sigstage, stderr, test_vars, TestDb};

/// `query` on `client` until it answers `expected`, for up to 90 s (replicas catch up on their own;
/// after a ZooKeeper outage on a busy machine, one has taken over 30 s to fetch its shard's parts).
async fn await_answer<T>(client: &clickhouse::Client, query: &str, expected: T)
where
    T: PartialEq + std::fmt::Debug + Send + 'static + clickhouse::Row + for<'b> clickhouse::RowRead<Value<'b> = T>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answer = client.query(query).fetch_all::<T>().await;
        if matches!(&answer, Ok(rows) if rows.len() == 1 && rows[0] == expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {answer:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every signal of `accepted` (ids that got a 202) has one hot row, counted physically through
/// both shards, once the stages have recovered.
async fn await_each_hot_once(client: &clickhouse::Client, accepted: &[u64]) {
    let total = accepted.len() as u64;
    await_recovered(client, "SELECT count() FROM signals_hot", total).await;
    await_count(client, "SELECT uniqExact(signal_id) FROM signals_hot", total).await;
    let ids = accepted.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    await_count(client, &format!("SELECT count() FROM signals_hot WHERE signal_id IN ({ids})"), total).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_makes_the_schema_on_a_cluster_sharded_by_visitor_and_lead() {
    let cluster = PrivateClickHouseCluster::start();
    let mut vars = test_vars();
    vars.insert("SIGSTAGE_CLICKHOUSE_URL".into(), cluster.url(1));
    vars.insert("SIGSTAGE_CLICKHOUSE_CLUSTER".into(), "sigstage".into());
    let database = vars["SIGSTAGE_CLICKHOUSE_DATABASE"].clone();

    let first = sigstage(&["migrate"], &vars);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("applied [1"), "{}", stderr(&first));
    let second = sigstage(&["migrate"], &vars);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!("applied [], {} already applied", MIGRATIONS.len())),
        "{}",
        stderr(&second)
    );

    // Every node has every table, each of the engine its layout gives it.
    for node in 1..=4 {
        let client = cluster.client(node, &database);
        let tables: Vec<(String, String)> = client
            .query("SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name")
            .fetch_all()
            .await
            .expect("tables");
        let engine_of = |table: &str| tables.iter().find(|(name, _)| name == table).map(|(_, engine)| engine.as_str());
        let standing = schemas::migrations::tables();
        for &(table, _) in SHARDED.iter().filter(|(table, _)| standing.iter().any(|made| made == table)) {
            assert_eq!(engine_of(table), Some("Distributed"), "node {node}: {tables:?}");
            let engine = match table {
                "signals_daily" => "ReplicatedSummingMergeTree",
                table if ROLLUPS.contains(&table) => "ReplicatedAggregatingMergeTree",
                _ => "ReplicatedReplacingMergeTree",
            };
            assert_eq!(engine_of(&format!("{table}_local")), Some(engine), "node {node}: {table}");
        }
        for view in
            ["signals_daily_from_cold", "active_daily_from_hot", "lead_summaries_from_hot", "visitors_from_cold"]
        {
            assert_eq!(engine_of(view), Some("MaterializedView"), "node {node}: {view}");
        }
        for table in ["api_keys", "orgs", "mapping_rules", "webhook_queue", "schema_migrations"] {
            assert_eq!(engine_of(table), Some("ReplicatedReplacingMergeTree"), "node {node}: {table}");
        }
        assert_eq!(engine_of("usage_daily"), Some("ReplicatedSummingMergeTree"), "node {node}");
        // Written once on node 1, the record of the layout and of each migration is on every node.
        let recorded = "SELECT name FROM schema_migrations FINAL WHERE version = 0";
        await_answer(&client, recorded, "layout: cluster sigstage".to_owned()).await;
        let versions = "SELECT count() FROM schema_migrations FINAL WHERE version > 0";
        await_answer(&client, versions, MIGRATIONS.len() as u64).await;
    }

    // The same database, migrated as one server's: refused, naming the setting.
    let mut single = vars.clone();
    single.remove("SIGSTAGE_CLICKHOUSE_CLUSTER");
    single.insert("SIGSTAGE_CLICKHOUSE_URL".into(), cluster.url(3));
    let refused = sigstage(&["migrate"], &single);
    assert!(!refused.status.success(), "{}", stderr(&refused));
    assert!(
        stderr(&refused)
            .contains(r#"was made as "layout: cluster sigstage", and this migrate is for "layout: single""#),
        "{}",
        stderr(&refused)
    );

    // Rows written through the Distributed table land on the shard of their visitor: each
    // visitor's cold signals on one shard, the shard's replicas equal, nothing twice.
    let writer = cluster.client(2, &database).with_setting("insert_distributed_sync", "1");
    let values: Vec<String> = (0..60).map(|n| format!("('acme', 'v{}', {n}, 1795000000000)", n % 20)).collect();
    writer
        .query(&format!(
            "INSERT INTO signals_cold (org_id, anonymous_id, signal_id, event_ms) VALUES {}",
            values.join(",")
        ))
        .execute()
        .await
        .expect("written through signals_cold");
    // What each node holds once replication settled: (visitors, rows) of its local table.
    let query = "SELECT groupArray(anonymous_id), sum(rows) FROM \
                 (SELECT anonymous_id, count() AS rows FROM signals_cold_local GROUP BY anonymous_id ORDER BY anonymous_id)";
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        let mut held: Vec<(Vec<String>, u64)> = Vec::new();
        for node in 1..=4 {
            held.push(cluster.client(node, &database).query(query).fetch_one().await.expect("visitors and rows"));
        }
        let settled = held[0] == held[1] && held[2] == held[3] && held[0].1 + held[2].1 == 60;
        if settled || Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(held[0] == held[1] && held[2] == held[3], "a shard's replicas differ: {held:?}");
    let visitors_of_shard = [held[0].0.clone(), held[2].0.clone()];
    for (visitors, rows) in [&held[0], &held[2]] {
        assert_eq!(*rows, 3 * visitors.len() as u64, "every signal of a shard's visitors, once: {held:?}");
    }
    assert!(
        visitors_of_shard.iter().all(|visitors| !visitors.is_empty()),
        "both shards hold visitors: {visitors_of_shard:?}"
    );
    assert!(
        visitors_of_shard[0].iter().all(|visitor| !visitors_of_shard[1].contains(visitor)),
        "{visitors_of_shard:?}"
    );
    assert_eq!(visitors_of_shard[0].len() + visitors_of_shard[1].len(), 20);
    let through_distributed: u64 =
        cluster.client(4, &database).query("SELECT count() FROM signals_cold").fetch_one().await.expect("count");
    assert_eq!(through_distributed, 60);
}

/// The pipeline end to end on a cluster: the sink writes through the Distributed tables, the
/// rehydration of an identified visitor is exact, the analyst queries answer as on one server,
/// and, counted without `FINAL` on each replica's local table, no row is there twice and the two
/// replicas of a shard hold the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_on_a_cluster_rehydrates_once_and_answers_as_one_server() {
    let cluster = PrivateClickHouseCluster::start();
    let db = cluster.migrated_db(1).await;
    let database = db.config.clickhouse.database.clone();
    let edge = TestEdge::start_on(db).await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let uri = format!("/api/signal-staging/webhook/{key}");
    let track = |n: u32| format!(r#"{{"type":"track","event":"Viewed","anonymousId":"v1","messageId":"t{n}"}}"#);
    for n in 1..=3 {
        assert_eq!(edge.post_json(&uri, &track(n)).await.status, 202);
    }
    let client = &edge.db.client;
    await_count(client, "SELECT count() FROM signals_cold FINAL WHERE anonymous_id = 'v1'", 3).await;
    let identify = r#"{"type":"identify","anonymousId":"v1","messageId":"i1","traits":{"email":"jo@acme.io"}}"#;
    assert_eq!(edge.post_json(&uri, identify).await.status, 202);
    assert_eq!(edge.post_json(&uri, &track(4)).await.status, 202);

    // 3 rehydrated, the identify, and the track after it; the analysts' invariant holds.
    await_count(client, "SELECT count() FROM signals_hot FINAL WHERE lead_email = 'jo@acme.io'", 5).await;
    await_count(client, &crate::support::pipeline::library_query("unlinked_cold_signals", "acme", &[]), 0).await;
    await_count(client, "SELECT count() FROM leads FINAL WHERE email = 'jo@acme.io'", 1).await;
    await_count(client, "SELECT count() FROM identities FINAL WHERE anonymous_id = 'v1'", 1).await;
    let attributions: Vec<(String, u64)> = client
        .query("SELECT attributed_by, count() FROM signals_hot FINAL GROUP BY attributed_by ORDER BY attributed_by")
        .fetch_all()
        .await
        .expect("attributions");
    let expected = [("identity", 1), ("rehydrated", 3), ("signal", 1)].map(|(a, n)| (a.to_owned(), n));
    assert_eq!(attributions, expected);
    sink.stop().await;
    processor.stop().await;

    // Physically, on each replica: every row once, the two replicas of a shard alike, and the
    // lead's signals on one shard.
    let held = "SELECT (SELECT count() FROM signals_hot_local), (SELECT count() FROM signals_cold_local), \
                (SELECT count() FROM identities_local), (SELECT count() FROM leads_local)";
    let mut per_shard = Vec::new();
    for (first, second) in [(1, 2), (3, 4)] {
        let rows: (u64, u64, u64, u64) =
            cluster.client(first, &database).query(held).fetch_one().await.expect("rows held");
        await_answer(&cluster.client(second, &database), held, rows).await;
        for node in [first, second] {
            assert_no_row_twice_in(&cluster.client(node, &database), "_local").await;
        }
        per_shard.push(rows);
    }
    assert_eq!(per_shard[0].0 + per_shard[1].0, 5, "hot rows: {per_shard:?}");
    assert!(per_shard[0].0 == 0 || per_shard[1].0 == 0, "a lead's hot rows on one shard: {per_shard:?}");
    assert_eq!(per_shard[0].1 + per_shard[1].1, 3, "cold rows: {per_shard:?}");
    assert_eq!((per_shard[0].2 + per_shard[1].2, per_shard[0].3 + per_shard[1].3), (1, 1), "{per_shard:?}");

    // Deleting the person on a cluster: every node's local tables, each replica, hold none of it.
    let deleted = sigstage(&["people", "delete", "--org", "acme", "--email", "jo@acme.io"], &edge.db.vars);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let left = "SELECT (SELECT count() FROM signals_hot_local WHERE lead_email = 'jo@acme.io' OR anonymous_id = 'v1') \
                + (SELECT count() FROM signals_cold_local WHERE anonymous_id = 'v1') \
                + (SELECT count() FROM identities_local WHERE anonymous_id = 'v1') \
                + (SELECT count() FROM leads_local WHERE email = 'jo@acme.io')";
    for node in 1..=4 {
        await_answer(&cluster.client(node, &database), left, 0u64).await;
    }
}

/// Under steady load through the edge, the stream and the sink, SIGKILL the first replica of
/// shard 1 (whom the sink's node sends that shard's inserts and reads while it is up) and start
/// it again later: every signal that got a 202 has one hot row, counted without `FINAL`; the
/// restarted replica catches up to its peer, its replication queue empty and nothing read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_nothing_and_catches_up() {
    let cluster = PrivateClickHouseCluster::start();
    // Through node 3 (shard 2), which forwards shard 1's rows to whichever of nodes 1 and 2 is up.
    let db = cluster.migrated_db(3).await;
    let database = db.config.clickhouse.database.clone();
    let edge = TestEdge::start_on(db).await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());

    let (mut accepted, _) = post_signals(&edge, &uri, 0, 300).await;
    let client = &edge.db.client;
    await_count(client, "SELECT count() FROM signals_hot", accepted.len() as u64).await;
    cluster.kill(1);
    let killed_at = Instant::now();
    let (during, refused) = post_signals(&edge, &uri, 300, 900).await;
    assert_eq!((during.len(), refused), (600, 0), "the edge does not wait on ClickHouse");
    // Written while node 1 was down: through node 2. (Rows node 1 took just before it was
    // killed may not have reached node 2 yet: those are on node 1's disk, and counted below.)
    let during_ids = during.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    await_count(client, &format!("SELECT count() FROM signals_hot WHERE signal_id IN ({during_ids})"), 600).await;
    accepted.extend(during);
    cluster.restart();
    let down_for = killed_at.elapsed();
    let restarted_at = Instant::now();
    let (after, _) = post_signals(&edge, &uri, 900, 1200).await;
    accepted.extend(after);

    // Every accepted signal once: counted physically, through both shards.
    let total = accepted.len() as u64;
    await_each_hot_once(client, &accepted).await;
    sink.stop().await;
    processor.stop().await;

    // Node 1 caught up: the same rows as node 2, nothing queued, not read-only.
    let (node1, node2) = (cluster.client(1, &database), cluster.client(2, &database));
    let held = "SELECT (SELECT count() FROM signals_hot_local), (SELECT count() FROM leads_local)";
    let survivor: (u64, u64) = node2.query(held).fetch_one().await.expect("node 2's rows");
    let deadline = Instant::now() + Duration::from_secs(120);
    let caught_up = loop {
        let rows: Result<(u64, u64), _> = node1.query(held).fetch_one().await;
        let queue: Result<u64, _> = node1
            .query("SELECT count() FROM system.replication_queue WHERE database = currentDatabase()")
            .fetch_one()
            .await;
        let read_only: Result<u64, _> = node1
            .query("SELECT sum(is_readonly) FROM system.replicas WHERE database = currentDatabase()")
            .fetch_one()
            .await;
        if matches!((&rows, &queue, &read_only), (Ok(rows), Ok(0), Ok(0)) if *rows == survivor) {
            break restarted_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "node 1 behind: {rows:?} of {survivor:?}, queue {queue:?}, read-only {read_only:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for node in 1..=4 {
        assert_no_row_twice_in(&cluster.client(node, &database), "_local").await;
    }
    eprintln!(
        "{total} signals accepted; node 1 down for {down_for:?}, caught up {caught_up:?} after its restart; \
         shard 1 holds {survivor:?} (hot rows, leads)"
    );
}

/// ZooKeeper lost for a while under load: the replicated tables refuse writes, so the sink
/// waits, and its `/readyz` says on what; once ZooKeeper is back it goes on by itself, and every
/// signal that got a 202 has one hot row, counted physically, a shard's replicas alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_waits_out_a_zookeeper_outage_and_loses_nothing() {
    let cluster = PrivateClickHouseCluster::start();
    let edge = TestEdge::start_on(cluster.migrated_db(3).await).await;
    let database = edge.db.config.clickhouse.database.clone();
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let processor = start_processor(&edge.db.config);
    let sink = start_ready(&edge.db.vars, &["sink"], &[])
        .await
        .unwrap_or_else(|(status, logs)| panic!("sigstage sink: {status}: {logs}"));
    let (mut accepted, _) = post_signals(&edge, &uri, 0, 200).await;
    let client = &edge.db.client;
    await_count(client, "SELECT count() FROM signals_hot", accepted.len() as u64).await;
    let (code, ready) = readyz(&sink.addr).await;
    assert_eq!(code, 200, "{ready}");

    cluster.kill_zookeeper();
    let lost_at = Instant::now();
    let (during, refused) = post_signals(&edge, &uri, 200, 500).await;
    assert_eq!((during.len(), refused), (300, 0), "the edge does not wait on ClickHouse");
    accepted.extend(during);
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let (code, ready) = readyz(&sink.addr).await;
        if ready["stages"]["sink"]["status"] == "waiting" {
            assert_eq!(code, 503, "{ready}");
            break ready["stages"]["sink"].clone();
        }
        assert!(Instant::now() < deadline, "the sink never showed as waiting: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(waiting["on"], "clickhouse", "{waiting}");
    assert!(waiting["failures"].as_u64() > Some(0), "{waiting}");
    cluster.restart();
    let down_for = lost_at.elapsed();
    let (after, _) = post_signals(&edge, &uri, 500, 600).await;
    accepted.extend(after);

    let total = accepted.len() as u64;
    await_each_hot_once(client, &accepted).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, ready) = readyz(&sink.addr).await;
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the sink never showed as ready again: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sink.stop().await;
    processor.stop().await;
    let held = "SELECT (SELECT count() FROM signals_hot_local), (SELECT count() FROM leads_local)";
    for (first, second) in [(1, 2), (3, 4)] {
        let rows: (u64, u64) = cluster.client(first, &database).query(held).fetch_one().await.expect("rows held");
        await_answer(&cluster.client(second, &database), held, rows).await;
    }
    for node in 1..=4 {
        assert_no_row_twice_in(&cluster.client(node, &database), "_local").await;
    }
    eprintln!("{total} signals accepted; ZooKeeper down for {down_for:?}; the sink waited on: {waiting}");
}

/// The sink killed mid-batch on a cluster, at each point the one-server tests kill it
/// (`exactly_once::sink_killed_at`): every row once through the Distributed tables, and on
/// every replica's local tables, counted physically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_killed_mid_batch_on_a_cluster_writes_each_row_once() {
    let cluster = PrivateClickHouseCluster::start();
    for fault in ["sink.some_rows_written:1", "sink.rehydrating:1", "sink.before_commit:1"] {
        let db = cluster.migrated_db(1).await;
        crate::exactly_once::sink_killed_at(&db, fault).await;
        for node in 1..=4 {
            assert_no_row_twice_in(&cluster.client(node, &db.config.clickhouse.database), "_local").await;
        }
    }
}

/// From one server to a cluster, and back, as docs/clickhouse-cluster.md tells a user to:
/// `sigstage copy` into a database in the cluster layout takes every row of every table,
/// counted without `FINAL` against its source, each lead's rows on one shard; a second copy into
/// it is refused; and the cluster's tables copied back into a database on one server hold
/// exactly the first one's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_moves_from_one_server_to_the_cluster_and_back() {
    let cluster = PrivateClickHouseCluster::start();
    let single = TestDb::migrated().await;
    for statement in [
        "INSERT INTO orgs (org_id, name, version) VALUES ('acme', 'Acme', 1), ('acme', 'Acme Inc', 2)",
        "INSERT INTO signals_hot (org_id, lead_email, signal_id, event_ms, rules) SELECT 'acme', \
         concat('lead', toString(number % 50), '@acme.io'), number, 1795000000000 + number * 3600000, ['r1'] \
         FROM system.numbers LIMIT 3000",
        "INSERT INTO signals_cold (org_id, anonymous_id, signal_id, event_ms) SELECT 'acme', \
         concat('v', toString(number % 70)), 100000 + number, 1795000000000 FROM system.numbers LIMIT 2000",
        "INSERT INTO identities (org_id, anonymous_id, email) SELECT 'acme', concat('v', toString(number)), \
         concat('lead', toString(number), '@acme.io') FROM system.numbers LIMIT 40",
        "INSERT INTO leads (org_id, email) SELECT 'acme', concat('lead', toString(number), '@acme.io') \
         FROM system.numbers LIMIT 50",
    ] {
        single.client.query(statement).execute().await.expect(statement);
    }
    // What a database holds, physically: each table's rows and a checksum of them.
    let contents = "SELECT (SELECT count() FROM orgs), (SELECT count() FROM signals_hot), \
                    (SELECT sum(cityHash64(lead_email, signal_id, event_date, rules)) FROM signals_hot), \
                    (SELECT count() FROM signals_cold), (SELECT count() FROM identities), (SELECT count() FROM leads)";
    let original: (u64, u64, u64, u64, u64, u64) = single.client.query(contents).fetch_one().await.expect("contents");
    assert_eq!((original.0, original.1, original.3, original.4, original.5), (2, 3000, 2000, 40, 50));
    let copy_from = |db: &TestDb, url: &str, database: &str| {
        sigstage(&["copy", "--from-url", url, "--from-database", database], &db.vars)
    };

    let on_cluster = cluster.migrated_db(2).await;
    let copied = copy_from(&on_cluster, &single.config.clickhouse.url, &single.config.clickhouse.database);
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert!(stderr(&copied).contains("copy: signals_hot: 3000 rows"), "{}", stderr(&copied));
    let there: (u64, u64, u64, u64, u64, u64) = on_cluster.client.query(contents).fetch_one().await.expect("contents");
    assert_eq!(there, original);
    // Sharded by lead: each lead's hot rows on one shard, both shards used, nothing twice.
    let database = &on_cluster.config.clickhouse.database;
    let leads_of = "SELECT groupUniqArray(lead_email) FROM signals_hot_local";
    let (first, second): (Vec<String>, Vec<String>) = (
        cluster.client(1, database).query(leads_of).fetch_one().await.expect("shard 1"),
        cluster.client(3, database).query(leads_of).fetch_one().await.expect("shard 2"),
    );
    assert!(!first.is_empty() && !second.is_empty() && first.iter().all(|lead| !second.contains(lead)));
    assert_eq!(first.len() + second.len(), 50);
    for node in 1..=4 {
        assert_no_row_twice_in(&cluster.client(node, database), "_local").await;
    }
    let again = copy_from(&on_cluster, &single.config.clickhouse.url, &single.config.clickhouse.database);
    assert!(!again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("holds 2 rows already: copy into a database no role"), "{}", stderr(&again));

    let back = TestDb::migrated().await;
    let copied = copy_from(&back, &cluster.url(4), database);
    assert!(copied.status.success(), "{}", stderr(&copied));
    let returned: (u64, u64, u64, u64, u64, u64) = back.client.query(contents).fetch_one().await.expect("contents");
    assert_eq!(returned, original);
}

/// The analysts' library on a cluster: the rollups' views run on every node, from each shard's
/// signal tables to its share of the rollups, and every question answers exactly as on one
/// server (see `analytics::library_answers_exactly`); `sigstage rollups rebuild` fills them
/// again, the same. `sigstage rollups compact` refuses, saying why: 18.16 cannot merge a
/// replicated table to one part from any replica (see `sink::compact`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_library_query_answers_exactly_on_a_cluster() {
    let cluster = PrivateClickHouseCluster::start();
    let edge = TestEdge::start_on(cluster.migrated_db(1).await).await;
    crate::analytics::library_answers_exactly(&edge).await;

    // Emptied on every node and rebuilt from the signal tables, the rollups answer the same.
    let client = &edge.db.client;
    let by_views = crate::analytics::rollup_answers(client).await;
    for rollup in ROLLUPS {
        client.query(&format!("TRUNCATE TABLE {rollup}_local ON CLUSTER sigstage")).execute().await.expect(rollup);
    }
    assert_ne!(crate::analytics::rollup_answers(client).await, by_views, "emptied on every node");
    let rebuilt = sigstage(&["rollups", "rebuild"], &edge.db.vars);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert_eq!(crate::analytics::rollup_answers(client).await, by_views);
    let compacted = sigstage(&["rollups", "compact"], &edge.db.vars);
    let said = stderr(&compacted);
    assert!(!compacted.status.success() && said.contains("ClickHouse 18.16") && said.contains("#3611"), "{said}");
}
