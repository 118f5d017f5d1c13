//! Page-aligned read buffers, optionally pinned with `mlock`.
//!
//! One of the few places with `unsafe`: O_DIRECT needs buffers aligned to
//! 4 KiB, and pinning needs `mlock` on their pages. Buffers are anonymous
//! memory maps: page aligned, zero-filled lazily by the kernel, returned to
//! the kernel whole on drop.

use std::io;
use std::ptr::NonNull;

/// Alignment of every buffer and of every O_DIRECT offset and length.
pub const IO_ALIGN: usize = 4096;

/// A page-aligned, zero-initialised byte buffer of fixed capacity.
#[derive(Debug)]
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
    locked: bool,
}

// SAFETY: the buffer owns its mapping exclusively (no aliasing pointers are
// kept elsewhere); access goes through &self / &mut self like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out &[u8].
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A buffer of `capacity` bytes rounded up to [`IO_ALIGN`] (at least one page).
    pub fn new(capacity: usize) -> io::Result<AlignedBuf> {
        let capacity = capacity.max(1).div_ceil(IO_ALIGN) * IO_ALIGN;
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                capacity,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(AlignedBuf {
            ptr,
            capacity,
            locked: false,
        })
    }

    /// Capacity in bytes (a multiple of [`IO_ALIGN`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the pages are pinned.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Pins the pages in RAM (`mlock`, which also faults them in). Fails with
    /// the OS error (EPERM, ENOMEM when over `RLIMIT_MEMLOCK`).
    pub fn lock(&mut self) -> io::Result<()> {
        if self.locked {
            return Ok(());
        }
        // SAFETY: the range is exactly our own live mapping.
        let rc = unsafe { libc::mlock(self.ptr.as_ptr().cast(), self.capacity) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.locked = true;
        Ok(())
    }

    /// The whole buffer.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for `capacity` initialised (zero-filled or
        // written) bytes for the life of self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.capacity) }
    }

    /// The whole buffer, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once; munmap also drops any
        // mlock on it. Nothing refers to the memory after drop.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let mut buf = AlignedBuf::new(10_000).unwrap();
        assert_eq!(buf.capacity(), 12_288);
        assert_eq!(buf.as_slice().as_ptr() as usize % IO_ALIGN, 0);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
        buf.as_mut_slice()[5] = 7;
        assert_eq!(buf.as_slice()[5], 7);
    }
}
