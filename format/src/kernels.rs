//! Hot loops: free functions over primitive slices, without per-row branches
//! or allocation, shaped so that LLVM vectorizes or fully unrolls them.
//! `examples/kernel_speed.rs` and `examples/decode_speed.rs` measure them;
//! check those, not the source.
//!
//! # Bit-packed streams (spec: "Bit-packed stream")
//!
//! `count` values of `W` bits (0..=64) are stored as `count / 512` full
//! *groups* followed by a *tail* of the remaining `count % 512` values.
//!
//! * A group holds 512 values in `64 * W` bytes, interleaved across lanes
//!   (the FastLanes idea, Afroozeh & Boncz, VLDB 2023) so that one row of all
//!   lanes is unpacked with the same shift: SIMD without shuffles.
//!   *Narrow* groups (`W <= 32`): 16 lanes of `u32` words; value `i` of the
//!   group is row `i / 16` of lane `i % 16`; word `j` of lane `l` is word
//!   `16 * j + l` of the group; row `r` of a lane is bits `[r*W, r*W + W)` of
//!   the lane's little-endian bit string (bit `b` = bit `b % 32` of its word
//!   `b / 32`). *Wide* groups (`W > 32`): the same with 8 lanes of `u64` words
//!   (value `i` is row `i / 8` of lane `i % 8`, word `j` of lane `l` is word
//!   `8 * j + l`, rows of `W` bits in the lane's 64-bit words).
//! * The tail is one LSB-first bit string of `ceil(rem * W / 64)` `u64` words:
//!   value `k` is bits `[k*W, k*W + W)`. Unused high bits are zero.

/// Values per bit-packing group.
pub const GROUP: usize = 512;
/// Lanes of a narrow group (`u32` words).
const NARROW_LANES: usize = 16;
/// Lanes of a wide group (`u64` words).
const WIDE_LANES: usize = 8;
/// Rows of a narrow group.
const NARROW_ROWS: usize = GROUP / NARROW_LANES;
/// Rows of a wide group.
const WIDE_ROWS: usize = GROUP / WIDE_LANES;
// The row lists of `narrow_group` and `wide_group` are written out for these.
const _: () = assert!(NARROW_ROWS == 32 && WIDE_ROWS == 64);

/// Byte length of a bit-packed stream of `count` values of `width` bits.
pub const fn packed_len(count: usize, width: u32) -> usize {
    let width = width as usize;
    (count / GROUP) * 64 * width + ((count % GROUP) * width).div_ceil(64) * 8
}

/// Number of bits needed to store `max` (0 for 0).
pub const fn bits_needed(max: u64) -> u32 {
    64 - max.leading_zeros()
}

/// Appends the bit-packed stream of `values` at `width` bits to `out`.
/// Every value must be `< 2^width`.
pub fn pack(values: &[u64], width: u32, out: &mut Vec<u8>) {
    pack_map(values, width, |value| value, out);
}

/// Appends the bit-packed stream of `map(values[0]), map(values[1]), …` at
/// `width` bits to `out` (every mapped value `< 2^width`). The encoders pass
/// their transform (frame of reference, float keys, dictionary codes) as
/// `map`, so no intermediate vector of offsets is built: each group of 512
/// is mapped into a stack buffer and packed row by row, 16 (or 8) lanes at a
/// time with one shift per row, which vectorizes.
#[inline]
pub fn pack_map<S: Copy>(values: &[S], width: u32, map: impl Fn(S) -> u64, out: &mut Vec<u8>) {
    assert!(width <= 64, "bit width over 64");
    if width == 0 {
        return;
    }
    out.reserve(packed_len(values.len(), width));
    let width_bits = width as usize;
    let groups = values.chunks_exact(GROUP);
    let tail = groups.remainder();
    if width <= 32 {
        let mut buffer = [0u32; GROUP];
        for group in groups {
            for (slot, &value) in buffer.iter_mut().zip(group) {
                *slot = map(value) as u32;
            }
            debug_assert!(buffer.iter().all(|&v| u64::from(v) >> width_bits == 0));
            pack_narrow_group(&buffer, width_bits, out);
        }
    } else {
        let mut buffer = [0u64; GROUP];
        for group in groups {
            for (slot, &value) in buffer.iter_mut().zip(group) {
                *slot = map(value);
            }
            pack_wide_group(&buffer, width_bits, out);
        }
    }
    let mut tail_writer = TailWriter::default();
    for &value in tail {
        tail_writer.push(map(value), width_bits, out);
    }
    tail_writer.finish(out);
}

/// [`pack_map`] for values given by index: `value(0), …, value(count - 1)`
/// (deltas of neighbouring rows, which a slice map cannot express).
#[inline]
pub fn pack_fn(count: usize, width: u32, mut value: impl FnMut(usize) -> u64, out: &mut Vec<u8>) {
    assert!(width <= 64, "bit width over 64");
    if width == 0 {
        return;
    }
    out.reserve(packed_len(count, width));
    let full = count / GROUP * GROUP;
    let width_bits = width as usize;
    if width <= 32 {
        let mut buffer = [0u32; GROUP];
        for group in (0..full).step_by(GROUP) {
            for (index, slot) in buffer.iter_mut().enumerate() {
                *slot = value(group + index) as u32;
            }
            pack_narrow_group(&buffer, width_bits, out);
        }
    } else {
        let mut buffer = [0u64; GROUP];
        for group in (0..full).step_by(GROUP) {
            for (index, slot) in buffer.iter_mut().enumerate() {
                *slot = value(group + index);
            }
            pack_wide_group(&buffer, width_bits, out);
        }
    }
    let mut tail_writer = TailWriter::default();
    for index in full..count {
        tail_writer.push(value(index), width_bits, out);
    }
    tail_writer.finish(out);
}

/// The tail of a bit-packed stream: one LSB-first bit string of u64 words.
#[derive(Default)]
struct TailWriter {
    word: u64,
    filled: usize,
}

impl TailWriter {
    #[inline]
    fn push(&mut self, value: u64, width: usize, out: &mut Vec<u8>) {
        debug_assert!(
            width == 64 || value >> width == 0,
            "value wider than bit width"
        );
        self.word |= value << self.filled;
        self.filled += width;
        if self.filled >= 64 {
            out.extend_from_slice(&self.word.to_le_bytes());
            self.filled -= 64;
            // The bits of `value` that did not fit (none when it ended exactly).
            self.word = if self.filled == 0 {
                0
            } else {
                value >> (width - self.filled)
            };
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        if self.filled > 0 {
            out.extend_from_slice(&self.word.to_le_bytes());
        }
    }
}

/// Appends `words` as little-endian bytes.
#[inline]
fn extend_words<T: bytemuck::Pod>(words: &[T], out: &mut Vec<u8>) {
    #[cfg(target_endian = "little")]
    out.extend_from_slice(bytemuck::cast_slice(words));
    #[cfg(not(target_endian = "little"))]
    for word in words {
        let mut bytes = bytemuck::bytes_of(word).to_vec();
        bytes.reverse();
        out.extend_from_slice(&bytes);
    }
}

/// One narrow group (16 lanes of u32 words, `width <= 32`): row `r` of every
/// lane is shifted by the same amount, so each row is one vector operation.
#[inline]
fn pack_narrow_group(values: &[u32; GROUP], width: usize, out: &mut Vec<u8>) {
    let mut words = [0u32; NARROW_LANES * 32];
    for row in 0..NARROW_ROWS {
        let bit = row * width;
        let (word, shift) = (bit / 32, (bit % 32) as u32);
        let source = &values[row * NARROW_LANES..(row + 1) * NARROW_LANES];
        let low = &mut words[word * NARROW_LANES..(word + 1) * NARROW_LANES];
        for (slot, &v) in low.iter_mut().zip(source) {
            *slot |= v << shift;
        }
        if shift as usize + width > 32 {
            let back = 32 - shift;
            let high = &mut words[(word + 1) * NARROW_LANES..(word + 2) * NARROW_LANES];
            for (slot, &v) in high.iter_mut().zip(source) {
                *slot |= v >> back;
            }
        }
    }
    extend_words(&words[..NARROW_LANES * width], out);
}

/// One wide group (8 lanes of u64 words, `32 < width <= 64`).
#[inline]
fn pack_wide_group(values: &[u64; GROUP], width: usize, out: &mut Vec<u8>) {
    let mut words = [0u64; WIDE_LANES * 64];
    for row in 0..WIDE_ROWS {
        let bit = row * width;
        let (word, shift) = (bit / 64, (bit % 64) as u32);
        let source = &values[row * WIDE_LANES..(row + 1) * WIDE_LANES];
        let low = &mut words[word * WIDE_LANES..(word + 1) * WIDE_LANES];
        for (slot, &v) in low.iter_mut().zip(source) {
            *slot |= v << shift;
        }
        if shift as usize + width > 64 {
            let back = 64 - shift;
            let high = &mut words[(word + 1) * WIDE_LANES..(word + 2) * WIDE_LANES];
            for (slot, &v) in high.iter_mut().zip(source) {
                *slot |= v >> back;
            }
        }
    }
    extend_words(&words[..WIDE_LANES * width], out);
}

/// Row `R` of all 16 lanes of a narrow group of width `W`: constant shifts,
/// one SIMD operation per row on AVX-512 (two on AVX2).
#[inline(always)]
fn narrow_row<const W: usize, const R: usize>(words: &[u32], out: &mut [u32; GROUP]) {
    let bit = R * W;
    let (word, shift) = (bit / 32, bit % 32);
    let mask = u32::MAX >> (32 - W);
    let low = &words[word * NARROW_LANES..word * NARROW_LANES + NARROW_LANES];
    let out = &mut out[R * NARROW_LANES..R * NARROW_LANES + NARROW_LANES];
    if shift + W > 32 {
        let high = &words[(word + 1) * NARROW_LANES..(word + 1) * NARROW_LANES + NARROW_LANES];
        for lane in 0..NARROW_LANES {
            out[lane] = ((low[lane] >> shift) | (high[lane] << (32 - shift))) & mask;
        }
    } else {
        for lane in 0..NARROW_LANES {
            out[lane] = (low[lane] >> shift) & mask;
        }
    }
}

/// Row `R` of all 8 lanes of a wide group of width `W`.
#[inline(always)]
fn wide_row<const W: usize, const R: usize>(words: &[u64], out: &mut [u64; GROUP]) {
    let bit = R * W;
    let (word, shift) = (bit / 64, bit % 64);
    let mask = u64::MAX >> (64 - W);
    let low = &words[word * WIDE_LANES..word * WIDE_LANES + WIDE_LANES];
    let out = &mut out[R * WIDE_LANES..R * WIDE_LANES + WIDE_LANES];
    if shift + W > 64 {
        let high = &words[(word + 1) * WIDE_LANES..(word + 1) * WIDE_LANES + WIDE_LANES];
        for lane in 0..WIDE_LANES {
            out[lane] = ((low[lane] >> shift) | (high[lane] << (64 - shift))) & mask;
        }
    } else {
        for lane in 0..WIDE_LANES {
            out[lane] = (low[lane] >> shift) & mask;
        }
    }
}

macro_rules! rows {
    ($row:ident, $width:ident, $words:ident, $out:ident; $($index:literal)*) => {
        $( $row::<$width, $index>($words, $out); )*
    };
}

/// Unpacks one narrow group (`W` in 1..=32) from `16 * W` words.
#[inline(always)]
fn narrow_group<const W: usize>(words: &[u32], out: &mut [u32; GROUP]) {
    let words = &words[..NARROW_LANES * W];
    rows!(narrow_row, W, words, out;
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
}

/// Unpacks one wide group (`W` in 33..=64) from `8 * W` words.
#[inline(always)]
fn wide_group<const W: usize>(words: &[u64], out: &mut [u64; GROUP]) {
    let words = &words[..WIDE_LANES * W];
    rows!(wide_row, W, words, out;
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
        61 62 63);
}

type NarrowKernel = fn(&[u32], &mut [u32; GROUP]);
type WideKernel = fn(&[u64], &mut [u64; GROUP]);

macro_rules! kernel_table {
    ($kernel:ident; $($width:literal)*) => { [$($kernel::<$width>),*] };
}

/// Baseline (SSE2) kernels, index = width - 1.
static NARROW: [NarrowKernel; 32] = kernel_table!(narrow_group;
    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
/// Baseline kernels, index = width - 33.
static WIDE: [WideKernel; 32] = kernel_table!(wide_group;
    33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62
    63 64);

/// A batch of unpacked values: `u32` for widths up to 32, `u64` above.
#[derive(Debug, Clone, Copy)]
pub enum Unpacked<'a> {
    /// Values of a stream of width <= 32.
    Narrow(&'a [u32]),
    /// Values of a stream of width > 32.
    Wide(&'a [u64]),
}

impl Unpacked<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Unpacked::Narrow(values) => values.len(),
            Unpacked::Wide(values) => values.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Unpacks `count` values of a stream of width `width` (`packed` must be
/// exactly [`packed_len`]`(count, width)` bytes) and hands them to `sink` in
/// consecutive batches of at most [`GROUP`] values, with the index of the
/// first value of each batch. Stops at the first error of `sink`.
#[inline]
pub fn unpack_batches<E>(
    packed: &[u8],
    width: u32,
    count: usize,
    mut sink: impl FnMut(usize, Unpacked<'_>) -> Result<(), E>,
) -> Result<(), E> {
    assert!(width <= 64, "bit width over 64");
    assert_eq!(
        packed.len(),
        packed_len(count, width),
        "packed stream length"
    );
    let width_bits = width as usize;
    let full_groups = count / GROUP;
    let group_bytes = 64 * width_bits;
    let simd = simd::Level::detect();
    if width == 0 {
        let zeros = [0u32; GROUP];
        let mut start = 0;
        while start < count {
            let len = (count - start).min(GROUP);
            sink(start, Unpacked::Narrow(&zeros[..len]))?;
            start += len;
        }
        return Ok(());
    }
    if width <= 32 {
        let mut out = [0u32; GROUP];
        let mut aligned = [0u32; NARROW_LANES * 32];
        for group_index in 0..full_groups {
            let bytes = &packed[group_index * group_bytes..(group_index + 1) * group_bytes];
            let words: &[u32] = match bytemuck::try_cast_slice(bytes) {
                Ok(words) => words,
                Err(_) => {
                    let words = &mut aligned[..NARROW_LANES * width_bits];
                    bytemuck::cast_slice_mut::<u32, u8>(words).copy_from_slice(bytes);
                    words
                }
            };
            simd::narrow(simd, width, words, &mut out);
            sink(group_index * GROUP, Unpacked::Narrow(&out))?;
        }
        let tail_len = count - full_groups * GROUP;
        if tail_len > 0 {
            let tail = &packed[full_groups * group_bytes..];
            let out = &mut out[..tail_len];
            unpack_tail_narrow(tail, width_bits, out);
            sink(full_groups * GROUP, Unpacked::Narrow(out))?;
        }
    } else {
        let mut out = [0u64; GROUP];
        let mut aligned = [0u64; WIDE_LANES * 64];
        for group_index in 0..full_groups {
            let bytes = &packed[group_index * group_bytes..(group_index + 1) * group_bytes];
            let words: &[u64] = match bytemuck::try_cast_slice(bytes) {
                Ok(words) => words,
                Err(_) => {
                    let words = &mut aligned[..WIDE_LANES * width_bits];
                    bytemuck::cast_slice_mut::<u64, u8>(words).copy_from_slice(bytes);
                    words
                }
            };
            simd::wide(simd, width, words, &mut out);
            sink(group_index * GROUP, Unpacked::Wide(&out))?;
        }
        let tail_len = count - full_groups * GROUP;
        if tail_len > 0 {
            let tail = &packed[full_groups * group_bytes..];
            let out = &mut out[..tail_len];
            for (index, value) in out.iter_mut().enumerate() {
                *value = tail_value(tail, width_bits, index);
            }
            sink(full_groups * GROUP, Unpacked::Wide(out))?;
        }
    }
    Ok(())
}

/// Unpacks the LSB-first tail bit string of a narrow stream (`width` <= 32).
/// Blocks of a sub-chunk (~6,000 rows) keep up to 511 values (8%) in the
/// tail, and sparse streams often only have a tail: one unaligned 8-byte
/// load per value (a value of <= 32 bits at any bit offset fits in the 64
/// bits loaded from its first byte) instead of two word loads and a branch.
#[inline]
fn unpack_tail_narrow(tail: &[u8], width: usize, out: &mut [u32]) {
    debug_assert!((1..=32).contains(&width));
    let mask = u64::MAX >> (64 - width);
    // Values whose 8-byte load stays inside the tail; the last few use the
    // word path.
    let fast = if tail.len() >= 8 {
        ((tail.len() - 8) * 8 / width + 1).min(out.len())
    } else {
        0
    };
    for (index, value) in out[..fast].iter_mut().enumerate() {
        let bit = index * width;
        let byte = bit / 8;
        let mut word = [0u8; 8];
        word.copy_from_slice(&tail[byte..byte + 8]);
        *value = ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32;
    }
    for (index, value) in out.iter_mut().enumerate().skip(fast) {
        *value = tail_value(tail, width, index) as u32;
    }
}

/// Value `index` of an LSB-first tail bit string (at most 511 values).
#[inline]
fn tail_value(tail: &[u8], width: usize, index: usize) -> u64 {
    let bit = index * width;
    let (word, shift) = (bit / 64, bit % 64);
    let mut value = load_word(tail, word) >> shift;
    if shift + width > 64 {
        value |= load_word(tail, word + 1) << (64 - shift);
    }
    value & (u64::MAX >> (64 - width))
}

#[inline(always)]
fn load_word(bytes: &[u8], index: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
    u64::from_le_bytes(word)
}

/// Unpacks a whole stream into `out` (`out.len()` values).
pub fn unpack(packed: &[u8], width: u32, out: &mut [u64]) {
    let count = out.len();
    let result: Result<(), ()> = unpack_batches(packed, width, count, |start, values| {
        widen(values, &mut out[start..]);
        Ok(())
    });
    debug_assert!(result.is_ok());
}

/// Copies a batch into `u64`s.
#[inline]
pub fn widen(values: Unpacked<'_>, out: &mut [u64]) {
    match values {
        Unpacked::Narrow(values) => {
            for (out, &value) in out[..values.len()].iter_mut().zip(values) {
                *out = u64::from(value);
            }
        }
        Unpacked::Wide(values) => out[..values.len()].copy_from_slice(values),
    }
}

/// Frame-of-reference unpacking: `out[i] = base + value i` (`out.len()` values).
pub fn unpack_for<T: Lane>(packed: &[u8], width: u32, base: u64, out: &mut [T]) {
    let count = out.len();
    let result: Result<(), ()> = unpack_batches(packed, width, count, |start, values| {
        add_base(base, values, &mut out[start..]);
        Ok(())
    });
    debug_assert!(result.is_ok());
}

/// Byte lookup in a table of at most 8 one-byte entries held in a register:
/// `out[i] = byte (codes[i] & 7) of table`. Variable shifts vectorize with
/// AVX2 (dispatched at run time), where a lookup from memory stays scalar:
/// one-byte dictionaries such as band names.
/// Returns false if a code is `>= limit` (checked in the same dispatched
/// function, so that loop vectorizes too).
pub fn lookup_bytes8(table: u64, limit: u32, codes: &[u32], out: &mut [u8]) -> bool {
    simd::lookup_bytes8(simd::Level::detect(), table, limit, codes, out)
}

#[inline(always)]
fn lookup_bytes8_body(table: u64, limit: u32, codes: &[u32], out: &mut [u8]) -> bool {
    let out_of_range = codes
        .iter()
        .fold(0u32, |acc, &code| acc | u32::from(code >= limit));
    // 32-bit lanes: `vpsrlvd` and a blend per 8 codes with AVX2.
    let (low, high) = (table as u32, (table >> 32) as u32);
    for (out, &code) in out[..codes.len()].iter_mut().zip(codes) {
        let word = if code & 4 == 0 { low } else { high };
        *out = (word >> ((code & 3) * 8)) as u8;
    }
    out_of_range == 0
}

/// Asks the CPU to bring `bytes` into its caches (a hint: no effect on
/// results). Blocks of a few KiB, scattered over several columns' extents,
/// are too short for the hardware prefetcher to ramp up on: decoding the
/// next row group's blocks while they are fetched hides the DRAM latency.
pub fn prefetch(bytes: &[u8]) {
    simd::prefetch(bytes);
}

/// SIMD level dispatch for the unpack kernels: the only `unsafe` of the
/// crate. Measured (examples/kernel_speed.rs) 3-6x faster with AVX2 than the
/// SSE2 baseline the workspace compiles for.
mod simd {
    #![allow(unsafe_code)]

    pub(super) fn prefetch(bytes: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            for line in bytes.chunks(64) {
                // SAFETY: prefetching is a hint that never faults; the
                // pointer is inside `bytes`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = bytes;
    }

    use super::{GROUP, NARROW, WIDE};

    /// Instruction set level, detected at run time.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Level {
        /// The compile-time baseline.
        Baseline,
        /// AVX2 is available (x86_64 only).
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Avx2,
    }

    impl Level {
        #[inline]
        pub(super) fn detect() -> Level {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    return Level::Avx2;
                }
            }
            Level::Baseline
        }
    }

    #[inline]
    pub(super) fn narrow(level: Level, width: u32, words: &[u32], out: &mut [u32; GROUP]) {
        debug_assert!((1..=32).contains(&width));
        let index = width as usize - 1;
        #[cfg(target_arch = "x86_64")]
        if level == Level::Avx2 {
            // SAFETY: the kernels only need AVX2, which `Level::detect`
            // found on this CPU; they are otherwise safe code.
            unsafe { avx2::NARROW[index](words, out) };
            return;
        }
        let _ = level;
        NARROW[index](words, out);
    }

    #[inline]
    pub(super) fn wide(level: Level, width: u32, words: &[u64], out: &mut [u64; GROUP]) {
        debug_assert!((33..=64).contains(&width));
        let index = width as usize - 33;
        #[cfg(target_arch = "x86_64")]
        if level == Level::Avx2 {
            // SAFETY: as in `narrow`: AVX2 was detected at run time.
            unsafe { avx2::WIDE[index](words, out) };
            return;
        }
        let _ = level;
        WIDE[index](words, out);
    }

    #[inline]
    pub(super) fn lookup_bytes8(
        level: Level,
        table: u64,
        limit: u32,
        codes: &[u32],
        out: &mut [u8],
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if level == Level::Avx2 {
            // SAFETY: as in `narrow`: AVX2 was detected at run time.
            return unsafe { avx2::lookup_bytes8(table, limit, codes, out) };
        }
        let _ = level;
        super::lookup_bytes8_body(table, limit, codes, out)
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use super::super::{GROUP, lookup_bytes8_body, narrow_group, wide_group};

        #[target_feature(enable = "avx2")]
        pub(in super::super) fn lookup_bytes8(
            table: u64,
            limit: u32,
            codes: &[u32],
            out: &mut [u8],
        ) -> bool {
            lookup_bytes8_body(table, limit, codes, out)
        }

        #[target_feature(enable = "avx2")]
        fn narrow_avx2<const W: usize>(words: &[u32], out: &mut [u32; GROUP]) {
            narrow_group::<W>(words, out);
        }

        #[target_feature(enable = "avx2")]
        fn wide_avx2<const W: usize>(words: &[u64], out: &mut [u64; GROUP]) {
            wide_group::<W>(words, out);
        }

        type NarrowKernel = unsafe fn(&[u32], &mut [u32; GROUP]);
        type WideKernel = unsafe fn(&[u64], &mut [u64; GROUP]);

        macro_rules! table {
            ($kernel:ident; $($width:literal)*) => { [$($kernel::<$width> as _),*] };
        }

        pub(super) static NARROW: [NarrowKernel; 32] = table!(narrow_avx2;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
        pub(super) static WIDE: [WideKernel; 32] = table!(wide_avx2;
            33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61
            62 63 64);
    }
}

/// Fixed-width integer lanes the decoders write: the column integer types and
/// the unsigned bit patterns of floats.
pub trait Lane: bytemuck::Pod + Default + PartialEq + std::fmt::Debug + Send + Sync {
    /// Width in bits.
    const BITS: u32;
    /// Whether the lane is a signed integer.
    const SIGNED: bool;
    /// Truncates `value` to the lane (two's complement).
    fn from_u64(value: u64) -> Self;
    /// Truncates or zero-extends `value` to the lane.
    fn from_u32(value: u32) -> Self;
    /// Sign-extends (signed lanes) or zero-extends (unsigned lanes) to 64 bits.
    fn to_u64(self) -> u64;
    /// Wrapping addition.
    fn wrapping_add(self, other: Self) -> Self;
    /// An unsigned key with the lane's numeric order.
    fn order_key(self) -> u64 {
        if Self::SIGNED {
            self.to_u64() ^ (1 << 63)
        } else {
            self.to_u64()
        }
    }
}

macro_rules! lane {
    ($ty:ty, $signed:expr, $via:ty) => {
        impl Lane for $ty {
            const BITS: u32 = <$ty>::BITS;
            const SIGNED: bool = $signed;
            #[inline(always)]
            fn from_u64(value: u64) -> Self {
                value as $ty
            }
            #[inline(always)]
            fn from_u32(value: u32) -> Self {
                value as $ty
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as $via as u64
            }
            #[inline(always)]
            fn wrapping_add(self, other: Self) -> Self {
                <$ty>::wrapping_add(self, other)
            }
        }
    };
}
lane!(i8, true, i64);
lane!(i16, true, i64);
lane!(i32, true, i64);
lane!(i64, true, i64);
lane!(u32, false, u64);
lane!(u64, false, u64);

/// Unpacked value types: `u32` (narrow streams) and `u64` (wide streams).
pub trait Source: Copy {
    /// Truncates to the lane `T`.
    fn to_lane<T: Lane>(self) -> T;
    /// Zero-extends to 64 bits.
    fn to_u64(self) -> u64;
    /// `self >= limit`, compared in the source width (vectorizes).
    fn at_least(self, limit: u32) -> bool;
}

impl Source for u32 {
    #[inline(always)]
    fn to_lane<T: Lane>(self) -> T {
        T::from_u32(self)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn at_least(self, limit: u32) -> bool {
        self >= limit
    }
}

impl Source for u64 {
    #[inline(always)]
    fn to_lane<T: Lane>(self) -> T {
        T::from_u64(self)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        self
    }
    #[inline(always)]
    fn at_least(self, limit: u32) -> bool {
        self >= u64::from(limit)
    }
}

/// Calls `$body` with `$values` bound to the `&[u32]` or `&[u64]` slice of
/// an [`Unpacked`] batch (the body is instantiated for both).
macro_rules! with_values {
    ($unpacked:expr, $values:ident => $body:expr) => {
        match $unpacked {
            Unpacked::Narrow($values) => $body,
            Unpacked::Wide($values) => $body,
        }
    };
}

/// `out[i] = base + values[i]`, in the lane's width (frame of reference).
#[inline]
pub fn add_base<T: Lane>(base: u64, values: Unpacked<'_>, out: &mut [T]) {
    #[inline(always)]
    fn run<S: Source, T: Lane>(base: T, values: &[S], out: &mut [T]) {
        for (out, &value) in out[..values.len()].iter_mut().zip(values) {
            *out = base.wrapping_add(value.to_lane());
        }
    }
    with_values!(values, values => run(T::from_u64(base), values, out))
}

/// Delta decoding: `acc += step + values[i]; out[i] = acc` (wrapping, in the
/// lane's width). Returns the last value written (or `acc` if empty).
#[inline]
pub fn prefix_sum<T: Lane>(acc: T, step: T, values: Unpacked<'_>, out: &mut [T]) -> T {
    #[inline(always)]
    fn run<S: Source, T: Lane>(mut acc: T, step: T, values: &[S], out: &mut [T]) -> T {
        for (out, &value) in out[..values.len()].iter_mut().zip(values) {
            acc = acc.wrapping_add(step.wrapping_add(value.to_lane()));
            *out = acc;
        }
        acc
    }
    with_values!(values, values => run(acc, step, values, out))
}

/// Sparse positions from gaps: `position = next + gaps[i]; out[i] =
/// position; next = position + 1`. Returns `next` (u64: the caller checks it
/// against the row count after each batch, before it could wrap).
#[inline]
pub fn gaps_to_positions(mut next: u64, gaps: &[u32], out: &mut [u32]) -> u64 {
    for (out, &gap) in out[..gaps.len()].iter_mut().zip(gaps) {
        let position = next + u64::from(gap);
        *out = position as u32;
        next = position + 1;
    }
    next
}

/// Sparse scatter: `out[positions[i]] = base + values[i]` (in the lane's
/// width). Positions were checked to be `< out.len()`.
#[inline]
pub fn scatter_for<T: Lane>(base: u64, values: Unpacked<'_>, positions: &[u32], out: &mut [T]) {
    #[inline(always)]
    fn run<S: Source, T: Lane>(base: T, values: &[S], positions: &[u32], out: &mut [T]) {
        for (&position, &value) in positions[..values.len()].iter().zip(values) {
            out[position as usize] = base.wrapping_add(value.to_lane());
        }
    }
    with_values!(values, values => run(T::from_u64(base), values, positions, out))
}

/// Dictionary gather: `out[i] = dict[codes[i]]`. `dict` is padded to a power
/// of two no smaller than `1 << code width` (so `code & mask` needs no bounds
/// check); `dict_len` is the number of real entries. Returns false (having
/// written nothing) if a code is `>= dict_len`.
#[inline]
pub fn gather<T: Copy>(dict: &[T], dict_len: usize, codes: Unpacked<'_>, out: &mut [T]) -> bool {
    #[inline(always)]
    fn run<S: Source, T: Copy>(dict: &[T], dict_len: usize, codes: &[S], out: &mut [T]) -> bool {
        // Codes are < 2^width <= dict.len(); only a dictionary that is not a
        // power of two needs the range check. A separate `|` fold vectorizes
        // (a flag updated inside the gather loop measured 3x slower).
        if dict_len < dict.len() {
            let limit = dict_len as u32;
            let out_of_range = codes
                .iter()
                .fold(0u32, |acc, &code| acc | u32::from(code.at_least(limit)));
            if out_of_range != 0 {
                return false;
            }
        }
        gather_masked(dict, codes, out);
        true
    }
    assert!(
        dict.len().is_power_of_two() && dict.len() >= dict_len,
        "dictionary not padded"
    );
    with_values!(codes, codes => run(dict, dict_len, codes, out))
}

/// The gather loop of [`gather`]: `dict.len()` is a power of two, so
/// `code & mask` needs no bounds check (measured: an AVX2 build of this loop
/// does not use `vpgather` and gains too little to justify `unsafe`).
#[inline(always)]
fn gather_masked<S: Source, T: Copy>(dict: &[T], codes: &[S], out: &mut [T]) {
    let mask = dict.len() - 1;
    for (out, &code) in out[..codes.len()].iter_mut().zip(codes) {
        *out = dict[code.to_u64() as usize & mask];
    }
}

/// Order-preserving key of an f64 bit pattern (total order of IEEE 754).
#[inline(always)]
pub const fn f64_key(bits: u64) -> u64 {
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Order-preserving key of an f32 bit pattern.
#[inline(always)]
pub const fn f32_key(bits: u32) -> u32 {
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// `out[i]` = f64 bits of key `base + values[i]` (inverse of [`f64_key`]).
#[inline]
pub fn f64_from_keys(base: u64, values: Unpacked<'_>, out: &mut [u64]) {
    #[inline(always)]
    fn run<S: Source>(base: u64, values: &[S], out: &mut [u64]) {
        for (out, &value) in out[..values.len()].iter_mut().zip(values) {
            let key = base.wrapping_add(value.to_u64());
            let flip = if key >> 63 == 1 { 1 << 63 } else { u64::MAX };
            *out = key ^ flip;
        }
    }
    with_values!(values, values => run(base, values, out))
}

/// `out[i]` = f32 bits of key `base + values[i]` (inverse of [`f32_key`]).
#[inline]
pub fn f32_from_keys(base: u32, values: Unpacked<'_>, out: &mut [u32]) {
    #[inline(always)]
    fn run<S: Source>(base: u32, values: &[S], out: &mut [u32]) {
        for (out, &value) in out[..values.len()].iter_mut().zip(values) {
            let key = base.wrapping_add(value.to_lane::<u32>());
            let flip = if key >> 31 == 1 { 1 << 31 } else { u32::MAX };
            *out = key ^ flip;
        }
    }
    with_values!(values, values => run(base, values, out))
}

/// Powers of ten exactly representable in f64 (10^0 ..= 10^18).
pub const POW10_F64: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// Powers of ten exactly representable in f32 (10^0 ..= 10^10).
pub const POW10_F32: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// ALP integers of f64 columns lie in `[-ALP_F64_LIMIT, ALP_F64_LIMIT)`
/// (2^51), where the conversion below is exact.
pub const ALP_F64_LIMIT: i64 = 1 << 51;
/// ALP integers of f32 columns lie in `[-ALP_F32_LIMIT, ALP_F32_LIMIT]`
/// (2^24), where `as f32` is exact.
pub const ALP_F32_LIMIT: i64 = 1 << 24;

/// 1.5 * 2^52: adding an integer `d` with `|d| < 2^51` to it gives a double
/// whose low mantissa bits are `d` (the "magic number" conversion, which
/// vectorizes where `i64 as f64` does not on x86-64 before AVX-512).
const MAGIC_F64: f64 = 6_755_399_441_055_744.0;
const MAGIC_F64_BITS: u64 = 0x4338_0000_0000_0000;

/// ALP decoding for f64: `out[i] = (base + values[i]) as f64 / divisor`,
/// exact for integers within [`ALP_F64_LIMIT`] (the caller checks the range).
#[inline]
pub fn alp_decode_f64(base: u64, divisor: f64, values: Unpacked<'_>, out: &mut [f64]) {
    #[inline(always)]
    fn run<S: Source>(base: u64, divisor: f64, values: &[S], out: &mut [f64]) {
        let biased = base.wrapping_add(MAGIC_F64_BITS);
        for (out, &value) in out[..values.len()].iter_mut().zip(values) {
            let int = f64::from_bits(biased.wrapping_add(value.to_u64())) - MAGIC_F64;
            *out = int / divisor;
        }
    }
    with_values!(values, values => run(base, divisor, values, out))
}

/// ALP decoding for f32: `out[i] = (base + values[i]) as f32 / divisor`,
/// exact for integers within [`ALP_F32_LIMIT`] (the caller checks the range).
#[inline]
pub fn alp_decode_f32(base: u64, divisor: f32, values: Unpacked<'_>, out: &mut [f32]) {
    #[inline(always)]
    fn run<S: Source>(base: i32, divisor: f32, values: &[S], out: &mut [f32]) {
        for (out, &value) in out[..values.len()].iter_mut().zip(values) {
            *out = base.wrapping_add(value.to_lane::<i32>()) as f32 / divisor;
        }
    }
    with_values!(values, values => run(base as i32, divisor, values, out))
}

/// Lengths to offsets: `total += base + lengths[i]; out[i] = total` (u64
/// running total, truncated to u32 in `out`). Returns the total.
#[inline]
pub fn lengths_to_offsets(
    mut total: u64,
    base: u64,
    lengths: Unpacked<'_>,
    out: &mut [u32],
) -> u64 {
    #[inline(always)]
    fn run<S: Source>(total: &mut u64, base: u64, lengths: &[S], out: &mut [u32]) {
        for (out, &length) in out[..lengths.len()].iter_mut().zip(lengths) {
            *total += base + length.to_u64();
            *out = *total as u32;
        }
    }
    with_values!(lengths, lengths => run(&mut total, base, lengths, out));
    total
}

/// Byte-shuffle (encoder side): plane `b` of `out` (bytes `[b*n, (b+1)*n)`)
/// receives byte `b` of every `W`-byte value of `values` (`n` values).
pub fn shuffle<const W: usize>(values: &[u8], out: &mut [u8]) {
    assert_eq!(values.len(), out.len(), "shuffle length");
    assert_eq!(
        values.len() % W,
        0,
        "shuffle length not a multiple of the width"
    );
    let count = values.len() / W;
    for (plane_index, plane) in out.chunks_exact_mut(count.max(1)).enumerate().take(W) {
        for (byte, value) in plane.iter_mut().zip(values.chunks_exact(W)) {
            *byte = value[plane_index];
        }
    }
}

/// Transposes an 8x8 byte matrix held in 8 words (word `r` byte `c` becomes
/// word `c` byte `r`) with three rounds of masked swaps (SWAR).
#[inline(always)]
fn transpose8x8(r: [u64; 8]) -> [u64; 8] {
    const M32: u64 = 0x0000_0000_FFFF_FFFF;
    const M16: u64 = 0x0000_FFFF_0000_FFFF;
    const M8: u64 = 0x00FF_00FF_00FF_00FF;
    let [
        mut r0,
        mut r1,
        mut r2,
        mut r3,
        mut r4,
        mut r5,
        mut r6,
        mut r7,
    ] = r;
    macro_rules! swap {
        ($a:ident, $b:ident, $shift:expr, $mask:expr) => {
            let t = (($a >> $shift) ^ $b) & $mask;
            $a ^= t << $shift;
            $b ^= t;
        };
    }
    swap!(r0, r4, 32, M32);
    swap!(r1, r5, 32, M32);
    swap!(r2, r6, 32, M32);
    swap!(r3, r7, 32, M32);
    swap!(r0, r2, 16, M16);
    swap!(r1, r3, 16, M16);
    swap!(r4, r6, 16, M16);
    swap!(r5, r7, 16, M16);
    swap!(r0, r1, 8, M8);
    swap!(r2, r3, 8, M8);
    swap!(r4, r5, 8, M8);
    swap!(r6, r7, 8, M8);
    [r0, r1, r2, r3, r4, r5, r6, r7]
}

/// Un-shuffle of 8-byte values: `out[i]` = the little-endian word made of byte
/// `i` of each of the 8 planes of `planes` (`8 * out.len()` bytes). Eight
/// values at a time as an 8x8 byte-matrix transpose in registers (SWAR):
/// measured 3x faster than the byte-gather loop, which LLVM does not
/// vectorize.
#[inline]
pub fn unshuffle8(planes: &[u8], out: &mut [u64]) {
    let count = out.len();
    assert_eq!(planes.len(), count * 8, "unshuffle length");
    let (p0, rest) = planes.split_at(count);
    let (p1, rest) = rest.split_at(count);
    let (p2, rest) = rest.split_at(count);
    let (p3, rest) = rest.split_at(count);
    let (p4, rest) = rest.split_at(count);
    let (p5, rest) = rest.split_at(count);
    let (p6, p7) = rest.split_at(count);
    let full = count / 8;
    for chunk in 0..full {
        let words = transpose8x8([
            load_word(p0, chunk),
            load_word(p1, chunk),
            load_word(p2, chunk),
            load_word(p3, chunk),
            load_word(p4, chunk),
            load_word(p5, chunk),
            load_word(p6, chunk),
            load_word(p7, chunk),
        ]);
        out[chunk * 8..chunk * 8 + 8].copy_from_slice(&words);
    }
    for (index, out) in out.iter_mut().enumerate().skip(full * 8) {
        *out = u64::from_le_bytes([
            p0[index], p1[index], p2[index], p3[index], p4[index], p5[index], p6[index], p7[index],
        ]);
    }
}

/// Un-shuffle of 4-byte values (see [`unshuffle8`]). The plain byte loop:
/// a SWAR transpose as in `unshuffle8` measured no faster here.
#[inline]
pub fn unshuffle4(planes: &[u8], out: &mut [u32]) {
    let count = out.len();
    assert_eq!(planes.len(), count * 4, "unshuffle length");
    let (p0, rest) = planes.split_at(count);
    let (p1, rest) = rest.split_at(count);
    let (p2, p3) = rest.split_at(count);
    for (index, out) in out.iter_mut().enumerate() {
        *out = u32::from_le_bytes([p0[index], p1[index], p2[index], p3[index]]);
    }
}

/// Copies little-endian bitmap bytes into words (`bytes.len() == 8 * words.len()`).
#[inline]
pub fn bitmap_from_bytes(bytes: &[u8], words: &mut [u64]) {
    assert_eq!(bytes.len(), words.len() * 8, "bitmap length");
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = load_word(chunk, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_every_width() {
        for width in 0..=64u32 {
            for count in [0usize, 1, 63, 64, 65, 511, 512, 513, 1000, 1024, 1025, 3000] {
                let mask = if width == 0 {
                    0
                } else {
                    u64::MAX >> (64 - width)
                };
                let values: Vec<u64> = (0..count as u64)
                    .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(i as u32) & mask)
                    .collect();
                let mut packed = Vec::new();
                pack(&values, width, &mut packed);
                assert_eq!(packed.len(), packed_len(count, width));
                let mut out = vec![0u64; count];
                unpack(&packed, width, &mut out);
                assert_eq!(out, values, "width {width} count {count}");
            }
        }
    }

    #[test]
    fn lookup_bytes8_matches_a_table_lookup() {
        let table = *b"ugrizyXW";
        let codes: Vec<u32> = (0..1100u32).map(|i| (i * 7 + i / 3) % 6).collect();
        let mut out = vec![0u8; codes.len()];
        assert!(lookup_bytes8(
            u64::from_le_bytes(table),
            6,
            &codes,
            &mut out
        ));
        let expected: Vec<u8> = codes.iter().map(|&code| table[code as usize]).collect();
        assert_eq!(out, expected);
        assert!(!lookup_bytes8(
            u64::from_le_bytes(table),
            5,
            &codes,
            &mut out
        ));
    }

    #[test]
    fn float_keys_are_ordered_and_invertible() {
        let values = [
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            1e-300,
            2.0,
            f64::INFINITY,
        ];
        let keys: Vec<u64> = values.iter().map(|v| f64_key(v.to_bits())).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        let mut back = vec![0u64; keys.len()];
        f64_from_keys(0, Unpacked::Wide(&keys), &mut back);
        let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(back, bits);
        let values32 = [f32::NEG_INFINITY, -1.5f32, -0.0, 0.0, 2.0, f32::NAN];
        let keys32: Vec<u32> = values32.iter().map(|v| f32_key(v.to_bits())).collect();
        let mut back32 = vec![0u32; keys32.len()];
        f32_from_keys(0, Unpacked::Narrow(&keys32), &mut back32);
        let bits32: Vec<u32> = values32.iter().map(|v| v.to_bits()).collect();
        assert_eq!(back32, bits32);
    }

    #[test]
    fn shuffle_roundtrip() {
        let values: Vec<u64> = (0..1003u64)
            .map(|i| i.wrapping_mul(0x0102_0304_0506_0708))
            .collect();
        let bytes = bytemuck::cast_slice::<u64, u8>(&values);
        let mut planes = vec![0u8; bytes.len()];
        shuffle::<8>(bytes, &mut planes);
        let mut out = vec![0u64; values.len()];
        unshuffle8(&planes, &mut out);
        assert_eq!(out, values);
        let values32: Vec<u32> = (0..1001u32).map(|i| i.wrapping_mul(0x0102_0304)).collect();
        let bytes32 = bytemuck::cast_slice::<u32, u8>(&values32);
        let mut planes32 = vec![0u8; bytes32.len()];
        shuffle::<4>(bytes32, &mut planes32);
        let mut out32 = vec![0u32; values32.len()];
        unshuffle4(&planes32, &mut out32);
        assert_eq!(out32, values32);
    }
}
