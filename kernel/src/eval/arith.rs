//! Arithmetic and bit operators with MySQL's semantics: integer results
//! are checked (overflow is an error, as MySQL raises one), `/` is always
//! a double, division or modulo by zero is NULL, bit operators work on the
//! unsigned 64-bit image of their operands (results reinterpreted as
//! signed BIGINT: skyscan has no unsigned type).

use std::borrow::Cow;

use skyscan_format::{Bitmap, ColumnData, PrimitiveColumn};

use crate::batch::{and_validity, bitmap_from_fn};
use crate::build::{f64_values, i64_values};
use crate::error::{KernelError, Result};
use crate::expr::BinaryOp;
use crate::value::{DataType, Datum, Scalar};

/// An operand of a numeric operation: a column's values or a constant.
enum Arg<'b, T: Clone + 'static> {
    Column(Cow<'b, [T]>),
    Constant(T),
}

impl<T: Copy + 'static> Arg<'_, T> {
    fn get(&self, row: usize) -> T {
        match self {
            Arg::Column(values) => values[row],
            Arg::Constant(value) => *value,
        }
    }
}

fn f64_arg<'b>(datum: &'b Datum<'_>) -> Option<Arg<'b, f64>> {
    match datum {
        Datum::Scalar(s) => s.to_f64().map(Arg::Constant),
        Datum::Column(c) => Some(Arg::Column(f64_values(c))),
    }
}

fn i64_arg<'b>(datum: &'b Datum<'_>) -> Result<Option<Arg<'b, i64>>> {
    Ok(match datum {
        Datum::Scalar(s) if s.is_null() => None,
        Datum::Scalar(s) => Some(Arg::Constant(s.to_i64().ok_or_else(|| {
            KernelError::Overflow(format!("{s} is out of the BIGINT range"))
        })?)),
        Datum::Column(c) => Some(Arg::Column(i64_values(c)?)),
    })
}

fn validity_of(datum: &Datum<'_>) -> Option<Bitmap> {
    match datum {
        Datum::Scalar(_) => None,
        Datum::Column(c) => c.validity().cloned(),
    }
}

fn both_scalar(a: &Datum<'_>, b: &Datum<'_>) -> bool {
    matches!((a, b), (Datum::Scalar(_), Datum::Scalar(_)))
}

/// Applies `f` row by row; the loops specialise on which side is constant
/// so that the column-constant case (the common `flux * 2`) vectorizes.
#[inline]
fn map2<T: Copy + 'static, U: Copy>(
    a: &Arg<'_, T>,
    b: &Arg<'_, T>,
    rows: usize,
    f: impl Fn(T, T) -> U,
) -> Vec<U> {
    match (a, b) {
        (Arg::Column(x), Arg::Column(y)) => {
            x.iter().zip(y.iter()).map(|(&p, &q)| f(p, q)).collect()
        }
        (Arg::Column(x), Arg::Constant(q)) => x.iter().map(|&p| f(p, *q)).collect(),
        (Arg::Constant(p), Arg::Column(y)) => y.iter().map(|&q| f(*p, q)).collect(),
        (Arg::Constant(p), Arg::Constant(q)) => vec![f(*p, *q); rows],
    }
}

/// `left op right` for `+ - * / DIV %`.
pub fn arithmetic<'a>(
    op: BinaryOp,
    left: &Datum<'_>,
    left_type: DataType,
    right: &Datum<'_>,
    right_type: DataType,
    rows: usize,
) -> Result<Datum<'a>> {
    let scalar_result = both_scalar(left, right);
    let rows = if scalar_result { 1 } else { rows };
    let column = match op {
        BinaryOp::Div => float_op(op, left, right, rows)?,
        BinaryOp::IntDiv => int_div(left, left_type, right, right_type, rows)?,
        _ if left_type.arithmetic(right_type) == DataType::F64 => float_op(op, left, right, rows)?,
        _ => int_op(op, left, right, rows)?,
    };
    Ok(finish(column, scalar_result))
}

/// A one-row result of constant operands becomes a scalar again.
fn finish<'a>(column: Option<ColumnData>, scalar_result: bool) -> Datum<'a> {
    match column {
        None => Datum::Scalar(Scalar::Null),
        Some(column) if scalar_result => Datum::Scalar(crate::build::scalar_at(&column, 0)),
        Some(column) => Datum::owned(column),
    }
}

fn float_op(
    op: BinaryOp,
    left: &Datum<'_>,
    right: &Datum<'_>,
    rows: usize,
) -> Result<Option<ColumnData>> {
    let (Some(a), Some(b)) = (f64_arg(left), f64_arg(right)) else {
        return Ok(None);
    };
    let mut validity = and_validity(validity_of(left).as_ref(), validity_of(right).as_ref());
    let values = match op {
        BinaryOp::Add => map2(&a, &b, rows, |x, y| x + y),
        BinaryOp::Sub => map2(&a, &b, rows, |x, y| x - y),
        BinaryOp::Mul => map2(&a, &b, rows, |x, y| x * y),
        BinaryOp::Div | BinaryOp::Mod => {
            // By zero: NULL.
            let zero = match &b {
                Arg::Constant(y) => (*y == 0.0).then(|| Bitmap::new_set(rows)),
                Arg::Column(y) => {
                    let zeros = bitmap_from_fn(y, |v| v == 0.0);
                    (zeros.count_ones() > 0).then_some(zeros)
                }
            };
            if let Some(zero) = zero {
                let nonzero = Bitmap::from_words(zero.words().iter().map(|w| !w).collect(), rows);
                validity = and_validity(validity.as_ref(), Some(&nonzero));
            }
            if op == BinaryOp::Div {
                map2(&a, &b, rows, |x, y| x / y)
            } else {
                map2(&a, &b, rows, |x, y| x % y)
            }
        }
        _ => {
            return Err(KernelError::Internal(format!(
                "{} is not arithmetic",
                op.symbol()
            )));
        }
    };
    Ok(Some(ColumnData::F64(PrimitiveColumn { values, validity })))
}

fn int_op(
    op: BinaryOp,
    left: &Datum<'_>,
    right: &Datum<'_>,
    rows: usize,
) -> Result<Option<ColumnData>> {
    let (Some(a), Some(b)) = (i64_arg(left)?, i64_arg(right)?) else {
        return Ok(None);
    };
    let mut validity = and_validity(validity_of(left).as_ref(), validity_of(right).as_ref());
    let (values, overflow): (Vec<i64>, Vec<bool>) = match op {
        BinaryOp::Add => map2(&a, &b, rows, i64::overflowing_add).into_iter().unzip(),
        BinaryOp::Sub => map2(&a, &b, rows, i64::overflowing_sub).into_iter().unzip(),
        BinaryOp::Mul => map2(&a, &b, rows, i64::overflowing_mul).into_iter().unzip(),
        BinaryOp::Mod => {
            validity = null_where_zero(&b, rows, validity);
            map2(&a, &b, rows, |x, y| {
                if y == 0 {
                    (0, false)
                } else {
                    (x.wrapping_rem(y), false)
                }
            })
            .into_iter()
            .unzip()
        }
        _ => {
            return Err(KernelError::Internal(format!(
                "{} is not integer arithmetic",
                op.symbol()
            )));
        }
    };
    check_overflow(&overflow, validity.as_ref(), &a, &b, op)?;
    Ok(Some(ColumnData::I64(PrimitiveColumn { values, validity })))
}

fn null_where_zero(
    divisor: &Arg<'_, i64>,
    rows: usize,
    validity: Option<Bitmap>,
) -> Option<Bitmap> {
    let nonzero = match divisor {
        Arg::Constant(y) => {
            if *y == 0 {
                Bitmap::new_unset(rows)
            } else {
                return validity;
            }
        }
        Arg::Column(y) => bitmap_from_fn(y, |v| v != 0),
    };
    and_validity(validity.as_ref(), Some(&nonzero))
}

fn check_overflow(
    overflow: &[bool],
    validity: Option<&Bitmap>,
    a: &Arg<'_, i64>,
    b: &Arg<'_, i64>,
    op: BinaryOp,
) -> Result<()> {
    for (row, &overflowed) in overflow.iter().enumerate() {
        if overflowed && validity.is_none_or(|v| v.get(row)) {
            return Err(KernelError::Overflow(format!(
                "BIGINT value is out of range in ({} {} {})",
                a.get(row),
                op.symbol(),
                b.get(row)
            )));
        }
    }
    Ok(())
}

/// `a DIV b`: integer division truncating toward zero; floats are divided
/// as doubles first, then truncated (MySQL goes through DECIMAL).
fn int_div(
    left: &Datum<'_>,
    left_type: DataType,
    right: &Datum<'_>,
    right_type: DataType,
    rows: usize,
) -> Result<Option<ColumnData>> {
    if left_type.arithmetic(right_type) == DataType::F64 {
        let (Some(a), Some(b)) = (f64_arg(left), f64_arg(right)) else {
            return Ok(None);
        };
        let mut validity = and_validity(validity_of(left).as_ref(), validity_of(right).as_ref());
        let quotients = map2(&a, &b, rows, |x, y| (x / y).trunc());
        let zero = bitmap_from_fn(&map2(&a, &b, rows, |_, y| y), |y| y != 0.0);
        validity = and_validity(validity.as_ref(), Some(&zero));
        let mut values = Vec::with_capacity(rows);
        for (row, &q) in quotients.iter().enumerate() {
            let valid = validity.as_ref().is_none_or(|v| v.get(row));
            if !valid {
                values.push(0);
            } else if crate::value::in_i64_range(q) {
                values.push(q as i64);
            } else {
                return Err(KernelError::Overflow(format!(
                    "BIGINT value is out of range in DIV ({q})"
                )));
            }
        }
        return Ok(Some(ColumnData::I64(PrimitiveColumn { values, validity })));
    }
    let (Some(a), Some(b)) = (i64_arg(left)?, i64_arg(right)?) else {
        return Ok(None);
    };
    let validity = and_validity(validity_of(left).as_ref(), validity_of(right).as_ref());
    let validity = null_where_zero(&b, rows, validity);
    let (values, overflow): (Vec<i64>, Vec<bool>) = map2(&a, &b, rows, |x, y| {
        if y == 0 {
            (0, false)
        } else {
            x.overflowing_div(y)
        }
    })
    .into_iter()
    .unzip();
    check_overflow(&overflow, validity.as_ref(), &a, &b, BinaryOp::IntDiv)?;
    Ok(Some(ColumnData::I64(PrimitiveColumn { values, validity })))
}

/// `-x`.
pub fn negate<'a>(value: &Datum<'_>, data_type: DataType, rows: usize) -> Result<Datum<'a>> {
    let zero = Datum::Scalar(Scalar::Int(0));
    let zero_type = DataType::I64;
    if data_type.is_float() || data_type.is_string() {
        let scalar_result = matches!(value, Datum::Scalar(_));
        let rows = if scalar_result { 1 } else { rows };
        let Some(a) = f64_arg(value) else {
            return Ok(Datum::Scalar(Scalar::Null));
        };
        let values = map2(&a, &Arg::Constant(0.0), rows, |x, _| -x);
        let column = ColumnData::F64(PrimitiveColumn {
            values,
            validity: validity_of(value),
        });
        return Ok(finish(Some(column), scalar_result));
    }
    arithmetic(BinaryOp::Sub, &zero, zero_type, value, data_type, rows)
}

/// `~x` on the unsigned 64-bit image.
pub fn bit_not<'a>(value: &Datum<'_>, rows: usize) -> Result<Datum<'a>> {
    let scalar_result = matches!(value, Datum::Scalar(_));
    let rows = if scalar_result { 1 } else { rows };
    let Some(a) = i64_arg(value)? else {
        return Ok(Datum::Scalar(Scalar::Null));
    };
    let values = map2(&a, &Arg::Constant(0), rows, |x, _| !x);
    Ok(finish(
        Some(ColumnData::I64(PrimitiveColumn {
            values,
            validity: validity_of(value),
        })),
        scalar_result,
    ))
}

/// `& | ^ << >>` on unsigned 64-bit images; shifts by 64 or more give 0.
pub fn bitwise<'a>(
    op: BinaryOp,
    left: &Datum<'_>,
    right: &Datum<'_>,
    rows: usize,
) -> Result<Datum<'a>> {
    let scalar_result = both_scalar(left, right);
    let rows = if scalar_result { 1 } else { rows };
    let (Some(a), Some(b)) = (i64_arg(left)?, i64_arg(right)?) else {
        return Ok(Datum::Scalar(Scalar::Null));
    };
    let validity = and_validity(validity_of(left).as_ref(), validity_of(right).as_ref());
    let values = match op {
        BinaryOp::BitAnd => map2(&a, &b, rows, |x, y| x & y),
        BinaryOp::BitOr => map2(&a, &b, rows, |x, y| x | y),
        BinaryOp::BitXor => map2(&a, &b, rows, |x, y| x ^ y),
        BinaryOp::Shl => map2(&a, &b, rows, |x, y| {
            if (0..64).contains(&y) {
                ((x as u64) << y) as i64
            } else {
                0
            }
        }),
        BinaryOp::Shr => map2(&a, &b, rows, |x, y| {
            if (0..64).contains(&y) {
                ((x as u64) >> y) as i64
            } else {
                0
            }
        }),
        _ => {
            return Err(KernelError::Internal(format!(
                "{} is not a bit operator",
                op.symbol()
            )));
        }
    };
    Ok(finish(
        Some(ColumnData::I64(PrimitiveColumn { values, validity })),
        scalar_result,
    ))
}
