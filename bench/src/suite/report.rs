//! The suite's output: tables on stdout while it runs, and with `--report
//! DIR` a Markdown report, the figures as JSON, and PNG charts drawn by
//! `bench/peers/suite_charts.py` (matplotlib: log axes, legends and text
//! rendering for free; a PNG writer of our own would be hundreds of lines
//! for worse charts, and a Rust plotting crate a dependency for one file).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::mix::{MixResult, percentile};
use super::queries::CLASSES;
use super::{ClassFigure, LoadFigure, Outcome, SharedFigure};

fn ms_text(ms: Option<f64>) -> String {
    match ms {
        Some(v) if v.is_finite() && v >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() && v >= 1.0 => format!("{v:.1}"),
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "–".to_string(),
    }
}

/// The fastest peer of a class: (name, ms).
pub fn best_peer(figure: &ClassFigure) -> Option<(&str, f64)> {
    figure
        .ms
        .iter()
        .filter(|(engine, ms)| {
            engine.as_str() != "skyscan" && engine.as_str() != super::SERVER && ms.is_finite()
        })
        .filter(|(engine, _)| {
            figure
                .check
                .get(engine.as_str())
                .is_some_and(|c| c == "same answers")
        })
        .map(|(engine, &ms)| (engine.as_str(), ms))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Prints the per-class table.
pub fn print_classes(classes: &[ClassFigure]) {
    println!(
        "{:<4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}  best peer",
        "class", "skyscan", "server", "duckdb", "duck-pq", "chdb", "pg-q3c", "ratio", "rows"
    );
    for figure in classes {
        let best = best_peer(figure);
        let ours = figure.ms.get("skyscan").copied();
        println!(
            "{:<4}  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}  {}",
            figure.class,
            ms_text(ours),
            ms_text(figure.ms.get(super::SERVER).copied()),
            ms_text(figure.ms.get("duckdb").copied()),
            ms_text(figure.ms.get("duckdb-parquet").copied()),
            ms_text(figure.ms.get("chdb").copied()),
            ms_text(figure.ms.get("postgres").copied()),
            match (best, ours) {
                (Some((_, b)), Some(o)) => format!("{:.1}x", b / o),
                _ => "–".to_string(),
            },
            figure.rows,
            best.map_or("–", |b| b.0)
        );
    }
}

/// Prints the shared-scan table.
pub fn print_shared(shared: &[SharedFigure]) {
    let base = shared.iter().find(|s| s.k == 1);
    println!(
        "{:>3} {:>12} {:>10} {:>12} {:>10} {:>9}  check",
        "K", "skyscan ms", "T(K)/T(1)", "duckdb ms", "T(K)/T(1)", "speedup"
    );
    for s in shared {
        println!(
            "{:>3} {:>12.1} {:>10} {:>12} {:>10} {:>9}  {}",
            s.k,
            s.skyscan_ms,
            base.map_or("–".into(), |b| format!(
                "{:.2}",
                s.skyscan_ms / b.skyscan_ms
            )),
            ms_text(s.duckdb_ms),
            match (s.duckdb_ms, base.and_then(|b| b.duckdb_ms)) {
                (Some(d), Some(b)) => format!("{:.2}", d / b),
                _ => "–".into(),
            },
            s.duckdb_ms
                .map_or("–".into(), |d| format!("{:.1}x", d / s.skyscan_ms)),
            s.check
        );
    }
}

/// Prints the mix's percentiles.
pub fn print_mix(mixes: &BTreeMap<String, MixResult>) {
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>11} {:>8}",
        "engine",
        "idle p50",
        "idle p95",
        "idle p99",
        "load p50",
        "load p95",
        "load p99",
        "p99 ratio",
        "HV runs"
    );
    println!(
        "  (ms; HV runs = HV queries completed while the LV clients ran, HV ms = their median)"
    );
    for (engine, m) in mixes {
        let p = |v: &[f64], q: f64| percentile(v, q);
        println!(
            "{:<8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>11.2} {:>8}  HV ms {}",
            engine,
            ms_text(Some(p(&m.idle_ms, 0.5))),
            ms_text(Some(p(&m.idle_ms, 0.95))),
            ms_text(Some(p(&m.idle_ms, 0.99))),
            ms_text(Some(p(&m.loaded_ms, 0.5))),
            ms_text(Some(p(&m.loaded_ms, 0.95))),
            ms_text(Some(p(&m.loaded_ms, 0.99))),
            p(&m.loaded_ms, 0.99) / p(&m.idle_ms, 0.99),
            m.hv_runs,
            ms_text(Some(p(&m.hv_ms, 0.5)))
        );
    }
}

/// Prints load rates and sizes.
pub fn print_loads(loads: &[LoadFigure], data: &super::data::Dataset) {
    let rows = data.objects + data.sources;
    println!(
        "{:<15} {:>9} {:>9} {:>12} {:>14}",
        "engine", "load s", "index s", "rows/s", "bytes on disk"
    );
    for l in loads {
        println!(
            "{:<15} {:>9.2} {:>9.2} {:>12.0} {:>14}",
            l.engine,
            l.seconds,
            l.index_seconds,
            if l.seconds > 0.0 {
                rows as f64 / (l.seconds + l.index_seconds)
            } else {
                f64::NAN
            },
            l.bytes
        );
    }
}

fn gb(bytes_per_s: f64) -> String {
    format!("{:.2} GB/s", bytes_per_s / 1e9)
}

/// The results as JSON (for the charts and for later comparison).
fn results_json(o: &Outcome) -> serde_json::Value {
    let classes: Vec<serde_json::Value> = o
        .classes
        .iter()
        .map(|c| {
            serde_json::json!({
                "class": c.class,
                "ms": c.ms,
                "check": c.check,
                "rows": c.rows,
                "bytes_read": c.bytes_read,
                "floor_bytes": c.floor_bytes,
                "sql": c.sql,
            })
        })
        .collect();
    let shared: Vec<serde_json::Value> = o
        .shared
        .iter()
        .map(|s| serde_json::json!({"k": s.k, "skyscan_ms": s.skyscan_ms, "duckdb_ms": s.duckdb_ms, "check": s.check}))
        .collect();
    let mix: serde_json::Map<String, serde_json::Value> = o
        .mix
        .iter()
        .map(|(engine, m)| {
            let p = |v: &[f64]| {
                serde_json::json!({
                    "p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "p99": percentile(v, 0.99), "count": v.len()
                })
            };
            (
                engine.clone(),
                serde_json::json!({"idle": p(&m.idle_ms), "loaded": p(&m.loaded_ms), "hv_runs": m.hv_runs}),
            )
        })
        .collect();
    let loads: Vec<serde_json::Value> = o
        .loads
        .iter()
        .map(|l| {
            serde_json::json!({"engine": l.engine, "version": l.version, "seconds": l.seconds,
                "index_seconds": l.index_seconds, "bytes": l.bytes})
        })
        .collect();
    serde_json::json!({
        "command": o.command,
        "objects": o.data.objects,
        "sources": o.data.sources,
        "parquet_bytes": o.data.parquet_bytes,
        "raw_bytes": o.data.raw_bytes,
        "machine": {
            "cores": o.machine.cores,
            "cpu": o.machine.cpu,
            "memory_bytes": o.machine.memory_bytes,
            "disk_read_bytes_per_s": o.machine.disk_read_bytes_per_s,
            "memory_read_1_bytes_per_s": o.machine.memory_read_1_bytes_per_s,
            "memory_read_2_bytes_per_s": o.machine.memory_read_2_bytes_per_s,
            "load_at_start": o.machine.load_at_start,
            "load_at_end": o.load_at_end,
        },
        "classes": classes,
        "shared": shared,
        "mix": mix,
        "loads": loads,
        "skipped": o.skipped,
        "mismatches": o.mismatches,
    })
}

/// Writes `DIR/report.md`, `DIR/results.json` and the charts.
pub fn write(dir: &Path, o: &Outcome) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json_path = dir.join("results.json");
    let json = results_json(o);
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", json_path.display()))?;
    let charts = std::process::Command::new("python3")
        .arg(super::peers::script("suite_charts.py"))
        .arg(&json_path)
        .arg(dir)
        .output();
    let charts_note = match charts {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "charts not drawn: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("charts not drawn: python3: {e}")),
    };
    if let Some(note) = &charts_note {
        eprintln!("suite: {note}");
    }
    let has_chart = |name: &str| charts_note.is_none() && dir.join(name).exists();
    let md = markdown(o, &has_chart);
    std::fs::write(dir.join("report.md"), md).map_err(|e| e.to_string())
}

fn markdown(o: &Outcome, has_chart: &dyn Fn(&str) -> bool) -> String {
    let mut s = String::new();
    let m = &o.machine;
    let _ = writeln!(s, "# skyscan benchmark suite\n");
    let _ = writeln!(s, "Made by:\n\n```\n{}\n```\n", o.command);
    let _ = writeln!(
        s,
        "{} Objects and {} Sources ({:.1} per object; {} chunks of Object, {} overlap copies; {:.0} deg² at {:.0} objects/deg²), \
         {:.0} MB of raw values, {:.0} MB as Parquet. Every engine runs with {} threads on the same rows, hot \
         cache (each query runs once before it is timed), in one run of {:.0} s. Times are medians \
         (LV: over {} instances of the median of {} runs each; HV: of {} runs).\n",
        o.data.objects,
        o.data.sources,
        o.data.sources as f64 / o.data.objects.max(1) as f64,
        o.chunks,
        o.overlap_rows,
        o.data.footprint.area_deg2(),
        o.args.density,
        o.data.raw_bytes as f64 / 1e6,
        o.data.parquet_bytes as f64 / 1e6,
        o.args.threads,
        o.seconds,
        o.args.lv_count,
        o.args.lv_reps,
        o.args.reps
    );
    let _ = writeln!(s, "## Machine (measured in the run)\n");
    let _ = writeln!(s, "| fact | value |\n|---|---|");
    let _ = writeln!(s, "| cores | {} ({}) |", m.cores, m.cpu);
    let _ = writeln!(
        s,
        "| memory | {:.1} GiB |",
        m.memory_bytes as f64 / (1u64 << 30) as f64
    );
    let _ = writeln!(
        s,
        "| disk, sequential O_DIRECT read (4 MiB, 1 in flight, {} MiB) | {} |",
        m.disk_probe_bytes >> 20,
        gb(m.disk_read_bytes_per_s)
    );
    let _ = writeln!(
        s,
        "| memory read bandwidth, 1 / 2 threads | {} / {} |",
        gb(m.memory_read_1_bytes_per_s),
        gb(m.memory_read_2_bytes_per_s)
    );
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(
        s,
        "| load average at start / end | {} / {} |\n",
        m.load_at_start, o.load_at_end
    );
    let _ = writeln!(
        s,
        "The machine is shared: other work ran during the measurement (see the load average); \
         within a run ratios are more stable than times.\n"
    );

    let _ = writeln!(s, "## Time per query class (ms)\n");
    let _ = writeln!(
        s,
        "Ratio = the best peer's time ÷ skyscan's (> 1: skyscan is faster), the best among peers whose \
         answers equal skyscan's; skyscan is the embedded engine, skyscan (server) the same queries through \
         its server and the Rust client over loopback (not counted as a peer). Floor = the physical limit of a hot query (the data are in memory): \
         bytes at the measured 2-thread memory bandwidth. For the full scans (HV1, HV2, HV4, HV5) the bytes \
         are the decoded values of the columns the query references, each touched once; for the others the \
         bytes skyscan read, as its engine reports them.\n"
    );
    let _ = writeln!(
        s,
        "| class | what | skyscan | skyscan (server) | DuckDB | DuckDB Parquet | chDB | PostgreSQL + Q3C | best peer | ratio | floor | rows |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for figure in &o.classes {
        let what = CLASSES
            .iter()
            .find(|c| c.name == figure.class)
            .map_or("", |c| c.what);
        let ours = figure.ms.get("skyscan").copied();
        let best = best_peer(figure);
        let floor = (figure.floor_bytes > 0)
            .then(|| figure.floor_bytes as f64 / m.memory_read_2_bytes_per_s * 1000.0);
        let cell = |engine: &str| {
            let text = ms_text(figure.ms.get(engine).copied());
            match figure.check.get(engine) {
                Some(c) if c != "same answers" => format!("{text} ✗"),
                None if engine != "skyscan" => "–".to_string(),
                _ => text,
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            figure.class,
            what,
            ms_text(ours),
            cell(super::SERVER),
            cell("duckdb"),
            cell("duckdb-parquet"),
            cell("chdb"),
            cell("postgres"),
            best.map_or("–", |b| b.0),
            match (best, ours) {
                (Some((_, b)), Some(o)) => format!("**{:.1}×**", b / o),
                _ => "–".to_string(),
            },
            floor.map_or("–".to_string(), |f| ms_text(Some(f))),
            figure.rows
        );
    }
    let problems: Vec<String> = o
        .classes
        .iter()
        .flat_map(|c| {
            c.check
                .iter()
                .filter(|(_, v)| v.as_str() != "same answers")
                .map(move |(e, v)| format!("* {} {e}: {v}", c.class))
        })
        .collect();
    if problems.is_empty() {
        let _ = writeln!(
            s,
            "\nEvery answer of every peer equals skyscan's (counts, sums, id sets).\n"
        );
    } else {
        let _ = writeln!(
            s,
            "\nAnswers that differ or failed (✗):\n\n{}\n",
            problems.join("\n")
        );
    }
    if has_chart("classes.png") {
        let _ = writeln!(s, "![time per class](classes.png)\n");
    }

    if !o.shared.is_empty() {
        let _ = writeln!(
            s,
            "## Shared scans: K different full-scan queries at once\n"
        );
        let _ = writeln!(
            s,
            "The queries of `skyscan-bench shared` (counts, averages, colour cuts, a histogram over \
             different flux columns), submitted together; skyscan's ride its convoys (every scan, whatever its \
             chunk count), DuckDB runs them on a cursor each. T(1) is the first query alone.\n"
        );
        let _ = writeln!(
            s,
            "| K | skyscan ms | T(K)/T(1) | DuckDB ms | DuckDB T(K)/T(1) | DuckDB ÷ skyscan | check |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        let base = o.shared.iter().find(|x| x.k == 1);
        for x in &o.shared {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                x.k,
                ms_text(Some(x.skyscan_ms)),
                base.map_or("–".into(), |b| format!(
                    "{:.2}",
                    x.skyscan_ms / b.skyscan_ms
                )),
                ms_text(x.duckdb_ms),
                match (x.duckdb_ms, base.and_then(|b| b.duckdb_ms)) {
                    (Some(d), Some(b)) => format!("{:.2}", d / b),
                    _ => "–".into(),
                },
                x.duckdb_ms
                    .map_or("–".into(), |d| format!("**{:.1}×**", d / x.skyscan_ms)),
                x.check
            );
        }
        if has_chart("shared.png") {
            let _ = writeln!(s, "\n![shared scans](shared.png)");
        }
        let _ = writeln!(s);
    }

    if !o.mix.is_empty() {
        let _ = writeln!(
            s,
            "## Interactive latency under scan load ({} LV clients × {} queries, + {} HV queries looping)\n",
            o.args.clients, o.args.per_client, o.args.hv_clients
        );
        let _ = writeln!(
            s,
            "LV1–LV4 round robin. Idle: the same clients without the HV queries.\n"
        );
        let _ = writeln!(
            s,
            "| engine | idle p50 | idle p95 | idle p99 | loaded p50 | loaded p95 | loaded p99 | p99 loaded ÷ idle | HV runs during the round | HV median ms |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for (engine, x) in &o.mix {
            let p = percentile;
            let _ = writeln!(
                s,
                "| {engine} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
                ms_text(Some(p(&x.idle_ms, 0.5))),
                ms_text(Some(p(&x.idle_ms, 0.95))),
                ms_text(Some(p(&x.idle_ms, 0.99))),
                ms_text(Some(p(&x.loaded_ms, 0.5))),
                ms_text(Some(p(&x.loaded_ms, 0.95))),
                ms_text(Some(p(&x.loaded_ms, 0.99))),
                p(&x.loaded_ms, 0.99) / p(&x.idle_ms, 0.99),
                x.hv_runs,
                ms_text(Some(p(&x.hv_ms, 0.5)))
            );
        }
        if has_chart("latency.png") {
            let _ = writeln!(s, "\n![latency under load](latency.png)");
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Load rate and size on disk\n");
    let _ = writeln!(
        s,
        "All from the same two Parquet files ({:.0} MB). skyscan: the `skyscan load` pipeline (read Parquet, \
         place with overlap, encode, O_DIRECT writes with fsync, director index). DuckDB: `CREATE TABLE AS` + \
         ART indexes on objectId. chDB: MergeTree ordered by objectId, `INSERT` + `OPTIMIZE FINAL`. \
         PostgreSQL: `COPY` of CSV streamed from memory (made from the Parquet by DuckDB + pyarrow, not \
         timed; Source in objectId order; fsync off, no WAL: each table is created and filled in one \
         transaction), then primary key, Q3C index, `CLUSTER` of Object on it, Source's objectId index, \
         `ANALYZE` (index s). chDB's bytes are its active parts. DuckDB on Parquet loads nothing.\n",
        o.data.parquet_bytes as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "| engine | version | load s | index s | rows/s | bytes on disk | ÷ Parquet |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let rows = (o.data.objects + o.data.sources) as f64;
    for l in &o.loads {
        let total = l.seconds + l.index_seconds;
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {} | {:.0} MB | {:.2} |",
            l.engine,
            l.version,
            l.seconds,
            l.index_seconds,
            if total > 0.0 {
                format!("{:.2} M", rows / total / 1e6)
            } else {
                "–".into()
            },
            l.bytes as f64 / 1e6,
            l.bytes as f64 / o.data.parquet_bytes.max(1) as f64
        );
    }
    if has_chart("load.png") {
        let _ = writeln!(s, "\n![load rate and size](load.png)");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Goals (issue 8)\n");
    let _ = writeln!(s, "{}", goals(o));

    if !o.skipped.is_empty() {
        let _ = writeln!(s, "## Peers skipped\n");
        for (p, r) in &o.skipped {
            let _ = writeln!(s, "* {p}: {r}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Notes\n");
    let _ = writeln!(s, "* skyscan: {}.", o.server_note);
    let _ = writeln!(
        s,
        "* Peers that do not answer a class leave it blank: PostgreSQL answers the lookups, cones and \
         near-neighbour pairs (its Q3C domain), chDB everything but the near-neighbour join."
    );
    let _ = writeln!(
        s,
        "* Timing: skyscan through the embedded `QueryEngine` into a `CollectSink`; the peers from \
         Python (DuckDB and chDB in process, PostgreSQL through psycopg2 over loopback), so their times \
         include the client's call and the fetch of the rows (tens of µs: it matters only for LV1, LV2, LV4)."
    );
    let _ = writeln!(
        s,
        "* The mix's loaded round lasts as long as its LV clients take; \"HV runs\" counts the HV \
         queries finished by then (each started at least once), so it is not an HV throughput."
    );
    let _ = writeln!(s, "\n## SQL (skyscan's, first instance)\n");
    for figure in &o.classes {
        let _ = writeln!(s, "* {}: `{}`", figure.class, figure.sql);
    }
    s
}

fn goals(o: &Outcome) -> String {
    let mut lines = Vec::new();
    let class = |name: &str| o.classes.iter().find(|c| c.class == name);
    let ratio = |name: &str, peer: &str| -> Option<f64> {
        let c = class(name)?;
        if c.check.get(peer).map(String::as_str) != Some("same answers") {
            return None;
        }
        Some(c.ms.get(peer)? / c.ms.get("skyscan")?)
    };
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    if let (Some(base), Some(last)) = (o.shared.iter().find(|x| x.k == 1), o.shared.last())
        && last.k > 1
    {
        let r = last.skyscan_ms / base.skyscan_ms;
        let goal_k = if last.k >= 64 {
            ""
        } else {
            " (measured at the largest K run, not 64)"
        };
        lines.push(format!(
            "| shared scans T(64)/T(1) ≤ 1.3 | T({})/T(1) = {r:.2}{goal_k} | {} |",
            last.k,
            verdict(r <= 1.3)
        ));
    }
    if let Some(x) = o.shared.iter().find(|x| x.k == 16)
        && let Some(d) = x.duckdb_ms
    {
        let r = d / x.skyscan_ms;
        lines.push(format!(
            "| ≥ 15× DuckDB at 16 concurrent scans | {r:.1}× | {} |",
            verdict(r >= 15.0)
        ));
    }
    if let Some(r) = ratio("HV3", "duckdb") {
        lines.push(format!(
            "| near-neighbour ≥ 20× DuckDB | {r:.1}× | {} |",
            verdict(r >= 20.0)
        ));
    }
    if let Some(r) = ratio("HV3", "postgres") {
        lines.push(format!(
            "| near-neighbour ≥ 3× Q3C | {r:.1}× | {} |",
            verdict(r >= 3.0)
        ));
    }
    if let Some(r) = ratio("LV3", "postgres") {
        lines.push(format!(
            "| cone searches ≥ Q3C's speed | {r:.1}× | {} |",
            verdict(r >= 1.0)
        ));
    }
    if let Some(x) = o.mix.get("skyscan") {
        let r = percentile(&x.loaded_ms, 0.99) / percentile(&x.idle_ms, 0.99);
        lines.push(format!(
            "| interactive p99 under scan load ≤ 3× idle | {r:.2}× | {} |",
            verdict(r <= 3.0)
        ));
    }
    let mut out = String::from("| goal | measured | verdict |\n|---|---|---|\n");
    out.push_str(&lines.join("\n"));
    out.push('\n');
    out
}
