//! `skyscan-bench spatial`: the near-neighbour join kernel at r = 1′ on
//! 50,000 objects per square degree over 1, 2 and 4 deg² (linearity), next
//! to DuckDB's grid-cell hash join on the same points
//! (bench/peers/nn_join_duckdb.py) in the same run; plus the distance-test
//! rate and `s2PtInCircle` on 10^6 points.
//!
//! skyscan runs on one core; DuckDB at each `--duckdb-threads` count.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use clap::Args;
use skyscan_kernel::spatial::ang_sep::Within;
use skyscan_kernel::spatial::join::{JoinParams, JoinStats, NeighbourJoin};
use skyscan_kernel::spatial::regions::CirclePredicate;

/// Options of `skyscan-bench spatial`.
#[derive(Args, Debug)]
pub struct SpatialArgs {
    /// Objects per square degree.
    #[arg(long, default_value_t = 50_000)]
    density: usize,
    /// Patch areas in square degrees (rows = density × area).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    areas: Vec<usize>,
    /// Join radius in arcminutes.
    #[arg(long, default_value_t = 1.0)]
    radius_arcmin: f64,
    /// Timed repetitions of each measurement (best and median reported).
    #[arg(long, default_value_t = 15)]
    repeats: usize,
    /// DuckDB thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    duckdb_threads: Vec<usize>,
    /// Skip the DuckDB peer.
    #[arg(long)]
    no_peer: bool,
}

/// SplitMix64, the generator of the criterion benchmarks.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` points uniform on the sphere in ra ∈ [10, 10 + width] (degrees),
/// dec ∈ [−0.5, 0.5]: `width` square degrees at the equator.
fn patch(n: usize, width: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let (s0, s1) = ((-0.5f64).to_radians().sin(), 0.5f64.to_radians().sin());
    let ra = (0..n).map(|_| 10.0 + width * rng.unit()).collect();
    let dec = (0..n)
        .map(|_| (s0 + (s1 - s0) * rng.unit()).asin().to_degrees())
        .collect();
    (ra, dec)
}

/// Best and median of timings, seconds.
fn best_median(mut seconds: Vec<f64>) -> (f64, f64) {
    seconds.sort_by(f64::total_cmp);
    (seconds[0], seconds[seconds.len() / 2])
}

struct JoinRun {
    rows: usize,
    best: f64,
    median: f64,
    cold: f64,
    stats: JoinStats,
}

fn time_join(
    ra: &[f64],
    dec: &[f64],
    params: &JoinParams,
    repeats: usize,
) -> Result<JoinRun, String> {
    // Cold: fresh scratch space and output vectors (page faults included).
    let started = Instant::now();
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    let stats = NeighbourJoin::new()
        .run(ra, dec, ra, dec, params, None, &mut out_a, &mut out_b)
        .map_err(|e| e.to_string())?;
    let cold = started.elapsed().as_secs_f64();
    // Warm: scratch and outputs reused, as a worker does chunk after chunk.
    let mut join = NeighbourJoin::new();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        out_a.clear();
        out_b.clear();
        let started = Instant::now();
        join.run(ra, dec, ra, dec, params, None, &mut out_a, &mut out_b)
            .map_err(|e| e.to_string())?;
        times.push(started.elapsed().as_secs_f64());
    }
    let (best, median) = best_median(times);
    Ok(JoinRun {
        rows: ra.len(),
        best,
        median,
        cold,
        stats,
    })
}

/// Runs the benchmark.
pub fn run(args: &SpatialArgs) -> Result<(), String> {
    if args.repeats == 0 || args.repeats > 1000 {
        return Err("spatial: --repeats must be in 1..=1000".to_string());
    }
    if args.areas.is_empty() || args.areas.iter().any(|&a| a == 0 || a > 64) {
        return Err("spatial: --areas must be in 1..=64 square degrees".to_string());
    }
    if args.density == 0 || args.density > 2_000_000 {
        return Err("spatial: --density must be in 1..=2000000".to_string());
    }
    let radius = args.radius_arcmin / 60.0;
    let params = JoinParams {
        radius_deg: radius,
        comparison: Within::Less,
        max_pairs: 2_000_000_000,
    };
    println!(
        "near-neighbour join, r = {}′, {} objects/deg², one core (wall time; best and median of {})",
        args.radius_arcmin, args.density, args.repeats
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>11} {:>11} {:>12} {:>10}",
        "rows", "best ms", "median ms", "cold ms", "pairs", "pairs/s", "chord tests", "tests/s"
    );
    let mut runs = Vec::new();
    for &area in &args.areas {
        let n = args.density * area;
        let (ra, dec) = patch(n, area as f64, 5);
        let run = time_join(&ra, &dec, &params, args.repeats)?;
        println!(
            "{:>8} {:>10.2} {:>10.2} {:>10.2} {:>11} {:>11.3e} {:>12} {:>10.3e}",
            run.rows,
            run.best * 1e3,
            run.median * 1e3,
            run.cold * 1e3,
            run.stats.pairs,
            run.stats.pairs as f64 / run.best,
            run.stats.candidates,
            run.stats.candidates as f64 / run.best
        );
        runs.push((run, ra, dec));
    }
    for pair in runs.windows(2) {
        let (small, large) = (&pair[0].0, &pair[1].0);
        println!(
            "linearity: {} → {} rows ({:.2}×): time {:.2}× (best), {:.2}× (median)",
            small.rows,
            large.rows,
            large.rows as f64 / small.rows as f64,
            large.best / small.best,
            large.median / small.median
        );
    }
    circle_rate(args.repeats)?;
    if args.no_peer {
        return Ok(());
    }
    let Some((first, ra, dec)) = runs.first() else {
        return Ok(());
    };
    duckdb_peer(args, first, ra, dec, radius)
}

/// `s2PtInCircle` over 10^6 points in 16 Ki-row batches (a sub-chunk's
/// size), cones of 1′, 10′ and 1° inside a 10° field.
fn circle_rate(repeats: usize) -> Result<(), String> {
    let n = 1_000_000;
    let mut rng = Rng(4);
    let ra: Vec<f64> = (0..n).map(|_| 5.0 + 10.0 * rng.unit()).collect();
    let dec: Vec<f64> = (0..n).map(|_| -5.0 + 10.0 * rng.unit()).collect();
    let batch = 16 * 1024;
    let mut out = vec![0u64; batch / 64];
    let mut validity = vec![u64::MAX; batch / 64];
    println!("s2PtInCircle on {n} points, batches of {batch} rows, no precomputed vectors:");
    for (label, radius) in [("1′", 1.0 / 60.0), ("10′", 10.0 / 60.0), ("1°", 1.0)] {
        let circle = CirclePredicate::new(10.0, 0.0, radius);
        let mut times = Vec::with_capacity(repeats);
        let mut inside = 0u64;
        for _ in 0..repeats {
            inside = 0;
            let started = Instant::now();
            for (lon, lat) in ra.chunks(batch).zip(dec.chunks(batch)) {
                circle
                    .eval(lon, lat, None, &mut out, &mut validity)
                    .map_err(|e| e.to_string())?;
                inside += out.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
            }
            times.push(started.elapsed().as_secs_f64());
        }
        let (best, median) = best_median(times);
        println!(
            "  r = {label:>3}: {:>7.2} ms best, {:>7.2} ms median, {:.3e} points/s, {inside} inside",
            best * 1e3,
            median * 1e3,
            n as f64 / best
        );
    }
    Ok(())
}

fn duckdb_peer(
    args: &SpatialArgs,
    ours: &JoinRun,
    ra: &[f64],
    dec: &[f64],
    radius: f64,
) -> Result<(), String> {
    let path = crate::scratch_dir("spatial-points");
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for value in ra.iter().chain(dec) {
            file.write_all(&value.to_le_bytes())?;
        }
        file.flush()
    };
    write().map_err(|e| format!("{}: {e}", path.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/nn_join_duckdb.py");
    let threads: Vec<String> = args.duckdb_threads.iter().map(usize::to_string).collect();
    let output = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .arg(ra.len().to_string())
        .arg(format!("{radius:.17}"))
        .arg(args.repeats.min(5).to_string())
        .arg(threads.join(","))
        .output();
    let _ = std::fs::remove_file(&path);
    let output =
        output.map_err(|e| format!("python3 {}: {e} (or pass --no-peer)", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the DuckDB peer failed (run scripts/setup-python.sh, or pass --no-peer):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    println!(
        "DuckDB grid-cell hash join on the same {} points:",
        ra.len()
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["skip", engine, reason] => println!("  {engine}: not available ({reason}); skipped"),
            [engine, version, threads, best, median, pairs] => {
                let best: f64 = best.parse().unwrap_or(f64::NAN);
                let median: f64 = median.parse().unwrap_or(f64::NAN);
                let pairs: usize = pairs.parse().unwrap_or(0);
                println!(
                    "  {engine} {version}, {threads} threads: {:.1} ms best, {:.1} ms median, {pairs} pairs; skyscan (1 core) is {:.1}× faster (best), {:.1}× (median)",
                    best * 1e3,
                    median * 1e3,
                    best / ours.best,
                    median / ours.median
                );
                let diff = pairs.abs_diff(ours.stats.pairs);
                if diff * 100_000 > ours.stats.pairs {
                    return Err(format!(
                        "{engine} found {pairs} pairs, skyscan {}: more than 1e-5 apart",
                        ours.stats.pairs
                    ));
                }
                if diff > 0 {
                    println!(
                        "  ({diff} pairs differ: DuckDB's own haversine rounds differently at the boundary)"
                    );
                }
            }
            _ => println!("  peer: {line}"),
        }
    }
    Ok(())
}
