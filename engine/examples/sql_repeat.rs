//! Runs one SQL statement against a database N times and prints each run's
//! time and the median: a loop to profile under `perf record`.
//!
//! `cargo run --release -p skyscan-engine --example sql_repeat -- DB_DIR N "SQL" [DATABASE]`

use std::time::Instant;

use skyscan_engine::catalog::Database;
use skyscan_engine::query::{EngineOptions, QueryEngine};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, count, sql, rest @ ..] = args.as_slice() else {
        return Err("usage: sql_repeat DB_DIR N SQL [DEFAULT_DATABASE]".into());
    };
    skyscan_engine::storage::keep_freed_memory();
    let count: usize = count.parse().map_err(|e| format!("N: {e}"))?;
    let db = Database::open(std::path::Path::new(root)).map_err(|e| e.to_string())?;
    let engine = QueryEngine::new(
        db,
        EngineOptions {
            default_database: rest.first().cloned(),
            ..EngineOptions::default()
        },
    );
    let mut times = Vec::with_capacity(count);
    let mut rows = 0;
    for _ in 0..count {
        let started = Instant::now();
        let result = engine.query(sql).map_err(|e| e.to_string())?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        rows = result.rows();
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{rows} rows; median {median:.2} ms over {count} runs (min {:.2})",
        times.first().copied().unwrap_or(0.0)
    );
    Ok(())
}
