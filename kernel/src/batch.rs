//! A batch: the columns one evaluation step sees, all of the same length.

use skyscan_format::{Bitmap, ColumnData};

use crate::error::{KernelError, Result};

/// The input of expression evaluation: columns by slot (a slot no
/// expression reads may be `None`), all with `rows` rows, and the chunk and
/// sub-chunk they come from (the `chunkId` / `subChunkId` pseudo-columns).
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Columns by slot.
    pub columns: &'a [Option<ColumnData>],
    /// Number of rows.
    pub rows: usize,
    /// Chunk of every row (0 outside partitioned tables).
    pub chunk_id: i32,
    /// Sub-chunk of every row (0 when not known).
    pub sub_chunk_id: i32,
}

impl<'a> Batch<'a> {
    /// A batch over `columns` with `rows` rows.
    pub fn new(columns: &'a [Option<ColumnData>], rows: usize) -> Batch<'a> {
        Batch {
            columns,
            rows,
            chunk_id: 0,
            sub_chunk_id: 0,
        }
    }

    /// The column at `slot`, or an internal error when the plan did not
    /// provide it.
    pub fn column(&self, slot: usize) -> Result<&'a ColumnData> {
        let column = self
            .columns
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or_else(|| KernelError::Internal(format!("batch has no column in slot {slot}")))?;
        if column.len() != self.rows {
            return Err(KernelError::Internal(format!(
                "slot {slot} has {} rows, the batch {}",
                column.len(),
                self.rows
            )));
        }
        Ok(column)
    }
}

/// The indices of the set bits of `bitmap` (a selection vector).
pub fn selection_of(bitmap: &Bitmap) -> Vec<u32> {
    let mut selection = Vec::with_capacity(bitmap.count_ones());
    for (word_index, &word) in bitmap.words().iter().enumerate() {
        let mut bits = word;
        let base = (word_index * 64) as u32;
        while bits != 0 {
            selection.push(base + bits.trailing_zeros());
            bits &= bits - 1;
        }
    }
    selection
}

/// `a AND b` word by word (same lengths).
pub fn bitmap_and(a: &Bitmap, b: &Bitmap) -> Bitmap {
    debug_assert_eq!(a.len(), b.len());
    let words = a
        .words()
        .iter()
        .zip(b.words())
        .map(|(x, y)| x & y)
        .collect();
    Bitmap::from_words(words, a.len())
}

/// The AND of two optional validity bitmaps (`None` = all valid).
pub fn and_validity(a: Option<&Bitmap>, b: Option<&Bitmap>) -> Option<Bitmap> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) => Some(bitmap_and(x, y)),
    }
}

/// Builds a bitmap of `values.len()` bits from a predicate, 64 rows at a
/// time (the shape the compiler turns into vector compares and mask moves).
#[inline]
pub fn bitmap_from_fn<T: Copy>(values: &[T], predicate: impl Fn(T) -> bool) -> Bitmap {
    let mut words = Vec::with_capacity(values.len().div_ceil(64));
    for chunk in values.chunks(64) {
        let mut word = 0u64;
        for (bit, &value) in chunk.iter().enumerate() {
            word |= u64::from(predicate(value)) << bit;
        }
        words.push(word);
    }
    Bitmap::from_words(words, values.len())
}

/// Builds a bitmap from a predicate on two equally long slices.
#[inline]
pub fn bitmap_from_fn2<A: Copy, B: Copy>(
    left: &[A],
    right: &[B],
    predicate: impl Fn(A, B) -> bool,
) -> Bitmap {
    debug_assert_eq!(left.len(), right.len());
    let mut words = Vec::with_capacity(left.len().div_ceil(64));
    for (l, r) in left.chunks(64).zip(right.chunks(64)) {
        let mut word = 0u64;
        for (bit, (&a, &b)) in l.iter().zip(r).enumerate() {
            word |= u64::from(predicate(a, b)) << bit;
        }
        words.push(word);
    }
    Bitmap::from_words(words, left.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_lists_set_bits() {
        let bits: Vec<bool> = (0..200).map(|i| i % 3 == 0 || i == 199).collect();
        let bitmap = Bitmap::from_bools(&bits);
        let expected: Vec<u32> = (0..200).filter(|i| bits[*i as usize]).collect();
        assert_eq!(selection_of(&bitmap), expected);
        let from_fn = bitmap_from_fn(&(0..200).collect::<Vec<i32>>(), |i| i % 3 == 0 || i == 199);
        assert_eq!(from_fn, bitmap);
    }
}
