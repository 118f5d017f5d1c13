//! I/O backends behind one small trait (as redb's `StorageBackend`,
//! TigerBeetle's simulated storage): positional reads of byte ranges.
//!
//! * [`PreadBackend`]: buffered `pread`; the fallback and the plain path.
//! * [`super::uring::UringBackend`]: io_uring, `O_DIRECT` into aligned
//!   buffers, many reads in flight; ranges already in the page cache are
//!   copied from it first (`preadv2` with `RWF_NOWAIT`), so a hot scan does
//!   not go to the disk.
//! * [`FaultBackend`]: wraps another backend and fails or corrupts reads
//!   after N operations, for tests.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::buffer::IO_ALIGN;

/// One positional read: fill `buf` from file offset `offset`. Bytes past
/// the end of the file are left as they were.
#[derive(Debug)]
pub struct ReadRequest<'a> {
    /// File offset (4 KiB aligned for backends that need alignment).
    pub offset: u64,
    /// Destination (length and address 4 KiB aligned for those backends).
    pub buf: &'a mut [u8],
}

/// An open chunk file.
#[derive(Debug)]
pub struct IoFile {
    /// The path, for error messages and fault rules.
    pub path: PathBuf,
    /// A buffered descriptor (footers, page-cache reads).
    pub buffered: File,
    /// An `O_DIRECT` descriptor, when the backend uses one and the file
    /// system supports it.
    pub direct: Option<File>,
    /// File length at open.
    pub len: u64,
}

/// Bytes a read served from each source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Bytes copied from the page cache.
    pub cached_bytes: u64,
    /// Bytes read from the device with `O_DIRECT`.
    pub direct_bytes: u64,
}

impl ReadStats {
    /// Adds `other`.
    pub fn add(&mut self, other: ReadStats) {
        self.cached_bytes += other.cached_bytes;
        self.direct_bytes += other.direct_bytes;
    }
}

/// A way of reading byte ranges of files.
pub trait IoBackend: Send + Sync + fmt::Debug {
    /// A short name for logs and status (`"io_uring+O_DIRECT"`, `"pread"`).
    fn name(&self) -> String;
    /// Whether requests must be 4 KiB aligned (offset, length, address).
    fn needs_alignment(&self) -> bool;
    /// Opens `path` for reading.
    fn open(&self, path: &Path) -> io::Result<IoFile>;
    /// Performs every request (several may be in flight at once); returns
    /// when all are complete.
    fn read(&self, file: &IoFile, requests: &mut [ReadRequest<'_>]) -> io::Result<ReadStats>;
}

/// Opens the buffered descriptor and reads the length.
pub(crate) fn open_buffered(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// Reads `buf.len()` bytes at `offset`, stopping early at end of file.
/// Returns the bytes read.
pub(crate) fn pread_full(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// Buffered positional reads, one at a time. Works everywhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct PreadBackend;

impl IoBackend for PreadBackend {
    fn name(&self) -> String {
        "pread".to_string()
    }

    fn needs_alignment(&self) -> bool {
        false
    }

    fn open(&self, path: &Path) -> io::Result<IoFile> {
        let (buffered, len) = open_buffered(path)?;
        Ok(IoFile {
            path: path.to_path_buf(),
            buffered,
            direct: None,
            len,
        })
    }

    fn read(&self, file: &IoFile, requests: &mut [ReadRequest<'_>]) -> io::Result<ReadStats> {
        let mut stats = ReadStats::default();
        for request in requests {
            let n = pread_full(&file.buffered, request.offset, request.buf)?;
            stats.cached_bytes += n as u64;
        }
        Ok(stats)
    }
}

/// What a [`FaultRule`] does to a matching read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The read fails with EIO.
    FailIo,
    /// The read succeeds but the first 8 bytes of the buffer are flipped
    /// (requests start at a block or extent start, so a block's checksum
    /// catches it).
    Corrupt,
}

/// A fault: after `after` matching requests, every matching request gets
/// `kind` (up to `count` times).
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only files whose path contains this string (`None`: all files).
    pub path_contains: Option<String>,
    /// Only requests overlapping this file byte range (`None`: all).
    pub offsets: Option<Range<u64>>,
    /// Matching requests let through before the fault starts.
    pub after: u64,
    /// How many faults to inject (`u64::MAX`: forever).
    pub count: u64,
    /// The fault.
    pub kind: FaultKind,
}

/// A backend that injects faults into another one's reads (tests).
#[derive(Debug)]
pub struct FaultBackend {
    inner: Arc<dyn IoBackend>,
    rules: Vec<(FaultRule, AtomicU64)>,
    injected: AtomicU64,
}

impl FaultBackend {
    /// Wraps `inner` with `rules`.
    pub fn new(inner: Arc<dyn IoBackend>, rules: Vec<FaultRule>) -> FaultBackend {
        FaultBackend {
            inner,
            rules: rules
                .into_iter()
                .map(|rule| (rule, AtomicU64::new(0)))
                .collect(),
            injected: AtomicU64::new(0),
        }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn fault_for(&self, path: &Path, offset: u64, len: u64) -> Option<FaultKind> {
        let path = path.to_string_lossy();
        for (rule, seen) in &self.rules {
            if let Some(part) = &rule.path_contains
                && !path.contains(part.as_str())
            {
                continue;
            }
            if let Some(range) = &rule.offsets
                && (offset >= range.end || offset + len <= range.start)
            {
                continue;
            }
            let index = seen.fetch_add(1, Ordering::Relaxed);
            if index >= rule.after && index - rule.after < rule.count {
                self.injected.fetch_add(1, Ordering::Relaxed);
                return Some(rule.kind);
            }
        }
        None
    }
}

impl IoBackend for FaultBackend {
    fn name(&self) -> String {
        format!("fault({})", self.inner.name())
    }

    fn needs_alignment(&self) -> bool {
        self.inner.needs_alignment()
    }

    fn open(&self, path: &Path) -> io::Result<IoFile> {
        self.inner.open(path)
    }

    fn read(&self, file: &IoFile, requests: &mut [ReadRequest<'_>]) -> io::Result<ReadStats> {
        let faults: Vec<Option<FaultKind>> = requests
            .iter()
            .map(|request| self.fault_for(&file.path, request.offset, request.buf.len() as u64))
            .collect();
        if faults.contains(&Some(FaultKind::FailIo)) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let stats = self.inner.read(file, requests)?;
        for (request, fault) in requests.iter_mut().zip(faults) {
            if fault == Some(FaultKind::Corrupt) {
                for byte in request.buf.iter_mut().take(8) {
                    *byte ^= 0xA5;
                }
            }
        }
        Ok(stats)
    }
}

/// Rounds `[offset, offset + len)` out to [`IO_ALIGN`].
pub fn align_range(offset: u64, len: u64) -> (u64, u64) {
    let align = IO_ALIGN as u64;
    let start = offset / align * align;
    let end = (offset + len).div_ceil(align) * align;
    (start, end - start)
}
