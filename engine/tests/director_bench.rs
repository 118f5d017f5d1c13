//! Director index measurements (not a pass/fail test). Run in release:
//! `cargo test --release -p skyscan-engine --test director_bench -- --ignored --nocapture`
//! `SKYSCAN_DIRECTOR_BENCH_KEYS` sets the number of keys (default 10^7).

// Test code: unwrap/expect/panic are how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use skyscan_engine::director::{BuildOptions, DirectorIndex, DirectorIndexBuilder};

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Keys and placements: `random` = uniform 63-bit keys in random chunks;
/// otherwise LSST-like: keys allocated in runs of ~1000 per sky patch (so a
/// run shares a chunk and a few sub-chunks), runs in random order.
fn keys(count: usize, random: bool) -> Vec<(i64, i32, i32)> {
    let mut rng = SplitMix(2024);
    let mut out = Vec::with_capacity(count);
    if random {
        for _ in 0..count {
            out.push((
                (rng.next() >> 1) as i64,
                (rng.next() % 14_450) as i32,
                (rng.next() % 400) as i32,
            ));
        }
        return out;
    }
    let mut next_key = 1_000_000_000_000i64;
    while out.len() < count {
        let chunk = (rng.next() % 14_450) as i32;
        let first_sub = (rng.next() % 390) as i32;
        for _ in 0..1_000.min(count - out.len()) {
            next_key += 1 + (rng.next() % 4) as i64;
            out.push((next_key, chunk, first_sub + (rng.next() % 8) as i32));
        }
    }
    // Insert in a shuffled order, as rows arrive from many input files.
    for index in (1..out.len()).rev() {
        out.swap(index, (rng.next() % (index as u64 + 1)) as usize);
    }
    out
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn director_index_numbers() {
    let count: usize = std::env::var("SKYSCAN_DIRECTOR_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir_in(
        std::env::var_os("SKYSCAN_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .unwrap();
    // Calibration: one random 8-byte read in a buffer the size of the index.
    let buffer: Vec<u64> = (0..count as u64 * 9 / 8).collect();
    let mut rng = SplitMix(3);
    let positions: Vec<usize> = (0..1_000_000)
        .map(|_| (rng.next() % buffer.len() as u64) as usize)
        .collect();
    let start = Instant::now();
    let mut sum = 0u64;
    for &position in &positions {
        sum = sum.wrapping_add(buffer[position]);
    }
    println!(
        "calibration: one random read in {} MB: {:.0} ns (checksum {sum})",
        (buffer.len() * 8) >> 20,
        start.elapsed().as_secs_f64() / positions.len() as f64 * 1e9
    );
    drop(buffer);
    for random in [true, false] {
        let label = if random {
            "uniform random keys"
        } else {
            "LSST-like keys (runs per patch)"
        };
        let triples = keys(count, random);
        for (budget, what) in [
            (usize::MAX / 2, "in memory"),
            (64 << 20, "64 MiB budget (spills)"),
        ] {
            let budget = budget.min(count * 16 + (1 << 20));
            let path = dir.path().join("bench.idx");
            let start = Instant::now();
            let options = BuildOptions {
                memory_budget_bytes: budget.max(1 << 20),
                spill_dir: Some(dir.path().to_path_buf()),
                ..BuildOptions::default()
            };
            let mut builder = DirectorIndexBuilder::new(options).unwrap();
            for &(key, chunk, sub) in &triples {
                builder.add(key, chunk, sub).unwrap();
            }
            let stats = builder.finish(&path).unwrap();
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "{label}, {count} keys, {what}: build {:.2} s = {:.2} M keys/s, {} runs, {} bytes = {:.2} bytes/entry",
                seconds,
                count as f64 / seconds / 1e6,
                stats.spilled_runs,
                stats.file_bytes,
                stats.file_bytes as f64 / count as f64
            );
        }
        let path = dir.path().join("bench.idx");
        let start = Instant::now();
        let index = DirectorIndex::open(&path).unwrap();
        println!("  open: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        index.verify_all().unwrap();
        println!(
            "  verify_all: {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        let index = DirectorIndex::open(&path).unwrap();

        let mut rng = SplitMix(7);
        let probes: Vec<(i64, i32, i32)> = (0..1_000_000)
            .map(|_| triples[(rng.next() % count as u64) as usize])
            .collect();
        for pass in ["first touch (verifies blocks)", "warm"] {
            let start = Instant::now();
            let mut found = 0u64;
            for &(key, chunk, sub) in &probes {
                let answer = index.lookup(key).unwrap();
                debug_assert_eq!(answer, Some((chunk, sub)));
                found += u64::from(answer == Some((chunk, sub)));
            }
            let elapsed = start.elapsed().as_secs_f64();
            assert_eq!(found, probes.len() as u64);
            println!(
                "  single lookup, {pass}: {:.0} ns/lookup",
                elapsed / probes.len() as f64 * 1e9
            );
        }
        let absent: Vec<i64> = (0..1_000_000)
            .map(|_| (rng.next() >> 1) as i64 | 1)
            .collect();
        let start = Instant::now();
        let hits = absent
            .iter()
            .filter(|&&key| index.lookup(key).unwrap().is_some())
            .count();
        println!(
            "  absent-key lookup: {:.0} ns/lookup ({hits} hits)",
            start.elapsed().as_secs_f64() / absent.len() as f64 * 1e9
        );
        for batch_len in [1_000usize, 1_000_000] {
            let mut batch: Vec<i64> = probes[..batch_len].iter().map(|p| p.0).collect();
            batch.sort_unstable();
            let rounds = 1_000_000 / batch_len;
            let start = Instant::now();
            for _ in 0..rounds {
                let answers = index.lookup_sorted_batch(&batch).unwrap();
                assert!(answers.iter().all(Option::is_some));
            }
            let elapsed = start.elapsed().as_secs_f64();
            println!(
                "  sorted batch of {batch_len}: {:.1} M keys/s ({:.0} ns/key)",
                (rounds * batch_len) as f64 / elapsed / 1e6,
                elapsed / (rounds * batch_len) as f64 * 1e9
            );
        }
        let start = Instant::now();
        let entries = index.iter().count();
        println!(
            "  full scan: {:.1} M entries/s",
            entries as f64 / start.elapsed().as_secs_f64() / 1e6
        );
    }
}
