//! `skyscan-bench apdb`: the per-visit cycle of the alert pipeline on an
//! ap_proto-like workload (issue 7): for each visit, the three reads
//! (DiaObjects in the visit circle, their DiaSources and DiaForcedSources of
//! the last 12 months) and the `store` (fsynced), as the history grows; the
//! same visits through lsst-dax-apdb on SQLite (bench/peers/apdb_dax.py) for
//! the first visits, in the same run; and visits/s with 189 concurrent
//! CCD-level writers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use clap::Args;
use skyscan_engine::apdb::workload::{DETECTORS, Visit, Workload, WorkloadConfig};
use skyscan_engine::apdb::{Apdb, ApdbConfig, ApdbLayout, ApdbTable, FelisSchema, ResultSet};
use skyscan_engine::synth::export::write_parquet;
use skyscan_format::ColumnData;

/// Options of `skyscan-bench apdb`.
#[derive(Args, Debug)]
pub struct ApdbArgs {
    /// Visits of the skyscan run.
    #[arg(long, default_value_t = 2_000)]
    visits: usize,
    /// A CI-sized run: 40 visits, 3 of them through dax_apdb, 3 CCD-level visits.
    #[arg(long)]
    quick: bool,
    /// Visits run through lsst-dax-apdb on SQLite (0: skip the peer).
    #[arg(long, default_value_t = 50)]
    dax_visits: usize,
    /// Visits stored by 189 concurrent CCD-level writers.
    #[arg(long, default_value_t = 20)]
    ccd_visits: usize,
    /// Days between visits (the 12-month window fills after 365/this visits).
    #[arg(long, default_value_t = 3.65)]
    days_per_visit: f64,
    /// Radius of the patch the pointings fall in, degrees.
    #[arg(long, default_value_t = 10.0)]
    patch_radius: f64,
    /// The felis schema (default: ../shared/testdata/apdb/apdb.yaml).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Print a line every this many visits.
    #[arg(long, default_value_t = 100)]
    report_every: usize,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
}

/// Seconds of one visit's operations.
#[derive(Debug, Clone, Copy, Default)]
struct VisitTimes {
    objects: f64,
    sources: f64,
    forced: f64,
    store: f64,
    /// CPU seconds of the calling thread over the whole cycle (the reads
    /// run on it entirely; `store` adds its validation, encoding and the
    /// group-commit wait's bookkeeping, not the fsync wait). Unlike wall
    /// time this does not grow when other processes take the cores.
    cpu: f64,
    rows_read: [usize; 3],
}

/// CPU time of the calling thread, seconds (Linux `schedstat`: ns on CPU).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map_or(f64::NAN, |ns| ns as f64 * 1e-9)
}

/// CPU time of the whole process (all threads, incl. compaction), seconds.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

impl VisitTimes {
    fn total(&self) -> f64 {
        self.objects + self.sources + self.forced + self.store
    }
}

fn ids_of(set: &ResultSet, column: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(set.rows());
    for batch in &set.batches {
        if let ColumnData::I64(c) = &batch.columns[column] {
            out.extend_from_slice(&c.values);
        }
    }
    out
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

fn one_visit(apdb: &Apdb, layout: &ApdbLayout, visit: &Visit) -> Result<VisitTimes, String> {
    let mut t = VisitTimes::default();
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    let objects = apdb
        .get_dia_objects(&visit.region)
        .map_err(|e| e.to_string())?;
    let ids = ids_of(&objects, layout.table(ApdbTable::DiaObject).id);
    let after_objects = Instant::now();
    let sources = apdb
        .get_dia_sources(&visit.region, &ids, visit.time, 12)
        .map_err(|e| e.to_string())?;
    let after_sources = Instant::now();
    let forced = apdb
        .get_dia_forced_sources(&visit.region, &ids, visit.time, 12)
        .map_err(|e| e.to_string())?;
    let after_forced = Instant::now();
    apdb.store(&visit.store_request())
        .map_err(|e| e.to_string())?;
    let end = Instant::now();
    t.objects = (after_objects - start).as_secs_f64();
    t.sources = (after_sources - after_objects).as_secs_f64();
    t.forced = (after_forced - after_sources).as_secs_f64();
    t.store = (end - after_forced).as_secs_f64();
    t.rows_read = [objects.rows(), sources.rows(), forced.rows()];
    t.cpu = thread_cpu_seconds() - cpu_start;
    Ok(t)
}

fn mean(times: &[VisitTimes], range: std::ops::Range<usize>) -> VisitTimes {
    let slice = &times[range.start.min(times.len())..range.end.min(times.len())];
    let n = slice.len().max(1) as f64;
    let mut m = VisitTimes::default();
    for t in slice {
        m.objects += t.objects / n;
        m.sources += t.sources / n;
        m.forced += t.forced / n;
        m.store += t.store / n;
        m.cpu += t.cpu / n;
        for k in 0..3 {
            m.rows_read[k] += t.rows_read[k];
        }
    }
    for k in 0..3 {
        m.rows_read[k] /= slice.len().max(1);
    }
    m
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// Runs the benchmark.
pub fn run(args: &ApdbArgs) -> Result<(), String> {
    let (visits, dax_visits, ccd_visits) = if args.quick {
        (40, args.dax_visits.min(3), args.ccd_visits.min(3))
    } else {
        (
            args.visits,
            args.dax_visits.min(args.visits),
            args.ccd_visits,
        )
    };
    let schema_path = args.schema.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/apdb/apdb.yaml")
    });
    let felis = FelisSchema::from_file(&schema_path).map_err(|e| e.to_string())?;
    let layout = ApdbLayout::new(felis.clone()).map_err(|e| e.to_string())?;
    let dir = crate::scratch_dir("apdb");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let workload = WorkloadConfig {
        days_per_visit: args.days_per_visit,
        patch_radius_deg: args.patch_radius,
        ..WorkloadConfig::default()
    };
    println!(
        "APDB workload (ap_proto-like): {visits} visits of {}° radius, pointings within {}° of ({}, {}), \
         {} variable objects per field, {} noise sources per visit, a visit every {} days; \
         reads of 12 months; store fsynced",
        workload.fov_radius_deg,
        workload.patch_radius_deg,
        workload.patch_ra_deg,
        workload.patch_dec_deg,
        workload.variables_per_field,
        workload.noise_per_visit,
        workload.days_per_visit
    );
    let mut generator = Workload::new(workload.clone(), layout.clone());
    let db_dir = dir.join("skyscan");
    let (apdb, _) = Apdb::open_with_schema(&db_dir, felis.clone(), ApdbConfig::default())
        .map_err(|e| e.to_string())?;
    let dax_dir = dir.join("dax-input");
    std::fs::create_dir_all(&dax_dir).map_err(|e| e.to_string())?;
    let mut dax_index = String::new();
    let mut times = Vec::with_capacity(visits);
    println!(
        "{:>6} {:>7} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>7} {:>8} | {:>9} {:>11}",
        "visit",
        "objects",
        "sources",
        "forced",
        "obj ms",
        "src ms",
        "fsrc ms",
        "store ms",
        "total ms",
        "cpu ms",
        "proc cpu",
        "DB MB",
        "rows stored"
    );
    let run_start = Instant::now();
    let mut last_report = (0usize, process_cpu_seconds());
    for index in 0..visits {
        let visit = generator.next_visit();
        if index < dax_visits {
            for (name, table) in [
                ("objects", &visit.objects),
                ("sources", &visit.sources),
                ("forced", &visit.forced_sources),
            ] {
                let path = dax_dir.join(format!("visit{}_{name}.parquet", visit.visit));
                let mut out = BufWriter::new(File::create(&path).map_err(|e| e.to_string())?);
                write_parquet(table, &mut out, &mut |_| {})?;
                out.flush().map_err(|e| e.to_string())?;
            }
            dax_index.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                visit.visit, visit.time, visit.ra_deg, visit.dec_deg, workload.fov_radius_deg
            ));
        }
        let t = one_visit(&apdb, &layout, &visit)?;
        times.push(t);
        let n = index + 1;
        if n == 1 || n % args.report_every == 0 || n == visits || (args.quick && n % 10 == 0) {
            let m = mean(&times, n.saturating_sub(args.report_every.min(20))..n);
            let stats = apdb.stats();
            let process = process_cpu_seconds();
            let process_per_visit = (process - last_report.1) / (n - last_report.0).max(1) as f64;
            last_report = (n, process);
            println!(
                "{:>6} {:>7} {:>8} {:>8} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>7.1} {:>8.1} | {:>9.1} {:>11}",
                n,
                m.rows_read[0],
                m.rows_read[1],
                m.rows_read[2],
                m.objects * 1e3,
                m.sources * 1e3,
                m.forced * 1e3,
                m.store * 1e3,
                m.total() * 1e3,
                m.cpu * 1e3,
                process_per_visit * 1e3,
                dir_bytes(&db_dir) as f64 / 1e6,
                stats.rows.iter().sum::<u64>()
            );
        }
    }
    let wall = run_start.elapsed().as_secs_f64();
    let stats = apdb.stats();
    println!(
        "skyscan: {visits} visits in {wall:.1} s (incl. generating them); DiaObject versions {}, DiaSources {}, \
         DiaForcedSources {}; {} partitions; {} segments, {:.1} MB; log {:.1} MB; compaction error: {}",
        stats.rows[0],
        stats.rows[1],
        stats.rows[2],
        stats.partitions[0],
        stats.segments.iter().sum::<u64>(),
        stats.segment_bytes as f64 / 1e6,
        stats.wal_bytes as f64 / 1e6,
        apdb.compaction_error().unwrap_or_else(|| "none".into())
    );
    let mut store_ms: Vec<f64> = times.iter().map(|t| t.store * 1e3).collect();
    println!(
        "store latency (whole visit, fsynced): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut store_ms, 0.5),
        percentile(&mut store_ms, 0.99)
    );
    if visits >= 200 {
        let early = mean(&times, 90..110);
        let late = mean(&times, visits - 20..visits);
        println!(
            "flatness: mean per-visit total at visits 91-110 {:.1} ms, at visits {}-{} {:.1} ms: ratio {:.2} (goal <= 2)",
            early.total() * 1e3,
            visits - 19,
            visits,
            late.total() * 1e3,
            late.total() / early.total()
        );
        println!(
            "flatness (CPU of the calling thread, immune to other processes): visits 91-110 {:.1} ms, visits {}-{} {:.1} ms: ratio {:.2}",
            early.cpu * 1e3,
            visits - 19,
            visits,
            late.cpu * 1e3,
            late.cpu / early.cpu
        );
    }
    println!(
        "columns: rows read per visit (mean of the last 20 visits); wall ms of each read and of store; cpu ms = \
         CPU of the calling thread per visit; proc cpu = CPU of the whole process (incl. background compaction) \
         per visit since the previous line"
    );
    apdb.close();

    // dax_apdb on SQLite, same visits.
    if dax_visits > 0 {
        std::fs::write(dax_dir.join("visits.tsv"), &dax_index).map_err(|e| e.to_string())?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/apdb_dax.py");
        println!("lsst-dax-apdb (SQLite) on the first {dax_visits} visits ...");
        let output = Command::new("python3")
            .arg(&script)
            .arg(&dax_dir)
            .arg(&schema_path)
            .arg(dir.join("dax.sqlite3"))
            .output()
            .map_err(|e| format!("python3 {}: {e}", script.display()))?;
        if !output.status.success() {
            println!(
                "dax_apdb peer failed (bash bench/peers/setup-apdb.sh installs it): {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
        } else {
            let mut dax: Vec<(usize, [f64; 4], [usize; 3])> = Vec::new();
            let mut version = String::new();
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let f: Vec<&str> = line.split('\t').collect();
                match f.as_slice() {
                    ["version", v] => version = v.to_string(),
                    [visit, o, s, fs, st, no, ns, nf] => {
                        let p = |x: &str| x.parse::<f64>().unwrap_or(f64::NAN);
                        let u = |x: &str| x.parse::<usize>().unwrap_or(0);
                        dax.push((u(visit), [p(o), p(s), p(fs), p(st)], [u(no), u(ns), u(nf)]));
                    }
                    _ => {}
                }
            }
            println!(
                "{:>6} | {:>28} | {:>28} | {:>7}",
                "visit", "dax_apdb obj/src/fsrc/store s", "skyscan obj/src/fsrc/store ms", "ratio"
            );
            let mut dax_total = 0.0;
            let mut sky_total = 0.0;
            for (visit, d, rows) in &dax {
                let Some(s) = times.get(visit - 1) else {
                    continue;
                };
                let dt: f64 = d.iter().sum();
                dax_total += dt;
                sky_total += s.total();
                if *visit <= 3 || visit % 10 == 0 || *visit == dax.len() {
                    println!(
                        "{:>6} | {:>6.2} {:>6.2} {:>6.2} {:>6.2} | {:>6.1} {:>6.1} {:>6.1} {:>6.1} | {:>6.0}x   (rows read: dax {:?}, skyscan {:?})",
                        visit,
                        d[0],
                        d[1],
                        d[2],
                        d[3],
                        s.objects * 1e3,
                        s.sources * 1e3,
                        s.forced * 1e3,
                        s.store * 1e3,
                        dt / s.total(),
                        rows,
                        s.rows_read
                    );
                }
            }
            println!(
                "per-visit total over the first {} visits: dax_apdb {version} {:.2} s, skyscan {:.1} ms: skyscan {:.0}x faster (goal >= 20x)",
                dax.len(),
                dax_total / dax.len().max(1) as f64,
                sky_total / dax.len().max(1) as f64 * 1e3,
                dax_total / sky_total
            );
        }
    }

    // 189 concurrent CCD-level writers.
    if ccd_visits > 0 {
        let ccd_dir = dir.join("ccd");
        let (apdb, _) = Apdb::open_with_schema(&ccd_dir, felis, ApdbConfig::default())
            .map_err(|e| e.to_string())?;
        let mut generator = Workload::new(
            WorkloadConfig {
                seed: 99,
                ..workload
            },
            layout.clone(),
        );
        let per_visit: Vec<Vec<_>> = (0..ccd_visits)
            .map(|_| generator.next_visit().ccd_requests(&layout))
            .collect();
        let writers = DETECTORS as usize;
        // requests[d][v]: detector d's share of visit v.
        let mut requests: Vec<Vec<_>> = (0..writers).map(|_| Vec::new()).collect();
        for visit in per_visit {
            for (d, r) in visit.into_iter().enumerate() {
                requests[d].push(r);
            }
        }
        let apdb = Arc::new(apdb);
        let barrier = Arc::new(Barrier::new(writers));
        let start = Instant::now();
        let handles: Vec<_> = requests
            .into_iter()
            .map(|mine| {
                let apdb = Arc::clone(&apdb);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || -> Result<Vec<f64>, String> {
                    let mut latencies = Vec::new();
                    for r in mine {
                        barrier.wait();
                        let t = Instant::now();
                        apdb.store(&r).map_err(|e| e.to_string())?;
                        latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for h in handles {
            latencies.extend(
                h.join()
                    .map_err(|_| "a writer thread panicked".to_string())??,
            );
        }
        let seconds = start.elapsed().as_secs_f64();
        let stores = latencies.len();
        println!(
            "189 concurrent CCD-level writers: {ccd_visits} visits ({stores} stores) in {seconds:.2} s = {:.1} visits/s; \
             store latency p50 {:.1} ms, p99 {:.1} ms (fsync, group commit); log records {}",
            ccd_visits as f64 / seconds,
            percentile(&mut latencies, 0.5),
            percentile(&mut latencies, 0.99),
            apdb.stats().seq
        );
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept {}", dir.display());
    }
    Ok(())
}
