//! `skyscan-bench transfer`: a large result (10 M rows by default) sent by
//! the server to the Rust and the Python client over loopback, against the
//! loopback socket's raw throughput measured in the same run (goal: ≥ 50%).
//!
//! Figures, all on the same result:
//!
//! * raw loopback: one thread writes the result's byte count in 1 MiB
//!   `write`s, another reads it (the ceiling of any protocol);
//! * embedded: the engine produces the result into a sink that drops it
//!   (what the query itself costs, without any transfer);
//! * Rust client, interactive `QUERY` (query and transfer together) and
//!   `FETCH` of the same result spooled by `SUBMIT` (transfer alone);
//! * Python client (`clients/python`, pyarrow), the same two.
//!
//! MB/s counts the bytes of the frames on the wire (Arrow IPC payloads and
//! headers) for the clients, the bytes written for raw loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use skyscan_client::{Client, ConnectOptions};
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::query::{EngineOptions, QueryEngine, ResultColumn, ResultSink};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_format::ColumnData;
use skyscan_server::jobs::JobConfig;
use skyscan_server::{ServerConfig, ServerHandle};

/// Options of `skyscan-bench transfer`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Rows of the result (the Object table has this many rows).
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Where the generated database is kept between runs.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Skip the Python client.
    #[arg(long)]
    no_python: bool,
    /// Scan threads of the query.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repetitions of every measurement (the fastest is reported: the
    /// machine is shared and noisy).
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

/// The fastest of `reps` runs of `f`.
fn best<T>(
    reps: usize,
    mut f: impl FnMut() -> Result<T, String>,
    seconds: impl Fn(&T) -> f64,
) -> Result<T, String> {
    let mut best: Option<T> = None;
    for _ in 0..reps.max(1) {
        let value = f()?;
        if best.as_ref().is_none_or(|b| seconds(&value) < seconds(b)) {
            best = Some(value);
        }
    }
    best.ok_or_else(|| "no repetition ran".to_string())
}

/// The result transferred: 6 columns, 36 bytes a row.
const SQL: &str = "SELECT objectId, ra, decl, g_psfFlux, r_psfFlux, i_psfFlux FROM Object";

fn prepare(rows: u64, dir: &Path) -> Result<PathBuf, String> {
    let root = dir.join("db");
    let marker = dir.join("READY");
    if marker.exists() {
        return Ok(root);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let started = Instant::now();
    let table = generate_objects(&ObjectSpec::with_density(rows, 200_000.0, 42), 2).into_table()?;
    let db = Database::create(&root, &[]).map_err(|e| e.to_string())?;
    let def = TableDef::director(
        &table.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        20,
    );
    load_table_in_memory(&db, "bench", def, &table, &LoadOptions::default())
        .map_err(|e| e.to_string())?;
    std::fs::write(&marker, b"ok").map_err(|e| e.to_string())?;
    eprintln!(
        "generated and loaded {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(root)
}

/// Raw loopback: `bytes` through one TCP connection, 1 MiB per call.
fn raw_loopback(bytes: u64) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let buf = vec![0x5Au8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            stream.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < bytes {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| "writer thread failed".to_string())?
        .map_err(|e| e.to_string())?;
    if got != bytes {
        return Err(format!("raw loopback moved {got} of {bytes} bytes"));
    }
    Ok(seconds)
}

/// Drops every batch (counts rows).
struct NullSink(u64);

impl ResultSink for NullSink {
    fn begin(&mut self, _: &[ResultColumn]) -> skyscan_engine::query::Result<()> {
        Ok(())
    }
    fn batch(&mut self, columns: Vec<ColumnData>) -> skyscan_engine::query::Result<()> {
        self.0 += columns.first().map_or(0, ColumnData::len) as u64;
        Ok(())
    }
}

struct Figure {
    name: String,
    seconds: f64,
    rows: u64,
    bytes: u64,
}

fn rust_client(addr: std::net::SocketAddr, fetch: Option<u64>) -> Result<Figure, String> {
    let mut client =
        Client::connect(addr, &ConnectOptions::default()).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut stream = match fetch {
        Some(id) => client.fetch(id),
        None => client.query(SQL),
    }
    .map_err(|e| e.to_string())?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next_batch().map_err(|e| e.to_string())? {
        rows += batch.num_rows() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(stream);
    let bytes = client.bytes_received();
    Ok(Figure {
        name: match fetch {
            Some(_) => "Rust client, FETCH of the spooled result".to_string(),
            None => "Rust client, QUERY (query + transfer)".to_string(),
        },
        seconds,
        rows,
        bytes,
    })
}

const PYTHON: &str = r#"
import json, sys, time
import skyscan
port, job = int(sys.argv[1]), int(sys.argv[2])
sql = sys.argv[3]
out = {}
reps = int(sys.argv[4])
for name, run in (("query", lambda c: c.stream(sql)), ("fetch", lambda c: c.fetch_stream(job))):
    for _ in range(reps):
        conn = skyscan.connect("127.0.0.1", port)
        t = time.perf_counter()
        rows = 0
        before = conn.bytes_received
        for batch in run(conn):
            rows += batch.num_rows
        seconds = time.perf_counter() - t
        if name not in out or seconds < out[name]["seconds"]:
            out[name] = {"seconds": seconds, "rows": rows, "bytes": conn.bytes_received - before}
        conn.close()
print(json.dumps(out))
"#;

fn python_client(port: u16, job: u64, reps: usize) -> Result<Vec<Figure>, String> {
    let output = Command::new("python3")
        .args([
            "-c",
            PYTHON,
            &port.to_string(),
            &job.to_string(),
            SQL,
            &reps.to_string(),
        ])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "python client: {} (install it: pip install ./clients/python)",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("python output: {e}"))?;
    let figure = |key: &str, name: &str| -> Figure {
        let v = &value[key];
        Figure {
            name: name.to_string(),
            seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
            rows: v["rows"].as_u64().unwrap_or(0),
            bytes: v["bytes"].as_u64().unwrap_or(0),
        }
    };
    Ok(vec![
        figure("query", "Python client, QUERY (query + transfer)"),
        figure("fetch", "Python client, FETCH of the spooled result"),
    ])
}

fn start_server(root: &Path, threads: usize, results: PathBuf) -> Result<ServerHandle, String> {
    let engine = Arc::new(QueryEngine::new(
        Database::open(root).map_err(|e| e.to_string())?,
        EngineOptions::default(),
    ));
    let mut jobs = JobConfig::in_dir(results);
    jobs.query_threads = threads;
    jobs.runners = 1;
    skyscan_server::start(
        engine,
        ServerConfig {
            listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
            query_threads: threads,
            jobs: Some(jobs),
            log: false,
            ..ServerConfig::default()
        },
    )
}

/// Runs the benchmark.
pub fn run(args: &TransferArgs) -> Result<(), String> {
    if args.rows == 0 || args.rows > 100_000_000 {
        return Err("transfer: --rows must be in 1..=100000000".to_string());
    }
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("skyscan-bench-transfer-{}", args.rows))
    });
    let root = prepare(args.rows, &dir)?;
    let results = crate::scratch_dir("transfer-results");
    let _ = std::fs::remove_dir_all(&results);

    // The engine alone.
    let engine = QueryEngine::new(
        Database::open(&root).map_err(|e| e.to_string())?,
        EngineOptions::default(),
    );
    let mut options = engine.options().exec.clone();
    options.threads = args.threads;
    let (embedded_s, rows) = best(
        args.reps,
        || {
            let mut sink = NullSink(0);
            let started = Instant::now();
            engine
                .query_with(SQL, &options, &mut sink)
                .map_err(|e| e.to_string())?;
            Ok((started.elapsed().as_secs_f64(), sink.0))
        },
        |r| r.0,
    )?;
    drop(engine);

    let server = start_server(&root, args.threads, results.clone())?;
    let addr = server.local_addr();
    let mut figures = Vec::new();
    figures.push(best(args.reps, || rust_client(addr, None), |f| f.seconds)?);
    let job = {
        let mut client =
            Client::connect(addr, &ConnectOptions::default()).map_err(|e| e.to_string())?;
        let id = client.submit(SQL).map_err(|e| e.to_string())?;
        let info = client
            .wait(id, Duration::from_secs(3600))
            .map_err(|e| e.to_string())?;
        if info.rows != rows {
            return Err(format!(
                "the spooled result has {} rows, not {rows}",
                info.rows
            ));
        }
        id
    };
    figures.push(best(
        args.reps,
        || rust_client(addr, Some(job)),
        |f| f.seconds,
    )?);
    if !args.no_python {
        match python_client(addr.port(), job, args.reps) {
            Ok(python) => figures.extend(python),
            Err(err) => eprintln!("skipping the Python client: {err}"),
        }
    }
    let wire = figures[0].bytes;
    let raw_s = best(args.reps, || raw_loopback(wire), |s| *s)?;
    server.shutdown();
    let _ = std::fs::remove_dir_all(&results);

    let raw_mb_s = wire as f64 / raw_s / 1e6;
    println!(
        "skyscan-bench transfer: {rows} rows x 6 columns ({:.0} MB on the wire), {} scan threads, best of {}\n",
        wire as f64 / 1e6,
        args.threads,
        args.reps
    );
    println!(
        "{:<46} {:>9} {:>12} {:>10} {:>9}",
        "what", "seconds", "rows/s", "MB/s", "vs raw"
    );
    println!(
        "{:<46} {:>9.3} {:>12} {:>10.0} {:>9}",
        "raw loopback socket (1 MiB writes)", raw_s, "-", raw_mb_s, "1.00"
    );
    println!(
        "{:<46} {:>9.3} {:>12.3e} {:>10} {:>9}",
        "embedded engine, result dropped (no transfer)",
        embedded_s,
        rows as f64 / embedded_s,
        "-",
        "-"
    );
    for figure in &figures {
        if figure.rows != rows {
            return Err(format!(
                "{}: {} rows, expected {rows}",
                figure.name, figure.rows
            ));
        }
        let mb_s = figure.bytes as f64 / figure.seconds / 1e6;
        println!(
            "{:<46} {:>9.3} {:>12.3e} {:>10.0} {:>9.2}",
            figure.name,
            figure.seconds,
            figure.rows as f64 / figure.seconds,
            mb_s,
            mb_s / raw_mb_s
        );
    }
    println!("\ngoal: FETCH (transfer alone) at >= 0.50 of the raw loopback socket");
    Ok(())
}
