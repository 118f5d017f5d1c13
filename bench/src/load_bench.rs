//! `skyscan-bench load`: load rate from Parquet of a generated Object table,
//! skyscan against DuckDB and chDB (bench/peers/load_peers.py) loading the
//! same file into their native tables, all with the same thread count, in
//! one run. Row counts and the sum of one column are checked equal.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use skyscan_engine::catalog::{Catalog, Database, LoadOptions, Partitioning, TableDef};
use skyscan_engine::ingest::schema::parse_schema_sql;
use skyscan_engine::loader::{FileSource, load_source};
use skyscan_engine::synth::export::{schema_sql, write_parquet};
use skyscan_engine::synth::{ObjectSpec, SkyStructure, generate_objects};
use skyscan_format::{ChunkFile, ColumnData};

/// Options of `skyscan-bench load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Object rows (the figure uses 10–20 M).
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Threads for every engine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Skip the Python peers.
    #[arg(long)]
    no_peer: bool,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
    /// Sky density of the generated objects: `uniform` (the figures so far)
    /// or `band` (a galactic-plane-like dense band and empty regions,
    /// `synth::SkyStructure::GalacticBand`).
    #[arg(long, default_value = "uniform", value_parser = ["uniform", "band"])]
    sky: String,
    /// skyscan's memory budget (bytes buffered before spilling).
    #[arg(long = "max-memory", default_value_t = skyscan_engine::catalog::DEFAULT_LOAD_MEMORY)]
    max_memory: u64,
}

/// Sums an i32 column over the own rows of every chunk of `bench.Object`
/// (reads the files back: checks the load, not the input).
fn sum_column(db: &Database, catalog: &Catalog, column: &str) -> Result<i64, String> {
    let entry = catalog
        .table("bench", "Object")
        .ok_or("bench.Object not in the catalog")?;
    let mut sum = 0i64;
    for chunk in &entry.chunks {
        let path = db
            .table_file(entry, chunk.spindle, &chunk.file)
            .map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = ChunkFile::from_bytes(&bytes).map_err(|e| e.to_string())?;
        let index = file
            .footer()
            .schema()
            .column_index(column)
            .ok_or_else(|| format!("no column {column}"))?;
        for (group, meta) in file.footer().row_groups().iter().enumerate() {
            if meta.overlap {
                continue;
            }
            match file.read_block(group, index).map_err(|e| e.to_string())? {
                ColumnData::I32(c) => sum += c.values.iter().map(|&v| i64::from(v)).sum::<i64>(),
                _ => return Err(format!("{column} is not i32")),
            }
        }
    }
    Ok(sum)
}

/// User + system CPU seconds of this process so far (all threads), from
/// `/proc/self/stat`; 0 where it cannot be read.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields, in clock ticks (100 per second on Linux).
    let Some(rest) = stat.rfind(')').map(|end| &stat[end + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

/// The column whose sum is compared across engines.
const SUM_COLUMN: &str = "nVisits";

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Runs the benchmark.
pub fn run(args: &LoadArgs) -> Result<(), String> {
    if args.rows == 0 || args.rows > 100_000_000 {
        return Err("load: --rows must be in 1..=100000000".to_string());
    }
    let dir = crate::scratch_dir("load");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = run_in(args, &dir);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(args: &LoadArgs, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let structure = match args.sky.as_str() {
        "band" => SkyStructure::GalacticBand,
        _ => SkyStructure::Uniform,
    };
    let spec = ObjectSpec::with_density(args.rows, 200_000.0, 42).with_structure(structure);
    let table = generate_objects(&spec, 2).into_table()?;
    let expected_sum: i64 = match table.column(SUM_COLUMN) {
        Some(ColumnData::I32(c)) => c.values.iter().map(|&v| i64::from(v)).sum(),
        _ => return Err(format!("no i32 column {SUM_COLUMN}")),
    };
    let parquet = dir.join("Object.parquet");
    let mut out =
        BufWriter::with_capacity(1 << 20, File::create(&parquet).map_err(|e| e.to_string())?);
    write_parquet(&table, &mut out, &mut |_| {})?;
    drop(out);
    let sql_text = schema_sql(&table.schema);
    let raw_bytes = table.raw_bytes();
    drop(table);
    let parquet_bytes = std::fs::metadata(&parquet)
        .map_err(|e| e.to_string())?
        .len();
    println!(
        "Object: {} rows ({} sky), 27 columns, {raw_bytes} raw bytes; Parquet (ours, snappy) {parquet_bytes} bytes; generated in {:.1} s",
        args.rows,
        args.sky,
        started.elapsed().as_secs_f64()
    );

    // skyscan: the whole pipeline of `skyscan load`.
    let sql = parse_schema_sql(&sql_text, "Object.sql")
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no table in the generated schema")?;
    let root: PathBuf = dir.join("skyscan-db");
    let load_started = Instant::now();
    let cpu_started = cpu_seconds();
    let source =
        FileSource::new(std::slice::from_ref(&parquet), &sql, b',').map_err(|e| e.to_string())?;
    let db = Database::create(&root, &[]).map_err(|e| e.to_string())?;
    let def = TableDef::director(
        &sql.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        20,
    );
    let mut load = db.begin_load("bench", def).map_err(|e| e.to_string())?;
    let summary = load_source(
        &mut load,
        &source,
        &LoadOptions {
            threads: args.threads,
            memory_budget_bytes: args.max_memory,
            direct_writes: true,
            ..LoadOptions::default()
        },
        None,
    )
    .map_err(|e| e.to_string())?;
    let catalog = load.commit().map_err(|e| e.to_string())?;
    let seconds = load_started.elapsed().as_secs_f64();
    let ours_cpu = cpu_seconds() - cpu_started;
    let read_seconds = summary.read_time.as_secs_f64();
    let write_seconds = summary.write_time.as_secs_f64();
    let sum = sum_column(&db, &catalog, SUM_COLUMN)?;
    if summary.rows != args.rows || sum != expected_sum {
        return Err(format!(
            "skyscan loaded {} rows, sum {sum}; expected {} and {expected_sum}",
            summary.rows, args.rows
        ));
    }
    let ours_rate = args.rows as f64 / seconds;
    let db_bytes = dir_bytes(&root);
    // Each engine's output is removed once measured (unless --keep): at
    // 10-20 M rows the four copies of the table need several GB of disk.
    drop(db);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    println!(
        "{:<8} {:>9} {:>12} {:>10} {:>14} {:>8} {:>8} {:>9}",
        "engine", "seconds", "rows/s", "MB/s", "bytes on disk", "skyscan÷", "CPU s", "CPU ratio"
    );
    println!(
        "{:<8} {seconds:>9.2} {ours_rate:>12.0} {:>10.0} {db_bytes:>14} {:>8} {ours_cpu:>8.2} {:>9}",
        "skyscan",
        parquet_bytes as f64 / seconds / 1e6,
        "1.00",
        "1.00"
    );
    println!(
        "  (skyscan: read Parquet + place {read_seconds:.2} s, merge + encode + write + index {write_seconds:.2} s, commit {:.2} s; {} chunks, {} overlap rows, {} bytes spilled; MB/s is of the input Parquet)",
        seconds - read_seconds - write_seconds,
        summary.chunks,
        summary.overlap_rows,
        summary.spilled_bytes
    );
    if args.no_peer {
        return Ok(());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/load_peers.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&parquet)
        .arg(dir)
        .arg(args.threads.to_string())
        .arg(SUM_COLUMN)
        .envs(args.keep.then_some(("SKYSCAN_BENCH_KEEP", "1")))
        .output()
        .map_err(|e| format!("python3 {}: {e} (or pass --no-peer)", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the load peers failed (run scripts/setup-python.sh, or pass --no-peer):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["skip", engine, reason] => println!("{engine}: not available ({reason}); skipped"),
            [engine, version, seconds, rows, sum, bytes, cpu] => {
                let cpu: f64 = cpu.parse().unwrap_or(f64::NAN);
                let seconds: f64 = seconds.parse().unwrap_or(f64::NAN);
                let rows: u64 = rows.parse().unwrap_or(0);
                let sum: i64 = sum.parse::<f64>().map(|s| s as i64).unwrap_or(i64::MIN);
                let bytes: u64 = bytes.parse().unwrap_or(0);
                let rate = rows as f64 / seconds;
                println!(
                    "{:<8} {seconds:>9.2} {rate:>12.0} {:>10.0} {bytes:>14} {:>8.2} {cpu:>8.2} {:>9.2}   ({engine} {version})",
                    engine,
                    parquet_bytes as f64 / seconds / 1e6,
                    ours_rate / rate,
                    cpu / ours_cpu
                );
                if rows != args.rows || sum != expected_sum {
                    return Err(format!(
                        "{engine} loaded {rows} rows, sum {sum}; expected {} and {expected_sum}",
                        args.rows
                    ));
                }
            }
            _ => println!("peer: {line}"),
        }
    }
    println!(
        "sizes: skyscan DB {db_bytes} bytes, input Parquet {parquet_bytes} bytes ({:.2}×)",
        db_bytes as f64 / parquet_bytes as f64
    );
    Ok(())
}
