//! Reading a director index: open (map and check the frame), then lookups
//! that verify each block the first time they touch it.

use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use super::layout::{
    BlockView, DIR_ENTRY_LEN, DirEntry, HEADER_LEN, Header, KeyBound, TAIL_LEN, Tail,
    max_block_len, partition_point_from,
};
use super::{DirectorEntry, DirectorError, Result};

/// The bytes of an index: a read-only map of the file, or a buffer.
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

/// An open director index. Cheap to share between threads (`&self` lookups).
pub struct DirectorIndex {
    storage: Storage,
    name: String,
    header: Header,
    block_count: usize,
    directory_offset: usize,
    /// One bit per block: set once the block passed [`DirectorIndex::verify_block`].
    verified: Box<[AtomicU64]>,
}

impl std::fmt::Debug for DirectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorIndex")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("block_count", &self.block_count)
            .finish_non_exhaustive()
    }
}

impl DirectorIndex {
    /// Maps the index file at `path` and checks its header, tail and
    /// directory (O(number of blocks); blocks are checked when first read).
    pub fn open(path: &Path) -> Result<DirectorIndex> {
        let file = File::open(path).map_err(|source| DirectorError::io(path, "open", source))?;
        let len = file
            .metadata()
            .map_err(|source| DirectorError::io(path, "stat", source))?
            .len();
        let name = path.display().to_string();
        if len < (HEADER_LEN + TAIL_LEN) as u64 {
            return Err(DirectorError::corrupt(
                &name,
                "file",
                format!(
                    "{len} bytes; an index has at least {}",
                    HEADER_LEN + TAIL_LEN
                ),
            ));
        }
        // SAFETY: the map is read-only and index files are immutable once
        // published (written under a temporary name, fsynced, renamed). Bytes
        // changed under the map by another process would at worst fail a
        // checksum; a file truncated under the map can raise SIGBUS, which is
        // why nothing in skyscan modifies a published index in place.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|source| DirectorError::io(path, "mmap", source))?;
        DirectorIndex::from_storage(Storage::Mapped(map), name)
    }

    /// An index held in memory (tests, tools, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<DirectorIndex> {
        DirectorIndex::from_storage(Storage::Owned(bytes), "<memory>".to_string())
    }

    fn from_storage(storage: Storage, name: String) -> Result<DirectorIndex> {
        let bytes = storage.bytes();
        let file_len = bytes.len() as u64;
        let corrupt =
            |location: &str, message: String| DirectorError::corrupt(&name, location, message);
        if bytes.len() < HEADER_LEN + TAIL_LEN {
            return Err(corrupt(
                "file",
                format!("{file_len} bytes; too short for an index"),
            ));
        }
        let header = Header::decode(bytes, &name)?;
        let tail = Tail::decode(&bytes[bytes.len() - TAIL_LEN..], &name)?;
        if tail.entry_count != header.entry_count {
            return Err(corrupt(
                "tail",
                format!(
                    "{} entries, header says {}",
                    tail.entry_count, header.entry_count
                ),
            ));
        }
        if tail.block_count != header.block_count() {
            return Err(corrupt(
                "tail",
                format!(
                    "{} blocks for {} entries",
                    tail.block_count, header.entry_count
                ),
            ));
        }
        // Every block is at least a header: bounds the directory before use.
        let directory_len = tail.block_count.checked_mul(DIR_ENTRY_LEN as u64);
        let expected_len = directory_len
            .and_then(|len| len.checked_add(tail.directory_offset))
            .and_then(|end| end.checked_add(TAIL_LEN as u64));
        if expected_len != Some(file_len) || tail.directory_offset < HEADER_LEN as u64 {
            return Err(corrupt(
                "tail",
                format!(
                    "directory at {} of {} blocks does not fit a file of {file_len} bytes",
                    tail.directory_offset, tail.block_count
                ),
            ));
        }
        // Both fit in the file length, which is a usize.
        let directory_offset = tail.directory_offset as usize;
        let block_count = tail.block_count as usize;
        let directory = &bytes[directory_offset..bytes.len() - TAIL_LEN];
        let crc = crc32c::crc32c(directory);
        if crc != tail.directory_crc32c {
            return Err(corrupt(
                "directory",
                format!(
                    "checksum {crc:#010x}, stored {:#010x}",
                    tail.directory_crc32c
                ),
            ));
        }
        // Blocks are contiguous from the header to the directory, in key order.
        let max_len = max_block_len(header.block_entries);
        let mut expected_offset = HEADER_LEN as u64;
        let mut previous_key = None;
        for block in 0..block_count {
            let entry = DirEntry::decode(directory, block);
            let location = || format!("directory entry {block}");
            if entry.offset != expected_offset {
                return Err(corrupt(
                    &location(),
                    format!("block offset {}, expected {expected_offset}", entry.offset),
                ));
            }
            if u64::from(entry.len) > max_len
                || (entry.len as usize) < super::layout::BLOCK_HEADER_LEN
            {
                return Err(corrupt(&location(), format!("block length {}", entry.len)));
            }
            if previous_key.is_some_and(|previous| entry.first_key <= previous) {
                return Err(corrupt(&location(), "first keys do not increase".into()));
            }
            if block == 0 && entry.first_key != header.key_min {
                return Err(corrupt(
                    &location(),
                    "first key is not the header's key_min".into(),
                ));
            }
            previous_key = Some(entry.first_key);
            expected_offset += u64::from(entry.len);
        }
        if expected_offset != tail.directory_offset {
            return Err(corrupt(
                "directory",
                format!(
                    "blocks end at {expected_offset}, the directory starts at {}",
                    tail.directory_offset
                ),
            ));
        }
        let verified = (0..block_count.div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Ok(DirectorIndex {
            storage,
            name,
            header,
            block_count,
            directory_offset,
            verified,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.header.entry_count
    }

    /// True when the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.header.entry_count == 0
    }

    /// Smallest and largest key, `None` when empty.
    pub fn key_range(&self) -> Option<(i64, i64)> {
        (!self.is_empty()).then_some((self.header.key_min, self.header.key_max))
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.block_count
    }

    /// Size of the index in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    fn directory(&self) -> &[u8] {
        let bytes = self.storage.bytes();
        &bytes[self.directory_offset..bytes.len() - TAIL_LEN]
    }

    /// The block that would hold `key`: the last one whose first key is
    /// `<= key`, searched outwards from `guess`.
    fn block_from(&self, key: i64, guess: usize) -> Option<usize> {
        let directory = self.directory();
        partition_point_from(self.block_count, guess, |block| {
            DirEntry::first_key(directory, block) <= key
        })
        .checked_sub(1)
    }

    /// The block that would hold `key`, starting from a guess interpolated
    /// between the smallest and largest key.
    fn block_for(&self, key: i64) -> Option<usize> {
        if self.is_empty() || key < self.header.key_min {
            return None;
        }
        let span = self.header.key_max as f64 - self.header.key_min as f64;
        let fraction = if span > 0.0 {
            (key as f64 - self.header.key_min as f64) / span
        } else {
            0.0
        };
        // Saturating float-to-int conversion; only a starting point.
        let guess = (fraction.clamp(0.0, 1.0) * self.block_count as f64) as usize;
        self.block_from(key, guess)
    }

    /// The first key after block `block` (or the largest key, for the last
    /// block): the interpolation end for searches inside the block.
    fn end_key(&self, block: usize) -> i64 {
        if block + 1 < self.block_count {
            DirEntry::first_key(self.directory(), block + 1)
        } else {
            self.header.key_max
        }
    }

    /// The block `block`, verified on first use.
    fn block(&self, block: usize) -> Result<BlockView<'_>> {
        let entry = DirEntry::decode(self.directory(), block);
        // Offsets and lengths were checked against the file on open.
        let start = entry.offset as usize;
        let bytes = &self.storage.bytes()[start..start + entry.len as usize];
        let word = &self.verified[block / 64];
        let bit = 1u64 << (block % 64);
        if word.load(Ordering::Acquire) & bit == 0 {
            self.verify_block(block, entry, bytes)?;
            word.fetch_or(bit, Ordering::Release);
        }
        BlockView::parse(bytes).map_err(|message| self.block_error(block, message))
    }

    fn block_error(&self, block: usize, message: String) -> DirectorError {
        DirectorError::corrupt(&self.name, format!("block {block}"), message)
    }

    fn verify_block(&self, block: usize, entry: DirEntry, bytes: &[u8]) -> Result<()> {
        let crc = crc32c::crc32c(bytes);
        if crc != entry.crc32c {
            return Err(self.block_error(
                block,
                format!("checksum {crc:#010x}, stored {:#010x}", entry.crc32c),
            ));
        }
        let view = BlockView::parse(bytes).map_err(|message| self.block_error(block, message))?;
        let expected = self.header.entries_in_block(block as u64);
        if view.count != expected {
            return Err(self.block_error(
                block,
                format!("{} entries, expected {expected}", view.count),
            ));
        }
        let upper = if block + 1 < self.block_count {
            KeyBound::Below(DirEntry::first_key(self.directory(), block + 1))
        } else {
            KeyBound::Last(self.header.key_max)
        };
        view.verify(entry.first_key, upper)
            .map_err(|message| self.block_error(block, message))
    }

    /// Verifies every block (what `skyscan verify` runs).
    pub fn verify_all(&self) -> Result<()> {
        for block in 0..self.block_count {
            self.block(block)?;
        }
        Ok(())
    }

    /// The (chunkId, subChunkId) of `object_id`, or `None` when absent.
    pub fn lookup(&self, object_id: i64) -> Result<Option<(i32, i32)>> {
        if object_id > self.header.key_max {
            return Ok(None);
        }
        let Some(block) = self.block_for(object_id) else {
            return Ok(None);
        };
        let view = self.block(block)?;
        let index = view.lower_bound(object_id, self.end_key(block));
        Ok((index < view.count && view.key(index) == object_id).then(|| view.location(index)))
    }

    /// Looks up many keys in one pass when they are sorted ascending: the
    /// block and in-block searches resume where the previous key ended.
    /// Unsorted input is answered correctly, at the cost of a full search for
    /// each key smaller than its predecessor. Answers are in input order.
    pub fn lookup_sorted_batch(&self, object_ids: &[i64]) -> Result<Vec<Option<(i32, i32)>>> {
        let mut answers = Vec::with_capacity(object_ids.len());
        // The current block, its view, and where the previous key landed in it.
        let mut current: Option<(usize, BlockView<'_>, u32)> = None;
        let mut previous_key = i64::MIN;
        for &object_id in object_ids {
            let sorted = object_id >= previous_key;
            previous_key = object_id;
            if object_id > self.header.key_max {
                answers.push(None);
                continue;
            }
            let block = match &current {
                // Sorted: gallop forward from the current block.
                Some((block, _, _)) if sorted => self.block_from(object_id, *block),
                _ => self.block_for(object_id),
            };
            let Some(block) = block else {
                answers.push(None);
                continue;
            };
            let index = match &mut current {
                Some((current_block, view, position)) if *current_block == block && sorted => {
                    *position = view.lower_bound_from(object_id, *position);
                    *position
                }
                _ => {
                    let view = self.block(block)?;
                    let position = view.lower_bound(object_id, self.end_key(block));
                    current = Some((block, view, position));
                    position
                }
            };
            let answer = match &current {
                Some((_, view, _)) if index < view.count && view.key(index) == object_id => {
                    Some(view.location(index))
                }
                _ => None,
            };
            answers.push(answer);
        }
        Ok(answers)
    }

    /// The entries whose key is in `range`, in key order.
    pub fn range(&self, range: impl RangeBounds<i64>) -> RangeIter<'_> {
        let low = match range.start_bound() {
            Bound::Included(&low) => Some(low),
            Bound::Excluded(&low) => low.checked_add(1),
            Bound::Unbounded => Some(i64::MIN),
        };
        let high = match range.end_bound() {
            Bound::Included(&high) => Some(high),
            Bound::Excluded(&high) => high.checked_sub(1),
            Bound::Unbounded => Some(i64::MAX),
        };
        let (low, high, done) = match (low, high) {
            (Some(low), Some(high)) if low <= high && !self.is_empty() => (low, high, false),
            _ => (0, 0, true),
        };
        RangeIter {
            index: self,
            block: self.block_for(low).unwrap_or(0),
            position: None,
            low,
            high,
            done,
        }
    }

    /// Every entry in key order.
    pub fn iter(&self) -> RangeIter<'_> {
        self.range(..)
    }
}

/// Iterator over a key range of a [`DirectorIndex`]; yields an error (then
/// stops) if a block it reaches is corrupt.
pub struct RangeIter<'a> {
    index: &'a DirectorIndex,
    block: usize,
    /// Position in the current block (`None` before the block is entered).
    position: Option<u32>,
    low: i64,
    high: i64,
    done: bool,
}

impl Iterator for RangeIter<'_> {
    type Item = Result<DirectorEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if self.block >= self.index.block_count {
                self.done = true;
                break;
            }
            let view = match self.index.block(self.block) {
                Ok(view) => view,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            };
            let position = match self.position {
                Some(position) => position,
                None => view.lower_bound(self.low, self.index.end_key(self.block)),
            };
            if position >= view.count {
                self.block += 1;
                self.position = None;
                continue;
            }
            let entry = view.entry(position);
            if entry.object_id > self.high {
                self.done = true;
                break;
            }
            self.position = Some(position + 1);
            return Some(Ok(entry));
        }
        None
    }
}
