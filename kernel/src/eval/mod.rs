//! Vectorized evaluation of bound expressions over a [`Batch`].
//!
//! Every operator works on whole columns: a node's operands are evaluated
//! to [`Datum`]s (a constant or a column), then one loop per operator and
//! type combination computes the result. NULLs travel as validity bitmaps;
//! truth values as bitmaps, so `AND`/`OR`/`NOT` are word operations with
//! MySQL's three-valued logic.

mod arith;
mod compare;
mod func;
mod logic;
mod sky;

use std::borrow::Cow;

use skyscan_format::{Bitmap, BoolColumn, ColumnData};

use crate::batch::{Batch, bitmap_and};
use crate::build::cast_column;
#[cfg(test)]
use crate::error::KernelError;
use crate::error::Result;
use crate::expr::{BinaryOp, Expr, UnaryOp};
use crate::value::{DataType, Datum, Scalar};

pub use logic::{BoolDatum, to_bool};

/// Evaluates `expr` over `batch`.
pub fn eval<'a>(expr: &Expr, batch: &Batch<'a>) -> Result<Datum<'a>> {
    match expr {
        Expr::Column { slot, .. } => Ok(Datum::Column(Cow::Borrowed(batch.column(*slot)?))),
        Expr::Literal(scalar) => Ok(Datum::Scalar(scalar.clone())),
        Expr::ChunkId => Ok(Datum::Scalar(Scalar::Int(i64::from(batch.chunk_id)))),
        Expr::SubChunkId => Ok(Datum::Scalar(Scalar::Int(i64::from(batch.sub_chunk_id)))),
        Expr::Unary { op, arg } => {
            let value = eval(arg, batch)?;
            match op {
                UnaryOp::Not => Ok(logic::not(to_bool(&value, batch.rows)).into_datum()),
                UnaryOp::Neg => arith::negate(&value, arg.data_type(), batch.rows),
                UnaryOp::BitNot => arith::bit_not(&value, batch.rows),
            }
        }
        Expr::Binary { op, left, right } => {
            if op.is_logical() {
                return logic::connective(*op, left, right, batch);
            }
            if let Some(cone) = cone_filter(*op, left, right, batch)? {
                return Ok(Datum::owned(cone));
            }
            let l = eval(left, batch)?;
            let r = eval(right, batch)?;
            if op.is_comparison() {
                compare::compare(*op, &l, left.data_type(), &r, right.data_type(), batch.rows)
            } else if op.is_bitwise() {
                arith::bitwise(*op, &l, &r, batch.rows)
            } else {
                arith::arithmetic(*op, &l, left.data_type(), &r, right.data_type(), batch.rows)
            }
        }
        Expr::IsNull { arg, negated } => {
            let value = eval(arg, batch)?;
            Ok(is_null(&value, *negated, batch.rows))
        }
        Expr::InList { arg, list, negated } => {
            let value = eval(arg, batch)?;
            compare::in_list(&value, arg.data_type(), list, *negated, batch.rows)
        }
        Expr::Like {
            arg,
            pattern,
            negated,
        } => {
            let value = eval(arg, batch)?;
            compare::like(&value, pattern, *negated, batch.rows)
        }
        Expr::Case {
            operand,
            branches,
            otherwise,
            data_type,
        } => case(
            operand.as_deref(),
            branches,
            otherwise.as_deref(),
            *data_type,
            batch,
        ),
        Expr::Cast { arg, to } => {
            let value = eval(arg, batch)?;
            cast(value, *to)
        }
        Expr::Call {
            func,
            args,
            data_type,
        } => func::call(*func, args, *data_type, batch),
    }
}

/// `scisql_angSep(ra, decl, c1, c2) < r` with constant center and radius
/// (and the mirrored `r > …`): the vectorized cone test instead of a
/// haversine per row.
fn cone_filter(
    op: BinaryOp,
    left: &Expr,
    right: &Expr,
    batch: &Batch<'_>,
) -> Result<Option<ColumnData>> {
    let (call, radius, inclusive) = match (op, left, right) {
        (BinaryOp::Lt, c, Expr::Literal(r)) | (BinaryOp::Gt, Expr::Literal(r), c) => (c, r, false),
        (BinaryOp::LtEq, c, Expr::Literal(r)) | (BinaryOp::GtEq, Expr::Literal(r), c) => {
            (c, r, true)
        }
        _ => return Ok(None),
    };
    let Expr::Call {
        func: crate::expr::Func::AngSep,
        args,
        ..
    } = call
    else {
        return Ok(None);
    };
    let (Some(radius), [lon, lat, Expr::Literal(c1), Expr::Literal(c2)]) =
        (radius.to_f64(), args.as_slice())
    else {
        return Ok(None);
    };
    let (Some(c1), Some(c2)) = (c1.to_f64(), c2.to_f64()) else {
        return Ok(None);
    };
    let (lon, lat) = (eval(lon, batch)?, eval(lat, batch)?);
    sky::ang_sep_cone(&lon, &lat, c1, c2, radius, inclusive, batch.rows)
}

/// Evaluates a predicate: the rows where it is TRUE (not FALSE, not NULL).
pub fn eval_filter(expr: &Expr, batch: &Batch<'_>) -> Result<Bitmap> {
    // Conjunctions short-circuit per batch: once no row is left, stop.
    if let Expr::Binary {
        op: BinaryOp::And,
        left,
        right,
    } = expr
    {
        let left_rows = eval_filter(left, batch)?;
        if left_rows.count_ones() == 0 {
            return Ok(left_rows);
        }
        let right_rows = eval_filter(right, batch)?;
        return Ok(bitmap_and(&left_rows, &right_rows));
    }
    let value = eval(expr, batch)?;
    Ok(to_bool(&value, batch.rows).true_rows(batch.rows))
}

/// Evaluates a constant expression (no column, no pseudo-column).
pub fn eval_constant(expr: &Expr) -> Result<Scalar> {
    let batch = Batch::new(&[], 1);
    match eval(expr, &batch)? {
        Datum::Scalar(scalar) => Ok(scalar),
        Datum::Column(column) => Ok(crate::build::scalar_at(&column, 0)),
    }
}

fn is_null<'a>(value: &Datum<'_>, negated: bool, rows: usize) -> Datum<'a> {
    match value {
        Datum::Scalar(scalar) => Datum::Scalar(Scalar::Bool(scalar.is_null() != negated)),
        Datum::Column(column) => {
            let values = match column.validity() {
                None => {
                    if negated {
                        Bitmap::new_set(rows)
                    } else {
                        Bitmap::new_unset(rows)
                    }
                }
                Some(validity) => {
                    let words = validity
                        .words()
                        .iter()
                        .map(|&w| if negated { w } else { !w })
                        .collect();
                    Bitmap::from_words(words, rows)
                }
            };
            Datum::owned(ColumnData::Bool(BoolColumn {
                values,
                validity: None,
            }))
        }
    }
}

fn cast<'a>(value: Datum<'a>, to: DataType) -> Result<Datum<'a>> {
    Ok(match value {
        Datum::Scalar(scalar) => {
            let column = crate::build::repeat_scalar(&scalar, scalar.data_type(), 1);
            Datum::Scalar(crate::build::scalar_at(&cast_column(&column, to)?, 0))
        }
        Datum::Column(column) => {
            if DataType::of_column(column.column_type()) == to {
                Datum::Column(column)
            } else {
                Datum::owned(cast_column(&column, to)?)
            }
        }
    })
}

fn case<'a>(
    operand: Option<&Expr>,
    branches: &[(Expr, Expr)],
    otherwise: Option<&Expr>,
    data_type: DataType,
    batch: &Batch<'a>,
) -> Result<Datum<'a>> {
    let rows = batch.rows;
    // For every row, the branch that decides it (branches.len() = ELSE).
    let mut choice = vec![u32::MAX; rows];
    let operand_value = operand
        .map(|o| eval(o, batch).map(|v| (v, o.data_type())))
        .transpose()?;
    for (branch_index, (when, _)) in branches.iter().enumerate() {
        let matched = match &operand_value {
            Some((value, value_type)) => {
                let when_value = eval(when, batch)?;
                let eq = compare::compare(
                    BinaryOp::Eq,
                    value,
                    *value_type,
                    &when_value,
                    when.data_type(),
                    rows,
                )?;
                to_bool(&eq, rows).true_rows(rows)
            }
            None => eval_filter(when, batch)?,
        };
        for (row, slot) in choice.iter_mut().enumerate() {
            if *slot == u32::MAX && matched.get(row) {
                *slot = branch_index as u32;
            }
        }
    }
    let else_index = branches.len() as u32;
    for slot in &mut choice {
        if *slot == u32::MAX {
            *slot = else_index;
        }
    }
    // Evaluate each result once over the whole batch, cast to the result type.
    let mut results: Vec<ColumnData> = Vec::with_capacity(branches.len() + 1);
    for (_, then) in branches {
        results.push(cast_column(
            &eval(then, batch)?.into_column(then.data_type(), rows),
            data_type,
        )?);
    }
    let else_value = match otherwise {
        Some(e) => cast_column(&eval(e, batch)?.into_column(e.data_type(), rows), data_type)?,
        None => crate::build::repeat_scalar(&Scalar::Null, data_type, rows),
    };
    results.push(else_value);
    let out = crate::build::interleave(&results, &choice)?;
    Ok(Datum::owned(out))
}

#[cfg(test)]
mod tests;
