//! `skyscan`: the command line of the skyscan sky-catalog database.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod cli;
mod demo;
mod r#gen;
mod import;
mod load;
mod output;

/// skyscan: a storage engine and query server for astronomical sky catalogs.
#[derive(Parser, Debug)]
#[command(name = "skyscan", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a synthetic LSST-like catalog, partition it into chunk files,
    /// read it back and report sizes, compression and decode speed.
    Demo(demo::DemoArgs),
    /// Locate `ra,dec` lines from stdin: prints `ra,dec,chunkId,subChunkId,overlap`.
    Locate {
        /// Number of declination stripes (Qserv's default: 85).
        #[arg(long, default_value_t = 85)]
        stripes: u32,
        /// Sub-stripes per stripe (Qserv's default: 12).
        #[arg(long = "sub-stripes", default_value_t = 12)]
        sub_stripes: u32,
        /// Overlap radius in degrees; when given, overlap copies are printed too (overlap=1).
        #[arg(long)]
        overlap: Option<f64>,
    },
    /// Show a database's tables: kind, rows, overlap rows, chunks, bytes on
    /// disk, compression (from the chunk footers) and spindles.
    Info {
        /// The database root directory.
        db: PathBuf,
    },
    /// Check every chunk file (tail, footer, every block's checksum and
    /// decoding, row counts against the catalog) and every director index;
    /// exits non-zero naming the file and block of each problem.
    Verify {
        /// The database root directory.
        db: PathBuf,
    },
    /// Load a directory laid out like Qserv's test cases (schema/*.schema,
    /// partition/*.json, *.tsv.gz) into a skyscan database (created if absent).
    #[command(name = "import-qserv")]
    ImportQserv {
        /// The Qserv directory.
        dir: PathBuf,
        /// The database root directory.
        db: PathBuf,
    },
    /// Write a synthetic LSST-like table (Object or Source) as TSV or
    /// Parquet, with its `CREATE TABLE` schema file.
    Gen(r#gen::GenArgs),
    /// Load TSV/CSV(.gz) or Parquet files of one table into a database
    /// (created if absent), published atomically.
    Load(Box<load::LoadArgs>),
    /// Serve a database over TCP (SPEC.md part 4) until SIGINT/SIGTERM.
    Serve(Box<cli::ServeArgs>),
    /// Run one SQL statement on a server (or, with --db, in this process)
    /// and print its result as a table, CSV, TSV, JSON lines or Parquet.
    Query(Box<cli::QueryArgs>),
    /// An interactive SQL shell connected to a server.
    Shell(Box<cli::ShellArgs>),
}

fn main() -> ExitCode {
    // Freed blocks stay in the heap for the next chunk (see the function).
    skyscan_engine::storage::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Locate {
            stripes,
            sub_stripes,
            overlap,
        } => locate(stripes, sub_stripes, overlap),
        Command::Info { db } => admin::info(&db),
        Command::Verify { db } => admin::verify(&db),
        Command::ImportQserv { dir, db } => import::import_qserv_command(&dir, &db),
        Command::Gen(args) => r#gen::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Serve(args) => cli::serve(&args),
        Command::Query(args) => cli::query(&args),
        Command::Shell(args) => cli::shell(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("skyscan: {message}");
            ExitCode::FAILURE
        }
    }
}

fn locate(stripes: u32, sub_stripes: u32, overlap: Option<f64>) -> Result<(), String> {
    let chunker = skyscan_sky::Chunker::new(stripes, sub_stripes, overlap.unwrap_or(0.0))
        .map_err(|e| format!("locate: {e}"))?;
    let stdin = io::stdin().lock();
    let stdout = BufWriter::new(io::stdout().lock());
    skyscan_sky::locate_csv(&chunker, overlap.is_some(), stdin, stdout)
        .map_err(|e| format!("locate: {e}"))?;
    Ok(())
}

/// Where `demo` keeps its database unless told otherwise.
fn default_demo_dir() -> PathBuf {
    PathBuf::from("demo-db")
}
