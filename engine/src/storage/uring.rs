//! The io_uring backend: `O_DIRECT` reads into aligned buffers with many in
//! flight (crate `io-uring`). Ranges already in the page cache are copied
//! from it first with `preadv2(RWF_NOWAIT)`, which never waits for the
//! disk: a hot scan runs at memory speed and only the missing pages go to
//! the device, bypassing the page cache (cold buffered reads run at a third
//! of `O_DIRECT`'s rate on this VM, MEASURED.md).

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

    /// Copies what the page cache holds of `buf` at `offset`; returns the
    /// bytes copied (a prefix).
    fn copy_cached(file: &File, offset: u64, buf: &mut [u8]) -> usize {
        let mut done = 0usize;
        while done < buf.len() {
            let iov = libc::iovec {
                iov_base: buf[done..].as_mut_ptr().cast(),
                iov_len: buf.len() - done,
            };
            // SAFETY: iov points into `buf`, valid and exclusively borrowed
            // for the call; the descriptor is open.
            let n = unsafe {
                libc::preadv2(
                    file.as_raw_fd(),
                    &iov,
                    1,
                    (offset + done as u64) as libc::off_t,
                    libc::RWF_NOWAIT,
                )
            };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        done
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
                Self::copy_cached(&file.buffered, request.offset, request.buf)
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
