//! Loading an in-memory [`Table`] through a [`Load`]: what `skyscan demo`,
//! the tests and the benchmarks use. It runs the streaming loader
//! ([`crate::loader`]) over the table's rows, so a table in memory and the
//! same rows in files give the same chunk files.

use skyscan_format::WriterOptions;

use super::db::{Database, Load};
use super::meta::TableDef;
use super::{CatalogError, Result};
use crate::loader::{TableSource, load_source};
use crate::table::Table;

/// Default memory budget of a load: 8 GiB of buffered rows.
pub const DEFAULT_LOAD_MEMORY: u64 = 8 << 30;

/// Options of a load ([`load_table_in_memory`], [`write_table_into_load`],
/// [`crate::loader::load_source`]).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Encoding choices of the chunk writer.
    pub writer: WriterOptions,
    /// Threads reading and writing (1..=64).
    pub threads: usize,
    /// Replace an existing table of that name ([`Database::begin_replace`]).
    pub replace: bool,
    /// Build the director index of a director table.
    pub director_index: bool,
    /// Memory for the director index builder before it spills, bytes.
    pub index_memory_bytes: usize,
    /// Rows buffered in memory before the loader spills sorted runs to the
    /// load's staging area, bytes (at least [`crate::loader::MIN_LOAD_MEMORY`]).
    pub memory_budget_bytes: u64,
    /// Write chunk files with O_DIRECT (where the file system allows it):
    /// for bulk loads, whose output is not read back soon — it bypasses the
    /// page cache, whose fresh pages are slow on this VM. Off by default,
    /// so that a table just loaded is in the page cache (tests, demos,
    /// scans right after a load).
    pub direct_writes: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            writer: WriterOptions::default(),
            threads: 2,
            replace: false,
            director_index: true,
            index_memory_bytes: 256 << 20,
            memory_budget_bytes: DEFAULT_LOAD_MEMORY,
            direct_writes: false,
        }
    }
}

/// What a load wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Chunk files written.
    pub chunks: u64,
    /// Rows (each once).
    pub rows: u64,
    /// Overlap copies.
    pub overlap_rows: u64,
    /// Bytes of the chunk files.
    pub chunk_bytes: u64,
    /// Director index entries, when one was built.
    pub director_index_entries: Option<u64>,
    /// The catalog generation that published the table (0 before commit).
    pub generation: u64,
    /// Sorted runs spilled to disk (one per chunk per spill).
    pub spilled_segments: u64,
    /// Bytes spilled to disk.
    pub spilled_bytes: u64,
    /// Time spent reading and placing rows (loader phase 1).
    pub read_time: std::time::Duration,
    /// Time spent merging, encoding and writing (loader phase 2).
    pub write_time: std::time::Duration,
}

/// Loads `table` as `def` into `database` and commits: the one call a
/// caller holding a whole table in memory needs.
pub fn load_table_in_memory(
    db: &Database,
    database: &str,
    def: TableDef,
    table: &Table,
    options: &LoadOptions,
) -> Result<LoadSummary> {
    let mut load = if options.replace {
        db.begin_replace(database, def)?
    } else {
        db.begin_load(database, def)?
    };
    let mut summary = write_table_into_load(&mut load, table, options)?;
    let catalog = load.commit()?;
    summary.generation = catalog.generation;
    Ok(summary)
}

/// Partitions `table` according to the load's table definition, writes one
/// chunk file per chunk at [`Load::chunk_path`] (fsynced), declares them,
/// and builds the director index of a director table. Does not commit.
pub fn write_table_into_load(
    load: &mut Load,
    table: &Table,
    options: &LoadOptions,
) -> Result<LoadSummary> {
    if table.rows() as u64 > u64::from(u32::MAX) {
        return Err(CatalogError::Load(format!(
            "{} rows is too many for one in-memory table",
            table.rows()
        )));
    }
    load_source(load, &TableSource::new(table), options, None)
}
