//! `skyscan-bench`: benchmarks of skyscan against peers measured on the same
//! data in the same run. Every figure it prints is a measurement of this run.
//!
//! * `format`: size and decode speed of the chunk format per column, against
//!   the same columns in the same row order written as Parquet by pyarrow
//!   (snappy, its default, and zstd).
//! * `load`: load rate from Parquet of a generated Object table, against
//!   DuckDB and chDB loading the same file into their native tables.
//! * `apdb`: the APDB per-visit cycle, against lsst-dax-apdb on SQLite.
//! * `query`: single queries (filters, aggregates, GROUP BY, top-k, cone
//!   searches) against DuckDB on the same rows.
//! * `shared`: K different SQL scans at once on the convoys, against DuckDB
//!   running the same K queries concurrently.
//! * `scan`: shared scans through the convoys (T(K)/T(1), cold scan against
//!   raw O_DIRECT, lookups under load, memory).
//! * `spatial`: the near-neighbour join kernel against DuckDB's grid-cell
//!   hash join on the same points, and `s2PtInCircle` throughput.
//! * `transfer`: a 10 M-row result to the Rust and Python clients against
//!   the raw loopback socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apdb_bench;
mod format_bench;
mod load_bench;
mod query_bench;
mod scan_bench;
mod shared_bench;
mod spatial_bench;
mod transfer_bench;

/// Benchmarks of skyscan against peers, side by side in one run.
#[derive(Parser, Debug)]
#[command(name = "skyscan-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chunk format: bytes per column and decode GB/s, against pyarrow Parquet (snappy, zstd).
    Format(format_bench::FormatArgs),
    /// Load rate from Parquet of a generated Object table, against DuckDB and chDB.
    Load(load_bench::LoadArgs),
    /// The APDB per-visit cycle on an ap_proto-like workload, against lsst-dax-apdb on SQLite.
    Apdb(apdb_bench::ApdbArgs),
    /// Single queries (filters, aggregates, GROUP BY, top-k, cones) against DuckDB.
    Query(query_bench::QueryArgs),
    /// K different SQL scans at once on the convoys against DuckDB running them concurrently.
    Shared(shared_bench::SharedArgs),
    /// Shared scans: T(K)/T(1), cold scan vs raw O_DIRECT, lookups under load, memory.
    Scan(scan_bench::ScanArgs),
    /// Near-neighbour join at 1′ (1/2/4 deg²) against DuckDB; s2PtInCircle points/s.
    Spatial(spatial_bench::SpatialArgs),
    /// Result transfer to the Rust and Python clients against raw loopback.
    Transfer(transfer_bench::TransferArgs),
}

fn main() -> ExitCode {
    // Freed blocks stay in the heap for the next chunk (see the function).
    skyscan_engine::storage::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Format(args) => format_bench::run(&args),
        Command::Load(args) => load_bench::run(&args),
        Command::Apdb(args) => apdb_bench::run(&args),
        Command::Query(args) => query_bench::run(&args),
        Command::Shared(args) => shared_bench::run(&args),
        Command::Scan(args) => scan_bench::run(&args),
        Command::Spatial(args) => spatial_bench::run(&args),
        Command::Transfer(args) => transfer_bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("skyscan-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A scratch directory for one benchmark run, removed at the end unless kept.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skyscan-bench-{name}-{}", std::process::id()))
}
