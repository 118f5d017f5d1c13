//! The loader: turns input batches (files or an in-memory table) into the
//! chunk files and director index of one [`Load`], under a memory budget.
//!
//! **Phase 1** (read and place): reader threads take units of the
//! [`BatchSource`] in order, place every row (chunk, row group and, for
//! directors, overlap copies: [`place`]), and append it to the thread's
//! buffer for that chunk. When a thread's buffers reach its share of the
//! budget, it sorts each chunk's rows into file order and spills them as a
//! run ([`spill`]) to the load's staging area. Director index entries go to
//! a [`DirectorIndexBuilder`] per thread (which spills on its own).
//!
//! **Phase 2** (merge and write): chunk by chunk (largest first, on every
//! thread), the rows still in memory are sorted, merged with the chunk's
//! spilled runs, gathered row group by row group (a window of row groups
//! at a time when runs must be read back) and encoded through
//! [`skyscan_format::ChunkWriter`]; the file is written and fsynced
//! ([`write_chunk_file`], the one chunk-writing path of the engine). The
//! director index is merged and written alongside.
//!
//! File order is the same whatever the budget, the thread count or the
//! input split: own row groups by sub-chunk, then overlap ones; rows by
//! declination (tables placed by position) and, on ties or for tables not
//! placed by position, in input order. So a load that spills writes the
//! same bytes as one that does not (`engine/tests/loader_spill.rs`).

mod colbuf;
mod place;
pub mod source;
mod spill;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use skyscan_format::{ChunkWriter, ColumnData, TableSchema, WriteStats, WriterOptions};

use crate::catalog::{CatalogError, Load, LoadOptions, LoadSummary, TableKind};
use crate::director::{BuildOptions, DirectorIndex, DirectorIndexBuilder, MIN_MEMORY_BUDGET};
use colbuf::{ColBuf, gather_column, row_ref};
use place::{Placed, Placement, SEQ_ROW_BITS};
pub use source::{BatchSource, FileSource, InputBatch, TableSource};
use spill::{SortedKeys, SpillPart, SpilledSegment, write_spill};

/// Rows per row group of a replicated table's single file (its row groups
/// take sub-chunk ids 0, 1, 2, …).
pub const REPLICATED_ROWS_PER_GROUP: usize = 1 << 20;
/// Smallest memory budget accepted (tests force spills with it).
pub const MIN_LOAD_MEMORY: u64 = 1 << 20;
/// Most units of one source (unit index in the high bits of the row order).
pub const MAX_UNITS: usize = 1 << 23;

/// What the loader is doing, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and placing rows (spilling as needed).
    Reading,
    /// Merging, encoding and writing chunk files.
    Writing,
    /// Done.
    Done,
}

/// A progress snapshot, passed to the progress callback about once a
/// second and at the end of each phase.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The current phase.
    pub phase: Phase,
    /// Input rows read so far.
    pub rows_read: u64,
    /// Input bytes consumed so far (file bytes, before decompression).
    pub bytes_read: u64,
    /// Input bytes in total (for an ETA).
    pub total_bytes: u64,
    /// Bytes spilled so far.
    pub spilled_bytes: u64,
    /// Chunk files written so far.
    pub chunks_written: u64,
    /// Chunk files to write (known once reading is done).
    pub chunks_total: u64,
    /// Time since the load started.
    pub elapsed: Duration,
}

/// The progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(&Progress) + Sync);

/// Shared counters of a running load.
#[derive(Default)]
struct Counters {
    rows_read: AtomicU64,
    bytes_read: AtomicU64,
    spilled_bytes: AtomicU64,
    spilled_segments: AtomicU64,
    chunks_written: AtomicU64,
    chunks_total: AtomicU64,
    phase: AtomicUsize,
}

impl Counters {
    fn snapshot(&self, total_bytes: u64, started: Instant) -> Progress {
        Progress {
            phase: match self.phase.load(Ordering::Relaxed) {
                0 => Phase::Reading,
                1 => Phase::Writing,
                _ => Phase::Done,
            },
            rows_read: self.rows_read.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            total_bytes,
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            chunks_written: self.chunks_written.load(Ordering::Relaxed),
            chunks_total: self.chunks_total.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        }
    }
}

/// One thread's rows of one chunk, in arrival (= input) order.
struct ChunkBuffer {
    chunk_id: i32,
    columns: Vec<ColBuf>,
    groups: Vec<u32>,
    decls: Vec<u64>,
    seqs: Vec<u64>,
    /// Batch rows bound here, while a batch is being distributed.
    pending: Vec<u32>,
    bytes: usize,
}

impl ChunkBuffer {
    fn new(chunk_id: i32, schema: &TableSchema) -> ChunkBuffer {
        ChunkBuffer {
            chunk_id,
            columns: schema
                .columns
                .iter()
                .map(|c| ColBuf::new(c.column_type))
                .collect(),
            groups: Vec::new(),
            decls: Vec::new(),
            seqs: Vec::new(),
            pending: Vec::new(),
            bytes: 0,
        }
    }

    fn rows(&self) -> usize {
        self.groups.len()
    }

    fn measure(&mut self) -> usize {
        self.bytes = self.columns.iter().map(ColBuf::bytes).sum::<usize>() + self.rows() * 20;
        self.bytes
    }

    fn clear(&mut self) {
        for column in &mut self.columns {
            column.clear();
        }
        self.groups.clear();
        self.decls.clear();
        self.seqs.clear();
        self.bytes = 0;
    }
}

/// A multiplicative hash for chunk ids (the per-row lookup of a row's
/// chunk buffer; SipHash showed in the profile). Keys are our own.
#[derive(Default, Clone, Copy)]
struct ChunkIdHasher(u64);

impl std::hash::Hasher for ChunkIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01B3);
        }
    }

    fn write_i32(&mut self, value: i32) {
        self.0 = u64::from(value as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// Chunk id → index of the reader's buffer for it.
type SlotMap = HashMap<i32, usize, std::hash::BuildHasherDefault<ChunkIdHasher>>;

/// What one reader thread holds at the end of phase 1.
struct Reader {
    buffers: Vec<ChunkBuffer>,
    slot_of: SlotMap,
    spilled: Vec<SpilledSegment>,
    index: Option<DirectorIndexBuilder>,
    bytes: usize,
}

/// The order that sorts rows by `(group, decl)`, ties by index: indices
/// into the (concatenated) key arrays.
fn sort_order(groups: &[u32], decls: &[u64]) -> Vec<u32> {
    debug_assert_eq!(groups.len(), decls.len());
    let mut keys: Vec<u128> = groups
        .iter()
        .zip(decls)
        .enumerate()
        .map(|(index, (&group, &decl))| {
            (u128::from(group) << 96) | (u128::from(decl) << 32) | index as u128
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|key| key as u32).collect()
}

/// Reorders runs of equal `(group, decl)` in `order` by `seqs`: rows of
/// different threads that tie must come in input order.
fn fix_ties(order: &mut [u32], groups: &[u32], decls: &[u64], seqs: &[u64]) {
    let key = |row: u32| (groups[row as usize], decls[row as usize]);
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && key(order[end]) == key(order[start]) {
            end += 1;
        }
        if end - start > 1 {
            order[start..end].sort_unstable_by_key(|&row| seqs[row as usize]);
        }
        start = end;
    }
}

fn director_error(e: crate::director::DirectorError) -> CatalogError {
    CatalogError::Load(e.to_string())
}

/// The placement of the load's table.
fn placement(
    load: &Load,
    schema: &TableSchema,
    options: &LoadOptions,
) -> Result<Placement, CatalogError> {
    let def = load.table_def();
    let column = |name: &str| {
        schema.column_index(name).ok_or_else(|| {
            CatalogError::InvalidArgument(format!("table {}: no column `{name}`", def.name))
        })
    };
    let chunker = || {
        load.chunker().cloned().ok_or_else(|| {
            CatalogError::InvalidArgument(format!("table {}: no partitioning", def.name))
        })
    };
    Ok(match &def.kind {
        TableKind::Director {
            key_column,
            ra_column,
            decl_column,
        } => Placement::Position {
            chunker: chunker()?,
            ra: column(ra_column)?,
            decl: column(decl_column)?,
            overlap: true,
            key: if options.director_index {
                Some(column(key_column)?)
            } else {
                None
            },
        },
        TableKind::Child {
            ra_column: Some(ra),
            decl_column: Some(decl),
            ..
        } => Placement::Position {
            chunker: chunker()?,
            ra: column(ra)?,
            decl: column(decl)?,
            overlap: false,
            key: None,
        },
        TableKind::Child {
            director_table,
            foreign_key_column,
            ..
        } => {
            let database = load.database();
            let director = load
                .base_catalog()
                .table(database, director_table)
                .ok_or_else(|| {
                    CatalogError::NotFound(format!("director table {database}.{director_table}"))
                })?;
            let entry = director.director_index.as_ref().ok_or_else(|| {
                CatalogError::InvalidArgument(format!(
                    "director table {database}.{director_table} has no director index; give \
                     the child table the director's position columns instead"
                ))
            })?;
            let path = load.published_file(director, entry.spindle, &entry.file)?;
            Placement::DirectorIndex {
                index: DirectorIndex::open(&path).map_err(director_error)?,
                key: column(foreign_key_column)?,
                director: format!("{database}.{director_table}"),
            }
        }
        TableKind::Replicated => Placement::Replicated,
    })
}

/// Checks that the source's columns are the table definition's.
fn check_schema(load: &Load, schema: &TableSchema) -> Result<(), CatalogError> {
    let def = load.table_def();
    let expected = def.schema();
    let same = expected.columns.len() == schema.columns.len()
        && expected.columns.iter().zip(&schema.columns).all(|(a, b)| {
            a.name == b.name && a.column_type == b.column_type && a.nullable == b.nullable
        });
    if same {
        Ok(())
    } else {
        Err(CatalogError::InvalidArgument(format!(
            "table {}: the data's columns differ from the table definition's",
            def.name
        )))
    }
}

/// Loads every row of `source` into `load` (chunk files, director index),
/// declares them, and returns what was written. Does not commit. Stops at
/// the first bad row or I/O error; the caller drops the load, which removes
/// everything written.
pub fn load_source(
    load: &mut Load,
    source: &dyn BatchSource,
    options: &LoadOptions,
    progress: Option<ProgressFn<'_>>,
) -> Result<LoadSummary, CatalogError> {
    let started = Instant::now();
    let schema = source.schema().clone();
    check_schema(load, &schema)?;
    if !(1..=64).contains(&options.threads) {
        return Err(CatalogError::InvalidArgument(format!(
            "threads {} outside 1..=64",
            options.threads
        )));
    }
    if options.memory_budget_bytes < MIN_LOAD_MEMORY {
        return Err(CatalogError::InvalidArgument(format!(
            "memory budget {} bytes; the minimum is {MIN_LOAD_MEMORY}",
            options.memory_budget_bytes
        )));
    }
    let units = source.unit_count();
    if units > MAX_UNITS {
        return Err(CatalogError::InvalidArgument(format!(
            "{units} input units (files, row groups); at most {MAX_UNITS}"
        )));
    }
    let placement = placement(load, &schema, options)?;
    let replicated = matches!(placement, Placement::Replicated);
    let spill_dir = load.scratch_dir()?;
    let total_bytes: u64 = (0..units).map(|unit| source.unit_bytes(unit)).sum();
    let counters = Counters::default();
    let done = Mutex::new(false);
    let wake = std::sync::Condvar::new();

    let result = std::thread::scope(|scope| {
        if let Some(report) = progress {
            let counters = &counters;
            let (done, wake) = (&done, &wake);
            scope.spawn(move || {
                let Ok(mut finished) = done.lock() else {
                    return;
                };
                loop {
                    let waited = wake.wait_timeout(finished, Duration::from_secs(1));
                    let Ok((guard, _)) = waited else { return };
                    finished = guard;
                    if *finished {
                        return;
                    }
                    report(&counters.snapshot(total_bytes, started));
                }
            });
        }
        let result = (|| {
            let readers = read_phase(source, &placement, &schema, options, &spill_dir, &counters)?;
            if let Some(report) = progress {
                report(&counters.snapshot(total_bytes, started));
            }
            let read_time = started.elapsed();
            counters.phase.store(1, Ordering::Relaxed);
            let mut summary = write_phase(
                load, readers, &schema, options, replicated, &spill_dir, &counters,
            )?;
            summary.read_time = read_time;
            summary.write_time = started.elapsed() - read_time;
            Ok(summary)
        })();
        if let Ok(mut finished) = done.lock() {
            *finished = true;
        }
        wake.notify_all();
        result
    });
    // Spills are gone with their segments; remove the directory too.
    let _ = std::fs::remove_dir_all(&spill_dir);
    let mut summary = result?;
    counters.phase.store(2, Ordering::Relaxed);
    summary.spilled_segments = counters.spilled_segments.load(Ordering::Relaxed);
    summary.spilled_bytes = counters.spilled_bytes.load(Ordering::Relaxed);
    if let Some(report) = progress {
        report(&counters.snapshot(total_bytes, started));
    }
    Ok(summary)
}

/// Phase 1 on `options.threads` threads.
fn read_phase(
    source: &dyn BatchSource,
    placement: &Placement,
    schema: &TableSchema,
    options: &LoadOptions,
    spill_dir: &Path,
    counters: &Counters,
) -> Result<Vec<Reader>, CatalogError> {
    let units = source.unit_count();
    let threads = options.threads.min(units.max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let share = (options.memory_budget_bytes / threads as u64).max(1) as usize;
    let index_memory = (options.index_memory_bytes / threads).max(MIN_MEMORY_BUDGET);
    let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let with_index = matches!(placement, Placement::Position { key: Some(_), .. });
    let results: Vec<Result<Reader, CatalogError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = Reader {
                        buffers: Vec::new(),
                        slot_of: SlotMap::default(),
                        spilled: Vec::new(),
                        index: if with_index {
                            Some(
                                DirectorIndexBuilder::new(BuildOptions {
                                    memory_budget_bytes: index_memory,
                                    spill_dir: Some(spill_dir.to_path_buf()),
                                    ..BuildOptions::default()
                                })
                                .map_err(director_error)?,
                            )
                        } else {
                            None
                        },
                        bytes: 0,
                    };
                    let mut placed = Placed::default();
                    let mut touched: Vec<usize> = Vec::new();
                    let mut scratch = Vec::new();
                    let result = (|| {
                        loop {
                            if failed.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            let unit = next.fetch_add(1, Ordering::Relaxed);
                            if unit >= units {
                                return Ok(());
                            }
                            let mut unit_rows = 0u64;
                            source.read_unit(unit, &counters.bytes_read, &mut |batch| {
                                if failed.load(Ordering::Relaxed) {
                                    return Err(CatalogError::Load("stopped".to_string()));
                                }
                                let first = batch.rows.start;
                                let seq_base = ((unit as u64) << SEQ_ROW_BITS) + unit_rows;
                                if unit_rows + batch.rows.len() as u64 >= 1 << SEQ_ROW_BITS {
                                    return Err(CatalogError::Load(format!(
                                        "{}: more than 2^{SEQ_ROW_BITS} rows in one input",
                                        batch.source_name
                                    )));
                                }
                                placement.place(&batch, &names, &mut placed)?;
                                distribute(
                                    &mut reader,
                                    schema,
                                    &batch,
                                    &placed,
                                    seq_base,
                                    first,
                                    &mut touched,
                                )?;
                                if let Some(index) = &mut reader.index {
                                    index
                                        .add_batch(
                                            &placed.index_keys,
                                            &placed.index_chunks,
                                            &placed.index_sub_chunks,
                                        )
                                        .map_err(director_error)?;
                                }
                                unit_rows += batch.rows.len() as u64;
                                counters
                                    .rows_read
                                    .fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                                if reader.bytes >= share {
                                    spill_reader(&mut reader, spill_dir, &mut scratch, counters)?;
                                }
                                Ok(())
                            })?;
                        }
                    })();
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    result.map(|()| reader)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(CatalogError::Load("a reader thread panicked".to_string()))
                })
            })
            .collect()
    });
    // Report the real error, not the "stopped" of the threads it stopped.
    let mut readers = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results {
        match result {
            Ok(reader) => readers.push(reader),
            Err(CatalogError::Load(message)) if message == "stopped" => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    if failed.load(Ordering::Relaxed) {
        return Err(CatalogError::Load(
            "a reader stopped without an error".to_string(),
        ));
    }
    Ok(readers)
}

/// Appends the placed rows of `batch` to the reader's chunk buffers.
fn distribute(
    reader: &mut Reader,
    schema: &TableSchema,
    batch: &InputBatch<'_>,
    placed: &Placed,
    seq_base: u64,
    first: usize,
    touched: &mut Vec<usize>,
) -> Result<(), CatalogError> {
    touched.clear();
    let mut last: Option<(i32, usize)> = None;
    for (((&chunk_id, &group), &row), &decl) in placed
        .chunk_ids
        .iter()
        .zip(&placed.groups)
        .zip(&placed.rows)
        .zip(&placed.decls)
    {
        let slot = match last {
            Some((last_chunk, slot)) if last_chunk == chunk_id => slot,
            _ => match reader.slot_of.get(&chunk_id) {
                Some(&slot) => slot,
                None => {
                    reader.buffers.push(ChunkBuffer::new(chunk_id, schema));
                    reader.slot_of.insert(chunk_id, reader.buffers.len() - 1);
                    reader.buffers.len() - 1
                }
            },
        };
        last = Some((chunk_id, slot));
        let buffer = &mut reader.buffers[slot];
        if buffer.pending.is_empty() {
            touched.push(slot);
        }
        buffer.pending.push(row);
        buffer.groups.push(group);
        buffer.decls.push(decl);
        buffer.seqs.push(seq_base + (row as usize - first) as u64);
    }
    for &slot in touched.iter() {
        let buffer = &mut reader.buffers[slot];
        let rows = std::mem::take(&mut buffer.pending);
        for (column, data) in buffer.columns.iter_mut().zip(batch.columns) {
            column
                .append_rows(data, &rows)
                .map_err(CatalogError::Load)?;
        }
        let before = buffer.bytes;
        let after = buffer.measure();
        reader.bytes = reader.bytes + after - before;
        buffer.pending = rows;
        buffer.pending.clear();
        if buffer.rows() >= u32::MAX as usize / 2 {
            return Err(CatalogError::Load(
                "more than 2^31 rows of one chunk held in memory; lower --max-memory".to_string(),
            ));
        }
    }
    Ok(())
}

/// Sorts every chunk buffer of `reader` and writes them as one spill file.
fn spill_reader(
    reader: &mut Reader,
    spill_dir: &Path,
    scratch: &mut Vec<u8>,
    counters: &Counters,
) -> Result<(), CatalogError> {
    let orders: Vec<Vec<u32>> = reader
        .buffers
        .iter()
        .map(|buffer| sort_order(&buffer.groups, &buffer.decls))
        .collect();
    let parts: Vec<SpillPart<'_>> = reader
        .buffers
        .iter()
        .zip(&orders)
        .filter(|(buffer, _)| buffer.rows() > 0)
        .map(|(buffer, order)| SpillPart {
            chunk_id: buffer.chunk_id,
            groups: &buffer.groups,
            decls: &buffer.decls,
            seqs: &buffer.seqs,
            columns: &buffer.columns,
            perm: order,
        })
        .collect();
    let segments = write_spill(spill_dir, &parts, scratch)?;
    let bytes: u64 = segments.iter().map(SpilledSegment::bytes).sum();
    counters.spilled_bytes.fetch_add(bytes, Ordering::Relaxed);
    counters
        .spilled_segments
        .fetch_add(segments.len() as u64, Ordering::Relaxed);
    reader.spilled.extend(segments);
    for buffer in &mut reader.buffers {
        buffer.clear();
    }
    reader.bytes = 0;
    Ok(())
}

/// The work of phase 2 for one chunk: its buffers (by reader) and runs.
struct ChunkWork<'a> {
    chunk_id: i32,
    buffers: Vec<&'a ChunkBuffer>,
    spilled: Vec<&'a SpilledSegment>,
    bytes: u64,
}

/// Phase 2: every chunk file, and the director index.
fn write_phase(
    load: &mut Load,
    mut readers: Vec<Reader>,
    schema: &TableSchema,
    options: &LoadOptions,
    replicated: bool,
    spill_dir: &Path,
    counters: &Counters,
) -> Result<LoadSummary, CatalogError> {
    // The director index: one builder takes the others' entries.
    let mut index: Option<DirectorIndexBuilder> = None;
    for reader in &mut readers {
        if let Some(builder) = reader.index.take() {
            match &mut index {
                None => index = Some(builder),
                Some(index) => index.absorb(builder).map_err(director_error)?,
            }
        }
    }
    let index_path = match index {
        Some(_) => Some(load.director_index_path()?),
        None => None,
    };
    let mut by_chunk: std::collections::BTreeMap<i32, ChunkWork<'_>> = Default::default();
    for reader in &readers {
        for buffer in reader.buffers.iter().filter(|b| b.rows() > 0) {
            let work = by_chunk
                .entry(buffer.chunk_id)
                .or_insert_with(|| ChunkWork {
                    chunk_id: buffer.chunk_id,
                    buffers: Vec::new(),
                    spilled: Vec::new(),
                    bytes: 0,
                });
            work.buffers.push(buffer);
            work.bytes += buffer.bytes as u64;
        }
        for segment in &reader.spilled {
            let work = by_chunk
                .entry(segment.chunk_id)
                .or_insert_with(|| ChunkWork {
                    chunk_id: segment.chunk_id,
                    buffers: Vec::new(),
                    spilled: Vec::new(),
                    bytes: 0,
                });
            work.spilled.push(segment);
            work.bytes += segment.column_bytes();
        }
    }
    let mut work: Vec<(ChunkWork<'_>, PathBuf)> = by_chunk
        .into_values()
        .map(|w| Ok((load.chunk_path(w.chunk_id)?, w)))
        .map(|r: Result<_, CatalogError>| r.map(|(path, w)| (w, path)))
        .collect::<Result<_, _>>()?;
    // Largest first: the last chunks to finish are small ones.
    work.sort_by(|a, b| {
        b.0.bytes
            .cmp(&a.0.bytes)
            .then(a.0.chunk_id.cmp(&b.0.chunk_id))
    });
    counters
        .chunks_total
        .store(work.len() as u64, Ordering::Relaxed);
    let threads = options.threads.clamp(1, 64);
    let window_bytes = (options.memory_budget_bytes / (2 * threads as u64)).max(1 << 20);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let index_slot = Mutex::new(index);
    let index_result: Mutex<Option<Result<u64, CatalogError>>> = Mutex::new(None);
    // Encoded files go to one I/O thread (O_DIRECT write, fsync, rename), so
    // that encoding goes on while the disk writes; `threads` files queue at
    // most, and their buffers come back through `pool` for reuse.
    let (to_disk, from_encoders) =
        std::sync::mpsc::sync_channel::<(i32, PathBuf, Vec<u8>)>(threads);
    let pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let results: Vec<Result<Vec<(i32, WriteStats)>, CatalogError>> = std::thread::scope(|scope| {
        let (pool, failed_ref) = (&pool, &failed);
        let (failed, next, work) = (&failed, &next, &work);
        let (index_slot, index_path, index_result) = (&index_slot, &index_path, &index_result);
        let io = scope.spawn(move || {
            let mut direct = Vec::new();
            let mut first_error = None;
            for (chunk_id, path, bytes) in from_encoders {
                if first_error.is_none() {
                    match write_file_direct(&path, &bytes, &mut direct, options.direct_writes) {
                        Ok(()) => {
                            counters.chunks_written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(message) => {
                            failed_ref.store(true, Ordering::Relaxed);
                            first_error =
                                Some(CatalogError::Load(format!("chunk {chunk_id}: {message}")));
                        }
                    }
                }
                if let Ok(mut pool) = pool.lock() {
                    pool.push(bytes);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let to_disk = to_disk.clone();
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut scratch = WriterScratch::default();
                    // The index build is the first job taken.
                    let builder = index_slot.lock().ok().and_then(|mut slot| slot.take());
                    if let (Some(builder), Some(path)) = (builder, &index_path) {
                        let built = builder
                            .finish(path)
                            .map(|stats| stats.entries)
                            .map_err(director_error);
                        if built.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut slot) = index_result.lock() {
                            *slot = Some(built);
                        }
                    }
                    while !failed.load(Ordering::Relaxed) {
                        let Some((chunk, path)) = work.get(next.fetch_add(1, Ordering::Relaxed))
                        else {
                            break;
                        };
                        if let Some(buffer) = pool.lock().ok().and_then(|mut pool| pool.pop()) {
                            scratch.file = buffer;
                        }
                        let encoded = encode_chunk(
                            chunk,
                            schema,
                            &options.writer,
                            replicated,
                            window_bytes,
                            &mut scratch,
                        );
                        match encoded {
                            Ok(stats) => {
                                let bytes = std::mem::take(&mut scratch.file);
                                if to_disk.send((chunk.chunk_id, path.clone(), bytes)).is_err() {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(CatalogError::Load(
                                        "the chunk file writer stopped".to_string(),
                                    ));
                                }
                                done.push((chunk.chunk_id, stats));
                            }
                            Err(error) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(error);
                            }
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        drop(to_disk);
        let mut results: Vec<Result<Vec<(i32, WriteStats)>, CatalogError>> = handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(CatalogError::Load(
                        "a chunk writer thread panicked".to_string(),
                    ))
                })
            })
            .collect();
        let io_result = io.join().unwrap_or_else(|_| {
            Err(CatalogError::Load(
                "the chunk file writer panicked".to_string(),
            ))
        });
        if let Err(error) = io_result {
            results.insert(0, Err(error));
        }
        results
    });
    let _ = spill_dir;
    let mut written = Vec::new();
    for result in results {
        written.extend(result?);
    }
    let index_entries = match index_result.into_inner() {
        Ok(Some(result)) => Some(result?),
        Ok(None) => None,
        Err(_) => {
            return Err(CatalogError::Load(
                "director index thread failed".to_string(),
            ));
        }
    };
    if failed.load(Ordering::Relaxed) {
        return Err(CatalogError::Load(
            "a chunk writer stopped without an error".to_string(),
        ));
    }
    written.sort_unstable_by_key(|(chunk_id, _)| *chunk_id);
    let mut summary = LoadSummary::default();
    for (chunk_id, stats) in written {
        load.add_chunk(chunk_id, stats.own_rows, stats.overlap_rows, stats.file_len)?;
        summary.chunks += 1;
        summary.rows += stats.own_rows;
        summary.overlap_rows += stats.overlap_rows;
        summary.chunk_bytes += stats.file_len;
    }
    if let Some(entries) = index_entries {
        load.add_director_index(entries)?;
        summary.director_index_entries = Some(entries);
    }
    Ok(summary)
}

/// The merged file order of one chunk: each row's group and where it is
/// (a [`row_ref`]: buffer number and row for buffered rows; buffers count +
/// run number and sorted position for spilled rows).
fn merge_chunk(chunk: &ChunkWork<'_>, runs: &[SortedKeys]) -> (Vec<u32>, Vec<u64>) {
    // All buffered rows of the chunk form one sorted sequence.
    let rows: usize = chunk.buffers.iter().map(|b| b.rows()).sum();
    let mut groups = Vec::with_capacity(rows);
    let mut decls = Vec::with_capacity(rows);
    let mut seqs = Vec::with_capacity(rows);
    let mut refs_of = Vec::with_capacity(rows);
    for (number, buffer) in chunk.buffers.iter().enumerate() {
        groups.extend_from_slice(&buffer.groups);
        decls.extend_from_slice(&buffer.decls);
        seqs.extend_from_slice(&buffer.seqs);
        refs_of.extend((0..buffer.rows()).map(|row| row_ref(number, row)));
    }
    let mut order = sort_order(&groups, &decls);
    if chunk.buffers.len() > 1 {
        fix_ties(&mut order, &groups, &decls, &seqs);
    }
    if runs.is_empty() {
        let merged_groups = order.iter().map(|&k| groups[k as usize]).collect();
        let merged_refs = order.iter().map(|&k| refs_of[k as usize]).collect();
        return (merged_groups, merged_refs);
    }
    // k-way merge of the buffered sequence (source 0) and the runs.
    let total = rows + runs.iter().map(|r| r.groups.len()).sum::<usize>();
    let mut merged_groups = Vec::with_capacity(total);
    let mut merged_refs = Vec::with_capacity(total);
    let key_of = |source: usize, position: usize| -> (u32, u64, u64) {
        if source == 0 {
            let k = order[position] as usize;
            (groups[k], decls[k], seqs[k])
        } else {
            let run = &runs[source - 1];
            (
                run.groups[position],
                run.decls[position],
                run.seqs[position],
            )
        }
    };
    let lengths: Vec<usize> = std::iter::once(rows)
        .chain(runs.iter().map(|r| r.groups.len()))
        .collect();
    let mut heap = std::collections::BinaryHeap::new();
    for (source, &len) in lengths.iter().enumerate() {
        if len > 0 {
            heap.push(std::cmp::Reverse((key_of(source, 0), source, 0usize)));
        }
    }
    let first_run = chunk.buffers.len();
    while let Some(std::cmp::Reverse((key, source, position))) = heap.pop() {
        merged_groups.push(key.0);
        merged_refs.push(if source == 0 {
            refs_of[order[position] as usize]
        } else {
            row_ref(first_run + source - 1, position)
        });
        if position + 1 < lengths[source] {
            heap.push(std::cmp::Reverse((
                key_of(source, position + 1),
                source,
                position + 1,
            )));
        }
    }
    (merged_groups, merged_refs)
}

/// The first pass of the two-pass gather of a chunk held in memory: every
/// fixed-width column of the chunk's buffers moved into row-group blocks
/// ([`colbuf::scatter_sources`]), and for each row in file order its place
/// in the blocks (a [`row_ref`] of source 0).
fn stage(
    chunk: &ChunkWork<'_>,
    schema: &TableSchema,
    groups: &[u32],
    refs: &[u64],
    blocks: &mut Vec<ColBuf>,
) -> Result<(Vec<u64>, Vec<bool>), CatalogError> {
    // Where each row group starts in file order.
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut position = 0;
    while position < groups.len() {
        next.insert(groups[position], position as u32);
        let group = groups[position];
        while position < groups.len() && groups[position] == group {
            position += 1;
        }
    }
    // Slots: each buffer's rows, in its own order, fill its row groups' blocks.
    let mut slots: Vec<Vec<u32>> = Vec::with_capacity(chunk.buffers.len());
    for buffer in &chunk.buffers {
        let mut mine = Vec::with_capacity(buffer.rows());
        for group in &buffer.groups {
            let slot = next.get_mut(group).ok_or_else(|| {
                CatalogError::Load(format!("chunk {}: row group lost", chunk.chunk_id))
            })?;
            mine.push(*slot);
            *slot += 1;
        }
        slots.push(mine);
    }
    let final_slots: Vec<u64> = refs
        .iter()
        .map(|&packed| {
            let (source, index) = ((packed >> 48) as usize, (packed & ((1 << 48) - 1)) as usize);
            row_ref(0, slots[source][index] as usize)
        })
        .collect();
    let slot_refs: Vec<&[u32]> = slots.iter().map(Vec::as_slice).collect();
    blocks.truncate(schema.columns.len());
    while blocks.len() < schema.columns.len() {
        blocks.push(ColBuf::new(schema.columns[blocks.len()].column_type));
    }
    let staged = schema
        .columns
        .iter()
        .zip(blocks.iter_mut())
        .enumerate()
        .map(|(column, (def, block))| {
            let sources: Vec<&ColBuf> = chunk.buffers.iter().map(|b| &b.columns[column]).collect();
            colbuf::scatter_sources(def.column_type, &sources, &slot_refs, groups.len(), block)
        })
        .collect();
    Ok((final_slots, staged))
}

/// Merges and encodes one chunk; its file image is left in `scratch.file`.
fn encode_chunk(
    chunk: &ChunkWork<'_>,
    schema: &TableSchema,
    writer_options: &WriterOptions,
    replicated: bool,
    window_bytes: u64,
    scratch: &mut WriterScratch,
) -> Result<WriteStats, CatalogError> {
    let fail = |message: String| CatalogError::Load(format!("chunk {}: {message}", chunk.chunk_id));
    let runs: Vec<SortedKeys> = chunk
        .spilled
        .iter()
        .map(|segment| segment.read_keys())
        .collect::<Result<_, _>>()?;
    let (mut groups, mut refs) = merge_chunk(chunk, &runs);
    if replicated {
        for (position, group) in groups.iter_mut().enumerate() {
            *group = (position / REPLICATED_ROWS_PER_GROUP) as u32;
        }
    }
    let total_rows = groups.len().max(1) as u64;
    let row_bytes = (chunk.bytes / total_rows).max(1);
    let window_rows = (window_bytes / row_bytes).max(1) as usize;
    let file_chunk_id =
        u32::try_from(chunk.chunk_id).map_err(|_| fail("negative chunk id".to_string()))?;
    let mut writer = ChunkWriter::new(schema.clone(), file_chunk_id, *writer_options)
        .map_err(|e| fail(e.to_string()))?;
    let first_run = chunk.buffers.len();
    let mut run_cursor = vec![0usize; chunk.spilled.len()];
    let mut start = 0;
    while start < groups.len() {
        // A window of whole row groups, at least one.
        let mut end = start;
        while end < groups.len() && (end == start || end - start < window_rows) {
            let group = groups[end];
            while end < groups.len() && groups[end] == group {
                end += 1;
            }
        }
        // Read the window's rows of every run.
        let mut counts = vec![0usize; chunk.spilled.len()];
        for &packed in &refs[start..end] {
            let source = (packed >> 48) as usize;
            if source >= first_run {
                counts[source - first_run] += 1;
            }
        }
        let mut loaded: Vec<Vec<ColBuf>> = Vec::with_capacity(chunk.spilled.len());
        for (run, segment) in chunk.spilled.iter().enumerate() {
            let range = run_cursor[run]..run_cursor[run] + counts[run];
            let columns = if range.is_empty() {
                Vec::new()
            } else {
                (0..schema.columns.len())
                    .map(|column| segment.read_column(column, range.clone()))
                    .collect::<Result<_, _>>()?
            };
            loaded.push(columns);
        }
        for packed in &mut refs[start..end] {
            let source = (*packed >> 48) as usize;
            if source >= first_run {
                let index = (*packed & ((1 << 48) - 1)) as usize - run_cursor[source - first_run];
                *packed = row_ref(source, index);
            }
        }
        for (run, count) in counts.iter().enumerate() {
            run_cursor[run] += count;
        }
        // Rows of the buffers are reached in two cache-friendly passes when
        // the window holds all of them: scatter each buffer, in its own
        // order, into per-row-group blocks; then gather each row group from
        // its block. (A direct gather jumps over the whole chunk per row.)
        let staged = if chunk.spilled.is_empty() && !replicated && start == 0 && end == groups.len()
        {
            Some(stage(chunk, schema, &groups, &refs, &mut scratch.blocks)?)
        } else {
            None
        };
        let mut group_start = start;
        while group_start < end {
            let group = groups[group_start];
            let mut group_end = group_start;
            while group_end < end && groups[group_end] == group {
                group_end += 1;
            }
            let group_refs = &refs[group_start..group_end];
            let mut columns: Vec<ColumnData> = Vec::with_capacity(schema.columns.len());
            for (column, def) in schema.columns.iter().enumerate() {
                if let Some((final_slots, is_staged)) = &staged
                    && is_staged[column]
                {
                    let slots = &final_slots[group_start..group_end];
                    let block = &scratch.blocks[column];
                    columns.push(gather_column(def.column_type, &[block], slots).map_err(fail)?);
                    continue;
                }
                let empty = ColBuf::new(def.column_type);
                let sources: Vec<&ColBuf> = chunk
                    .buffers
                    .iter()
                    .map(|buffer| &buffer.columns[column])
                    .chain(
                        loaded
                            .iter()
                            .map(|columns| columns.get(column).unwrap_or(&empty)),
                    )
                    .collect();
                columns.push(gather_column(def.column_type, &sources, group_refs).map_err(fail)?);
            }
            let (sub_chunk_id, overlap) = if replicated {
                (group, false)
            } else {
                (group & !place::OVERLAP_BIT, group & place::OVERLAP_BIT != 0)
            };
            writer
                .add_row_group(sub_chunk_id, overlap, &columns)
                .map_err(|e| fail(format!("sub-chunk {sub_chunk_id}: {e}")))?;
            group_start = group_end;
        }
        start = end;
    }
    scratch.file.clear();
    writer
        .finish(&mut scratch.file)
        .map_err(|e| fail(e.to_string()))
}

/// Finishes `writer` and writes the chunk file at `path` atomically
/// (temporary sibling, fsync, rename, fsync of the directory), through
/// `buffer` (reused between files). The one place chunk files are written.
pub fn write_chunk_file(
    path: &Path,
    writer: ChunkWriter,
    buffer: &mut Vec<u8>,
) -> Result<WriteStats, String> {
    buffer.clear();
    let stats = writer
        .finish(buffer)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    write_file_direct(path, buffer, &mut Vec::new(), false)?;
    Ok(stats)
}

/// Buffers a chunk-encoding thread reuses from one chunk to the next (fresh
/// pages are slow to come by on this VM: shared/MEASURED.md).
#[derive(Default)]
struct WriterScratch {
    file: Vec<u8>,
    blocks: Vec<ColBuf>,
}

/// Alignment and size unit of O_DIRECT writes.
const DIRECT_ALIGN: usize = 4096;
/// Bytes per O_DIRECT write.
const DIRECT_PIECE: usize = 4 << 20;

/// Writes `bytes` as the file `path` atomically, with O_DIRECT when
/// `direct` and the file system allows it: the machine hands out page-cache
/// pages slowly (shared/MEASURED.md: ~2 CPU-s per GiB of fresh pages), and a
/// bulk load's output is not read back soon. Falls back to buffered writes.
fn write_file_direct(
    path: &Path,
    bytes: &[u8],
    storage: &mut Vec<u8>,
    direct: bool,
) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("skyscan-tmp");
    let shown = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let opened = if direct {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&tmp)
    } else {
        Err(std::io::Error::other("buffered writes asked for"))
    };
    let result = match opened {
        Ok(mut file) => {
            // An aligned window inside an over-allocated vector: no unsafe.
            storage.resize(DIRECT_PIECE + DIRECT_ALIGN, 0);
            let skip = storage.as_ptr().align_offset(DIRECT_ALIGN);
            let aligned = &mut storage[skip..skip + DIRECT_PIECE];
            let mut written = 0;
            let mut outcome = Ok(());
            while written < bytes.len() {
                let piece = (bytes.len() - written).min(DIRECT_PIECE);
                aligned[..piece].copy_from_slice(&bytes[written..written + piece]);
                let padded = piece.next_multiple_of(DIRECT_ALIGN);
                aligned[piece..padded].fill(0);
                if let Err(e) = file.write_all(&aligned[..padded]) {
                    outcome = Err(shown(e));
                    break;
                }
                written += piece;
            }
            outcome
                .and_then(|()| file.set_len(bytes.len() as u64).map_err(shown))
                .and_then(|()| file.sync_all().map_err(shown))
        }
        Err(_) => std::fs::File::create(&tmp)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            })
            .map_err(shown),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    Ok(())
}
