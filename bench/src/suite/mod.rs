//! `skyscan-bench suite`: the query mix of Qserv's performance tests
//! (LDM-552) on one generated Object + Source catalog, skyscan against
//! DuckDB (native tables and Parquet), chDB and PostgreSQL + Q3C on the
//! same rows in the same run, every answer checked equal; shared scans
//! (T(K)/T(1)); the 50 LV + 5 HV concurrency mix; load rate and size on
//! disk; machine facts measured in the run. `--report DIR` writes
//! `DIR/report.md`, `DIR/results.json` and PNG charts.
//!
//! Peers come from `bench/peers/setup-suite.sh`; the Python side is
//! `bench/peers/suite_peers.py`, the charts `bench/peers/suite_charts.py`.
//! A peer that is not installed is skipped with the reason printed, except
//! those named by `--require` (DuckDB by default): then the run fails, as
//! it does when any answer differs.

mod answers;
mod data;
mod machine;
mod mix;
mod peers;
mod queries;
mod report;
mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use skyscan_engine::catalog::Database;
use skyscan_engine::query::{CollectSink, EngineOptions, ExecOptions, QueryEngine, QueryResult};

use answers::Val;
use queries::{CLASSES, PEERS, Question};

/// skyscan through its server, as an engine name in the figures (not a peer).
pub const SERVER: &str = "skyscan-server";

/// Options of `skyscan-bench suite`.
#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// Object rows (the issue asks 10^6 to 10^8, as far as disk and time allow).
    #[arg(long, default_value_t = 1_000_000)]
    objects: u64,
    /// Mean Sources per Object.
    #[arg(long, default_value_t = 10.0)]
    sources_per_object: f64,
    /// Objects per square degree (sets the area, hence the chunk count).
    #[arg(long, default_value_t = 10_000.0)]
    density: f64,
    /// Scratch directory for every engine's data (default: a new directory
    /// under the system's temporary directory, `$TMPDIR` or /tmp); removed
    /// at the end unless --keep.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
    /// Write report.md, results.json and PNG charts into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Threads of every engine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Instances of each LV class (different ids and cones).
    #[arg(long, default_value_t = 20)]
    lv_count: usize,
    /// Timed runs of each LV instance (its median counts).
    #[arg(long, default_value_t = 3)]
    lv_reps: usize,
    /// Timed runs of each HV query (the median counts).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// HV3's area, square degrees.
    #[arg(long, default_value_t = 1.0)]
    nn_area: f64,
    /// K values of the shared-scan rounds.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    k: Vec<usize>,
    /// No shared-scan rounds.
    #[arg(long)]
    no_shared: bool,
    /// Do not measure skyscan through its server and the Rust client.
    #[arg(long)]
    no_server: bool,
    /// LV clients of the concurrency mix (0: no mix).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// LV queries per client in each mix round. The p99 of 50 × 100 = 5,000
    /// latencies is the 50th worst; with 10 per client it was the 5th worst
    /// of 500, and the idle/loaded p99 ratio swung 1.3–5.2 between runs.
    #[arg(long, default_value_t = 100)]
    per_client: usize,
    /// HV queries running during the mix's loaded round (at most 5).
    #[arg(long, default_value_t = 5)]
    hv_clients: usize,
    /// Peers to run, comma-separated (duckdb, duckdb-parquet, chdb, postgres).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "duckdb,duckdb-parquet,chdb,postgres"
    )]
    peers: Vec<String>,
    /// Peers that must run: the suite fails if one is missing.
    #[arg(long, value_delimiter = ',', default_value = "duckdb")]
    require: Vec<String>,
    /// MiB of the disk read probe.
    #[arg(long, default_value_t = 1024)]
    disk_probe_mib: u64,
    /// MiB of the memory bandwidth probe.
    #[arg(long, default_value_t = 1024)]
    memory_probe_mib: u64,
}

/// One engine's load.
#[derive(Debug, Clone)]
pub struct LoadFigure {
    /// Engine name.
    pub engine: String,
    /// Version string.
    pub version: String,
    /// Seconds to load the rows.
    pub seconds: f64,
    /// Seconds to build indexes afterwards (0 when part of the load).
    pub index_seconds: f64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// One class's outcome.
#[derive(Debug, Clone, Default)]
pub struct ClassFigure {
    /// Class name.
    pub class: &'static str,
    /// Engine → median milliseconds (over instances of per-instance medians).
    pub ms: BTreeMap<String, f64>,
    /// Engine → "same answer" or what went wrong.
    pub check: BTreeMap<String, String>,
    /// Rows of skyscan's answer (first instance).
    pub rows: u64,
    /// Bytes skyscan read (first instance's blocks, as the engine reports).
    pub bytes_read: u64,
    /// The bytes of the class's floor: for full scans the decoded bytes of
    /// the columns they reference (the convoy path reports no bytes read),
    /// else `bytes_read`.
    pub floor_bytes: u64,
    /// skyscan's SQL of the first instance.
    pub sql: String,
}

/// One shared-scan round.
#[derive(Debug, Clone)]
pub struct SharedFigure {
    /// Queries at once.
    pub k: usize,
    /// skyscan's wall milliseconds.
    pub skyscan_ms: f64,
    /// DuckDB's wall milliseconds, if it ran.
    pub duckdb_ms: Option<f64>,
    /// Answers checked equal.
    pub check: String,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command line.
    pub command: String,
    /// Options.
    pub args: SuiteArgs,
    /// Machine facts.
    pub machine: machine::Machine,
    /// Load average at the end.
    pub load_at_end: String,
    /// Object rows, Source rows, raw bytes, Parquet bytes, chunks, area.
    pub data: data::Dataset,
    /// skyscan's Object chunks.
    pub chunks: u64,
    /// Overlap copies of Object rows skyscan stores.
    pub overlap_rows: u64,
    /// skyscan's load and every peer's.
    pub loads: Vec<LoadFigure>,
    /// Peers skipped and why.
    pub skipped: BTreeMap<String, String>,
    /// Per class.
    pub classes: Vec<ClassFigure>,
    /// Shared scans.
    pub shared: Vec<SharedFigure>,
    /// Engine → the mix.
    pub mix: BTreeMap<String, mix::MixResult>,
    /// Whether the server/client path was measured (and why not).
    pub server_note: String,
    /// Total answers that differ.
    pub mismatches: usize,
    /// Seconds of the whole run.
    pub seconds: f64,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[values.len() / 2]
}

/// Runs `sql` on skyscan: (milliseconds, result).
fn run_skyscan(engine: &QueryEngine, sql: &str) -> Result<(f64, QueryResult), String> {
    let mut sink = CollectSink::new(4 << 30);
    let started = Instant::now();
    let stats = engine
        .query_with(sql, &ExecOptions::default(), &mut sink)
        .map_err(|e| format!("skyscan: {e}\n  SQL: {sql}"))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut result = sink.result;
    result.stats = stats;
    Ok((ms, result))
}

/// Runs the suite.
pub fn run(args: &SuiteArgs) -> Result<(), String> {
    if args.objects < 1000 || args.objects > 100_000_000 {
        return Err("suite: --objects must be in 1000..=100000000".to_string());
    }
    if !(0.0..=50.0).contains(&args.sources_per_object) {
        return Err("suite: --sources-per-object must be in 0..=50".to_string());
    }
    if args.k.iter().any(|&k| k == 0 || k > 64) {
        return Err("suite: --k values must be in 1..=64".to_string());
    }
    if let Some(bad) = args
        .peers
        .iter()
        .chain(&args.require)
        .find(|p| !PEERS.contains(&p.as_str()))
    {
        return Err(format!(
            "suite: unknown peer {bad} (known: {})",
            PEERS.join(", ")
        ));
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("skyscan-suite-{}", std::process::id()))
    });
    if dir.exists() {
        return Err(format!(
            "suite: {} exists; give a new --dir (it is deleted at the end)",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = run_in(args, &dir);
    if args.keep {
        eprintln!("suite: scratch directory kept: {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("suite: could not remove {}: {e}", dir.display());
    }
    let outcome = result?;
    if let Some(report_dir) = &args.report {
        report::write(report_dir, &outcome)?;
        println!("report: {}", report_dir.join("report.md").display());
    }
    if outcome.mismatches > 0 {
        return Err(format!(
            "{} answers differ between engines (see above)",
            outcome.mismatches
        ));
    }
    Ok(())
}

fn run_in(args: &SuiteArgs, dir: &Path) -> Result<Outcome, String> {
    let started = Instant::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!("suite: measuring the machine");
    let machine = machine::measure(dir, args.disk_probe_mib << 20, args.memory_probe_mib << 20)?;
    eprintln!(
        "suite: generating {} Objects, ~{} Sources each",
        args.objects, args.sources_per_object
    );
    let data = data::generate(
        dir,
        args.objects,
        args.sources_per_object,
        args.density,
        args.lv_count.max(1),
        args.threads,
    )?;
    eprintln!(
        "suite: {} Objects + {} Sources, Parquet {} MB, in {:.1} s; loading skyscan",
        data.objects,
        data.sources,
        data.parquet_bytes / 1_000_000,
        data.generate_seconds
    );
    let ours = data::load_skyscan(&data, dir, args.threads)?;
    let mut loads = vec![LoadFigure {
        engine: "skyscan".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        seconds: ours.seconds,
        index_seconds: 0.0,
        bytes: ours.bytes,
    }];

    // Peers: PostgreSQL first (a server), then every peer's load.
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    let want = |p: &str| args.peers.iter().any(|x| x == p);
    let pg = if want("postgres") {
        match peers::PgServer::start(dir) {
            Ok(server) => Some(server),
            Err(reason) => {
                skipped.insert("postgres".to_string(), reason);
                None
            }
        }
    } else {
        None
    };
    let mut engines: Vec<String> = args
        .peers
        .iter()
        .filter(|p| !skipped.contains_key(p.as_str()))
        .cloned()
        .collect();
    let pg_port = pg.as_ref().map(|s| s.port);
    let work = dir.to_path_buf();
    let base_spec = serde_json::json!({
        "object_parquet": data.object_parquet,
        "source_parquet": data.source_parquet,
        "work": work,
        "threads": args.threads,
        "pg_port": pg_port,
    });
    let with = |extra: serde_json::Value| {
        let mut spec = base_spec.clone();
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        spec
    };
    if !engines.is_empty() {
        eprintln!("suite: loading the peers: {}", engines.join(", "));
        let out = peers::call(
            dir,
            "load",
            &with(serde_json::json!({ "engines": engines })),
        )?;
        for name in engines.clone() {
            let entry = &out["engines"][name.as_str()];
            if let Some(reason) = entry["skip"].as_str() {
                skipped.insert(name.clone(), reason.to_string());
                continue;
            }
            if let Some(rows) = entry["rows"].as_u64()
                && rows != data.objects + data.sources
            {
                return Err(format!(
                    "{name} loaded {rows} rows, expected {}",
                    data.objects + data.sources
                ));
            }
            let mut version = entry["version"].as_str().unwrap_or("?").to_string();
            if name == "postgres"
                && let Some(server) = &pg
            {
                version.clone_from(&server.version);
            }
            loads.push(LoadFigure {
                engine: name.clone(),
                version,
                seconds: entry["seconds"].as_f64().unwrap_or(f64::NAN),
                index_seconds: entry["index_seconds"].as_f64().unwrap_or(0.0),
                bytes: entry["bytes"].as_u64().unwrap_or(0),
            });
        }
        engines.retain(|p| !skipped.contains_key(p.as_str()));
    }
    for (name, reason) in &skipped {
        println!("peer {name} skipped: {reason}");
    }
    if let Some(missing) = args.require.iter().find(|p| !engines.contains(p)) {
        return Err(format!(
            "required peer {missing} did not run: {}",
            skipped
                .get(missing.as_str())
                .map_or("not requested", String::as_str)
        ));
    }

    // skyscan.
    let engine = QueryEngine::new(
        Database::open(&ours.root).map_err(|e| e.to_string())?,
        EngineOptions {
            default_database: Some(data::DATABASE.to_string()),
            scan: skyscan_engine::scan::EngineConfig {
                // Peers' threads run at nice 0 too; the engine's default (10)
                // would let other work on a shared machine slow only skyscan.
                convoy_nice: 0,
                ..skyscan_engine::scan::EngineConfig::default()
            },
            ..EngineOptions::default()
        },
    );
    let mut questions: Vec<Question> = queries::low_volume(&data, args.lv_count);
    questions.extend(queries::high_volume(&data, args.nn_area));
    eprintln!("suite: skyscan, {} queries", questions.len());
    // Per query id: skyscan's rows, median ms, bytes read.
    let mut ours_answers: BTreeMap<String, (Vec<Vec<Val>>, f64, u64)> = BTreeMap::new();
    for q in &questions {
        let low = CLASSES.iter().any(|c| c.name == q.class && c.low_volume);
        let reps = if low { args.lv_reps } else { args.reps }.max(1);
        let (_, answer) = run_skyscan(&engine, &q.skyscan)?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            times.push(run_skyscan(&engine, &q.skyscan)?.0);
        }
        let rows = answers::from_result(&answer);
        ours_answers.insert(
            q.id.clone(),
            (rows, median(&mut times), answer.stats.bytes_read),
        );
    }

    // skyscan through its server (loopback, the Rust client).
    let mut server_answers: BTreeMap<String, (Vec<Vec<Val>>, f64)> = BTreeMap::new();
    let server_note = if args.no_server {
        "measured through the embedded engine only (--no-server)".to_string()
    } else {
        eprintln!(
            "suite: skyscan server over loopback, {} queries",
            questions.len()
        );
        let handle = server::start(&ours.root, args.threads, data::DATABASE)?;
        let addr = handle.local_addr();
        let measured = (|| -> Result<(), String> {
            let mut client = server::connect(addr)?;
            for q in &questions {
                let low = CLASSES.iter().any(|c| c.name == q.class && c.low_volume);
                let reps = if low { args.lv_reps } else { args.reps }.max(1);
                let (_, rows) = server::query(&mut client, &q.skyscan)?;
                let mut times = Vec::with_capacity(reps);
                for _ in 0..reps {
                    times.push(server::query(&mut client, &q.skyscan)?.0);
                }
                server_answers.insert(q.id.clone(), (rows, median(&mut times)));
            }
            client.close();
            Ok(())
        })();
        handle.shutdown();
        measured?;
        format!(
            "measured both through the embedded engine and through its server ({SERVER}: an in-process \
             `skyscan_server` on {addr}, the Rust client on one open connection; its times include the \
             protocol, Arrow IPC encoding and transfer; its answers are checked against the embedded engine's)"
        )
    };

    eprintln!("suite: peers, {} queries", questions.len());
    let peer_out = if engines.is_empty() {
        serde_json::json!({"results": {}})
    } else {
        let list: Vec<serde_json::Value> = questions
            .iter()
            .map(|q| {
                let low = CLASSES.iter().any(|c| c.name == q.class && c.low_volume);
                let sql: serde_json::Map<String, serde_json::Value> = q
                    .peers
                    .iter()
                    .filter(|(p, _)| engines.iter().any(|e| e == *p))
                    .map(|(p, s)| (p.to_string(), serde_json::Value::String(s.clone())))
                    .collect();
                serde_json::json!({
                    "id": q.id,
                    "reps": if low { args.lv_reps } else { args.reps }.max(1),
                    "sql": sql,
                })
            })
            .collect();
        peers::call(
            dir,
            "run",
            &with(serde_json::json!({ "engines": engines, "queries": list })),
        )?
    };
    for (name, reason) in peer_out["skipped"].as_object().into_iter().flatten() {
        let reason = reason.as_str().unwrap_or("?").to_string();
        println!("peer {name} skipped at query time: {reason}");
        skipped.insert(name.clone(), reason);
    }

    let mut mismatches = 0;
    let mut classes = Vec::new();
    for class in CLASSES {
        let mut figure = ClassFigure {
            class: class.name,
            ..ClassFigure::default()
        };
        let instances: Vec<&Question> =
            questions.iter().filter(|q| q.class == class.name).collect();
        let Some(first) = instances.first() else {
            continue;
        };
        figure.sql = first.skyscan.clone();
        if let Some((rows, _, bytes)) = ours_answers.get(&first.id) {
            figure.rows = rows.len() as u64;
            figure.bytes_read = *bytes;
        }
        figure.floor_bytes = if first.scan_columns.is_empty() {
            figure.bytes_read
        } else {
            let mut sum = 0;
            for column in &first.scan_columns {
                sum += data.column_bytes.get(*column).ok_or_else(|| {
                    format!(
                        "{}: the generated tables have no column {column}",
                        class.name
                    )
                })?;
            }
            sum
        };
        let mut mine: Vec<f64> = instances
            .iter()
            .filter_map(|q| ours_answers.get(&q.id).map(|a| a.1))
            .collect();
        figure.ms.insert("skyscan".to_string(), median(&mut mine));
        if !server_answers.is_empty() {
            let mut times = Vec::new();
            let mut problem: Option<String> = None;
            for q in &instances {
                let (Some((theirs, ms)), Some((rows, _, _))) =
                    (server_answers.get(&q.id), ours_answers.get(&q.id))
                else {
                    problem.get_or_insert(format!("no answer for {}", q.id));
                    continue;
                };
                times.push(*ms);
                if let Err(e) = answers::compare(rows, theirs, theirs.len() as u64, q.ordered) {
                    mismatches += 1;
                    problem.get_or_insert(format!("DIFFERENT on {}: {e}", q.id));
                }
            }
            figure.ms.insert(SERVER.to_string(), median(&mut times));
            let check = problem.unwrap_or_else(|| "same answers".to_string());
            if check != "same answers" {
                println!("{} {SERVER}: {check}", class.name);
            }
            figure.check.insert(SERVER.to_string(), check);
        }
        for peer in &engines {
            if !first.peers.contains_key(peer.as_str()) {
                continue;
            }
            let mut times = Vec::new();
            let mut problem: Option<String> = None;
            for q in &instances {
                let entry = &peer_out["results"][peer.as_str()][q.id.as_str()];
                if let Some(error) = entry["error"].as_str() {
                    problem.get_or_insert(format!("error: {error}"));
                    continue;
                }
                let mut ms: Vec<f64> = entry["ms"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                    .unwrap_or_default();
                if ms.is_empty() {
                    problem.get_or_insert("no timing".to_string());
                    continue;
                }
                times.push(median(&mut ms));
                let theirs = answers::from_json(&entry["rows"]);
                let count = entry["row_count"].as_u64().unwrap_or(0);
                if let Some((rows, _, _)) = ours_answers.get(&q.id)
                    && let Err(e) = answers::compare(rows, &theirs, count, q.ordered)
                {
                    mismatches += 1;
                    problem.get_or_insert(format!("DIFFERENT on {}: {e}", q.id));
                }
            }
            if !times.is_empty() {
                figure.ms.insert(peer.clone(), median(&mut times));
            }
            let check = match problem {
                None => "same answers".to_string(),
                Some(p) => {
                    if p.starts_with("error") {
                        mismatches += 1;
                    }
                    println!("{} {peer}: {p}", class.name);
                    p
                }
            };
            figure.check.insert(peer.clone(), check);
        }
        classes.push(figure);
    }
    report::print_classes(&classes);

    // Shared scans.
    let mut shared = Vec::new();
    if !args.k.is_empty() && !args.no_shared {
        eprintln!("suite: shared scans, K = {:?}", args.k);
        // Every scan on the convoys, whatever the table's chunk count: the
        // engine's default sends queries of fewer than 10 chunks to the
        // plain path, so small tables would measure no sharing at all.
        let engine = QueryEngine::new(
            Database::open(&ours.root).map_err(|e| e.to_string())?,
            EngineOptions {
                default_database: Some(data::DATABASE.to_string()),
                scan: skyscan_engine::scan::EngineConfig {
                    convoy_nice: 0,
                    interactive_max_chunks: 1,
                    ..skyscan_engine::scan::EngineConfig::default()
                },
                ..EngineOptions::default()
            },
        );
        crate::shared_bench::run_together(&engine, &[crate::shared_bench::query(0)])?;
        let mut duck_rounds: Option<serde_json::Value> = None;
        if engines.iter().any(|e| e == "duckdb") {
            let rounds: Vec<Vec<String>> = args
                .k
                .iter()
                .map(|&k| (0..k).map(crate::shared_bench::query).collect())
                .collect();
            let spec_path = dir.join("concurrent.json");
            let spec = serde_json::json!({"db": dir.join("duck.db"), "threads": args.threads, "rounds": rounds});
            std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
            let output = std::process::Command::new("python3")
                .arg(peers::script("duckdb_concurrent.py"))
                .arg(&spec_path)
                .output()
                .map_err(|e| format!("python3: {e}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            if output.status.success() {
                duck_rounds = serde_json::from_str::<serde_json::Value>(stdout.trim())
                    .ok()
                    .map(|v| v["rounds"].clone());
            } else {
                println!(
                    "shared scans: DuckDB failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                mismatches += 1;
            }
        }
        for (index, &k) in args.k.iter().enumerate() {
            let sqls: Vec<String> = (0..k).map(crate::shared_bench::query).collect();
            let (ms, results) = crate::shared_bench::run_together(&engine, &sqls)?;
            let duck = duck_rounds.as_ref().map(|r| &r[index]);
            let mut check = "no peer".to_string();
            if let Some(d) = duck {
                let mut bad = 0;
                for (q, result) in results.iter().enumerate() {
                    let theirs = answers::from_json(&d["rows"][q]);
                    let count = theirs.len() as u64;
                    // The shared queries' histograms are ORDER BY; the rest one row.
                    if answers::compare(&answers::from_result(result), &theirs, count, true)
                        .is_err()
                    {
                        bad += 1;
                    }
                }
                mismatches += bad;
                check = if bad == 0 {
                    "same answers".to_string()
                } else {
                    format!("{bad} DIFFERENT")
                };
            }
            shared.push(SharedFigure {
                k,
                skyscan_ms: ms,
                duckdb_ms: duck.and_then(|d| d["wall_ms"].as_f64()),
                check,
            });
        }
        report::print_shared(&shared);
    }

    // The concurrency mix.
    let mut mixes = BTreeMap::new();
    if args.clients > 0 {
        eprintln!(
            "suite: mix, {} LV clients + {} HV",
            args.clients, args.hv_clients
        );
        let lv_questions: Vec<&Question> = questions
            .iter()
            .filter(|q| CLASSES.iter().any(|c| c.name == q.class && c.low_volume))
            .collect();
        let hv_ids = ["HV1", "HV2", "HV4", "HV5"];
        let mut hv_questions: Vec<(String, String)> = questions
            .iter()
            .filter(|q| hv_ids.contains(&q.class))
            .map(|q| {
                (
                    q.skyscan.clone(),
                    q.peers.get("duckdb").cloned().unwrap_or_default(),
                )
            })
            .collect();
        let extra = crate::shared_bench::query(2);
        hv_questions.push((extra.clone(), extra));
        hv_questions.truncate(args.hv_clients.min(5));
        let lv: Vec<String> = lv_questions.iter().map(|q| q.skyscan.clone()).collect();
        let hv: Vec<String> = hv_questions.iter().map(|h| h.0.clone()).collect();
        let ours = mix::run_skyscan(&engine, &lv, &hv, args.clients, args.per_client)?;
        mixes.insert("skyscan".to_string(), ours);
        if engines.iter().any(|e| e == "duckdb") {
            let lv: Vec<String> = lv_questions
                .iter()
                .filter_map(|q| q.peers.get("duckdb").cloned())
                .collect();
            let hv: Vec<String> = hv_questions.iter().map(|h| h.1.clone()).collect();
            let out = peers::call(
                dir,
                "mix",
                &with(serde_json::json!({
                    "engine": "duckdb", "clients": args.clients, "per_client": args.per_client,
                    "lv": lv, "hv": hv,
                })),
            )?;
            let list = |key: &str| -> Vec<f64> {
                out[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                    .unwrap_or_default()
            };
            if let Some(errors) = out["errors"].as_array()
                && !errors.is_empty()
            {
                println!("mix duckdb: errors: {errors:?}");
                mismatches += 1;
            }
            mixes.insert(
                "duckdb".to_string(),
                mix::MixResult {
                    idle_ms: list("idle_ms"),
                    loaded_ms: list("loaded_ms"),
                    hv_runs: out["hv_runs"].as_u64().unwrap_or(0),
                    hv_ms: list("hv_ms"),
                },
            );
        }
        report::print_mix(&mixes);
    }
    drop(engine);
    drop(pg);
    report::print_loads(&loads, &data);

    Ok(Outcome {
        command,
        args: args.clone(),
        machine,
        load_at_end: machine::load_average(),
        chunks: ours.chunks,
        overlap_rows: ours.overlap_rows,
        data,
        loads,
        skipped,
        classes,
        shared,
        mix: mixes,
        server_note,
        mismatches,
        seconds: started.elapsed().as_secs_f64(),
    })
}
