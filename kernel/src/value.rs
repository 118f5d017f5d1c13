//! Values during evaluation: the static type of an expression
//! ([`DataType`]), constants ([`Scalar`]) and the result of evaluating an
//! expression over a batch ([`Datum`]: a constant or a column).
//!
//! Semantics follow MySQL, the dialect Qserv speaks: integers are evaluated
//! as 64-bit signed, floats as IEEE doubles (a `FLOAT` column is widened
//! before arithmetic), comparisons yield booleans (printed `1`/`0`), text
//! compares case-insensitively (the `_ci` collations MySQL uses by default)
//! and binary strings bytewise.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use skyscan_format::{ColumnData, ColumnType};

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// The type of the literal `NULL`: every value is null.
    Null,
    /// Truth values (results of comparisons and logic).
    Bool,
    /// 8-bit integer column.
    I8,
    /// 16-bit integer column.
    I16,
    /// 32-bit integer column.
    I32,
    /// 64-bit integer (every integer computation).
    I64,
    /// 32-bit float column (widened to f64 for computation).
    F32,
    /// 64-bit float (every float computation).
    F64,
    /// UTF-8 text.
    Utf8,
    /// Bytes.
    Binary,
}

impl DataType {
    /// The evaluation type of a stored column type.
    pub fn of_column(column_type: ColumnType) -> DataType {
        match column_type {
            ColumnType::Bool => DataType::Bool,
            ColumnType::I8 => DataType::I8,
            ColumnType::I16 => DataType::I16,
            ColumnType::I32 => DataType::I32,
            ColumnType::I64 => DataType::I64,
            ColumnType::F32 => DataType::F32,
            ColumnType::F64 => DataType::F64,
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
        }
    }

    /// The column type results of this type are stored as. A column of
    /// `NULL` literals is stored as nullable `i64` (every value null).
    pub fn column_type(self) -> ColumnType {
        match self {
            DataType::Null | DataType::I64 => ColumnType::I64,
            DataType::Bool => ColumnType::Bool,
            DataType::I8 => ColumnType::I8,
            DataType::I16 => ColumnType::I16,
            DataType::I32 => ColumnType::I32,
            DataType::F32 => ColumnType::F32,
            DataType::F64 => ColumnType::F64,
            DataType::Utf8 => ColumnType::Utf8,
            DataType::Binary => ColumnType::Binary,
        }
    }

    /// Integer types (bool counts as an integer in arithmetic, as in MySQL).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Bool | DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64
        )
    }

    /// Float types.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }

    /// Integer or float (or null, which takes part in arithmetic as NULL).
    pub fn is_numeric(self) -> bool {
        self.is_integer() || self.is_float() || self == DataType::Null
    }

    /// Text or bytes.
    pub fn is_string(self) -> bool {
        matches!(self, DataType::Utf8 | DataType::Binary)
    }

    /// The type arithmetic on `self` and `other` is computed in: f64 when
    /// either is a float or a string (MySQL converts strings to doubles in
    /// arithmetic), else i64.
    pub fn arithmetic(self, other: DataType) -> DataType {
        if self.is_float() || other.is_float() || self.is_string() || other.is_string() {
            DataType::F64
        } else {
            DataType::I64
        }
    }

    /// The SQL name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Null => "NULL",
            DataType::Bool => "BOOLEAN",
            DataType::I8 => "TINYINT",
            DataType::I16 => "SMALLINT",
            DataType::I32 => "INT",
            DataType::I64 => "BIGINT",
            DataType::F32 => "FLOAT",
            DataType::F64 => "DOUBLE",
            DataType::Utf8 => "TEXT",
            DataType::Binary => "BINARY",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// SQL NULL.
    Null,
    /// A truth value.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Utf8(String),
    /// Bytes.
    Binary(Vec<u8>),
}

impl Scalar {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// The static type of this constant.
    pub fn data_type(&self) -> DataType {
        match self {
            Scalar::Null => DataType::Null,
            Scalar::Bool(_) => DataType::Bool,
            Scalar::Int(_) => DataType::I64,
            Scalar::Float(_) => DataType::F64,
            Scalar::Utf8(_) => DataType::Utf8,
            Scalar::Binary(_) => DataType::Binary,
        }
    }

    /// The value as a double, as MySQL converts it in a numeric context
    /// (strings by their longest numeric prefix, 0 when there is none).
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
            Scalar::Int(v) => Some(*v as f64),
            Scalar::Float(v) => Some(*v),
            Scalar::Utf8(s) => Some(parse_number_prefix(s.as_bytes())),
            Scalar::Binary(b) => Some(parse_number_prefix(b)),
        }
    }

    /// The value as an integer (floats rounded to nearest, as MySQL casts;
    /// `None` for NULL or a float outside the i64 range).
    pub fn to_i64(&self) -> Option<i64> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(i64::from(*b)),
            Scalar::Int(v) => Some(*v),
            Scalar::Float(v) => float_to_i64(*v),
            Scalar::Utf8(_) | Scalar::Binary(_) => self.to_f64().and_then(float_to_i64),
        }
    }

    /// The value as a truth value (MySQL: non-zero is true; NULL is unknown).
    pub fn to_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            Scalar::Int(v) => Some(*v != 0),
            other => other.to_f64().map(|v| v != 0.0),
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Scalar::Utf8(s) => Some(s.as_bytes()),
            Scalar::Binary(b) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("NULL"),
            Scalar::Bool(b) => write!(f, "{}", u8::from(*b)),
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v}"),
            Scalar::Utf8(s) => write!(f, "'{s}'"),
            Scalar::Binary(b) => {
                f.write_str("0x")?;
                for byte in b {
                    write!(f, "{byte:02X}")?;
                }
                Ok(())
            }
        }
    }
}

/// Rounds a double to the nearest i64 (half away from zero, as MySQL's
/// `CAST(x AS SIGNED)`); `None` outside the range or for NaN.
pub fn float_to_i64(value: f64) -> Option<i64> {
    let rounded = value.round();
    if in_i64_range(rounded) {
        Some(rounded as i64)
    } else {
        None
    }
}

/// Whether a double lies in [-2^63, 2^63), the doubles that convert to i64
/// exactly (NaN does not).
pub fn in_i64_range(value: f64) -> bool {
    // 2^63 is exactly representable as a double.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (-LIMIT..LIMIT).contains(&value)
}

/// MySQL's string-to-number conversion: the longest prefix that reads as a
/// decimal number (after leading spaces), 0 when there is none.
pub fn parse_number_prefix(bytes: &[u8]) -> f64 {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    let mut end = 0;
    if end < rest.len() && (rest[end] == b'+' || rest[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < rest.len() && rest[end].is_ascii_digit() {
        end += 1;
    }
    if end < rest.len() && rest[end] == b'.' {
        end += 1;
        while end < rest.len() && rest[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start || (end == digits_start + 1 && rest.get(digits_start) == Some(&b'.')) {
        return 0.0;
    }
    let mantissa_end = end;
    if end < rest.len() && (rest[end] == b'e' || rest[end] == b'E') {
        let mut exp_end = end + 1;
        if exp_end < rest.len() && (rest[exp_end] == b'+' || rest[exp_end] == b'-') {
            exp_end += 1;
        }
        let exp_digits = exp_end;
        while exp_end < rest.len() && rest[exp_end].is_ascii_digit() {
            exp_end += 1;
        }
        if exp_end > exp_digits {
            end = exp_end;
        }
    }
    let text = std::str::from_utf8(&rest[..end]).unwrap_or("0");
    text.parse::<f64>().unwrap_or_else(|_| {
        std::str::from_utf8(&rest[..mantissa_end])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0)
    })
}

/// Compares text the way MySQL's default case-insensitive collations do for
/// ASCII: letters compare without case and trailing spaces are ignored
/// (PAD SPACE). Other bytes compare by value.
pub fn compare_text_ci(a: &[u8], b: &[u8]) -> Ordering {
    let a = trim_trailing_spaces(a);
    let b = trim_trailing_spaces(b);
    for (x, y) in a.iter().zip(b) {
        let ordering = x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase());
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.len().cmp(&b.len())
}

fn trim_trailing_spaces(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |position| position + 1);
    &bytes[..end]
}

/// Compares two strings of `data_type` (text case-insensitively, bytes by value).
pub fn compare_strings(data_type: DataType, a: &[u8], b: &[u8]) -> Ordering {
    if data_type == DataType::Utf8 {
        compare_text_ci(a, b)
    } else {
        a.cmp(b)
    }
}

/// The result of evaluating an expression over a batch: one value for every
/// row, or a column of values.
#[derive(Debug, Clone)]
pub enum Datum<'a> {
    /// The same value for every row.
    Scalar(Scalar),
    /// One value per row (borrowed from the batch or computed).
    Column(Cow<'a, ColumnData>),
}

impl<'a> Datum<'a> {
    /// A computed column.
    pub fn owned(column: ColumnData) -> Datum<'a> {
        Datum::Column(Cow::Owned(column))
    }

    /// The column, materialising a constant as `rows` copies.
    pub fn into_column(self, data_type: DataType, rows: usize) -> ColumnData {
        match self {
            Datum::Column(column) => column.into_owned(),
            Datum::Scalar(scalar) => crate::build::repeat_scalar(&scalar, data_type, rows),
        }
    }
}
