//! `skyscan-bench scan`: shared scans (issue 5 figures) on a generated
//! Object table, in one run:
//!
//! * T(K)/T(1) for K = 1, 4, 16, 64 different full-scan queries submitted
//!   together to the convoys, hot and (with `--cold`) cold;
//! * a cold full scan's bytes/s against a raw sequential `O_DIRECT` read of
//!   the same bytes;
//! * a hot single scan through the convoy against the plain path;
//! * objectId lookups (director index + one row group) alone and with 16
//!   scans running: p50/p99;
//! * peak RSS during the scans against the memory budget.
//!
//! The queries are this file's own aggregate tasks (count and sum of values
//! above a threshold per column, different columns and thresholds per
//! query), not SQL: the SQL layer and the DuckDB comparison come with the
//! query engine.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::director::DirectorIndex;
use skyscan_engine::scan::{EngineConfig, PlainOptions, QueryOptions, ScanEngine, run_plain};
use skyscan_engine::storage::{
    AlignedBuf, ChunkMeta, ChunkTask, ColumnWant, MemoryConfig, MlockPolicy, ReadPlan, ReadRanges,
    RowGroupBatch, ScanQuery, StorageConfig, StorageError, TableHandle,
};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_format::{ColumnData, RowGroupSet};

/// Options of `skyscan-bench scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Object rows (the figures use 20 M).
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Objects per square degree (sets the chunk count).
    #[arg(long, default_value_t = 200_000.0)]
    density: f64,
    /// Database directory: reused when it holds `bench.Object`, else created
    /// and kept (default: a scratch directory removed at the end).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Numbers of concurrent queries.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    k: Vec<usize>,
    /// Also cold runs: drops the page cache before each (needs root).
    #[arg(long)]
    cold: bool,
    /// Read-buffer budget of the scan engine, MiB.
    #[arg(long, default_value_t = 2048)]
    budget_mib: u64,
    /// objectId lookups per latency measurement.
    #[arg(long, default_value_t = 300)]
    lookups: usize,
    /// Nice value of the convoy threads (the engine's default is 10, which
    /// lets interactive queries go first; on a machine shared with other
    /// work, niced threads also yield to it).
    #[arg(long, default_value_t = 10)]
    nice: i32,
    /// Largest K for which the queries are also run one after another.
    #[arg(long, default_value_t = 16)]
    max_sequential_k: usize,
}

/// Aggregates of one query.
#[derive(Debug, Default, Clone, PartialEq)]
struct Agg {
    rows: u64,
    count: u64,
    sum: f64,
}

impl Agg {
    fn add(&mut self, other: &Agg) {
        self.rows += other.rows;
        self.count += other.count;
        self.sum += other.sum;
    }
}

/// Count and sum of the values above `threshold`, nulls excluded. Eight
/// independent accumulators so the additions are not one dependency chain.
fn count_sum_above<T: Copy + Into<f64> + PartialOrd>(
    values: &[T],
    valid: Option<&[u64]>,
    threshold: T,
) -> (u64, f64) {
    let mut counts = [0u64; 8];
    let mut sums = [0f64; 8];
    match valid {
        None => {
            let mut lanes = values.chunks_exact(8);
            for lane in &mut lanes {
                for k in 0..8 {
                    let hit = lane[k] > threshold;
                    counts[k] += u64::from(hit);
                    sums[k] += if hit { lane[k].into() } else { 0.0 };
                }
            }
            for (k, &value) in lanes.remainder().iter().enumerate() {
                let hit = value > threshold;
                counts[k] += u64::from(hit);
                sums[k] += if hit { value.into() } else { 0.0 };
            }
        }
        Some(words) => {
            for (row, &value) in values.iter().enumerate() {
                let present = (words[row / 64] >> (row % 64)) & 1 == 1;
                let hit = present & (value > threshold);
                counts[row % 8] += u64::from(hit);
                sums[row % 8] += if hit { value.into() } else { 0.0 };
            }
        }
    }
    (counts.iter().sum(), sums.iter().sum())
}

fn count_sum_above_f32(values: &[f32], valid: Option<&[u64]>, threshold: f32) -> (u64, f64) {
    count_sum_above(values, valid, threshold)
}

fn count_sum_above_f64(values: &[f64], valid: Option<&[u64]>, threshold: f64) -> (u64, f64) {
    count_sum_above(values, valid, threshold)
}

/// As [`count_sum_above_f32`] for integers.
fn count_sum_above_int<T: Copy + Into<i64>>(values: &[T], threshold: i64) -> (u64, f64) {
    let mut count = 0u64;
    let mut sum = 0i64;
    for &value in values {
        let value: i64 = value.into();
        let hit = value > threshold;
        count += u64::from(hit);
        sum = sum.wrapping_add(if hit { value >> 16 } else { 0 });
    }
    (count, sum as f64)
}

fn aggregate(column: &ColumnData, threshold: f64) -> (u64, f64) {
    let words = column.validity().map(|v| v.words());
    match column {
        ColumnData::F32(c) => count_sum_above_f32(&c.values, words, threshold as f32),
        ColumnData::F64(c) => count_sum_above_f64(&c.values, words, threshold),
        ColumnData::I8(c) => count_sum_above_int(&c.values, threshold as i64),
        ColumnData::I16(c) => count_sum_above_int(&c.values, threshold as i64),
        ColumnData::I32(c) => count_sum_above_int(&c.values, threshold as i64),
        ColumnData::I64(c) => count_sum_above_int(&c.values, threshold as i64),
        ColumnData::Bool(c) => (c.values.count_ones() as u64, 0.0),
        ColumnData::Utf8(c) | ColumnData::Binary(c) => (c.len() as u64, c.data.len() as f64),
    }
}

/// A full scan aggregating `columns` with per-column thresholds.
struct AggQuery {
    tables: Vec<TableHandle>,
    chunks: Vec<i32>,
    columns: Vec<usize>,
    thresholds: Vec<f64>,
    total: Mutex<Agg>,
}

struct AggTask {
    columns: Vec<usize>,
    thresholds: Vec<f64>,
    agg: Agg,
}

impl ChunkTask for AggTask {
    fn plan(&mut self, _table: usize, meta: &ChunkMeta) -> Result<ReadPlan, StorageError> {
        Ok(ReadPlan::own(&meta.footer, self.columns.clone()))
    }

    fn row_group(&mut self, _table: usize, batch: &RowGroupBatch<'_>) -> Result<(), StorageError> {
        self.agg.rows += batch.row_count() as u64;
        for (&column, &threshold) in self.columns.iter().zip(&self.thresholds) {
            let (count, sum) = aggregate(batch.column(column)?, threshold);
            self.agg.count += count;
            self.agg.sum += sum;
        }
        Ok(())
    }
}

impl ScanQuery for AggQuery {
    fn tables(&self) -> &[TableHandle] {
        &self.tables
    }

    fn chunks(&self) -> &[i32] {
        &self.chunks
    }

    fn new_task(&self, _chunk_id: i32) -> Result<Box<dyn ChunkTask>, StorageError> {
        Ok(Box::new(AggTask {
            columns: self.columns.clone(),
            thresholds: self.thresholds.clone(),
            agg: Agg::default(),
        }))
    }

    fn finish_task(&self, _chunk_id: i32, task: Box<dyn ChunkTask>) -> Result<(), StorageError> {
        let task: Box<dyn std::any::Any> = task;
        let task = task
            .downcast::<AggTask>()
            .map_err(|_| StorageError::task("not an AggTask"))?;
        match self.total.lock() {
            Ok(mut total) => total.add(&task.agg),
            Err(poisoned) => poisoned.into_inner().add(&task.agg),
        }
        Ok(())
    }
}

impl AggQuery {
    /// Query number `index`: 1–4 columns and thresholds that differ per query.
    fn new(table: &TableHandle, index: usize, columns: usize) -> AggQuery {
        let mut picked: Vec<usize> = (0..1 + index % 4)
            .map(|k| (index * 7 + k * 11 + 3) % columns)
            .collect();
        picked.sort_unstable();
        picked.dedup();
        AggQuery::with_columns(table, picked, index)
    }

    fn with_columns(table: &TableHandle, columns: Vec<usize>, index: usize) -> AggQuery {
        let thresholds = columns
            .iter()
            .map(|&c| ((index * 31 + c * 17) % 100) as f64 - 20.0)
            .collect();
        AggQuery {
            tables: vec![table.clone()],
            chunks: table.entry().chunks.iter().map(|c| c.chunk_id).collect(),
            columns,
            thresholds,
            total: Mutex::new(Agg::default()),
        }
    }

    fn total(&self) -> Agg {
        match self.total.lock() {
            Ok(total) => total.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A single-object lookup: the row group of the object's sub-chunk.
struct LookupQuery {
    tables: Vec<TableHandle>,
    chunks: Vec<i32>,
    sub_chunk_id: u32,
    object_id: i64,
    found: Mutex<u64>,
}

struct LookupTask {
    sub_chunk_id: u32,
    object_id: i64,
    found: u64,
}

impl ChunkTask for LookupTask {
    fn plan(&mut self, _table: usize, meta: &ChunkMeta) -> Result<ReadPlan, StorageError> {
        let row_groups = meta
            .footer
            .row_group_indices(RowGroupSet::Own)
            .filter(|&rg| meta.footer.row_groups()[rg].sub_chunk_id == self.sub_chunk_id)
            .collect();
        Ok(ReadPlan {
            columns: vec![0, 1, 2, 10],
            row_groups,
            coalesce: false,
        })
    }

    fn row_group(&mut self, _table: usize, batch: &RowGroupBatch<'_>) -> Result<(), StorageError> {
        if let ColumnData::I64(ids) = batch.column(0)? {
            self.found += ids
                .values
                .iter()
                .filter(|&&id| id == self.object_id)
                .count() as u64;
        }
        Ok(())
    }
}

impl ScanQuery for LookupQuery {
    fn tables(&self) -> &[TableHandle] {
        &self.tables
    }

    fn chunks(&self) -> &[i32] {
        &self.chunks
    }

    fn new_task(&self, _chunk_id: i32) -> Result<Box<dyn ChunkTask>, StorageError> {
        Ok(Box::new(LookupTask {
            sub_chunk_id: self.sub_chunk_id,
            object_id: self.object_id,
            found: 0,
        }))
    }

    fn finish_task(&self, _chunk_id: i32, task: Box<dyn ChunkTask>) -> Result<(), StorageError> {
        let task: Box<dyn std::any::Any> = task;
        let task = task
            .downcast::<LookupTask>()
            .map_err(|_| StorageError::task("not a LookupTask"))?;
        match self.found.lock() {
            Ok(mut found) => *found += task.found,
            Err(poisoned) => *poisoned.into_inner() += task.found,
        }
        Ok(())
    }
}

fn drop_caches() -> Result<(), String> {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .map_err(|e| format!("--cold needs root to drop caches: {e}"))
}

/// Peak resident set (VmHWM) and current RSS, bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5\n");
}

fn open_or_load(args: &ScanArgs, dir: &Path) -> Result<Database, String> {
    if dir.join("CURRENT").exists() {
        let db = Database::open(dir).map_err(|e| e.to_string())?;
        if db.catalog().table("bench", "Object").is_some() {
            eprintln!("using the existing database at {}", dir.display());
            return Ok(db);
        }
    }
    let db = Database::create(dir, &[]).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let spec = ObjectSpec::with_density(args.rows, args.density, 42);
    let table = generate_objects(&spec, 2).into_table()?;
    let def = TableDef::director(
        &table.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        15,
    );
    load_table_in_memory(&db, "bench", def, &table, &LoadOptions::default())
        .map_err(|e| e.to_string())?;
    eprintln!(
        "generated and loaded {} rows in {:.1} s",
        args.rows,
        started.elapsed().as_secs_f64()
    );
    Ok(db)
}

/// Wall time of `queries` submitted together to `engine`.
fn run_together(engine: &ScanEngine, queries: &[Arc<AggQuery>]) -> Result<Duration, String> {
    let started = Instant::now();
    let handles = queries
        .iter()
        .map(|q| engine.submit(q.clone(), QueryOptions::default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for handle in handles {
        handle.wait().map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

fn bytes_read(engine: &ScanEngine) -> u64 {
    engine.status().convoys.iter().map(|c| c.bytes_read).sum()
}

/// Raw sequential O_DIRECT read (4 MiB requests, one in flight) of the
/// ranges a full scan of `columns` reads: the disk's rate for those bytes.
fn raw_direct_read(
    db: &Database,
    table: &TableHandle,
    columns: &[usize],
) -> Result<(u64, Duration), String> {
    let mut buf = AlignedBuf::new(4 << 20).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    let mut elapsed = Duration::ZERO;
    let _ = db;
    for chunk in &table.entry().chunks {
        let location = table
            .chunk_location(chunk.chunk_id)
            .map_err(|e| e.to_string())?
            .ok_or("chunk without a file")?;
        let footer = skyscan_engine::catalog::inspect::read_footer(&location.path)
            .map_err(|e| e.to_string())?;
        let wants: Vec<ColumnWant> = columns
            .iter()
            .map(|&column| ColumnWant {
                column,
                row_groups: footer.row_group_indices(RowGroupSet::Own).collect(),
            })
            .collect();
        let ranges =
            ReadRanges::plan(&footer, &wants, Default::default()).map_err(|e| e.to_string())?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&location.path)
            .map_err(|e| format!("{}: {e}", location.path.display()))?;
        let started = Instant::now();
        for &(offset, len) in &ranges.ranges {
            let mut done = 0u64;
            while done < len {
                let piece = (len - done).min(buf.capacity() as u64) as usize;
                let n = std::os::unix::fs::FileExt::read_at(
                    &file,
                    &mut buf.as_mut_slice()[..piece],
                    offset + done,
                )
                .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                done += n as u64;
                total += n as u64;
            }
        }
        elapsed += started.elapsed();
    }
    Ok((total, elapsed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Latencies of `count` objectId lookups through the engine.
fn lookups(
    engine: &ScanEngine,
    table: &TableHandle,
    index: &DirectorIndex,
    ids: &[i64],
    count: usize,
) -> Result<Vec<Duration>, String> {
    let mut latencies = Vec::with_capacity(count);
    for k in 0..count {
        let object_id = ids[(k * 7919) % ids.len()];
        let started = Instant::now();
        let (chunk_id, sub) = index
            .lookup(object_id)
            .map_err(|e| e.to_string())?
            .ok_or("id not in the director index")?;
        let query = Arc::new(LookupQuery {
            tables: vec![table.clone()],
            chunks: vec![chunk_id],
            sub_chunk_id: sub as u32,
            object_id,
            found: Mutex::new(0),
        });
        engine
            .run(query.clone(), QueryOptions::default())
            .map_err(|e| e.to_string())?;
        latencies.push(started.elapsed());
        let found = *query.found.lock().map_err(|_| "poisoned")?;
        if found != 1 {
            return Err(format!("object {object_id}: found {found} rows"));
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// Runs the benchmark.
pub fn run(args: &ScanArgs) -> Result<(), String> {
    let scratch = args.db.is_none();
    let dir = args
        .db
        .clone()
        .unwrap_or_else(|| crate::scratch_dir("scan"));
    let db = open_or_load(args, &dir)?;
    let table = TableHandle::new(&db, "bench", "Object").map_err(|e| e.to_string())?;
    let columns = table.entry().columns.len();
    let all_columns: Vec<usize> = (0..columns).collect();
    println!(
        "# scan benchmark: {} rows, {} chunks, {:.2} GB of chunk files; noisy shared machine",
        table.entry().rows,
        table.entry().chunks.len(),
        table.entry().bytes as f64 / 1e9
    );
    let budget = args.budget_mib << 20;
    let engine = ScanEngine::new(EngineConfig {
        storage: StorageConfig {
            memory: MemoryConfig {
                budget_bytes: budget,
                mlock: MlockPolicy::Try,
            },
            // The figures are the streaming path's (O_DIRECT into pinned
            // buffers): the path of tables too large for the page cache.
            cache_tables_up_to: 0,
            ..StorageConfig::default()
        },
        // A small table has fewer chunks than Qserv's interactive threshold
        // (10): single-chunk lookups stay interactive, every scan here goes
        // to the convoys.
        interactive_max_chunks: 2,
        convoy_nice: args.nice,
        ..EngineConfig::default()
    });
    println!("# backend: {}", engine.storage().backend_report());
    let (_, rss_before) = rss();
    reset_peak_rss();

    // Hot single scan: convoy against the plain path (both warm).
    let wide = Arc::new(AggQuery::with_columns(&table, all_columns.clone(), 0));
    run_together(&engine, std::slice::from_ref(&wide))?;
    let convoy_hot = run_together(&engine, std::slice::from_ref(&wide))?;
    let plain = AggQuery::with_columns(&table, all_columns.clone(), 0);
    let started = Instant::now();
    run_plain(engine.storage(), &plain, &PlainOptions::default()).map_err(|e| e.to_string())?;
    let plain_hot = started.elapsed();
    let check_a = plain.total();
    let check_b = wide.total();
    if check_a.rows * 2 != check_b.rows || check_a.count * 2 != check_b.count {
        return Err(format!(
            "convoy and plain path disagree: {check_a:?} vs {check_b:?} (x2)"
        ));
    }
    println!(
        "hot single full scan (all {columns} columns): convoy {:.3} s, plain path {:.3} s, ratio {:.2}",
        convoy_hot.as_secs_f64(),
        plain_hot.as_secs_f64(),
        convoy_hot.as_secs_f64() / plain_hot.as_secs_f64()
    );

    // Shared scans. T(1) is query 0 alone; the union scan is one query
    // aggregating every column the K queries read (the same bytes read and
    // decoded once, one task): T(K)/T(union) is the cost of the K tasks and
    // the sharing itself; "one by one" runs the K queries sequentially.
    for (mode, cold) in [("hot", false), ("cold", true)] {
        if cold && !args.cold {
            continue;
        }
        let mut t1 = None;
        for &k in &args.k {
            let queries: Vec<Arc<AggQuery>> = (0..k)
                .map(|i| Arc::new(AggQuery::new(&table, i, columns)))
                .collect();
            let mut union: Vec<usize> = queries.iter().flat_map(|q| q.columns.clone()).collect();
            union.sort_unstable();
            union.dedup();
            let union_query = Arc::new(AggQuery::with_columns(&table, union.clone(), 0));
            let prepare = |engine: &ScanEngine, queries: &[Arc<AggQuery>]| -> Result<(), String> {
                if cold {
                    drop_caches()
                } else {
                    run_together(engine, queries).map(|_| ())
                }
            };
            prepare(&engine, &queries)?;
            let before = bytes_read(&engine);
            let wall = run_together(&engine, &queries)?;
            let read = bytes_read(&engine) - before;
            prepare(&engine, std::slice::from_ref(&union_query))?;
            let union_wall = run_together(&engine, std::slice::from_ref(&union_query))?;
            let mut sequential = None;
            if k <= args.max_sequential_k {
                let mut total = Duration::ZERO;
                for query in &queries {
                    prepare(&engine, std::slice::from_ref(query))?;
                    total += run_together(&engine, std::slice::from_ref(query))?;
                }
                sequential = Some(total);
            }
            let base = *t1.get_or_insert(wall);
            println!(
                "shared scans {mode}: K = {k:>2}: T(K) = {:.3} s, T(K)/T(1) = {:.2}; {} columns, {:.0} MB read; one query over the union {:.3} s, T(K)/T(union) = {:.2}; one by one {}",
                wall.as_secs_f64(),
                wall.as_secs_f64() / base.as_secs_f64(),
                union.len(),
                read as f64 / 1e6,
                union_wall.as_secs_f64(),
                wall.as_secs_f64() / union_wall.as_secs_f64(),
                sequential.map_or("-".to_string(), |t| format!(
                    "{:.3} s ({:.1}x T(K))",
                    t.as_secs_f64(),
                    t.as_secs_f64() / wall.as_secs_f64()
                )),
            );
        }
    }

    // Cold full scan against raw O_DIRECT.
    if args.cold {
        drop_caches()?;
        let (raw_bytes, raw_time) = raw_direct_read(&db, &table, &all_columns)?;
        drop_caches()?;
        let before = bytes_read(&engine);
        let full = Arc::new(AggQuery::with_columns(&table, all_columns.clone(), 1));
        let wall = run_together(&engine, std::slice::from_ref(&full))?;
        let read = bytes_read(&engine) - before;
        let raw_rate = raw_bytes as f64 / raw_time.as_secs_f64();
        let scan_rate = read as f64 / wall.as_secs_f64();
        println!(
            "cold full scan: {:.0} MB in {:.3} s = {:.2} GB/s; raw O_DIRECT sequential read of the same ranges: {:.2} GB/s; ratio {:.0}%",
            read as f64 / 1e6,
            wall.as_secs_f64(),
            scan_rate / 1e9,
            raw_rate / 1e9,
            100.0 * scan_rate / raw_rate
        );
    }

    // Interactive lookups alone and under 16 scans.
    if let Some(index_entry) = &table.entry().director_index {
        let path = db
            .table_file(table.entry(), index_entry.spindle, &index_entry.file)
            .map_err(|e| e.to_string())?;
        let index = DirectorIndex::open(&path).map_err(|e| e.to_string())?;
        let ids: Vec<i64> = index
            .range(..)
            .step_by(997)
            .filter_map(|entry| entry.ok().map(|e| e.object_id))
            .collect();
        if ids.is_empty() {
            return Err("no ids in the director index".to_string());
        }
        let alone = lookups(&engine, &table, &index, &ids, args.lookups)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let stop_background = Arc::clone(&stop);
            let queries: Vec<Arc<AggQuery>> = (0..16)
                .map(|i| Arc::new(AggQuery::new(&table, i, columns)))
                .collect();
            let engine_ref = &engine;
            std::thread::scope(|scope| {
                let background = scope.spawn(move || {
                    let mut rounds = 0u64;
                    while !stop_background.load(std::sync::atomic::Ordering::Relaxed) {
                        if run_together(engine_ref, &queries).is_err() {
                            break;
                        }
                        rounds += 1;
                    }
                    rounds
                });
                std::thread::sleep(Duration::from_millis(200));
                let loaded = lookups(engine_ref, &table, &index, &ids, args.lookups);
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let rounds = background.join().unwrap_or(0);
                loaded.map(|l| (l, rounds))
            })?
        };
        let (loaded, rounds) = load;
        let p = |v: &[Duration], q: f64| percentile(v, q).as_secs_f64() * 1e3;
        println!(
            "objectId lookups ({} each): alone p50 {:.3} ms p99 {:.3} ms; with 16 scans running ({} rounds) p50 {:.3} ms p99 {:.3} ms; p99 ratio {:.2}",
            args.lookups,
            p(&alone, 0.5),
            p(&alone, 0.99),
            rounds,
            p(&loaded, 0.5),
            p(&loaded, 0.99),
            p(&loaded, 0.99) / p(&alone, 0.99).max(1e-9)
        );
    }

    let (peak, _) = rss();
    let memory = engine.status().memory;
    println!(
        "memory: peak RSS during scans {:.0} MB above the {:.0} MB before; read-buffer peak {:.0} MB; budget {:.0} MB; mlock {:?}",
        peak.saturating_sub(rss_before) as f64 / 1e6,
        rss_before as f64 / 1e6,
        memory.peak_bytes as f64 / 1e6,
        budget as f64 / 1e6,
        memory.mlock
    );
    drop(engine);
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
