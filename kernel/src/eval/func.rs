//! Scalar functions: math, NULL handling, strings, and the sciSQL sky and
//! photometry functions (bound in `super::sky`).

use skyscan_format::{Bitmap, ColumnData, PrimitiveColumn, VarColumn};

use super::eval;
use crate::batch::{Batch, and_validity, bitmap_from_fn};
use crate::build::{cast_column, f64_values, i64_values, interleave, repeat_scalar, scalar_at};
use crate::error::{KernelError, Result};
use crate::expr::{Expr, Func};
use crate::value::{DataType, Datum, Scalar};

/// Evaluates `func(args)` with result type `data_type`.
pub fn call<'a>(
    func: Func,
    args: &[Expr],
    data_type: DataType,
    batch: &Batch<'a>,
) -> Result<Datum<'a>> {
    let values: Vec<Datum<'a>> = args
        .iter()
        .map(|arg| eval(arg, batch))
        .collect::<Result<_>>()?;
    let types: Vec<DataType> = args.iter().map(Expr::data_type).collect();
    let all_scalar = values.iter().all(|v| matches!(v, Datum::Scalar(_)));
    let rows = if all_scalar { 1 } else { batch.rows };
    let column = if matches!(
        func,
        Func::AngSep
            | Func::PtInBox
            | Func::PtInCircle
            | Func::PtInEllipse
            | Func::PtInCPoly
            | Func::Photometry(_)
    ) {
        super::sky::call(func, &values, rows)?
    } else {
        call_columns(func, &values, &types, data_type, rows)?
    };
    Ok(if all_scalar {
        Datum::Scalar(scalar_at(&column, 0))
    } else {
        Datum::owned(column)
    })
}

/// The arguments as columns of `rows` rows (constants repeated).
fn columns(values: &[Datum<'_>], types: &[DataType], rows: usize) -> Vec<ColumnData> {
    values
        .iter()
        .zip(types)
        .map(|(value, &t)| match value {
            Datum::Scalar(s) => repeat_scalar(s, t, rows),
            Datum::Column(c) => c.as_ref().clone(),
        })
        .collect()
}

fn validity_all(columns: &[&ColumnData]) -> Option<Bitmap> {
    columns
        .iter()
        .fold(None, |acc, c| and_validity(acc.as_ref(), c.validity()))
}

fn f64_column(values: Vec<f64>, validity: Option<Bitmap>) -> ColumnData {
    ColumnData::F64(PrimitiveColumn { values, validity })
}

/// A double function of one argument, NULL where `domain` is false.
fn unary(arg: &ColumnData, f: impl Fn(f64) -> f64, domain: impl Fn(f64) -> bool) -> ColumnData {
    let x = f64_values(arg);
    let values: Vec<f64> = x.iter().map(|&v| f(v)).collect();
    let in_domain = bitmap_from_fn(&x, domain);
    // No validity bitmap when every value is in the domain (the usual case).
    let in_domain = (in_domain.count_ones() < x.len()).then_some(in_domain);
    let validity = and_validity(arg.validity(), in_domain.as_ref());
    f64_column(values, validity)
}

fn always(_: f64) -> bool {
    true
}

fn binary_f64(a: &ColumnData, b: &ColumnData, f: impl Fn(f64, f64) -> f64) -> ColumnData {
    let (x, y) = (f64_values(a), f64_values(b));
    let values: Vec<f64> = x.iter().zip(y.iter()).map(|(&p, &q)| f(p, q)).collect();
    let finite = bitmap_from_fn(&values, |v| !v.is_nan());
    let validity = and_validity(
        and_validity(a.validity(), b.validity()).as_ref(),
        Some(&finite),
    );
    f64_column(values, validity)
}

/// MySQL's ROUND for doubles: half away from zero at `digits` decimals.
fn round_to(value: f64, digits: i64) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let digits = digits.clamp(-308, 308) as i32;
    if digits >= 0 {
        let scale = 10f64.powi(digits);
        let scaled = value * scale;
        if !scaled.is_finite() {
            return value;
        }
        scaled.round() / scale
    } else {
        let scale = 10f64.powi(-digits);
        (value / scale).round() * scale
    }
}

fn truncate_to(value: f64, digits: i64) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let digits = digits.clamp(-308, 308) as i32;
    if digits >= 0 {
        let scale = 10f64.powi(digits);
        let scaled = value * scale;
        if !scaled.is_finite() {
            return value;
        }
        scaled.trunc() / scale
    } else {
        let scale = 10f64.powi(-digits);
        (value / scale).trunc() * scale
    }
}

fn call_columns(
    func: Func,
    values: &[Datum<'_>],
    types: &[DataType],
    data_type: DataType,
    rows: usize,
) -> Result<ColumnData> {
    let cols = columns(values, types, rows);
    let arg = |index: usize| -> Result<&ColumnData> {
        cols.get(index)
            .ok_or_else(|| KernelError::Internal(format!("{} lacks argument {index}", func.name())))
    };
    use std::f64::consts::PI;
    Ok(match func {
        Func::Pi => f64_column(vec![PI; rows], None),
        Func::Sqrt => unary(arg(0)?, f64::sqrt, |v| v >= 0.0),
        Func::Exp => unary(arg(0)?, f64::exp, always),
        Func::Ln => unary(arg(0)?, f64::ln, |v| v > 0.0),
        Func::Log2 => unary(arg(0)?, f64::log2, |v| v > 0.0),
        Func::Log10 => unary(arg(0)?, f64::log10, |v| v > 0.0),
        Func::Log => {
            if cols.len() == 1 {
                unary(arg(0)?, f64::ln, |v| v > 0.0)
            } else {
                // LOG(b, x) = ln x / ln b; NULL for b <= 0, b = 1 or x <= 0.
                let (b, x) = (f64_values(arg(0)?), f64_values(arg(1)?));
                let values: Vec<f64> = b
                    .iter()
                    .zip(x.iter())
                    .map(|(&b, &x)| x.ln() / b.ln())
                    .collect();
                let ok: Vec<bool> = b
                    .iter()
                    .zip(x.iter())
                    .map(|(&b, &x)| b > 0.0 && b != 1.0 && x > 0.0)
                    .collect();
                let validity = and_validity(
                    and_validity(arg(0)?.validity(), arg(1)?.validity()).as_ref(),
                    Some(&Bitmap::from_bools(&ok)),
                );
                f64_column(values, validity)
            }
        }
        Func::Sin => unary(arg(0)?, f64::sin, always),
        Func::Cos => unary(arg(0)?, f64::cos, always),
        Func::Tan => unary(arg(0)?, f64::tan, always),
        Func::Cot => unary(arg(0)?, |v| 1.0 / v.tan(), |v| v != 0.0),
        Func::Asin => unary(arg(0)?, f64::asin, |v| (-1.0..=1.0).contains(&v)),
        Func::Acos => unary(arg(0)?, f64::acos, |v| (-1.0..=1.0).contains(&v)),
        Func::Atan => {
            if cols.len() == 1 {
                unary(arg(0)?, f64::atan, always)
            } else {
                binary_f64(arg(0)?, arg(1)?, f64::atan2)
            }
        }
        Func::Atan2 => binary_f64(arg(0)?, arg(1)?, f64::atan2),
        Func::Degrees => unary(arg(0)?, f64::to_degrees, always),
        Func::Radians => unary(arg(0)?, f64::to_radians, always),
        Func::Pow => binary_f64(arg(0)?, arg(1)?, f64::powf),
        Func::Abs | Func::Sign | Func::Floor | Func::Ceil => {
            integer_preserving(func, arg(0)?, data_type)?
        }
        Func::Round | Func::Truncate => {
            let x = arg(0)?;
            let digits: Vec<i64> = match cols.get(1) {
                Some(d) => i64_values(d)?.into_owned(),
                None => vec![0; rows],
            };
            let validity = match cols.get(1) {
                Some(d) => and_validity(x.validity(), d.validity()),
                None => x.validity().cloned(),
            };
            if data_type.is_integer() {
                let v = i64_values(x)?;
                let values = v
                    .iter()
                    .zip(&digits)
                    .map(|(&v, &d)| round_int(v, d, func == Func::Round))
                    .collect::<Result<Vec<i64>>>()?;
                ColumnData::I64(PrimitiveColumn { values, validity })
            } else {
                let v = f64_values(x);
                let values = v
                    .iter()
                    .zip(&digits)
                    .map(|(&v, &d)| {
                        if func == Func::Round {
                            round_to(v, d)
                        } else {
                            truncate_to(v, d)
                        }
                    })
                    .collect();
                f64_column(values, validity)
            }
        }
        Func::Coalesce | Func::IfNull => {
            let converted = cols
                .iter()
                .map(|c| cast_column(c, data_type))
                .collect::<Result<Vec<_>>>()?;
            let choice: Vec<u32> = (0..rows)
                .map(|row| {
                    converted
                        .iter()
                        .position(|c| c.is_valid(row))
                        .unwrap_or(converted.len() - 1) as u32
                })
                .collect();
            interleave(&converted, &choice)?
        }
        Func::NullIf => {
            // NULLIF(a, b) = CASE WHEN a = b THEN NULL ELSE a END.
            let equal = super::compare::compare(
                crate::expr::BinaryOp::Eq,
                &values[0],
                types[0],
                &values[1],
                types[1],
                rows,
            )?;
            let equal_rows = super::to_bool(&equal, rows).true_rows(rows);
            let a = cast_column(arg(0)?, data_type)?;
            let keep = Bitmap::from_words(equal_rows.words().iter().map(|w| !w).collect(), rows);
            with_validity(a, and_validity(arg(0)?.validity(), Some(&keep)))?
        }
        Func::If => {
            let condition = super::to_bool(&values[0], rows).true_rows(rows);
            let branches = vec![
                cast_column(arg(1)?, data_type)?,
                cast_column(arg(2)?, data_type)?,
            ];
            let choice: Vec<u32> = (0..rows)
                .map(|row| u32::from(!condition.get(row)))
                .collect();
            interleave(&branches, &choice)?
        }
        Func::Greatest | Func::Least => greatest_least(func, &cols, data_type)?,
        Func::Hex => hex(arg(0)?)?,
        Func::Length | Func::CharLength => {
            let text = cast_column(
                arg(0)?,
                if func == Func::Length {
                    DataType::Binary
                } else {
                    DataType::Utf8
                },
            )?;
            let (ColumnData::Utf8(c) | ColumnData::Binary(c)) = &text else {
                return Err(KernelError::Internal("LENGTH of a non-string".to_string()));
            };
            let values = (0..c.len())
                .map(|row| {
                    let v = c.value(row);
                    if func == Func::Length {
                        v.len() as i64
                    } else {
                        String::from_utf8_lossy(v).chars().count() as i64
                    }
                })
                .collect();
            ColumnData::I64(PrimitiveColumn {
                values,
                validity: c.validity.clone(),
            })
        }
        Func::Concat => {
            let texts = cols
                .iter()
                .map(|c| cast_column(c, data_type))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&ColumnData> = texts.iter().collect();
            let validity = validity_all(&refs);
            let mut out = VarColumn {
                offsets: vec![0],
                data: Vec::new(),
                validity,
            };
            for row in 0..rows {
                for text in &texts {
                    if let ColumnData::Utf8(c) | ColumnData::Binary(c) = text {
                        out.data.extend_from_slice(c.value(row));
                    }
                }
                out.offsets.push(u32::try_from(out.data.len()).map_err(|_| {
                    KernelError::Limit("CONCAT result over 4 GiB in one batch".to_string())
                })?);
            }
            if data_type == DataType::Binary {
                ColumnData::Binary(out)
            } else {
                ColumnData::Utf8(out)
            }
        }
        Func::Upper | Func::Lower => {
            let text = cast_column(arg(0)?, DataType::Utf8)?;
            let ColumnData::Utf8(mut c) = text else {
                return Err(KernelError::Internal("UPPER of a non-string".to_string()));
            };
            if func == Func::Upper {
                c.data.make_ascii_uppercase();
            } else {
                c.data.make_ascii_lowercase();
            }
            ColumnData::Utf8(c)
        }
        other => {
            return Err(KernelError::Internal(format!(
                "{} is evaluated elsewhere",
                other.name()
            )));
        }
    })
}

fn with_validity(column: ColumnData, validity: Option<Bitmap>) -> Result<ColumnData> {
    Ok(match column {
        ColumnData::Bool(mut c) => {
            c.validity = validity;
            ColumnData::Bool(c)
        }
        ColumnData::I8(mut c) => {
            c.validity = validity;
            ColumnData::I8(c)
        }
        ColumnData::I16(mut c) => {
            c.validity = validity;
            ColumnData::I16(c)
        }
        ColumnData::I32(mut c) => {
            c.validity = validity;
            ColumnData::I32(c)
        }
        ColumnData::I64(mut c) => {
            c.validity = validity;
            ColumnData::I64(c)
        }
        ColumnData::F32(mut c) => {
            c.validity = validity;
            ColumnData::F32(c)
        }
        ColumnData::F64(mut c) => {
            c.validity = validity;
            ColumnData::F64(c)
        }
        ColumnData::Utf8(mut c) => {
            c.validity = validity;
            ColumnData::Utf8(c)
        }
        ColumnData::Binary(mut c) => {
            c.validity = validity;
            ColumnData::Binary(c)
        }
    })
}

/// ROUND/TRUNCATE of an integer to `digits` (only negative digits change it).
fn round_int(value: i64, digits: i64, round: bool) -> Result<i64> {
    if digits >= 0 {
        return Ok(value);
    }
    if digits < -18 {
        return Ok(0);
    }
    let scale = 10i64.pow((-digits) as u32);
    let truncated = value / scale * scale;
    if !round {
        return Ok(truncated);
    }
    let remainder = value - truncated;
    let adjust = if remainder.abs() * 2 >= scale {
        scale * remainder.signum()
    } else {
        0
    };
    truncated.checked_add(adjust).ok_or_else(|| {
        KernelError::Overflow(format!(
            "ROUND({value}, {digits}) is out of the BIGINT range"
        ))
    })
}

/// ABS, SIGN, FLOOR, CEIL: integers stay integers (MySQL), doubles stay doubles.
fn integer_preserving(func: Func, arg: &ColumnData, data_type: DataType) -> Result<ColumnData> {
    if data_type.is_integer() {
        let v = i64_values(arg)?;
        let values = match func {
            Func::Abs => v
                .iter()
                .map(|&x| {
                    x.checked_abs()
                        .ok_or_else(|| KernelError::Overflow(format!("ABS({x})")))
                })
                .collect::<Result<Vec<i64>>>()?,
            Func::Sign => v.iter().map(|&x| x.signum()).collect(),
            _ => v.to_vec(),
        };
        return Ok(ColumnData::I64(PrimitiveColumn {
            values,
            validity: arg.validity().cloned(),
        }));
    }
    Ok(match func {
        Func::Abs => unary(arg, f64::abs, always),
        Func::Sign => unary(
            arg,
            |v| {
                if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            },
            always,
        ),
        Func::Floor => unary(arg, f64::floor, always),
        _ => unary(arg, f64::ceil, always),
    })
}

fn greatest_least(func: Func, cols: &[ColumnData], data_type: DataType) -> Result<ColumnData> {
    let converted = cols
        .iter()
        .map(|c| cast_column(c, data_type))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&ColumnData> = converted.iter().collect();
    // MySQL: NULL if any argument is NULL.
    let validity = validity_all(&refs);
    let rows = cols.first().map_or(0, ColumnData::len);
    let mut choice = vec![0u32; rows];
    for (row, slot) in choice.iter_mut().enumerate() {
        let mut best = scalar_at(&converted[0], row);
        for (index, column) in converted.iter().enumerate().skip(1) {
            let candidate = scalar_at(column, row);
            let ordering = crate::sort::compare_scalars(data_type, &candidate, &best);
            let better = if func == Func::Greatest {
                ordering == std::cmp::Ordering::Greater
            } else {
                ordering == std::cmp::Ordering::Less
            };
            if better {
                best = candidate;
                *slot = index as u32;
            }
        }
    }
    with_validity(interleave(&converted, &choice)?, validity)
}

fn hex(arg: &ColumnData) -> Result<ColumnData> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = VarColumn {
        offsets: vec![0],
        data: Vec::new(),
        validity: arg.validity().cloned(),
    };
    for row in 0..arg.len() {
        match arg {
            ColumnData::Utf8(c) | ColumnData::Binary(c) => {
                for &byte in c.value(row) {
                    out.data.push(DIGITS[usize::from(byte >> 4)]);
                    out.data.push(DIGITS[usize::from(byte & 15)]);
                }
            }
            other => {
                // HEX(n) of a number: its 64-bit two's-complement value in hex.
                let value = match scalar_at(other, row) {
                    Scalar::Null => 0,
                    s => s.to_i64().unwrap_or(0),
                };
                out.data
                    .extend_from_slice(format!("{:X}", value as u64).as_bytes());
            }
        }
        out.offsets.push(
            u32::try_from(out.data.len()).map_err(|_| {
                KernelError::Limit("HEX result over 4 GiB in one batch".to_string())
            })?,
        );
    }
    Ok(ColumnData::Utf8(out))
}
