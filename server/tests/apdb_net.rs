//! The APDB over the protocol: a server with an APDB and the blocking
//! client. Stores sent over TCP read back equal to an embedded APDB that
//! stored the same visits directly; a replica follows its primary over TCP
//! and reads the same at the same sequence number; bad input is a clear
//! error and stores nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};

use skyscan_client::{
    ApdbRegion, ApdbStore, Client, ClientError, ConnectOptions, ErrorCode, QueryOutcome,
};
use skyscan_engine::apdb::workload::{Visit, Workload, WorkloadConfig};
use skyscan_engine::apdb::{Apdb, ApdbConfig, ApdbLayout, FelisSchema, ResultSet, StoreRequest};
use skyscan_engine::catalog::Database;
use skyscan_engine::query::{EngineOptions, QueryEngine};
use skyscan_engine::table::Table;
use skyscan_server::apdb_service::{ApdbService, arrow_schema_of};
use skyscan_server::arrow_conv::to_record_batch;
use skyscan_server::{ServerConfig, ServerHandle};

fn felis() -> FelisSchema {
    let path = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../shared/testdata/apdb/apdb.yaml");
    FelisSchema::from_file(&path).unwrap()
}

fn config() -> ApdbConfig {
    ApdbConfig {
        background_compaction: false,
        flush_rows: 2_000,
        ..ApdbConfig::default()
    }
}

fn workload(seed: u64) -> Workload {
    let config = WorkloadConfig {
        seed,
        patch_radius_deg: 2.0,
        fov_radius_deg: 1.75,
        variables_per_field: 200,
        noise_per_visit: 40,
        days_per_visit: 5.0,
        ..WorkloadConfig::default()
    };
    Workload::new(config, ApdbLayout::new(felis()).unwrap())
}

fn open_primary(dir: &std::path::Path) -> Arc<Apdb> {
    Arc::new(Apdb::open_with_schema(dir, felis(), config()).unwrap().0)
}

fn engine(root: &std::path::Path) -> Arc<QueryEngine> {
    Database::create(root, &[]).unwrap();
    Arc::new(QueryEngine::new(
        Database::open(root).unwrap(),
        EngineOptions::default(),
    ))
}

fn serve(root: &std::path::Path, apdb: Option<Arc<ApdbService>>, max_frame: u32) -> ServerHandle {
    let engine = engine(root);
    if let Some(service) = &apdb {
        engine.attach_apdb("apdb", Arc::clone(service.apdb()));
    }
    skyscan_server::start(
        engine,
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            log: false,
            max_frame_bytes: max_frame,
            apdb,
            ..ServerConfig::default()
        },
    )
    .unwrap()
}

fn connect(server: &ServerHandle) -> Client {
    Client::connect(server.local_addr(), &ConnectOptions::default()).unwrap()
}

fn batch_of(table: &Table) -> RecordBatch {
    to_record_batch(&arrow_schema_of(&table.schema), table.columns.clone()).unwrap()
}

fn wire_store(req: &StoreRequest) -> ApdbStore {
    ApdbStore {
        visit_time: req.visit_time,
        visit_detectors: req.visit_detectors.clone(),
        objects: vec![batch_of(&req.objects)],
        sources: vec![batch_of(&req.sources)],
        forced_sources: vec![batch_of(&req.forced_sources)],
        close_object_ids: req.close_object_ids.clone(),
    }
}

/// A result as one record batch.
fn concat(outcome: &QueryOutcome) -> RecordBatch {
    arrow_select::concat::concat_batches(&outcome.schema, &outcome.batches).unwrap()
}

/// An embedded result as one record batch, converted as the server does.
fn concat_embedded(set: &ResultSet) -> RecordBatch {
    let schema = arrow_schema_of(&set.schema);
    let batches: Vec<RecordBatch> = set
        .batches
        .iter()
        .map(|t| to_record_batch(&schema, t.columns.clone()).unwrap())
        .collect();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

fn ids(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let index = batch.schema().index_of(column).unwrap();
    let array = batch
        .column(index)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    array.values().to_vec()
}

fn region_of(visit: &Visit) -> ApdbRegion {
    ApdbRegion::Circle {
        ra_deg: visit.ra_deg,
        dec_deg: visit.dec_deg,
        radius_deg: 1.75,
    }
}

/// Reads of one visit's region through `client`.
fn wire_reads(client: &mut Client, visit: &Visit) -> [RecordBatch; 3] {
    let region = region_of(visit);
    let objects = concat(&client.apdb_get_dia_objects(&region).unwrap());
    let object_ids = ids(&objects, "diaObjectId");
    let sources = concat(
        &client
            .apdb_get_dia_sources(&region, &object_ids, visit.time + 1.0, 12)
            .unwrap(),
    );
    let forced = concat(
        &client
            .apdb_get_dia_forced_sources(&region, &object_ids, visit.time + 1.0, 12)
            .unwrap(),
    );
    [objects, sources, forced]
}

fn embedded_reads(apdb: &Apdb, visit: &Visit) -> [RecordBatch; 3] {
    let region = skyscan_engine::apdb::circle(visit.ra_deg, visit.dec_deg, 1.75).unwrap();
    let objects = concat_embedded(&apdb.get_dia_objects(&region).unwrap());
    let object_ids = ids(&objects, "diaObjectId");
    let sources = concat_embedded(
        &apdb
            .get_dia_sources(&region, &object_ids, visit.time + 1.0, 12)
            .unwrap(),
    );
    let forced = concat_embedded(
        &apdb
            .get_dia_forced_sources(&region, &object_ids, visit.time + 1.0, 12)
            .unwrap(),
    );
    [objects, sources, forced]
}

fn server_code(err: ClientError) -> ErrorCode {
    match err {
        ClientError::Server { code, .. } => code,
        other => panic!("expected a server error, got {other}"),
    }
}

#[test]
fn stores_over_tcp_read_back_like_the_embedded_apdb() {
    let dir = tempfile::tempdir().unwrap();
    let served = open_primary(&dir.path().join("served"));
    let embedded = open_primary(&dir.path().join("embedded"));
    // A small frame limit: every visit's store travels in several frames.
    let server = serve(
        &dir.path().join("db"),
        Some(ApdbService::primary(Arc::clone(&served)).unwrap()),
        64 << 10,
    );
    let mut client = connect(&server);
    let schema = client
        .apdb_schema(skyscan_client::ApdbTableId::DiaObject)
        .unwrap();
    assert_eq!(
        schema.fields().len(),
        embedded
            .schema(skyscan_engine::apdb::ApdbTable::DiaObject)
            .columns
            .len()
    );
    let mut work = workload(11);
    let mut visits = Vec::new();
    for _ in 0..10 {
        let visit = work.next_visit();
        let req = visit.store_request();
        let seq = client.apdb_store(&wire_store(&req)).unwrap();
        assert_eq!(seq, embedded.store(&req).unwrap().seq);
        assert!(req.sources.rows() > 0);
        let [o, s, f] = wire_reads(&mut client, &visit);
        let [eo, es, ef] = embedded_reads(&embedded, &visit);
        assert!(o.num_rows() > 0 && s.num_rows() > 0);
        assert_eq!(o, eo, "objects after visit {}", visit.visit);
        assert_eq!(s, es, "sources after visit {}", visit.visit);
        assert_eq!(f, ef, "forced sources after visit {}", visit.visit);
        let detector = req.visit_detectors[0];
        assert!(
            client
                .apdb_contains_visit_detector(detector.0, detector.1)
                .unwrap()
        );
        assert!(
            !client
                .apdb_contains_visit_detector(detector.0 + 100_000, detector.1)
                .unwrap()
        );
        visits.push(visit);
    }
    assert_eq!(
        client.apdb_count_unassociated_objects().unwrap(),
        embedded.count_unassociated_objects()
    );
    // Re-associate two sources of the last visit, on both.
    let last = visits.last().unwrap();
    let source_ids = ids(&batch_of(&last.sources), "diaSourceId");
    let pairs = [(source_ids[0], 900_001), (source_ids[1], 900_002)];
    let time = last.time + 0.5;
    let seq = client.apdb_reassign_dia_sources(&pairs, time).unwrap();
    assert_eq!(
        seq,
        embedded.reassign_dia_sources(&pairs, time).unwrap().seq
    );
    let err = client.apdb_reassign_dia_sources(&pairs, time).unwrap_err();
    assert_eq!(server_code(err), ErrorCode::InvalidArgument);
    // After the re-association time the sources are gone from the reads.
    let later = Visit {
        time: time + 1.0,
        ..last.clone()
    };
    let [_, s, _] = wire_reads(&mut client, &later);
    let [_, es, _] = embedded_reads(&embedded, &later);
    assert_eq!(s, es);
    assert!(!ids(&s, "diaSourceId").contains(&source_ids[0]));
    // A polygon region too.
    let (ra, dec) = (last.ra_deg, last.dec_deg);
    let vertices = vec![
        (ra - 1.0, dec - 1.0),
        (ra + 1.0, dec - 1.0),
        (ra + 1.0, dec + 1.0),
        (ra - 1.0, dec + 1.0),
    ];
    let wire = concat(
        &client
            .apdb_get_dia_objects(&ApdbRegion::Polygon(vertices.clone()))
            .unwrap(),
    );
    let local = concat_embedded(
        &embedded
            .get_dia_objects(&skyscan_engine::apdb::polygon(&vertices).unwrap())
            .unwrap(),
    );
    assert!(wire.num_rows() > 0);
    assert_eq!(wire, local);
    // The live tables answer SQL through the same server.
    let outcome = client
        .query_all("SELECT COUNT(*) FROM apdb.DiaSource")
        .unwrap();
    let count = outcome.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(count as u64, embedded.stats().rows[1]);
    server.shutdown();
}

fn wait_for_seq(replica: &mut Client, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = replica.apdb_status().unwrap();
        if status.seq >= seq && status.primary_seq >= seq {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not reach seq {seq}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_replica_follows_its_primary_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let primary_apdb = open_primary(&dir.path().join("primary"));
    let primary = serve(
        &dir.path().join("db1"),
        Some(ApdbService::primary(Arc::clone(&primary_apdb)).unwrap()),
        64 << 10,
    );
    let replica_apdb =
        Arc::new(Apdb::open_replica(&dir.path().join("replica"), felis(), config()).unwrap());
    let replica = serve(
        &dir.path().join("db2"),
        Some(
            ApdbService::replica(
                Arc::clone(&replica_apdb),
                &primary.local_addr().to_string(),
                ConnectOptions::default(),
            )
            .unwrap(),
        ),
        17 << 20,
    );
    let mut writer = connect(&primary);
    let mut reader = connect(&replica);
    let status = reader.apdb_status().unwrap();
    assert!(status.replica);
    assert_eq!(status.upstream, primary.local_addr().to_string());
    let mut work = workload(5);
    let mut visits = Vec::new();
    for round in 0..2 {
        let mut seq = 0;
        for _ in 0..6 {
            let visit = work.next_visit();
            seq = writer
                .apdb_store(&wire_store(&visit.store_request()))
                .unwrap();
            visits.push(visit);
        }
        wait_for_seq(&mut reader, seq);
        let status = reader.apdb_status().unwrap();
        assert_eq!(
            (status.seq, status.primary_seq, status.lag_records),
            (seq, seq, 0)
        );
        assert!(status.upstream_connected, "{status:?}");
        assert_eq!(writer.apdb_status().unwrap().seq, seq);
        // Same reads on both at the same seq, over the protocol.
        for visit in visits.iter().rev().take(4) {
            let on_primary = wire_reads(&mut writer, visit);
            let on_replica = wire_reads(&mut reader, visit);
            assert!(on_primary[0].num_rows() > 0);
            assert_eq!(
                on_primary, on_replica,
                "round {round}, visit {}",
                visit.visit
            );
        }
        // The replica refuses writes; nothing is stored anywhere.
        let visit = work.next_visit();
        let err = reader
            .apdb_store(&wire_store(&visit.store_request()))
            .unwrap_err();
        assert_eq!(server_code(err), ErrorCode::ReadOnly);
        let err = reader
            .apdb_reassign_dia_sources(&[(1, 2)], 61000.0)
            .unwrap_err();
        assert_eq!(server_code(err), ErrorCode::ReadOnly);
        assert_eq!(reader.apdb_status().unwrap().seq, seq);
        assert_eq!(writer.apdb_status().unwrap().seq, seq);
        // The visit the replica refused goes to the primary.
        writer
            .apdb_store(&wire_store(&visit.store_request()))
            .unwrap();
        visits.push(visit);
    }
    // The replica's SQL sees the primary's rows.
    let seq = writer.apdb_status().unwrap().seq;
    wait_for_seq(&mut reader, seq);
    let count = |client: &mut Client| {
        client
            .query_all("SELECT COUNT(*) FROM apdb.DiaObject")
            .unwrap()
            .batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(count(&mut writer), count(&mut reader));
    replica.shutdown();
    primary.shutdown();
}

#[test]
fn bad_requests_are_clear_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A server without an APDB answers UNSUPPORTED and keeps the connection.
    let plain = serve(&dir.path().join("db0"), None, 17 << 20);
    let mut client = connect(&plain);
    let region = ApdbRegion::Circle {
        ra_deg: 45.0,
        dec_deg: -30.0,
        radius_deg: 1.0,
    };
    let err = client.apdb_get_dia_objects(&region).unwrap_err();
    assert_eq!(server_code(err), ErrorCode::Unsupported);
    let err = client.apdb_store(&ApdbStore::default()).unwrap_err();
    assert_eq!(server_code(err), ErrorCode::Unsupported);
    client.ping().unwrap();
    plain.shutdown();

    let apdb = open_primary(&dir.path().join("apdb"));
    let server = serve(
        &dir.path().join("db1"),
        Some(ApdbService::primary(Arc::clone(&apdb)).unwrap()),
        64 << 10,
    );
    let mut client = connect(&server);
    let mut work = workload(3);
    let visit = work.next_visit();
    let req = visit.store_request();
    let (v, d) = req.visit_detectors[0];
    let nothing_stored = |client: &mut Client| {
        assert_eq!(client.apdb_status().unwrap().seq, 0);
        assert!(!client.apdb_contains_visit_detector(v, d).unwrap());
        assert_eq!(apdb.stats().seq, 0);
    };

    // A column of the wrong type.
    let mut store = wire_store(&req);
    let objects = &store.objects[0];
    let ra = objects.schema().index_of("ra").unwrap();
    let mut fields: Vec<Field> = objects
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[ra] = Field::new("ra", DataType::Utf8, true);
    let mut columns: Vec<ArrayRef> = objects.columns().to_vec();
    columns[ra] = Arc::new(StringArray::from(vec!["x"; objects.num_rows()]));
    store.objects = vec![RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()];
    let err = client.apdb_store(&store).unwrap_err();
    let text = err.to_string();
    assert_eq!(server_code(err), ErrorCode::InvalidArgument);
    assert!(text.contains("ra"), "{text}");
    nothing_stored(&mut client);

    // A column the schema does not have.
    let mut store = wire_store(&req);
    let sources = &store.sources[0];
    let mut fields: Vec<Field> = sources
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("noSuchColumn", DataType::Int64, true));
    let mut columns: Vec<ArrayRef> = sources.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(vec![1; sources.num_rows()])));
    store.sources = vec![RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()];
    let err = client.apdb_store(&store).unwrap_err();
    let text = err.to_string();
    assert_eq!(server_code(err), ErrorCode::InvalidArgument);
    assert!(text.contains("noSuchColumn"), "{text}");
    nothing_stored(&mut client);

    // Bytes that are not a store body, and a table that is not Arrow.
    let err = client.apdb_store_bytes(b"not a store").unwrap_err();
    assert_eq!(server_code(err), ErrorCode::Malformed);
    let mut body = skyscan_client::proto::ApdbStoreBody {
        visit_time: req.visit_time,
        visit_detectors: req.visit_detectors.clone(),
        ..Default::default()
    };
    body.tables[1] = b"garbage".to_vec();
    let err = client.apdb_store_bytes(&body.encode()).unwrap_err();
    assert_eq!(server_code(err), ErrorCode::InvalidArgument);
    nothing_stored(&mut client);

    // Bad regions, a bad visit time.
    let bad = ApdbRegion::Circle {
        ra_deg: 45.0,
        dec_deg: -30.0,
        radius_deg: -1.0,
    };
    assert_eq!(
        server_code(client.apdb_get_dia_objects(&bad).unwrap_err()),
        ErrorCode::InvalidArgument
    );
    let not_convex = ApdbRegion::Polygon(vec![
        (0.0, 0.0),
        (2.0, 0.0),
        (1.0, 0.2),
        (2.0, 2.0),
        (0.0, 2.0),
    ]);
    assert_eq!(
        server_code(client.apdb_get_dia_objects(&not_convex).unwrap_err()),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        server_code(
            client
                .apdb_get_dia_sources(&region, &[1], f64::NAN, 12)
                .unwrap_err()
        ),
        ErrorCode::InvalidArgument
    );
    nothing_stored(&mut client);

    // The good store then works on the same connection.
    let seq = client.apdb_store(&wire_store(&req)).unwrap();
    assert_eq!(seq, 1);
    assert!(client.apdb_contains_visit_detector(v, d).unwrap());
    // The same visit again is refused.
    assert_eq!(
        server_code(client.apdb_store(&wire_store(&req)).unwrap_err()),
        ErrorCode::InvalidArgument
    );
    assert_eq!(client.apdb_status().unwrap().seq, 1);
    server.shutdown();
}

#[test]
fn a_store_over_the_servers_byte_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let apdb = open_primary(&dir.path().join("apdb"));
    let mut service = ApdbService::primary(Arc::clone(&apdb)).unwrap();
    Arc::get_mut(&mut service).unwrap().max_store_bytes = 100 << 10;
    let server = serve(&dir.path().join("db"), Some(service), 16 << 10);
    let mut client = connect(&server);
    let mut work = workload(8);
    let visit = work.next_visit();
    let store = wire_store(&visit.store_request());
    let err = client.apdb_store(&store).unwrap_err();
    assert_eq!(server_code(err), ErrorCode::Limit);
    assert_eq!(client.apdb_status().unwrap().seq, 0);
    // The connection stays in step: a small store still fits.
    let small = Visit {
        objects: skyscan_engine::apdb::rows::empty_table(&visit.objects.schema),
        sources: skyscan_engine::apdb::rows::empty_table(&visit.sources.schema),
        forced_sources: skyscan_engine::apdb::rows::empty_table(&visit.forced_sources.schema),
        ..visit.clone()
    };
    assert_eq!(
        client
            .apdb_store(&wire_store(&small.store_request()))
            .unwrap(),
        1
    );
    client.ping().unwrap();
    server.shutdown();
}

/// Per-visit time of the pipeline's calls over the protocol against the
/// same calls on an embedded APDB, same visits, same run. A measurement,
/// not a check (noisy on a shared machine):
/// `SKYSCAN_APDB_VISITS=40 cargo test --release -p skyscan-server --test apdb_net -- --ignored --nocapture apdb_wire_overhead`
#[test]
#[ignore]
fn apdb_wire_overhead() {
    let visits: usize = std::env::var("SKYSCAN_APDB_VISITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let apdb_config = ApdbConfig {
        background_compaction: true,
        ..ApdbConfig::default()
    };
    let served = Arc::new(
        Apdb::open_with_schema(&dir.path().join("served"), felis(), apdb_config.clone())
            .unwrap()
            .0,
    );
    let embedded = Arc::new(
        Apdb::open_with_schema(&dir.path().join("embedded"), felis(), apdb_config)
            .unwrap()
            .0,
    );
    let server = serve(
        &dir.path().join("db"),
        Some(ApdbService::primary(Arc::clone(&served)).unwrap()),
        17 << 20,
    );
    let mut client = connect(&server);
    // A replica following the served primary: how long after a store's
    // answer the visit is visible there.
    let replica_apdb = Arc::new(
        Apdb::open_replica(
            &dir.path().join("replica"),
            felis(),
            ApdbConfig {
                background_compaction: true,
                ..ApdbConfig::default()
            },
        )
        .unwrap(),
    );
    let replica = serve(
        &dir.path().join("db2"),
        Some(
            ApdbService::replica(
                Arc::clone(&replica_apdb),
                &server.local_addr().to_string(),
                ConnectOptions::default(),
            )
            .unwrap(),
        ),
        17 << 20,
    );
    let mut lag_ms = Vec::new();
    let mut work = Workload::new(WorkloadConfig::default(), ApdbLayout::new(felis()).unwrap());
    let mut wire_ms = Vec::new();
    let mut local_ms = Vec::new();
    let mut wire_store_ms = Vec::new();
    let mut local_store_ms = Vec::new();
    let mut rows = (0, 0, 0);
    for _ in 0..visits {
        let visit = work.next_visit();
        let req = visit.store_request();
        let store = wire_store(&req);
        let started = Instant::now();
        let [o, s, f] = embedded_reads(&embedded, &visit);
        let reads = started.elapsed();
        let started = Instant::now();
        embedded.store(&req).unwrap();
        local_store_ms.push(started.elapsed().as_secs_f64() * 1e3);
        local_ms.push((reads + started.elapsed()).as_secs_f64() * 1e3);
        let started = Instant::now();
        let [wo, ws, wf] = wire_reads(&mut client, &visit);
        let reads = started.elapsed();
        let started = Instant::now();
        let seq = client.apdb_store(&store).unwrap();
        wire_store_ms.push(started.elapsed().as_secs_f64() * 1e3);
        wire_ms.push((reads + started.elapsed()).as_secs_f64() * 1e3);
        let acknowledged = Instant::now();
        while replica_apdb.replica_status().applied_seq < seq {
            std::thread::sleep(Duration::from_micros(200));
        }
        lag_ms.push(acknowledged.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            (wo.num_rows(), ws.num_rows(), wf.num_rows()),
            (o.num_rows(), s.num_rows(), f.num_rows())
        );
        rows = (o.num_rows(), s.num_rows(), f.num_rows());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (wire, local) = (median(&mut wire_ms), median(&mut local_ms));
    let (wire_store, local_store) = (median(&mut wire_store_ms), median(&mut local_store_ms));
    println!(
        "{visits} visits; last visit read {} objects, {} sources, {} forced",
        rows.0, rows.1, rows.2
    );
    println!(
        "per visit (reads + store), median: embedded {local:.1} ms, over TCP {wire:.1} ms, ratio {:.2}",
        wire / local
    );
    println!(
        "store alone, median: embedded {local_store:.1} ms, over TCP {wire_store:.1} ms (client encode, transfer, server decode and conversion)"
    );
    let lag_max = lag_ms.iter().copied().fold(0.0, f64::max);
    println!(
        "replica: visible {:.1} ms (median) / {lag_max:.1} ms (max) after the primary's answer",
        median(&mut lag_ms)
    );
    replica.shutdown();
    server.shutdown();
}

#[test]
fn a_replica_reconnects_when_its_primary_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let primary_apdb = open_primary(&dir.path().join("primary"));
    // A fixed port, so that the restarted primary is at the same address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start_primary = |root: &str| {
        let engine = engine(&dir.path().join(root));
        skyscan_server::start(
            engine,
            ServerConfig {
                listen: format!("127.0.0.1:{port}").parse().unwrap(),
                log: false,
                apdb: Some(ApdbService::primary(Arc::clone(&primary_apdb)).unwrap()),
                ..ServerConfig::default()
            },
        )
        .unwrap()
    };
    let primary = start_primary("db1");
    let replica_apdb =
        Arc::new(Apdb::open_replica(&dir.path().join("replica"), felis(), config()).unwrap());
    let replica = serve(
        &dir.path().join("db2"),
        Some(
            ApdbService::replica(
                Arc::clone(&replica_apdb),
                &format!("127.0.0.1:{port}"),
                ConnectOptions::default(),
            )
            .unwrap(),
        ),
        17 << 20,
    );
    let mut reader = connect(&replica);
    let mut work = workload(21);
    let mut writer = connect(&primary);
    let mut seq = 0;
    for _ in 0..3 {
        seq = writer
            .apdb_store(&wire_store(&work.next_visit().store_request()))
            .unwrap();
    }
    wait_for_seq(&mut reader, seq);
    drop(writer);
    primary.shutdown();
    // The replica notices and keeps serving what it has.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = reader.apdb_status().unwrap();
        if !status.upstream_connected && !status.last_error.is_empty() {
            assert_eq!(status.seq, seq);
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let visit = work.next_visit();
    assert!(
        reader
            .apdb_get_dia_objects(&region_of(&visit))
            .unwrap()
            .rows()
            > 0
    );
    // The primary comes back (same APDB, same address) and stores more.
    let primary = start_primary("db3");
    let mut writer = connect(&primary);
    seq = writer
        .apdb_store(&wire_store(&visit.store_request()))
        .unwrap();
    wait_for_seq(&mut reader, seq);
    let status = reader.apdb_status().unwrap();
    assert!(status.upstream_connected, "{status:?}");
    assert_eq!(status.lag_records, 0);
    assert_eq!(
        wire_reads(&mut writer, &visit),
        wire_reads(&mut reader, &visit)
    );
    replica.shutdown();
    primary.shutdown();
}
