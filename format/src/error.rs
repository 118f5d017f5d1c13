//! The one error type of this crate.

use std::fmt;

/// Where in a chunk file an error was found. The engine adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// The fixed header at offset 0.
    Header,
    /// The fixed tail at the end of the file.
    Tail,
    /// The footer (metadata).
    Footer,
    /// One column block.
    Block {
        /// Index of the row group in the footer.
        row_group: u32,
        /// Index of the column in the schema.
        column_index: u32,
        /// Name of the column.
        column_name: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header => write!(f, "header"),
            Location::Tail => write!(f, "tail"),
            Location::Footer => write!(f, "footer"),
            Location::Block {
                row_group,
                column_index,
                column_name,
            } => {
                write!(
                    f,
                    "block (row group {row_group}, column {column_index} `{column_name}`)"
                )
            }
        }
    }
}

/// Errors of the chunk file format.
///
/// `Corrupt` means the bytes are not a valid v1 chunk file (truncated, flipped
/// bits, foreign file, absurd sizes); `Unsupported` means they may be valid for
/// another version of the format (unknown version, unknown encoding id);
/// `InvalidInput` means the caller misused the API (wrong column type, too many
/// rows, ...).
#[derive(Debug)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes are not a valid chunk file.
    Corrupt {
        /// What is wrong.
        what: String,
        /// Where.
        location: Location,
    },
    /// The bytes use a version or an encoding this reader does not know.
    Unsupported {
        /// What is not supported.
        what: String,
        /// Where.
        location: Location,
    },
    /// The caller passed arguments that violate the API contract or a limit.
    InvalidInput {
        /// What is wrong.
        what: String,
    },
    /// The sink given to [`crate::ChunkWriter::finish`] failed.
    Io(std::io::Error),
}

impl FormatError {
    /// True for [`FormatError::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, FormatError::Corrupt { .. })
    }

    pub(crate) fn corrupt(location: Location, what: impl Into<String>) -> Self {
        FormatError::Corrupt {
            what: what.into(),
            location,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        FormatError::InvalidInput { what: what.into() }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Corrupt { what, location } => {
                write!(f, "corrupt chunk file: {location}: {what}")
            }
            FormatError::Unsupported { what, location } => {
                write!(f, "unsupported chunk file: {location}: {what}")
            }
            FormatError::InvalidInput { what } => write!(f, "invalid input: {what}"),
            FormatError::Io(err) => write!(f, "i/o error while writing a chunk file: {err}"),
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FormatError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<std::io::Error> for FormatError {
    fn from(err: std::io::Error) -> Self {
        FormatError::Io(err)
    }
}

/// Result alias of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// A location-less error raised deep inside a decoder; the block-level entry
/// point attaches the [`Location`]. Built only on the error path.
#[derive(Debug)]
pub(crate) enum Bad {
    Corrupt(String),
    Unsupported(String),
}

impl Bad {
    pub(crate) fn at(self, location: Location) -> FormatError {
        match self {
            Bad::Corrupt(what) => FormatError::Corrupt { what, location },
            Bad::Unsupported(what) => FormatError::Unsupported { what, location },
        }
    }
}

/// Shorthand for `Err(Bad::Corrupt(format!(...)))`.
macro_rules! bad {
    ($($arg:tt)*) => {
        Err($crate::error::Bad::Corrupt(format!($($arg)*)))
    };
}
pub(crate) use bad;

/// `ensure!(cond, "msg {}", x)`: returns a `Bad::Corrupt` when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::error::Bad::Corrupt(format!($($arg)*)));
        }
    };
}
pub(crate) use ensure;

pub(crate) type BadResult<T> = std::result::Result<T, Bad>;
