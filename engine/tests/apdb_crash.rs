//! kill -9 of a writer process at random points, many times: after every
//! restart each acknowledged visit is there whole, no visit is there in
//! part, the visits form a prefix, and the reads match a model of that
//! prefix. Also: a torn log tail is cut off, damage inside the log is an
//! error, never a panic or a wrong row.
//!
//! The parent re-runs this test binary as a child (filtered to
//! `crash_child`, which does nothing unless `SKYSCAN_APDB_CRASH_DIR` is set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apdb_support::*;
use skyscan_engine::apdb::workload::DETECTORS;
use skyscan_engine::apdb::{Apdb, ApdbConfig, ApdbError, ApdbTable};
use skyscan_format::ColumnData;

const DIR_VAR: &str = "SKYSCAN_APDB_CRASH_DIR";
const VISITS: usize = 30;

fn crash_config() -> ApdbConfig {
    ApdbConfig {
        background_compaction: true,
        compaction_interval: Duration::from_millis(5),
        flush_rows: 500,
        ..ApdbConfig::default()
    }
}

/// The child: stores the workload's visits that are not stored yet,
/// printing `ACK <visit>` after each store returns.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let (apdb, _) = Apdb::open_with_schema(Path::new(&dir), felis(), crash_config()).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "OPEN").unwrap();
    out.flush().unwrap();
    let mut workload = skyscan_engine::apdb::workload::Workload::new(small_workload(5), layout());
    for _ in 0..VISITS {
        let visit = workload.next_visit();
        if apdb.contains_visit_detector(visit.visit, 0) {
            continue;
        }
        apdb.store(&visit.store_request()).unwrap();
        writeln!(out, "ACK {}", visit.visit).unwrap();
        out.flush().unwrap();
    }
    writeln!(out, "DONE").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Rows per visit of each table, from a full scan.
fn rows_per_visit(
    apdb: &Apdb,
    all: &[skyscan_engine::apdb::workload::Visit],
) -> [HashMap<i64, usize>; 3] {
    let layout = layout();
    let reader = apdb.reader();
    let mut out = [HashMap::new(), HashMap::new(), HashMap::new()];
    let time_to_visit: HashMap<u64, i64> =
        all.iter().map(|v| (v.time.to_bits(), v.visit)).collect();
    for table in ApdbTable::ALL {
        let t = layout.table(table);
        let set = reader.scan(table, None, None, None).unwrap();
        for b in &set.batches {
            let ColumnData::F64(time) = &b.columns[t.time] else {
                panic!()
            };
            for r in 0..b.rows() {
                let visit = time_to_visit[&time.values[r].to_bits()];
                *out[table as usize].entry(visit).or_insert(0) += 1;
            }
        }
    }
    out
}

fn check_state(
    all: &[skyscan_engine::apdb::workload::Visit],
    dir: &Path,
    acked: usize,
    context: &str,
) -> usize {
    let (apdb, _) = Apdb::open_with_schema(dir, felis(), test_config())
        .unwrap_or_else(|e| panic!("{context}: open failed: {e}"));
    let present: Vec<bool> = all
        .iter()
        .map(|v| apdb.contains_visit_detector(v.visit, 0))
        .collect();
    let stored = present.iter().take_while(|p| **p).count();
    assert!(
        present[stored..].iter().all(|p| !p),
        "{context}: visits are not a prefix"
    );
    assert!(
        stored >= acked,
        "{context}: {acked} acknowledged, {stored} stored"
    );
    let counts = rows_per_visit(&apdb, all);
    for v in all {
        let expect = [v.objects.rows(), v.sources.rows(), v.forced_sources.rows()];
        for t in 0..3 {
            let got = counts[t].get(&v.visit).copied().unwrap_or(0);
            let want = if (v.visit as usize) <= stored {
                expect[t]
            } else {
                0
            };
            assert_eq!(got, want, "{context}: visit {} table {t}", v.visit);
        }
        if (v.visit as usize) <= stored {
            for d in 0..DETECTORS {
                assert!(apdb.contains_visit_detector(v.visit, d));
            }
        }
    }
    // Reads against the model of the stored prefix.
    let mut model = Model::new(layout());
    for (i, v) in all.iter().take(stored).enumerate() {
        model.add_visit(v, i as u64 + 1);
    }
    let seq = apdb.snapshot().seq;
    assert_eq!(seq, stored as u64, "{context}");
    for v in all.iter().step_by(5) {
        let got = apdb.get_dia_objects(&v.region).unwrap();
        assert_eq!(
            object_keys(apdb.layout(), &got),
            model.latest_objects(&v.region, seq, Some(365.0)),
            "{context}"
        );
    }
    stored
}

#[test]
fn kill_9_at_random_points_loses_no_acknowledged_visit() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let all = visits(small_workload(5), VISITS);
    let mut acked = 0usize;
    let mut rng = skyscan_engine::synth::Rng::new(2026, 7);
    let mut kills = 0;
    let start = Instant::now();
    for round in 0..16 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after a random number of acknowledgements of this round
        // (0: right after the open) plus a random delay of up to 5 ms, so
        // the kill lands inside a store, a sync or a compaction whatever the
        // machine's speed. The last round runs to the end.
        let remaining = VISITS.saturating_sub(acked);
        let target_acks = if round == 15 {
            usize::MAX
        } else {
            rng.below((remaining / 2 + 1) as u64) as usize
        };
        let delay = Duration::from_micros(rng.below(5_000));
        let mut acks_this_round = 0usize;
        let mut armed_at: Option<Instant> = None;
        let mut done = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(line) if line.ends_with("OPEN") => {
                    if target_acks == 0 {
                        armed_at = Some(Instant::now());
                    }
                }
                Ok(line) if line.starts_with("ACK ") => {
                    let visit: usize = line[4..].parse().unwrap();
                    acked = acked.max(visit);
                    acks_this_round += 1;
                    if acks_this_round == target_acks {
                        armed_at = Some(Instant::now());
                    }
                }
                Ok(line) if line == "DONE" => {
                    done = true;
                    break;
                }
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
            if armed_at.is_some_and(|t| t.elapsed() >= delay) {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines already printed before the kill count as acknowledged.
        while let Ok(line) = rx.try_recv() {
            if let Some(v) = line.strip_prefix("ACK ") {
                acked = acked.max(v.parse().unwrap());
            }
            done |= line == "DONE";
        }
        kills += 1;
        let stored = check_state(&all, dir.path(), acked, &format!("round {round}"));
        if done || stored == VISITS {
            break;
        }
    }
    assert!(kills >= 3, "only {kills} kills");
    assert_eq!(
        check_state(&all, dir.path(), acked, "final"),
        VISITS,
        "all visits stored in the end"
    );
    eprintln!("{kills} kills in {:.1} s", start.elapsed().as_secs_f64());
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn torn_log_tail_is_cut_and_damage_is_an_error() {
    let base = tempfile::tempdir().unwrap();
    let all = visits(small_workload(5), 4);
    {
        let (apdb, _) = Apdb::open_with_schema(base.path(), felis(), test_config()).unwrap();
        for v in &all {
            apdb.store(&v.store_request()).unwrap();
        }
    }
    let wal_dir = base.path().join("wal");
    let mut files: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // The first file holds the 4 records; later ones are empty headers.
    let log = files[0].clone();
    let bytes = std::fs::read(&log).unwrap();
    // Record boundaries.
    let mut ends = Vec::new();
    let mut offset = 32;
    while offset < bytes.len() {
        let len = u32::from_le_bytes(bytes[offset + 16..offset + 20].try_into().unwrap()) as usize;
        offset += 32 + len;
        ends.push(offset);
    }
    assert_eq!(ends.len(), 4);
    let mut rng = skyscan_engine::synth::Rng::new(3, 3);
    let mut cuts: Vec<usize> = vec![ends[3] - 1, ends[2] + 10, ends[2] + 40, ends[0], 33, 32];
    for _ in 0..6 {
        cuts.push(32 + rng.below((bytes.len() - 32) as u64) as usize);
    }
    for cut in cuts {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(base.path(), dir.path());
        let copy = dir.path().join("wal").join(log.file_name().unwrap());
        std::fs::write(&copy, &bytes[..cut]).unwrap();
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let (apdb, stats) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
        assert_eq!(apdb.snapshot().seq, whole as u64, "cut at {cut}");
        assert_eq!(
            stats.torn_bytes,
            (cut - ends
                .iter()
                .copied()
                .filter(|&e| e <= cut)
                .max()
                .unwrap_or(32)) as u64
        );
        for (i, v) in all.iter().enumerate() {
            assert_eq!(apdb.contains_visit_detector(v.visit, 0), i < whole);
        }
        // The database goes on: the next visit stores and survives reopen.
        apdb.store(&all[whole.min(3)].store_request()).ok();
        drop(apdb);
        Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    }
    // Garbage after the last record is a torn tail.
    {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(base.path(), dir.path());
        let copy = dir.path().join("wal").join(log.file_name().unwrap());
        let mut b = bytes.clone();
        b.extend_from_slice(&[0xAB; 100]);
        std::fs::write(&copy, &b).unwrap();
        let (apdb, stats) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
        assert_eq!(apdb.snapshot().seq, 4);
        assert_eq!(stats.torn_bytes, 100);
    }
    // A flipped byte inside record 2 with valid records after it: damage
    // of acknowledged data, reported, not silently dropped.
    for position in [ends[0] + 5, ends[0] + 100, ends[1] - 3] {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(base.path(), dir.path());
        let copy = dir.path().join("wal").join(log.file_name().unwrap());
        let mut b = bytes.clone();
        b[position] ^= 0x40;
        std::fs::write(&copy, &b).unwrap();
        match Apdb::open_with_schema(dir.path(), felis(), test_config()) {
            Err(ApdbError::Corrupt(m)) => assert!(m.contains("valid records follow"), "{m}"),
            Err(e) => panic!("byte {position}: {e}"),
            Ok(_) => panic!("byte {position}: damage not detected"),
        }
    }
}
