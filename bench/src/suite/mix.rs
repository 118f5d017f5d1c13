//! The concurrency mix of Qserv's KPM tests (e.g. 50 LV + 5 HV at once):
//! `clients` threads each run `per_client` LV queries, first alone (idle),
//! then while one thread per HV query runs it in a loop (loaded). The
//! figure is the LV latency distribution in both rounds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skyscan_engine::query::{CollectSink, ExecOptions, QueryEngine};

/// Latencies of one engine's mix, milliseconds.
#[derive(Debug, Clone, Default)]
pub struct MixResult {
    /// LV latencies without scans.
    pub idle_ms: Vec<f64>,
    /// LV latencies while the HV queries run.
    pub loaded_ms: Vec<f64>,
    /// HV queries completed during the loaded round.
    pub hv_runs: u64,
    /// Their durations.
    pub hv_ms: Vec<f64>,
}

/// The `p`-th percentile (0..=1) of `values` (nearest rank).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn run_one(engine: &QueryEngine, sql: &str) -> Result<(), String> {
    let mut sink = CollectSink::new(1 << 30);
    engine
        .query_with(sql, &ExecOptions::default(), &mut sink)
        .map(|_| ())
        .map_err(|e| format!("{sql}: {e}"))
}

fn lv_round(
    engine: &QueryEngine,
    lv: &[String],
    clients: usize,
    per_client: usize,
) -> Result<Vec<f64>, String> {
    let latencies = Mutex::new(Vec::with_capacity(clients * per_client));
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for client in 0..clients {
            let latencies = &latencies;
            let first_error = &first_error;
            scope.spawn(move || {
                let mut mine = Vec::with_capacity(per_client);
                for k in 0..per_client {
                    let sql = &lv[(client * per_client + k) % lv.len()];
                    let started = Instant::now();
                    if let Err(e) = run_one(engine, sql) {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                    mine.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                if let Ok(mut all) = latencies.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    latencies
        .into_inner()
        .map_err(|_| "latencies poisoned".to_string())
}

/// Runs the mix on skyscan.
pub fn run_skyscan(
    engine: &QueryEngine,
    lv: &[String],
    hv: &[String],
    clients: usize,
    per_client: usize,
) -> Result<MixResult, String> {
    if lv.is_empty() {
        return Err("mix: no LV queries".to_string());
    }
    let idle_ms = lv_round(engine, lv, clients, per_client)?;
    let stop = AtomicBool::new(false);
    let hv_runs = AtomicU64::new(0);
    let hv_ms = Mutex::new(Vec::new());
    let hv_error: Mutex<Option<String>> = Mutex::new(None);
    let loaded = std::thread::scope(|scope| {
        for sql in hv {
            let (stop, hv_runs, hv_ms, hv_error) = (&stop, &hv_runs, &hv_ms, &hv_error);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if let Err(e) = run_one(engine, sql) {
                        if let Ok(mut slot) = hv_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                    hv_runs.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut all) = hv_ms.lock() {
                        all.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            });
        }
        // Let the scans start before the interactive clients.
        std::thread::sleep(Duration::from_millis(200));
        let loaded = lv_round(engine, lv, clients, per_client);
        stop.store(true, Ordering::Relaxed);
        loaded
    })?;
    if let Some(e) = hv_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(MixResult {
        idle_ms,
        loaded_ms: loaded,
        hv_runs: hv_runs.load(Ordering::Relaxed),
        hv_ms: hv_ms.into_inner().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
