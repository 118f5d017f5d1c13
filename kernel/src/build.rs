//! Building columns: constants repeated, rows appended from other columns,
//! and conversions between types (MySQL's implicit casts).

use std::borrow::Cow;

use skyscan_format::{Bitmap, BoolColumn, ColumnData, ColumnType, PrimitiveColumn, VarColumn};

use crate::error::{KernelError, Result};
use crate::value::{DataType, Scalar, float_to_i64, parse_number_prefix};

/// A column of `rows` copies of `scalar`, stored as `data_type`.
pub fn repeat_scalar(scalar: &Scalar, data_type: DataType, rows: usize) -> ColumnData {
    let validity = scalar.is_null().then(|| Bitmap::new_unset(rows));
    match data_type.column_type() {
        ColumnType::Bool => {
            let bit = scalar.to_bool().unwrap_or(false);
            ColumnData::Bool(BoolColumn {
                values: if bit {
                    Bitmap::new_set(rows)
                } else {
                    Bitmap::new_unset(rows)
                },
                validity,
            })
        }
        ColumnType::I8 => prim(
            scalar.to_i64().unwrap_or(0) as i8,
            rows,
            validity,
            ColumnData::I8,
        ),
        ColumnType::I16 => prim(
            scalar.to_i64().unwrap_or(0) as i16,
            rows,
            validity,
            ColumnData::I16,
        ),
        ColumnType::I32 => prim(
            scalar.to_i64().unwrap_or(0) as i32,
            rows,
            validity,
            ColumnData::I32,
        ),
        ColumnType::I64 => prim(
            scalar.to_i64().unwrap_or(0),
            rows,
            validity,
            ColumnData::I64,
        ),
        ColumnType::F32 => prim(
            scalar.to_f64().unwrap_or(0.0) as f32,
            rows,
            validity,
            ColumnData::F32,
        ),
        ColumnType::F64 => prim(
            scalar.to_f64().unwrap_or(0.0),
            rows,
            validity,
            ColumnData::F64,
        ),
        ColumnType::Utf8 | ColumnType::Binary => {
            let bytes = scalar_text(scalar);
            let mut column = VarColumn {
                offsets: Vec::with_capacity(rows + 1),
                data: Vec::with_capacity(bytes.len() * rows),
                validity,
            };
            column.offsets.push(0);
            for _ in 0..rows {
                column.data.extend_from_slice(&bytes);
                column.offsets.push(column.data.len() as u32);
            }
            if data_type.column_type() == ColumnType::Utf8 {
                ColumnData::Utf8(column)
            } else {
                ColumnData::Binary(column)
            }
        }
    }
}

fn prim<T: Copy>(
    value: T,
    rows: usize,
    validity: Option<Bitmap>,
    wrap: fn(PrimitiveColumn<T>) -> ColumnData,
) -> ColumnData {
    wrap(PrimitiveColumn {
        values: vec![value; rows],
        validity,
    })
}

/// The text form of a scalar (what `CONCAT` or a cast to a string sees).
pub fn scalar_text(scalar: &Scalar) -> Vec<u8> {
    match scalar {
        Scalar::Null => Vec::new(),
        Scalar::Bool(b) => {
            if *b {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        }
        Scalar::Int(v) => v.to_string().into_bytes(),
        Scalar::Float(v) => format_double(*v).into_bytes(),
        Scalar::Utf8(s) => s.as_bytes().to_vec(),
        Scalar::Binary(b) => b.clone(),
    }
}

/// A double as MySQL prints it in a string context: the shortest text that
/// reads back to the same value, without a trailing `.0`.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let text = format!("{value}");
    if let Some(stripped) = text.strip_suffix(".0") {
        stripped.to_string()
    } else {
        text
    }
}

/// The scalar at row `row` of `column` (`Scalar::Null` when null).
pub fn scalar_at(column: &ColumnData, row: usize) -> Scalar {
    if !column.is_valid(row) {
        return Scalar::Null;
    }
    match column {
        ColumnData::Bool(c) => Scalar::Bool(c.values.get(row)),
        ColumnData::I8(c) => Scalar::Int(i64::from(c.values[row])),
        ColumnData::I16(c) => Scalar::Int(i64::from(c.values[row])),
        ColumnData::I32(c) => Scalar::Int(i64::from(c.values[row])),
        ColumnData::I64(c) => Scalar::Int(c.values[row]),
        ColumnData::F32(c) => Scalar::Float(f64::from(c.values[row])),
        ColumnData::F64(c) => Scalar::Float(c.values[row]),
        ColumnData::Utf8(c) => Scalar::Utf8(String::from_utf8_lossy(c.value(row)).into_owned()),
        ColumnData::Binary(c) => Scalar::Binary(c.value(row).to_vec()),
    }
}

/// The values of a numeric (or bool, or string) column as doubles,
/// borrowed when the column is f64 already. Null slots hold unspecified
/// values.
pub fn f64_values(column: &ColumnData) -> Cow<'_, [f64]> {
    match column {
        ColumnData::F64(c) => Cow::Borrowed(&c.values),
        ColumnData::F32(c) => Cow::Owned(c.values.iter().map(|&v| f64::from(v)).collect()),
        ColumnData::I8(c) => Cow::Owned(c.values.iter().map(|&v| f64::from(v)).collect()),
        ColumnData::I16(c) => Cow::Owned(c.values.iter().map(|&v| f64::from(v)).collect()),
        ColumnData::I32(c) => Cow::Owned(c.values.iter().map(|&v| f64::from(v)).collect()),
        ColumnData::I64(c) => Cow::Owned(c.values.iter().map(|&v| v as f64).collect()),
        ColumnData::Bool(c) => {
            Cow::Owned(c.values.iter().map(|b| f64::from(u8::from(b))).collect())
        }
        ColumnData::Utf8(c) | ColumnData::Binary(c) => Cow::Owned(
            (0..c.len())
                .map(|row| parse_number_prefix(c.value(row)))
                .collect(),
        ),
    }
}

/// The values of an integer (or bool) column as i64, borrowed when the
/// column is i64 already. Floats and strings are rounded to the nearest
/// integer; a value outside the i64 range is an error.
pub fn i64_values(column: &ColumnData) -> Result<Cow<'_, [i64]>> {
    Ok(match column {
        ColumnData::I64(c) => Cow::Borrowed(&c.values),
        ColumnData::I8(c) => Cow::Owned(c.values.iter().map(|&v| i64::from(v)).collect()),
        ColumnData::I16(c) => Cow::Owned(c.values.iter().map(|&v| i64::from(v)).collect()),
        ColumnData::I32(c) => Cow::Owned(c.values.iter().map(|&v| i64::from(v)).collect()),
        ColumnData::Bool(c) => Cow::Owned(c.values.iter().map(i64::from).collect()),
        ColumnData::F32(_) | ColumnData::F64(_) | ColumnData::Utf8(_) | ColumnData::Binary(_) => {
            let floats = f64_values(column);
            let validity = column.validity();
            let mut out = Vec::with_capacity(floats.len());
            for (row, &value) in floats.iter().enumerate() {
                if validity.is_some_and(|v| !v.get(row)) {
                    out.push(0);
                    continue;
                }
                out.push(float_to_i64(value).ok_or_else(|| {
                    KernelError::Overflow(format!("value {value} is out of the BIGINT range"))
                })?);
            }
            Cow::Owned(out)
        }
    })
}

/// Converts `column` to `to` (MySQL's implicit and explicit casts).
pub fn cast_column(column: &ColumnData, to: DataType) -> Result<ColumnData> {
    let from = DataType::of_column(column.column_type());
    if from == to || (to == DataType::Null) {
        return Ok(column.clone());
    }
    let validity = column.validity().cloned();
    Ok(match to {
        DataType::Null | DataType::I64 => ColumnData::I64(PrimitiveColumn {
            values: i64_values(column)?.into_owned(),
            validity,
        }),
        DataType::I8 | DataType::I16 | DataType::I32 => {
            let wide = cast_column(column, DataType::I64)?;
            narrow_integers(&wide, to)?
        }
        DataType::F64 => ColumnData::F64(PrimitiveColumn {
            values: f64_values(column).into_owned(),
            validity,
        }),
        DataType::F32 => ColumnData::F32(PrimitiveColumn {
            values: f64_values(column).iter().map(|&v| v as f32).collect(),
            validity,
        }),
        DataType::Bool => {
            let floats = f64_values(column);
            let bits: Vec<bool> = floats.iter().map(|&v| v != 0.0).collect();
            ColumnData::Bool(BoolColumn {
                values: Bitmap::from_bools(&bits),
                validity,
            })
        }
        DataType::Utf8 | DataType::Binary => {
            let mut out = VarColumn {
                offsets: Vec::with_capacity(column.len() + 1),
                data: Vec::new(),
                validity,
            };
            out.offsets.push(0);
            for row in 0..column.len() {
                let text = match column {
                    ColumnData::Utf8(c) | ColumnData::Binary(c) => Cow::Borrowed(c.value(row)),
                    other => Cow::Owned(scalar_text(&scalar_at(other, row))),
                };
                out.data.extend_from_slice(&text);
                let end = u32::try_from(out.data.len()).map_err(|_| {
                    KernelError::Limit("a string column of one batch over 4 GiB".to_string())
                })?;
                out.offsets.push(end);
            }
            if to == DataType::Utf8 {
                if std::str::from_utf8(&out.data).is_err() {
                    // Binary bytes that are not UTF-8 become text lossily.
                    return Ok(ColumnData::Utf8(lossy_utf8(&out)));
                }
                ColumnData::Utf8(out)
            } else {
                ColumnData::Binary(out)
            }
        }
    })
}

fn lossy_utf8(column: &VarColumn) -> VarColumn {
    let mut out = VarColumn {
        offsets: vec![0],
        data: Vec::with_capacity(column.data.len()),
        validity: column.validity.clone(),
    };
    for row in 0..column.len() {
        out.data
            .extend_from_slice(String::from_utf8_lossy(column.value(row)).as_bytes());
        out.offsets.push(out.data.len() as u32);
    }
    out
}

fn narrow_integers(wide: &ColumnData, to: DataType) -> Result<ColumnData> {
    let ColumnData::I64(c) = wide else {
        return Err(KernelError::Internal(
            "narrow_integers needs i64".to_string(),
        ));
    };
    let check = |v: i64, min: i64, max: i64| {
        if v < min || v > max {
            Err(KernelError::Overflow(format!(
                "value {v} is out of the {} range",
                to.name()
            )))
        } else {
            Ok(v)
        }
    };
    let valid = |row: usize| c.validity.as_ref().is_none_or(|v| v.get(row));
    Ok(match to {
        DataType::I8 => ColumnData::I8(PrimitiveColumn {
            values: c
                .values
                .iter()
                .enumerate()
                .map(|(row, &v)| {
                    if valid(row) {
                        check(v, -128, 127).map(|v| v as i8)
                    } else {
                        Ok(0)
                    }
                })
                .collect::<Result<_>>()?,
            validity: c.validity.clone(),
        }),
        DataType::I16 => ColumnData::I16(PrimitiveColumn {
            values: c
                .values
                .iter()
                .enumerate()
                .map(|(row, &v)| {
                    if valid(row) {
                        check(v, -32768, 32767).map(|v| v as i16)
                    } else {
                        Ok(0)
                    }
                })
                .collect::<Result<_>>()?,
            validity: c.validity.clone(),
        }),
        _ => ColumnData::I32(PrimitiveColumn {
            values: c
                .values
                .iter()
                .enumerate()
                .map(|(row, &v)| {
                    if valid(row) {
                        check(v, i64::from(i32::MIN), i64::from(i32::MAX)).map(|v| v as i32)
                    } else {
                        Ok(0)
                    }
                })
                .collect::<Result<_>>()?,
            validity: c.validity.clone(),
        }),
    })
}

/// Appends rows of `src` (all, or those at `selection`) to `dst` of the same type.
pub fn append_rows(
    dst: &mut ColumnData,
    src: &ColumnData,
    selection: Option<&[u32]>,
) -> Result<()> {
    let dst_len = dst.len();
    // Validity first: it only depends on the rows.
    let src_valid = |row: usize| src.validity().is_none_or(|v| v.get(row));
    let needs_validity = dst.validity().is_some() || src.validity().is_some();
    let mut validity = if needs_validity {
        let mut bits = take_validity(dst).unwrap_or_else(|| Bitmap::new_set(dst_len));
        match selection {
            Some(rows) => rows
                .iter()
                .for_each(|&row| bits.push(src_valid(row as usize))),
            None => (0..src.len()).for_each(|row| bits.push(src_valid(row))),
        }
        Some(bits)
    } else {
        None
    };
    macro_rules! prim {
        ($d:expr, $s:expr) => {{
            match selection {
                Some(rows) => $d
                    .values
                    .extend(rows.iter().map(|&row| $s.values[row as usize])),
                None => $d.values.extend_from_slice(&$s.values),
            }
            $d.validity = validity.take();
        }};
    }
    match (dst, src) {
        (ColumnData::Bool(d), ColumnData::Bool(s)) => {
            match selection {
                Some(rows) => rows
                    .iter()
                    .for_each(|&row| d.values.push(s.values.get(row as usize))),
                None => s.values.iter().for_each(|bit| d.values.push(bit)),
            }
            d.validity = validity.take();
        }
        (ColumnData::I8(d), ColumnData::I8(s)) => prim!(d, s),
        (ColumnData::I16(d), ColumnData::I16(s)) => prim!(d, s),
        (ColumnData::I32(d), ColumnData::I32(s)) => prim!(d, s),
        (ColumnData::I64(d), ColumnData::I64(s)) => prim!(d, s),
        (ColumnData::F32(d), ColumnData::F32(s)) => prim!(d, s),
        (ColumnData::F64(d), ColumnData::F64(s)) => prim!(d, s),
        (ColumnData::Utf8(d), ColumnData::Utf8(s))
        | (ColumnData::Binary(d), ColumnData::Binary(s)) => {
            let mut push = |row: usize| -> Result<()> {
                d.data.extend_from_slice(s.value(row));
                let end = u32::try_from(d.data.len()).map_err(|_| {
                    KernelError::Limit("a string column over 4 GiB in one result batch".to_string())
                })?;
                d.offsets.push(end);
                Ok(())
            };
            match selection {
                Some(rows) => {
                    for &row in rows {
                        push(row as usize)?;
                    }
                }
                None => {
                    for row in 0..s.len() {
                        push(row)?;
                    }
                }
            }
            d.validity = validity.take();
        }
        (d, s) => {
            return Err(KernelError::Internal(format!(
                "cannot append {:?} rows to a {:?} column",
                s.column_type(),
                d.column_type()
            )));
        }
    }
    Ok(())
}

/// Moves the validity bitmap out of `column` (leaving `None`).
fn take_validity(column: &mut ColumnData) -> Option<Bitmap> {
    match column {
        ColumnData::Bool(c) => c.validity.take(),
        ColumnData::I8(c) => c.validity.take(),
        ColumnData::I16(c) => c.validity.take(),
        ColumnData::I32(c) => c.validity.take(),
        ColumnData::I64(c) => c.validity.take(),
        ColumnData::F32(c) => c.validity.take(),
        ColumnData::F64(c) => c.validity.take(),
        ColumnData::Utf8(c) | ColumnData::Binary(c) => c.validity.take(),
    }
}

/// Row `row` of the result is row `row` of `sources[choice[row]]` (all
/// sources of one type and of `choice.len()` rows): how `CASE` assembles
/// its branches.
pub fn interleave(sources: &[ColumnData], choice: &[u32]) -> Result<ColumnData> {
    let Some(first) = sources.first() else {
        return Err(KernelError::Internal(
            "interleave of no columns".to_string(),
        ));
    };
    let rows = choice.len();
    if sources
        .iter()
        .any(|s| s.len() != rows || s.column_type() != first.column_type())
        || choice.iter().any(|&c| c as usize >= sources.len())
    {
        return Err(KernelError::Internal(
            "interleave of unequal columns".to_string(),
        ));
    }
    let any_nulls = sources.iter().any(|s| s.validity().is_some());
    let validity = any_nulls.then(|| {
        let bits: Vec<bool> = choice
            .iter()
            .enumerate()
            .map(|(row, &c)| sources[c as usize].is_valid(row))
            .collect();
        Bitmap::from_bools(&bits)
    });
    macro_rules! prim {
        ($variant:ident) => {{
            let values = choice
                .iter()
                .enumerate()
                .map(|(row, &c)| match &sources[c as usize] {
                    ColumnData::$variant(s) => s.values[row],
                    _ => Default::default(),
                })
                .collect();
            ColumnData::$variant(PrimitiveColumn { values, validity })
        }};
    }
    Ok(match first {
        ColumnData::Bool(_) => {
            let bits: Vec<bool> = choice
                .iter()
                .enumerate()
                .map(|(row, &c)| match &sources[c as usize] {
                    ColumnData::Bool(s) => s.values.get(row),
                    _ => false,
                })
                .collect();
            ColumnData::Bool(BoolColumn {
                values: Bitmap::from_bools(&bits),
                validity,
            })
        }
        ColumnData::I8(_) => prim!(I8),
        ColumnData::I16(_) => prim!(I16),
        ColumnData::I32(_) => prim!(I32),
        ColumnData::I64(_) => prim!(I64),
        ColumnData::F32(_) => prim!(F32),
        ColumnData::F64(_) => prim!(F64),
        ColumnData::Utf8(_) | ColumnData::Binary(_) => {
            let mut out = VarColumn {
                offsets: Vec::with_capacity(rows + 1),
                data: Vec::new(),
                validity,
            };
            out.offsets.push(0);
            for (row, &c) in choice.iter().enumerate() {
                if let ColumnData::Utf8(s) | ColumnData::Binary(s) = &sources[c as usize] {
                    out.data.extend_from_slice(s.value(row));
                }
                let end = u32::try_from(out.data.len()).map_err(|_| {
                    KernelError::Limit("a string column over 4 GiB in one batch".to_string())
                })?;
                out.offsets.push(end);
            }
            if matches!(first, ColumnData::Utf8(_)) {
                ColumnData::Utf8(out)
            } else {
                ColumnData::Binary(out)
            }
        }
    })
}

/// Appends one scalar (converted to the column's type) to `dst`.
pub fn push_scalar(dst: &mut ColumnData, scalar: &Scalar) -> Result<()> {
    let data_type = DataType::of_column(dst.column_type());
    let one = repeat_scalar(scalar, data_type, 1);
    append_rows(dst, &one, None)
}
