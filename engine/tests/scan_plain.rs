//! The plain path: results equal sums computed from the in-memory table,
//! row-group pruning, corrupt blocks and I/O errors, cancellation, footer cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scan_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use scan_support::{SumQuery, database, expected_totals};
use skyscan_engine::scan::{CancelToken, PlainOptions, run_plain};
use skyscan_engine::storage::{
    BackendChoice, FaultBackend, FaultKind, FaultRule, PreadBackend, Storage, StorageConfig,
    StorageError, TableHandle,
};

fn all_columns(table: &skyscan_engine::table::Table) -> Vec<usize> {
    (0..table.schema.columns.len()).collect()
}

#[test]
fn plain_sums_equal_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = database(dir.path(), 20_000, 1);
    let storage = Storage::new(StorageConfig::default());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    assert!(handle.entry().chunks.len() > 3, "several chunks");
    for threads in [1, 2] {
        let query = SumQuery::new(handle.clone(), all_columns(&table));
        let options = PlainOptions {
            threads,
            ..PlainOptions::default()
        };
        let report = run_plain(&storage, &query, &options).unwrap();
        assert_eq!(report.chunks_done, handle.entry().chunks.len() as u64);
        assert_eq!(
            query.totals(),
            expected_totals(&table, &all_columns(&table))
        );
        assert!(query.duplicates.lock().unwrap().is_empty());
    }
    // Second and third runs hit the footer cache.
    let status = storage.footers.status();
    assert_eq!(status.misses, handle.entry().chunks.len() as u64);
    assert_eq!(status.hits, handle.entry().chunks.len() as u64);
}

#[test]
fn reads_only_planned_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = database(dir.path(), 20_000, 2);
    let storage = Storage::new(StorageConfig::default());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let narrow = SumQuery::new(handle.clone(), vec![0]);
    let narrow_report = run_plain(&storage, &narrow, &PlainOptions::default()).unwrap();
    let wide = SumQuery::new(handle, all_columns(&table));
    let wide_report = run_plain(&storage, &wide, &PlainOptions::default()).unwrap();
    let narrow_bytes = narrow_report.read.cached_bytes + narrow_report.read.direct_bytes;
    let wide_bytes = wide_report.read.cached_bytes + wide_report.read.direct_bytes;
    assert!(
        narrow_bytes * 5 < wide_bytes,
        "{narrow_bytes} vs {wide_bytes}"
    );
    assert_eq!(narrow.totals(), expected_totals(&table, &[0]));
}

#[test]
fn corrupt_block_names_file_chunk_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 20_000, 3);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let chunk = handle.entry().chunks[1].clone();
    let path = handle.chunk_location(chunk.chunk_id).unwrap().unwrap().path;
    let fault = Arc::new(FaultBackend::new(
        Arc::new(PreadBackend),
        vec![FaultRule {
            path_contains: Some(path.file_name().unwrap().to_string_lossy().into_owned()),
            offsets: None,
            after: 0,
            count: u64::MAX,
            kind: FaultKind::Corrupt,
        }],
    ));
    let storage = Storage::new(StorageConfig {
        plain_backend: Some(fault.clone()),
        backend: BackendChoice::Pread,
        ..StorageConfig::default()
    });
    let query = SumQuery::new(handle, vec![1, 2]);
    let err = run_plain(&storage, &query, &PlainOptions::default()).unwrap_err();
    match &err {
        StorageError::Corrupt {
            path: err_path,
            chunk_id,
            location,
            ..
        } => {
            assert_eq!(err_path, &path);
            assert_eq!(*chunk_id, chunk.chunk_id);
            assert!(location.starts_with("block (row group"), "{location}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("chunk {}", chunk.chunk_id))
    );
    assert!(fault.injected() > 0);
}

#[test]
fn io_error_fails_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 10_000, 4);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let fault = Arc::new(FaultBackend::new(
        Arc::new(PreadBackend),
        vec![FaultRule {
            path_contains: None,
            offsets: None,
            after: 2,
            count: 1,
            kind: FaultKind::FailIo,
        }],
    ));
    let storage = Storage::new(StorageConfig {
        plain_backend: Some(fault),
        ..StorageConfig::default()
    });
    let query = SumQuery::new(handle, vec![0]);
    let err = run_plain(&storage, &query, &PlainOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
}

#[test]
fn task_error_and_cancel_and_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 10_000, 5);
    let storage = Storage::new(StorageConfig::default());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();

    let mut failing = SumQuery::new(handle.clone(), vec![0]);
    failing.fail_at_chunk = Some(failing.chunks[0]);
    let err = run_plain(&storage, &failing, &PlainOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Task(_)), "{err}");

    let mut slow = SumQuery::new(handle.clone(), vec![0]);
    slow.sleep_per_row_group = Duration::from_millis(5);
    let cancel = CancelToken::new();
    let options = PlainOptions {
        cancel: cancel.clone(),
        ..PlainOptions::default()
    };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        cancel.cancel();
    });
    let start = Instant::now();
    let err = run_plain(&storage, &slow, &options).unwrap_err();
    canceller.join().unwrap();
    assert!(err.is_cancelled(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));

    let options = PlainOptions {
        deadline: Some(Instant::now() + Duration::from_millis(20)),
        ..PlainOptions::default()
    };
    let err = run_plain(&storage, &slow, &options).unwrap_err();
    assert!(matches!(err, StorageError::Limit(_)), "{err}");

    let options = PlainOptions {
        max_memory_bytes: Some(1000),
        ..PlainOptions::default()
    };
    let err = run_plain(&storage, &SumQuery::new(handle, vec![0]), &options).unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
}

#[test]
fn bad_plans_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _table) = database(dir.path(), 5_000, 6);
    let storage = Storage::new(StorageConfig::default());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let query = SumQuery::new(handle.clone(), vec![3, 1]);
    let err = run_plain(&storage, &query, &PlainOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::InvalidPlan(_)), "{err}");
    let query = SumQuery::new(handle.clone(), vec![999]);
    let err = run_plain(&storage, &query, &PlainOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::InvalidPlan(_)), "{err}");
    let mut query = SumQuery::new(handle, vec![0]);
    query.chunks.reverse();
    let err = run_plain(&storage, &query, &PlainOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::InvalidPlan(_)), "{err}");
    assert!(TableHandle::new(&db, "lsst", "Nope").is_err());
}

#[test]
fn overlap_row_groups_are_delivered_when_planned() {
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = database(dir.path(), 10_000, 7);
    let storage = Storage::new(StorageConfig::default());
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    let mut query = SumQuery::new(handle.clone(), vec![0]);
    query.overlap = true;
    run_plain(&storage, &query, &PlainOptions::default()).unwrap();
    let (rows, _) = query.totals();
    assert_eq!(rows, table.rows() as u64 + handle.entry().overlap_rows);
}

#[test]
fn uring_direct_and_page_cache_reads_equal_pread() {
    use skyscan_engine::storage::{IoBackend, UringBackend, UringOptions};
    let Ok(_) = UringBackend::new(UringOptions::default()) else {
        eprintln!("io_uring unavailable here: test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = database(dir.path(), 20_000, 8);
    let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
    for use_page_cache in [false, true] {
        let uring: Arc<dyn IoBackend> = Arc::new(
            UringBackend::new(UringOptions {
                queue_depth: 4,
                use_page_cache,
                direct: true,
            })
            .unwrap(),
        );
        let storage = Storage::new(StorageConfig {
            plain_backend: Some(uring),
            ..StorageConfig::default()
        });
        let query = SumQuery::new(handle.clone(), all_columns(&table));
        let report = run_plain(&storage, &query, &PlainOptions::default()).unwrap();
        assert_eq!(
            query.totals(),
            expected_totals(&table, &all_columns(&table))
        );
        if use_page_cache {
            // Just written: the files are in the page cache.
            assert!(report.read.cached_bytes > 0);
        } else {
            assert_eq!(report.read.cached_bytes, 0);
            assert!(report.read.direct_bytes > 0);
        }
    }
}

/// Checksums are verified on every read of a mapped file by default: a
/// block that changes on disk after a first, clean scan is caught by the
/// next one. With `checksum_once_per_map` the second scan trusts the map.
#[test]
fn mapped_blocks_are_verified_on_every_read_by_default() {
    use std::os::unix::fs::FileExt;
    for once in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (db, table) = database(dir.path(), 20_000, 9);
        let handle = TableHandle::new(&db, "lsst", "Object").unwrap();
        let storage = Storage::new(StorageConfig {
            checksum_once_per_map: once,
            ..StorageConfig::default()
        });
        let columns = vec![1];
        let query = SumQuery::new(handle.clone(), columns.clone());
        run_plain(&storage, &query, &PlainOptions::default()).unwrap();
        assert_eq!(query.totals(), expected_totals(&table, &columns));
        // Flip a byte inside the first block of column 1 of one chunk.
        let chunk = handle.entry().chunks[0].clone();
        let path = handle.chunk_location(chunk.chunk_id).unwrap().unwrap().path;
        let file = std::fs::File::open(&path).unwrap();
        let footer = skyscan_engine::storage::read_footer(
            &file,
            &path,
            file.metadata().unwrap().len(),
            chunk.chunk_id,
        )
        .unwrap();
        let block = footer.block(0, 1).unwrap();
        let at = block.offset() + block.len() / 2;
        let writable = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, at).unwrap();
        writable.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
        let again = SumQuery::new(handle, columns.clone());
        let outcome = run_plain(&storage, &again, &PlainOptions::default());
        if once {
            assert!(outcome.is_ok(), "trusted map: {outcome:?}");
        } else {
            match outcome {
                Err(StorageError::Corrupt { chunk_id, .. }) => assert_eq!(chunk_id, chunk.chunk_id),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }
}
