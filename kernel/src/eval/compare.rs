//! Comparisons, `IN` lists and `LIKE`, producing truth-value bitmaps.
//!
//! The comparison domain follows MySQL: two integers compare as integers
//! (exactly, so 64-bit object ids never lose precision), two strings as
//! strings (text case-insensitively, bytes by value), anything else as
//! doubles.

use std::cmp::Ordering;
use std::collections::HashSet;

use skyscan_format::{Bitmap, BoolColumn, ColumnData};

use crate::batch::{and_validity, bitmap_from_fn, bitmap_from_fn2};
use crate::build::{cast_column, f64_values, i64_values};
use crate::error::{KernelError, Result};
use crate::expr::BinaryOp;
use crate::like::LikePattern;
use crate::value::{DataType, Datum, Scalar, compare_strings, compare_text_ci};

/// How two operands are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Int,
    Float,
    Text,
    Bytes,
}

fn domain(left: DataType, right: DataType) -> Domain {
    let int_like = |t: DataType| t.is_integer() || t == DataType::Null;
    let string_like = |t: DataType| t.is_string() || t == DataType::Null;
    if left.is_string() || right.is_string() {
        if string_like(left) && string_like(right) {
            if left == DataType::Binary || right == DataType::Binary {
                return Domain::Bytes;
            }
            return Domain::Text;
        }
        return Domain::Float;
    }
    if int_like(left) && int_like(right) {
        Domain::Int
    } else {
        Domain::Float
    }
}

fn ordering_satisfies(op: BinaryOp, ordering: Ordering) -> bool {
    match op {
        BinaryOp::Eq | BinaryOp::NullSafeEq => ordering == Ordering::Equal,
        BinaryOp::NotEq => ordering != Ordering::Equal,
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::LtEq => ordering != Ordering::Greater,
        BinaryOp::Gt => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    }
}

/// Compares `left op right`.
pub fn compare<'a>(
    op: BinaryOp,
    left: &Datum<'_>,
    left_type: DataType,
    right: &Datum<'_>,
    right_type: DataType,
    rows: usize,
) -> Result<Datum<'a>> {
    let domain = domain(left_type, right_type);
    if op == BinaryOp::NullSafeEq {
        return null_safe_eq(left, right, domain, rows);
    }
    match (left, right) {
        (Datum::Scalar(a), _) if a.is_null() => Ok(Datum::Scalar(Scalar::Null)),
        (_, Datum::Scalar(b)) if b.is_null() => Ok(Datum::Scalar(Scalar::Null)),
        (Datum::Scalar(a), Datum::Scalar(b)) => Ok(Datum::Scalar(
            compare_scalars(a, b, domain)
                .map_or(Scalar::Null, |o| Scalar::Bool(ordering_satisfies(op, o))),
        )),
        (Datum::Column(column), Datum::Scalar(scalar)) => {
            let values = compare_column_scalar(op, column, scalar, domain)?;
            Ok(bool_column(values, column.validity().cloned()))
        }
        (Datum::Scalar(scalar), Datum::Column(column)) => {
            let values = compare_column_scalar(op.swapped(), column, scalar, domain)?;
            Ok(bool_column(values, column.validity().cloned()))
        }
        (Datum::Column(a), Datum::Column(b)) => {
            let values = compare_columns(op, a, b, domain)?;
            Ok(bool_column(
                values,
                and_validity(a.validity(), b.validity()),
            ))
        }
    }
}

fn bool_column<'a>(values: Bitmap, validity: Option<Bitmap>) -> Datum<'a> {
    Datum::owned(ColumnData::Bool(BoolColumn { values, validity }))
}

/// Compares two non-null scalars in `domain` (`None` when one is NULL or a
/// float comparison involves NaN).
fn compare_scalars(a: &Scalar, b: &Scalar, domain: Domain) -> Option<Ordering> {
    match domain {
        Domain::Int => Some(a.to_i64()?.cmp(&b.to_i64()?)),
        Domain::Float => a.to_f64()?.partial_cmp(&b.to_f64()?),
        Domain::Text => Some(compare_text_ci(a.as_bytes()?, b.as_bytes()?)),
        Domain::Bytes => Some(a.as_bytes()?.cmp(b.as_bytes()?)),
    }
}

/// `values op literal` for every row, one monomorphized loop per operator.
#[inline]
fn compare_slice<T: Copy, K: PartialOrd + Copy>(
    values: &[T],
    convert: impl Fn(T) -> K + Copy,
    literal: K,
    op: BinaryOp,
) -> Bitmap {
    match op {
        BinaryOp::Eq => bitmap_from_fn(values, |v| convert(v) == literal),
        BinaryOp::NotEq => bitmap_from_fn(values, |v| convert(v) != literal),
        BinaryOp::Lt => bitmap_from_fn(values, |v| convert(v) < literal),
        BinaryOp::LtEq => bitmap_from_fn(values, |v| convert(v) <= literal),
        BinaryOp::Gt => bitmap_from_fn(values, |v| convert(v) > literal),
        _ => bitmap_from_fn(values, |v| convert(v) >= literal),
    }
}

#[inline]
fn compare_slices<K: PartialOrd + Copy>(left: &[K], right: &[K], op: BinaryOp) -> Bitmap {
    match op {
        BinaryOp::Eq => bitmap_from_fn2(left, right, |a, b| a == b),
        BinaryOp::NotEq => bitmap_from_fn2(left, right, |a, b| a != b),
        BinaryOp::Lt => bitmap_from_fn2(left, right, |a, b| a < b),
        BinaryOp::LtEq => bitmap_from_fn2(left, right, |a, b| a <= b),
        BinaryOp::Gt => bitmap_from_fn2(left, right, |a, b| a > b),
        _ => bitmap_from_fn2(left, right, |a, b| a >= b),
    }
}

fn compare_column_scalar(
    op: BinaryOp,
    column: &ColumnData,
    scalar: &Scalar,
    domain: Domain,
) -> Result<Bitmap> {
    match domain {
        Domain::Int => {
            let literal = scalar.to_i64().ok_or_else(|| {
                KernelError::Internal("integer comparison with a non-integer".to_string())
            })?;
            Ok(match column {
                ColumnData::I8(c) => compare_slice(&c.values, i64::from, literal, op),
                ColumnData::I16(c) => compare_slice(&c.values, i64::from, literal, op),
                ColumnData::I32(c) => compare_slice(&c.values, i64::from, literal, op),
                ColumnData::I64(c) => compare_slice(&c.values, |v| v, literal, op),
                other => compare_slice(&i64_values(other)?, |v| v, literal, op),
            })
        }
        Domain::Float => {
            let literal = scalar.to_f64().unwrap_or(f64::NAN);
            Ok(match column {
                ColumnData::F32(c) => compare_slice(&c.values, f64::from, literal, op),
                ColumnData::F64(c) => compare_slice(&c.values, |v| v, literal, op),
                ColumnData::I32(c) => compare_slice(&c.values, f64::from, literal, op),
                ColumnData::I64(c) => compare_slice(&c.values, |v| v as f64, literal, op),
                other => compare_slice(&f64_values(other), |v| v, literal, op),
            })
        }
        Domain::Text | Domain::Bytes => {
            let literal = scalar.as_bytes().unwrap_or_default();
            let (ColumnData::Utf8(c) | ColumnData::Binary(c)) = column else {
                return Err(KernelError::Internal(
                    "string comparison of a non-string column".to_string(),
                ));
            };
            let data_type = if domain == Domain::Text {
                DataType::Utf8
            } else {
                DataType::Binary
            };
            let bits: Vec<bool> = (0..c.len())
                .map(|row| {
                    ordering_satisfies(op, compare_strings(data_type, c.value(row), literal))
                })
                .collect();
            Ok(Bitmap::from_bools(&bits))
        }
    }
}

fn compare_columns(op: BinaryOp, a: &ColumnData, b: &ColumnData, domain: Domain) -> Result<Bitmap> {
    match domain {
        Domain::Int => Ok(compare_slices(&i64_values(a)?, &i64_values(b)?, op)),
        Domain::Float => Ok(match (a, b) {
            (ColumnData::F32(x), ColumnData::F32(y)) => compare_slices(&x.values, &y.values, op),
            _ => compare_slices(&f64_values(a), &f64_values(b), op),
        }),
        Domain::Text | Domain::Bytes => {
            let (
                ColumnData::Utf8(x) | ColumnData::Binary(x),
                ColumnData::Utf8(y) | ColumnData::Binary(y),
            ) = (a, b)
            else {
                return Err(KernelError::Internal(
                    "string comparison of non-string columns".to_string(),
                ));
            };
            let data_type = if domain == Domain::Text {
                DataType::Utf8
            } else {
                DataType::Binary
            };
            let bits: Vec<bool> = (0..x.len())
                .map(|row| {
                    ordering_satisfies(op, compare_strings(data_type, x.value(row), y.value(row)))
                })
                .collect();
            Ok(Bitmap::from_bools(&bits))
        }
    }
}

/// `a <=> b`: equal, or both NULL; never NULL itself.
fn null_safe_eq<'a>(
    left: &Datum<'_>,
    right: &Datum<'_>,
    domain: Domain,
    rows: usize,
) -> Result<Datum<'a>> {
    let equal = compare(
        BinaryOp::Eq,
        left,
        data_type_of(domain),
        right,
        data_type_of(domain),
        rows,
    )?;
    let null_of = |d: &Datum<'_>| -> Bitmap {
        match d {
            Datum::Scalar(s) => {
                if s.is_null() {
                    Bitmap::new_set(rows)
                } else {
                    Bitmap::new_unset(rows)
                }
            }
            Datum::Column(c) => match c.validity() {
                None => Bitmap::new_unset(rows),
                Some(v) => Bitmap::from_words(v.words().iter().map(|w| !w).collect(), rows),
            },
        }
    };
    let (left_null, right_null) = (null_of(left), null_of(right));
    let equal_rows = super::to_bool(&equal, rows).true_rows(rows);
    let words = equal_rows
        .words()
        .iter()
        .zip(left_null.words().iter().zip(right_null.words()))
        .map(|(&eq, (&ln, &rn))| eq | (ln & rn))
        .collect();
    let values = Bitmap::from_words(words, rows);
    if let (Datum::Scalar(_), Datum::Scalar(_)) = (left, right) {
        return Ok(Datum::Scalar(Scalar::Bool(rows == 0 || values.get(0))));
    }
    Ok(bool_column(values, None))
}

/// A representative type of a domain, so `compare` picks the same domain again.
fn data_type_of(domain: Domain) -> DataType {
    match domain {
        Domain::Int => DataType::I64,
        Domain::Float => DataType::F64,
        Domain::Text => DataType::Utf8,
        Domain::Bytes => DataType::Binary,
    }
}

/// `arg [NOT] IN (list)` with MySQL's NULL rules: NULL when `arg` is NULL,
/// or when no element matches and the list holds a NULL.
pub fn in_list<'a>(
    arg: &Datum<'_>,
    arg_type: DataType,
    list: &[Scalar],
    negated: bool,
    rows: usize,
) -> Result<Datum<'a>> {
    let list_has_null = list.iter().any(Scalar::is_null);
    let items: Vec<&Scalar> = list.iter().filter(|s| !s.is_null()).collect();
    let list_type = if items.iter().all(|s| s.data_type().is_string()) && !items.is_empty() {
        DataType::Utf8
    } else if items.iter().all(|s| s.data_type().is_integer()) {
        DataType::I64
    } else {
        DataType::F64
    };
    let domain = domain(arg_type, list_type);
    let matcher = InMatcher::new(&items, domain);
    let finish = |found: bool| -> Option<bool> {
        if found {
            Some(!negated)
        } else if list_has_null {
            None
        } else {
            Some(negated)
        }
    };
    match arg {
        Datum::Scalar(scalar) => {
            if scalar.is_null() {
                return Ok(Datum::Scalar(Scalar::Null));
            }
            let column = crate::build::repeat_scalar(scalar, arg_type, 1);
            let found = matcher.matches(&column)?;
            Ok(Datum::Scalar(
                finish(found.get(0)).map_or(Scalar::Null, Scalar::Bool),
            ))
        }
        Datum::Column(column) => {
            let found = matcher.matches(column)?;
            let mut values = found.clone();
            let mut validity = column.validity().cloned();
            if list_has_null {
                // Not found → unknown.
                validity = and_validity(validity.as_ref(), Some(&found));
            }
            if negated {
                values = Bitmap::from_words(values.words().iter().map(|w| !w).collect(), rows);
            }
            Ok(bool_column(values, validity))
        }
    }
}

/// Membership test for `IN` lists in one comparison domain.
enum InMatcher {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Text(HashSet<Vec<u8>>),
    Bytes(HashSet<Vec<u8>>),
}

/// Folds text to the form the case-insensitive collation compares.
fn fold_text(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
    bytes[..end].iter().map(u8::to_ascii_lowercase).collect()
}

impl InMatcher {
    fn new(items: &[&Scalar], domain: Domain) -> InMatcher {
        match domain {
            Domain::Int => {
                let mut values: Vec<i64> = items.iter().filter_map(|s| s.to_i64()).collect();
                values.sort_unstable();
                values.dedup();
                InMatcher::Int(values)
            }
            Domain::Float => {
                let mut values: Vec<f64> = items
                    .iter()
                    .filter_map(|s| s.to_f64())
                    .filter(|v| !v.is_nan())
                    .collect();
                values.sort_by(f64::total_cmp);
                InMatcher::Float(values)
            }
            Domain::Text => InMatcher::Text(
                items
                    .iter()
                    .filter_map(|s| s.as_bytes())
                    .map(fold_text)
                    .collect(),
            ),
            Domain::Bytes => InMatcher::Bytes(
                items
                    .iter()
                    .filter_map(|s| s.as_bytes())
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
        }
    }

    fn matches(&self, column: &ColumnData) -> Result<Bitmap> {
        Ok(match self {
            InMatcher::Int(set) => {
                let values = i64_values(column)?;
                if set.len() <= 8 {
                    bitmap_from_fn(&values, |v| set.contains(&v))
                } else {
                    bitmap_from_fn(&values, |v| set.binary_search(&v).is_ok())
                }
            }
            InMatcher::Float(set) => {
                let values = f64_values(column);
                bitmap_from_fn(&values, |v| {
                    let position = set.partition_point(|&x| x < v);
                    set.get(position).is_some_and(|&x| x == v)
                })
            }
            InMatcher::Text(set) | InMatcher::Bytes(set) => {
                let text = matches!(self, InMatcher::Text(_));
                let strings = match column {
                    ColumnData::Utf8(_) | ColumnData::Binary(_) => {
                        std::borrow::Cow::Borrowed(column)
                    }
                    other => std::borrow::Cow::Owned(cast_column(other, DataType::Utf8)?),
                };
                let (ColumnData::Utf8(c) | ColumnData::Binary(c)) = strings.as_ref() else {
                    return Err(KernelError::Internal(
                        "IN over strings of a non-string".to_string(),
                    ));
                };
                let bits: Vec<bool> = (0..c.len())
                    .map(|row| {
                        if text {
                            set.contains(&fold_text(c.value(row)))
                        } else {
                            set.contains(c.value(row))
                        }
                    })
                    .collect();
                Bitmap::from_bools(&bits)
            }
        })
    }
}

/// `arg [NOT] LIKE pattern` (NULL when `arg` is NULL).
pub fn like<'a>(
    arg: &Datum<'_>,
    pattern: &LikePattern,
    negated: bool,
    rows: usize,
) -> Result<Datum<'a>> {
    match arg {
        Datum::Scalar(scalar) => {
            if scalar.is_null() {
                return Ok(Datum::Scalar(Scalar::Null));
            }
            let text = crate::build::scalar_text(scalar);
            Ok(Datum::Scalar(Scalar::Bool(
                pattern.matches(&text) != negated,
            )))
        }
        Datum::Column(column) => {
            let strings = match column.as_ref() {
                ColumnData::Utf8(_) | ColumnData::Binary(_) => {
                    std::borrow::Cow::Borrowed(column.as_ref())
                }
                other => std::borrow::Cow::Owned(cast_column(other, DataType::Utf8)?),
            };
            let (ColumnData::Utf8(c) | ColumnData::Binary(c)) = strings.as_ref() else {
                return Err(KernelError::Internal("LIKE of a non-string".to_string()));
            };
            let values = if pattern.matches_everything() {
                if negated {
                    Bitmap::new_unset(rows)
                } else {
                    Bitmap::new_set(rows)
                }
            } else {
                let bits: Vec<bool> = (0..c.len())
                    .map(|row| pattern.matches(c.value(row)) != negated)
                    .collect();
                Bitmap::from_bools(&bits)
            };
            Ok(bool_column(values, column.validity().cloned()))
        }
    }
}
