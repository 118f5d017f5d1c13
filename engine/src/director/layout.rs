//! Byte layout of a director index file, version 1 (normative text:
//! `SPEC.md`, part 2). Bytes only, no I/O: encoders append to a
//! `Vec<u8>`, decoders take slices and check every field against the limits
//! before anything is allocated or indexed.
//!
//! ```text
//! header (64) | block 0 | block 1 | … | directory (24 per block) | tail (48)
//! ```
//! All integers are little-endian.

use super::{DirectorEntry, DirectorError, Result};

/// Magic bytes at offset 0 and in the last 8 bytes.
pub const MAGIC: [u8; 8] = *b"SKYDIRIX";
/// The format version written and read.
pub const VERSION: u32 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 64;
/// Length of the tail.
pub const TAIL_LEN: usize = 48;
/// Length of one directory entry.
pub const DIR_ENTRY_LEN: usize = 24;
/// Length of a block's header.
pub const BLOCK_HEADER_LEN: usize = 24;
/// Smallest entries-per-block setting.
pub const MIN_BLOCK_ENTRIES: u32 = 16;
/// Largest entries-per-block setting.
pub const MAX_BLOCK_ENTRIES: u32 = 1 << 16;
/// Entries per block written by default: a block of random 64-bit keys is
/// ~4.5 KiB, two pages, and a lookup's in-block search touches ~9 values.
pub const DEFAULT_BLOCK_ENTRIES: u32 = 512;
/// Largest number of entries in one index: 2^40 (≈ 1.1·10^12, 27× the
/// 4·10^10 Objects of the final LSST data release).
pub const MAX_ENTRIES: u64 = 1 << 40;
/// Largest key width in bits.
pub const MAX_KEY_BITS: u8 = 64;
/// Largest chunk and sub-chunk width in bits.
pub const MAX_ID_BITS: u8 = 32;

/// The largest block a given entries-per-block setting allows.
pub fn max_block_len(block_entries: u32) -> u64 {
    BLOCK_HEADER_LEN as u64
        + packed_len(block_entries, MAX_KEY_BITS)
        + packed_len(block_entries, 2 * MAX_ID_BITS)
}

/// Bytes of `count` values of `bits` bits.
pub fn packed_len(count: u32, bits: u8) -> u64 {
    (u64::from(count) * u64::from(bits)).div_ceil(8)
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(slice) = bytes.get(offset..offset + 4) {
        word.copy_from_slice(slice);
    }
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(slice) = bytes.get(offset..offset + 8) {
        word.copy_from_slice(slice);
    }
    u64::from_le_bytes(word)
}

fn i64_at(bytes: &[u8], offset: usize) -> i64 {
    u64_at(bytes, offset) as i64
}

fn i32_at(bytes: &[u8], offset: usize) -> i32 {
    u32_at(bytes, offset) as i32
}

/// The file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Entries per block (a power of two, [`MIN_BLOCK_ENTRIES`]..=[`MAX_BLOCK_ENTRIES`]);
    /// every block but the last holds exactly this many.
    pub block_entries: u32,
    /// Number of entries.
    pub entry_count: u64,
    /// Smallest key (0 when empty).
    pub key_min: i64,
    /// Largest key (0 when empty).
    pub key_max: i64,
}

impl Header {
    /// Appends the 64 header bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.block_entries.to_le_bytes());
        out.extend_from_slice(&self.entry_count.to_le_bytes());
        out.extend_from_slice(&self.key_min.to_le_bytes());
        out.extend_from_slice(&self.key_max.to_le_bytes());
        out.extend_from_slice(&[0u8; 20]);
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len() - start, HEADER_LEN);
    }

    /// Parses and checks the first [`HEADER_LEN`] bytes of a file.
    pub fn decode(bytes: &[u8], name: &str) -> Result<Header> {
        let corrupt = |message: String| DirectorError::corrupt(name, "header", message);
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(corrupt(format!("shorter than {HEADER_LEN} bytes")));
        };
        if bytes[..8] != MAGIC {
            return Err(corrupt("bad magic (not a skyscan director index)".into()));
        }
        let stored_crc = u32_at(bytes, 60);
        let crc = crc32c::crc32c(&bytes[..60]);
        if crc != stored_crc {
            return Err(corrupt(format!(
                "checksum {crc:#010x}, stored {stored_crc:#010x}"
            )));
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(corrupt(format!(
                "version {version}; this build reads {VERSION}"
            )));
        }
        if bytes[40..60].iter().any(|&byte| byte != 0) {
            return Err(corrupt("reserved bytes are not zero".into()));
        }
        let header = Header {
            block_entries: u32_at(bytes, 12),
            entry_count: u64_at(bytes, 16),
            key_min: i64_at(bytes, 24),
            key_max: i64_at(bytes, 32),
        };
        header.check().map_err(corrupt)?;
        Ok(header)
    }

    /// Checks the field ranges.
    pub fn check(&self) -> Result<(), String> {
        if !self.block_entries.is_power_of_two()
            || !(MIN_BLOCK_ENTRIES..=MAX_BLOCK_ENTRIES).contains(&self.block_entries)
        {
            return Err(format!(
                "entries per block {} is not a power of two in {MIN_BLOCK_ENTRIES}..={MAX_BLOCK_ENTRIES}",
                self.block_entries
            ));
        }
        if self.entry_count > MAX_ENTRIES {
            return Err(format!(
                "{} entries; the limit is {MAX_ENTRIES}",
                self.entry_count
            ));
        }
        if self.entry_count == 0 && (self.key_min != 0 || self.key_max != 0) {
            return Err("an empty index has key range 0..=0".into());
        }
        if self.key_min > self.key_max {
            return Err(format!(
                "key_min {} > key_max {}",
                self.key_min, self.key_max
            ));
        }
        Ok(())
    }

    /// Number of blocks.
    pub fn block_count(&self) -> u64 {
        self.entry_count.div_ceil(u64::from(self.block_entries))
    }

    /// Entries in block `block` (all blocks are full but the last).
    pub fn entries_in_block(&self, block: u64) -> u32 {
        let before = block * u64::from(self.block_entries);
        let left = self.entry_count.saturating_sub(before);
        // At most block_entries, which is a u32.
        u32::try_from(left.min(u64::from(self.block_entries))).unwrap_or(0)
    }
}

/// The file tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// File offset of the directory.
    pub directory_offset: u64,
    /// Number of blocks (= directory entries).
    pub block_count: u64,
    /// Number of entries (must equal the header's).
    pub entry_count: u64,
    /// CRC-32C of the directory bytes.
    pub directory_crc32c: u32,
}

impl Tail {
    /// Appends the 48 tail bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.directory_offset.to_le_bytes());
        out.extend_from_slice(&self.block_count.to_le_bytes());
        out.extend_from_slice(&self.entry_count.to_le_bytes());
        out.extend_from_slice(&self.directory_crc32c.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&MAGIC);
        debug_assert_eq!(out.len() - start, TAIL_LEN);
    }

    /// Parses and checks the last [`TAIL_LEN`] bytes of a file.
    pub fn decode(bytes: &[u8], name: &str) -> Result<Tail> {
        let corrupt = |message: String| DirectorError::corrupt(name, "tail", message);
        if bytes.len() != TAIL_LEN {
            return Err(corrupt(format!(
                "tail of {} bytes, expected {TAIL_LEN}",
                bytes.len()
            )));
        }
        if bytes[40..48] != MAGIC {
            return Err(corrupt(
                "bad magic (truncated or not a director index)".into(),
            ));
        }
        let stored_crc = u32_at(bytes, 36);
        let crc = crc32c::crc32c(&bytes[..36]);
        if crc != stored_crc {
            return Err(corrupt(format!(
                "checksum {crc:#010x}, stored {stored_crc:#010x}"
            )));
        }
        let version = u32_at(bytes, 28);
        if version != VERSION {
            return Err(corrupt(format!(
                "version {version}; this build reads {VERSION}"
            )));
        }
        if u32_at(bytes, 32) != 0 {
            return Err(corrupt("reserved bytes are not zero".into()));
        }
        Ok(Tail {
            directory_offset: u64_at(bytes, 0),
            block_count: u64_at(bytes, 8),
            entry_count: u64_at(bytes, 16),
            directory_crc32c: u32_at(bytes, 24),
        })
    }
}

/// One directory entry: where a block is and what it starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry {
    /// The block's first (smallest) key.
    pub first_key: i64,
    /// File offset of the block.
    pub offset: u64,
    /// Length of the block in bytes.
    pub len: u32,
    /// CRC-32C of the block's bytes.
    pub crc32c: u32,
}

impl DirEntry {
    /// Appends the 24 entry bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_key.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.crc32c.to_le_bytes());
    }

    /// Entry `index` of a directory (`directory.len()` must be a multiple of
    /// [`DIR_ENTRY_LEN`] and `index` below the entry count; out-of-range reads
    /// give zeros, which the open-time checks rule out).
    pub fn decode(directory: &[u8], index: usize) -> DirEntry {
        let base = index * DIR_ENTRY_LEN;
        DirEntry {
            first_key: i64_at(directory, base),
            offset: u64_at(directory, base + 8),
            len: u32_at(directory, base + 16),
            crc32c: u32_at(directory, base + 20),
        }
    }

    /// Only the first key of entry `index` (the binary-search probe).
    pub fn first_key(directory: &[u8], index: usize) -> i64 {
        i64_at(directory, index * DIR_ENTRY_LEN)
    }
}

/// Number of bits needed for `value` (0 for 0).
fn bit_width(value: u64) -> u8 {
    // At most 64, fits in u8.
    (64 - value.leading_zeros()) as u8
}

/// Appends `values` packed at `bits` bits each, LSB first; the last byte's
/// unused high bits are zero.
fn pack(values: impl Iterator<Item = u64>, bits: u8, out: &mut Vec<u8>) {
    if bits == 0 {
        return;
    }
    let mut accumulator: u128 = 0;
    let mut pending_bits: u32 = 0;
    for value in values {
        accumulator |= u128::from(value) << pending_bits;
        pending_bits += u32::from(bits);
        while pending_bits >= 8 {
            out.push(accumulator as u8);
            accumulator >>= 8;
            pending_bits -= 8;
        }
    }
    if pending_bits > 0 {
        out.push(accumulator as u8);
    }
}

/// Value `index` of a section packed at `bits` bits. Reads past the end of
/// `section` as zeros (never panics); the block checks make that unreachable
/// for verified blocks.
#[inline]
pub fn unpack(section: &[u8], index: u32, bits: u8) -> u64 {
    if bits == 0 {
        return 0;
    }
    let bit = u64::from(index) * u64::from(bits);
    let byte = (bit / 8) as usize;
    let shift = (bit % 8) as u32;
    let mut word = [0u8; 16];
    match section.get(byte..byte + 16) {
        Some(slice) => word.copy_from_slice(slice),
        None => {
            if let Some(tail) = section.get(byte..) {
                word[..tail.len()].copy_from_slice(tail);
            }
        }
    }
    let value = u128::from_le_bytes(word) >> shift;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    (value as u64) & mask
}

/// Appends one block holding `entries` (sorted by strictly increasing key,
/// 1..=[`MAX_BLOCK_ENTRIES`] of them). Returns its directory entry with
/// `offset` set to `offset`.
pub fn encode_block(entries: &[DirectorEntry], offset: u64, out: &mut Vec<u8>) -> DirEntry {
    assert!(!entries.is_empty(), "a block holds at least one entry");
    assert!(
        entries.len() <= MAX_BLOCK_ENTRIES as usize,
        "block too large"
    );
    debug_assert!(
        entries
            .windows(2)
            .all(|pair| pair[0].object_id < pair[1].object_id)
    );
    let start = out.len();
    let first_key = entries[0].object_id;
    let last_key = entries[entries.len() - 1].object_id;
    let key_span = (last_key as u64).wrapping_sub(first_key as u64);
    let chunk_min = entries
        .iter()
        .map(|entry| entry.chunk_id)
        .min()
        .unwrap_or(0);
    let chunk_max = entries
        .iter()
        .map(|entry| entry.chunk_id)
        .max()
        .unwrap_or(0);
    let sub_min = entries
        .iter()
        .map(|entry| entry.sub_chunk_id)
        .min()
        .unwrap_or(0);
    let sub_max = entries
        .iter()
        .map(|entry| entry.sub_chunk_id)
        .max()
        .unwrap_or(0);
    let span = |min: i32, max: i32| (i64::from(max) - i64::from(min)) as u64;
    let key_bits = bit_width(key_span);
    let chunk_bits = bit_width(span(chunk_min, chunk_max));
    let sub_bits = bit_width(span(sub_min, sub_max));

    // Length checked by the assert above: at most MAX_BLOCK_ENTRIES.
    let count = entries.len() as u32;
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&[key_bits, chunk_bits, sub_bits, 0]);
    out.extend_from_slice(&first_key.to_le_bytes());
    out.extend_from_slice(&chunk_min.to_le_bytes());
    out.extend_from_slice(&sub_min.to_le_bytes());
    pack(
        entries
            .iter()
            .map(|e| (e.object_id as u64).wrapping_sub(first_key as u64)),
        key_bits,
        out,
    );
    // One location value per entry, chunk offset above sub-chunk offset: a
    // lookup reads one packed value (one cache line) for both ids.
    pack(
        entries
            .iter()
            .map(|e| (span(chunk_min, e.chunk_id) << sub_bits) | span(sub_min, e.sub_chunk_id)),
        chunk_bits + sub_bits,
        out,
    );
    let block = &out[start..];
    debug_assert_eq!(
        block.len() as u64,
        BLOCK_HEADER_LEN as u64
            + packed_len(count, key_bits)
            + packed_len(count, chunk_bits + sub_bits)
    );
    DirEntry {
        first_key,
        offset,
        // A block is at most max_block_len(MAX_BLOCK_ENTRIES) ≈ 1 MiB.
        len: block.len() as u32,
        crc32c: crc32c::crc32c(block),
    }
}

/// A decoded block header over the block's bytes: random access to entries.
#[derive(Debug, Clone, Copy)]
pub struct BlockView<'a> {
    /// Entries in the block.
    pub count: u32,
    key_bits: u8,
    chunk_bits: u8,
    sub_bits: u8,
    key_base: i64,
    chunk_base: i32,
    sub_base: i32,
    keys: &'a [u8],
    locations: &'a [u8],
}

impl<'a> BlockView<'a> {
    /// Parses a block header and locates its sections, checking the header
    /// fields and that the sections exactly fill `block`. Does not verify the
    /// checksum or the values (see [`BlockView::verify`]).
    pub fn parse(block: &'a [u8]) -> Result<BlockView<'a>, String> {
        if block.len() < BLOCK_HEADER_LEN {
            return Err(format!("{} bytes, less than a block header", block.len()));
        }
        let count = u32_at(block, 0);
        let (key_bits, chunk_bits, sub_bits) = (block[4], block[5], block[6]);
        if block[7] != 0 {
            return Err("reserved byte is not zero".into());
        }
        if count == 0 || count > MAX_BLOCK_ENTRIES {
            return Err(format!("{count} entries"));
        }
        if key_bits > MAX_KEY_BITS || chunk_bits > MAX_ID_BITS || sub_bits > MAX_ID_BITS {
            return Err(format!("bit widths {key_bits}/{chunk_bits}/{sub_bits}"));
        }
        let key_len = packed_len(count, key_bits) as usize;
        let location_len = packed_len(count, chunk_bits + sub_bits) as usize;
        if BLOCK_HEADER_LEN + key_len + location_len != block.len() {
            return Err(format!(
                "sections of {key_len}+{location_len} bytes do not fill a {}-byte block",
                block.len()
            ));
        }
        let (keys, locations) = block[BLOCK_HEADER_LEN..].split_at(key_len);
        Ok(BlockView {
            count,
            key_bits,
            chunk_bits,
            sub_bits,
            key_base: i64_at(block, 8),
            chunk_base: i32_at(block, 16),
            sub_base: i32_at(block, 20),
            keys,
            locations,
        })
    }

    /// Key of entry `index`.
    #[inline]
    pub fn key(&self, index: u32) -> i64 {
        (self.key_base as u64).wrapping_add(unpack(self.keys, index, self.key_bits)) as i64
    }

    /// (chunk, sub-chunk) of entry `index`; wrapping arithmetic, exact for
    /// verified blocks.
    #[inline]
    pub fn location(&self, index: u32) -> (i32, i32) {
        let (chunk_offset, sub_offset) = self.location_offsets(index);
        let chunk = (self.chunk_base as u32).wrapping_add(chunk_offset as u32);
        let sub = (self.sub_base as u32).wrapping_add(sub_offset as u32);
        (chunk as i32, sub as i32)
    }

    /// (chunk − chunk_base, sub-chunk − sub_base) of entry `index`.
    #[inline]
    fn location_offsets(&self, index: u32) -> (u64, u64) {
        let packed = unpack(self.locations, index, self.chunk_bits + self.sub_bits);
        let sub_mask = if self.sub_bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.sub_bits) - 1
        };
        // chunk_bits + sub_bits <= 64, so the shift is at most 64 only when chunk_bits is 0.
        let chunk = packed.checked_shr(u32::from(self.sub_bits)).unwrap_or(0);
        (chunk, packed & sub_mask)
    }

    /// Entry `index`.
    pub fn entry(&self, index: u32) -> DirectorEntry {
        let (chunk_id, sub_chunk_id) = self.location(index);
        DirectorEntry {
            object_id: self.key(index),
            chunk_id,
            sub_chunk_id,
        }
    }

    /// First index whose key is `>= key` (`count` if none), searched from
    /// `guess` outwards (see [`partition_point_from`]).
    #[inline]
    pub fn lower_bound_from(&self, key: i64, guess: u32) -> u32 {
        let index = partition_point_from(self.count as usize, guess as usize, |index| {
            // `index < count <= MAX_BLOCK_ENTRIES`: fits in u32.
            self.key(index as u32) < key
        });
        index as u32
    }

    /// First index whose key is `>= key`, starting from a guess interpolated
    /// between the block's first key and `end_key` (the next block's first
    /// key, or the last key of the index): keys are roughly evenly spread,
    /// so the probes stay within a cache line or two of the answer. Any
    /// `end_key` gives the right answer; a good one gives it faster.
    #[inline]
    pub fn lower_bound(&self, key: i64, end_key: i64) -> u32 {
        let span = (end_key as u64).wrapping_sub(self.key_base as u64);
        let offset = (key as u64).wrapping_sub(self.key_base as u64);
        let guess = if key <= self.key_base || end_key <= self.key_base {
            0
        } else if offset >= span {
            self.count - 1
        } else {
            // offset < span, so the quotient is below `count`.
            ((u128::from(offset) * u128::from(self.count)) / u128::from(span)) as u32
        };
        self.lower_bound_from(key, guess)
    }

    /// Checks the values: the first key equals `first_key`, keys strictly
    /// increase and stay below `next_first_key` (or equal `last_key` for the
    /// last block), chunk and sub-chunk ids fit i32 exactly, and padding bits
    /// are zero. With the checksum, this makes every answer from a verified
    /// block exact.
    pub fn verify(&self, first_key: i64, upper: KeyBound) -> Result<(), String> {
        if self.key_base != first_key || unpack(self.keys, 0, self.key_bits) != 0 {
            return Err(format!("first key is not the directory's {first_key}"));
        }
        let mut previous = self.key_base;
        let mut previous_offset = 0u64;
        for index in 0..self.count {
            let offset = unpack(self.keys, index, self.key_bits);
            if index > 0 && offset <= previous_offset {
                return Err(format!("keys do not increase at entry {index}"));
            }
            let key = self.key(index);
            if index > 0 && key <= previous {
                return Err(format!("key {key} at entry {index} wraps past i64::MAX"));
            }
            previous_offset = offset;
            previous = key;
            let (chunk_offset, sub_offset) = self.location_offsets(index);
            let chunk = i64::from(self.chunk_base) + chunk_offset as i64;
            let sub = i64::from(self.sub_base) + sub_offset as i64;
            if i32::try_from(chunk).is_err() || i32::try_from(sub).is_err() {
                return Err(format!("chunk or sub-chunk of entry {index} overflows i32"));
            }
        }
        match upper {
            KeyBound::Below(next) if previous >= next => {
                return Err(format!(
                    "last key {previous} is not below the next block's {next}"
                ));
            }
            KeyBound::Last(last) if previous != last => {
                return Err(format!(
                    "last key {previous} is not the header's key_max {last}"
                ));
            }
            _ => {}
        }
        for (section, bits) in [
            (self.keys, self.key_bits),
            (self.locations, self.chunk_bits + self.sub_bits),
        ] {
            let used = (u64::from(self.count) * u64::from(bits)) % 8;
            if used != 0 && section.last().is_some_and(|&byte| byte >> used != 0) {
                return Err("padding bits are not zero".into());
            }
        }
        Ok(())
    }
}

/// The first index in `0..len` where `is_before` turns false, for a
/// predicate that is true on a prefix and false after it. Starts at `guess`
/// and gallops outwards (1, 2, 4, … away) until the answer is bracketed,
/// then bisects: O(log distance) probes, all near `guess` when it is good.
#[inline]
pub fn partition_point_from(len: usize, guess: usize, is_before: impl Fn(usize) -> bool) -> usize {
    if len == 0 {
        return 0;
    }
    let guess = guess.min(len - 1);
    // Invariant: is_before(i) for every i < low; !is_before(i) for every i >= high.
    let (mut low, mut high);
    if is_before(guess) {
        low = guess + 1;
        high = len;
        let mut step = 1;
        while let Some(probe) = guess.checked_add(step).filter(|&probe| probe < len) {
            if is_before(probe) {
                low = probe + 1;
                step *= 2;
            } else {
                high = probe;
                break;
            }
        }
    } else {
        low = 0;
        high = guess;
        let mut step = 1;
        while let Some(probe) = guess.checked_sub(step) {
            if is_before(probe) {
                low = probe + 1;
                break;
            }
            high = probe;
            step *= 2;
        }
    }
    while low < high {
        let middle = low + (high - low) / 2;
        if is_before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// What the last key of a block is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBound {
    /// Not the last block: keys stay below the next block's first key.
    Below(i64),
    /// The last block: its last key is the header's `key_max`.
    Last(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_pinned() {
        assert_eq!(&MAGIC, b"SKYDIRIX");
        assert_eq!(VERSION, 1);
        assert_eq!(
            (HEADER_LEN, TAIL_LEN, DIR_ENTRY_LEN, BLOCK_HEADER_LEN),
            (64, 48, 24, 24)
        );
        assert_eq!(max_block_len(MAX_BLOCK_ENTRIES), 24 + 65_536 * 16);
        assert_eq!(max_block_len(DEFAULT_BLOCK_ENTRIES), 24 + 512 * 16);
    }

    #[test]
    fn pack_unpack_every_width() {
        for bits in 0..=64u8 {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let values: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
                .collect();
            let mut out = Vec::new();
            pack(values.iter().copied(), bits, &mut out);
            assert_eq!(out.len() as u64, packed_len(37, bits));
            for (index, value) in values.iter().enumerate() {
                assert_eq!(
                    unpack(&out, index as u32, bits),
                    *value,
                    "bits {bits} index {index}"
                );
            }
        }
    }

    #[test]
    fn partition_point_from_any_guess() {
        for len in 0..40usize {
            for answer in 0..=len {
                for guess in 0..len + 3 {
                    let found = partition_point_from(len, guess, |index| {
                        assert!(index < len, "probe out of range");
                        index < answer
                    });
                    assert_eq!(found, answer, "len {len} answer {answer} guess {guess}");
                }
            }
        }
    }

    #[test]
    fn block_round_trip_extremes() {
        let entries = [
            DirectorEntry {
                object_id: i64::MIN,
                chunk_id: i32::MIN,
                sub_chunk_id: i32::MAX,
            },
            DirectorEntry {
                object_id: -1,
                chunk_id: 0,
                sub_chunk_id: 0,
            },
            DirectorEntry {
                object_id: i64::MAX,
                chunk_id: i32::MAX,
                sub_chunk_id: i32::MIN,
            },
        ];
        let mut out = Vec::new();
        let dir = encode_block(&entries, 64, &mut out);
        assert_eq!(dir.len as usize, out.len());
        let view = BlockView::parse(&out).unwrap();
        view.verify(i64::MIN, KeyBound::Last(i64::MAX)).unwrap();
        for (index, entry) in entries.iter().enumerate() {
            assert_eq!(view.entry(index as u32), *entry);
        }
        for end_key in [i64::MIN, -5, 0, i64::MAX] {
            assert_eq!(view.lower_bound(0, end_key), 2);
            assert_eq!(view.lower_bound(-1, end_key), 1);
            assert_eq!(view.lower_bound(i64::MIN, end_key), 0);
            assert_eq!(view.lower_bound(i64::MAX, end_key), 2);
        }
        assert_eq!(view.lower_bound_from(i64::MAX, 0), 2);
    }
}
