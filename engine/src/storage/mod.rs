//! The storage layer: reading chunk files for scans.
//!
//! * The interface to queries: [`TableHandle`], [`ReadPlan`], [`ChunkMeta`],
//!   [`RowGroupBatch`], [`ChunkTask`], [`ScanQuery`] (module `task`).
//! * I/O backends behind [`IoBackend`]: buffered `pread`
//!   ([`PreadBackend`]), io_uring with `O_DIRECT` ([`UringBackend`]), and a
//!   fault injector for tests ([`FaultBackend`]).
//! * The memory manager ([`MemoryManager`]): read buffers within a budget,
//!   pinned with `mlock`, reused.
//! * A bounded footer cache ([`FooterCache`]).
//! * [`Storage`]: all of the above for one process; the plain path and the
//!   convoys of [`crate::scan`] read through it.
//!
//! `docs/scan-engine.md` describes the design and the measured figures.

mod buffer;
mod error;
mod footer_cache;
mod io;
mod mapped;
mod memory;
mod read;
mod table;
mod task;
mod uring;

use std::sync::Arc;

pub use buffer::{AlignedBuf, IO_ALIGN};
pub use error::{Result, StorageError};
pub use footer_cache::{FileIdentity, FooterCache, FooterCacheStatus, read_footer};
pub use io::{
    FaultBackend, FaultKind, FaultRule, IoBackend, IoFile, PreadBackend, ReadRequest, ReadStats,
    align_range,
};
pub use mapped::{MappedFile, MappingCache};
pub use memory::{
    Buffer, MemoryConfig, MemoryManager, MemoryStatus, MlockPolicy, MlockState, PinMode,
    keep_freed_memory,
};
pub use read::{ColumnWant, FileData, LoadedFile, RangeOptions, ReadRanges};
pub use table::{ChunkLocation, TableHandle};
pub use task::{ChunkMeta, ChunkTask, ReadPlan, RowGroupBatch, ScanQuery};
pub(crate) use uring::fully_cached;
pub use uring::{UringBackend, UringOptions};

/// Which backend the convoys read with.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    /// io_uring with `O_DIRECT` if the kernel allows it, else `pread`.
    Auto,
    /// Buffered `pread`.
    Pread,
    /// A given backend (tests: a [`FaultBackend`]).
    Custom(Arc<dyn IoBackend>),
}

/// Configuration of a [`Storage`].
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Read buffers: budget and pinning.
    pub memory: MemoryConfig,
    /// The convoys' backend.
    pub backend: BackendChoice,
    /// The plain (interactive) path's backend; `None`: buffered `pread`.
    pub plain_backend: Option<Arc<dyn IoBackend>>,
    /// Most footers cached.
    pub footer_cache_entries: usize,
    /// Most footer bytes cached.
    pub footer_cache_bytes: u64,
    /// How reads are coalesced and split.
    pub ranges: RangeOptions,
    /// The plain path decodes from memory maps of the chunk files (no copy)
    /// instead of reading with its backend (ignored when `plain_backend` is
    /// given: an explicit backend, such as a fault injector, is used).
    pub plain_mapped: bool,
    /// Most files kept mapped.
    pub max_mapped_files: usize,
    /// Convoys decode a chunk whose planned pages are all in the page cache
    /// from the file's map instead of reading it into a pinned buffer
    /// (ignored with a custom backend, which is then always used).
    pub convoy_mapped: bool,
    /// Tables up to this many bytes on disk are read by the convoys through
    /// the page cache (from the file's map, read ahead), so that they stay
    /// in memory for the next scan; larger tables stream with O_DIRECT into
    /// pinned buffers and leave the cache alone (BRIEF §4). Default: a
    /// quarter of physical memory; 0 streams every table. Needs
    /// `convoy_mapped`.
    pub cache_tables_up_to: u64,
    /// Verify a block's checksum once per file map instead of on every
    /// decode (see [`MappedFile`]): faster hot scans, but a page re-read
    /// from the disk after eviction is not checked again. Off by default.
    pub checksum_once_per_map: bool,
}

/// A quarter of physical memory (0 when `/proc/meminfo` is unreadable).
pub fn default_cache_tables_up_to() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024 / 4)
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            memory: MemoryConfig::default(),
            backend: BackendChoice::Auto,
            plain_backend: None,
            footer_cache_entries: 16_384,
            footer_cache_bytes: 512 << 20,
            ranges: RangeOptions::default(),
            plain_mapped: true,
            max_mapped_files: 4_096,
            convoy_mapped: true,
            cache_tables_up_to: default_cache_tables_up_to(),
            checksum_once_per_map: false,
        }
    }
}

/// Everything the scan paths share: backends, memory, footer cache.
#[derive(Debug)]
pub struct Storage {
    /// Decoded footers.
    pub footers: FooterCache,
    /// Read buffers.
    pub memory: Arc<MemoryManager>,
    /// How reads are coalesced.
    pub ranges: RangeOptions,
    /// Maps of chunk files for the plain path (`None`: it reads instead).
    pub mappings: Option<MappingCache>,
    /// Maps of chunk files for the convoys' cached chunks (`None`: they read).
    pub convoy_mappings: Option<MappingCache>,
    /// See [`StorageConfig::cache_tables_up_to`].
    pub cache_tables_up_to: u64,
    backend: Arc<dyn IoBackend>,
    plain_backend: Arc<dyn IoBackend>,
    backend_report: String,
}

impl Storage {
    /// Builds the storage context; with [`BackendChoice::Auto`] probes for
    /// io_uring and reports the outcome ([`Storage::backend_report`]).
    pub fn new(config: StorageConfig) -> Arc<Storage> {
        let convoy_mapped =
            config.convoy_mapped && !matches!(config.backend, BackendChoice::Custom(_));
        let (backend, backend_report): (Arc<dyn IoBackend>, String) = match config.backend {
            BackendChoice::Auto => match UringBackend::new(UringOptions::default()) {
                Ok(uring) => {
                    let name = uring.name();
                    (Arc::new(uring), format!("{name} (io_uring available)"))
                }
                Err(err) => (
                    Arc::new(PreadBackend),
                    format!("pread (io_uring unavailable: {err})"),
                ),
            },
            BackendChoice::Pread => (Arc::new(PreadBackend), "pread (configured)".to_string()),
            BackendChoice::Custom(backend) => {
                let report = format!("{} (configured)", backend.name());
                (backend, report)
            }
        };
        // An explicit plain backend (a fault injector, io_uring) is used as
        // given; otherwise the plain path maps files.
        let mapped = config.plain_mapped && config.plain_backend.is_none();
        let plain_backend = config
            .plain_backend
            .unwrap_or_else(|| Arc::new(PreadBackend));
        Arc::new(Storage {
            footers: FooterCache::new(config.footer_cache_entries, config.footer_cache_bytes),
            memory: MemoryManager::new(config.memory),
            ranges: config.ranges,
            mappings: mapped
                .then(|| MappingCache::new(config.max_mapped_files, config.checksum_once_per_map)),
            convoy_mappings: convoy_mapped
                .then(|| MappingCache::new(config.max_mapped_files, config.checksum_once_per_map)),
            cache_tables_up_to: config.cache_tables_up_to,
            backend,
            plain_backend,
            backend_report,
        })
    }

    /// The convoys' backend.
    pub fn backend(&self) -> &Arc<dyn IoBackend> {
        &self.backend
    }

    /// The plain path's backend.
    pub fn plain_backend(&self) -> &Arc<dyn IoBackend> {
        &self.plain_backend
    }

    /// Which backend was chosen and why (for logs and `skyscan info`).
    pub fn backend_report(&self) -> &str {
        &self.backend_report
    }
}

/// One line on how scans will read on this machine, for `skyscan info` and
/// logs: the backend `BackendChoice::Auto` picks (io_uring probed now) and
/// the `mlock` limit.
pub fn describe_environment() -> String {
    let backend = match UringBackend::new(UringOptions::default()) {
        Ok(uring) => uring.name(),
        Err(err) => format!("pread (io_uring unavailable: {err})"),
    };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    let memlock = if rc != 0 {
        "unknown".to_string()
    } else if limit.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{} MiB", limit.rlim_cur >> 20)
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    format!(
        "scan I/O: {backend}; mlock limit (RLIMIT_MEMLOCK): {memlock}{}",
        if root {
            " (root: CAP_IPC_LOCK lifts it)"
        } else {
            ""
        }
    )
}
