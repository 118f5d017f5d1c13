//! The query error: what went wrong, and for SQL errors where.

use std::fmt;

use skyscan_kernel::KernelError;

use crate::apdb::ApdbError;
use crate::catalog::CatalogError;
use crate::director::DirectorError;
use crate::storage::StorageError;

/// A position in the SQL text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlPosition {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for SqlPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What kind of failure a [`QueryError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not valid SQL.
    Syntax,
    /// Valid SQL that skyscan does not support (or that Qserv's dialect
    /// forbids): DML/DDL, session variables, correlated subqueries, …
    Unsupported,
    /// A database, table or column that does not exist, or an ambiguous name.
    Name,
    /// Operands of the wrong type, a wrong argument count.
    Type,
    /// A value the query may not use (a radius above the overlap, an
    /// invalid region, a negative LIMIT).
    InvalidArgument,
    /// A limit of the engine was reached (result size, time, memory, IN
    /// list length).
    Limit,
    /// The query was cancelled.
    Cancelled,
    /// The data on disk is damaged (a checksum failed).
    Corrupt,
    /// The operating system failed an operation.
    Io,
    /// A bug in skyscan.
    Internal,
}

/// A query error.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// What went wrong, for a person.
    pub message: String,
    /// Where in the SQL text, when known.
    pub position: Option<SqlPosition>,
}

impl QueryError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> QueryError {
        QueryError {
            kind,
            message: message.into(),
            position: None,
        }
    }

    /// The same error at `position` (kept when one is set already).
    pub fn at(mut self, position: Option<SqlPosition>) -> QueryError {
        if self.position.is_none() {
            self.position = position;
        }
        self
    }

    /// A syntax error.
    pub fn syntax(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::Syntax, message)
    }

    /// An unsupported feature.
    pub fn unsupported(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::Unsupported, message)
    }

    /// A name error.
    pub fn name(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::Name, message)
    }

    /// A type error.
    pub fn type_error(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::Type, message)
    }

    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::InvalidArgument, message)
    }

    /// A limit.
    pub fn limit(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::Limit, message)
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> QueryError {
        QueryError::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(position) => write!(f, "{} (at {position})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<KernelError> for QueryError {
    fn from(err: KernelError) -> Self {
        let kind = match &err {
            KernelError::Overflow(_) | KernelError::InvalidArgument(_) => {
                ErrorKind::InvalidArgument
            }
            KernelError::Limit(_) => ErrorKind::Limit,
            KernelError::Type(_) => ErrorKind::Type,
            _ => ErrorKind::Internal,
        };
        QueryError::new(kind, err.to_string())
    }
}

impl From<StorageError> for QueryError {
    fn from(err: StorageError) -> Self {
        if let StorageError::Task(inner) = &err
            && let Some(query_error) = inner.downcast_ref::<QueryError>()
        {
            return query_error.clone();
        }
        let kind = if err.is_cancelled() {
            ErrorKind::Cancelled
        } else if err.is_corrupt() {
            ErrorKind::Corrupt
        } else {
            match &err {
                StorageError::Io { .. } => ErrorKind::Io,
                StorageError::Limit(_) => ErrorKind::Limit,
                StorageError::Catalog(_) => ErrorKind::Name,
                _ => ErrorKind::Internal,
            }
        };
        QueryError::new(kind, err.to_string())
    }
}

impl From<CatalogError> for QueryError {
    fn from(err: CatalogError) -> Self {
        let kind = match &err {
            CatalogError::NotFound(_) => ErrorKind::Name,
            CatalogError::Corrupt { .. } => ErrorKind::Corrupt,
            CatalogError::Io { .. } => ErrorKind::Io,
            _ => ErrorKind::Internal,
        };
        QueryError::new(kind, err.to_string())
    }
}

impl From<ApdbError> for QueryError {
    fn from(err: ApdbError) -> Self {
        let kind = match &err {
            ApdbError::Corrupt(_) | ApdbError::Format(_) => ErrorKind::Corrupt,
            ApdbError::Io { .. } => ErrorKind::Io,
            ApdbError::Limit(_) => ErrorKind::Limit,
            ApdbError::InvalidRegion(_) | ApdbError::InvalidArgument(_) => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        };
        QueryError::new(kind, format!("alert-production database: {err}"))
    }
}

impl From<DirectorError> for QueryError {
    fn from(err: DirectorError) -> Self {
        QueryError::new(ErrorKind::Corrupt, format!("director index: {err}"))
    }
}

/// Result of query operations.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
