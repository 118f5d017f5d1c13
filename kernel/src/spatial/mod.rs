//! Sky functions of the query dialect, vectorized: sciSQL's `angSep` and
//! `s2PtIn*` predicates over columns of positions, unit-vector conversion,
//! and the near-neighbour join kernel (BRIEF §3, issue 4).
//!
//! Every function here is a free function (or a method of a small prepared
//! value) over primitive slices; the expression evaluator wires them in.
//!
//! # Arguments
//!
//! An argument is a column or a constant ([`F64Arg`]). All column arguments
//! of one call have the same length `n`; constants stand for every row.
//!
//! # NULL convention (the same everywhere in `spatial` and `scisql`)
//!
//! The caller passes no input validity: a row whose input is NULL holds an
//! arbitrary value and the functions compute on it harmlessly (float
//! arithmetic only, never a panic). What the functions report is which rows
//! *become* NULL from non-NULL input, through a caller-provided validity
//! bitmap (`&mut [u64]` words, bit `i` = row `i`, LSB first, the format
//! crate's `Bitmap` layout, at least `n.div_ceil(64)` words):
//!
//! * **Value functions** (`angSep`, photometry) write `out[i]` for every row
//!   and **only clear** validity bits, never set them: the caller initialises
//!   validity to the AND of its inputs' validities (NULL in → NULL out, as
//!   sciSQL does) and the function clears the rows sciSQL returns NULL for.
//!   `out[i]` is `0.0` on such rows (sciSQL's return value with `is_null`).
//! * **Predicates** (`s2PtIn*`, [`ang_sep::ang_sep_within`]) overwrite the
//!   value bitmap `out` for rows `0..n` (bit set = 1, clear = 0 or NULL; bits
//!   past `n` in the last word are cleared, so a popcount counts rows) and
//!   clear validity bits where sciSQL returns NULL (invalid position or
//!   invalid region parameters). sciSQL returns **0, not NULL**, when an
//!   input is NULL: the caller applies [`mask_null_inputs`] with its input
//!   validity afterwards. A filter can use `out` directly (NULL never
//!   selects).
//!
//! # Special values
//!
//! sciSQL treats NaN and ±inf in a coordinate like an invalid position: the
//! result is NULL (an `angSep`, an `s2PtIn*`). Latitudes must lie in
//! [-90, 90]; longitudes may be any finite value (range-reduced).

pub mod ang_sep;
pub mod exact;
pub mod join;
pub mod regions;
pub mod vectors;

/// A double-precision argument: a column (one value per row) or a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum F64Arg<'a> {
    /// One value per row.
    Column(&'a [f64]),
    /// The same value for every row.
    Scalar(f64),
}

impl F64Arg<'_> {
    /// The value of row `row`; `row` must be below the column length.
    #[inline(always)]
    pub fn get(&self, row: usize) -> f64 {
        match self {
            F64Arg::Column(values) => values[row],
            F64Arg::Scalar(value) => *value,
        }
    }

    /// The column length, or `None` for a constant.
    pub fn column_len(&self) -> Option<usize> {
        match self {
            F64Arg::Column(values) => Some(values.len()),
            F64Arg::Scalar(_) => None,
        }
    }

    /// Whether this argument is a constant.
    pub fn is_scalar(&self) -> bool {
        matches!(self, F64Arg::Scalar(_))
    }
}

/// Errors of the sky and photometry functions: wrong call shapes and
/// resource limits. Invalid *values* are not errors: sciSQL turns them into
/// NULL rows, and so do these functions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SpatialError {
    /// Column arguments of one call have different lengths.
    LengthMismatch {
        /// Length the call expected (that of the first column or of `out`).
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// An output or validity bitmap has fewer words than `n.div_ceil(64)`.
    BitmapTooShort {
        /// Words needed.
        needed: usize,
        /// Words given.
        found: usize,
    },
    /// A polygon with a vertex count outside 3..=20 (sciSQL refuses the
    /// call itself, at `s2PtInCPoly_init`).
    PolygonVertexCount(usize),
    /// The near-neighbour radius is not finite, not positive, or above
    /// [`join::MAX_JOIN_RADIUS_DEG`].
    InvalidJoinRadius(f64),
    /// A near-neighbour join produced more pairs than its limit.
    TooManyPairs {
        /// The limit in force.
        limit: usize,
    },
    /// An input has more rows than a `u32` row index can address.
    TooManyRows(usize),
}

impl std::fmt::Display for SpatialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpatialError::LengthMismatch { expected, found } => write!(
                f,
                "column arguments differ in length: expected {expected} rows, found {found}"
            ),
            SpatialError::BitmapTooShort { needed, found } => {
                write!(f, "bitmap too short: {needed} words needed, {found} given")
            }
            SpatialError::PolygonVertexCount(count) => write!(
                f,
                "scisql_s2PtInCPoly expects 3 to 20 vertices, got {count}"
            ),
            SpatialError::InvalidJoinRadius(radius) => write!(
                f,
                "near-neighbour radius {radius} deg must be finite, > 0 and <= {} deg",
                join::MAX_JOIN_RADIUS_DEG
            ),
            SpatialError::TooManyPairs { limit } => write!(
                f,
                "near-neighbour join produced more than {limit} pairs (the configured limit)"
            ),
            SpatialError::TooManyRows(rows) => {
                write!(f, "{rows} rows: more than a 32-bit row index can address")
            }
        }
    }
}

impl std::error::Error for SpatialError {}

/// The common row count of `args`, checked against `n` (the output length).
pub(crate) fn check_args(n: usize, args: &[F64Arg<'_>]) -> Result<(), SpatialError> {
    for arg in args {
        if let Some(len) = arg.column_len()
            && len != n
        {
            return Err(SpatialError::LengthMismatch {
                expected: n,
                found: len,
            });
        }
    }
    Ok(())
}

/// Checks that `bitmap` holds at least `n` bits.
pub(crate) fn check_bitmap(n: usize, bitmap: &[u64]) -> Result<(), SpatialError> {
    let needed = n.div_ceil(64);
    if bitmap.len() < needed {
        return Err(SpatialError::BitmapTooShort {
            needed,
            found: bitmap.len(),
        });
    }
    Ok(())
}

/// Checks that a slice argument has length `n`.
pub(crate) fn check_len(n: usize, len: usize) -> Result<(), SpatialError> {
    if len != n {
        return Err(SpatialError::LengthMismatch {
            expected: n,
            found: len,
        });
    }
    Ok(())
}

/// Mask of the valid bits of word `word_index` of an `n`-row bitmap.
#[inline]
pub(crate) fn word_mask(n: usize, word_index: usize) -> u64 {
    let rows = n - word_index * 64;
    if rows >= 64 {
        u64::MAX
    } else {
        (1u64 << rows) - 1
    }
}

/// Applies sciSQL's "a NULL argument gives 0" rule to a predicate's result:
/// for each of the `n` rows whose `input_validity` bit is clear, the value
/// bit is cleared and the validity bit set (a valid 0).
///
/// `input_validity` is the AND of the validities of the predicate's inputs.
pub fn mask_null_inputs(
    n: usize,
    out: &mut [u64],
    validity: &mut [u64],
    input_validity: &[u64],
) -> Result<(), SpatialError> {
    check_bitmap(n, out)?;
    check_bitmap(n, validity)?;
    check_bitmap(n, input_validity)?;
    let words = n.div_ceil(64);
    for word_index in 0..words {
        let mask = word_mask(n, word_index);
        let input = input_validity[word_index];
        out[word_index] &= input;
        validity[word_index] |= !input & mask;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_inputs_become_valid_zeros() {
        let n = 70;
        let mut out = vec![u64::MAX, 0b11];
        let mut validity = vec![0b1010, 0];
        let input = vec![!0b1100u64, 0b01];
        mask_null_inputs(n, &mut out, &mut validity, &input).unwrap();
        assert_eq!(out[0], !0b1100u64);
        assert_eq!(out[1], 0b01);
        // Rows 2 and 3 had NULL input: valid now; row 1 and 3 bits kept.
        assert_eq!(validity[0], 0b1110);
        // Word 1: rows 65..69 had NULL inputs (bit clear) → valid; past n untouched.
        assert_eq!(validity[1], 0b11_1110);
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            check_args(3, &[F64Arg::Column(&[1.0, 2.0])]),
            Err(SpatialError::LengthMismatch { .. })
        ));
        assert!(check_args(3, &[F64Arg::Scalar(1.0)]).is_ok());
        assert!(check_bitmap(65, &[0]).is_err());
        assert!(check_bitmap(64, &[0]).is_ok());
        assert_eq!(word_mask(70, 1), 0b11_1111);
        assert_eq!(word_mask(64, 0), u64::MAX);
    }
}
