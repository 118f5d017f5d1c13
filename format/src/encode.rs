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
    let frame = int_frame(&stats);
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
        ColumnData::I8(column) => encode_ints(&fill_nulls(&column.values, validity), frame, forced),
        ColumnData::I16(column) => {
            encode_ints(&fill_nulls(&column.values, validity), frame, forced)
        }
        ColumnData::I32(column) => {
            encode_ints(&fill_nulls(&column.values, validity), frame, forced)
        }
        ColumnData::I64(column) => {
            encode_ints(&fill_nulls(&column.values, validity), frame, forced)
        }
        ColumnData::F32(column) => encode_floats(
            &fill_nulls(&column.values, validity),
            &stats,
            forced,
            auto_lz4,
        ),
        ColumnData::F64(column) => encode_floats(
            &fill_nulls(&column.values, validity),
            &stats,
            forced,
            auto_lz4,
        ),
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
            crc32c: crate::checksum::crc32c(&bytes),
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
fn distinct<T: Lane>(values: &[T], limit: usize, key: impl Fn(T) -> u64) -> Option<Vec<T>> {
    let mut table = IdTable::with_expected(limit.min(values.len()).min(64));
    let mut dict = Vec::new();
    for &value in values {
        let (_, new) = table.id(value.to_u64(), limit)?;
        if new {
            dict.push(value);
        }
    }
    dict.sort_unstable_by_key(|&value| key(value));
    Some(dict)
}

/// Open-addressing table from u64 keys to dense ids in first-seen order
/// (load factor <= 1/2, doubling as it fills). The encoder counts distinct
/// values of every block it weighs a dictionary for; a general hash map
/// (SipHash, growth by rehashing entries) dominated the writer's profile,
/// and a table sized for the largest dictionary allowed spent its time
/// clearing memory for blocks of two values.
struct IdTable {
    keys: Vec<u64>,
    /// `u32::MAX` marks an empty slot.
    ids: Vec<u32>,
    mask: usize,
    len: usize,
}

impl IdTable {
    fn with_expected(count: usize) -> IdTable {
        let capacity = (2 * count.max(1)).next_power_of_two().max(16);
        IdTable {
            keys: vec![0; capacity],
            ids: vec![u32::MAX; capacity],
            mask: capacity - 1,
            len: 0,
        }
    }

    /// Distinct keys seen.
    fn len(&self) -> usize {
        self.len
    }

    /// The slot holding `key`, or the empty slot where it would go.
    #[inline(always)]
    fn find(&self, key: u64) -> usize {
        let mut slot = (mix64(key) as usize) & self.mask;
        while self.ids[slot] != u32::MAX && self.keys[slot] != key {
            slot = (slot + 1) & self.mask;
        }
        slot
    }

    /// The id of `key` and whether it is new (ids count up from 0), or
    /// `None` when it is new and `limit` keys are held already.
    #[inline(always)]
    fn id(&mut self, key: u64, limit: usize) -> Option<(u32, bool)> {
        let mut slot = self.find(key);
        let id = self.ids[slot];
        if id != u32::MAX {
            return Some((id, false));
        }
        if self.len >= limit {
            return None;
        }
        if 2 * (self.len + 1) > self.ids.len() {
            self.grow();
            slot = self.find(key);
        }
        let id = self.len as u32;
        self.keys[slot] = key;
        self.ids[slot] = id;
        self.len += 1;
        Some((id, true))
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = 2 * self.ids.len();
        let keys = std::mem::replace(&mut self.keys, vec![0; capacity]);
        let ids = std::mem::replace(&mut self.ids, vec![u32::MAX; capacity]);
        self.mask = capacity - 1;
        for (key, id) in keys.into_iter().zip(ids) {
            if id != u32::MAX {
                let mut slot = (mix64(key) as usize) & self.mask;
                while self.ids[slot] != u32::MAX {
                    slot = (slot + 1) & self.mask;
                }
                self.keys[slot] = key;
                self.ids[slot] = id;
            }
        }
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

/// A frame of reference `(base, width)`: every value less `base` (wrapping,
/// in the lane's width) is `< 2^width`.
type Frame = (u64, u32);

/// The frame of an integer block from its exact statistics (the values in
/// null slots are copies of non-null values, so they do not widen it).
fn int_frame(stats: &BlockStats) -> Frame {
    match stats.min_max {
        Some(MinMax::Int { min, max }) => (min as u64, bits_needed(max.wrapping_sub(min) as u64)),
        // Every row null: the filled values are all 0.
        _ => (0, 0),
    }
}

fn encode_for_lanes<T: Lane>(values: &[T], (base, width): Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + packed_len(values.len(), width));
    push_u64(&mut out, base);
    out.push(width as u8);
    out.extend_from_slice(&[0; 7]);
    let mask = mask(width);
    kernels::pack_map(
        values,
        width,
        |v| v.to_u64().wrapping_sub(base) & mask,
        &mut out,
    );
    out
}

fn mask(width: u32) -> u64 {
    if width == 0 {
        0
    } else {
        u64::MAX >> (64 - width)
    }
}

fn encode_delta_lanes<T: Lane>(values: &[T], (min_delta, width): (i64, u32)) -> Vec<u8> {
    let first = values.first().map_or(0, |v| v.to_u64());
    let count = values.len().saturating_sub(1);
    let mut out = Vec::with_capacity(24 + packed_len(count, width));
    push_u64(&mut out, first);
    push_u64(&mut out, min_delta as u64);
    out.push(width as u8);
    out.extend_from_slice(&[0; 7]);
    kernels::pack_fn(
        count,
        width,
        |index| {
            let delta = sign_extend(
                values[index + 1]
                    .to_u64()
                    .wrapping_sub(values[index].to_u64()),
                T::BITS,
            );
            delta.wrapping_sub(min_delta) as u64
        },
        &mut out,
    );
    out
}

/// A dictionary and the code of every row.
struct DictPlan<T> {
    /// Distinct values, strictly increasing by the sort key.
    dict: Vec<T>,
    /// Index into `dict` of each row's value.
    codes: Vec<u32>,
}

/// The dictionary of `values` sorted by `key` and the code of each row, or
/// `None` when there are more than `limit` distinct values. One pass over
/// an [`IdTable`] (sized for `expected` values) gives each row the index of
/// its value in first-seen order; the codes are then renumbered to the
/// sorted order.
fn dict_plan<T: Lane>(
    values: &[T],
    limit: usize,
    expected: usize,
    key: impl Fn(T) -> u64,
) -> Option<DictPlan<T>> {
    let mut table = IdTable::with_expected(expected.min(limit));
    let mut seen: Vec<T> = Vec::new();
    let mut codes = Vec::with_capacity(values.len());
    for &value in values {
        let (id, new) = table.id(value.to_u64(), limit)?;
        if new {
            seen.push(value);
        }
        codes.push(id);
    }
    let mut order: Vec<u32> = (0..seen.len() as u32).collect();
    order.sort_unstable_by_key(|&id| key(seen[id as usize]));
    let mut rank = vec![0u32; seen.len()];
    for (position, &id) in order.iter().enumerate() {
        rank[id as usize] = position as u32;
    }
    for code in &mut codes {
        *code = rank[*code as usize];
    }
    Some(DictPlan {
        dict: order.iter().map(|&id| seen[id as usize]).collect(),
        codes,
    })
}

fn encode_dict_plan<T: Lane>(plan: &DictPlan<T>) -> Vec<u8> {
    let width = bits_needed(plan.dict.len().saturating_sub(1) as u64);
    let value_bytes = std::mem::size_of::<T>();
    let mut out = Vec::with_capacity(dict_size(plan.codes.len(), plan.dict.len(), value_bytes));
    push_u32(&mut out, plan.dict.len() as u32);
    out.push(width as u8);
    out.extend_from_slice(&[0; 3]);
    push_lanes(&mut out, &plan.dict);
    pad8(&mut out);
    kernels::pack_map(&plan.codes, width, u64::from, &mut out);
    out
}

/// Appends lane values little-endian.
fn push_lanes<T: Lane>(out: &mut Vec<u8>, values: &[T]) {
    #[cfg(target_endian = "little")]
    out.extend_from_slice(bytemuck::cast_slice(values));
    #[cfg(not(target_endian = "little"))]
    for value in values {
        let width = (T::BITS / 8) as usize;
        out.extend_from_slice(&value.to_u64().to_le_bytes()[..width]);
    }
}

/// Rows the encoding choice looks at: the whole block up to this many rows,
/// else [`SAMPLE_RUNS`] runs of [`SAMPLE_RUN`] consecutive rows spread
/// evenly over it (runs keep neighbours together, so deltas are sampled too).
const SAMPLE_ROWS: usize = SAMPLE_RUNS * SAMPLE_RUN;
/// Runs of the choice sample.
const SAMPLE_RUNS: usize = 32;
/// Rows per run of the choice sample.
const SAMPLE_RUN: usize = 32;

/// The choice sample of `values` as u64 keys (`key` of each row); true when
/// it is the whole block (every estimate is then exact).
fn sample_keys<T: Copy>(values: &[T], key: impl Fn(T) -> u64) -> (Vec<u64>, bool) {
    let rows = values.len();
    if rows <= SAMPLE_ROWS {
        return (values.iter().map(|&v| key(v)).collect(), true);
    }
    let span = rows - SAMPLE_RUN;
    let mut sample = Vec::with_capacity(SAMPLE_ROWS);
    for run in 0..SAMPLE_RUNS {
        let start = run * span / (SAMPLE_RUNS - 1);
        sample.extend(values[start..start + SAMPLE_RUN].iter().map(|&v| key(v)));
    }
    (sample, false)
}

/// Value counts of a choice sample.
struct SampleCounts {
    /// Distinct keys.
    distinct: usize,
    /// Keys seen once.
    singletons: usize,
    /// Keys seen twice.
    doubletons: usize,
    /// The most frequent key (the smallest among equals).
    mode: u64,
    /// How often it was seen.
    mode_count: usize,
}

fn count_sample(keys: &[u64]) -> SampleCounts {
    let mut table = IdTable::with_expected(keys.len());
    let mut seen: Vec<u64> = Vec::with_capacity(keys.len());
    let mut counts: Vec<u32> = Vec::with_capacity(keys.len());
    for &key in keys {
        match table.id(key, usize::MAX) {
            Some((_, true)) => {
                seen.push(key);
                counts.push(1);
            }
            Some((id, false)) => counts[id as usize] += 1,
            None => {}
        }
    }
    let mut summary = SampleCounts {
        distinct: table.len(),
        singletons: 0,
        doubletons: 0,
        mode: 0,
        mode_count: 0,
    };
    for (&key, &count) in seen.iter().zip(&counts) {
        let count = count as usize;
        summary.singletons += usize::from(count == 1);
        summary.doubletons += usize::from(count == 2);
        if count > summary.mode_count || (count == summary.mode_count && key < summary.mode) {
            summary.mode = key;
            summary.mode_count = count;
        }
    }
    summary
}

/// Keys of the choice sample whose values are counted: all of a whole
/// block of at most [`SAMPLE_ROWS`] rows, else every [`COUNT_STRIDE`]-th.
/// A quarter of the sample is enough to see repeats: with no repeat among
/// 256 values, a block of `d` equally frequent values has
/// `d > 256^2 / 2 / ln(1/p)` with confidence `1 - p` (birthday bound), over
/// 2900 at p = 10^-5, too many for a dictionary to beat the exact sizes.
const COUNT_STRIDE: usize = 4;

/// [`count_sample`] over the counted keys of `sample`: the counts, how many
/// keys were counted, and whether they are the whole block.
fn count_sample_of(sample: &[u64], whole: bool) -> (SampleCounts, usize, bool) {
    if whole {
        return (count_sample(sample), sample.len(), true);
    }
    let counted: Vec<u64> = sample.iter().step_by(COUNT_STRIDE).copied().collect();
    (count_sample(&counted), counted.len(), false)
}

/// Estimated distinct values of a block from its sample: exact for a whole
/// block; `None` when no value repeats in the sample (by the birthday bound
/// the block then holds far more distinct values than a dictionary could
/// take); else the bias-corrected Chao1 estimate `d + f1 (f1 - 1) / (2 (f2 + 1))`
/// (Chao 1984), at most `rows`.
fn estimate_distinct(
    counts: &SampleCounts,
    sample_len: usize,
    rows: usize,
    whole: bool,
) -> Option<usize> {
    if whole {
        return Some(counts.distinct);
    }
    if counts.distinct >= sample_len {
        return None;
    }
    let f1 = counts.singletons;
    let unseen = f1 * f1.saturating_sub(1) / (2 * (counts.doubletons + 1));
    Some((counts.distinct + unseen).min(rows))
}

/// Width of the deltas within the sample's runs (of the whole block when
/// `whole`): `(min_delta, width)` as [`delta_of`] computes it.
fn sample_delta(sample: &[u64], whole: bool, bits: u32) -> (i64, u32) {
    let run = if whole {
        sample.len().max(1)
    } else {
        SAMPLE_RUN
    };
    let mut min = i64::MAX;
    let mut max = i64::MIN;
    for chunk in sample.chunks(run) {
        for pair in chunk.windows(2) {
            let delta = sign_extend(pair[1].wrapping_sub(pair[0]), bits);
            min = min.min(delta);
            max = max.max(delta);
        }
    }
    if min > max {
        return (0, 0);
    }
    (min, bits_needed(max.wrapping_sub(min) as u64))
}

/// Estimated SPARSE size from the sample, when its most frequent value
/// fills more than half of it: exceptions scaled to the block, gaps of a
/// random spread (the largest of `k` geometric gaps of mean `rows / k` is
/// about `rows / k * ln k`), exception values as FOR over the sample's
/// exceptions or as a dictionary of them, whichever is smaller.
fn sparse_estimate(
    sample: &[u64],
    counts: &SampleCounts,
    counted: usize,
    rows: usize,
    whole: bool,
    bits: u32,
) -> Option<usize> {
    if counts.mode_count * 2 <= counted {
        return None;
    }
    let sample_exceptions = counted - counts.mode_count;
    let exceptions = if whole {
        sample_exceptions
    } else {
        (sample_exceptions * rows).div_ceil(counted)
    };
    if exceptions == 0 {
        return Some(32);
    }
    let mean_gap = rows / (exceptions + 1);
    let log = (usize::BITS - exceptions.leading_zeros()) as usize;
    let gap_width = bits_needed((mean_gap * (1 + log * 7 / 10)) as u64);
    let flip = 1u64 << 63;
    let (mut min, mut max) = (u64::MAX, 0u64);
    for &key in sample.iter().filter(|&&key| key != counts.mode) {
        let order = sign_extend(key, bits) as u64 ^ flip;
        min = min.min(order);
        max = max.max(order);
    }
    let for_width = if min <= max {
        bits_needed(max - min)
    } else {
        0
    };
    let value_bytes = (bits / 8) as usize;
    let for_size = packed_len(exceptions, for_width);
    let dict_values = dict_size(
        exceptions,
        counts.distinct.saturating_sub(1).max(1),
        value_bytes,
    ) - 8;
    Some(32 + packed_len(exceptions, gap_width) + for_size.min(dict_values))
}

/// One encoding the automatic choice weighs: the size of its values
/// section, exact or estimated from the sample.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    encoding: Encoding,
    size: usize,
    exact: bool,
}

impl Candidate {
    fn exact(encoding: Encoding, size: usize) -> Candidate {
        Candidate {
            encoding,
            size,
            exact: true,
        }
    }

    fn estimated(encoding: Encoding, size: usize) -> Candidate {
        Candidate {
            encoding,
            size,
            exact: false,
        }
    }
}

/// Index of the smallest candidate; the first listed wins ties.
fn smallest(candidates: &[Candidate]) -> usize {
    let mut best = 0;
    for (index, candidate) in candidates.iter().enumerate() {
        if candidate.size < candidates[best].size {
            best = index;
        }
    }
    best
}

/// The smallest exact size among candidates other than `except`.
fn best_exact_other(candidates: &[Candidate], except: usize) -> usize {
    candidates
        .iter()
        .enumerate()
        .filter(|&(index, candidate)| index != except && candidate.exact)
        .map(|(_, candidate)| candidate.size)
        .min()
        .unwrap_or(usize::MAX)
}

fn encode_ints<T: Lane>(
    values: &[T],
    frame: Frame,
    forced: Option<Encoding>,
) -> Result<Values, String> {
    debug_assert_eq!(frame, frame_of(values), "frame from the statistics");
    let rows = values.len();
    let value_bytes = (T::BITS / 8) as usize;
    if let Some(encoding) = forced {
        let raw = match encoding {
            Encoding::Plain => bytemuck::cast_slice(values).to_vec(),
            Encoding::ForBitpack => encode_for_lanes(values, frame),
            Encoding::DeltaBitpack => encode_delta_lanes(values, delta_of(values)),
            Encoding::Dictionary => {
                let plan = dict_plan(values, MAX_DICT_LEN, 64, T::order_key).ok_or_else(|| {
                    format!("more than {MAX_DICT_LEN} distinct values for a dictionary")
                })?;
                encode_dict_plan(&plan)
            }
            Encoding::Sparse => {
                let plan = sparse_plan(values, true).ok_or("no sparse plan")?;
                encode_sparse(values, &plan)
            }
            other => return Err(format!("encoding {other:?} is not defined for integers")),
        };
        return Ok(Values::plain(encoding, raw));
    }
    // Exact for free: PLAIN, and FOR from the statistics. Estimated from the
    // sample: DELTA, DICTIONARY, SPARSE; the smallest estimate is made exact
    // (computed over the block) until the smallest candidate is exact.
    let mut candidates = vec![
        Candidate::exact(Encoding::Plain, rows * value_bytes),
        Candidate::exact(Encoding::ForBitpack, 16 + packed_len(rows, frame.1)),
    ];
    let (sample, whole) = sample_keys(values, T::to_u64);
    if rows > 0 {
        let (_, width) = sample_delta(&sample, whole, T::BITS);
        candidates.push(Candidate {
            encoding: Encoding::DeltaBitpack,
            size: 24 + packed_len(rows - 1, width),
            exact: whole,
        });
    }
    let (counts, counted, counted_whole) = count_sample_of(&sample, whole);
    let dict_limit = AUTO_DICT_MAX.min(rows / 2);
    let mut dict_estimate = 0;
    if let Some(distinct) = estimate_distinct(&counts, counted, rows, counted_whole)
        && (1..=dict_limit).contains(&distinct)
    {
        dict_estimate = distinct;
        candidates.push(Candidate::estimated(
            Encoding::Dictionary,
            dict_size(rows, distinct, value_bytes),
        ));
    }
    if let Some(size) = sparse_estimate(&sample, &counts, counted, rows, counted_whole, T::BITS) {
        candidates.push(Candidate::estimated(Encoding::Sparse, size));
    }
    let mut delta = None;
    let mut dict = None;
    let mut sparse = None;
    let chosen = loop {
        let best = smallest(&candidates);
        if candidates[best].exact {
            break candidates[best].encoding;
        }
        let bound = best_exact_other(&candidates, best);
        let candidate = &mut candidates[best];
        candidate.exact = true;
        match candidate.encoding {
            Encoding::DeltaBitpack => {
                let parameters = delta_of(values);
                candidate.size = 24 + packed_len(rows.saturating_sub(1), parameters.1);
                delta = Some(parameters);
            }
            Encoding::Dictionary => {
                let limit = useful_dict_len(rows, value_bytes, bound, 0, dict_limit);
                match (limit > 0).then(|| dict_plan(values, limit, dict_estimate, T::order_key)) {
                    Some(Some(plan)) => {
                        candidate.size = dict_size(rows, plan.dict.len(), value_bytes);
                        dict = Some(plan);
                    }
                    _ => candidate.size = usize::MAX,
                }
            }
            Encoding::Sparse => match sparse_plan(values, false) {
                Some(plan) => {
                    candidate.size = plan.size;
                    sparse = Some(plan);
                }
                None => candidate.size = usize::MAX,
            },
            _ => {}
        }
    };
    let raw = match chosen {
        Encoding::ForBitpack => encode_for_lanes(values, frame),
        Encoding::DeltaBitpack => {
            encode_delta_lanes(values, delta.unwrap_or_else(|| delta_of(values)))
        }
        Encoding::Dictionary => match &dict {
            Some(plan) => encode_dict_plan(plan),
            None => return Err("dictionary chosen without a plan".into()),
        },
        Encoding::Sparse => match &sparse {
            Some(plan) => encode_sparse(values, plan),
            None => return Err("sparse chosen without a plan".into()),
        },
        _ => bytemuck::cast_slice(values).to_vec(),
    };
    Ok(Values::plain(chosen, raw))
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
    /// The value of a statistic (exact: f32 statistics are widened f32s).
    fn from_f64(value: f64) -> Self;
    /// The value of a bit pattern held in the low bits of a u64.
    fn from_bits_u64(bits: u64) -> Self;
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
    fn from_f64(value: f64) -> f64 {
        value
    }
    fn from_bits_u64(bits: u64) -> f64 {
        f64::from_bits(bits)
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
    fn from_f64(value: f64) -> f32 {
        value as f32
    }
    fn from_bits_u64(bits: u64) -> f32 {
        f32::from_bits(bits as u32)
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

/// Values of [`alp_precheck`], which rules ALP out before the exponent
/// search: one per run of the choice sample.
const ALP_PRECHECK: usize = SAMPLE_RUNS;

/// A quick ALP estimate on a few values, in bits per value: the cheapest
/// exponent's width plus its exceptions (a position and a raw value each),
/// `None` when every exponent leaves more than half of `sample` as
/// exceptions. An exponent stops as soon as half of the sample failed, so
/// full-precision noise costs about half a sample per exponent. Only when
/// this beats the exact sizes is the 256-value exponent search run.
fn alp_precheck<F: Float>(sample: &[F]) -> Option<u64> {
    if sample.is_empty() {
        return None;
    }
    let allowed = sample.len() / 2;
    let exception_bits = 32 + 8 * std::mem::size_of::<F>() as u64;
    let mut best: Option<u64> = None;
    'exponents: for exponent in 0..=F::MAX_EXPONENT {
        let mut failed = 0usize;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for value in sample {
            match value.alp_int(exponent) {
                Some(int) => {
                    min = min.min(int);
                    max = max.max(int);
                }
                None => {
                    failed += 1;
                    if failed > allowed {
                        continue 'exponents;
                    }
                }
            }
        }
        let width = if min <= max {
            bits_needed(max.wrapping_sub(min) as u64)
        } else {
            0
        };
        let cost = u64::from(width) * sample.len() as u64 + failed as u64 * exception_bits;
        best = Some(best.map_or(cost, |best| best.min(cost)));
        if failed == 0 {
            // A larger exponent only widens the integers.
            break;
        }
    }
    best.map(|cost| cost.div_ceil(sample.len() as u64))
}

/// Estimated ALP size at `exponent`: exceptions scaled from the exponent
/// sample; the width is exact (an upper bound at most) when the block's
/// smallest and largest values convert, since conversion is monotonic, else
/// the sample's.
fn alp_estimate<F: Float>(values: &[F], exponent: u8, stats: &BlockStats) -> usize {
    let rows = values.len();
    let step = rows.div_ceil(ALP_SAMPLE).max(1);
    let mut exceptions = 0usize;
    let mut sampled = 0usize;
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for value in values.iter().step_by(step) {
        sampled += 1;
        match value.alp_int(exponent) {
            Some(int) => {
                min = min.min(int);
                max = max.max(int);
            }
            None => exceptions += 1,
        }
    }
    if let Some(MinMax::Float {
        min: low,
        max: high,
    }) = stats.min_max
        && let (Some(low), Some(high)) = (
            F::from_f64(low).alp_int(exponent),
            F::from_f64(high).alp_int(exponent),
        )
    {
        min = min.min(low);
        max = max.max(high);
    }
    let width = if min <= max {
        bits_needed(max.wrapping_sub(min) as u64)
    } else {
        0
    };
    let exceptions = if step == 1 {
        exceptions
    } else {
        (exceptions * rows).div_ceil(sampled.max(1))
    };
    24 + packed_len(rows, width)
        + (4 * exceptions).next_multiple_of(8)
        + exceptions * std::mem::size_of::<F>()
}

/// The FLOAT_FOR frame over order keys: from the exact statistics, unless a
/// NaN (outside the statistics' range) needs a pass over the keys.
fn float_frame<F: Float>(values: &[F], stats: &BlockStats) -> Frame {
    if stats.has_nan || values.is_empty() {
        return float_frame_scan(values);
    }
    let key = |value: f64| F::key_of_bits(F::from_f64(value).bits());
    match stats.min_max {
        Some(MinMax::Float { min, max }) => (key(min), bits_needed(key(max) - key(min))),
        // Every row null: the filled values are all 0.0.
        _ => (F::key_of_bits(F::default().bits()), 0),
    }
}

fn float_frame_scan<F: Float>(values: &[F]) -> Frame {
    let Some(first) = values.first() else {
        return (0, 0);
    };
    let first = F::key_of_bits(first.bits());
    let (min, max) = values.iter().fold((first, first), |(min, max), v| {
        let key = F::key_of_bits(v.bits());
        (min.min(key), max.max(key))
    });
    (min, bits_needed(max - min))
}

fn encode_float_for<F: Float>(values: &[F], (base, width): Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + packed_len(values.len(), width));
    push_u64(&mut out, base);
    out.push(width as u8);
    out.extend_from_slice(&[0; 7]);
    let mask = mask(width);
    kernels::pack_map(
        values,
        width,
        |v| F::key_of_bits(v.bits()).wrapping_sub(base) & mask,
        &mut out,
    );
    out
}

fn shuffled<F: Float>(values: &[F]) -> Vec<u8> {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    let mut out = vec![0u8; bytes.len()];
    F::shuffle(bytes, &mut out);
    out
}

fn encode_floats<F: Float>(
    values: &[F],
    stats: &BlockStats,
    forced: Option<Encoding>,
    auto_lz4: bool,
) -> Result<Values, String> {
    let rows = values.len();
    let value_bytes = std::mem::size_of::<F>();
    let bits: &[F::Bits] = bytemuck::cast_slice(values);
    let dict_key = |bits: F::Bits| F::key_of_bits(bits);
    let frame = float_frame(values, stats);
    debug_assert_eq!(frame, float_frame_scan(values), "frame from the statistics");
    if let Some(encoding) = forced {
        let raw = match encoding {
            Encoding::Plain => bytemuck::cast_slice(values).to_vec(),
            Encoding::ByteShuffle => shuffled(values),
            Encoding::FloatFor => encode_float_for(values, frame),
            Encoding::Alp => encode_alp(values, alp_exponent(values).unwrap_or(0)),
            Encoding::Dictionary => {
                let plan = dict_plan(bits, MAX_DICT_LEN, 64, dict_key).ok_or_else(|| {
                    format!("more than {MAX_DICT_LEN} distinct values for a dictionary")
                })?;
                encode_dict_plan(&plan)
            }
            other => return Err(format!("encoding {other:?} is not defined for floats")),
        };
        return Ok(Values::plain(encoding, raw));
    }
    // Exact for free: PLAIN, and FLOAT_FOR from the statistics. Estimated:
    // ALP (exponent from a 256-value sample, after a pre-check on a few
    // values) and DICTIONARY; the smallest estimate is made exact until the
    // smallest candidate is exact.
    let mut candidates = vec![
        Candidate::exact(Encoding::Plain, std::mem::size_of_val(values)),
        Candidate::exact(Encoding::FloatFor, 16 + packed_len(rows, frame.1)),
    ];
    let (sample, whole) = sample_keys(bits, |b: F::Bits| b.to_u64());
    let precheck: Vec<F> = sample
        .iter()
        .step_by(sample.len().div_ceil(ALP_PRECHECK).max(1))
        .map(|&key| F::from_bits_u64(key))
        .collect();
    let best_exact = candidates
        .iter()
        .map(|c| c.size)
        .min()
        .unwrap_or(usize::MAX);
    let exponent = match alp_precheck(&precheck) {
        Some(bits_per_value) if 24 + (rows as u64 * bits_per_value / 8) < best_exact as u64 => {
            alp_exponent(values)
        }
        _ => None,
    };
    if let Some(exponent) = exponent {
        candidates.push(Candidate::estimated(
            Encoding::Alp,
            alp_estimate(values, exponent, stats),
        ));
    }
    let (counts, counted, counted_whole) = count_sample_of(&sample, whole);
    let dict_limit = AUTO_DICT_MAX.min(rows / 2);
    let mut dict_estimate = 0;
    if let Some(distinct) = estimate_distinct(&counts, counted, rows, counted_whole)
        && (1..=dict_limit).contains(&distinct)
    {
        dict_estimate = distinct;
        candidates.push(Candidate::estimated(
            Encoding::Dictionary,
            dict_size(rows, distinct, value_bytes),
        ));
    }
    let mut alp = None;
    let mut dict = None;
    let chosen = loop {
        let best = smallest(&candidates);
        if candidates[best].exact {
            break best;
        }
        let bound = best_exact_other(&candidates, best);
        let candidate = &mut candidates[best];
        candidate.exact = true;
        match candidate.encoding {
            Encoding::Alp => {
                let raw = encode_alp(values, exponent.unwrap_or(0));
                candidate.size = raw.len();
                alp = Some(raw);
            }
            Encoding::Dictionary => {
                let limit = useful_dict_len(rows, value_bytes, bound, 0, dict_limit);
                match (limit > 0).then(|| dict_plan(bits, limit, dict_estimate, dict_key)) {
                    Some(Some(plan)) => {
                        candidate.size = dict_size(rows, plan.dict.len(), value_bytes);
                        dict = Some(plan);
                    }
                    _ => candidate.size = usize::MAX,
                }
            }
            _ => {}
        }
    };
    let Candidate {
        encoding: best_encoding,
        size: best_size,
        ..
    } = candidates[chosen];
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
    let raw = match best_encoding {
        Encoding::FloatFor => encode_float_for(values, frame),
        Encoding::Alp => match alp {
            Some(raw) => raw,
            None => return Err("ALP chosen without its section".into()),
        },
        Encoding::Dictionary => match &dict {
            Some(plan) => encode_dict_plan(plan),
            None => return Err("dictionary chosen without a plan".into()),
        },
        _ => bytemuck::cast_slice(values).to_vec(),
    };
    Ok(Values::plain(best_encoding, raw))
}

/// Longest value [`lex_key`] represents.
const SMALL_VALUE_BYTES: usize = 7;

/// A value of at most [`SMALL_VALUE_BYTES`] bytes as a u64 whose numeric
/// order is the bytewise order of the values: the bytes big-endian from the
/// top, the length in the low byte (so a prefix sorts first). Injective, so
/// equal keys mean equal values.
#[inline]
fn lex_key(value: &[u8]) -> u64 {
    let mut key = value.len() as u64;
    for (index, &byte) in value.iter().enumerate() {
        key |= u64::from(byte) << (56 - 8 * index);
    }
    key
}

/// The value of a [`lex_key`], in `out` (returns its length).
fn lex_value(key: u64, out: &mut [u8; SMALL_VALUE_BYTES]) -> usize {
    let len = ((key & 0xFF) as usize).min(SMALL_VALUE_BYTES);
    for (index, byte) in out.iter_mut().enumerate().take(len) {
        *byte = (key >> (56 - 8 * index)) as u8;
    }
    len
}

/// Smallest and largest value length of a variable-length column.
fn length_range(column: &VarColumn) -> (u32, u32) {
    let mut low = u32::MAX;
    let mut high = 0u32;
    for pair in column.offsets.windows(2) {
        let length = pair[1] - pair[0];
        low = low.min(length);
        high = high.max(length);
    }
    if low > high { (0, 0) } else { (low, high) }
}

/// The [`lex_key`] of every value, when none is longer than
/// [`SMALL_VALUE_BYTES`] (band names, codes).
fn small_keys(column: &VarColumn, max_len: u32) -> Option<Vec<u64>> {
    (max_len as usize <= SMALL_VALUE_BYTES).then(|| {
        (0..column.len())
            .map(|row| lex_key(column.value(row)))
            .collect()
    })
}

/// A hash of a byte string for the choice sample (collisions only blur an
/// estimate).
fn hash_bytes(value: &[u8]) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write(value);
    hasher.finish()
}

fn encode_var(column: &VarColumn, forced: Option<Encoding>) -> Result<Values, String> {
    let rows = column.len();
    let (min_len, max_len) = length_range(column);
    let (length_base, length_width) = (
        u64::from(min_len),
        bits_needed(u64::from(max_len - min_len)),
    );
    let plain_size = 8 + packed_len(rows, length_width) + column.data.len();
    let keys = small_keys(column, max_len);
    let dict_limit = match forced {
        Some(Encoding::Dictionary) => MAX_DICT_LEN,
        Some(_) => 0,
        None => AUTO_DICT_MAX.min(rows / 2),
    };
    // The automatic choice weighs a dictionary only when the sample repeats
    // values and its estimate beats PLAIN (both sizes of the dictionary are
    // then computed exactly, as before sampling).
    let mut expected = 64;
    let weigh = match forced {
        Some(_) => dict_limit > 0,
        None => {
            let (sample, whole) = match &keys {
                Some(keys) => sample_keys(keys, |key| key),
                None => {
                    let (rows_sampled, whole) =
                        sample_keys(&(0..rows as u32).collect::<Vec<u32>>(), u64::from);
                    let hashes = rows_sampled
                        .iter()
                        .map(|&row| hash_bytes(column.value(row as usize)))
                        .collect();
                    (hashes, whole)
                }
            };
            let (counts, counted, counted_whole) = count_sample_of(&sample, whole);
            match estimate_distinct(&counts, counted, rows, counted_whole) {
                Some(distinct) if (1..=dict_limit).contains(&distinct) => {
                    expected = distinct;
                    let average = column.data.len() / rows.max(1);
                    let estimate = 16
                        + packed_len(distinct, length_width)
                        + (distinct * average).next_multiple_of(8)
                        + packed_len(rows, bits_needed(distinct.saturating_sub(1) as u64));
                    estimate < plain_size
                }
                _ => false,
            }
        }
    };
    let dict = if weigh {
        match &keys {
            Some(keys) => dict_plan(keys, dict_limit, expected, |key| key).map(|plan| {
                let entries: Vec<Vec<u8>> = plan
                    .dict
                    .iter()
                    .map(|&key| {
                        let mut value = [0u8; SMALL_VALUE_BYTES];
                        let len = lex_value(key, &mut value);
                        value[..len].to_vec()
                    })
                    .collect();
                (entries, plan.codes)
            }),
            None => var_dict_general(column, dict_limit),
        }
    } else {
        None
    };
    let dict = match (forced, dict) {
        (Some(Encoding::Dictionary), None) => {
            return Err(format!(
                "more than {MAX_DICT_LEN} distinct values for a dictionary"
            ));
        }
        (None, Some((entries, codes))) if var_dict_size(rows, &entries) < plain_size => {
            Some((entries, codes))
        }
        (Some(Encoding::Dictionary), dict) => dict,
        (None, _) | (Some(Encoding::Plain), _) => None,
        (Some(other), _) => {
            return Err(format!(
                "encoding {other:?} is not defined for variable-length columns"
            ));
        }
    };
    let mut out = Vec::new();
    let encoding = match dict {
        None => {
            push_u32(&mut out, length_base as u32);
            out.push(length_width as u8);
            out.extend_from_slice(&[0; 3]);
            let offsets = &column.offsets;
            kernels::pack_fn(
                rows,
                length_width,
                |row| u64::from(offsets[row + 1] - offsets[row]) - length_base,
                &mut out,
            );
            out.extend_from_slice(&column.data);
            Encoding::Plain
        }
        Some((entries, codes)) => {
            let (entry_base, entry_width) = entries
                .iter()
                .map(|entry| entry.len() as u64)
                .fold(None, |range: Option<(u64, u64)>, len| {
                    Some(range.map_or((len, len), |(low, high)| (low.min(len), high.max(len))))
                })
                .map_or((0, 0), |(low, high)| (low, bits_needed(high - low)));
            let dict_data_len: usize = entries.iter().map(Vec::len).sum();
            let code_width = bits_needed(entries.len().saturating_sub(1) as u64);
            push_u32(&mut out, entries.len() as u32);
            out.push(code_width as u8);
            out.push(entry_width as u8);
            out.extend_from_slice(&[0; 2]);
            push_u32(&mut out, entry_base as u32);
            push_u32(&mut out, dict_data_len as u32);
            kernels::pack_fn(
                entries.len(),
                entry_width,
                |index| entries[index].len() as u64 - entry_base,
                &mut out,
            );
            for entry in &entries {
                out.extend_from_slice(entry);
            }
            pad8(&mut out);
            kernels::pack_map(&codes, code_width, u64::from, &mut out);
            Encoding::Dictionary
        }
    };
    Ok(Values::plain(encoding, out))
}

/// The sorted distinct values of a column (any lengths) and each row's
/// code, or `None` above `limit` distinct values.
fn var_dict_general(column: &VarColumn, limit: usize) -> Option<(Vec<Vec<u8>>, Vec<u32>)> {
    let mut ids: HashMap<&[u8], u32> = HashMap::default();
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut codes = Vec::with_capacity(column.len());
    for row in 0..column.len() {
        let value = column.value(row);
        let id = match ids.get(value) {
            Some(&id) => id,
            None => {
                if seen.len() >= limit {
                    return None;
                }
                ids.insert(value, seen.len() as u32);
                seen.push(value);
                seen.len() as u32 - 1
            }
        };
        codes.push(id);
    }
    let mut order: Vec<u32> = (0..seen.len() as u32).collect();
    order.sort_unstable_by_key(|&id| seen[id as usize]);
    let mut rank = vec![0u32; seen.len()];
    for (position, &id) in order.iter().enumerate() {
        rank[id as usize] = position as u32;
    }
    for code in &mut codes {
        *code = rank[*code as usize];
    }
    Some((
        order.iter().map(|&id| seen[id as usize].to_vec()).collect(),
        codes,
    ))
}

fn var_dict_size(rows: usize, dict: &[Vec<u8>]) -> usize {
    let (low, high) = dict.iter().fold((u64::MAX, 0u64), |(low, high), entry| {
        (low.min(entry.len() as u64), high.max(entry.len() as u64))
    });
    let entry_width = if low > high {
        0
    } else {
        bits_needed(high - low)
    };
    let data: usize = dict.iter().map(Vec::len).sum();
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
    /// The statistics of a float block from [`f32_key_range`] /
    /// [`f64_key_range`]: `(smallest key, largest key, any NaN)` over the
    /// non-NaN values, `back` turning a key into the value widened to f64.
    fn floats<K: Ord>(range: (K, K, bool), back: impl Fn(K) -> f64) -> BlockStats {
        let (low, high, has_nan) = range;
        // Keys of non-NaN values lie strictly inside the key range (its ends
        // are NaN patterns), so `low <= high` exactly when one was seen.
        BlockStats {
            min_max: (low <= high).then(|| MinMax::Float {
                min: back(low),
                max: back(high),
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
        ColumnData::F32(c) => floats(f32_key_range(bytemuck::cast_slice(&c.values)), |key| {
            f64::from(f32::from_bits(f32_from_key(key)))
        }),
        ColumnData::F64(c) => floats(f64_key_range(bytemuck::cast_slice(&c.values)), |key| {
            f64::from_bits(f64_from_key(key))
        }),
        _ => return None,
    })
}

/// `(smallest key, largest key, any NaN)` of f32 bit patterns, over the
/// non-NaN ones (`(u32::MAX, 0, _)` if none): branch-free, with NaNs masked
/// to the neutral element, so that it vectorizes (unsigned min/max lanes).
fn f32_key_range(bits: &[u32]) -> (u32, u32, bool) {
    let mut low = u32::MAX;
    let mut high = 0u32;
    let mut nan = 0u32;
    for &b in bits {
        // kernels::f32_key without a branch: negative values are inverted,
        // positive ones get the top bit.
        let key = b ^ (((b as i32 >> 31) as u32) | 0x8000_0000);
        let is_nan = u32::from(b & 0x7FFF_FFFF > 0x7F80_0000);
        let mask = is_nan.wrapping_neg();
        low = low.min(key | mask);
        high = high.max(key & !mask);
        nan |= is_nan;
    }
    (low, high, nan != 0)
}

/// [`f32_key_range`] for f64 bit patterns.
fn f64_key_range(bits: &[u64]) -> (u64, u64, bool) {
    let mut low = u64::MAX;
    let mut high = 0u64;
    let mut nan = 0u64;
    for &b in bits {
        let key = b ^ (((b as i64 >> 63) as u64) | 0x8000_0000_0000_0000);
        let is_nan = u64::from(b & 0x7FFF_FFFF_FFFF_FFFF > 0x7FF0_0000_0000_0000);
        let mask = is_nan.wrapping_neg();
        low = low.min(key | mask);
        high = high.max(key & !mask);
        nan |= is_nan;
    }
    (low, high, nan != 0)
}

/// The f32 bit pattern of an order key (inverse of [`kernels::f32_key`]).
fn f32_from_key(key: u32) -> u32 {
    if key >> 31 == 1 {
        key ^ (1 << 31)
    } else {
        !key
    }
}

/// The f64 bit pattern of an order key (inverse of [`kernels::f64_key`]).
fn f64_from_key(key: u64) -> u64 {
    if key >> 63 == 1 {
        key ^ (1 << 63)
    } else {
        !key
    }
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
            // Short values: the range of their lexicographic keys (no
            // comparison call per row).
            if length_range(column).1 as usize <= SMALL_VALUE_BYTES {
                let (low, high) = (0..rows)
                    .filter(|&row| valid(row))
                    .map(|row| lex_key(column.value(row)))
                    .fold((u64::MAX, 0u64), |(low, high), key| {
                        (low.min(key), high.max(key))
                    });
                let min_max = (low <= high).then(|| {
                    let (mut min, mut max) = ([0u8; SMALL_VALUE_BYTES], [0u8; SMALL_VALUE_BYTES]);
                    let (min_len, max_len) = (lex_value(low, &mut min), lex_value(high, &mut max));
                    MinMax::Bytes {
                        min: min[..min_len].to_vec(),
                        max: max[..max_len].to_vec(),
                        truncated: false,
                    }
                });
                return BlockStats {
                    min_max,
                    has_nan: false,
                };
            }
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
