//! The one error type of the storage and scan layers.

use std::fmt;
use std::io;
use std::path::PathBuf;

use skyscan_format::FormatError;

use crate::catalog::CatalogError;

/// Errors of reading chunk files and running scans.
///
/// `Corrupt` (the bytes on disk are wrong) is distinct from `Io` (the
/// operating system failed a call): the first needs a reload of the data, the
/// second may go away on retry. Errors raised by a query's own tasks are
/// carried as `Task`.
#[derive(Debug)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system refused or failed an operation on a file.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`"open"`, `"read"`, `"stat"`, …).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A chunk file's bytes are not a valid chunk file (bad checksum,
    /// truncated footer, impossible values).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The chunk the file belongs to.
        chunk_id: i32,
        /// Where in the file: `tail`, `footer`, or
        /// `block (row group r, column c `name`)`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A chunk file of a format version or encoding this build does not know.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        message: String,
    },
    /// The catalog could not give what the scan needs (unknown table, …).
    Catalog(CatalogError),
    /// The query was cancelled.
    Cancelled,
    /// A per-query limit (time, memory, …) was reached; the message says which.
    Limit(String),
    /// A read plan or another argument broke the interface's contract
    /// (unsorted columns, a column index out of range, …).
    InvalidPlan(String),
    /// An error raised by a query's task or merge step.
    Task(Box<dyn std::error::Error + Send + Sync>),
    /// The scan engine is shutting down and takes no more queries.
    ShuttingDown,
}

impl StorageError {
    /// An [`StorageError::Io`].
    pub fn io(path: impl Into<PathBuf>, operation: &'static str, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            operation,
            source,
        }
    }

    /// A [`StorageError::Task`] with a message.
    pub fn task(message: impl Into<String>) -> Self {
        StorageError::Task(message.into().into())
    }

    /// The error for a format error found in `path` of chunk `chunk_id`.
    pub fn from_format(path: impl Into<PathBuf>, chunk_id: i32, err: FormatError) -> Self {
        let path = path.into();
        match err {
            FormatError::Corrupt { what, location } => StorageError::Corrupt {
                path,
                chunk_id,
                location: location.to_string(),
                message: what,
            },
            FormatError::Unsupported { what, location } => StorageError::Unsupported {
                path,
                message: format!("{location}: {what}"),
            },
            // The footer and block APIs return InvalidInput only for
            // arguments the footer itself produced out of range: treat as
            // a file that does not match its own metadata.
            other => StorageError::Corrupt {
                path,
                chunk_id,
                location: "footer".to_string(),
                message: other.to_string(),
            },
        }
    }

    /// True for [`StorageError::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StorageError::Corrupt { .. })
    }

    /// True for [`StorageError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, StorageError::Cancelled)
    }

    /// A copy good enough to report one error to several queries (the
    /// convoy fails every query that planned a corrupt block). `Io` keeps
    /// its kind and message; `Task` keeps its message.
    pub fn duplicate(&self) -> StorageError {
        match self {
            StorageError::Io {
                path,
                operation,
                source,
            } => StorageError::Io {
                path: path.clone(),
                operation,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Corrupt {
                path,
                chunk_id,
                location,
                message,
            } => StorageError::Corrupt {
                path: path.clone(),
                chunk_id: *chunk_id,
                location: location.clone(),
                message: message.clone(),
            },
            StorageError::Unsupported { path, message } => StorageError::Unsupported {
                path: path.clone(),
                message: message.clone(),
            },
            StorageError::Catalog(err) => StorageError::task(err.to_string()),
            StorageError::Cancelled => StorageError::Cancelled,
            StorageError::Limit(message) => StorageError::Limit(message.clone()),
            StorageError::InvalidPlan(message) => StorageError::InvalidPlan(message.clone()),
            StorageError::Task(err) => StorageError::task(err.to_string()),
            StorageError::ShuttingDown => StorageError::ShuttingDown,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io {
                path,
                operation,
                source,
            } => write!(f, "{operation} {}: {source}", path.display()),
            StorageError::Corrupt {
                path,
                chunk_id,
                location,
                message,
            } => write!(
                f,
                "{}: corrupt chunk file (chunk {chunk_id}): {location}: {message}",
                path.display()
            ),
            StorageError::Unsupported { path, message } => {
                write!(f, "{}: unsupported chunk file: {message}", path.display())
            }
            StorageError::Catalog(err) => write!(f, "{err}"),
            StorageError::Cancelled => write!(f, "query cancelled"),
            StorageError::Limit(message) => write!(f, "limit reached: {message}"),
            StorageError::InvalidPlan(message) => write!(f, "invalid read plan: {message}"),
            StorageError::Task(err) => write!(f, "{err}"),
            StorageError::ShuttingDown => write!(f, "the scan engine is shutting down"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            StorageError::Catalog(err) => Some(err),
            StorageError::Task(err) => Some(err.as_ref()),
            _ => None,
        }
    }
}

impl From<CatalogError> for StorageError {
    fn from(err: CatalogError) -> Self {
        StorageError::Catalog(err)
    }
}

/// Result of the storage and scan layers.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
