//! `skyscan-bench shared`: K different full-scan SQL queries submitted at
//! once (issue 5's shared-scan figures), skyscan's convoys against DuckDB
//! running the same K queries concurrently on its native table, same rows,
//! same threads, in one run; hot, and cold with `--cold` (page cache dropped
//! before every round). Answers are checked equal query by query.
//!
//! The queries filter and aggregate different flux columns with different
//! thresholds (counts, averages, colour cuts, a histogram): about half of
//! the table's columns in all, as a realistic scan mix touches the popular
//! columns. T(1) is one of them alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use skyscan_engine::catalog::Database;
use skyscan_engine::query::{CollectSink, EngineOptions, ExecOptions, QueryEngine, QueryResult};

use crate::query_bench::{answers_match, normalized, prepare_object_table};

/// Options of `skyscan-bench shared`.
#[derive(Args, Debug)]
pub struct SharedArgs {
    /// Object rows (the issue's figures use 20 M).
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Numbers of concurrent queries.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    k: Vec<usize>,
    /// Also cold rounds (drops the page cache before each; needs root).
    #[arg(long)]
    cold: bool,
    /// Threads of DuckDB (skyscan's convoys use the engine's workers: 2).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where the generated data is kept between runs.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Skip DuckDB.
    #[arg(long)]
    no_peer: bool,
    /// Queries touching fewer chunks bypass the convoys (the engine's
    /// default is 10; small tables need less to ride the convoys at all).
    #[arg(long, default_value_t = 10)]
    interactive_max_chunks: usize,
    /// Nice value of the convoy threads. The engine runs them at 10 so that
    /// interactive queries go first; here 0, as DuckDB's threads, so that
    /// other work on the machine does not slow one engine more than the other.
    #[arg(long, default_value_t = 0)]
    nice: i32,
}

const BANDS: [&str; 6] = ["u", "g", "r", "i", "z", "y"];

/// The `index`-th query of the mix (64 distinct ones).
pub(crate) fn query(index: usize) -> String {
    let b1 = BANDS[index % 6];
    let b2 = BANDS[(index / 6 + 1 + index) % 6];
    let t = 100 * (index + 1);
    match index % 4 {
        0 => format!("SELECT COUNT(*) FROM Object WHERE {b1}_psfFlux > {t}"),
        1 => format!(
            "SELECT COUNT(*), AVG({b1}_psfFlux), MAX({b2}_psfFluxErr) FROM Object WHERE {b2}_psfFlux BETWEEN {t} AND {}",
            t * 10
        ),
        2 => format!(
            "SELECT COUNT(*), SUM(nVisits) FROM Object WHERE {b1}_psfFlux - {b2}_psfFlux > {} AND extendedness > 0.5",
            t / 10
        ),
        _ => format!(
            "SELECT FLOOR(decl) AS d, COUNT(*) FROM Object WHERE {b1}_psfFlux > {t} GROUP BY FLOOR(decl) ORDER BY d"
        ),
    }
}

/// Reads every file under `dir` once through the page cache, so that hot
/// rounds find the chunk files cached (the convoys read cold files with
/// `O_DIRECT`, which does not fill the page cache, and decode cached ones
/// from a map).
fn warm_page_cache(dir: &Path) -> Result<u64, String> {
    let mut bytes = 0u64;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            bytes += warm_page_cache(&path)?;
        } else if let Ok(mut file) = std::fs::File::open(&path) {
            bytes += std::io::copy(&mut file, &mut std::io::sink()).unwrap_or(0);
        }
    }
    Ok(bytes)
}

fn drop_caches() -> Result<(), String> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", b"3")
        .map_err(|e| format!("drop caches (needs root): {e}"))
}

/// Runs `queries` at once on the engine (a thread each); wall time in ms
/// and answers. The suite's shared-scan rounds use it too.
pub(crate) fn run_together(
    engine: &QueryEngine,
    queries: &[String],
) -> Result<(f64, Vec<QueryResult>), String> {
    let start = Instant::now();
    let results: Vec<Result<QueryResult, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .iter()
            .map(|sql| {
                scope.spawn(move || {
                    let mut sink = CollectSink::new(u64::MAX);
                    engine
                        .query_with(sql, &ExecOptions::default(), &mut sink)
                        .map(|_| sink.result)
                        .map_err(|e| format!("{sql}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a query thread panicked".to_string()))
            })
            .collect()
    });
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    Ok((wall, results.into_iter().collect::<Result<_, _>>()?))
}

/// Runs the benchmark.
pub fn run(args: &SharedArgs) -> Result<(), String> {
    if args.k.is_empty() || args.k.iter().any(|&k| k == 0 || k > 64) {
        return Err("shared: --k values must be in 1..=64".to_string());
    }
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("skyscan-bench-query-{}-200000", args.rows))
    });
    let (root, parquet) = prepare_object_table(args.rows, 200_000.0, &dir)?;
    let engine = QueryEngine::new(
        Database::open(&root).map_err(|e| e.to_string())?,
        EngineOptions {
            default_database: Some("bench".to_string()),
            scan: skyscan_engine::scan::EngineConfig {
                interactive_max_chunks: args.interactive_max_chunks,
                convoy_nice: args.nice,
                // Cold rounds measure the streaming path (O_DIRECT) of tables
                // too large to keep in the page cache; hot rounds warm the
                // cache first and decode from maps either way.
                storage: skyscan_engine::storage::StorageConfig {
                    cache_tables_up_to: 0,
                    ..skyscan_engine::storage::StorageConfig::default()
                },
                ..skyscan_engine::scan::EngineConfig::default()
            },
            ..EngineOptions::default()
        },
    );
    let chunks = engine
        .query("SELECT COUNT(DISTINCT chunkId) FROM Object")
        .map_err(|e| e.to_string())?
        .to_rows()
        .first()
        .and_then(|r| r.first()?.to_i64())
        .unwrap_or(0);
    let mut rounds: Vec<(bool, usize)> = args.k.iter().map(|&k| (false, k)).collect();
    if args.cold {
        rounds.extend(args.k.iter().map(|&k| (true, k)));
    }
    // Warm the page cache, the footer cache and the maps once.
    warm_page_cache(&root)?;
    run_together(&engine, &[query(0)])?;
    let mut ours: Vec<(bool, usize, f64, Vec<QueryResult>)> = Vec::new();
    for &(cold, k) in &rounds {
        let queries: Vec<String> = (0..k).map(query).collect();
        if cold {
            drop_caches()?;
        } else {
            warm_page_cache(&root)?;
        }
        let (wall, results) = run_together(&engine, &queries)?;
        ours.push((cold, k, wall, results));
    }

    // DuckDB, same rounds (its file built by the query benchmark's peer script).
    let mut peer: Option<serde_json::Value> = None;
    if !args.no_peer {
        let duck_db = dir.join("duck.db");
        if !duck_db.exists() {
            let spec = serde_json::json!({"db": duck_db, "parquet": parquet, "threads": [args.threads], "reps": 0, "queries": []});
            let spec_path = dir.join("duckdb-build.json");
            std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/duckdb_queries.py");
            let status = Command::new("python3")
                .arg(&script)
                .arg(&spec_path)
                .output()
                .map_err(|e| e.to_string())?;
            if !status.status.success() {
                eprintln!(
                    "DuckDB peer skipped: {}",
                    String::from_utf8_lossy(&status.stdout).trim()
                );
            }
        }
        if duck_db.exists() {
            let mut duck_rounds = Vec::new();
            for &(cold, k) in &rounds {
                if cold {
                    drop_caches()?;
                }
                let spec = serde_json::json!({"db": duck_db, "threads": args.threads, "rounds": [(0..k).map(query).collect::<Vec<_>>()]});
                let spec_path = dir.join("duckdb-concurrent.json");
                std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/duckdb_concurrent.py");
                let output = Command::new("python3")
                    .arg(&script)
                    .arg(&spec_path)
                    .output()
                    .map_err(|e| e.to_string())?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                if !output.status.success() {
                    eprintln!(
                        "DuckDB peer skipped: {}{}",
                        stdout.trim(),
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                    break;
                }
                let value: serde_json::Value = serde_json::from_str(stdout.trim())
                    .map_err(|e| format!("DuckDB output: {e}"))?;
                duck_rounds.push(value["rounds"][0].clone());
            }
            if duck_rounds.len() == rounds.len() {
                peer = Some(serde_json::Value::Array(duck_rounds));
            }
        }
    }

    println!(
        "shared scans: {} Objects in {chunks} chunks, K different full-scan queries at once (convoys); DuckDB {} threads, a cursor per query",
        args.rows, args.threads
    );
    println!(
        "{:<5} {:>3} {:>12} {:>10} {:>12} {:>10} {:>11}  check",
        "cache", "K", "skyscan ms", "T(K)/T(1)", "duckdb ms", "T(K)/T(1)", "speedup"
    );
    let mut mismatches = 0;
    for (index, (cold, k, wall, results)) in ours.iter().enumerate() {
        let base = ours
            .iter()
            .find(|(c, kk, _, _)| c == cold && *kk == 1)
            .map(|r| r.2);
        let duck = peer.as_ref().map(|p| &p[index]);
        let duck_ms = duck.and_then(|d| d["wall_ms"].as_f64());
        let duck_base = peer.as_ref().and_then(|p| {
            rounds
                .iter()
                .position(|(c, kk)| c == cold && *kk == 1)
                .and_then(|i| p[i]["wall_ms"].as_f64())
        });
        let check = match duck {
            Some(d) => {
                let mut bad = 0;
                for (q, ours) in results.iter().enumerate() {
                    let theirs = d["rows"][q].as_array().cloned().unwrap_or_default();
                    if answers_match(&normalized(ours), &theirs, true).is_err() {
                        bad += 1;
                    }
                }
                mismatches += bad;
                if bad == 0 {
                    "same answers".to_string()
                } else {
                    format!("{bad} DIFFERENT")
                }
            }
            None => "no peer".to_string(),
        };
        println!(
            "{:<5} {:>3} {:>12.1} {:>10} {:>12} {:>10} {:>11}  {}",
            if *cold { "cold" } else { "hot" },
            k,
            wall,
            base.map_or("-".into(), |b| format!("{:.2}", wall / b)),
            duck_ms.map_or("-".into(), |d| format!("{d:.1}")),
            match (duck_ms, duck_base) {
                (Some(d), Some(b)) => format!("{:.2}", d / b),
                _ => "-".into(),
            },
            duck_ms.map_or("-".into(), |d| format!("{:.2}x", d / wall)),
            check
        );
    }
    if mismatches > 0 {
        return Err(format!("{mismatches} answers differ from DuckDB's"));
    }
    Ok(())
}
