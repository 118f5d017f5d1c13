//! The error type of the APDB.

use std::fmt;

/// Everything an APDB operation can fail with. Bad input is a value, never a
/// panic; a rejected `store` leaves nothing behind.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApdbError {
    /// The felis schema file is unreadable or not what the APDB needs.
    Schema(String),
    /// A `store` or `reassign` was refused: the rows break the schema or the
    /// rules of the APDB (duplicate ids, a visit stored twice, an unknown
    /// object). Nothing of it was written.
    Rejected(String),
    /// A region that is not valid (bad polygon, bad circle).
    InvalidRegion(String),
    /// An argument out of range (a time that is not finite, too many ids).
    InvalidArgument(String),
    /// Bytes on disk or on the log stream break SPEC.md part 4.
    Corrupt(String),
    /// An operating-system I/O error, with what was being done.
    Io {
        /// What was being done ("writing the log", "opening segment …").
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A previous durable write failed (an fsync error): the database refuses
    /// every further write until it is reopened, because the kernel may have
    /// dropped the unsynced pages (the PostgreSQL "fsyncgate" lesson).
    Poisoned(String),
    /// A chunk file could not be written or read.
    Format(skyscan_format::FormatError),
    /// The database is a read-only replica, or is closed.
    ReadOnly(String),
    /// A limit was reached (rows per visit, log record size).
    Limit(String),
}

impl ApdbError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ApdbError {
        ApdbError::Io {
            context: context.into(),
            source,
        }
    }

    /// The message without the variant's prefix.
    pub fn message(&self) -> String {
        match self {
            ApdbError::Schema(m)
            | ApdbError::Rejected(m)
            | ApdbError::InvalidRegion(m)
            | ApdbError::InvalidArgument(m)
            | ApdbError::Corrupt(m)
            | ApdbError::Poisoned(m)
            | ApdbError::ReadOnly(m)
            | ApdbError::Limit(m) => m.clone(),
            ApdbError::Io { context, source } => format!("{context}: {source}"),
            ApdbError::Format(e) => e.to_string(),
        }
    }
}

impl fmt::Display for ApdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            ApdbError::Schema(_) => "schema",
            ApdbError::Rejected(_) => "rejected",
            ApdbError::InvalidRegion(_) => "invalid region",
            ApdbError::InvalidArgument(_) => "invalid argument",
            ApdbError::Corrupt(_) => "corrupt",
            ApdbError::Io { .. } => "I/O error",
            ApdbError::Poisoned(_) => "database poisoned",
            ApdbError::Format(_) => "chunk file",
            ApdbError::ReadOnly(_) => "read-only",
            ApdbError::Limit(_) => "limit",
        };
        write!(f, "apdb: {kind}: {}", self.message())
    }
}

impl std::error::Error for ApdbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApdbError::Io { source, .. } => Some(source),
            ApdbError::Format(e) => Some(e),
            _ => None,
        }
    }
}

impl From<skyscan_format::FormatError> for ApdbError {
    fn from(e: skyscan_format::FormatError) -> Self {
        ApdbError::Format(e)
    }
}

impl From<skyscan_sky::SkyError> for ApdbError {
    fn from(e: skyscan_sky::SkyError) -> Self {
        ApdbError::InvalidRegion(e.to_string())
    }
}

/// Result of APDB operations.
pub type Result<T> = std::result::Result<T, ApdbError>;
