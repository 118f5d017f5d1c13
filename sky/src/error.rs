//! The error type of this crate.

use std::fmt;

/// Everything that can go wrong in sky partitioning: bad parameters, bad
/// positions, bad ids, bad regions, bad CSV input and I/O.
///
/// User input never reaches a panic: every check that depends on input
/// returns one of these.
#[derive(Debug)]
#[non_exhaustive]
pub enum SkyError {
    /// The chunker parameters (stripes, sub-stripes, overlap) are invalid.
    InvalidChunker(String),
    /// A position is not a finite (ra, dec) with dec in [-90, 90].
    InvalidPosition {
        /// The right ascension given, degrees.
        ra_deg: f64,
        /// The declination given, degrees.
        dec_deg: f64,
    },
    /// A chunk id that this chunker does not produce.
    InvalidChunkId(i32),
    /// A sub-chunk id that does not exist in the given chunk.
    InvalidSubChunkId {
        /// The chunk id (valid).
        chunk_id: i32,
        /// The sub-chunk id given.
        sub_chunk_id: i32,
    },
    /// A region (box, circle, ellipse, polygon) with invalid parameters.
    InvalidRegion(String),
    /// Two slices that must have the same length do not.
    LengthMismatch {
        /// Length of the right ascension slice.
        ra_len: usize,
        /// Length of the declination slice.
        dec_len: usize,
    },
    /// A bad line in CSV input; `line` counts from 1.
    Csv {
        /// 1-based line number in the input.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// Reading input or writing output failed.
    Io(std::io::Error),
}

impl fmt::Display for SkyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkyError::InvalidChunker(msg) => write!(f, "invalid chunker parameters: {msg}"),
            SkyError::InvalidPosition { ra_deg, dec_deg } => write!(
                f,
                "invalid position (ra={ra_deg}, dec={dec_deg}): coordinates must be finite \
                 and dec within [-90, 90]"
            ),
            SkyError::InvalidChunkId(id) => write!(f, "invalid chunk id {id}"),
            SkyError::InvalidSubChunkId {
                chunk_id,
                sub_chunk_id,
            } => write!(f, "invalid sub-chunk id {sub_chunk_id} in chunk {chunk_id}"),
            SkyError::InvalidRegion(msg) => write!(f, "invalid region: {msg}"),
            SkyError::LengthMismatch { ra_len, dec_len } => write!(
                f,
                "ra and dec slices differ in length ({ra_len} vs {dec_len})"
            ),
            SkyError::Csv { line, message } => write!(f, "line {line}: {message}"),
            SkyError::Io(err) => write!(f, "I/O error: {err}"),
        }
    }
}

impl std::error::Error for SkyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SkyError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<std::io::Error> for SkyError {
    fn from(err: std::io::Error) -> Self {
        SkyError::Io(err)
    }
}
