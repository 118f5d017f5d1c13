//! A bounded cache of decoded footers, keyed by path and file identity, so
//! that interactive queries on one chunk do not re-read and re-decode it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use skyscan_format::{FileTail, Footer, TAIL_LEN};

use super::error::{Result, StorageError};
use super::io::pread_full;

/// What identifies one version of a file: a replaced file (new inode, size
/// or modification time) misses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Length in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

#[derive(Debug)]
struct Entry {
    identity: FileIdentity,
    footer: Arc<Footer>,
    bytes: u64,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<PathBuf, Entry>,
    tick: u64,
    bytes: u64,
    hits: u64,
    misses: u64,
}

/// Counters of a [`FooterCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterCacheStatus {
    /// Footers held.
    pub entries: u64,
    /// Their footer bytes (on-disk size, a proxy for memory).
    pub bytes: u64,
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that read the file.
    pub misses: u64,
}

/// Bounded LRU of decoded footers.
#[derive(Debug)]
pub struct FooterCache {
    inner: Mutex<Lru>,
    max_entries: usize,
    max_bytes: u64,
}

impl FooterCache {
    /// A cache of at most `max_entries` footers and `max_bytes` footer bytes.
    pub fn new(max_entries: usize, max_bytes: u64) -> FooterCache {
        FooterCache {
            inner: Mutex::new(Lru::default()),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The footer of the chunk file at `path` (chunk `chunk_id`), read and
    /// verified on a miss. Also returns the file length.
    pub fn get(&self, path: &Path, chunk_id: i32) -> Result<(Arc<Footer>, u64)> {
        let metadata = std::fs::metadata(path).map_err(|e| StorageError::io(path, "stat", e))?;
        let identity = FileIdentity::of(&metadata);
        {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            if let Some(entry) = lru.map.get_mut(path)
                && entry.identity == identity
            {
                entry.last_used = tick;
                let footer = Arc::clone(&entry.footer);
                lru.hits += 1;
                return Ok((footer, identity.len));
            }
            lru.misses += 1;
        }
        let file = File::open(path).map_err(|e| StorageError::io(path, "open", e))?;
        let footer = Arc::new(read_footer(&file, path, identity.len, chunk_id)?);
        let bytes = footer_bytes(&footer, identity.len);
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(old) = lru.map.insert(
            path.to_path_buf(),
            Entry {
                identity,
                footer: Arc::clone(&footer),
                bytes,
                last_used: tick,
            },
        ) {
            lru.bytes -= old.bytes;
        }
        lru.bytes += bytes;
        while lru.map.len() > self.max_entries || (lru.bytes > self.max_bytes && lru.map.len() > 1)
        {
            let oldest = lru
                .map
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(path, _)| path.clone());
            match oldest.and_then(|path| lru.map.remove(&path)) {
                Some(entry) => lru.bytes -= entry.bytes,
                None => break,
            }
        }
        Ok((footer, identity.len))
    }

    /// Counters.
    pub fn status(&self) -> FooterCacheStatus {
        let lru = self.lock();
        FooterCacheStatus {
            entries: lru.map.len() as u64,
            bytes: lru.bytes,
            hits: lru.hits,
            misses: lru.misses,
        }
    }

    /// Forgets every footer.
    pub fn clear(&self) {
        let mut lru = self.lock();
        lru.map.clear();
        lru.bytes = 0;
    }
}

fn footer_bytes(footer: &Footer, file_len: u64) -> u64 {
    file_len.saturating_sub(footer.footer_offset())
}

/// Reads and verifies the tail and footer of an open chunk file.
pub fn read_footer(file: &File, path: &Path, len: u64, chunk_id: i32) -> Result<Footer> {
    let corrupt = |location: &str, message: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        chunk_id,
        location: location.to_string(),
        message,
    };
    if len < TAIL_LEN as u64 {
        return Err(corrupt(
            "tail",
            format!("{len} bytes: shorter than a chunk file's tail"),
        ));
    }
    let mut tail = [0u8; TAIL_LEN];
    let n = pread_full(file, len - TAIL_LEN as u64, &mut tail)
        .map_err(|e| StorageError::io(path, "read", e))?;
    if n != TAIL_LEN {
        return Err(corrupt("tail", "file shrank while being read".to_string()));
    }
    let tail =
        FileTail::parse(&tail, len).map_err(|e| StorageError::from_format(path, chunk_id, e))?;
    let range = tail.footer_range();
    let mut bytes = vec![0u8; tail.footer_len as usize];
    let n = pread_full(file, range.offset, &mut bytes)
        .map_err(|e| StorageError::io(path, "read", e))?;
    if n != bytes.len() {
        return Err(corrupt(
            "footer",
            "file shrank while being read".to_string(),
        ));
    }
    let footer =
        Footer::decode(&bytes, &tail).map_err(|e| StorageError::from_format(path, chunk_id, e))?;
    if footer.chunk_id() as i32 != chunk_id {
        return Err(corrupt(
            "footer",
            format!(
                "the footer says chunk {}, the catalog {chunk_id}",
                footer.chunk_id()
            ),
        ));
    }
    Ok(footer)
}
