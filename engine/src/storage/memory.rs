//! The memory manager: read buffers within a budget, pinned with `mlock`
//! (BRIEF §4, Qserv's memman).
//!
//! * A **required** request waits until the budget has room, so a convoy
//!   that runs out of memory waits instead of thrashing. A required request
//!   is granted anyway when nothing else holds memory (it would otherwise
//!   wait forever): the scan can never starve.
//! * A **flexible** request never waits: within the budget it is granted
//!   like a required one, beyond it the buffer is neither counted against
//!   the budget nor pinned (interactive queries use this).
//! * Buffers come back to a pool on drop and are reused: fresh pages cost
//!   ~2 CPU-s per GiB on this VM (MEASURED.md). Pooled buffers count against
//!   the budget and are unmapped when a new request needs their room.
//! * When `mlock` is refused (EPERM, ENOMEM over `RLIMIT_MEMLOCK`), buffers
//!   are used unpinned and the refusal is reported once (stderr and
//!   [`MemoryStatus::mlock`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::buffer::{AlignedBuf, IO_ALIGN};
use super::error::{Result, StorageError};

/// Sizes are rounded to this granule so that freed buffers fit later
/// requests of about the same size.
const GRANULE: usize = 1 << 20;
/// How often a waiting request re-checks its cancel flag.
const WAIT_SLICE: Duration = Duration::from_millis(10);

/// Whether buffers are pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlockPolicy {
    /// Pin with `mlock`; on refusal run unpinned and say so once.
    Try,
    /// Never pin.
    Off,
    /// Behave as if every `mlock` were refused with EPERM (tests of the
    /// fallback on machines where root may pin).
    SimulateRefusal,
}

/// What happened to pinning so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlockState {
    /// No buffer pinned yet.
    NotTried,
    /// `mlock` works.
    Pinned,
    /// Pinning disabled by policy.
    Off,
    /// `mlock` was refused; buffers are unpinned. The message names the error.
    Refused(String),
}

/// A memory request's kind (BRIEF §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    /// Wait for room in the budget (granted alone when nothing else holds memory).
    Required,
    /// Never wait; beyond the budget the buffer is unpinned and uncounted.
    Flexible,
}

/// Configuration of a [`MemoryManager`].
#[derive(Debug, Clone, Copy)]
pub struct MemoryConfig {
    /// Bytes of read buffers (granted plus pooled) the manager may hold.
    pub budget_bytes: u64,
    /// Pinning.
    pub mlock: MlockPolicy,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            budget_bytes: 1 << 30,
            mlock: MlockPolicy::Try,
        }
    }
}

/// Memory in use, for status views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStatus {
    /// The budget.
    pub budget_bytes: u64,
    /// Bytes granted to live buffers within the budget.
    pub in_use_bytes: u64,
    /// Bytes of flexible grants beyond the budget (unpinned).
    pub over_budget_bytes: u64,
    /// Bytes of freed buffers kept for reuse.
    pub pooled_bytes: u64,
    /// Bytes currently pinned (live and pooled).
    pub pinned_bytes: u64,
    /// Highest `in_use_bytes + over_budget_bytes + pooled_bytes` seen.
    pub peak_bytes: u64,
    /// Requests waiting for room now.
    pub waiting: u64,
    /// Required requests that had to wait, since start.
    pub waits: u64,
    /// State of pinning.
    pub mlock: MlockState,
}

#[derive(Debug)]
struct State {
    in_use: u64,
    over_budget: u64,
    pool: Vec<AlignedBuf>,
    pooled: u64,
    pinned: u64,
    peak: u64,
    waiting: u64,
    waits: u64,
    mlock: MlockState,
}

/// Grants read buffers within a budget; see the module documentation.
#[derive(Debug)]
pub struct MemoryManager {
    config: MemoryConfig,
    state: Mutex<State>,
    room: Condvar,
    refusal_reported: AtomicBool,
}

/// A granted buffer of at least the requested length; returns to the pool
/// on drop.
#[derive(Debug)]
pub struct Buffer {
    buf: Option<AlignedBuf>,
    len: usize,
    counted: bool,
    manager: Arc<MemoryManager>,
}

impl Buffer {
    /// The requested bytes (a multiple of 4096 when the request was).
    pub fn as_slice(&self) -> &[u8] {
        match &self.buf {
            Some(buf) => &buf.as_slice()[..self.len],
            None => &[],
        }
    }

    /// The requested bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.buf {
            Some(buf) => &mut buf.as_mut_slice()[..self.len],
            None => &mut [],
        }
    }

    /// Length of the granted region.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the pages are pinned.
    pub fn is_pinned(&self) -> bool {
        self.buf.as_ref().is_some_and(AlignedBuf::is_locked)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.manager.release(buf, self.counted);
        }
    }
}

fn granule(bytes: u64) -> u64 {
    let bytes = bytes.max(IO_ALIGN as u64);
    if bytes < GRANULE as u64 {
        bytes.div_ceil(IO_ALIGN as u64) * IO_ALIGN as u64
    } else {
        bytes.div_ceil(GRANULE as u64) * GRANULE as u64
    }
}

impl MemoryManager {
    /// A manager with `config`.
    pub fn new(config: MemoryConfig) -> Arc<MemoryManager> {
        let mlock = match config.mlock {
            MlockPolicy::Off => MlockState::Off,
            _ => MlockState::NotTried,
        };
        Arc::new(MemoryManager {
            config,
            state: Mutex::new(State {
                in_use: 0,
                over_budget: 0,
                pool: Vec::new(),
                pooled: 0,
                pinned: 0,
                peak: 0,
                waiting: 0,
                waits: 0,
                mlock,
            }),
            room: Condvar::new(),
            refusal_reported: AtomicBool::new(false),
        })
    }

    /// The budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.config.budget_bytes
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A buffer of at least `bytes` bytes. A required request waits for room
    /// (checking `cancelled` every 10 ms: cancellation returns
    /// [`StorageError::Cancelled`]).
    pub fn acquire(
        self: &Arc<Self>,
        bytes: u64,
        mode: PinMode,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Buffer> {
        let size = granule(bytes);
        let len = usize::try_from(bytes)
            .map_err(|_| StorageError::Limit(format!("a buffer of {bytes} bytes")))?;
        let budget = self.config.budget_bytes;
        let mut state = self.lock_state();
        let mut waited = false;
        let counted = loop {
            let fits = state.in_use + size <= budget;
            // Nothing else holds budget: grant, so a scan can never starve.
            let alone = state.in_use == 0;
            if fits || (mode == PinMode::Required && alone) {
                state.in_use += size;
                break true;
            }
            if mode == PinMode::Flexible {
                state.over_budget += size;
                break false;
            }
            if cancelled() {
                return Err(StorageError::Cancelled);
            }
            if !waited {
                waited = true;
                state.waits += 1;
            }
            state.waiting += 1;
            state = match self.room.wait_timeout(state, WAIT_SLICE) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            state.waiting -= 1;
        };
        // Reuse the smallest pooled buffer that fits and is not wastefully large.
        let reuse = state
            .pool
            .iter()
            .enumerate()
            .filter(|(_, buf)| buf.capacity() as u64 >= size && buf.capacity() as u64 <= 2 * size)
            .min_by_key(|(_, buf)| buf.capacity())
            .map(|(index, _)| index);
        let reused = reuse.map(|index| state.pool.swap_remove(index));
        if let Some(buf) = &reused {
            state.pooled -= buf.capacity() as u64;
        }
        // Make room: pooled buffers count against the budget.
        let mut evicted = Vec::new();
        while state.in_use + state.pooled > budget && !state.pool.is_empty() {
            if let Some(buf) = state.pool.pop() {
                state.pooled -= buf.capacity() as u64;
                if buf.is_locked() {
                    state.pinned -= buf.capacity() as u64;
                }
                evicted.push(buf);
            }
        }
        let total = state.in_use + state.over_budget + state.pooled;
        state.peak = state.peak.max(total);
        let try_pin = counted && self.config.mlock != MlockPolicy::Off;
        drop(state);
        drop(evicted);
        let mut buf = match reused {
            Some(buf) => buf,
            None => match AlignedBuf::new(size as usize) {
                Ok(buf) => buf,
                Err(err) => {
                    self.undo(size, counted);
                    return Err(StorageError::Limit(format!(
                        "could not map a read buffer of {size} bytes: {err}"
                    )));
                }
            },
        };
        if try_pin && !buf.is_locked() {
            self.pin(&mut buf);
        }
        Ok(Buffer {
            buf: Some(buf),
            len,
            counted,
            manager: Arc::clone(self),
        })
    }

    fn pin(&self, buf: &mut AlignedBuf) {
        if matches!(self.lock_state().mlock, MlockState::Refused(_)) {
            return;
        }
        let result = if self.config.mlock == MlockPolicy::SimulateRefusal {
            Err(std::io::Error::from_raw_os_error(libc::EPERM))
        } else {
            buf.lock()
        };
        let mut state = self.lock_state();
        match result {
            Ok(()) => {
                state.pinned += buf.capacity() as u64;
                state.mlock = MlockState::Pinned;
            }
            Err(err) => {
                let message = format!(
                    "mlock refused ({err}); scanning with unpinned buffers \
                     (raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK to pin)"
                );
                if !self.refusal_reported.swap(true, Ordering::Relaxed) {
                    eprintln!("skyscan: {message}");
                }
                state.mlock = MlockState::Refused(message);
            }
        }
    }

    fn undo(&self, size: u64, counted: bool) {
        let mut state = self.lock_state();
        if counted {
            state.in_use -= size;
        } else {
            state.over_budget -= size;
        }
        drop(state);
        self.room.notify_all();
    }

    fn release(&self, buf: AlignedBuf, counted: bool) {
        let size = buf.capacity() as u64;
        let mut state = self.lock_state();
        if counted {
            state.in_use = state.in_use.saturating_sub(size);
        } else {
            state.over_budget = state.over_budget.saturating_sub(size);
        }
        let keep = counted && state.in_use + state.pooled + size <= self.config.budget_bytes;
        let dropped = if keep {
            state.pooled += size;
            state.pool.push(buf);
            None
        } else {
            if buf.is_locked() {
                state.pinned = state.pinned.saturating_sub(size);
            }
            Some(buf)
        };
        drop(state);
        drop(dropped);
        self.room.notify_all();
    }

    /// Drops every pooled buffer (returns their pages to the kernel).
    pub fn trim(&self) {
        let mut state = self.lock_state();
        let pool = std::mem::take(&mut state.pool);
        for buf in &pool {
            if buf.is_locked() {
                state.pinned = state.pinned.saturating_sub(buf.capacity() as u64);
            }
        }
        state.pooled = 0;
        drop(state);
        drop(pool);
    }

    /// Memory in use now.
    pub fn status(&self) -> MemoryStatus {
        let state = self.lock_state();
        MemoryStatus {
            budget_bytes: self.config.budget_bytes,
            in_use_bytes: state.in_use,
            over_budget_bytes: state.over_budget,
            pooled_bytes: state.pooled,
            pinned_bytes: state.pinned,
            peak_bytes: state.peak,
            waiting: state.waiting,
            waits: state.waits,
            mlock: state.mlock.clone(),
        }
    }
}

/// Keeps memory the process frees for reuse instead of returning it to the
/// kernel (glibc's `malloc` otherwise serves every block above ~128 KiB–32
/// MiB with a fresh `mmap` and unmaps it on free). Decoded columns, join
/// pairs and result batches are such blocks, allocated and freed per chunk:
/// with fresh pages at ~2 CPU-s per GiB on this VM (MEASURED.md), page
/// faults were 25–30% of a near-neighbour query's CPU.
///
/// Process-wide, so binaries call it once at start (the server, the CLI,
/// the benchmarks); an embedding service decides for itself. Returns
/// whether the allocator took the settings (false on non-glibc targets).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Blocks up to 32 MiB (glibc's maximum threshold on 64-bit) come
        // from the heap; the heap top is trimmed only beyond 1 GiB free. The
        // resident high-water mark stays that of the peak working set,
        // which the engine's limits bound.
        // SAFETY: mallopt only changes allocator tunables; it is called
        // with documented parameters and has no memory-safety preconditions.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> bool {
        false
    }

    #[test]
    fn reuses_and_counts() {
        let manager = MemoryManager::new(MemoryConfig {
            budget_bytes: 8 << 20,
            mlock: MlockPolicy::Off,
        });
        let a = manager.acquire(3 << 20, PinMode::Required, &never).unwrap();
        assert_eq!(a.len(), 3 << 20);
        assert_eq!(manager.status().in_use_bytes, 3 << 20);
        let ptr = a.as_slice().as_ptr();
        drop(a);
        let status = manager.status();
        assert_eq!((status.in_use_bytes, status.pooled_bytes), (0, 3 << 20));
        let b = manager.acquire(3 << 20, PinMode::Required, &never).unwrap();
        assert_eq!(b.as_slice().as_ptr(), ptr, "pooled buffer reused");
        assert_eq!(manager.status().pooled_bytes, 0);
    }

    #[test]
    fn flexible_beyond_budget_is_uncounted() {
        let manager = MemoryManager::new(MemoryConfig {
            budget_bytes: 4 << 20,
            mlock: MlockPolicy::Off,
        });
        let _a = manager.acquire(3 << 20, PinMode::Required, &never).unwrap();
        let b = manager.acquire(3 << 20, PinMode::Flexible, &never).unwrap();
        let status = manager.status();
        assert_eq!(status.in_use_bytes, 3 << 20);
        assert_eq!(status.over_budget_bytes, 3 << 20);
        drop(b);
        assert_eq!(manager.status().over_budget_bytes, 0);
        assert_eq!(
            manager.status().pooled_bytes,
            0,
            "uncounted buffers are not pooled"
        );
    }

    #[test]
    fn required_waits_then_cancels() {
        let manager = MemoryManager::new(MemoryConfig {
            budget_bytes: 4 << 20,
            mlock: MlockPolicy::Off,
        });
        let _a = manager.acquire(3 << 20, PinMode::Required, &never).unwrap();
        let start = std::time::Instant::now();
        let cancel = || start.elapsed() > Duration::from_millis(50);
        let err = manager
            .acquire(3 << 20, PinMode::Required, &cancel)
            .unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(manager.status().waits, 1);
    }

    #[test]
    fn alone_never_starves() {
        let manager = MemoryManager::new(MemoryConfig {
            budget_bytes: 1 << 20,
            mlock: MlockPolicy::Off,
        });
        let big = manager.acquire(5 << 20, PinMode::Required, &never).unwrap();
        assert_eq!(big.len(), 5 << 20);
    }

    #[test]
    fn refusal_reported_once_and_unpinned() {
        let manager = MemoryManager::new(MemoryConfig {
            budget_bytes: 8 << 20,
            mlock: MlockPolicy::SimulateRefusal,
        });
        let a = manager.acquire(1 << 20, PinMode::Required, &never).unwrap();
        let b = manager.acquire(1 << 20, PinMode::Required, &never).unwrap();
        assert!(!a.is_pinned() && !b.is_pinned());
        let status = manager.status();
        assert!(matches!(status.mlock, MlockState::Refused(ref m) if m.contains("mlock refused")));
        assert_eq!(status.pinned_bytes, 0);
    }
}
