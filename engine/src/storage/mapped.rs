//! Memory maps of chunk files for the plain path: a hot chunk is decoded
//! straight from the page cache, without copying its blocks into a buffer
//! first (the copy and the page-cache lookups of `pread` were 45% of a hot
//! filter-and-aggregate query).
//!
//! Maps are kept per file and shared, so an interactive query on a hot chunk
//! touches no page tables either. Published chunk files are immutable: a
//! load writes a new table directory and never rewrites a file in place, so
//! a map stays valid for as long as the cache holds it (a dropped table's
//! files disappear from the directory; their pages live until unmapped).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use memmap2::Mmap;

/// One chunk file's map and, when the cache trusts verified blocks, which
/// of its blocks have had their checksum verified. By default every decode
/// verifies (SPEC.md part 1: a checksum on every read). With
/// [`super::StorageConfig::checksum_once_per_map`] a block verified once
/// through this map is not hashed again (checksums were ~14% of a hot
/// full scan's CPU) — at the price that a page the kernel evicted and read
/// again from the disk is not checked again until the map is dropped.
#[derive(Debug)]
pub struct MappedFile {
    /// The read-only map of the whole file.
    pub map: Mmap,
    trust: bool,
    verified: OnceLock<Box<[AtomicU64]>>,
}

impl MappedFile {
    fn bits(&self, blocks: usize) -> Option<&[AtomicU64]> {
        let bits = self.verified.get_or_init(|| {
            (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect()
        });
        (bits.len() == blocks.div_ceil(64)).then_some(&**bits)
    }

    /// Whether block `index` of `blocks` was verified before.
    pub fn is_verified(&self, index: usize, blocks: usize) -> bool {
        self.trust
            && index < blocks
            && self.bits(blocks).is_some_and(|bits| {
                bits[index / 64].load(Ordering::Relaxed) & (1 << (index % 64)) != 0
            })
    }

    /// Records that block `index` of `blocks` passed its checksum.
    pub fn set_verified(&self, index: usize, blocks: usize) {
        if self.trust
            && index < blocks
            && let Some(bits) = self.bits(blocks)
        {
            bits[index / 64].fetch_or(1 << (index % 64), Ordering::Relaxed);
        }
    }
}

use super::error::{Result, StorageError};

/// Maps by path, each with the clock of its last use; and the clock.
type Maps = (HashMap<PathBuf, (Arc<MappedFile>, u64)>, u64);

/// A bounded cache of read-only maps, by path.
#[derive(Debug)]
pub struct MappingCache {
    maps: Mutex<Maps>,
    max_entries: usize,
    trust_verified: bool,
}

impl MappingCache {
    /// A cache of at most `max_entries` maps; with `trust_verified`, a
    /// block's checksum is verified once per map (see [`MappedFile`]).
    pub fn new(max_entries: usize, trust_verified: bool) -> MappingCache {
        MappingCache {
            maps: Mutex::new((HashMap::new(), 0)),
            max_entries: max_entries.max(1),
            trust_verified,
        }
    }

    /// The map of `path` (mapped on first use).
    pub fn get(&self, path: &Path) -> Result<Arc<MappedFile>> {
        let mut guard = match self.maps.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (maps, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        if let Some((map, used)) = maps.get_mut(path) {
            *used = now;
            return Ok(Arc::clone(map));
        }
        let file = File::open(path).map_err(|e| StorageError::io(path, "open", e))?;
        // SAFETY: published chunk files are never modified or truncated in
        // place (loads write new files and publish them by renaming a
        // directory; SPEC.md part 3), so the mapped bytes do not change
        // under the map; the map is read-only.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| StorageError::io(path, "mmap", e))?;
        let map = Arc::new(MappedFile {
            map,
            trust: self.trust_verified,
            verified: OnceLock::new(),
        });
        if maps.len() >= self.max_entries
            && let Some(oldest) = maps
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone())
        {
            maps.remove(&oldest);
        }
        maps.insert(path.to_path_buf(), (Arc::clone(&map), now));
        Ok(map)
    }

    /// Number of maps held.
    pub fn len(&self) -> usize {
        match self.maps.lock() {
            Ok(g) => g.0.len(),
            Err(poisoned) => poisoned.into_inner().0.len(),
        }
    }

    /// True when no map is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
