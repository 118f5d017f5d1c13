//! A skyscan database on disk: catalog metadata, chunk files spread over
//! data directories ("spindles"), and atomic publication of loads.
//!
//! The layout, the JSON fields and the publish protocol are normative in
//! `SPEC.md`, part 3. In short:
//!
//! * the root holds `CURRENT` (the name of the live catalog file),
//!   `catalog.<generation>.json` (the whole catalog: databases, tables,
//!   schemas, partitioning, chunks and where each lives) and `LOCK`;
//! * each spindle holds `data/<database>/<table>.<load id>/` directories of
//!   chunk files, and `.staging/<load id>/` while a load runs;
//! * a load writes into staging, [`Load::commit`] moves the files under
//!   their final directory and switches `CURRENT` with one rename: that
//!   rename is the commit point. A crash anywhere leaves either the previous
//!   catalog or the new one, never a mixture; [`Database::open`] removes what
//!   a crash left behind.
//!
//! [`Database`] is the handle (a snapshot of the catalog plus the paths);
//! [`Load`] is the one writer; [`load_table_in_memory`] partitions an
//! in-memory [`crate::table::Table`] and publishes it; [`inspect`] has what
//! `skyscan info` and `skyscan verify` print.

mod db;
mod fsutil;
pub mod inspect;
mod load;
mod meta;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use db::{CommitStep, Database, Load};
pub use load::{
    DEFAULT_LOAD_MEMORY, LoadOptions, LoadSummary, load_table_in_memory, write_table_into_load,
};
pub use meta::{
    CATALOG_FORMAT, CATALOG_VERSION, Catalog, ChunkEntry, ColumnDef, DatabaseEntry,
    DirectorIndexEntry, MAX_SCAN_RATING, Partitioning, REPLICATED_CHUNK_ID, TableDef, TableEntry,
    TableKind, check_name,
};

/// The largest catalog file [`Database::open`] reads (checked before reading).
pub const MAX_CATALOG_BYTES: u64 = 256 << 20;

/// How many catalog generations older than the current one cleanup keeps
/// (with the table data they reference), so that readers still holding an
/// older snapshot find its files.
pub const KEPT_OLD_GENERATIONS: usize = 2;

/// The catalog error.
#[derive(Debug)]
#[non_exhaustive]
pub enum CatalogError {
    /// The operating system refused an operation.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done (`"open"`, `"rename"`, `"fsync"`, …).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A metadata file is not what skyscan writes (bad JSON, broken
    /// invariants, a file that is not a catalog, a size over the limit).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A metadata file of a catalog format version this build does not know.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        message: String,
    },
    /// Another writer (load, drop) holds the database's lock.
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// A database, table or chunk that the catalog does not have.
    NotFound(String),
    /// Creating something that exists already (a database root, a table
    /// loaded without replace).
    AlreadyExists(String),
    /// The caller passed something unusable (bad names, a chunk id outside
    /// the partitioning, a file whose size differs from what was declared).
    InvalidArgument(String),
    /// Writing or partitioning the data of a load failed.
    Load(String),
}

impl CatalogError {
    pub(crate) fn io(path: impl Into<PathBuf>, operation: &'static str, source: io::Error) -> Self {
        CatalogError::Io {
            path: path.into(),
            operation,
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CatalogError::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::Io {
                path,
                operation,
                source,
            } => {
                write!(f, "{operation} {}: {source}", path.display())
            }
            CatalogError::Corrupt { path, message } => {
                write!(f, "{}: corrupt catalog metadata: {message}", path.display())
            }
            CatalogError::Unsupported { path, message } => {
                write!(f, "{}: {message}", path.display())
            }
            CatalogError::Busy { path } => write!(
                f,
                "{}: another process (or another load in this one) is writing this database; \
                 one writer at a time",
                path.display()
            ),
            CatalogError::NotFound(what) => write!(f, "{what} not found"),
            CatalogError::AlreadyExists(what) => write!(f, "{what} already exists"),
            CatalogError::InvalidArgument(message) => write!(f, "{message}"),
            CatalogError::Load(message) => write!(f, "load: {message}"),
        }
    }
}

impl std::error::Error for CatalogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CatalogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result of catalog operations.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
