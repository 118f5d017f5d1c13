//! Shared-scan convoys: every query sees every chunk exactly once (results
//! equal the plain path's, chunk by chunk, float sums bit for bit) under
//! arrivals at random moments; cancellation mid-chunk; corrupt blocks and
//! I/O errors from the fault backend fail only the affected query; budget
//! exhaustion; mlock refused; booting; admission; limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scan_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scan_support::{ChunkResult, SumQuery, database};
use skyscan_engine::catalog::Database;
use skyscan_engine::scan::{
    EngineConfig, PlainOptions, QueryOptions, QueryPhase, ScanClass, ScanEngine, run_plain,
};
use skyscan_engine::storage::{
    BackendChoice, FaultBackend, FaultKind, FaultRule, IoBackend, MemoryConfig, MlockPolicy,
    MlockState, PreadBackend, Storage, StorageConfig, StorageError, TableHandle,
};

/// A config where every query with 2+ chunks is a scan.
fn scan_config() -> EngineConfig {
    EngineConfig {
        interactive_max_chunks: 2,
        ..EngineConfig::default()
    }
}

/// Column sets of different queries (indices into the Object schema).
const COLUMN_SETS: [&[usize]; 6] = [
    &[0],
    &[1, 2],
    &[0, 7, 8],
    &[8, 9, 10, 11, 12],
    &[25, 26],
    &[3, 4, 5, 6, 13, 20, 21, 22, 23, 24],
];

fn reference(db: &Database, columns: &[usize]) -> BTreeMap<i32, ChunkResult> {
    let storage = Storage::new(StorageConfig::default());
    let handle = TableHandle::new(db, "lsst", "Object").unwrap();
    let query = SumQuery::new(handle, columns.to_vec());
    run_plain(&storage, &query, &PlainOptions::default()).unwrap();
    query.results()
}

/// A tiny deterministic generator for arrival delays.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn random_arrivals_see_every_chunk_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 30_000, 11);
    let references: Vec<_> = COLUMN_SETS.iter().map(|c| reference(&db, c)).collect();
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let chunks = handle.entry().chunks.len();
    assert!(chunks >= 6, "{chunks} chunks");
    for seed in [1u64, 2, 3] {
        // Seed 2 processes one chunk at a time on both threads (the
        // wave-parallel path); the others one chunk per thread.
        let engine = ScanEngine::new(EngineConfig {
            chunk_parallelism: if seed == 2 { 1 } else { 2 },
            ..scan_config()
        });
        let mut rng = Lcg(seed);
        let mut running = Vec::new();
        for index in 0..12 {
            let set = index % COLUMN_SETS.len();
            let mut query = SumQuery::new(handle.clone(), COLUMN_SETS[set].to_vec());
            // Some slow queries keep the convoy busy so that arrivals land
            // in the middle of a revolution.
            if index % 4 == 0 {
                query.sleep_per_row_group = Duration::from_micros(300);
            }
            let query = Arc::new(query);
            let handle = engine
                .submit(query.clone(), QueryOptions::default())
                .unwrap();
            assert_ne!(handle.status().class, ScanClass::Interactive);
            running.push((set, query, handle));
            std::thread::sleep(Duration::from_millis(rng.next(15)));
        }
        for (set, query, handle) in running {
            let report = handle.wait().unwrap();
            assert_eq!(report.chunks_done, chunks as u64);
            assert!(
                query.duplicates.lock().unwrap().is_empty(),
                "a chunk delivered twice"
            );
            assert_eq!(
                query.results(),
                references[set],
                "seed {seed}, column set {set}"
            );
            assert_eq!(handle.progress(), (chunks as u64, chunks as u64));
        }
        let status = engine.status();
        assert!(status.queries.iter().all(|q| q.phase == QueryPhase::Done));
        // Shared: far fewer chunk reads than queries x chunks.
        let reads: u64 = status.convoys.iter().map(|c| c.chunks_read).sum();
        assert!(reads < 12 * chunks as u64, "{reads} chunk reads");
        assert_eq!(status.memory.in_use_bytes, 0, "buffers released");
    }
}

#[test]
fn cancel_mid_chunk_releases_buffers_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 20_000, 12);
    let expected = reference(&db, &[0]);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let engine = ScanEngine::new(scan_config());
    let mut slow = SumQuery::new(handle.clone(), vec![1, 2]);
    slow.sleep_per_row_group = Duration::from_millis(3);
    let slow = engine
        .submit(Arc::new(slow), QueryOptions::default())
        .unwrap();
    let other = Arc::new(SumQuery::new(handle, vec![0]));
    let other_handle = engine
        .submit(other.clone(), QueryOptions::default())
        .unwrap();
    std::thread::sleep(Duration::from_millis(40));
    let cancelled_at = Instant::now();
    slow.cancel();
    let err = slow.wait().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(500),
        "{:?}",
        cancelled_at.elapsed()
    );
    other_handle.wait().unwrap();
    assert_eq!(other.results(), expected);
    // Nothing left pinned or in use once both are done.
    let deadline = Instant::now() + Duration::from_secs(2);
    while engine.status().memory.in_use_bytes != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.status().memory.in_use_bytes, 0);
}

fn fault_engine(rules: Vec<FaultRule>) -> (ScanEngine, Arc<FaultBackend>) {
    let fault = Arc::new(FaultBackend::new(Arc::new(PreadBackend), rules));
    let backend: Arc<dyn IoBackend> = fault.clone();
    let engine = ScanEngine::new(EngineConfig {
        storage: StorageConfig {
            backend: BackendChoice::Custom(backend),
            ..StorageConfig::default()
        },
        ..scan_config()
    });
    (engine, fault)
}

/// The file of the third chunk and the byte range of one column's blocks in it.
fn target(db: &Database, column: usize) -> (i32, String, std::ops::Range<u64>) {
    let handle = TableHandle::new(db, "lsst", "Object").unwrap();
    let chunk_id = handle.entry().chunks[2].chunk_id;
    let path = handle.chunk_location(chunk_id).unwrap().unwrap().path;
    let footer = skyscan_engine::catalog::inspect::read_footer(&path).unwrap();
    let range = footer
        .column_range(column, skyscan_format::RowGroupSet::Own)
        .unwrap();
    let name = format!("/{}", path.file_name().unwrap().to_string_lossy());
    (chunk_id, name, range.offset..range.end())
}

#[test]
fn corrupt_block_fails_only_the_query_that_planned_it() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 20_000, 13);
    let expected = reference(&db, &[1, 2]);
    // Column 20 is far from columns 1 and 2: its blocks are read as their own range.
    let (chunk_id, name, range) = target(&db, 20);
    let (engine, fault) = fault_engine(vec![FaultRule {
        path_contains: Some(name),
        offsets: Some(range),
        after: 0,
        count: u64::MAX,
        kind: FaultKind::Corrupt,
    }]);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let victim = engine
        .submit(
            Arc::new(SumQuery::new(handle.clone(), vec![20])),
            QueryOptions::default(),
        )
        .unwrap();
    let bystander = Arc::new(SumQuery::new(handle.clone(), vec![1, 2]));
    let bystander_handle = engine
        .submit(bystander.clone(), QueryOptions::default())
        .unwrap();
    let err = victim.wait().unwrap_err();
    match &err {
        StorageError::Corrupt {
            chunk_id: bad,
            location,
            ..
        } => {
            assert_eq!(*bad, chunk_id);
            assert!(location.contains("column 20"), "{location}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    bystander_handle.wait().unwrap();
    assert_eq!(bystander.results(), expected);
    assert!(fault.injected() > 0);
    // The convoy goes on: a later query runs.
    let later = Arc::new(SumQuery::new(handle, vec![1, 2]));
    engine.run(later.clone(), QueryOptions::default()).unwrap();
    assert_eq!(later.results(), expected);
}

#[test]
fn io_error_fails_only_the_query_that_needs_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 20_000, 14);
    let expected = reference(&db, &[0]);
    let (_chunk_id, name, range) = target(&db, 22);
    let (engine, _fault) = fault_engine(vec![FaultRule {
        path_contains: Some(name.clone()),
        offsets: Some(range),
        after: 0,
        count: u64::MAX,
        kind: FaultKind::FailIo,
    }]);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let mut slow = SumQuery::new(handle.clone(), vec![0]);
    slow.sleep_per_row_group = Duration::from_micros(200);
    let bystander = Arc::new(slow);
    let bystander_handle = engine
        .submit(bystander.clone(), QueryOptions::default())
        .unwrap();
    let victim = engine
        .submit(
            Arc::new(SumQuery::new(handle, vec![22])),
            QueryOptions::default(),
        )
        .unwrap();
    let err = victim.wait().unwrap_err();
    match &err {
        StorageError::Io { path, .. } => {
            assert!(
                path.to_string_lossy().ends_with(&name[1..]),
                "{}",
                path.display()
            )
        }
        other => panic!("expected Io, got {other}"),
    }
    bystander_handle.wait().unwrap();
    assert_eq!(bystander.results(), expected);
}

#[test]
fn budget_exhaustion_waits_and_stays_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 30_000, 15);
    let all: Vec<usize> = (0..27).collect();
    let expected = reference(&db, &all);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let largest = handle.entry().chunks.iter().map(|c| c.bytes).max().unwrap();
    // Room for about one chunk: the reader must wait for the processor.
    let budget = largest + (1 << 20);
    let engine = ScanEngine::new(EngineConfig {
        storage: StorageConfig {
            memory: MemoryConfig {
                budget_bytes: budget,
                mlock: MlockPolicy::Try,
            },
            // The pinned-buffer path, even though the test files are cached.
            convoy_mapped: false,
            ..StorageConfig::default()
        },
        ..scan_config()
    });
    let mut queries = Vec::new();
    for _ in 0..3 {
        let mut query = SumQuery::new(handle.clone(), all.clone());
        query.sleep_per_row_group = Duration::from_micros(100);
        let query = Arc::new(query);
        queries.push((
            query.clone(),
            engine.submit(query, QueryOptions::default()).unwrap(),
        ));
    }
    for (query, handle) in queries {
        handle.wait().unwrap();
        assert_eq!(query.results(), expected);
    }
    let memory = engine.status().memory;
    assert!(memory.waits > 0, "the convoy never waited: {memory:?}");
    // Granule rounding (1 MiB) is the stated constant.
    assert!(memory.peak_bytes <= budget + (2 << 20), "{memory:?}");
}

#[test]
fn mlock_refused_runs_unpinned_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 10_000, 16);
    let expected = reference(&db, &[0, 1]);
    let engine = ScanEngine::new(EngineConfig {
        storage: StorageConfig {
            memory: MemoryConfig {
                budget_bytes: 64 << 20,
                mlock: MlockPolicy::SimulateRefusal,
            },
            convoy_mapped: false,
            ..StorageConfig::default()
        },
        ..scan_config()
    });
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let query = Arc::new(SumQuery::new(handle, vec![0, 1]));
    engine.run(query.clone(), QueryOptions::default()).unwrap();
    assert_eq!(query.results(), expected);
    let memory = engine.status().memory;
    assert!(matches!(memory.mlock, MlockState::Refused(_)), "{memory:?}");
    assert_eq!(memory.pinned_bytes, 0);
}

#[test]
fn slow_queries_are_booted_to_snail_and_still_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 20_000, 17);
    let expected = reference(&db, &[1]);
    let mut config = scan_config();
    config.boot_after[ScanClass::Medium.index()] = Some(Duration::from_millis(5));
    let engine = ScanEngine::new(config);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let mut slow = SumQuery::new(handle.clone(), vec![1]);
    slow.sleep_per_row_group = Duration::from_millis(1);
    let slow = Arc::new(slow);
    let slow_handle = engine
        .submit(slow.clone(), QueryOptions::default())
        .unwrap();
    let fast = Arc::new(SumQuery::new(handle, vec![1]));
    let fast_handle = engine
        .submit(fast.clone(), QueryOptions::default())
        .unwrap();
    fast_handle.wait().unwrap();
    slow_handle.wait().unwrap();
    let status = slow_handle.status();
    assert!(status.booted, "{status:?}");
    assert_eq!(status.class, ScanClass::Snail);
    assert!(!fast_handle.status().booted);
    assert_eq!(slow.results(), expected);
    assert!(slow.duplicates.lock().unwrap().is_empty());
    assert_eq!(fast.results(), expected);
}

#[test]
fn admission_queue_limits_concurrent_queries_per_class() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 10_000, 18);
    let expected = reference(&db, &[0]);
    let mut config = scan_config();
    config.class_limits[ScanClass::Medium.index()] = 1;
    let engine = ScanEngine::new(config);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let mut first = SumQuery::new(handle.clone(), vec![0]);
    first.sleep_per_row_group = Duration::from_micros(500);
    let first = engine
        .submit(Arc::new(first), QueryOptions::default())
        .unwrap();
    let second = Arc::new(SumQuery::new(handle, vec![0]));
    let second_handle = engine
        .submit(second.clone(), QueryOptions::default())
        .unwrap();
    let status = engine.status();
    assert_eq!(status.queued[ScanClass::Medium.index()], 1);
    assert_eq!(second_handle.status().phase, QueryPhase::Queued);
    first.wait().unwrap();
    second_handle.wait().unwrap();
    assert_eq!(second.results(), expected);
    assert_eq!(engine.status().running, [0; 5]);
}

#[test]
fn interactive_queries_bypass_a_busy_convoy() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 20_000, 19);
    let engine = ScanEngine::new(scan_config());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let mut slow = SumQuery::new(handle.clone(), vec![1, 2]);
    slow.sleep_per_row_group = Duration::from_millis(2);
    let slow = engine
        .submit(Arc::new(slow), QueryOptions::default())
        .unwrap();
    let mut one = SumQuery::new(handle.clone(), vec![0]);
    one.chunks.truncate(1);
    let one = Arc::new(one);
    let started = Instant::now();
    let one_handle = engine.submit(one.clone(), QueryOptions::default()).unwrap();
    assert_eq!(one_handle.status().class, ScanClass::Interactive);
    one_handle.wait().unwrap();
    assert!(!slow.is_done(), "the interactive query waited for the scan");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(one.results().len(), 1);
    slow.cancel();
    let _ = slow.wait();
}

#[test]
fn time_and_memory_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 10_000, 20);
    let engine = ScanEngine::new(scan_config());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let mut slow = SumQuery::new(handle.clone(), vec![0]);
    slow.sleep_per_row_group = Duration::from_millis(2);
    let options = QueryOptions {
        time_limit: Some(Duration::from_millis(30)),
        ..QueryOptions::default()
    };
    let err = engine.run(Arc::new(slow), options).unwrap_err();
    assert!(matches!(err, StorageError::Limit(_)), "{err}");
    let options = QueryOptions {
        max_memory_bytes: Some(100),
        ..QueryOptions::default()
    };
    let err = engine
        .run(Arc::new(SumQuery::new(handle.clone(), vec![0])), options)
        .unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    let mut failing = SumQuery::new(handle, vec![0]);
    failing.fail_at_chunk = Some(failing.chunks[1]);
    let err = engine
        .run(Arc::new(failing), QueryOptions::default())
        .unwrap_err();
    assert!(matches!(err, StorageError::Task(_)), "{err}");
}

#[test]
fn multi_table_queries_get_tables_in_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = database(dir.path(), 10_000, 21);
    scan_support::load_copy(&db, &table, "Copy");
    let object = TableHandle::new(&db, "lsst", "Object").unwrap();
    let copy = TableHandle::new(&db, "lsst", "Copy").unwrap();
    let orders = [
        vec![object.clone(), copy.clone()],
        vec![copy.clone(), object.clone()],
        vec![object.clone(), object.clone()],
        vec![copy.clone()],
    ];
    let make = |tables: &Vec<TableHandle>| {
        let mut query = SumQuery::new(tables[0].clone(), vec![0, 1]);
        query.tables = tables.clone();
        query
    };
    let storage = Storage::new(StorageConfig::default());
    let references: Vec<_> = orders
        .iter()
        .map(|tables| {
            let query = make(tables);
            run_plain(&storage, &query, &PlainOptions::default()).unwrap();
            query.results()
        })
        .collect();
    // Both tables contribute to each chunk.
    let first = references[0].values().next().unwrap();
    assert!(first.columns.contains_key(&1000) && first.columns.contains_key(&0));
    let engine = ScanEngine::new(scan_config());
    let queries: Vec<_> = orders
        .iter()
        .map(|tables| {
            let query = Arc::new(make(tables));
            let handle = engine
                .submit(query.clone(), QueryOptions::default())
                .unwrap();
            (query, handle)
        })
        .collect();
    for ((query, handle), expected) in queries.into_iter().zip(references) {
        handle.wait().unwrap();
        assert_eq!(query.results(), expected);
    }
}

#[test]
fn dropping_the_engine_fails_running_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 10_000, 22);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let engine = ScanEngine::new(scan_config());
    let mut slow = SumQuery::new(handle, vec![0]);
    slow.sleep_per_row_group = Duration::from_millis(2);
    let running = engine
        .submit(Arc::new(slow), QueryOptions::default())
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(engine);
    let err = running.wait().unwrap_err();
    assert!(matches!(err, StorageError::ShuttingDown), "{err}");
}
