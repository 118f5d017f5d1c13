//! The director index: `objectId → (chunkId, subChunkId)` for every row of a
//! director table (BRIEF §2), so that `WHERE objectId = x`, `IN (…)` and
//! `BETWEEN` touch one chunk instead of all of them.
//!
//! One file per director table, sorted by key, in blocks of bit-packed
//! frame-of-reference values with a directory of first keys; CRC-32C on the
//! header, every block (kept in the directory), the directory and the tail.
//! The byte layout is normative in `SPEC.md`, part 2; [`layout`]
//! mirrors it and does no I/O.
//!
//! * [`DirectorIndexBuilder`] takes unsorted triples with a memory budget,
//!   spills sorted runs and merges them, refuses duplicate keys, and writes
//!   the file atomically (temp file, fsync, rename, fsync of the directory).
//! * [`DirectorIndex`] maps the file and answers single, sorted-batch and
//!   range lookups. The header, tail and directory are verified on open;
//!   each block is verified (checksum and structure) the first time a lookup
//!   touches it, so a corrupt file gives an error, never a wrong answer.

mod build;
mod index;
pub mod layout;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use build::{
    BuildOptions, BuildStats, DIRECTORY_BUFFER, DirectorIndexBuilder, MAX_MERGE_FAN_IN,
    MIN_MEMORY_BUDGET, RUN_READ_BUFFER,
};
pub use index::{DirectorIndex, RangeIter};

/// One row of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirectorEntry {
    /// The director key (objectId).
    pub object_id: i64,
    /// Chunk of the director row.
    pub chunk_id: i32,
    /// Sub-chunk of the director row.
    pub sub_chunk_id: i32,
}

/// The director index error.
#[derive(Debug)]
#[non_exhaustive]
pub enum DirectorError {
    /// The operating system refused an operation.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done (`"open"`, `"write"`, `"fsync"`, …).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The bytes of an index (or of a spilled run) are not what was written.
    Corrupt {
        /// The file (or `<memory>`).
        name: String,
        /// Which part: `header`, `tail`, `directory`, `block N`, `run`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A key was added twice.
    DuplicateKey {
        /// The key.
        object_id: i64,
        /// One placement (chunk, sub-chunk).
        first: (i32, i32),
        /// The other placement.
        second: (i32, i32),
    },
    /// A size limit of `layout` was exceeded.
    Limit(String),
    /// The caller passed something unusable (bad options).
    InvalidArgument(String),
}

impl DirectorError {
    pub(crate) fn io(path: impl Into<PathBuf>, operation: &'static str, source: io::Error) -> Self {
        DirectorError::Io {
            path: path.into(),
            operation,
            source,
        }
    }

    pub(crate) fn corrupt(
        name: &str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> DirectorError {
        DirectorError::Corrupt {
            name: name.to_string(),
            location: location.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DirectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectorError::Io {
                path,
                operation,
                source,
            } => {
                write!(f, "{operation} {}: {source}", path.display())
            }
            DirectorError::Corrupt {
                name,
                location,
                message,
            } => {
                write!(
                    f,
                    "director index {name} is corrupt at {location}: {message}"
                )
            }
            DirectorError::DuplicateKey {
                object_id,
                first,
                second,
            } => write!(
                f,
                "duplicate director key {object_id} (chunk {}/sub-chunk {} and chunk {}/sub-chunk {})",
                first.0, first.1, second.0, second.1
            ),
            DirectorError::Limit(message) => write!(f, "director index limit: {message}"),
            DirectorError::InvalidArgument(message) => write!(f, "director index: {message}"),
        }
    }
}

impl std::error::Error for DirectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirectorError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result of director index operations.
pub type Result<T, E = DirectorError> = std::result::Result<T, E>;
