//! The scan engine: admission by class, convoys per disk, interactive
//! queries on the plain path, status and control.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::convoy::{Convoy, ConvoyConfig, ConvoyStatus, Lane, OnDone};
use super::plain::{PlainOptions, check_chunks, run_plain};
use super::query::{QueryHandle, QueryOptions, QueryPhase, QueryState, QueryStatus, ScanClass};
use crate::storage::{MemoryStatus, Result, ScanQuery, Storage, StorageConfig, StorageError};

/// Most finished queries kept in the status view.
const MAX_FINISHED_SHOWN: usize = 256;

/// Configuration of a [`ScanEngine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Storage: backends, memory budget, footer cache.
    pub storage: StorageConfig,
    /// Threads per convoy for decoding and tasks, and threads of an
    /// interactive query.
    pub workers: usize,
    /// Chunks a convoy processes at once (each with `workers /
    /// chunk_parallelism` threads). Default: `workers`, one thread per
    /// chunk, which keeps every core busy even when one query's task is the
    /// bottleneck; 1 processes one chunk at a time on all threads (less
    /// memory, shorter latency per chunk).
    pub chunk_parallelism: usize,
    /// A query touching fewer chunks than this is interactive (BRIEF §4: 10).
    pub interactive_max_chunks: usize,
    /// Concurrent queries per class (index [`ScanClass::index`]); more wait
    /// in a FIFO admission queue.
    pub class_limits: [usize; 5],
    /// Queries of a class whose tasks take longer than this per chunk (on
    /// average, after two chunks) are booted to the snail convoy.
    pub boot_after: [Option<Duration>; 5],
    /// Decoded bytes per wave of row groups (bounds decoded memory per convoy).
    pub wave_bytes: u64,
    /// Most row groups per wave.
    pub max_wave_row_groups: usize,
    /// Nice value of the convoy threads (interactive queries run at 0).
    pub convoy_nice: i32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            storage: StorageConfig::default(),
            workers: 2,
            chunk_parallelism: 2,
            interactive_max_chunks: 10,
            class_limits: [128, 64, 64, 32, 32],
            boot_after: [
                None,
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(60)),
                None,
            ],
            wave_bytes: 16 << 20,
            max_wave_row_groups: 64,
            convoy_nice: 10,
        }
    }
}

/// Everything the status view shows.
#[derive(Debug, Clone)]
pub struct EngineStatus {
    /// Which I/O backend the convoys use and why.
    pub backend: String,
    /// Read buffers.
    pub memory: MemoryStatus,
    /// Every convoy.
    pub convoys: Vec<ConvoyStatus>,
    /// Running, queued and recently finished queries.
    pub queries: Vec<QueryStatus>,
    /// Queries running per class.
    pub running: [usize; 5],
    /// Queries waiting for admission per class.
    pub queued: [usize; 5],
}

#[derive(Default)]
struct Admission {
    running: [usize; 5],
    queued: [VecDeque<Arc<QueryState>>; 5],
}

struct Inner {
    storage: Arc<Storage>,
    config: EngineConfig,
    convoys: Mutex<HashMap<(PathBuf, Lane), Arc<Convoy>>>,
    disks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    admission: Mutex<Admission>,
    queries: Mutex<BTreeMap<u64, Arc<QueryState>>>,
    next_id: AtomicU64,
    shutting_down: std::sync::atomic::AtomicBool,
    self_ref: Weak<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The scan engine: submit queries, watch them, cancel them. Dropping it
/// stops every convoy (queries still running fail with `ShuttingDown`).
pub struct ScanEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ScanEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanEngine")
            .field("backend", &self.inner.storage.backend_report())
            .finish_non_exhaustive()
    }
}

impl ScanEngine {
    /// An engine with `config` (convoys start when the first scan needs them).
    pub fn new(config: EngineConfig) -> ScanEngine {
        let storage = Storage::new(config.storage.clone());
        let inner = Arc::new_cyclic(|weak| Inner {
            storage,
            config,
            convoys: Mutex::new(HashMap::new()),
            disks: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            admission: Mutex::new(Admission::default()),
            queries: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            self_ref: weak.clone(),
        });
        ScanEngine { inner }
    }

    /// The storage context (footer cache, memory manager, backends).
    pub fn storage(&self) -> &Arc<Storage> {
        &self.inner.storage
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The class `query` would get.
    pub fn classify(&self, query: &dyn ScanQuery) -> ScanClass {
        self.inner.classify(query)
    }

    /// Submits a query. Interactive queries (fewer than
    /// `interactive_max_chunks` chunks) run at once on the plain path; scans
    /// wait for admission in their class and then attach to the convoys of
    /// the disks holding their chunks.
    pub fn submit(&self, query: Arc<dyn ScanQuery>, options: QueryOptions) -> Result<QueryHandle> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(StorageError::ShuttingDown);
        }
        check_chunks(query.chunks())?;
        let class = options
            .class
            .unwrap_or_else(|| self.inner.classify(query.as_ref()));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(QueryState::new(id, query, class, &options));
        {
            let mut queries = lock(&self.inner.queries);
            queries.insert(id, Arc::clone(&state));
            let finished: Vec<u64> = queries
                .iter()
                .filter(|(_, q)| q.is_finished())
                .map(|(&id, _)| id)
                .collect();
            if finished.len() > MAX_FINISHED_SHOWN {
                for id in &finished[..finished.len() - MAX_FINISHED_SHOWN] {
                    queries.remove(id);
                }
            }
        }
        let admit = {
            let mut admission = lock(&self.inner.admission);
            let index = class.index();
            if admission.running[index] < self.inner.config.class_limits[index].max(1) {
                admission.running[index] += 1;
                true
            } else {
                admission.queued[index].push_back(Arc::clone(&state));
                false
            }
        };
        if admit {
            self.inner.start(&state);
        }
        Ok(QueryHandle { state })
    }

    /// Submits and waits.
    pub fn run(
        &self,
        query: Arc<dyn ScanQuery>,
        options: QueryOptions,
    ) -> Result<super::ScanReport> {
        self.submit(query, options)?.wait()
    }

    /// The status view: convoys, queries, memory.
    pub fn status(&self) -> EngineStatus {
        let convoys = {
            let convoys = lock(&self.inner.convoys);
            let mut list: Vec<ConvoyStatus> = convoys.values().map(|c| c.status()).collect();
            list.sort_by(|a, b| {
                (a.spindle.clone(), a.lane == Lane::Snail)
                    .cmp(&(b.spindle.clone(), b.lane == Lane::Snail))
            });
            list
        };
        let queries = lock(&self.inner.queries)
            .values()
            .map(|q| q.status())
            .collect();
        let admission = lock(&self.inner.admission);
        EngineStatus {
            backend: self.inner.storage.backend_report().to_string(),
            memory: self.inner.storage.memory.status(),
            convoys,
            queries,
            running: admission.running,
            queued: std::array::from_fn(|i| admission.queued[i].len()),
        }
    }
}

impl Drop for ScanEngine {
    fn drop(&mut self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let queued: Vec<Arc<QueryState>> = {
            let mut admission = lock(&self.inner.admission);
            admission
                .queued
                .iter_mut()
                .flat_map(|q| q.drain(..))
                .collect()
        };
        for query in queued {
            query.fail(StorageError::ShuttingDown);
            query.finish();
        }
        for convoy in lock(&self.inner.convoys).values() {
            convoy.shutdown();
        }
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Inner {
    fn classify(&self, query: &dyn ScanQuery) -> ScanClass {
        if query.chunks().len() < self.config.interactive_max_chunks {
            return ScanClass::Interactive;
        }
        let rating = query
            .tables()
            .iter()
            .map(|t| t.scan_rating())
            .max()
            .unwrap_or(0);
        ScanClass::of_rating(rating)
    }

    /// A query is done: frees its admission slot, wakes its waiters, and
    /// starts the next queued query of its class.
    fn on_done(&self, query: &Arc<QueryState>) {
        let next = {
            let mut admission = lock(&self.admission);
            let index = query.original_class.index();
            admission.running[index] = admission.running[index].saturating_sub(1);
            match admission.queued[index].pop_front() {
                Some(next) => {
                    admission.running[index] += 1;
                    Some(next)
                }
                None => None,
            }
        };
        query.finish();
        if let Some(next) = next {
            self.start(&next);
        }
    }

    fn start(&self, query: &Arc<QueryState>) {
        query.set_phase(QueryPhase::Running);
        if query.class() == ScanClass::Interactive {
            self.start_interactive(query);
        } else {
            self.start_scan(query);
        }
    }

    fn start_interactive(&self, query: &Arc<QueryState>) {
        let storage = Arc::clone(&self.storage);
        let state = Arc::clone(query);
        let weak = self.self_ref.clone();
        let workers = self.config.workers;
        query
            .chunks_total
            .store(query.query.chunks().len() as u64, Ordering::Release);
        let run = move || {
            let options = PlainOptions {
                threads: workers,
                cancel: state.cancel.clone(),
                deadline: state.deadline,
                max_memory_bytes: state.max_memory_bytes,
            };
            match run_plain(&storage, state.query.as_ref(), &options) {
                Ok(report) => {
                    state
                        .chunks_done
                        .store(report.chunks_done, Ordering::Release);
                    state
                        .chunks_total
                        .store(report.chunks_done, Ordering::Release);
                    state.add_report(&report);
                }
                Err(err) => state.fail(err),
            }
            match weak.upgrade() {
                Some(inner) => inner.on_done(&state),
                None => state.finish(),
            }
        };
        if let Err(err) = std::thread::Builder::new()
            .name("interactive".to_string())
            .spawn(run)
        {
            query.fail(StorageError::io("<thread>", "spawn", err));
            self.on_done(query);
        }
    }

    fn start_scan(&self, query: &Arc<QueryState>) {
        // Group the chunks by the disk of the first table that has each.
        let mut by_disk: BTreeMap<PathBuf, BTreeSet<i32>> = BTreeMap::new();
        let mut total = 0u64;
        for &chunk_id in query.query.chunks() {
            let mut placed = false;
            for table in query.query.tables() {
                match table.chunk_location(chunk_id) {
                    Ok(Some(location)) => {
                        let spindle = spindle_dir(table, location.spindle);
                        by_disk.entry(spindle).or_default().insert(chunk_id);
                        placed = true;
                        break;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        query.fail(err);
                        break;
                    }
                }
            }
            total += u64::from(placed);
        }
        query.chunks_total.store(total, Ordering::Release);
        if query.is_stopped() || by_disk.is_empty() {
            self.on_done(query);
            return;
        }
        let lane = if query.class() == ScanClass::Snail {
            Lane::Snail
        } else {
            Lane::Scan
        };
        query.outstanding.store(by_disk.len(), Ordering::Release);
        for (disk, chunks) in by_disk {
            match self.convoy(&disk, lane) {
                Ok(convoy) => convoy.attach(Arc::clone(query), chunks),
                Err(err) => {
                    query.fail(StorageError::io(&disk, "start convoy", err));
                    if query.detach_one() {
                        self.on_done(query);
                    }
                }
            }
        }
    }

    /// The convoy of `disk` and `lane`, started on first use.
    fn convoy(&self, disk: &std::path::Path, lane: Lane) -> std::io::Result<Arc<Convoy>> {
        let mut convoys = lock(&self.convoys);
        if let Some(convoy) = convoys.get(&(disk.to_path_buf(), lane)) {
            return Ok(Arc::clone(convoy));
        }
        let disk_lock = Arc::clone(
            lock(&self.disks)
                .entry(disk.to_path_buf())
                .or_insert_with(|| Arc::new(Mutex::new(()))),
        );
        let snail = if lane == Lane::Scan {
            match convoys.get(&(disk.to_path_buf(), Lane::Snail)) {
                Some(snail) => Some(Arc::clone(snail)),
                None => {
                    let snail = self.make_convoy(disk, Lane::Snail, &disk_lock, None)?;
                    convoys.insert((disk.to_path_buf(), Lane::Snail), Arc::clone(&snail));
                    Some(snail)
                }
            }
        } else {
            None
        };
        let convoy = self.make_convoy(disk, lane, &disk_lock, snail)?;
        convoys.insert((disk.to_path_buf(), lane), Arc::clone(&convoy));
        Ok(convoy)
    }

    fn make_convoy(
        &self,
        disk: &std::path::Path,
        lane: Lane,
        disk_lock: &Arc<Mutex<()>>,
        snail: Option<Arc<Convoy>>,
    ) -> std::io::Result<Arc<Convoy>> {
        let weak = self.self_ref.clone();
        let on_done: OnDone = Arc::new(move |query: &Arc<QueryState>| match weak.upgrade() {
            Some(inner) => inner.on_done(query),
            None => query.finish(),
        });
        let convoy = Convoy::new(
            disk.to_path_buf(),
            lane,
            Arc::clone(disk_lock),
            Arc::clone(&self.storage),
            ConvoyConfig {
                processors: self.config.chunk_parallelism.clamp(1, 64),
                workers: (self.config.workers / self.config.chunk_parallelism.max(1)).max(1),
                wave_bytes: self.config.wave_bytes,
                max_wave_row_groups: self.config.max_wave_row_groups.max(1),
                boot_after: self.config.boot_after,
                nice: self.config.convoy_nice,
            },
            snail,
            on_done,
        );
        let threads = convoy.start()?;
        lock(&self.threads).extend(threads);
        Ok(convoy)
    }
}

/// The data directory of spindle `spindle` of the table's database.
fn spindle_dir(table: &crate::storage::TableHandle, spindle: u32) -> PathBuf {
    // Chunk files live at <spindle>/<data_dir>/<file>; the spindle path is
    // what identifies the disk. TableHandle knows the database's spindles.
    table.spindle_path(spindle)
}
