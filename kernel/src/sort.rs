//! Ordering rows: `ORDER BY` (full sort and top-k for `LIMIT`), and the
//! value order used by `MIN`/`MAX`/`GREATEST`.
//!
//! MySQL's order: NULL sorts before every value (first in `ASC`, last in
//! `DESC`); text compares case-insensitively; NaN (which MySQL cannot
//! store) sorts after every number.

use std::borrow::Cow;
use std::cmp::Ordering;

use skyscan_format::{Bitmap, ColumnData, VarColumn};

use crate::build::{f64_values, i64_values};
use crate::error::Result;
use crate::value::{DataType, Scalar, compare_strings};

/// Compares two scalars of one type (NULL first).
pub fn compare_scalars(data_type: DataType, a: &Scalar, b: &Scalar) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if data_type.is_string() {
        return compare_strings(
            data_type,
            a.as_bytes().unwrap_or_default(),
            b.as_bytes().unwrap_or_default(),
        );
    }
    if data_type.is_integer()
        && let (Some(x), Some(y)) = (a.to_i64(), b.to_i64())
        && matches!(
            (a, b),
            (
                Scalar::Int(_) | Scalar::Bool(_),
                Scalar::Int(_) | Scalar::Bool(_)
            )
        )
    {
        return x.cmp(&y);
    }
    compare_f64(
        a.to_f64().unwrap_or(f64::NAN),
        b.to_f64().unwrap_or(f64::NAN),
    )
}

/// Total order on doubles for sorting: numeric order, -0.0 = 0.0, NaN last.
#[inline]
pub fn compare_f64(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(ordering) => ordering,
        None => a.is_nan().cmp(&b.is_nan()),
    }
}

/// One sort key column, prepared for fast row comparisons.
enum KeyValues<'a> {
    Int(Cow<'a, [i64]>),
    Float(Cow<'a, [f64]>),
    Text(&'a VarColumn),
    Bytes(&'a VarColumn),
}

/// A sort key: a column and its direction.
pub struct SortKey<'a> {
    values: KeyValues<'a>,
    validity: Option<&'a Bitmap>,
    descending: bool,
}

impl<'a> SortKey<'a> {
    /// A key over `column`, ascending unless `descending`.
    pub fn new(column: &'a ColumnData, descending: bool) -> Result<SortKey<'a>> {
        let values = match column {
            ColumnData::Utf8(c) => KeyValues::Text(c),
            ColumnData::Binary(c) => KeyValues::Bytes(c),
            ColumnData::F32(_) | ColumnData::F64(_) => KeyValues::Float(f64_values(column)),
            other => KeyValues::Int(i64_values(other)?),
        };
        Ok(SortKey {
            values,
            validity: column.validity(),
            descending,
        })
    }

    /// Compares rows `a` and `b` (row indices of this key's column).
    #[inline]
    pub fn compare(&self, a: usize, b: usize) -> Ordering {
        let ordering = match self.validity.map(|v| (v.get(a), v.get(b))) {
            Some((false, false)) => Ordering::Equal,
            Some((false, true)) => Ordering::Less,
            Some((true, false)) => Ordering::Greater,
            _ => match &self.values {
                KeyValues::Int(v) => v[a].cmp(&v[b]),
                KeyValues::Float(v) => compare_f64(v[a], v[b]),
                KeyValues::Text(c) => compare_strings(DataType::Utf8, c.value(a), c.value(b)),
                KeyValues::Bytes(c) => c.value(a).cmp(c.value(b)),
            },
        };
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }
}

/// Compares two rows under a list of keys.
#[inline]
pub fn compare_rows(keys: &[SortKey<'_>], a: usize, b: usize) -> Ordering {
    for key in keys {
        let ordering = key.compare(a, b);
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// The row order under `keys` of a batch of `rows` rows; with `limit`, only
/// the first `limit` rows of that order (top-k, without sorting the rest).
/// Ties keep their input order (a stable sort), so results are repeatable.
pub fn sorted_indices(keys: &[SortKey<'_>], rows: usize, limit: Option<usize>) -> Vec<u32> {
    let mut indices: Vec<u32> = (0..rows as u32).collect();
    let by_keys = |a: &u32, b: &u32| compare_rows(keys, *a as usize, *b as usize).then(a.cmp(b));
    match limit {
        Some(k) if k < rows => {
            if k == 0 {
                return Vec::new();
            }
            indices.select_nth_unstable_by(k - 1, by_keys);
            indices.truncate(k);
            indices.sort_unstable_by(by_keys);
        }
        _ => {
            // A single integer key without nulls: sort (key, row) pairs.
            if let [key] = keys
                && key.validity.is_none()
                && let KeyValues::Int(values) = &key.values
            {
                let mut pairs: Vec<(i64, u32)> = values
                    .iter()
                    .enumerate()
                    .map(|(row, &v)| (v, row as u32))
                    .collect();
                if key.descending {
                    pairs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                } else {
                    pairs.sort_unstable();
                }
                return pairs.into_iter().map(|(_, row)| row).collect();
            }
            indices.sort_unstable_by(by_keys);
        }
    }
    indices
}

/// [`sorted_indices`] over a subset of the rows: the order of `rows` under
/// `keys` (ties in `rows` order), the first `limit` only when given.
pub fn sorted_subset(keys: &[SortKey<'_>], mut rows: Vec<u32>, limit: Option<usize>) -> Vec<u32> {
    let by_keys = |a: &u32, b: &u32| compare_rows(keys, *a as usize, *b as usize).then(a.cmp(b));
    match limit {
        Some(0) => Vec::new(),
        Some(k) if k < rows.len() => {
            rows.select_nth_unstable_by(k - 1, by_keys);
            rows.truncate(k);
            rows.sort_unstable_by(by_keys);
            rows
        }
        _ => {
            rows.sort_unstable_by(by_keys);
            rows
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyscan_format::PrimitiveColumn;

    #[test]
    fn nulls_first_and_descending_and_top_k() {
        let column = ColumnData::F64(PrimitiveColumn::from_options(&[
            Some(3.0),
            None,
            Some(1.0),
            Some(f64::NAN),
            Some(2.0),
        ]));
        let key = SortKey::new(&column, false).unwrap();
        assert_eq!(sorted_indices(&[key], 5, None), vec![1, 2, 4, 0, 3]);
        let key = SortKey::new(&column, true).unwrap();
        assert_eq!(sorted_indices(&[key], 5, None), vec![3, 0, 4, 2, 1]);
        let key = SortKey::new(&column, false).unwrap();
        assert_eq!(sorted_indices(&[key], 5, Some(2)), vec![1, 2]);
    }

    #[test]
    fn ties_keep_input_order() {
        let ints = ColumnData::I64(PrimitiveColumn::new(vec![2, 1, 2, 1]));
        let key = SortKey::new(&ints, false).unwrap();
        assert_eq!(sorted_indices(&[key], 4, None), vec![1, 3, 0, 2]);
        let key = SortKey::new(&ints, true).unwrap();
        assert_eq!(sorted_indices(&[key], 4, None), vec![0, 2, 1, 3]);
    }
}
