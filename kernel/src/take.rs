//! Gather: build a column from the rows of another at given indices.
//!
//! Used by the partitioner (rows of one sub-chunk out of a whole input
//! batch) and, later, by operators that materialise selected rows.

use skyscan_format::{Bitmap, BoolColumn, ColumnData, PrimitiveColumn, VarColumn};

/// An index into the source column is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOutOfRange {
    /// The offending index.
    pub index: u32,
    /// The source column's length.
    pub len: usize,
}

impl std::fmt::Display for IndexOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row index {} out of range for a column of {} rows",
            self.index, self.len
        )
    }
}

impl std::error::Error for IndexOutOfRange {}

/// The rows of `column` at `indices`, in that order (an index may repeat).
pub fn take(column: &ColumnData, indices: &[u32]) -> Result<ColumnData, IndexOutOfRange> {
    let len = column.len();
    if let Some(&index) = indices.iter().find(|&&index| index as usize >= len) {
        return Err(IndexOutOfRange { index, len });
    }
    // From here every index is < len: the gathers below cannot go out of bounds.
    Ok(match column {
        ColumnData::Bool(c) => ColumnData::Bool(BoolColumn {
            values: take_bitmap(&c.values, indices),
            validity: c.validity.as_ref().map(|v| take_bitmap(v, indices)),
        }),
        ColumnData::I8(c) => ColumnData::I8(take_primitive(c, indices)),
        ColumnData::I16(c) => ColumnData::I16(take_primitive(c, indices)),
        ColumnData::I32(c) => ColumnData::I32(take_primitive(c, indices)),
        ColumnData::I64(c) => ColumnData::I64(take_primitive(c, indices)),
        ColumnData::F32(c) => ColumnData::F32(take_primitive(c, indices)),
        ColumnData::F64(c) => ColumnData::F64(take_primitive(c, indices)),
        ColumnData::Utf8(c) => ColumnData::Utf8(take_var(c, indices)),
        ColumnData::Binary(c) => ColumnData::Binary(take_var(c, indices)),
    })
}

fn take_primitive<T: Copy + Default>(
    column: &PrimitiveColumn<T>,
    indices: &[u32],
) -> PrimitiveColumn<T> {
    PrimitiveColumn {
        values: gather(&column.values, indices),
        validity: column.validity.as_ref().map(|v| take_bitmap(v, indices)),
    }
}

/// `out[k] = values[indices[k]]`; the hot loop of `take`.
pub fn gather<T: Copy>(values: &[T], indices: &[u32]) -> Vec<T> {
    indices
        .iter()
        .map(|&index| values[index as usize])
        .collect()
}

fn take_bitmap(bitmap: &Bitmap, indices: &[u32]) -> Bitmap {
    let mut out = Bitmap::new_unset(indices.len());
    for (position, &index) in indices.iter().enumerate() {
        if bitmap.get(index as usize) {
            out.set(position, true);
        }
    }
    out
}

fn take_var(column: &VarColumn, indices: &[u32]) -> VarColumn {
    let bytes: usize = indices
        .iter()
        .map(|&index| column.value(index as usize).len())
        .sum();
    let mut out = VarColumn {
        offsets: Vec::with_capacity(indices.len() + 1),
        data: Vec::with_capacity(bytes),
        validity: column.validity.as_ref().map(|v| take_bitmap(v, indices)),
    };
    out.offsets.push(0);
    for &index in indices {
        out.data.extend_from_slice(column.value(index as usize));
        out.offsets.push(out.data.len() as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_every_type_with_nulls() {
        let ints = ColumnData::I32(PrimitiveColumn::from_options(&[Some(1), None, Some(3)]));
        let taken = take(&ints, &[2, 0, 1, 2]).unwrap();
        assert_eq!(
            taken,
            ColumnData::I32(PrimitiveColumn::from_options(&[
                Some(3),
                Some(1),
                None,
                Some(3)
            ]))
        );

        let strings = ColumnData::Utf8(VarColumn::from_options(&[
            Some("ab"),
            None,
            Some(""),
            Some("xyz"),
        ]));
        let taken = take(&strings, &[3, 1, 2]).unwrap();
        assert_eq!(
            taken,
            ColumnData::Utf8(VarColumn::from_options(&[Some("xyz"), None, Some("")]))
        );

        let bools = ColumnData::Bool(BoolColumn::from_options(&[Some(true), Some(false), None]));
        let taken = take(&bools, &[2, 0]).unwrap();
        assert_eq!(
            taken,
            ColumnData::Bool(BoolColumn::from_options(&[None, Some(true)]))
        );
    }

    #[test]
    fn out_of_range_is_an_error() {
        let floats = ColumnData::F64(PrimitiveColumn::new(vec![1.0, 2.0]));
        assert_eq!(
            take(&floats, &[0, 2]),
            Err(IndexOutOfRange { index: 2, len: 2 })
        );
        assert_eq!(take(&floats, &[]).unwrap().len(), 0);
    }
}
