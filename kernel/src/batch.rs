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

/// Packs 8 bytes that are each 0 or 1 into the 8 low bits of a byte (byte
/// `i` → bit `i`): one multiply gathers the low bit of every byte into the
/// top byte.
#[inline(always)]
fn pack8(bytes: [u8; 8]) -> u64 {
    (u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Packs 64 truth bytes (0 or 1) into a word.
#[inline(always)]
fn pack64(bytes: &[u8; 64]) -> u64 {
    let mut word = 0u64;
    for (index, eight) in bytes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(eight);
        word |= pack8(b) << (8 * index);
    }
    word
}

/// Builds a bitmap of `values.len()` bits from a predicate, 64 rows at a
/// time: the predicate fills 64 bytes (a loop the compiler turns into vector
/// compares), then a multiply per 8 bytes packs them.
#[inline]
pub fn bitmap_from_fn<T: Copy>(values: &[T], predicate: impl Fn(T) -> bool) -> Bitmap {
    let mut words = Vec::with_capacity(values.len().div_ceil(64));
    let mut chunks = values.chunks_exact(64);
    let mut bytes = [0u8; 64];
    for chunk in &mut chunks {
        for (byte, &value) in bytes.iter_mut().zip(chunk) {
            *byte = u8::from(predicate(value));
        }
        words.push(pack64(&bytes));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = 0u64;
        for (bit, &value) in rest.iter().enumerate() {
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
    let mut bytes = [0u8; 64];
    let mut l_chunks = left.chunks_exact(64);
    let mut r_chunks = right.chunks_exact(64);
    for (l, r) in (&mut l_chunks).zip(&mut r_chunks) {
        for ((byte, &a), &b) in bytes.iter_mut().zip(l).zip(r) {
            *byte = u8::from(predicate(a, b));
        }
        words.push(pack64(&bytes));
    }
    let (l, r) = (l_chunks.remainder(), r_chunks.remainder());
    if !l.is_empty() {
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
        let ints: Vec<i32> = (0..200).collect();
        let from_fn2 = bitmap_from_fn2(&ints, &ints, |a, b| a == b && (a % 3 == 0 || a == 199));
        assert_eq!(from_fn2, bitmap);
        for len in [0usize, 1, 63, 64, 65, 128, 130] {
            let bits: Vec<bool> = (0..len).map(|i| (i * 7) % 5 < 2).collect();
            let packed = bitmap_from_fn(&bits, |b| b);
            assert_eq!(packed, Bitmap::from_bools(&bits), "len {len}");
        }
    }
}
