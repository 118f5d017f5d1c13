//! Truth values and MySQL's three-valued logic, a word (64 rows) at a time.

use std::borrow::Cow;

use skyscan_format::{Bitmap, BoolColumn, ColumnData};

use super::eval;
use crate::batch::{Batch, bitmap_from_fn};
use crate::build::f64_values;
use crate::error::Result;
use crate::expr::{BinaryOp, Expr};
use crate::value::{Datum, Scalar};

/// A truth value for every row: a constant (`None` = unknown) or a column.
#[derive(Debug, Clone)]
pub enum BoolDatum<'a> {
    /// The same truth value for every row.
    Scalar(Option<bool>),
    /// One truth value per row.
    Column(Cow<'a, BoolColumn>),
}

impl<'a> BoolDatum<'a> {
    /// The rows that are TRUE (not FALSE, not unknown).
    pub fn true_rows(&self, rows: usize) -> Bitmap {
        match self {
            BoolDatum::Scalar(Some(true)) => Bitmap::new_set(rows),
            BoolDatum::Scalar(_) => Bitmap::new_unset(rows),
            BoolDatum::Column(column) => match &column.validity {
                None => column.values.clone(),
                Some(validity) => crate::batch::bitmap_and(&column.values, validity),
            },
        }
    }

    /// As a datum (a bool column or constant).
    pub fn into_datum(self) -> Datum<'a> {
        match self {
            BoolDatum::Scalar(None) => Datum::Scalar(Scalar::Null),
            BoolDatum::Scalar(Some(b)) => Datum::Scalar(Scalar::Bool(b)),
            BoolDatum::Column(column) => Datum::owned(ColumnData::Bool(column.into_owned())),
        }
    }

    /// `(value words, validity words)` broadcast to `rows` rows.
    fn words(&self, rows: usize) -> (Vec<u64>, Vec<u64>) {
        let word_count = rows.div_ceil(64);
        match self {
            BoolDatum::Scalar(None) => (vec![0; word_count], vec![0; word_count]),
            BoolDatum::Scalar(Some(b)) => (filled_words(rows, *b), filled_words(rows, true)),
            BoolDatum::Column(column) => (
                column.values.words().to_vec(),
                column.validity.as_ref().map_or_else(
                    || Bitmap::new_set(rows).words().to_vec(),
                    |v| v.words().to_vec(),
                ),
            ),
        }
    }
}

/// The words of a bitmap of `rows` bits all equal to `bit`.
fn filled_words(rows: usize, bit: bool) -> Vec<u64> {
    if bit {
        Bitmap::new_set(rows).words().to_vec()
    } else {
        vec![0; rows.div_ceil(64)]
    }
}

/// A datum as truth values: booleans as they are, numbers as `!= 0`
/// (MySQL), strings by their numeric value.
pub fn to_bool<'a>(value: &Datum<'a>, rows: usize) -> BoolDatum<'a> {
    match value {
        Datum::Scalar(scalar) => BoolDatum::Scalar(scalar.to_bool()),
        Datum::Column(Cow::Borrowed(ColumnData::Bool(column))) => {
            BoolDatum::Column(Cow::Borrowed(column))
        }
        Datum::Column(Cow::Owned(ColumnData::Bool(column))) => {
            BoolDatum::Column(Cow::Owned(column.clone()))
        }
        Datum::Column(column) => {
            let values = f64_values(column);
            debug_assert_eq!(values.len(), rows);
            BoolDatum::Column(Cow::Owned(BoolColumn {
                values: bitmap_from_fn(&values, |v| v != 0.0),
                validity: column.validity().cloned(),
            }))
        }
    }
}

/// `NOT x`.
pub fn not(value: BoolDatum<'_>) -> BoolDatum<'_> {
    match value {
        BoolDatum::Scalar(b) => BoolDatum::Scalar(b.map(|b| !b)),
        BoolDatum::Column(column) => {
            let rows = column.values.len();
            let words = column.values.words().iter().map(|w| !w).collect();
            BoolDatum::Column(Cow::Owned(BoolColumn {
                values: Bitmap::from_words(words, rows),
                validity: column.validity.clone(),
            }))
        }
    }
}

/// `AND`, `OR`, `XOR` with MySQL's three-valued logic.
pub fn connective<'a>(
    op: BinaryOp,
    left: &Expr,
    right: &Expr,
    batch: &Batch<'a>,
) -> Result<Datum<'a>> {
    let rows = batch.rows;
    let l = to_bool(&eval(left, batch)?, rows);
    // A constant FALSE (AND) or TRUE (OR) decides without the other side.
    match (op, &l) {
        (BinaryOp::And, BoolDatum::Scalar(Some(false))) => {
            return Ok(Datum::Scalar(Scalar::Bool(false)));
        }
        (BinaryOp::Or, BoolDatum::Scalar(Some(true))) => {
            return Ok(Datum::Scalar(Scalar::Bool(true)));
        }
        _ => {}
    }
    let r = to_bool(&eval(right, batch)?, rows);
    if let (BoolDatum::Scalar(a), BoolDatum::Scalar(b)) = (&l, &r) {
        return Ok(BoolDatum::Scalar(combine_scalar(op, *a, *b)).into_datum());
    }
    let (lv, lvalid) = l.words(rows);
    let (rv, rvalid) = r.words(rows);
    let mut values = Vec::with_capacity(lv.len());
    let mut validity = Vec::with_capacity(lv.len());
    for index in 0..lv.len() {
        let (a, av, b, bv) = (lv[index], lvalid[index], rv[index], rvalid[index]);
        let (a_true, a_false) = (a & av, !a & av);
        let (b_true, b_false) = (b & bv, !b & bv);
        let (t, valid) = match op {
            BinaryOp::And => {
                let t = a_true & b_true;
                (t, t | a_false | b_false)
            }
            BinaryOp::Or => {
                let t = a_true | b_true;
                (t, t | (a_false & b_false))
            }
            _ => {
                let valid = av & bv;
                ((a ^ b) & valid, valid)
            }
        };
        values.push(t);
        validity.push(valid);
    }
    let validity = Bitmap::from_words(validity, rows);
    let all_valid = validity.count_ones() == rows;
    Ok(Datum::owned(ColumnData::Bool(BoolColumn {
        values: Bitmap::from_words(values, rows),
        validity: (!all_valid).then_some(validity),
    })))
}

fn combine_scalar(op: BinaryOp, a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match op {
        BinaryOp::And => match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        BinaryOp::Or => match (a, b) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        _ => match (a, b) {
            (Some(x), Some(y)) => Some(x ^ y),
            _ => None,
        },
    }
}
