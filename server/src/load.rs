//! `skyscan load`: reads TSV/CSV (plain or gzip) or Parquet files of one
//! table into memory, partitions them and publishes the table atomically
//! (docs/loading.md).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use clap::{Args, ValueEnum};
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, TableKind, load_table_in_memory,
};
use skyscan_engine::ingest::parquet::{DEFAULT_MAX_MEMORY_BYTES, InputOptions, read_input_files};
use skyscan_engine::ingest::schema::{SqlTable, parse_schema_file};
use skyscan_engine::table::Table;

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
    /// Most bytes of column data held in memory (the loader is in-memory).
    #[arg(long = "max-memory", default_value_t = DEFAULT_MAX_MEMORY_BYTES)]
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
fn table_def(args: &LoadArgs, table: &Table) -> Result<TableDef, String> {
    let partitioning = Partitioning {
        stripes: args.stripes,
        sub_stripes: args.sub_stripes,
        overlap_deg: args.overlap,
    };
    let schema = &table.schema;
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

/// Refuses NULL positions in a director table's (or a positioned child's)
/// position columns, naming the row.
fn check_positions(def: &TableDef, table: &Table) -> Result<(), String> {
    let columns = match &def.kind {
        TableKind::Director {
            ra_column,
            decl_column,
            ..
        }
        | TableKind::Child {
            ra_column: Some(ra_column),
            decl_column: Some(decl_column),
            ..
        } => [ra_column, decl_column],
        _ => return Ok(()),
    };
    for name in columns {
        let column = table
            .column(name)
            .ok_or_else(|| format!("table {}: no position column `{name}`", def.name))?;
        if column.null_count() > 0
            && let Some(row) = (0..column.len()).find(|&row| !column.is_valid(row))
        {
            return Err(format!(
                "table {}: row {} (in input order), column `{name}`: NULL position",
                def.name,
                row + 1
            ));
        }
    }
    Ok(())
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
    let last = Mutex::new(Instant::now());
    let progress = |rows: u64| {
        if let Ok(mut last) = last.lock()
            && last.elapsed().as_secs_f64() >= 1.0
        {
            *last = Instant::now();
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "load: read {rows} rows ({:.0} rows/s)",
                rows as f64 / seconds.max(1e-9)
            );
        }
    };
    let options = InputOptions {
        threads: args.threads,
        max_memory_bytes: args.max_memory,
        ..InputOptions::default()
    };
    let table = read_input_files(&args.inputs, &sql, &options, &progress).map_err(|e| fail(&e))?;
    let read_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "load: read {} rows ({} bytes of columns) from {} files in {read_seconds:.2} s ({:.0} rows/s); partitioning and writing",
        table.rows(),
        table.raw_bytes(),
        args.inputs.len(),
        table.rows() as f64 / read_seconds.max(1e-9)
    );
    let def = table_def(args, &table).map_err(|e| fail(&e))?;
    check_positions(&def, &table).map_err(|e| fail(&e))?;
    let db = if args.db.join("CURRENT").exists() {
        Database::open(&args.db)
    } else {
        Database::create(&args.db, &[])
    }
    .map_err(|e| fail(&e))?;
    let load_options = LoadOptions {
        threads: args.threads,
        replace: args.replace,
        ..LoadOptions::default()
    };
    let write_started = Instant::now();
    let summary = load_table_in_memory(&db, &args.database, def, &table, &load_options)
        .map_err(|e| fail(&e))?;
    let write_seconds = write_started.elapsed().as_secs_f64();
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
        "time: read {read_seconds:.2} s, partition+write+publish {write_seconds:.2} s, total \
         {total:.2} s ({:.0} rows/s)",
        summary.rows as f64 / total.max(1e-9)
    );
    Ok(())
}
