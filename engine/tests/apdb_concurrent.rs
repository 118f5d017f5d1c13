//! Readers during writes and compaction: every read sees exactly the
//! visits of its snapshot (checked against a model at that snapshot's
//! sequence number) while a writer stores visits and compaction flushes and
//! merges partitions underneath; and many writers at once (group commit).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use apdb_support::*;
use skyscan_engine::apdb::{Apdb, ApdbConfig, ApdbTable};
use skyscan_sky::{Circle, Region};

#[test]
fn readers_see_consistent_snapshots_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApdbConfig {
        background_compaction: true,
        compaction_interval: Duration::from_millis(1),
        flush_rows: 300,
        ..ApdbConfig::default()
    };
    let (apdb, _) = Apdb::open_with_schema(dir.path(), felis(), config).unwrap();
    let apdb = Arc::new(apdb);
    let all = visits(small_workload(17), 30);
    let region = Region::Circle(Circle::new(45.3, -30.2, 1.2).unwrap());
    // Expected answers at every sequence number.
    let mut model = Model::new(layout());
    let mut expected_objects = vec![Vec::new()];
    let mut expected_sources = vec![Vec::new()];
    let probe_time = all.last().unwrap().time + 1.0;
    for (i, v) in all.iter().enumerate() {
        model.add_visit(v, i as u64 + 1);
        let seq = i as u64 + 1;
        let objects = model.latest_objects(&region, seq, Some(365.0));
        let ids: Vec<i64> = objects.iter().map(|o| o.0).collect();
        expected_sources.push(model.sources(1, &region, &ids, probe_time, 12, seq));
        expected_objects.push(objects);
    }
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let expected_objects = Arc::new(expected_objects);
    let expected_sources = Arc::new(expected_sources);
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (apdb, done, reads) = (Arc::clone(&apdb), Arc::clone(&done), Arc::clone(&reads));
        let (eo, es, region) = (
            Arc::clone(&expected_objects),
            Arc::clone(&expected_sources),
            region.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let l = layout();
            while !done.load(Ordering::SeqCst) {
                let reader = apdb.reader();
                let seq = reader.snapshot().seq as usize;
                let objects = reader.get_dia_objects(&region).unwrap();
                let keys = object_keys(&l, &objects);
                assert_eq!(keys, eo[seq], "objects at seq {seq}");
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let sources = reader
                    .get_dia_sources(&region, &ids, probe_time, 12)
                    .unwrap();
                assert_eq!(ids_sorted(&l, &sources), es[seq], "sources at seq {seq}");
                reads.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // A second compactor besides the background thread.
    {
        let (apdb, done) = (Arc::clone(&apdb), Arc::clone(&done));
        handles.push(std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                apdb.compact_now().unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
        }));
    }
    for v in &all {
        apdb.store(&v.store_request()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    done.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    assert!(reads.load(Ordering::SeqCst) >= 10, "readers ran");
    apdb.compact_now().unwrap();
    let stats = apdb.stats();
    assert!(
        stats.segments[0] > 0 && stats.recent_rows == [0, 0, 0],
        "{stats:?}"
    );
    assert_eq!(apdb.compaction_error(), None);
    // Closed partitions were merged into one segment each.
    let snap = apdb.snapshot();
    let last = snap.tables[0].keys().last().copied().unwrap();
    for (p, view) in &snap.tables[0] {
        if *p < last {
            assert_eq!(view.segments.len(), 1, "partition {p}");
        }
    }
    let reader = apdb.reader();
    assert_eq!(
        object_keys(&layout(), &reader.get_dia_objects(&region).unwrap()),
        expected_objects[30]
    );
}

fn ids_sorted(
    l: &skyscan_engine::apdb::ApdbLayout,
    set: &skyscan_engine::apdb::ResultSet,
) -> Vec<i64> {
    ids(l, ApdbTable::DiaSource, set)
}

#[test]
fn many_ccd_writers_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let (apdb, _) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    let apdb = Arc::new(apdb);
    let l = layout();
    let all = visits(small_workload(8), 3);
    for v in &all {
        let requests = v.ccd_requests(&l);
        assert_eq!(requests.len(), 189);
        let handles: Vec<_> = requests
            .into_iter()
            .map(|r| {
                let apdb = Arc::clone(&apdb);
                std::thread::spawn(move || apdb.store(&r).unwrap().seq)
            })
            .collect();
        let mut seqs: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), 189, "every store has its own record");
        // The same CCD twice is refused.
        let again = v.ccd_requests(&l).into_iter().next().unwrap();
        assert!(apdb.store(&again).is_err());
    }
    let mut model = Model::new(l.clone());
    for (i, v) in all.iter().enumerate() {
        model.add_visit(v, (i as u64 + 1) * 189);
    }
    let seq = apdb.snapshot().seq;
    assert_eq!(seq, 3 * 189);
    for v in &all {
        assert_eq!(
            object_keys(&l, &apdb.get_dia_objects(&v.region).unwrap()),
            model.latest_objects(&v.region, seq, Some(365.0))
        );
    }
    drop(apdb);
    let (apdb, stats) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    assert_eq!(stats.replayed_records, 3 * 189);
    assert_eq!(apdb.snapshot().seq, 3 * 189);
}
