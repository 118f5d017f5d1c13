//! The io_uring backend: `O_DIRECT` reads into aligned buffers with many in
//! flight (crate `io-uring`). A request whose pages are all in the page
//! cache (asked with `cachestat(2)`, Linux 6.5+, which only counts pages)
//! is copied from it instead: a hot scan runs at memory speed, a cold one
//! goes to the device, bypassing the page cache (cold buffered reads run at
//! a third of `O_DIRECT`'s rate on this VM, MEASURED.md). `preadv2` with
//! `RWF_NOWAIT` is not used as the probe: on a miss it still starts
//! readahead, which would read the same bytes a second time.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use io_uring::{IoUring, opcode, types};

use super::buffer::IO_ALIGN;
use super::io::{IoBackend, IoFile, ReadRequest, ReadStats, open_buffered};

/// Options of a [`UringBackend`].
#[derive(Debug, Clone, Copy)]
pub struct UringOptions {
    /// Reads in flight at once per ring (1..=256).
    pub queue_depth: u32,
    /// Copy ranges that are in the page cache instead of reading the disk.
    pub use_page_cache: bool,
    /// Use `O_DIRECT` (falls back per file where the file system refuses it).
    pub direct: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            queue_depth: 32,
            use_page_cache: true,
            direct: true,
        }
    }
}

/// io_uring reads; see the module documentation.
#[derive(Debug)]
pub struct UringBackend {
    options: UringOptions,
    /// Idle rings; a reader takes one for a batch (one ring per concurrent reader).
    rings: Mutex<Vec<IoUringBox>>,
}

/// `IoUring` does not implement `Debug`.
struct IoUringBox(IoUring);

impl std::fmt::Debug for IoUringBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoUring")
    }
}

/// One piece of a request still to read from the device.
struct Pending {
    request: usize,
    /// Offset in the request's buffer.
    at: usize,
    len: usize,
    offset: u64,
}

impl UringBackend {
    /// Creates the backend; fails when the kernel has no io_uring or
    /// forbids it (`kernel.io_uring_disabled`, seccomp).
    pub fn new(options: UringOptions) -> io::Result<UringBackend> {
        let options = UringOptions {
            queue_depth: options.queue_depth.clamp(1, 256),
            ..options
        };
        let ring = IoUring::new(options.queue_depth)?;
        Ok(UringBackend {
            options,
            rings: Mutex::new(vec![IoUringBox(ring)]),
        })
    }

    fn rings(&self) -> MutexGuard<'_, Vec<IoUringBox>> {
        match self.rings.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn take_ring(&self) -> io::Result<IoUringBox> {
        if let Some(ring) = self.rings().pop() {
            return Ok(ring);
        }
        Ok(IoUringBox(IoUring::new(self.options.queue_depth)?))
    }

    /// Copies `buf` at `offset` from the page cache when every page of the
    /// range is cached; returns the bytes copied (0 when it is not cached,
    /// or when `cachestat` is not available).
    fn copy_cached(file: &File, file_len: u64, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if !fully_cached(file, file_len, offset, buf.len() as u64) {
            return Ok(0);
        }
        super::io::pread_full(file, offset, buf)
    }

    fn read_direct(
        &self,
        ring: &mut IoUring,
        fd: i32,
        file_len: u64,
        requests: &mut [ReadRequest<'_>],
        mut pending: Vec<Pending>,
    ) -> io::Result<u64> {
        let depth = self.options.queue_depth as usize;
        let mut in_flight: Vec<Option<Pending>> = (0..depth).map(|_| None).collect();
        let mut free: Vec<usize> = (0..depth).rev().collect();
        let mut flying = 0usize;
        let mut direct_bytes = 0u64;
        pending.reverse();
        loop {
            while let (Some(slot), Some(piece)) = (free.last().copied(), pending.pop()) {
                let buf = &mut requests[piece.request].buf[piece.at..piece.at + piece.len];
                let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), piece.len as u32)
                    .offset(piece.offset)
                    .build()
                    .user_data(slot as u64);
                // SAFETY: the buffer stays borrowed (through `requests`) and
                // untouched until this entry's completion is reaped below:
                // the loop does not return before every submitted entry
                // completed (errors are returned only after draining).
                let pushed = unsafe { ring.submission().push(&entry) };
                if pushed.is_err() {
                    pending.push(piece);
                    break;
                }
                free.pop();
                in_flight[slot] = Some(piece);
                flying += 1;
            }
            if flying == 0 {
                return Ok(direct_bytes);
            }
            ring.submit_and_wait(1)?;
            let mut failure: Option<io::Error> = None;
            let completions: Vec<(u64, i32)> = ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result()))
                .collect();
            for (slot, result) in completions {
                let slot = slot as usize;
                let Some(piece) = in_flight.get_mut(slot).and_then(Option::take) else {
                    continue;
                };
                flying -= 1;
                free.push(slot);
                if result < 0 {
                    let err = io::Error::from_raw_os_error(-result);
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) {
                        pending.push(piece);
                    } else if failure.is_none() {
                        failure = Some(err);
                    }
                    continue;
                }
                let n = result as usize;
                direct_bytes += n as u64;
                let end = piece.offset + n as u64;
                if n < piece.len && n > 0 && end < file_len {
                    pending.push(Pending {
                        request: piece.request,
                        at: piece.at + n,
                        len: piece.len - n,
                        offset: end,
                    });
                }
            }
            if let Some(err) = failure {
                // Drain what is still in flight before the buffers go away.
                while flying > 0 {
                    ring.submit_and_wait(1)?;
                    let done = ring.completion().count();
                    flying = flying.saturating_sub(done);
                }
                return Err(err);
            }
        }
    }
}

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// `cachestat(2)`'s number (the same on every architecture: 451).
const SYS_CACHESTAT: libc::c_long = 451;

/// Whether every page of `[offset, offset + len)` of `file` is in the page
/// cache (false when `cachestat` is missing or fails: then read the disk).
pub(crate) fn fully_cached(file: &File, file_len: u64, offset: u64, len: u64) -> bool {
    let page = 4096u64;
    let first = offset / page;
    // A read past the end of the file needs no cached page there.
    let end = (offset + len).div_ceil(page).min(file_len.div_ceil(page));
    if end <= first {
        return true;
    }
    let range = CachestatRange {
        off: first * page,
        len: (end - first) * page,
    };
    let mut stat = Cachestat::default();
    // SAFETY: both pointers refer to live, properly laid out #[repr(C)]
    // values for the duration of the call; the descriptor is open.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    rc == 0 && stat.nr_cache >= end - first
}

impl IoBackend for UringBackend {
    fn name(&self) -> String {
        let mut name = String::from("io_uring");
        if self.options.direct {
            name.push_str("+O_DIRECT");
        }
        if self.options.use_page_cache {
            name.push_str("+page-cache-first");
        }
        name
    }

    fn needs_alignment(&self) -> bool {
        self.options.direct
    }

    fn open(&self, path: &Path) -> io::Result<IoFile> {
        let (buffered, len) = open_buffered(path)?;
        let direct = if self.options.direct {
            match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
            {
                Ok(file) => Some(file),
                // File systems without O_DIRECT (tmpfs) refuse it with EINVAL.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => None,
                Err(err) => return Err(err),
            }
        } else {
            None
        };
        Ok(IoFile {
            path: path.to_path_buf(),
            buffered,
            direct,
            len,
        })
    }

    fn read(&self, file: &IoFile, requests: &mut [ReadRequest<'_>]) -> io::Result<ReadStats> {
        let align = IO_ALIGN as u64;
        let mut stats = ReadStats::default();
        let mut pending = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter_mut().enumerate() {
            let len = request.buf.len();
            let cached = if self.options.use_page_cache {
                Self::copy_cached(&file.buffered, file.len, request.offset, request.buf)?
            } else {
                0
            };
            stats.cached_bytes += cached as u64;
            let reached = request.offset + cached as u64;
            if cached == len || reached >= file.len {
                continue;
            }
            // Restart at a 4 KiB boundary (O_DIRECT alignment); the few bytes
            // read twice are identical.
            let from = if file.direct.is_some() {
                reached / align * align
            } else {
                reached
            };
            let at = (from - request.offset) as usize;
            pending.push(Pending {
                request: index,
                at,
                len: len - at,
                offset: from,
            });
        }
        if pending.is_empty() {
            return Ok(stats);
        }
        let fd = file
            .direct
            .as_ref()
            .map_or(file.buffered.as_raw_fd(), AsRawFd::as_raw_fd);
        let mut ring = self.take_ring()?;
        let result = self.read_direct(&mut ring.0, fd, file.len, requests, pending);
        self.rings().push(ring);
        stats.direct_bytes += result?;
        Ok(stats)
    }
}
