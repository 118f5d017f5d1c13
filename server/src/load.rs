//! `skyscan load`: streams TSV/CSV (plain or gzip) or Parquet files of one
//! table through the loader (bounded memory, spilling sorted runs), and
//! publishes the table atomically (docs/loading.md).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use skyscan_engine::catalog::{
    DEFAULT_LOAD_MEMORY, Database, LoadOptions, Partitioning, TableDef, TableKind,
};
use skyscan_engine::ingest::schema::{SqlTable, parse_schema_file};
use skyscan_engine::loader::{FileSource, Phase, Progress, load_source};
use skyscan_format::TableSchema;

/// The kind of table loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Partitioned by its own position, with overlap rows and a director index.
    Director,
    /// Placed in the chunk of its director row.
    Child,
    /// Stored whole (small tables).
    Replicated,
}

/// Options of `skyscan load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The database root directory (created if absent).
    db: PathBuf,
    /// The database (namespace) inside the root.
    #[arg(long)]
    database: String,
    /// The table's name.
    #[arg(long)]
    table: String,
    /// A file with the table's `CREATE TABLE` statement.
    #[arg(long)]
    schema: PathBuf,
    /// Table kind.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Director key column (director tables).
    #[arg(long, default_value = "objectId")]
    key: String,
    /// Right ascension column, degrees (director; for a child: its director's position columns, optional).
    #[arg(long)]
    ra: Option<String>,
    /// Declination column, degrees (as `--ra`).
    #[arg(long)]
    decl: Option<String>,
    /// The director table of a child table.
    #[arg(long)]
    director: Option<String>,
    /// A child's column holding its director's key.
    #[arg(long = "foreign-key", default_value = "objectId")]
    foreign_key: String,
    /// Declination stripes.
    #[arg(long, default_value_t = 85)]
    stripes: u32,
    /// Sub-stripes per stripe.
    #[arg(long = "sub-stripes", default_value_t = 12)]
    sub_stripes: u32,
    /// Overlap radius, degrees (director tables).
    #[arg(long, default_value_t = 0.01667)]
    overlap: f64,
    /// Scan rating (Qserv's scan class, 0..=100).
    #[arg(long = "scan-rating", default_value_t = 20)]
    scan_rating: u8,
    /// Replace the table if it exists.
    #[arg(long)]
    replace: bool,
    /// Threads reading and writing.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Bytes of rows buffered in memory before sorted runs are spilled to the
    /// load's staging area (inputs larger than memory load in bounded memory).
    #[arg(long = "max-memory", default_value_t = DEFAULT_LOAD_MEMORY)]
    max_memory: u64,
    /// Input files: Parquet (recognized by its magic), else mysqldump TSV, or
    /// MySQL CSV for `*.csv`/`*.csv.gz`; gzip is detected.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// The table of `name` in a schema file (the only one, or the one named so).
fn pick_table(tables: Vec<SqlTable>, name: &str, file: &str) -> Result<SqlTable, String> {
    let count = tables.len();
    let mut picked = if count == 1 {
        tables.into_iter().next()
    } else {
        tables
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
    .ok_or_else(|| {
        format!("{file}: {count} CREATE TABLE statements and none for table `{name}`")
    })?;
    picked.schema.name = name.to_string();
    Ok(picked)
}

/// The table definition `args` describe.
fn table_def(args: &LoadArgs, schema: &TableSchema) -> Result<TableDef, String> {
    let partitioning = Partitioning {
        stripes: args.stripes,
        sub_stripes: args.sub_stripes,
        overlap_deg: args.overlap,
    };
    match args.kind {
        KindArg::Director => {
            let ra = args.ra.as_deref().unwrap_or("ra");
            let decl = args.decl.as_deref().unwrap_or("decl");
            Ok(TableDef::director(
                schema,
                &args.key,
                ra,
                decl,
                partitioning,
                args.scan_rating,
            ))
        }
        KindArg::Child => {
            let director = args
                .director
                .clone()
                .ok_or("--kind child needs --director TABLE")?;
            if args.ra.is_some() != args.decl.is_some() {
                return Err("give both --ra and --decl, or neither".to_string());
            }
            Ok(TableDef {
                name: schema.name.clone(),
                kind: TableKind::Child {
                    director_table: director,
                    foreign_key_column: args.foreign_key.clone(),
                    ra_column: args.ra.clone(),
                    decl_column: args.decl.clone(),
                },
                columns: TableDef::columns_of(schema),
                partitioning: Some(Partitioning {
                    overlap_deg: 0.0,
                    ..partitioning
                }),
                scan_rating: args.scan_rating,
            })
        }
        KindArg::Replicated => Ok(TableDef::replicated(schema, args.scan_rating)),
    }
}

/// Formats progress snapshots for stderr: one line rewritten in place
/// about once a second on a terminal, a plain line every
/// [`PLAIN_PROGRESS_SECONDS`] otherwise (logs, CI).
pub struct ProgressLine {
    terminal: bool,
    last_plain: std::sync::Mutex<f64>,
}

/// Seconds between progress lines when stderr is not a terminal.
pub const PLAIN_PROGRESS_SECONDS: f64 = 10.0;

impl ProgressLine {
    /// A progress line on stderr.
    pub fn stderr() -> ProgressLine {
        use std::io::IsTerminal;
        ProgressLine {
            terminal: std::io::stderr().is_terminal(),
            last_plain: std::sync::Mutex::new(0.0),
        }
    }

    /// The text of one progress report.
    pub fn text(progress: &Progress) -> String {
        let seconds = progress.elapsed.as_secs_f64().max(1e-9);
        let rate = progress.rows_read as f64 / seconds;
        let mb_s = progress.bytes_read as f64 / seconds / 1e6;
        match progress.phase {
            Phase::Reading => {
                let eta = if progress.bytes_read > 0 && progress.total_bytes > progress.bytes_read {
                    let left = (progress.total_bytes - progress.bytes_read) as f64;
                    format!(
                        ", ETA {:.0} s",
                        left / (progress.bytes_read as f64 / seconds)
                    )
                } else {
                    String::new()
                };
                let spilled = if progress.spilled_bytes > 0 {
                    format!(", {:.0} MB spilled", progress.spilled_bytes as f64 / 1e6)
                } else {
                    String::new()
                };
                format!(
                    "load: read {} rows ({:.1}%), {rate:.0} rows/s, {mb_s:.0} MB/s{spilled}{eta}",
                    progress.rows_read,
                    100.0 * progress.bytes_read as f64 / progress.total_bytes.max(1) as f64,
                )
            }
            Phase::Writing | Phase::Done => format!(
                "load: {} rows read; writing chunk files {}/{} ({seconds:.1} s)",
                progress.rows_read, progress.chunks_written, progress.chunks_total
            ),
        }
    }

    /// Prints `progress` if it is time to.
    pub fn report(&self, progress: &Progress) {
        let text = Self::text(progress);
        if self.terminal {
            let end = if progress.phase == Phase::Done {
                "\n"
            } else {
                ""
            };
            eprint!("\r\x1b[2K{text}{end}");
        } else if let Ok(mut last) = self.last_plain.lock() {
            let now = progress.elapsed.as_secs_f64();
            if now - *last >= PLAIN_PROGRESS_SECONDS || progress.phase == Phase::Done {
                *last = now;
                eprintln!("{text}");
            }
        }
    }
}

/// Runs `skyscan load`.
pub fn run(args: &LoadArgs) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("load: {e}");
    skyscan_engine::catalog::check_name("table", &args.table).map_err(|e| fail(&e))?;
    skyscan_engine::catalog::check_name("database", &args.database).map_err(|e| fail(&e))?;
    for input in &args.inputs {
        if !input.is_file() {
            return Err(format!("load: {}: no such file", input.display()));
        }
    }
    let schema_name = args.schema.display().to_string();
    let sql = pick_table(
        parse_schema_file(&args.schema).map_err(|e| fail(&e))?,
        &args.table,
        &schema_name,
    )
    .map_err(|e| fail(&e))?;
    let started = Instant::now();
    let source = FileSource::new(&args.inputs, &sql, b',').map_err(|e| fail(&e))?;
    let def = table_def(args, &sql.schema).map_err(|e| fail(&e))?;
    let db = if args.db.join("CURRENT").exists() {
        Database::open(&args.db)
    } else {
        Database::create(&args.db, &[])
    }
    .map_err(|e| fail(&e))?;
    let load_options = LoadOptions {
        threads: args.threads,
        replace: args.replace,
        memory_budget_bytes: args.max_memory,
        direct_writes: true,
        // The director index builders spill too: a quarter of the budget
        // (at most the default 256 MiB) keeps the whole load near it.
        index_memory_bytes: usize::try_from(args.max_memory / 4)
            .unwrap_or(usize::MAX)
            .clamp(skyscan_engine::director::MIN_MEMORY_BUDGET, 256 << 20),
        ..LoadOptions::default()
    };
    let mut load = if args.replace {
        db.begin_replace(&args.database, def)
    } else {
        db.begin_load(&args.database, def)
    }
    .map_err(|e| fail(&e))?;
    let line = ProgressLine::stderr();
    let report = |progress: &Progress| line.report(progress);
    let mut summary =
        load_source(&mut load, &source, &load_options, Some(&report)).map_err(|e| fail(&e))?;
    summary.generation = load.commit().map_err(|e| fail(&e))?.generation;
    let total = started.elapsed().as_secs_f64();
    println!(
        "loaded {}.{}: {} rows, {} overlap rows, {} chunks, {} bytes of chunk files{}, \
         generation {}",
        args.database,
        args.table,
        summary.rows,
        summary.overlap_rows,
        summary.chunks,
        summary.chunk_bytes,
        summary
            .director_index_entries
            .map_or(String::new(), |n| format!(
                ", director index of {n} entries"
            )),
        summary.generation
    );
    println!(
        "time: {total:.2} s (read + place {:.2} s, merge + encode + write {:.2} s; {:.0} rows/s, \
         {:.0} MB/s of input); spilled {} bytes in {} runs",
        summary.read_time.as_secs_f64(),
        summary.write_time.as_secs_f64(),
        summary.rows as f64 / total.max(1e-9),
        source.total_bytes() as f64 / total.max(1e-9) / 1e6,
        summary.spilled_bytes,
        summary.spilled_segments
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snapshot(phase: Phase, bytes_read: u64) -> Progress {
        Progress {
            phase,
            rows_read: 2_000_000,
            bytes_read,
            total_bytes: 400_000_000,
            spilled_bytes: 50_000_000,
            chunks_written: 3,
            chunks_total: 9,
            elapsed: Duration::from_secs(2),
        }
    }

    #[test]
    fn progress_text_has_rate_throughput_and_eta() {
        let text = ProgressLine::text(&snapshot(Phase::Reading, 100_000_000));
        assert!(text.contains("read 2000000 rows (25.0%)"), "{text}");
        assert!(text.contains("1000000 rows/s"), "{text}");
        assert!(text.contains("50 MB/s"), "{text}");
        assert!(text.contains("50 MB spilled"), "{text}");
        assert!(text.contains("ETA 6 s"), "{text}");
        let done = ProgressLine::text(&snapshot(Phase::Reading, 400_000_000));
        assert!(!done.contains("ETA"), "{done}");
        let writing = ProgressLine::text(&snapshot(Phase::Writing, 400_000_000));
        assert!(writing.contains("writing chunk files 3/9"), "{writing}");
    }
}
