//! Block encoders: choose an encoding by estimated size, encode, compress
//! where it pays, checksum.

use std::borrow::Cow;
use std::hash::{BuildHasherDefault, Hasher};

use crate::column::{Bitmap, ColumnData, VarColumn};
use crate::error::{FormatError, Result};
use crate::ids::{Compression, Encoding};
use crate::kernels::{self, Lane, bits_needed, packed_len};
use crate::limits::*;
use crate::meta::{BlockMeta, BlockStats, ColumnSchema, MinMax, validity_section_len};

/// Largest dictionary the automatic choice considers (codes of at most 12
/// bits); a forced dictionary may hold up to [`MAX_DICT_LEN`] entries.
const AUTO_DICT_MAX: usize = 4096;
/// lz4 is kept only when it makes the values section at least 10% smaller.
const LZ4_MIN_GAIN_PERCENT: usize = 10;
/// ... and only when the section it expands is at most 1/4 of the decoded
/// column. lz4_flex decodes LSST-like sections at 1.1–1.6 GB/s of its output
/// (shared/MEASURED.md), so on a section as large as the column it caps the
/// block at that speed (issue #2: >= 4 GB/s per core); on a quarter of it, it
/// costs at most ~0.2 ns per decoded byte on top of the encoding. Measured
/// with `skyscan-bench format`: byte-shuffle + lz4 on floats decoded at
/// 1.3–4.8 GB/s, dictionary/FOR + lz4 on sparse columns at 1.8–2.5 GB/s.
const LZ4_MAX_SECTION_SHARE: usize = 4;
/// Prefix of a values section compressed to decide whether lz4 may pay.
const LZ4_SAMPLE_BYTES: usize = 64 << 10;
/// Values sampled to choose the ALP exponent.
const ALP_SAMPLE: usize = 256;
/// Values sampled to estimate byte-shuffle + lz4.
const SHUFFLE_SAMPLE: usize = 8192;

/// A fast non-cryptographic hasher for the writer's distinct counts (SipHash
/// dominated the encoder profile). Inputs are the caller's own data, so hash
/// flooding is not a concern. Multiply-rotate per word, SplitMix64 finalizer
/// so that keys differing only in high bits (bit-field flags) spread.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        self.write_u64(bytes.len() as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517C_C1B7_2722_0A95);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;
type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<FastHasher>>;

/// Whether to compress values sections with lz4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionChoice {
    /// Where it makes the section at least 10% smaller.
    #[default]
    Auto,
    /// Never.
    Never,
    /// Always (for tests).
    Always,
}

/// How [`encode_block`] chooses encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// `None`: choose by estimated size. `Some(e)`: use `e` for every block
    /// (an error for a type that does not support it).
    pub encoding: Option<Encoding>,
    /// lz4 policy.
    pub compression: CompressionChoice,
}

/// A block ready to be placed in a file: its bytes and its footer entry
/// (`meta.offset` is 0 until the writer places it).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBlock {
    /// Footer entry.
    pub meta: BlockMeta,
    /// Validity section followed by the stored values section.
    pub bytes: Vec<u8>,
}

/// The values section before compression, with an lz4 image when the choice
/// of encoding already depended on it.
struct Values {
    encoding: Encoding,
    raw: Vec<u8>,
    lz4: Option<Vec<u8>>,
}

impl Values {
    fn plain(encoding: Encoding, raw: Vec<u8>) -> Self {
        Values {
            encoding,
            raw,
            lz4: None,
        }
    }
}

/// Encodes one column of one row group as a block.
pub fn encode_block(
    column: &ColumnSchema,
    data: &ColumnData,
    options: &EncodeOptions,
) -> Result<EncodedBlock> {
    let column_type = column.column_type;
    let name = &column.name;
    if data.column_type() != column_type {
        return Err(FormatError::invalid(format!(
            "column `{name}` is {column_type:?}, got {:?} data",
            data.column_type()
        )));
    }
    let rows = data.len();
    if rows > MAX_ROWS_PER_ROW_GROUP as usize {
        return Err(FormatError::invalid(format!(
            "column `{name}`: {rows} rows over the limit {MAX_ROWS_PER_ROW_GROUP}"
        )));
    }
    check_column_data(data)
        .map_err(|what| FormatError::invalid(format!("column `{name}`: {what}")))?;
    let null_count = data.null_count();
    if null_count > 0 && !column.nullable {
        return Err(FormatError::invalid(format!(
            "column `{name}` is not nullable but has {null_count} nulls"
        )));
    }
    if let Some(encoding) = options.encoding
        && !column_type.supports(encoding)
    {
        return Err(FormatError::invalid(format!(
            "column `{name}`: encoding {encoding:?} is not defined for {column_type:?}"
        )));
    }
    let validity = data.validity().filter(|_| null_count > 0);
    let stats = compute_stats(data);
    let forced = options.encoding;
    let decoded_len = decoded_len(data);
    let auto_lz4 = options.compression == CompressionChoice::Auto
        && lz4_may_pay(
            data.column_type()
                .fixed_width()
                .map_or(usize::MAX, |width| width * rows),
            decoded_len,
        );
    let values = match data {
        ColumnData::Bool(column) => {
            Ok(Values::plain(Encoding::Plain, bitmap_bytes(&column.values)))
        }
        ColumnData::I8(column) => encode_ints(&fill_nulls(&column.values, validity), forced),
        ColumnData::I16(column) => encode_ints(&fill_nulls(&column.values, validity), forced),
        ColumnData::I32(column) => encode_ints(&fill_nulls(&column.values, validity), forced),
        ColumnData::I64(column) => encode_ints(&fill_nulls(&column.values, validity), forced),
        ColumnData::F32(column) => {
            encode_floats(&fill_nulls(&column.values, validity), forced, auto_lz4)
        }
        ColumnData::F64(column) => {
            encode_floats(&fill_nulls(&column.values, validity), forced, auto_lz4)
        }
        ColumnData::Utf8(column) | ColumnData::Binary(column) => encode_var(column, forced),
    }
    .map_err(|what| FormatError::invalid(format!("column `{name}`: {what}")))?;

    let Values { encoding, raw, lz4 } = values;
    let values_raw_len = raw.len();
    let (compression, stored) = match options.compression {
        CompressionChoice::Never => (Compression::None, raw),
        CompressionChoice::Always => (
            Compression::Lz4,
            lz4.unwrap_or_else(|| lz4_flex::block::compress(&raw)),
        ),
        CompressionChoice::Auto => match lz4 {
            Some(lz4) => (Compression::Lz4, lz4),
            None if lz4_may_pay(raw.len(), decoded_len) => maybe_lz4(raw),
            None => (Compression::None, raw),
        },
    };
    let validity_len = if validity.is_some() {
        validity_section_len(rows as u32)
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(validity_len as usize + stored.len());
    if let Some(validity) = validity {
        bytes.extend_from_slice(&bitmap_bytes(validity));
    }
    bytes.extend_from_slice(&stored);
    let (Ok(len), Ok(values_raw_len)) = (u32::try_from(bytes.len()), u32::try_from(values_raw_len))
    else {
        return Err(FormatError::invalid(format!(
            "column `{name}`: block over 4 GiB"
        )));
    };
    Ok(EncodedBlock {
        meta: BlockMeta {
            offset: 0,
            len,
            crc32c: crc32c::crc32c(&bytes),
            encoding,
            compression,
            row_count: rows as u32,
            null_count: null_count as u32,
            validity_len,
            values_raw_len,
            stats,
        },
        bytes,
    })
}

/// Bytes of the decoded column (values, offsets, bitmap), validity excluded.
fn decoded_len(data: &ColumnData) -> usize {
    let rows = data.len();
    match data {
        ColumnData::Bool(_) => rows.div_ceil(8),
        ColumnData::Utf8(column) | ColumnData::Binary(column) => column.data.len() + 4 * (rows + 1),
        _ => data.column_type().fixed_width().unwrap_or(0) * rows,
    }
}

/// Whether lz4 over a values section of `section_len` bytes may be kept for
/// a block of `decoded_len` decoded bytes (see [`LZ4_MAX_SECTION_SHARE`]).
fn lz4_may_pay(section_len: usize, decoded_len: usize) -> bool {
    section_len.saturating_mul(LZ4_MAX_SECTION_SHARE) <= decoded_len
}

fn maybe_lz4(raw: Vec<u8>) -> (Compression, Vec<u8>) {
    if raw.len() < 128 {
        return (Compression::None, raw);
    }
    let sample = &raw[..raw.len().min(LZ4_SAMPLE_BYTES)];
    let sample_compressed = lz4_flex::block::compress(sample);
    // Cheap pre-check on a prefix: skip the full compression when hopeless.
    if sample_compressed.len() * 100 > sample.len() * (100 - LZ4_MIN_GAIN_PERCENT / 2) {
        return (Compression::None, raw);
    }
    let compressed = if sample.len() == raw.len() {
        sample_compressed
    } else {
        lz4_flex::block::compress(&raw)
    };
    if pays(compressed.len(), raw.len()) {
        (Compression::Lz4, compressed)
    } else {
        (Compression::None, raw)
    }
}

/// True when `compressed` is at least [`LZ4_MIN_GAIN_PERCENT`] smaller than `reference`.
fn pays(compressed: usize, reference: usize) -> bool {
    compressed * 100 <= reference * (100 - LZ4_MIN_GAIN_PERCENT)
}

fn check_column_data(data: &ColumnData) -> Result<(), String> {
    let rows = data.len();
    if let Some(validity) = data.validity()
        && validity.len() != rows
    {
        return Err(format!(
            "validity has {} bits for {rows} rows",
            validity.len()
        ));
    }
    if let ColumnData::Utf8(column) | ColumnData::Binary(column) = data {
        let Some(&first) = column.offsets.first() else {
            return Err("offsets must have len + 1 entries".into());
        };
        if first != 0 {
            return Err("offsets must start at 0".into());
        }
        if column.offsets.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err("offsets decrease".into());
        }
        let end = column.offsets[rows] as usize;
        if end != column.data.len() {
            return Err(format!(
                "last offset {end} is not the data length {}",
                column.data.len()
            ));
        }
        if end > MAX_VAR_DATA_LEN {
            return Err(format!(
                "{end} bytes of data over the limit {MAX_VAR_DATA_LEN}"
            ));
        }
        if matches!(data, ColumnData::Utf8(_)) && !is_utf8_column(&column.offsets, &column.data) {
            return Err("utf8 column holds invalid UTF-8 or splits a character".into());
        }
    }
    Ok(())
}

/// True when `data` is UTF-8 and every offset falls on a character boundary.
pub(crate) fn is_utf8_column(offsets: &[u32], data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok()
        && offsets.iter().all(|&offset| {
            data.get(offset as usize)
                .is_none_or(|&byte| (byte as i8) >= -0x40)
        })
}

fn bitmap_bytes(bitmap: &Bitmap) -> Vec<u8> {
    bitmap
        .words()
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect()
}

/// Replaces values in null slots by the previous non-null value (the first
/// non-null value for leading nulls) so null slots do not widen ranges.
fn fill_nulls<'a, T: Copy + Default>(values: &'a [T], validity: Option<&Bitmap>) -> Cow<'a, [T]> {
    let Some(validity) = validity else {
        return Cow::Borrowed(values);
    };
    let first = (0..values.len())
        .find(|&row| validity.get(row))
        .map_or(T::default(), |row| values[row]);
    let mut filled = values.to_vec();
    let mut previous = first;
    for (row, value) in filled.iter_mut().enumerate() {
        if validity.get(row) {
            previous = *value;
        } else {
            *value = previous;
        }
    }
    Cow::Owned(filled)
}

fn pad8(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(8), 0);
}

fn push_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Frame of reference over lane values: `(base, width)` with
/// `to_u64(v) - base < 2^width` for every `v`.
fn frame_of<T: Lane>(values: &[T]) -> (u64, u32) {
    let Some(&first) = values.first() else {
        return (0, 0);
    };
    let (min_key, max_key) =
        values
            .iter()
            .fold((first.order_key(), first.order_key()), |(min, max), v| {
                let key = v.order_key();
                (min.min(key), max.max(key))
            });
    let flip = if T::SIGNED { 1 << 63 } else { 0 };
    (min_key ^ flip, bits_needed(max_key - min_key))
}

fn sign_extend(value: u64, bits: u32) -> i64 {
    ((value << (64 - bits)) as i64) >> (64 - bits)
}

/// Delta parameters: `(min_delta, width)` of `v[k] - v[k-1]` taken in the
/// lane's width as a signed number.
fn delta_of<T: Lane>(values: &[T]) -> (i64, u32) {
    let mut min = i64::MAX;
    let mut max = i64::MIN;
    for pair in values.windows(2) {
        let delta = sign_extend(pair[1].to_u64().wrapping_sub(pair[0].to_u64()), T::BITS);
        min = min.min(delta);
        max = max.max(delta);
    }
    if min > max {
        return (0, 0);
    }
    (min, bits_needed(max.wrapping_sub(min) as u64))
}

/// Distinct lane values sorted by `key`, or `None` when more than `limit`.
///
/// An open-addressing set of `u64` sized for `limit` (load factor <= 1/2):
/// the encoder calls this on every block of every integer and float column,
/// and most float blocks reach the limit, so growing a general hash set
/// (rehashing as it goes) dominated the writer's profile.
fn distinct<T: Lane>(values: &[T], limit: usize, key: impl Fn(T) -> u64) -> Option<Vec<T>> {
    let capacity = (2 * limit.max(1)).next_power_of_two().max(16);
    let mask = capacity - 1;
    // Slot 0 of `occupied` marks an empty slot; values are compared in full.
    let mut slots = vec![0u64; capacity];
    let mut occupied = vec![false; capacity];
    let mut dict = Vec::new();
    for &value in values {
        let bits = value.to_u64();
        let mut slot = (mix64(bits) as usize) & mask;
        loop {
            if !occupied[slot] {
                if dict.len() == limit {
                    return None;
                }
                occupied[slot] = true;
                slots[slot] = bits;
                dict.push(value);
                break;
            }
            if slots[slot] == bits {
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    dict.sort_unstable_by_key(|&value| key(value));
    Some(dict)
}

/// Keeps `(encoding, size)` in `best` when strictly smaller.
fn consider(best: &mut (Encoding, usize), encoding: Encoding, size: usize) {
    if size < best.1 {
        *best = (encoding, size);
    }
}

/// SplitMix64's finalizer: spreads keys that differ only in high bits.
#[inline]
fn mix64(value: u64) -> u64 {
    let mut z = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The largest dictionary length `d <= limit` whose dictionary section
/// ([`dict_size`] less `header` bytes) is smaller than `best`: a larger
/// dictionary cannot be chosen, so counting distinct values may stop there
/// without changing the encoder's choice.
fn useful_dict_len(
    rows: usize,
    value_bytes: usize,
    best: usize,
    header: usize,
    limit: usize,
) -> usize {
    let fits = |d: usize| dict_size(rows, d, value_bytes) - header < best;
    if limit == 0 || !fits(1) {
        return 0;
    }
    let (mut low, mut high) = (1, limit);
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if fits(mid) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    low
}

fn dict_size(rows: usize, dict_len: usize, value_bytes: usize) -> usize {
    8 + (dict_len * value_bytes).next_multiple_of(8)
        + packed_len(rows, bits_needed(dict_len.saturating_sub(1) as u64))
}

fn encode_for_lanes<T: Lane>(values: &[T]) -> Vec<u8> {
    let (base, width) = frame_of(values);
    let mut out = Vec::with_capacity(16 + packed_len(values.len(), width));
    push_u64(&mut out, base);
    out.push(width as u8);
    out.extend_from_slice(&[0; 7]);
    let offsets: Vec<u64> = values
        .iter()
        .map(|v| v.to_u64().wrapping_sub(base) & mask(width))
        .collect();
    kernels::pack(&offsets, width, &mut out);
    out
}

fn mask(width: u32) -> u64 {
    if width == 0 {
        0
    } else {
        u64::MAX >> (64 - width)
    }
}

fn encode_delta_lanes<T: Lane>(values: &[T]) -> Vec<u8> {
    let (min_delta, width) = delta_of(values);
    let first = values.first().map_or(0, |v| v.to_u64());
    let mut out = Vec::new();
    push_u64(&mut out, first);
    push_u64(&mut out, min_delta as u64);
    out.push(width as u8);
    out.extend_from_slice(&[0; 7]);
    let deltas: Vec<u64> = values
        .windows(2)
        .map(|pair| {
            let delta = sign_extend(pair[1].to_u64().wrapping_sub(pair[0].to_u64()), T::BITS);
            delta.wrapping_sub(min_delta) as u64
        })
        .collect();
    kernels::pack(&deltas, width, &mut out);
    out
}

fn encode_dict_lanes<T: Lane>(values: &[T], dict: &[T]) -> Vec<u8> {
    let index: HashMap<u64, u64> = dict
        .iter()
        .enumerate()
        .map(|(code, v)| (v.to_u64(), code as u64))
        .collect();
    let width = bits_needed(dict.len().saturating_sub(1) as u64);
    let mut out = Vec::new();
    push_u32(&mut out, dict.len() as u32);
    out.push(width as u8);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(bytemuck::cast_slice(dict));
    pad8(&mut out);
    let codes: Vec<u64> = values
        .iter()
        .map(|v| index.get(&v.to_u64()).copied().unwrap_or(0))
        .collect();
    kernels::pack(&codes, width, &mut out);
    out
}

fn encode_ints<T: Lane>(values: &[T], forced: Option<Encoding>) -> Result<Values, String> {
    let rows = values.len();
    let value_bytes = (T::BITS / 8) as usize;
    let encoding = match forced {
        Some(encoding) => encoding,
        None => {
            let (_, for_width) = frame_of(values);
            let (_, delta_width) = delta_of(values);
            let mut best = (Encoding::Plain, rows * value_bytes);

            consider(
                &mut best,
                Encoding::ForBitpack,
                16 + packed_len(rows, for_width),
            );
            if rows > 0 {
                consider(
                    &mut best,
                    Encoding::DeltaBitpack,
                    24 + packed_len(rows - 1, delta_width),
                );
            }
            let limit = useful_dict_len(rows, value_bytes, best.1, 0, AUTO_DICT_MAX.min(rows / 2));
            if limit > 0
                && let Some(dict) = distinct(values, limit, T::order_key)
            {
                consider(
                    &mut best,
                    Encoding::Dictionary,
                    dict_size(rows, dict.len(), value_bytes),
                );
            }
            if let Some(plan) = sparse_plan(values, false) {
                consider(&mut best, Encoding::Sparse, plan.size);
                if best.0 == Encoding::Sparse {
                    return Ok(Values::plain(
                        Encoding::Sparse,
                        encode_sparse(values, &plan),
                    ));
                }
            }
            best.0
        }
    };
    let raw = match encoding {
        Encoding::Plain => bytemuck::cast_slice(values).to_vec(),
        Encoding::ForBitpack => encode_for_lanes(values),
        Encoding::DeltaBitpack => encode_delta_lanes(values),
        Encoding::Dictionary => {
            let dict = distinct(values, MAX_DICT_LEN, T::order_key).ok_or_else(|| {
                format!("more than {MAX_DICT_LEN} distinct values for a dictionary")
            })?;
            encode_dict_lanes(values, &dict)
        }
        Encoding::Sparse => {
            let plan = sparse_plan(values, true).ok_or("no sparse plan")?;
            encode_sparse(values, &plan)
        }
        other => return Err(format!("encoding {other:?} is not defined for integers")),
    };
    Ok(Values::plain(encoding, raw))
}

/// How [`encode_sparse`] stores a block: the fill value, the rows that
/// differ from it, and how their values are stored.
struct SparsePlan<T> {
    fill: T,
    exceptions: Vec<T>,
    positions: Vec<u32>,
    gap_width: u32,
    /// Sorted distinct exception values when a dictionary is smaller than FOR.
    dict: Option<Vec<T>>,
    /// Exact size of the values section.
    size: usize,
}

/// Plans a SPARSE section around the majority value (Boyer-Moore vote, then
/// one counting pass). Unless `forced`, `None` when no value fills more than
/// half of the rows (a bit-packed encoding is then smaller).
fn sparse_plan<T: Lane>(values: &[T], forced: bool) -> Option<SparsePlan<T>> {
    let mut candidate = T::default();
    let mut votes = 0usize;
    for &value in values {
        if votes == 0 {
            candidate = value;
            votes = 1;
        } else if value == candidate {
            votes += 1;
        } else {
            votes -= 1;
        }
    }
    let fill = candidate;
    let fill_count = values.iter().filter(|&&value| value == fill).count();
    if !forced && fill_count * 2 <= values.len() {
        return None;
    }
    let mut exceptions = Vec::with_capacity(values.len() - fill_count);
    let mut positions = Vec::with_capacity(values.len() - fill_count);
    let mut max_gap = 0u64;
    let mut next = 0u64;
    for (row, &value) in values.iter().enumerate() {
        if value != fill {
            max_gap = max_gap.max(row as u64 - next);
            next = row as u64 + 1;
            exceptions.push(value);
            positions.push(row as u32);
        }
    }
    let count = exceptions.len();
    let gap_width = bits_needed(max_gap);
    let (_, for_width) = frame_of(&exceptions);
    let value_bytes = std::mem::size_of::<T>();
    let for_size = packed_len(count, for_width);
    let limit = useful_dict_len(
        count,
        value_bytes,
        for_size,
        8,
        AUTO_DICT_MAX.min(count / 2),
    );
    let dict = if limit > 0 {
        distinct(&exceptions, limit, T::order_key)
            .filter(|dict| dict_size(count, dict.len(), value_bytes) - 8 < for_size)
    } else {
        None
    };
    let values_size = match &dict {
        Some(dict) => dict_size(count, dict.len(), value_bytes) - 8,
        None => for_size,
    };
    Some(SparsePlan {
        fill,
        exceptions,
        positions,
        gap_width,
        dict,
        size: 32 + packed_len(count, gap_width) + values_size,
    })
}

fn encode_sparse<T: Lane>(values: &[T], plan: &SparsePlan<T>) -> Vec<u8> {
    let count = plan.exceptions.len();
    let mut out = Vec::with_capacity(plan.size);
    push_u64(&mut out, plan.fill.to_u64());
    let (value_base, value_width, value_stream) = match &plan.dict {
        Some(dict) => {
            let index: HashMap<u64, u64> = dict
                .iter()
                .enumerate()
                .map(|(code, v)| (v.to_u64(), code as u64))
                .collect();
            let codes: Vec<u64> = plan
                .exceptions
                .iter()
                .map(|v| index.get(&v.to_u64()).copied().unwrap_or(0))
                .collect();
            (0, bits_needed(dict.len().saturating_sub(1) as u64), codes)
        }
        None => {
            let (base, width) = frame_of(&plan.exceptions);
            let offsets: Vec<u64> = plan
                .exceptions
                .iter()
                .map(|v| v.to_u64().wrapping_sub(base) & mask(width))
                .collect();
            (base, width, offsets)
        }
    };
    push_u64(&mut out, value_base);
    push_u32(&mut out, count as u32);
    push_u32(
        &mut out,
        plan.dict.as_ref().map_or(0, |dict| dict.len() as u32),
    );
    out.push(plan.gap_width as u8);
    out.push(value_width as u8);
    out.extend_from_slice(&[0; 6]);
    if let Some(dict) = &plan.dict {
        out.extend_from_slice(bytemuck::cast_slice(dict));
        pad8(&mut out);
    }
    let mut next = 0u64;
    let gaps: Vec<u64> = plan
        .positions
        .iter()
        .map(|&position| {
            let gap = u64::from(position) - next;
            next = u64::from(position) + 1;
            gap
        })
        .collect();
    kernels::pack(&gaps, plan.gap_width, &mut out);
    kernels::pack(&value_stream, value_width, &mut out);
    debug_assert_eq!(out.len(), plan.size, "sparse size estimate");
    debug_assert!(values.len() >= count);
    out
}

/// What the float encoders need of f32 and f64.
trait Float: Copy + Default + bytemuck::Pod + PartialEq {
    /// Lane holding the bit pattern.
    type Bits: Lane;
    /// Largest ALP exponent (10^e exact in the type).
    const MAX_EXPONENT: u8;
    /// Inclusive range of ALP integers the reader accepts.
    const ALP_RANGE: (i64, i64);
    fn bits(self) -> Self::Bits;
    /// Order-preserving key of the bit pattern, as u64.
    fn key_of_bits(bits: Self::Bits) -> u64;
    /// `Some(d)` when `alp_decode(d, exponent)` gives back `self` bit for bit.
    fn alp_int(self, exponent: u8) -> Option<i64>;
    fn shuffle(values: &[u8], out: &mut [u8]);
}

impl Float for f64 {
    type Bits = u64;
    const MAX_EXPONENT: u8 = 18;
    const ALP_RANGE: (i64, i64) = (-kernels::ALP_F64_LIMIT, kernels::ALP_F64_LIMIT - 1);
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn key_of_bits(bits: u64) -> u64 {
        kernels::f64_key(bits)
    }
    fn alp_int(self, exponent: u8) -> Option<i64> {
        let divisor = kernels::POW10_F64[exponent as usize];
        let scaled = round_half_away(self * divisor);
        // Also rejects NaN and infinities.
        if !(scaled >= -(kernels::ALP_F64_LIMIT as f64) && scaled < kernels::ALP_F64_LIMIT as f64) {
            return None;
        }
        let int = scaled as i64;
        ((int as f64 / divisor).to_bits() == self.to_bits()).then_some(int)
    }
    fn shuffle(values: &[u8], out: &mut [u8]) {
        kernels::shuffle::<8>(values, out);
    }
}

impl Float for f32 {
    type Bits = u32;
    const MAX_EXPONENT: u8 = 10;
    const ALP_RANGE: (i64, i64) = (-kernels::ALP_F32_LIMIT, kernels::ALP_F32_LIMIT);
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn key_of_bits(bits: u32) -> u64 {
        u64::from(kernels::f32_key(bits))
    }
    fn alp_int(self, exponent: u8) -> Option<i64> {
        let divisor = kernels::POW10_F32[exponent as usize];
        let scaled = round_half_away(f64::from(self) * f64::from(divisor));
        if scaled.is_nan() || scaled.abs() > kernels::ALP_F32_LIMIT as f64 {
            return None;
        }
        let int = scaled as i64;
        ((int as f32 / divisor).to_bits() == self.to_bits()).then_some(int)
    }
    fn shuffle(values: &[u8], out: &mut [u8]) {
        kernels::shuffle::<4>(values, out);
    }
}

/// `value.round()` (half away from zero) without the libm call, which the
/// ALP choice made on every value of every float block: `trunc` compiles to
/// one instruction and `value - trunc` is exact for every finite f64.
/// NaN and infinities come back unchanged, as from `round`.
#[inline(always)]
fn round_half_away(value: f64) -> f64 {
    let truncated = value.trunc();
    if (value - truncated).abs() >= 0.5 {
        truncated + value.signum()
    } else {
        truncated
    }
}

/// Chooses the ALP exponent on a sample: fewest estimated bits, exceptions
/// costing a position and a raw value each.
fn alp_exponent<F: Float>(values: &[F]) -> Option<u8> {
    if values.is_empty() {
        return None;
    }
    let step = values.len().div_ceil(ALP_SAMPLE);
    let sample: Vec<F> = values.iter().step_by(step).copied().collect();
    let exception_bits = 32 + 8 * std::mem::size_of::<F>() as u64;
    let mut best: Option<(u8, u64)> = None;
    for exponent in 0..=F::MAX_EXPONENT {
        let mut exceptions = 0u64;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for value in &sample {
            match value.alp_int(exponent) {
                Some(int) => {
                    min = min.min(int);
                    max = max.max(int);
                }
                None => exceptions += 1,
            }
        }
        if exceptions * 2 > sample.len() as u64 {
            continue;
        }
        let width = if min <= max {
            bits_needed(max.wrapping_sub(min) as u64)
        } else {
            0
        };
        let cost = u64::from(width) * sample.len() as u64 + exceptions * exception_bits;
        if best.is_none_or(|(_, best_cost)| cost < best_cost) {
            best = Some((exponent, cost));
        }
        if exceptions == 0 {
            // A larger exponent only widens the integers.
            break;
        }
    }
    best.map(|(exponent, _)| exponent)
}

fn encode_alp<F: Float>(values: &[F], exponent: u8) -> Vec<u8> {
    let ints: Vec<Option<i64>> = values.iter().map(|v| v.alp_int(exponent)).collect();
    let mut previous = ints.iter().flatten().next().copied().unwrap_or(0);
    let mut filled = Vec::with_capacity(values.len());
    let mut exception_positions = Vec::new();
    let mut exception_values: Vec<F::Bits> = Vec::new();
    for (row, (int, value)) in ints.iter().zip(values).enumerate() {
        match int {
            Some(int) => {
                previous = *int;
                filled.push(*int);
            }
            None => {
                filled.push(previous);
                exception_positions.push(row as u32);
                exception_values.push(value.bits());
            }
        }
    }
    let (mut base, mut width) = frame_of(&filled);
    // The reader requires every integer the stream can hold, [base, base +
    // 2^width - 1], to lie in the exact range: lower the base if needed.
    let (low, high) = F::ALP_RANGE;
    let capacity = (1i128 << width) - 1;
    let lowered = (base as i64 as i128).min(i128::from(high) - capacity);
    if lowered >= i128::from(low) {
        base = lowered as i64 as u64;
    } else {
        // Cannot happen for f64; for f32 only when the integers span 2^25:
        // store every value as an exception.
        base = 0;
        width = 0;
        filled.fill(0);
        exception_positions = (0..values.len() as u32).collect();
        exception_values = values.iter().map(|v| v.bits()).collect();
    }
    let mut out = Vec::new();
    out.push(exponent);
    out.push(width as u8);
    out.extend_from_slice(&[0; 2]);
    push_u32(&mut out, exception_positions.len() as u32);
    push_u64(&mut out, base);
    push_u64(&mut out, 0);
    let offsets: Vec<u64> = filled
        .iter()
        .map(|&int| (int as u64).wrapping_sub(base) & mask(width))
        .collect();
    kernels::pack(&offsets, width, &mut out);
    out.extend_from_slice(bytemuck::cast_slice(&exception_positions));
    pad8(&mut out);
    out.extend_from_slice(bytemuck::cast_slice(&exception_values));
    out
}

fn alp_size<F: Float>(values: &[F], exponent: u8) -> usize {
    let mut exceptions = 0usize;
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for value in values {
        match value.alp_int(exponent) {
            Some(int) => {
                min = min.min(int);
                max = max.max(int);
            }
            None => exceptions += 1,
        }
    }
    let width = if min <= max {
        bits_needed(max.wrapping_sub(min) as u64)
    } else {
        0
    };
    24 + packed_len(values.len(), width)
        + (4 * exceptions).next_multiple_of(8)
        + exceptions * std::mem::size_of::<F>()
}

fn float_keys<F: Float>(values: &[F]) -> Vec<u64> {
    values.iter().map(|v| F::key_of_bits(v.bits())).collect()
}

fn encode_float_for(keys: &[u64]) -> Vec<u8> {
    encode_for_lanes(keys)
}

fn shuffled<F: Float>(values: &[F]) -> Vec<u8> {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    let mut out = vec![0u8; bytes.len()];
    F::shuffle(bytes, &mut out);
    out
}

fn encode_floats<F: Float>(
    values: &[F],
    forced: Option<Encoding>,
    auto_lz4: bool,
) -> Result<Values, String> {
    let rows = values.len();
    let value_bytes = std::mem::size_of::<F>();
    let bits: Vec<F::Bits> = values.iter().map(|v| v.bits()).collect();
    let dict_key = |bits: F::Bits| F::key_of_bits(bits);
    // The order keys, computed once for the choice and a FloatFor encoding.
    let mut keys: Option<Vec<u64>> = None;
    let encoding = match forced {
        Some(encoding) => encoding,
        None => {
            let keys = keys.insert(float_keys(values));
            let (_, key_width) = frame_of(keys);
            let mut best = (Encoding::Plain, std::mem::size_of_val(values));

            consider(
                &mut best,
                Encoding::FloatFor,
                16 + packed_len(rows, key_width),
            );
            if let Some(exponent) = alp_exponent(values) {
                consider(&mut best, Encoding::Alp, alp_size(values, exponent));
            }
            let limit = useful_dict_len(rows, value_bytes, best.1, 0, AUTO_DICT_MAX.min(rows / 2));
            if limit > 0
                && let Some(dict) = distinct(&bits, limit, dict_key)
            {
                consider(
                    &mut best,
                    Encoding::Dictionary,
                    dict_size(rows, dict.len(), value_bytes),
                );
            }
            let (best_encoding, best_size) = best;
            if auto_lz4 && std::mem::size_of_val(values) >= 1024 {
                let sample_rows = rows.min(SHUFFLE_SAMPLE);
                let sample = lz4_flex::block::compress(&shuffled(&values[..sample_rows]));
                let estimate = sample.len() * rows / sample_rows;
                if pays(estimate, best_size) {
                    let raw = shuffled(values);
                    let compressed = lz4_flex::block::compress(&raw);
                    if pays(compressed.len(), best_size) {
                        return Ok(Values {
                            encoding: Encoding::ByteShuffle,
                            raw,
                            lz4: Some(compressed),
                        });
                    }
                }
            }
            best_encoding
        }
    };
    let raw = match encoding {
        Encoding::Plain => bytemuck::cast_slice(values).to_vec(),
        Encoding::ByteShuffle => shuffled(values),
        Encoding::FloatFor => match &keys {
            Some(keys) => encode_float_for(keys),
            None => encode_float_for(&float_keys(values)),
        },
        Encoding::Alp => encode_alp(values, alp_exponent(values).unwrap_or(0)),
        Encoding::Dictionary => {
            let dict = distinct(&bits, MAX_DICT_LEN, dict_key).ok_or_else(|| {
                format!("more than {MAX_DICT_LEN} distinct values for a dictionary")
            })?;
            encode_dict_lanes(&bits, &dict)
        }
        other => return Err(format!("encoding {other:?} is not defined for floats")),
    };
    Ok(Values::plain(encoding, raw))
}

/// Longest value [`small_key`] represents.
const SMALL_VALUE_BYTES: usize = 7;

/// A value of at most [`SMALL_VALUE_BYTES`] bytes as a u64: its bytes
/// (little-endian) and its length in the top byte, so equal keys mean equal
/// values.
fn small_key(value: &[u8]) -> u64 {
    let mut key = (value.len() as u64) << 56;
    for (shift, &byte) in value.iter().enumerate() {
        key |= u64::from(byte) << (8 * shift);
    }
    key
}

fn encode_var(column: &VarColumn, forced: Option<Encoding>) -> Result<Values, String> {
    let rows = column.len();
    let lengths: Vec<u64> = column
        .offsets
        .windows(2)
        .map(|pair| u64::from(pair[1] - pair[0]))
        .collect();
    let (length_base, length_width) = frame_of(&lengths);
    let plain_size = 8 + packed_len(rows, length_width) + column.data.len();
    let values: Vec<&[u8]> = (0..rows).map(|row| column.value(row)).collect();
    // Short values (band names, codes) as u64 keys: the open-addressing
    // distinct set and a binary search replace hashing byte slices.
    let small_keys: Option<Vec<u64>> = values
        .iter()
        .all(|value| value.len() <= SMALL_VALUE_BYTES)
        .then(|| values.iter().map(|value| small_key(value)).collect());
    let distinct_values = |limit: usize| -> Option<Vec<&[u8]>> {
        if let Some(keys) = &small_keys {
            let found = distinct(keys, limit, |key| key)?;
            let mut first = vec![usize::MAX; found.len()];
            let mut left = found.len();
            for (row, key) in keys.iter().enumerate() {
                if left == 0 {
                    break;
                }
                if let Ok(index) = found.binary_search(key)
                    && first[index] == usize::MAX
                {
                    first[index] = row;
                    left -= 1;
                }
            }
            let mut dict: Vec<&[u8]> = first.iter().map(|&row| values[row]).collect();
            dict.sort_unstable();
            return Some(dict);
        }
        let mut seen = HashSet::default();
        for value in &values {
            if seen.insert(*value) && seen.len() > limit {
                return None;
            }
        }
        let mut dict: Vec<&[u8]> = seen.into_iter().collect();
        dict.sort_unstable();
        Some(dict)
    };
    let encoding = match forced {
        Some(encoding) => encoding,
        None => match distinct_values(AUTO_DICT_MAX.min(rows / 2)) {
            Some(dict) if var_dict_size(rows, &dict) < plain_size => Encoding::Dictionary,
            _ => Encoding::Plain,
        },
    };
    let mut out = Vec::new();
    match encoding {
        Encoding::Plain => {
            push_u32(&mut out, length_base as u32);
            out.push(length_width as u8);
            out.extend_from_slice(&[0; 3]);
            let offsets: Vec<u64> = lengths.iter().map(|length| length - length_base).collect();
            kernels::pack(&offsets, length_width, &mut out);
            out.extend_from_slice(&column.data);
        }
        Encoding::Dictionary => {
            let dict = distinct_values(MAX_DICT_LEN).ok_or_else(|| {
                format!("more than {MAX_DICT_LEN} distinct values for a dictionary")
            })?;
            let entry_lengths: Vec<u64> = dict.iter().map(|entry| entry.len() as u64).collect();
            let (entry_base, entry_width) = frame_of(&entry_lengths);
            let dict_data_len: usize = dict.iter().map(|entry| entry.len()).sum();
            let code_width = bits_needed(dict.len().saturating_sub(1) as u64);
            push_u32(&mut out, dict.len() as u32);
            out.push(code_width as u8);
            out.push(entry_width as u8);
            out.extend_from_slice(&[0; 2]);
            push_u32(&mut out, entry_base as u32);
            push_u32(&mut out, dict_data_len as u32);
            let entry_offsets: Vec<u64> = entry_lengths
                .iter()
                .map(|length| length - entry_base)
                .collect();
            kernels::pack(&entry_offsets, entry_width, &mut out);
            for entry in &dict {
                out.extend_from_slice(entry);
            }
            pad8(&mut out);
            let codes: Vec<u64> = match &small_keys {
                Some(keys) => {
                    let mut index: Vec<(u64, u64)> = dict
                        .iter()
                        .enumerate()
                        .map(|(code, entry)| (small_key(entry), code as u64))
                        .collect();
                    index.sort_unstable();
                    keys.iter()
                        .map(|key| match index.binary_search_by_key(key, |&(k, _)| k) {
                            Ok(position) => index[position].1,
                            Err(_) => 0,
                        })
                        .collect()
                }
                None => {
                    let index: HashMap<&[u8], u64> = dict
                        .iter()
                        .enumerate()
                        .map(|(code, entry)| (*entry, code as u64))
                        .collect();
                    values
                        .iter()
                        .map(|value| index.get(value).copied().unwrap_or(0))
                        .collect()
                }
            };
            kernels::pack(&codes, code_width, &mut out);
        }
        other => {
            return Err(format!(
                "encoding {other:?} is not defined for variable-length columns"
            ));
        }
    }
    Ok(Values::plain(encoding, out))
}

fn var_dict_size(rows: usize, dict: &[&[u8]]) -> usize {
    let lengths: Vec<u64> = dict.iter().map(|entry| entry.len() as u64).collect();
    let (_, entry_width) = frame_of(&lengths);
    let data: usize = dict.iter().map(|entry| entry.len()).sum();
    16 + packed_len(dict.len(), entry_width)
        + data.next_multiple_of(8)
        + packed_len(rows, bits_needed(dict.len().saturating_sub(1) as u64))
}

/// [`compute_stats`] of a numeric column without nulls, as plain loops
/// (the general path tests validity per row through closures). Same
/// results: the float order is the total order, NaN excluded and flagged.
fn compute_stats_dense(data: &ColumnData) -> Option<BlockStats> {
    fn ints<T: Lane>(values: &[T]) -> BlockStats {
        let mut iter = values.iter().map(|v| v.to_u64() as i64);
        let min_max = iter.next().map(|first| {
            let (min, max) = iter.fold((first, first), |(min, max), v| (min.min(v), max.max(v)));
            MinMax::Int { min, max }
        });
        BlockStats {
            min_max,
            has_nan: false,
        }
    }
    fn floats<F: Copy>(
        values: &[F],
        wide: impl Fn(F) -> f64,
        key: impl Fn(F) -> u64,
    ) -> BlockStats {
        let mut has_nan = false;
        let mut range: Option<(u64, F, u64, F)> = None;
        for &value in values {
            if wide(value).is_nan() {
                has_nan = true;
                continue;
            }
            let k = key(value);
            range = Some(match range {
                None => (k, value, k, value),
                Some((kmin, vmin, kmax, vmax)) => {
                    let (kmin, vmin) = if k < kmin { (k, value) } else { (kmin, vmin) };
                    let (kmax, vmax) = if k > kmax { (k, value) } else { (kmax, vmax) };
                    (kmin, vmin, kmax, vmax)
                }
            });
        }
        BlockStats {
            min_max: range.map(|(_, min, _, max)| MinMax::Float {
                min: wide(min),
                max: wide(max),
            }),
            has_nan,
        }
    }
    if data.null_count() > 0 {
        return None;
    }
    Some(match data {
        ColumnData::I8(c) => ints(&c.values),
        ColumnData::I16(c) => ints(&c.values),
        ColumnData::I32(c) => ints(&c.values),
        ColumnData::I64(c) => ints(&c.values),
        ColumnData::F32(c) => floats(&c.values, f64::from, |v: f32| {
            u64::from(kernels::f32_key(v.to_bits()))
        }),
        ColumnData::F64(c) => floats(&c.values, |v| v, |v: f64| kernels::f64_key(v.to_bits())),
        _ => return None,
    })
}

/// Min/max/NaN statistics over the non-null values.
fn compute_stats(data: &ColumnData) -> BlockStats {
    compute_stats_dense(data).unwrap_or_else(|| compute_stats_general(data))
}

/// [`compute_stats`] for any column (nulls included).
fn compute_stats_general(data: &ColumnData) -> BlockStats {
    let valid = |row: usize| data.validity().is_none_or(|validity| validity.get(row));
    fn int_stats<T: Lane>(values: &[T], valid: impl Fn(usize) -> bool) -> Option<MinMax> {
        let mut range: Option<(i64, i64)> = None;
        for (row, value) in values.iter().enumerate() {
            if valid(row) {
                let value = value.to_u64() as i64;
                range = Some(range.map_or((value, value), |(min, max)| {
                    (min.min(value), max.max(value))
                }));
            }
        }
        range.map(|(min, max)| MinMax::Int { min, max })
    }
    fn float_stats(values: impl Iterator<Item = f64>) -> (Option<MinMax>, bool) {
        let mut has_nan = false;
        let mut range: Option<(f64, f64)> = None;
        for value in values {
            if value.is_nan() {
                has_nan = true;
                continue;
            }
            range = Some(range.map_or((value, value), |(min, max)| {
                (
                    if value.total_cmp(&min).is_lt() {
                        value
                    } else {
                        min
                    },
                    if value.total_cmp(&max).is_gt() {
                        value
                    } else {
                        max
                    },
                )
            }));
        }
        (range.map(|(min, max)| MinMax::Float { min, max }), has_nan)
    }
    let rows = data.len();
    let (min_max, has_nan) = match data {
        ColumnData::Bool(column) => {
            let mut seen = [false; 2];
            for row in (0..rows).filter(|&row| valid(row)) {
                seen[usize::from(column.values.get(row))] = true;
            }
            let min_max = match seen {
                [false, false] => None,
                [true, false] => Some(MinMax::Bool {
                    min: false,
                    max: false,
                }),
                [false, true] => Some(MinMax::Bool {
                    min: true,
                    max: true,
                }),
                [true, true] => Some(MinMax::Bool {
                    min: false,
                    max: true,
                }),
            };
            (min_max, false)
        }
        ColumnData::I8(column) => (int_stats(&column.values, valid), false),
        ColumnData::I16(column) => (int_stats(&column.values, valid), false),
        ColumnData::I32(column) => (int_stats(&column.values, valid), false),
        ColumnData::I64(column) => (int_stats(&column.values, valid), false),
        ColumnData::F32(column) => float_stats(
            column
                .values
                .iter()
                .enumerate()
                .filter(|(row, _)| valid(*row))
                .map(|(_, v)| f64::from(*v)),
        ),
        ColumnData::F64(column) => float_stats(
            column
                .values
                .iter()
                .enumerate()
                .filter(|(row, _)| valid(*row))
                .map(|(_, v)| *v),
        ),
        ColumnData::Utf8(column) | ColumnData::Binary(column) => {
            let mut range: Option<(&[u8], &[u8])> = None;
            for row in (0..rows).filter(|&row| valid(row)) {
                let value = column.value(row);
                range = Some(range.map_or((value, value), |(min, max)| {
                    (min.min(value), max.max(value))
                }));
            }
            (range.and_then(|(min, max)| bytes_bounds(min, max)), false)
        }
    };
    BlockStats { min_max, has_nan }
}

/// Byte-string bounds truncated to [`MAX_STAT_BYTES`]: the min becomes a
/// prefix (still a lower bound); the max becomes its prefix with the last
/// byte below 0xFF incremented (still an upper bound). `None` when no upper
/// bound fits.
fn bytes_bounds(min: &[u8], max: &[u8]) -> Option<MinMax> {
    let mut truncated = false;
    let min_bound = if min.len() > MAX_STAT_BYTES {
        truncated = true;
        min[..MAX_STAT_BYTES].to_vec()
    } else {
        min.to_vec()
    };
    let max_bound = if max.len() > MAX_STAT_BYTES {
        truncated = true;
        let mut bound = max[..MAX_STAT_BYTES].to_vec();
        let last = bound.iter().rposition(|&byte| byte != 0xFF)?;
        bound.truncate(last + 1);
        bound[last] += 1;
        bound
    } else {
        max.to_vec()
    };
    Some(MinMax::Bytes {
        min: min_bound,
        max: max_bound,
        truncated,
    })
}

#[cfg(test)]
mod speed_path_tests {
    use super::*;
    use crate::column::PrimitiveColumn;

    #[test]
    fn dense_stats_equal_the_general_path() {
        let floats = vec![
            vec![1.5f64, -0.0, 0.0, -3.25, f64::INFINITY, 7.0],
            vec![f64::NAN, 2.0, -2.0, f64::NEG_INFINITY],
            vec![0.0, -0.0],
            vec![f64::NAN],
            vec![],
        ];
        for values in floats {
            let f64s = ColumnData::F64(PrimitiveColumn::new(values.clone()));
            assert_eq!(
                compute_stats_dense(&f64s),
                Some(compute_stats_general(&f64s))
            );
            let f32s = ColumnData::F32(PrimitiveColumn::new(
                values.iter().map(|&v| v as f32).collect(),
            ));
            assert_eq!(
                compute_stats_dense(&f32s),
                Some(compute_stats_general(&f32s))
            );
        }
        let ints = ColumnData::I16(PrimitiveColumn::new(vec![3, -7, i16::MAX, 0]));
        assert_eq!(
            compute_stats_dense(&ints),
            Some(compute_stats_general(&ints))
        );
        let nulls = ColumnData::I32(PrimitiveColumn::from_options(&[Some(1), None]));
        assert_eq!(compute_stats_dense(&nulls), None);
    }

    #[test]
    fn distinct_matches_a_hash_set() {
        let mut state = 7u64;
        for round in 0..200usize {
            let modulus = 1 + (round * 37) % 3000;
            let values: Vec<u32> = (0..5000)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) as usize % modulus) as u32
                })
                .collect();
            let mut expected: Vec<u32> = values.clone();
            expected.sort_unstable();
            expected.dedup();
            for limit in [1, 16, 1000, 2048, 4096] {
                let got = distinct(&values, limit, |v: u32| u64::from(v));
                if expected.len() <= limit {
                    assert_eq!(got.as_deref(), Some(expected.as_slice()), "limit {limit}");
                } else {
                    assert_eq!(got, None, "limit {limit}");
                }
            }
        }
    }

    #[test]
    fn round_half_away_is_round() {
        let mut state = 11u64;
        let mut values = vec![
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            4503599627370497.0,
            1e300,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ];
        for _ in 0..100_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            values.push(f64::from_bits(state));
            values.push((state >> 11) as f64 / 1024.0 - 4e12);
        }
        for value in values {
            let (ours, std) = (round_half_away(value), value.round());
            assert!(
                ours.to_bits() == std.to_bits() || (ours.is_nan() && std.is_nan()),
                "{value:e}: {ours:e} != {std:e}"
            );
        }
    }

    #[test]
    fn useful_dict_len_is_the_largest_that_fits() {
        for (rows, width, best) in [(6000, 4, 15000), (100, 8, 900), (5000, 1, 10), (1, 8, 1000)] {
            let limit = 4096;
            let found = useful_dict_len(rows, width, best, 0, limit);
            let brute = (1..=limit)
                .filter(|&d| dict_size(rows, d, width) < best)
                .max()
                .unwrap_or(0);
            assert_eq!(found, brute, "rows {rows} width {width} best {best}");
        }
    }
}
