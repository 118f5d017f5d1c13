//! A convoy: one elevator over one disk's chunks (BRIEF §4).
//!
//! A **reader** thread picks the next chunk (the first chunk at or after the
//! current position that an attached query still needs, wrapping around),
//! creates the tasks of every query needing it, asks each for its plan, and
//! reads the union of the planned blocks once into a pinned buffer.
//! **Processor** threads (`processors`, one chunk each at a time) decode
//! each needed row group once and run every attached task on it. With more
//! than one thread per chunk, decoding the next wave of row groups and
//! running the tasks on the current one happen at the same time. The reader
//! prepares the next chunks while the processors work, so the disk is busy
//! while the CPU works.
//!
//! A query attaches with the set of its chunks on this disk and detaches
//! when the set is empty: each chunk is delivered once, and a query that
//! arrives while chunk C is being read gets C only on the next revolution.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use skyscan_format::{BlockDecoder, ColumnData, ColumnType, Footer};

use super::plain::ScanReport;
use super::query::{QueryState, ScanClass};
use crate::storage::{
    ChunkMeta, ChunkTask, ColumnWant, FileData, LoadedFile, PinMode, ReadPlan, ReadRanges,
    RowGroupBatch, Storage, StorageError,
};

/// Which elevator of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Fast, medium and slow scans.
    Scan,
    /// Snail scans and booted queries.
    Snail,
}

/// Tuning of the convoys.
#[derive(Debug, Clone)]
pub(crate) struct ConvoyConfig {
    /// Chunks processed at once.
    pub(crate) processors: usize,
    /// Threads per chunk being processed.
    pub(crate) workers: usize,
    pub(crate) wave_bytes: u64,
    pub(crate) max_wave_row_groups: usize,
    pub(crate) boot_after: [Option<Duration>; 5],
    pub(crate) nice: i32,
}

/// One convoy in the status view.
#[derive(Debug, Clone)]
pub struct ConvoyStatus {
    /// The data directory (disk).
    pub spindle: PathBuf,
    /// Which elevator.
    pub lane: Lane,
    /// The next chunk id the elevator considers.
    pub position: i32,
    /// The chunk being read, if any.
    pub reading: Option<i32>,
    /// The chunks being processed.
    pub processing: Vec<i32>,
    /// Ids of the attached queries.
    pub attached: Vec<u64>,
    /// Chunks read since start.
    pub chunks_read: u64,
    /// Bytes read since start.
    pub bytes_read: u64,
    /// Bytes read per second of reading.
    pub read_bytes_per_s: f64,
    /// Completed revolutions (wrap-arounds).
    pub revolutions: u64,
}

struct Attached {
    query: Arc<QueryState>,
    pending: BTreeSet<i32>,
    in_flight: usize,
}

struct State {
    position: i32,
    attached: Vec<Attached>,
    shutdown: bool,
    reading: Option<i32>,
    processing: Vec<i32>,
    chunks_read: u64,
    bytes_read: u64,
    read_time: Duration,
    revolutions: u64,
}

/// Decoded bytes per wave when one thread processes a chunk: a wave stays
/// in the core's L2 (1 MiB on this Zen 5) while every task reads it.
const SINGLE_THREAD_WAVE_BYTES: u64 = 768 << 10;

/// Called when a query leaves its last convoy (admission bookkeeping).
pub(crate) type OnDone = Arc<dyn Fn(&Arc<QueryState>) + Send + Sync>;

/// One elevator over one disk; see the module documentation.
pub(crate) struct Convoy {
    pub(crate) spindle: PathBuf,
    pub(crate) lane: Lane,
    state: Mutex<State>,
    wake: Condvar,
    /// Shared by the lanes of one disk: one chunk read at a time per disk.
    disk: Arc<Mutex<()>>,
    storage: Arc<Storage>,
    config: ConvoyConfig,
    snail: Option<Arc<Convoy>>,
    on_done: OnDone,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One file of a chunk job.
struct JobFile {
    path: PathBuf,
    footer: Arc<Footer>,
    loaded: Option<LoadedFile>,
}

/// (file index, occurrence): the second listing of the same file by a
/// query (a self-join) is a second visit.
type Visit = (usize, usize);

/// One table of one participant.
struct PartTable {
    table_index: usize,
    /// (file index, occurrence): the second listing of the same file by a
    /// query (a self-join) is a second visit.
    visit: (usize, usize),
    plan: ReadPlan,
}

/// One query's part in a chunk.
struct Part {
    query: Arc<QueryState>,
    task: Option<Box<dyn ChunkTask>>,
    tables: Vec<PartTable>,
    error: Option<StorageError>,
    task_time: Duration,
    row_groups: u64,
}

impl Part {
    fn alive(&self) -> bool {
        self.error.is_none() && self.task.is_some() && !self.query.is_stopped()
    }
}

/// A chunk read and ready to process.
struct ChunkJob {
    chunk_id: i32,
    files: Vec<JobFile>,
    parts: Vec<Part>,
    report: ScanReport,
}

/// One decoded row group of a wave, or a run of them.
#[derive(Default)]
struct Decoded {
    /// First row group of the run.
    index: usize,
    /// Row groups in the run (consecutive in every plan that has them).
    count: usize,
    /// Rows of the run.
    rows: u32,
    columns: Vec<Option<ColumnData>>,
    errors: Vec<Option<StorageError>>,
}

/// Row groups decoded into one batch when every plan allows it: up to this
/// many rows ...
const RUN_MAX_ROWS: u64 = 16_384;
/// ... and about this many decoded bytes (the L2 cache the tasks read the
/// batch from).
const RUN_MAX_BYTES: u64 = 768 << 10;

/// A run of needed row groups decoded together: the row groups, in order,
/// and the columns some member needs from each of them.
type Run = (Vec<usize>, Vec<usize>);

/// Whether row group `next` may join a run that starts at row group
/// `first` and holds `rows` rows of `width` decoded bytes per row: same
/// kind (own or overlap), within [`RUN_MAX_ROWS`] and [`RUN_MAX_BYTES`].
pub(super) fn fits_run(footer: &Footer, first: usize, rows: u64, next: usize, width: u64) -> bool {
    let (first, next) = (footer.row_groups()[first], footer.row_groups()[next]);
    let more = rows + u64::from(next.row_count);
    first.overlap == next.overlap && more <= RUN_MAX_ROWS && more * width <= RUN_MAX_BYTES
}

impl Convoy {
    pub(crate) fn new(
        spindle: PathBuf,
        lane: Lane,
        disk: Arc<Mutex<()>>,
        storage: Arc<Storage>,
        config: ConvoyConfig,
        snail: Option<Arc<Convoy>>,
        on_done: OnDone,
    ) -> Arc<Convoy> {
        Arc::new(Convoy {
            spindle,
            lane,
            state: Mutex::new(State {
                position: i32::MIN,
                attached: Vec::new(),
                shutdown: false,
                reading: None,
                processing: Vec::new(),
                chunks_read: 0,
                bytes_read: 0,
                read_time: Duration::ZERO,
                revolutions: 0,
            }),
            wake: Condvar::new(),
            disk,
            storage,
            config,
            snail,
            on_done,
        })
    }

    /// Starts the reader and processor threads.
    pub(crate) fn start(self: &Arc<Self>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ChunkJob>(1);
        let rx = Arc::new(Mutex::new(rx));
        let name = format!("convoy-{:?}", self.lane).to_lowercase();
        let nice = self.config.nice;
        let reader = Arc::clone(self);
        let mut threads = vec![
            std::thread::Builder::new()
                .name(format!("{name}-read"))
                .spawn(move || {
                    super::lower_this_thread(nice);
                    reader.reader_loop(tx);
                })?,
        ];
        for index in 0..self.config.processors.clamp(1, 64) {
            let processor = Arc::clone(self);
            let rx = Arc::clone(&rx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-proc{index}"))
                    .spawn(move || {
                        super::lower_this_thread(nice);
                        processor.processor_loop(&rx);
                    })?,
            );
        }
        Ok(threads)
    }

    /// Attaches `query` with its `chunks` on this disk, at the current position.
    pub(crate) fn attach(&self, query: Arc<QueryState>, chunks: BTreeSet<i32>) {
        let mut state = lock(&self.state);
        if state.shutdown {
            drop(state);
            query.fail(StorageError::ShuttingDown);
            if query.detach_one() {
                (self.on_done)(&query);
            }
            return;
        }
        state.attached.push(Attached {
            query,
            pending: chunks,
            in_flight: 0,
        });
        drop(state);
        self.wake.notify_all();
    }

    /// Stops the threads; attached queries fail with `ShuttingDown`.
    pub(crate) fn shutdown(&self) {
        lock(&self.state).shutdown = true;
        self.wake.notify_all();
    }

    pub(crate) fn status(&self) -> ConvoyStatus {
        let state = lock(&self.state);
        let secs = state.read_time.as_secs_f64();
        ConvoyStatus {
            spindle: self.spindle.clone(),
            lane: self.lane,
            position: state.position,
            reading: state.reading,
            processing: state.processing.clone(),
            attached: state.attached.iter().map(|a| a.query.id).collect(),
            chunks_read: state.chunks_read,
            bytes_read: state.bytes_read,
            read_bytes_per_s: if secs > 0.0 {
                state.bytes_read as f64 / secs
            } else {
                0.0
            },
            revolutions: state.revolutions,
        }
    }

    /// Lets go of queries that are done, stopped, or booted (moved to the
    /// snail convoy), once none of their chunks is in the pipeline.
    /// Returns the queries that left their last convoy: the caller reports
    /// them with [`Convoy::report_done`] after releasing the state lock (the
    /// admission callback may attach the next query to this very convoy).
    #[must_use]
    fn detach_finished(&self, state: &mut State) -> Vec<Arc<QueryState>> {
        let mut finished = Vec::new();
        let mut index = 0;
        while index < state.attached.len() {
            let attached = &state.attached[index];
            let stopped = attached.query.is_stopped() || state.shutdown;
            let boot = self.lane == Lane::Scan
                && self.snail.is_some()
                && attached
                    .query
                    .booted
                    .load(std::sync::atomic::Ordering::Acquire);
            let done = attached.pending.is_empty() || stopped || boot;
            if !done || attached.in_flight > 0 {
                index += 1;
                continue;
            }
            let attached = state.attached.swap_remove(index);
            if state.shutdown {
                attached.query.fail(StorageError::ShuttingDown);
            }
            if boot && !stopped && !attached.pending.is_empty() {
                if let Some(snail) = &self.snail {
                    snail.attach(attached.query, attached.pending);
                }
                continue;
            }
            if attached.query.detach_one() {
                finished.push(attached.query);
            }
        }
        finished
    }

    fn report_done(&self, finished: Vec<Arc<QueryState>>) {
        for query in finished {
            (self.on_done)(&query);
        }
    }

    /// The next chunk and the queries that take it now.
    fn pick(&self, state: &mut State) -> Option<(i32, Vec<Arc<QueryState>>)> {
        let candidates = || {
            state
                .attached
                .iter()
                .filter(|a| !a.pending.is_empty() && !a.query.is_stopped())
        };
        let position = state.position;
        let ahead = candidates()
            .filter_map(|a| a.pending.range(position..).next().copied())
            .min();
        let chunk = match ahead {
            Some(chunk) => chunk,
            None => {
                let first = candidates()
                    .filter_map(|a| a.pending.first().copied())
                    .min()?;
                state.revolutions += 1;
                first
            }
        };
        let mut queries = Vec::new();
        for attached in &mut state.attached {
            if !attached.query.is_stopped() && attached.pending.remove(&chunk) {
                attached.in_flight += 1;
                queries.push(Arc::clone(&attached.query));
            }
        }
        state.position = chunk.saturating_add(1);
        Some((chunk, queries))
    }

    fn reader_loop(self: Arc<Self>, tx: SyncSender<ChunkJob>) {
        loop {
            let picked = {
                let mut state = lock(&self.state);
                loop {
                    let finished = self.detach_finished(&mut state);
                    if !finished.is_empty() {
                        drop(state);
                        self.report_done(finished);
                        state = lock(&self.state);
                        continue;
                    }
                    if state.shutdown {
                        if state.attached.iter().all(|a| a.in_flight == 0) {
                            let finished = self.detach_finished(&mut state);
                            drop(state);
                            self.report_done(finished);
                            return;
                        }
                    } else if let Some(picked) = self.pick(&mut state) {
                        state.reading = Some(picked.0);
                        break picked;
                    }
                    state = match self.wake.wait_timeout(state, Duration::from_millis(50)) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
            };
            let (chunk_id, queries) = picked;
            let started = Instant::now();
            let job = self.prepare(chunk_id, queries);
            {
                let mut state = lock(&self.state);
                state.reading = None;
                state.chunks_read += 1;
                state.bytes_read += job.report.read.cached_bytes + job.report.read.direct_bytes;
                state.read_time += started.elapsed();
            }
            if let Err(failed) = tx.send(job) {
                // The processor is gone (it never exits first): give the
                // chunk back so the queries are not stuck.
                self.complete(failed.0);
                return;
            }
        }
    }

    fn processor_loop(self: Arc<Self>, rx: &Mutex<Receiver<ChunkJob>>) {
        let mut decoders: Vec<BlockDecoder> = Vec::new();
        let mut slots: [Vec<Decoded>; 2] = [Vec::new(), Vec::new()];
        loop {
            // The lock is held only while waiting for the next job.
            let received = lock(rx).recv();
            let Ok(mut job) = received else {
                return;
            };
            lock(&self.state).processing.push(job.chunk_id);
            self.process(&mut job, &mut decoders, &mut slots);
            self.complete(job);
        }
    }

    /// Hands results back and updates the elevator after a chunk.
    fn complete(&self, job: ChunkJob) {
        let ChunkJob {
            chunk_id,
            files,
            parts,
            report,
        } = job;
        // Each participant's share of the chunk's reads: the bytes of the
        // blocks its own plans name (a block shared by several queries
        // counts for each), split between cache and device as the chunk's
        // reads were.
        let total = report.read.cached_bytes + report.read.direct_bytes;
        let shares: Vec<crate::storage::ReadStats> = parts
            .iter()
            .map(|part| {
                let planned: u64 = part
                    .tables
                    .iter()
                    .filter_map(|t| {
                        files
                            .get(t.visit.0)
                            .map(|f| planned_bytes(&f.footer, &t.plan))
                    })
                    .sum();
                let direct = if total == 0 {
                    0
                } else {
                    (u128::from(planned) * u128::from(report.read.direct_bytes) / u128::from(total))
                        as u64
                };
                crate::storage::ReadStats {
                    cached_bytes: planned - direct,
                    direct_bytes: direct,
                }
            })
            .collect();
        // Release the chunk's buffers before the tasks' merge steps run.
        drop(files);
        let participants: Vec<u64> = parts.iter().map(|p| p.query.id).collect();
        for (mut part, share) in parts.into_iter().zip(shares) {
            let query = Arc::clone(&part.query);
            if let Some(err) = part.error.take() {
                query.fail(err);
            } else if let Some(task) = part.task.take()
                && !query.is_stopped()
            {
                let started = Instant::now();
                let finished = query.query.finish_task(chunk_id, task);
                part.task_time += started.elapsed();
                match finished {
                    Ok(()) => {
                        query
                            .chunks_done
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        query.add_report(&ScanReport {
                            chunks_done: 1,
                            files_read: part.tables.len() as u64,
                            read: share,
                            row_groups: part.row_groups,
                        });
                    }
                    Err(err) => query.fail(err),
                }
            }
            self.account_task_time(&query, part.task_time);
        }
        let mut state = lock(&self.state);
        state.processing.retain(|&c| c != chunk_id);
        for attached in &mut state.attached {
            if participants.contains(&attached.query.id) {
                debug_assert!(
                    attached.in_flight > 0,
                    "a participant had the chunk in flight"
                );
                attached.in_flight = attached.in_flight.saturating_sub(1);
            }
        }
        let finished = self.detach_finished(&mut state);
        drop(state);
        self.report_done(finished);
        self.wake.notify_all();
    }

    fn account_task_time(&self, query: &Arc<QueryState>, time: Duration) {
        use std::sync::atomic::Ordering;
        let ns = query
            .task_ns
            .fetch_add(time.as_nanos() as u64, Ordering::AcqRel)
            + time.as_nanos() as u64;
        let chunks = query.task_chunks.fetch_add(1, Ordering::AcqRel) + 1;
        if self.lane != Lane::Scan || query.booted.load(Ordering::Acquire) {
            return;
        }
        let class = query.class();
        if let Some(limit) = self.config.boot_after[class.index()]
            && chunks >= 2
            && ns / chunks > limit.as_nanos() as u64
        {
            query.booted.store(true, Ordering::Release);
            query.set_class(ScanClass::Snail);
        }
    }

    /// Creates the tasks, gathers their plans, reads the union once.
    fn prepare(&self, chunk_id: i32, queries: Vec<Arc<QueryState>>) -> ChunkJob {
        let mut files: Vec<JobFile> = Vec::new();
        let mut file_errors: Vec<Option<StorageError>> = Vec::new();
        let mut parts = Vec::with_capacity(queries.len());
        for query in queries {
            let mut part = Part {
                query: Arc::clone(&query),
                task: None,
                tables: Vec::new(),
                error: None,
                task_time: Duration::ZERO,
                row_groups: 0,
            };
            if let Err(err) = self.plan_part(chunk_id, &mut part, &mut files, &mut file_errors) {
                part.error = Some(err);
            }
            parts.push(part);
        }
        let mut report = ScanReport::default();
        let file_count = files.len();
        for file_index in 0..file_count {
            if file_errors[file_index].is_some() {
                continue;
            }
            let users: Vec<usize> = (0..parts.len())
                .filter(|&p| {
                    parts[p].error.is_none()
                        && parts[p].tables.iter().any(|t| t.visit.0 == file_index)
                })
                .collect();
            if users.is_empty() {
                continue;
            }
            match self.read_for(&files[file_index], &parts, &users, file_index, chunk_id) {
                Ok(loaded) => {
                    report.files_read += 1;
                    report.read.add(loaded.data.stats);
                    files[file_index].loaded = Some(loaded);
                }
                // One read of the union failed: read each query's own blocks
                // alone, so that only the queries whose blocks are unreadable fail.
                Err(StorageError::Io { .. }) if users.len() > 1 => {
                    for &user in &users {
                        match self.read_for(
                            &files[file_index],
                            &parts,
                            &[user],
                            file_index,
                            chunk_id,
                        ) {
                            Ok(loaded) => {
                                report.files_read += 1;
                                report.read.add(loaded.data.stats);
                                let new_index = files.len();
                                files.push(JobFile {
                                    path: files[file_index].path.clone(),
                                    footer: Arc::clone(&files[file_index].footer),
                                    loaded: Some(loaded),
                                });
                                file_errors.push(None);
                                for table in &mut parts[user].tables {
                                    if table.visit.0 == file_index {
                                        table.visit.0 = new_index;
                                    }
                                }
                            }
                            Err(err) => parts[user].error = Some(err),
                        }
                    }
                }
                Err(err) => file_errors[file_index] = Some(err),
            }
        }
        for part in &mut parts {
            if part.error.is_some() {
                continue;
            }
            for table in &part.tables {
                if let Some(err) = &file_errors[table.visit.0] {
                    part.error = Some(err.duplicate());
                    break;
                }
            }
        }
        ChunkJob {
            chunk_id,
            files,
            parts,
            report,
        }
    }

    /// Reads the union of the blocks `users` planned from file `file_index`.
    fn read_for(
        &self,
        file: &JobFile,
        parts: &[Part],
        users: &[usize],
        file_index: usize,
        chunk_id: i32,
    ) -> crate::storage::Result<LoadedFile> {
        let mut columns: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for &user in users {
            for table in parts[user]
                .tables
                .iter()
                .filter(|t| t.visit.0 == file_index)
            {
                for &column in &table.plan.columns {
                    columns
                        .entry(column)
                        .or_default()
                        .extend(table.plan.row_groups.iter().copied());
                }
            }
        }
        let wants: Vec<ColumnWant> = columns
            .into_iter()
            .map(|(column, row_groups)| ColumnWant {
                column,
                row_groups: row_groups.into_iter().collect(),
            })
            .collect();
        let ranges = ReadRanges::plan(&file.footer, &wants, self.storage.ranges)?;
        // A hot chunk (every planned page in the page cache) is decoded from
        // the shared map of its file: copying it into a pinned buffer first
        // would cost more than decoding it.
        // A table small enough to keep in memory is read through the page
        // cache (read ahead from the map), so that the next scan is hot.
        let cacheable = parts.iter().any(|part| {
            part.tables.iter().any(|t| {
                t.visit.0 == file_index
                    && part
                        .query
                        .query
                        .tables()
                        .get(t.table_index)
                        .is_some_and(|h| h.total_bytes() <= self.storage.cache_tables_up_to)
            })
        });
        if let Some(mappings) = &self.storage.convoy_mappings
            && let Ok(std_file) = std::fs::File::open(&file.path)
            && let Ok(metadata) = std_file.metadata()
            && (cacheable
                || ranges.ranges.iter().all(|&(offset, len)| {
                    crate::storage::fully_cached(&std_file, metadata.len(), offset, len)
                }))
        {
            let map = mappings.get(&file.path)?;
            if cacheable {
                for &(offset, len) in &ranges.ranges {
                    // Advice only: a refusal leaves the faults to read it.
                    let _ = map.map.advise_range(
                        memmap2::Advice::WillNeed,
                        offset as usize,
                        len as usize,
                    );
                }
            }
            return Ok(LoadedFile {
                footer: Arc::clone(&file.footer),
                data: FileData::mapped(map, ranges.total_bytes()),
                path: file.path.clone(),
                chunk_id,
            });
        }
        let backend = self.storage.backend();
        let queries: Vec<&Arc<QueryState>> = users.iter().map(|&u| &parts[u].query).collect();
        let cancelled = || queries.iter().all(|q| q.is_stopped()) || self.is_shutdown();
        // Take the buffer before the disk: waiting for memory must not
        // keep the disk from the other lane.
        let buffer =
            self.storage
                .memory
                .acquire(ranges.total_bytes(), PinMode::Required, &cancelled)?;
        let _disk = lock(&self.disk);
        let io_file = backend
            .open(&file.path)
            .map_err(|e| StorageError::io(&file.path, "open", e))?;
        let data = FileData::read_into(backend.as_ref(), &io_file, &ranges, buffer)?;
        Ok(LoadedFile {
            footer: Arc::clone(&file.footer),
            data,
            path: file.path.clone(),
            chunk_id,
        })
    }

    fn is_shutdown(&self) -> bool {
        lock(&self.state).shutdown
    }

    fn plan_part(
        &self,
        chunk_id: i32,
        part: &mut Part,
        files: &mut Vec<JobFile>,
        file_errors: &mut Vec<Option<StorageError>>,
    ) -> crate::storage::Result<()> {
        let query = Arc::clone(&part.query);
        let mut task = query.query.new_task(chunk_id)?;
        let mut occurrences: BTreeMap<usize, usize> = BTreeMap::new();
        let mut own_bytes = 0u64;
        for (table_index, table) in query.query.tables().iter().enumerate() {
            let Some(location) = table.chunk_location(chunk_id)? else {
                continue;
            };
            let file_index = match files.iter().position(|f| f.path == location.path) {
                Some(index) => index,
                None => {
                    let (footer, _) = self.storage.footers.get(&location.path, chunk_id)?;
                    files.push(JobFile {
                        path: location.path.clone(),
                        footer,
                        loaded: None,
                    });
                    file_errors.push(None);
                    files.len() - 1
                }
            };
            let footer = Arc::clone(&files[file_index].footer);
            let meta = ChunkMeta {
                chunk_id,
                footer: Arc::clone(&footer),
                path: location.path,
                spindle: location.spindle,
            };
            let started = Instant::now();
            let plan = task.plan(table_index, &meta);
            part.task_time += started.elapsed();
            let plan = plan?;
            plan.check(&footer)?;
            if plan.is_empty() {
                continue;
            }
            for &row_group in &plan.row_groups {
                for &column in &plan.columns {
                    if let Ok(block) = footer.block(row_group, column) {
                        own_bytes += block.len();
                    }
                }
            }
            let occurrence = occurrences.entry(file_index).or_insert(0);
            part.tables.push(PartTable {
                table_index,
                visit: (file_index, *occurrence),
                plan,
            });
            *occurrence += 1;
        }
        if let Some(limit) = query.max_memory_bytes {
            let need = own_bytes + query.query.memory_bytes();
            if need > limit {
                return Err(StorageError::Limit(format!(
                    "memory: chunk {chunk_id} needs {need} bytes for this query, it may use {limit}"
                )));
            }
        }
        part.task = Some(task);
        Ok(())
    }

    /// Decodes each needed row group once and runs every task on it.
    fn process(
        &self,
        job: &mut ChunkJob,
        decoders: &mut Vec<BlockDecoder>,
        slots: &mut [Vec<Decoded>; 2],
    ) {
        let workers = self.config.workers.clamp(1, 64);
        decoders.resize_with(workers, BlockDecoder::new);
        // Group the parts into passes whose visit orders agree.
        let mut passes: Vec<(Vec<Visit>, Vec<usize>)> = Vec::new();
        for (part_index, part) in job.parts.iter().enumerate() {
            if !part.alive() {
                continue;
            }
            let order: Vec<Visit> = part.tables.iter().map(|t| t.visit).collect();
            let mut placed = false;
            for (pass_order, members) in &mut passes {
                if let Some(merged) = merge_order(pass_order, &order) {
                    *pass_order = merged;
                    members.push(part_index);
                    placed = true;
                    break;
                }
            }
            if !placed {
                passes.push((order, vec![part_index]));
            }
        }
        for (order, members) in passes {
            // Take the members out so the workers can hold them mutably.
            let mut parts: Vec<Part> = members
                .iter()
                .map(|&i| take_part(&mut job.parts[i]))
                .collect();
            for visit in order {
                if parts.iter().all(|p| !p.alive()) {
                    break;
                }
                if let Some(file) = job.files.get(visit.0).and_then(|f| f.loaded.as_ref()) {
                    self.run_visit(file, visit, &mut parts, decoders, slots, workers);
                }
            }
            for (&index, part) in members.iter().zip(parts) {
                job.parts[index] = part;
            }
        }
    }

    fn run_visit(
        &self,
        file: &LoadedFile,
        visit: (usize, usize),
        parts: &mut [Part],
        decoders: &mut [BlockDecoder],
        slots: &mut [Vec<Decoded>; 2],
        workers: usize,
    ) {
        let footer = &file.footer;
        let column_count = footer.schema().columns.len();
        // Row group -> columns needed by some live member.
        let mut need: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for part in parts.iter().filter(|p| p.alive()) {
            for table in part.tables.iter().filter(|t| t.visit == visit) {
                for &row_group in &table.plan.row_groups {
                    need.entry(row_group)
                        .or_default()
                        .extend(table.plan.columns.iter().copied());
                }
            }
        }
        let need: Vec<(usize, Vec<usize>)> = need
            .into_iter()
            .map(|(rg, cols)| (rg, cols.into_iter().collect()))
            .collect();
        let need = runs_of(footer, visit, parts, need);
        // Two sets of decoded row groups, reused across waves and chunks:
        // `ready[..ready_len]` is handed to the tasks while the next wave is
        // decoded into `spare[..wave.len()]`.
        let [ready, spare] = slots;
        let mut ready_len = 0usize;
        let mut cursor = 0;
        loop {
            if parts.iter().all(|p| !p.alive()) {
                break;
            }
            // The next wave: consecutive needed row groups up to the byte cap.
            // One thread per chunk: waves about the size of L2, so the tasks
            // read what was just decoded from cache.
            let cap = if workers == 1 {
                self.config.wave_bytes.min(SINGLE_THREAD_WAVE_BYTES)
            } else {
                self.config.wave_bytes
            };
            let start = cursor;
            let mut bytes = 0u64;
            while cursor < need.len()
                && (cursor == start
                    || (bytes < cap && cursor - start < self.config.max_wave_row_groups))
            {
                let (rgs, cols) = &need[cursor];
                let rows: u64 = rgs
                    .iter()
                    .map(|&rg| u64::from(footer.row_groups()[rg].row_count))
                    .sum();
                bytes += cols
                    .iter()
                    .map(|&c| rows * decoded_width(footer.schema().columns[c].column_type))
                    .sum::<u64>();
                cursor += 1;
            }
            let wave = &need[start..cursor];
            if wave.is_empty() && ready_len == 0 {
                break;
            }
            if workers == 1 {
                // One thread for this chunk: decode the wave, then run the tasks on it.
                if wave.is_empty() {
                    break;
                }
                if spare.len() < wave.len() {
                    spare.resize_with(wave.len(), Decoded::default);
                }
                for (slot, (rgs, _)) in spare.iter_mut().zip(wave) {
                    slot.set_run(footer, rgs);
                    slot.columns.resize_with(column_count, || None);
                    slot.errors.clear();
                    slot.errors.resize_with(column_count, || None);
                }
                let decoded = &mut spare[..wave.len()];
                if let Some(decoder) = decoders.first_mut() {
                    decode_wave(file, decoded, wave, decoder);
                }
                for part in parts.iter_mut().filter(|p| p.alive()) {
                    run_part(part, visit, footer, decoded);
                }
                continue;
            }
            if spare.len() < wave.len() {
                spare.resize_with(wave.len(), Decoded::default);
            }
            for (slot, (rgs, _)) in spare.iter_mut().zip(wave) {
                slot.set_run(footer, rgs);
                slot.columns.resize_with(column_count, || None);
                slot.errors.clear();
                slot.errors.resize_with(column_count, || None);
            }
            let per_decoder = wave.len().div_ceil(workers).max(1);
            let live = parts.iter().filter(|p| p.alive()).count();
            let per_group = live.div_ceil(workers).max(1);
            let ready_ref: &[Decoded] = &ready[..ready_len];
            let decode_into = &mut spare[..wave.len()];
            let mut live_parts: Vec<&mut Part> = if ready_len > 0 {
                parts.iter_mut().filter(|p| p.alive()).collect()
            } else {
                Vec::new()
            };
            std::thread::scope(|scope| {
                for ((slots, wants), decoder) in decode_into
                    .chunks_mut(per_decoder)
                    .zip(wave.chunks(per_decoder))
                    .zip(decoders.iter_mut())
                {
                    scope.spawn(move || decode_wave(file, slots, wants, decoder));
                }
                if !ready_ref.is_empty() {
                    for group in live_parts.chunks_mut(per_group) {
                        scope.spawn(move || {
                            for part in group.iter_mut() {
                                run_part(part, visit, footer, ready_ref);
                            }
                        });
                    }
                }
            });
            std::mem::swap(ready, spare);
            ready_len = wave.len();
        }
    }
}

/// Moves a part out, leaving an empty one.
fn take_part(part: &mut Part) -> Part {
    let placeholder = Part {
        query: Arc::clone(&part.query),
        task: None,
        tables: Vec::new(),
        error: None,
        task_time: Duration::ZERO,
        row_groups: 0,
    };
    std::mem::replace(part, placeholder)
}

/// Bytes of the blocks `plan` names in the file of `footer`.
fn planned_bytes(footer: &Footer, plan: &ReadPlan) -> u64 {
    plan.row_groups
        .iter()
        .flat_map(|&rg| plan.columns.iter().map(move |&c| (rg, c)))
        .filter_map(|(rg, c)| footer.block(rg, c).ok().map(|b| b.len()))
        .sum()
}

/// Bytes per row of a decoded column (estimate for wave sizing).
pub(super) fn decoded_width(column_type: ColumnType) -> u64 {
    match column_type.fixed_width() {
        Some(width) => width as u64,
        None if column_type == ColumnType::Bool => 1,
        None => 16,
    }
}

impl Decoded {
    fn set_run(&mut self, footer: &Footer, row_groups: &[usize]) {
        self.index = row_groups.first().copied().unwrap_or(0);
        self.count = row_groups.len();
        self.rows = row_groups
            .iter()
            .map(|&rg| footer.row_groups()[rg].row_count)
            .sum();
    }
}

/// Groups consecutive entries of `need` into runs decoded as one batch:
/// only when every live member's plan for this visit coalesces, and only
/// row groups of the same kind (own or overlap), needing the same columns,
/// that each member's plan either has all of or none of, within
/// [`RUN_MAX_ROWS`] and [`RUN_MAX_BYTES`].
fn runs_of(
    footer: &Footer,
    visit: (usize, usize),
    parts: &[Part],
    need: Vec<(usize, Vec<usize>)>,
) -> Vec<Run> {
    let plans: Vec<&ReadPlan> = parts
        .iter()
        .filter(|p| p.alive())
        .flat_map(|p| p.tables.iter().filter(|t| t.visit == visit))
        .map(|t| &t.plan)
        .collect();
    let coalesce = !plans.is_empty() && plans.iter().all(|p| p.coalesce);
    if !coalesce {
        return need
            .into_iter()
            .map(|(rg, cols)| (vec![rg], cols))
            .collect();
    }
    let members = |rg: usize| -> Vec<bool> {
        plans
            .iter()
            .map(|p| p.row_groups.binary_search(&rg).is_ok())
            .collect()
    };
    let width = |cols: &[usize]| -> u64 {
        cols.iter()
            .map(|&c| decoded_width(footer.schema().columns[c].column_type))
            .sum()
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut run_members: Vec<bool> = Vec::new();
    let mut run_rows = 0u64;
    for (rg, cols) in need {
        let rows = u64::from(footer.row_groups()[rg].row_count);
        let these = members(rg);
        let joins = runs.last().is_some_and(|(rgs, run_cols)| {
            *run_cols == cols
                && run_members == these
                && fits_run(footer, rgs[0], run_rows, rg, width(&cols))
        });
        match runs.last_mut() {
            Some((rgs, _)) if joins => {
                rgs.push(rg);
                run_rows += rows;
            }
            _ => {
                runs.push((vec![rg], cols));
                run_members = these;
                run_rows = rows;
            }
        }
    }
    runs
}

fn decode_wave(
    file: &LoadedFile,
    slots: &mut [Decoded],
    wants: &[Run],
    decoder: &mut BlockDecoder,
) {
    for (index, (slot, (row_groups, columns))) in slots.iter_mut().zip(wants).enumerate() {
        if let Some((next_groups, next_columns)) = wants.get(index + 1)
            && let Some(&next_group) = next_groups.first()
        {
            for &column in next_columns {
                file.prefetch(next_group, column);
            }
        }
        let mut next = columns.iter().peekable();
        for column in 0..slot.columns.len() {
            if next.peek() == Some(&&column) {
                next.next();
                for (position, &row_group) in row_groups.iter().enumerate() {
                    if let Some(&ahead) = row_groups.get(position + 1) {
                        file.prefetch(ahead, column);
                    }
                    let decoded = if position == 0 {
                        file.decode(row_group, column, decoder, &mut slot.columns[column])
                    } else {
                        file.decode_append(row_group, column, decoder, &mut slot.columns[column])
                    };
                    if let Err(err) = decoded {
                        slot.errors[column] = Some(err);
                        break;
                    }
                }
            } else if slot.columns[column].is_some() {
                slot.columns[column] = None;
            }
        }
    }
}

fn run_part(part: &mut Part, visit: (usize, usize), footer: &Footer, wave: &[Decoded]) {
    let Some(table) = part.tables.iter().position(|t| t.visit == visit) else {
        return;
    };
    for decoded in wave {
        if !part.alive() {
            return;
        }
        let plan = &part.tables[table].plan;
        if plan.row_groups.binary_search(&decoded.index).is_err() {
            continue;
        }
        if let Some(err) = plan
            .columns
            .iter()
            .find_map(|&c| decoded.errors.get(c).and_then(Option::as_ref))
        {
            part.error = Some(err.duplicate());
            return;
        }
        let first = footer.row_groups()[decoded.index];
        let batch = RowGroupBatch {
            index: decoded.index,
            row_groups: decoded.count,
            meta: skyscan_format::RowGroupMeta {
                row_count: decoded.rows,
                ..first
            },
            columns: &decoded.columns,
        };
        let table_index = part.tables[table].table_index;
        let Some(task) = part.task.as_mut() else {
            return;
        };
        let started = Instant::now();
        let outcome = task.row_group(table_index, &batch);
        part.task_time += started.elapsed();
        part.row_groups += decoded.count as u64;
        if let Err(err) = outcome {
            part.error = Some(err);
            return;
        }
    }
}

/// Merges visit order `query` into `pass` so that both keep their relative
/// orders; `None` when they conflict.
pub(crate) fn merge_order<T: PartialEq + Copy>(pass: &[T], query: &[T]) -> Option<Vec<T>> {
    let mut merged = pass.to_vec();
    let mut cursor = 0;
    for &item in query {
        match merged.iter().position(|&x| x == item) {
            Some(index) if index >= cursor => cursor = index + 1,
            Some(_) => return None,
            None => {
                merged.insert(cursor, item);
                cursor += 1;
            }
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::merge_order;

    #[test]
    fn merges_compatible_orders() {
        assert_eq!(merge_order(&[1, 2], &[1, 2]), Some(vec![1, 2]));
        assert_eq!(merge_order(&[1], &[1, 2]), Some(vec![1, 2]));
        assert_eq!(merge_order(&[2], &[1, 2]), Some(vec![1, 2]));
        assert_eq!(merge_order(&[1, 3], &[1, 2, 3]), Some(vec![1, 2, 3]));
        assert_eq!(merge_order(&[1, 2], &[2, 1]), None);
        assert_eq!(merge_order::<i32>(&[], &[]), Some(vec![]));
    }
}
