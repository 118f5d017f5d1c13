//! The plain path: a query's chunks visited by a few worker threads, each
//! chunk read with positional reads of exactly the planned blocks. What
//! interactive queries use (and, before convoys, every query).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use skyscan_format::{BlockDecoder, ColumnData};

use super::control::CancelToken;
use crate::storage::{
    ChunkMeta, ColumnWant, FileData, LoadedFile, PinMode, ReadRanges, ReadStats, Result,
    RowGroupBatch, ScanQuery, Storage, StorageError,
};

/// Options of [`run_plain`].
#[derive(Debug, Clone)]
pub struct PlainOptions {
    /// Worker threads (1..=64); chunks run in parallel.
    pub threads: usize,
    /// Cancels the query (checked between row groups).
    pub cancel: CancelToken,
    /// Fails the query with [`StorageError::Limit`] when reached.
    pub deadline: Option<Instant>,
    /// Most bytes read for one chunk plus [`ScanQuery::memory_bytes`].
    pub max_memory_bytes: Option<u64>,
}

impl Default for PlainOptions {
    fn default() -> Self {
        PlainOptions {
            threads: 2,
            cancel: CancelToken::new(),
            deadline: None,
            max_memory_bytes: None,
        }
    }
}

/// What a scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Chunks whose task was finished.
    pub chunks_done: u64,
    /// Files read.
    pub files_read: u64,
    /// Bytes read (page cache plus device).
    pub read: ReadStats,
    /// Row groups delivered to tasks.
    pub row_groups: u64,
}

impl ScanReport {
    fn add(&mut self, other: &ScanReport) {
        self.chunks_done += other.chunks_done;
        self.files_read += other.files_read;
        self.read.add(other.read);
        self.row_groups += other.row_groups;
    }
}

/// Reusable per-worker state: a decoder and decoded column slots.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) decoder: BlockDecoder,
    pub(crate) columns: Vec<Option<ColumnData>>,
}

/// Runs `query` through the plain path: every chunk of
/// [`ScanQuery::chunks`] with `options.threads` workers. The first error
/// stops the query and is returned.
pub fn run_plain(
    storage: &Storage,
    query: &dyn ScanQuery,
    options: &PlainOptions,
) -> Result<ScanReport> {
    let chunks = query.chunks();
    check_chunks(chunks)?;
    let threads = options.threads.clamp(1, 64).min(chunks.len().max(1));
    if threads == 1 {
        let mut scratch = Scratch::default();
        let mut report = ScanReport::default();
        for &chunk_id in chunks {
            check_control(options)?;
            run_chunk(storage, query, chunk_id, options, &mut scratch, &mut report)?;
        }
        return Ok(report);
    }
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<StorageError>> = Mutex::new(None);
    let stop = CancelToken::new();
    let total = Mutex::new(ScanReport::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut scratch = Scratch::default();
                let mut report = ScanReport::default();
                let worker_options = PlainOptions {
                    cancel: options.cancel.joined(&stop),
                    ..options.clone()
                };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&chunk_id) = chunks.get(index) else {
                        break;
                    };
                    let outcome = check_control(&worker_options).and_then(|()| {
                        run_chunk(
                            storage,
                            query,
                            chunk_id,
                            &worker_options,
                            &mut scratch,
                            &mut report,
                        )
                    });
                    if let Err(err) = outcome {
                        let mut slot = match failure.lock() {
                            Ok(guard) => guard,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                        // Keep the first real error, not the cancellations it caused.
                        if slot.is_none()
                            || (slot.as_ref().is_some_and(StorageError::is_cancelled)
                                && !err.is_cancelled())
                        {
                            *slot = Some(err);
                        }
                        stop.cancel();
                        break;
                    }
                }
                match total.lock() {
                    Ok(mut guard) => guard.add(&report),
                    Err(poisoned) => poisoned.into_inner().add(&report),
                }
            });
        }
    });
    let failure = match failure.into_inner() {
        Ok(failure) => failure,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(err) = failure {
        // A user's cancellation wins over the internal stop it caused.
        if options.cancel.is_cancelled() {
            return Err(StorageError::Cancelled);
        }
        return Err(err);
    }
    Ok(match total.into_inner() {
        Ok(report) => report,
        Err(poisoned) => poisoned.into_inner(),
    })
}

pub(crate) fn check_chunks(chunks: &[i32]) -> Result<()> {
    for pair in chunks.windows(2) {
        if pair[0] >= pair[1] {
            return Err(StorageError::InvalidPlan(format!(
                "chunk ids must be strictly ascending ({} then {})",
                pair[0], pair[1]
            )));
        }
    }
    Ok(())
}

fn check_control(options: &PlainOptions) -> Result<()> {
    if options.cancel.is_cancelled() {
        return Err(StorageError::Cancelled);
    }
    if let Some(deadline) = options.deadline
        && Instant::now() >= deadline
    {
        return Err(StorageError::Limit("the query's time limit".to_string()));
    }
    Ok(())
}

/// The per-column wants of one plan.
pub(crate) fn wants_of(columns: &[usize], row_groups: &[usize]) -> Vec<ColumnWant> {
    columns
        .iter()
        .map(|&column| ColumnWant {
            column,
            row_groups: row_groups.to_vec(),
        })
        .collect()
}

fn run_chunk(
    storage: &Storage,
    query: &dyn ScanQuery,
    chunk_id: i32,
    options: &PlainOptions,
    scratch: &mut Scratch,
    report: &mut ScanReport,
) -> Result<()> {
    let tables = query.tables();
    let mut task = None;
    for (table_index, table) in tables.iter().enumerate() {
        let Some(location) = table.chunk_location(chunk_id)? else {
            continue;
        };
        let task = match &mut task {
            Some(task) => task,
            None => task.insert(query.new_task(chunk_id)?),
        };
        let (footer, _) = storage.footers.get(&location.path, chunk_id)?;
        let meta = ChunkMeta {
            chunk_id,
            footer: Arc::clone(&footer),
            path: location.path.clone(),
            spindle: location.spindle,
        };
        let plan = task.plan(table_index, &meta)?;
        plan.check(&footer)?;
        if plan.is_empty() {
            continue;
        }
        let ranges = ReadRanges::plan(
            &footer,
            &wants_of(&plan.columns, &plan.row_groups),
            storage.ranges,
        )?;
        if let Some(limit) = options.max_memory_bytes {
            let need = ranges.total_bytes() + query.memory_bytes();
            if need > limit {
                return Err(StorageError::Limit(format!(
                    "memory: chunk {chunk_id} of {}.{} needs {need} bytes, the query may use {limit}",
                    table.database(),
                    table.table()
                )));
            }
        }
        let data = match &storage.mappings {
            Some(mappings) => FileData::mapped(mappings.get(&location.path)?, ranges.total_bytes()),
            None => {
                let backend = storage.plain_backend();
                let file = backend
                    .open(&location.path)
                    .map_err(|e| StorageError::io(&location.path, "open", e))?;
                let cancel = options.cancel.clone();
                FileData::read(
                    backend.as_ref(),
                    &file,
                    &ranges,
                    &storage.memory,
                    PinMode::Flexible,
                    &move || cancel.is_cancelled(),
                )?
            }
        };
        report.files_read += 1;
        report.read.add(data.stats);
        let file = LoadedFile {
            footer: Arc::clone(&footer),
            data,
            path: location.path.clone(),
            chunk_id,
        };
        let columns = footer.schema().columns.len();
        scratch.columns.resize_with(columns, || None);
        // Runs of consecutive row groups decoded into one batch when the
        // plan allows it (as the convoys do).
        let width: u64 = plan
            .columns
            .iter()
            .map(|&c| super::convoy::decoded_width(footer.schema().columns[c].column_type))
            .sum();
        let mut runs: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        while start < plan.row_groups.len() {
            let first = plan.row_groups[start];
            let mut rows = u64::from(footer.row_groups()[first].row_count);
            let mut end = start + 1;
            while plan.coalesce
                && let Some(&next) = plan.row_groups.get(end)
                && super::convoy::fits_run(&footer, first, rows, next, width)
            {
                rows += u64::from(footer.row_groups()[next].row_count);
                end += 1;
            }
            runs.push(&plan.row_groups[start..end]);
            start = end;
        }
        for (position, run) in runs.iter().enumerate() {
            check_control(options)?;
            for (column, slot) in scratch.columns.iter_mut().enumerate() {
                if plan.columns.binary_search(&column).is_ok() {
                    for (at, &row_group) in run.iter().enumerate() {
                        // Fetch the next block into the caches meanwhile.
                        match run.get(at + 1) {
                            Some(&ahead) => file.prefetch(ahead, column),
                            None => {
                                if let Some(&ahead) = runs.get(position + 1).and_then(|r| r.first())
                                {
                                    file.prefetch(ahead, column);
                                }
                            }
                        }
                        if at == 0 {
                            file.decode(row_group, column, &mut scratch.decoder, slot)?;
                        } else {
                            file.decode_append(row_group, column, &mut scratch.decoder, slot)?;
                        }
                    }
                } else if let Some(old) = slot.take() {
                    drop(old);
                }
            }
            let first = footer.row_groups()[run[0]];
            let batch = RowGroupBatch {
                index: run[0],
                row_groups: run.len(),
                meta: skyscan_format::RowGroupMeta {
                    row_count: run
                        .iter()
                        .map(|&rg| footer.row_groups()[rg].row_count)
                        .sum(),
                    ..first
                },
                columns: &scratch.columns[..columns],
            };
            task.row_group(table_index, &batch)?;
            report.row_groups += run.len() as u64;
        }
    }
    if let Some(task) = task {
        query.finish_task(chunk_id, task)?;
        report.chunks_done += 1;
    }
    Ok(())
}
