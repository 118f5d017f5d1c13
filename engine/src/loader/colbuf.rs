//! Column buffers of the loader: rows of one chunk accumulated from input
//! batches, spilled to disk and read back by row range, and gathered into
//! the [`ColumnData`] of one row group.
//!
//! Values are typed vectors; validity is one byte per row (1 = present),
//! kept only once a null has been seen, so that a range of rows can be
//! written and read without bit shifting. Booleans are one byte per row for
//! the same reason. Variable-length values keep `u64` end offsets, so one
//! buffer may exceed the 4 GiB of a [`VarColumn`] (a row group never does:
//! the format limits it).

use std::io::Write;

use skyscan_format::{Bitmap, BoolColumn, ColumnData, ColumnType, PrimitiveColumn, VarColumn};

/// The values of a [`ColBuf`].
#[derive(Debug, Clone)]
pub(crate) enum Values {
    /// Booleans, one byte (0/1) per row.
    Bool(Vec<u8>),
    /// i8 values.
    I8(Vec<i8>),
    /// i16 values.
    I16(Vec<i16>),
    /// i32 values.
    I32(Vec<i32>),
    /// i64 values.
    I64(Vec<i64>),
    /// f32 values.
    F32(Vec<f32>),
    /// f64 values.
    F64(Vec<f64>),
    /// Variable-length values: value `k` is `data[ends[k-1]..ends[k]]` (0 before the first).
    Var {
        /// End offset of each value in `data`.
        ends: Vec<u64>,
        /// Concatenated bytes.
        data: Vec<u8>,
    },
}

/// One column of accumulated rows.
#[derive(Debug, Clone)]
pub(crate) struct ColBuf {
    pub(crate) column_type: ColumnType,
    pub(crate) values: Values,
    /// One byte per row, 1 = present; `None` while every row is present.
    pub(crate) valid: Option<Vec<u8>>,
}

/// Applies `$body` to the typed vector of a fixed-width [`Values`] variant,
/// bound as `$v`; `$bool` and `$var` handle the other two.
macro_rules! dispatch {
    ($values:expr, $v:ident => $body:expr, bool $b:ident => $bool:expr, var ($ends:ident, $data:ident) => $var:expr) => {
        match $values {
            Values::I8($v) => $body,
            Values::I16($v) => $body,
            Values::I32($v) => $body,
            Values::I64($v) => $body,
            Values::F32($v) => $body,
            Values::F64($v) => $body,
            Values::Bool($b) => $bool,
            Values::Var {
                ends: $ends,
                data: $data,
            } => $var,
        }
    };
}

/// Reads bit `row` of a bitmap's words.
#[inline]
fn bit(words: &[u64], row: usize) -> bool {
    (words[row / 64] >> (row % 64)) & 1 == 1
}

/// `out` extended with `values[rows[k]]` for every k: the scatter's hot loop.
#[inline]
fn extend_gather<T: Copy>(out: &mut Vec<T>, values: &[T], rows: &[u32]) {
    out.reserve(rows.len());
    out.extend(rows.iter().map(|&row| values[row as usize]));
}

/// A bitmap from one byte per row (1 = set).
fn bitmap_of_bytes(bytes: &[u8]) -> Bitmap {
    let mut words = vec![0u64; bytes.len().div_ceil(64)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(64)) {
        let mut value = 0u64;
        for (shift, &byte) in chunk.iter().enumerate() {
            value |= u64::from(byte & 1) << shift;
        }
        *word = value;
    }
    Bitmap::from_words(words, bytes.len())
}

impl ColBuf {
    /// An empty buffer of `column_type`.
    pub(crate) fn new(column_type: ColumnType) -> ColBuf {
        let values = match column_type {
            ColumnType::Bool => Values::Bool(Vec::new()),
            ColumnType::I8 => Values::I8(Vec::new()),
            ColumnType::I16 => Values::I16(Vec::new()),
            ColumnType::I32 => Values::I32(Vec::new()),
            ColumnType::I64 => Values::I64(Vec::new()),
            ColumnType::F32 => Values::F32(Vec::new()),
            ColumnType::F64 => Values::F64(Vec::new()),
            ColumnType::Utf8 | ColumnType::Binary => Values::Var {
                ends: Vec::new(),
                data: Vec::new(),
            },
        };
        ColBuf {
            column_type,
            values,
            valid: None,
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        dispatch!(&self.values, v => v.len(), bool b => b.len(), var (ends, _data) => ends.len())
    }

    /// Bytes held (what the memory budget counts).
    pub(crate) fn bytes(&self) -> usize {
        let values = dispatch!(
            &self.values,
            v => std::mem::size_of_val(v.as_slice()),
            bool b => b.len(),
            var (ends, data) => ends.len() * 8 + data.len()
        );
        values + self.valid.as_ref().map_or(0, Vec::len)
    }

    /// Removes every row, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        dispatch!(&mut self.values, v => v.clear(), bool b => b.clear(), var (ends, data) => {
            ends.clear();
            data.clear();
        });
        self.valid = None;
    }

    /// Appends rows `rows` of `src` (same type; indices in range, checked by the caller).
    pub(crate) fn append_rows(&mut self, src: &ColumnData, rows: &[u32]) -> Result<(), String> {
        let before = self.len();
        match (&mut self.values, src) {
            (Values::I8(out), ColumnData::I8(c)) => extend_gather(out, &c.values, rows),
            (Values::I16(out), ColumnData::I16(c)) => extend_gather(out, &c.values, rows),
            (Values::I32(out), ColumnData::I32(c)) => extend_gather(out, &c.values, rows),
            (Values::I64(out), ColumnData::I64(c)) => extend_gather(out, &c.values, rows),
            (Values::F32(out), ColumnData::F32(c)) => extend_gather(out, &c.values, rows),
            (Values::F64(out), ColumnData::F64(c)) => extend_gather(out, &c.values, rows),
            (Values::Bool(out), ColumnData::Bool(c)) => {
                let words = c.values.words();
                out.extend(rows.iter().map(|&row| u8::from(bit(words, row as usize))));
            }
            (Values::Var { ends, data }, ColumnData::Utf8(c) | ColumnData::Binary(c)) => {
                let mut end = ends.last().copied().unwrap_or(0);
                ends.reserve(rows.len());
                for &row in rows {
                    let value = c.value(row as usize);
                    data.extend_from_slice(value);
                    end += value.len() as u64;
                    ends.push(end);
                }
            }
            (_, other) => {
                return Err(format!(
                    "a {:?} batch column for a {:?} buffer",
                    other.column_type(),
                    self.column_type
                ));
            }
        }
        match src.validity() {
            Some(validity) if validity.count_ones() < validity.len() => {
                let valid = self.valid.get_or_insert_with(|| vec![1u8; before]);
                let words = validity.words();
                valid.extend(rows.iter().map(|&row| u8::from(bit(words, row as usize))));
            }
            _ => {
                if let Some(valid) = &mut self.valid {
                    valid.resize(valid.len() + rows.len(), 1);
                }
            }
        }
        Ok(())
    }

    /// Writes rows in the order `perm` (indices into this buffer) as the
    /// spill format of one column: a presence byte (1 when a validity
    /// section follows), the validity bytes, then the values (little-endian;
    /// booleans one byte; variable-length: `u64` end offsets relative to the
    /// first row written, then the bytes). Returns the bytes written and
    /// their CRC-32C.
    pub(crate) fn write_permuted(
        &self,
        perm: &[u32],
        scratch: &mut Vec<u8>,
        out: &mut impl Write,
    ) -> std::io::Result<(u64, u32)> {
        scratch.clear();
        match &self.valid {
            Some(valid) => {
                scratch.push(1);
                scratch.extend(perm.iter().map(|&row| valid[row as usize]));
            }
            None => scratch.push(0),
        }
        fn put<T: Copy, const N: usize>(
            scratch: &mut Vec<u8>,
            values: &[T],
            perm: &[u32],
            bytes: impl Fn(T) -> [u8; N],
        ) {
            scratch.reserve(perm.len() * N);
            for &row in perm {
                scratch.extend_from_slice(&bytes(values[row as usize]));
            }
        }
        match &self.values {
            Values::Bool(v) => scratch.extend(perm.iter().map(|&row| v[row as usize])),
            Values::I8(v) => put(scratch, v, perm, i8::to_le_bytes),
            Values::I16(v) => put(scratch, v, perm, i16::to_le_bytes),
            Values::I32(v) => put(scratch, v, perm, i32::to_le_bytes),
            Values::I64(v) => put(scratch, v, perm, i64::to_le_bytes),
            Values::F32(v) => put(scratch, v, perm, f32::to_le_bytes),
            Values::F64(v) => put(scratch, v, perm, f64::to_le_bytes),
            Values::Var { ends, data } => {
                let span = |row: usize| {
                    let start = if row == 0 { 0 } else { ends[row - 1] };
                    (start as usize, ends[row] as usize)
                };
                let mut end = 0u64;
                for &row in perm {
                    let (start, stop) = span(row as usize);
                    end += (stop - start) as u64;
                    scratch.extend_from_slice(&end.to_le_bytes());
                }
                for &row in perm {
                    let (start, stop) = span(row as usize);
                    scratch.extend_from_slice(&data[start..stop]);
                }
            }
        }
        out.write_all(scratch)?;
        Ok((
            scratch.len() as u64,
            skyscan_format::checksum::crc32c(scratch),
        ))
    }

    /// Reads a column written by [`ColBuf::write_permuted`] of `rows` rows
    /// from `bytes` (the whole region).
    pub(crate) fn read_spilled(
        column_type: ColumnType,
        rows: usize,
        bytes: &[u8],
    ) -> Result<ColBuf, String> {
        let short = || format!("spilled column of {} bytes is too short", bytes.len());
        let (&flag, mut rest) = bytes.split_first().ok_or_else(short)?;
        let valid = match flag {
            0 => None,
            1 => {
                let (valid, tail) = rest.split_at_checked(rows).ok_or_else(short)?;
                rest = tail;
                Some(valid.to_vec())
            }
            other => return Err(format!("spilled column validity flag {other}")),
        };
        fn get<T, const N: usize>(
            rest: &[u8],
            rows: usize,
            from: impl Fn([u8; N]) -> T,
        ) -> Result<Vec<T>, String> {
            if rest.len() != rows * N {
                return Err(format!(
                    "spilled column holds {} value bytes for {rows} rows of {N} bytes",
                    rest.len()
                ));
            }
            Ok(rest
                .chunks_exact(N)
                .map(|chunk| {
                    let mut array = [0u8; N];
                    array.copy_from_slice(chunk);
                    from(array)
                })
                .collect())
        }
        let values = match column_type {
            ColumnType::Bool => Values::Bool(get(rest, rows, |[b]: [u8; 1]| b)?),
            ColumnType::I8 => Values::I8(get(rest, rows, i8::from_le_bytes)?),
            ColumnType::I16 => Values::I16(get(rest, rows, i16::from_le_bytes)?),
            ColumnType::I32 => Values::I32(get(rest, rows, i32::from_le_bytes)?),
            ColumnType::I64 => Values::I64(get(rest, rows, i64::from_le_bytes)?),
            ColumnType::F32 => Values::F32(get(rest, rows, f32::from_le_bytes)?),
            ColumnType::F64 => Values::F64(get(rest, rows, f64::from_le_bytes)?),
            ColumnType::Utf8 | ColumnType::Binary => {
                let (ends_bytes, data) = rest.split_at_checked(rows * 8).ok_or_else(short)?;
                let ends: Vec<u64> = get(ends_bytes, rows, u64::from_le_bytes)?;
                let mut previous = 0;
                for &end in &ends {
                    if end < previous {
                        return Err("spilled offsets decrease".to_string());
                    }
                    previous = end;
                }
                if previous != data.len() as u64 {
                    return Err(format!(
                        "spilled offsets end at {previous}, data holds {} bytes",
                        data.len()
                    ));
                }
                Values::Var {
                    ends,
                    data: data.to_vec(),
                }
            }
        };
        Ok(ColBuf {
            column_type,
            values,
            valid,
        })
    }
}

/// The rows of `sources` moved to positions `slots[s][row]` of `out` (`len`
/// rows, every slot written once; `out`'s allocations are reused): the first
/// pass of the two-pass gather. Reads each source sequentially and writes
/// into a few hundred forward-moving streams (one per row group), so that
/// the second pass ([`gather_column`] over `out`) reads within one row
/// group's block. Returns false (and leaves `out` unusable) for
/// variable-length columns, which are gathered directly.
pub(crate) fn scatter_sources(
    column_type: ColumnType,
    sources: &[&ColBuf],
    slots: &[&[u32]],
    len: usize,
    out: &mut ColBuf,
) -> bool {
    fn scatter<T: Copy + Default>(out: &mut Vec<T>, parts: &[(&[T], &[u32])], len: usize) {
        out.clear();
        out.resize(len, T::default());
        for (values, slots) in parts {
            for (&value, &slot) in values.iter().zip(slots.iter()) {
                out[slot as usize] = value;
            }
        }
    }
    if out.column_type != column_type {
        *out = ColBuf::new(column_type);
    }
    macro_rules! typed {
        ($variant:ident) => {{
            let parts: Vec<_> = sources
                .iter()
                .zip(slots)
                .filter_map(|(source, slots)| match &source.values {
                    Values::$variant(values) => Some((values.as_slice(), *slots)),
                    _ => None,
                })
                .collect();
            match &mut out.values {
                Values::$variant(values) if parts.len() == sources.len() => {
                    scatter(values, &parts, len)
                }
                _ => return false,
            }
        }};
    }
    match column_type {
        ColumnType::Bool => typed!(Bool),
        ColumnType::I8 => typed!(I8),
        ColumnType::I16 => typed!(I16),
        ColumnType::I32 => typed!(I32),
        ColumnType::I64 => typed!(I64),
        ColumnType::F32 => typed!(F32),
        ColumnType::F64 => typed!(F64),
        ColumnType::Utf8 | ColumnType::Binary => return false,
    }
    if sources.iter().any(|s| s.valid.is_some()) {
        let ones: Vec<Vec<u8>> = sources
            .iter()
            .map(|s| {
                if s.valid.is_none() {
                    vec![1u8; s.len()]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let parts: Vec<(&[u8], &[u32])> = sources
            .iter()
            .zip(slots)
            .zip(&ones)
            .map(|((source, slots), ones)| {
                (source.valid.as_deref().unwrap_or(ones.as_slice()), *slots)
            })
            .collect();
        let mut valid = out.valid.take().unwrap_or_default();
        scatter(&mut valid, &parts, len);
        out.valid = Some(valid);
    } else {
        out.valid = None;
    }
    true
}

/// A reference to row `index` of source `source`, packed: source in the
/// high 16 bits, index in the low 48.
pub(crate) fn row_ref(source: usize, index: usize) -> u64 {
    debug_assert!(source < 1 << 16 && index < 1 << 48);
    ((source as u64) << 48) | index as u64
}

const INDEX_MASK: u64 = (1 << 48) - 1;

#[inline]
fn split_ref(packed: u64) -> (usize, usize) {
    ((packed >> 48) as usize, (packed & INDEX_MASK) as usize)
}

/// The rows `refs` (see [`row_ref`]) of `sources` (all of `column_type`) as
/// one column of a row group. Presence is taken from each source's
/// validity; a column without nulls gets no validity bitmap.
pub(crate) fn gather_column(
    column_type: ColumnType,
    sources: &[&ColBuf],
    refs: &[u64],
) -> Result<ColumnData, String> {
    fn typed<'a, T: 'a + Copy>(
        sources: &[&'a ColBuf],
        refs: &[u64],
        pick: impl Fn(&'a Values) -> Option<&'a [T]>,
    ) -> Result<Vec<T>, String> {
        let slices: Vec<&[T]> = sources
            .iter()
            .map(|s| pick(&s.values).ok_or_else(|| "a source of another type".to_string()))
            .collect::<Result<_, _>>()?;
        if let [only] = slices.as_slice() {
            return Ok(refs
                .iter()
                .map(|&packed| only[(packed & INDEX_MASK) as usize])
                .collect());
        }
        Ok(refs
            .iter()
            .map(|&packed| {
                let (source, index) = split_ref(packed);
                slices[source][index]
            })
            .collect())
    }
    let validity = if sources.iter().any(|s| s.valid.is_some()) {
        let presence: Vec<u8> = refs
            .iter()
            .map(|&packed| {
                let (source, index) = split_ref(packed);
                sources[source]
                    .valid
                    .as_ref()
                    .map_or(1, |valid| valid[index])
            })
            .collect();
        presence.contains(&0).then(|| bitmap_of_bytes(&presence))
    } else {
        None
    };
    macro_rules! prim {
        ($variant:ident) => {
            ColumnData::$variant(PrimitiveColumn {
                values: typed(sources, refs, |v| match v {
                    Values::$variant(x) => Some(x.as_slice()),
                    _ => None,
                })?,
                validity,
            })
        };
    }
    Ok(match column_type {
        ColumnType::I8 => prim!(I8),
        ColumnType::I16 => prim!(I16),
        ColumnType::I32 => prim!(I32),
        ColumnType::I64 => prim!(I64),
        ColumnType::F32 => prim!(F32),
        ColumnType::F64 => prim!(F64),
        ColumnType::Bool => {
            let bytes: Vec<u8> = typed(sources, refs, |v| match v {
                Values::Bool(x) => Some(x.as_slice()),
                _ => None,
            })?;
            ColumnData::Bool(BoolColumn {
                values: bitmap_of_bytes(&bytes),
                validity,
            })
        }
        ColumnType::Utf8 | ColumnType::Binary => {
            let parts: Vec<(&[u64], &[u8])> = sources
                .iter()
                .map(|s| match &s.values {
                    Values::Var { ends, data } => Ok((ends.as_slice(), data.as_slice())),
                    _ => Err("a source of another type".to_string()),
                })
                .collect::<Result<_, _>>()?;
            let span = |packed: u64| {
                let (source, index) = split_ref(packed);
                let (ends, data) = parts[source];
                let start = if index == 0 { 0 } else { ends[index - 1] } as usize;
                &data[start..ends[index] as usize]
            };
            let total: usize = refs.iter().map(|&packed| span(packed).len()).sum();
            if u32::try_from(total).is_err() {
                return Err("a row group over 4 GiB of variable-length values".to_string());
            }
            let mut column = VarColumn {
                offsets: Vec::with_capacity(refs.len() + 1),
                data: Vec::with_capacity(total),
                validity,
            };
            column.offsets.push(0);
            for &packed in refs {
                let value = span(packed);
                // Short values (band names, flags as text) byte by byte: a
                // memmove call per value cost more than the copy.
                if value.len() <= 16 {
                    for &byte in value {
                        column.data.push(byte);
                    }
                } else {
                    column.data.extend_from_slice(value);
                }
                column.offsets.push(column.data.len() as u32);
            }
            if column_type == ColumnType::Utf8 {
                ColumnData::Utf8(column)
            } else {
                ColumnData::Binary(column)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ColumnData> {
        vec![
            ColumnData::I32(PrimitiveColumn::from_options(&[
                Some(1),
                None,
                Some(3),
                Some(4),
            ])),
            ColumnData::F64(PrimitiveColumn::new(vec![0.5, -1.0, 2.0, 8.0])),
            ColumnData::Bool(BoolColumn::from_options(&[
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
            ColumnData::Utf8(VarColumn::from_options(&[
                Some("ab"),
                Some(""),
                None,
                Some("xyz"),
            ])),
        ]
    }

    #[test]
    fn append_spill_read_gather_round_trip() {
        let batch = sample();
        for column in &batch {
            let mut buf = ColBuf::new(column.column_type());
            buf.append_rows(column, &[3, 1]).unwrap();
            buf.append_rows(column, &[0, 2]).unwrap();
            assert_eq!(buf.len(), 4);
            // Spill in order (rows 0, 2, 1, 3 of the buffer = input 3, 0, 1, 2).
            let mut out = Vec::new();
            let mut scratch = Vec::new();
            let (len, crc) = buf
                .write_permuted(&[0, 2, 1, 3], &mut scratch, &mut out)
                .unwrap();
            assert_eq!(len as usize, out.len());
            assert_eq!(crc, skyscan_format::checksum::crc32c(&out));
            let whole = ColBuf::read_spilled(column.column_type(), 4, &out).unwrap();
            let gathered = gather_column(
                column.column_type(),
                &[&whole],
                &[row_ref(0, 2), row_ref(0, 3), row_ref(0, 0), row_ref(0, 1)],
            )
            .unwrap();
            let expected = skyscan_kernel::take::take(column, &[1, 2, 3, 0]).unwrap();
            assert!(
                gathered.logical_eq(&expected),
                "{gathered:?} != {expected:?}"
            );
            assert!(ColBuf::read_spilled(column.column_type(), 4, &out[..out.len() - 1]).is_err());
        }
    }

    #[test]
    fn gather_from_two_sources_drops_unneeded_validity() {
        let column = ColumnData::I64(PrimitiveColumn::from_options(&[Some(7), None]));
        let mut a = ColBuf::new(ColumnType::I64);
        a.append_rows(&column, &[0, 1]).unwrap();
        let mut b = ColBuf::new(ColumnType::I64);
        b.append_rows(&column, &[0]).unwrap();
        let out =
            gather_column(ColumnType::I64, &[&a, &b], &[row_ref(1, 0), row_ref(0, 0)]).unwrap();
        assert_eq!(out, ColumnData::I64(PrimitiveColumn::new(vec![7, 7])));
        let out =
            gather_column(ColumnType::I64, &[&a, &b], &[row_ref(0, 1), row_ref(1, 0)]).unwrap();
        assert_eq!(out.null_count(), 1);
    }
}
