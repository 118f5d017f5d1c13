//! Turning catalog files into columns: MySQL schemas ([`schema`]) and
//! mysqldump/CSV text ([`tsv`]).
//!
//! The type map and the text rules are documented in `docs/ingest.md`.
//! Every failure is an [`IngestError`] value naming the file, the line and
//! record, and the column; no input reaches a panic.

pub mod parquet;
pub mod qserv;
pub mod schema;
pub mod text;
pub mod tsv;

use std::fmt;
use std::io;

/// Where in a data file a bad value or record is, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The input's name (usually its path).
    pub source_name: String,
    /// Physical line (1-based) on which the record starts.
    pub line: u64,
    /// Record number (1-based); differs from `line` when values hold escaped
    /// or quoted line breaks.
    pub record: u64,
    /// Column index (0-based) and name, when one column is at fault.
    pub column: Option<(usize, String)>,
    /// What is wrong, with an excerpt of the offending value.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: record {}",
            self.source_name, self.line, self.record
        )?;
        if let Some((index, name)) = &self.column {
            write!(f, ", column {} `{name}`", index + 1)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The ingest error: one enum for schema and data-file problems.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestError {
    /// Opening or reading an input failed (the operating system said so).
    Io {
        /// The input's name.
        source_name: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The input's container is damaged: a bad gzip header, checksum or a
    /// truncated compressed stream.
    Corrupt {
        /// The input's name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A schema file is not a usable `CREATE TABLE` (syntax error, duplicate
    /// or missing columns, unsupported character set).
    Schema {
        /// The schema's name (usually its path).
        source_name: String,
        /// What is wrong, with the parser's line and column when it has them.
        message: String,
    },
    /// A column's MySQL type has no mapping to a skyscan column type.
    UnsupportedType {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The type as declared.
        sql_type: String,
    },
    /// A record or value of a data file is malformed.
    Parse(Box<ParseError>),
    /// More bad records than the configured allowance; `last` is the one that
    /// went over it.
    TooManyBadRows {
        /// The allowance ([`tsv::ReaderOptions::max_bad_rows`]).
        limit: u64,
        /// The record that exceeded it.
        last: Box<ParseError>,
    },
    /// A record or a setting exceeds a limit.
    Limit {
        /// The input's name.
        source_name: String,
        /// Physical line where the record starts (0 when not about a record).
        line: u64,
        /// What exceeded which limit.
        message: String,
    },
    /// The caller passed options that cannot work (e.g. a zero batch size).
    InvalidOptions(String),
}

impl IngestError {
    /// An I/O error, classified: decompression failures (invalid or
    /// truncated gzip data) become [`IngestError::Corrupt`].
    pub(crate) fn from_read(source_name: &str, error: io::Error) -> IngestError {
        match error.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof => IngestError::Corrupt {
                source_name: source_name.to_string(),
                message: format!("damaged or truncated compressed input: {error}"),
            },
            _ => IngestError::Io {
                source_name: source_name.to_string(),
                source: error,
            },
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Io {
                source_name,
                source,
            } => write!(f, "{source_name}: {source}"),
            IngestError::Corrupt {
                source_name,
                message,
            } => {
                write!(f, "{source_name}: corrupt input: {message}")
            }
            IngestError::Schema {
                source_name,
                message,
            } => write!(f, "{source_name}: {message}"),
            IngestError::UnsupportedType {
                table,
                column,
                sql_type,
            } => write!(
                f,
                "table `{table}`, column `{column}`: type `{sql_type}` is not supported \
                 (docs/ingest.md lists the supported MySQL types)"
            ),
            IngestError::Parse(error) => write!(f, "{error}"),
            IngestError::TooManyBadRows { limit, last } => {
                write!(f, "more than {limit} bad records; the last one: {last}")
            }
            IngestError::Limit {
                source_name,
                line,
                message,
            } => {
                if *line > 0 {
                    write!(f, "{source_name}:{line}: {message}")
                } else {
                    write!(f, "{source_name}: {message}")
                }
            }
            IngestError::InvalidOptions(message) => write!(f, "invalid ingest options: {message}"),
        }
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IngestError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result of ingest operations.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
