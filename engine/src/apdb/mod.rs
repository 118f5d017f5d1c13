//! The live alert-production catalog (APDB; BRIEF §5, DMTN-018, LDM-135
//! §4.1): DiaObject, DiaSource and DiaForcedSource, written once per visit
//! and read back by region and time.
//!
//! * **Schema** from the felis YAML of `lsst-dax-apdb` ([`schema`]).
//! * **Storage**: every table is cut into time partitions of
//!   [`PARTITION_DAYS`] (by `midpointMjdTai`, DiaObject by
//!   `validityStartMjdTai`); inside a partition rows are kept in spatial
//!   order (sky chunk, sub-chunk and id of the `Chunker(85, 12)`). Recent
//!   visits live in memory as sorted runs, logged in a write-ahead log;
//!   a background step writes them as chunk files (SPEC.md part 1) and merges
//!   the runs of a closed partition into one ([`compact`]).
//! * **Versioning**: DiaObject rows are never rewritten. The end of a
//!   version's validity is the start of the next version of the same object
//!   (or an explicit close), kept in an in-memory version index and filled
//!   into `validityEndMjdTai` when rows are read.
//! * **Durability**: [`Apdb::store`] returns once its visit is in the log
//!   and fsynced (group commit); readers see only durable visits, whole.
//! * **Reads** take a consistent snapshot: a prefix of the stored visits.
//!
//! SPEC.md part 4 specifies every byte written here. See `docs/apdb.md`.

pub mod compact;
pub mod error;
pub mod read;
pub mod replica;
pub mod rows;
pub mod schema;
pub mod segment;
pub mod store;
pub mod wal;
pub mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use skyscan_format::{ColumnType, TableSchema};
use skyscan_sky::Chunker;

pub use error::{ApdbError, Result};
pub use read::{ApdbReader, ResultSet, circle, polygon};
pub use replica::{LogBatch, ReplicaStatus};
pub use schema::{FelisSchema, FelisTable, felis_type};
pub use store::{StoreReceipt, StoreRequest};

use crate::table::Table;
use segment::Segment;
use wal::WalWriter;

/// A hasher for i64 ids (splitmix64's finalizer): the id maps and sets of
/// the hot paths do millions of lookups per visit, and SipHash's DoS
/// resistance buys nothing for ids the pipeline assigns.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_i64(&mut self, value: i64) {
        let mut x = self.0 ^ (value as u64);
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        self.0 = x;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`IdHasher`]s.
pub type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;
/// A map keyed by i64 ids.
pub type IdMap<V> = HashMap<i64, V, IdBuildHasher>;
/// A set of i64 ids.
pub type IdSet = HashSet<i64, IdBuildHasher>;

/// Days of one time partition (DMTN-018: monthly partitions).
pub const PARTITION_DAYS: f64 = 30.0;

/// Stripes of the pixelization inside a partition (Qserv's usual setting).
pub const APDB_STRIPES: u32 = 85;
/// Sub-stripes per stripe of the pixelization inside a partition.
pub const APDB_SUB_STRIPES: u32 = 12;

/// Most rows of one table in one `store`.
pub const MAX_ROWS_PER_STORE: usize = 4_000_000;
/// Most (visit, detector) pairs of one `store`.
pub const MAX_VISIT_DETECTORS_PER_STORE: usize = 10_000;
/// Most ids in one `get_dia_sources` / `reassign_dia_sources` call.
pub const MAX_IDS_PER_CALL: usize = 10_000_000;

/// The time partition of an MJD: `floor(mjd / 30)`.
pub fn partition_of(mjd: f64) -> i64 {
    (mjd / PARTITION_DAYS).floor() as i64
}

/// First MJD of partition `p`.
pub fn partition_start(p: i64) -> f64 {
    p as f64 * PARTITION_DAYS
}

/// The three live tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApdbTable {
    /// Versioned objects.
    DiaObject = 0,
    /// Detections on difference images.
    DiaSource = 1,
    /// Forced photometry at object positions.
    DiaForcedSource = 2,
}

impl ApdbTable {
    /// All three, in storage order.
    pub const ALL: [ApdbTable; 3] = [
        ApdbTable::DiaObject,
        ApdbTable::DiaSource,
        ApdbTable::DiaForcedSource,
    ];

    /// The felis table name.
    pub fn name(self) -> &'static str {
        match self {
            ApdbTable::DiaObject => "DiaObject",
            ApdbTable::DiaSource => "DiaSource",
            ApdbTable::DiaForcedSource => "DiaForcedSource",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where the columns the APDB itself uses are, per table.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// The table's schema (felis order).
    pub schema: TableSchema,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// `ra`, degrees.
    pub ra: usize,
    /// `dec`, degrees.
    pub dec: usize,
    /// The partitioning time: `validityStartMjdTai` or `midpointMjdTai`.
    pub time: usize,
    /// The row id: `diaObjectId`, `diaSourceId`, `diaForcedSourceId`.
    pub id: usize,
    /// `diaObjectId` (the same as `id` for DiaObject).
    pub object_id: usize,
    /// `visit` (sources only).
    pub visit: Option<usize>,
    /// `detector` (sources only).
    pub detector: Option<usize>,
}

/// The schema the APDB runs on and the positions of its key columns.
#[derive(Debug, Clone)]
pub struct ApdbLayout {
    /// DiaObject, DiaSource, DiaForcedSource.
    pub tables: [TableLayout; 3],
    /// DiaObject `validityEndMjdTai`.
    pub validity_end: usize,
    /// DiaObject `nDiaSources`.
    pub n_dia_sources: usize,
    /// DiaSource `ssObjectId`.
    pub ss_object_id: usize,
    /// DiaSource `ssObjectReassocTimeMjdTai`.
    pub ss_reassoc_time: usize,
    /// The whole felis schema (other tables are not stored by the APDB).
    pub felis: FelisSchema,
}

impl ApdbLayout {
    /// Finds the APDB's columns in a felis schema, checking their types.
    pub fn new(felis: FelisSchema) -> Result<ApdbLayout> {
        fn col(t: &FelisTable, name: &str, want: ColumnType) -> Result<usize> {
            let index = t.schema.column_index(name).ok_or_else(|| {
                ApdbError::Schema(format!("table {} has no column {name}", t.schema.name))
            })?;
            let got = t.schema.columns[index].column_type;
            if got != want {
                return Err(ApdbError::Schema(format!(
                    "{}.{name} is {got:?}, the APDB needs {want:?}",
                    t.schema.name
                )));
            }
            Ok(index)
        }
        let table = |name: &str| {
            felis
                .table(name)
                .cloned()
                .ok_or_else(|| ApdbError::Schema(format!("the schema has no table {name}")))
        };
        let object = table("DiaObject")?;
        let source = table("DiaSource")?;
        let forced = table("DiaForcedSource")?;
        let layout = |t: &FelisTable, time: &str, id: &str, sources: bool| -> Result<TableLayout> {
            Ok(TableLayout {
                schema: t.schema.clone(),
                primary_key: t.primary_key.clone(),
                ra: col(t, "ra", ColumnType::F64)?,
                dec: col(t, "dec", ColumnType::F64)?,
                time: col(t, time, ColumnType::F64)?,
                id: col(t, id, ColumnType::I64)?,
                object_id: col(t, "diaObjectId", ColumnType::I64)?,
                visit: if sources {
                    Some(col(t, "visit", ColumnType::I64)?)
                } else {
                    None
                },
                detector: if sources {
                    Some(col(t, "detector", ColumnType::I16)?)
                } else {
                    None
                },
            })
        };
        let tables = [
            layout(&object, "validityStartMjdTai", "diaObjectId", false)?,
            layout(&source, "midpointMjdTai", "diaSourceId", true)?,
            layout(&forced, "midpointMjdTai", "diaForcedSourceId", true)?,
        ];
        for t in &tables {
            for (name, index) in [("ra", t.ra), ("dec", t.dec), ("time", t.time), ("id", t.id)] {
                if t.schema.columns[index].nullable {
                    return Err(ApdbError::Schema(format!(
                        "{}: the APDB needs its {name} column to be NOT NULL",
                        t.schema.name
                    )));
                }
            }
        }
        let validity_end = col(&object, "validityEndMjdTai", ColumnType::F64)?;
        if !object.schema.columns[validity_end].nullable {
            return Err(ApdbError::Schema(
                "DiaObject.validityEndMjdTai must be nullable (open = NULL)".into(),
            ));
        }
        Ok(ApdbLayout {
            validity_end,
            n_dia_sources: col(&object, "nDiaSources", ColumnType::I32)?,
            ss_object_id: col(&source, "ssObjectId", ColumnType::I64)?,
            ss_reassoc_time: col(&source, "ssObjectReassocTimeMjdTai", ColumnType::F64)?,
            tables,
            felis,
        })
    }

    /// The layout of one table.
    pub fn table(&self, table: ApdbTable) -> &TableLayout {
        &self.tables[table.index()]
    }
}

/// Settings of an APDB.
#[derive(Debug, Clone)]
pub struct ApdbConfig {
    /// `get_dia_objects` returns objects whose latest version started at most
    /// this many days before the latest stored visit (DMTN-018: "may be
    /// limited to DiaObjects produced in the last 12 months"); `None`: all.
    pub object_window_days: Option<f64>,
    /// An open partition's recent rows (all tables) are written out as a
    /// segment once they pass this count.
    pub flush_rows: usize,
    /// A partition is closed (its runs are merged) once a visit this many
    /// days after its end has been stored.
    pub close_grace_days: f64,
    /// Run compaction in a background thread.
    pub background_compaction: bool,
    /// How often the background thread looks for work.
    pub compaction_interval: Duration,
    /// fsync the log at every commit. Off only for measurements of what
    /// durability costs; a crash may then lose acknowledged visits.
    pub fsync: bool,
    /// Most DiaObjects the in-memory version index may hold (~100 bytes
    /// each); a store that would pass it is refused with `Limit`.
    pub max_objects: usize,
    /// Rows held in memory (all partitions and tables) above which a store
    /// first runs a compaction step itself: backpressure when the
    /// background compaction falls behind.
    pub max_recent_rows: usize,
}

impl Default for ApdbConfig {
    fn default() -> Self {
        ApdbConfig {
            object_window_days: Some(365.0),
            flush_rows: 1_000_000,
            close_grace_days: 1.0,
            background_compaction: true,
            compaction_interval: Duration::from_millis(200),
            fsync: true,
            max_objects: 100_000_000,
            max_recent_rows: 20_000_000,
        }
    }
}

/// One visit's rows of one table in one partition, sorted by spatial key
/// then id: the write-optimized in-memory structure.
#[derive(Debug)]
pub struct MemRun {
    /// Sequence number of the log record that brought the rows.
    pub seq: u64,
    /// The rows.
    pub rows: Table,
    /// Spatial key of each row, ascending.
    pub keys: Vec<u64>,
}

/// What one partition of one table holds.
#[derive(Debug, Default, Clone)]
pub struct PartitionView {
    /// Compacted runs on disk.
    pub segments: Vec<Arc<Segment>>,
    /// Recent runs in memory (ascending seq).
    pub recent: Vec<Arc<MemRun>>,
    /// Records with seq up to this are in `segments` (for this partition).
    pub covered_seq: u64,
}

impl PartitionView {
    /// Rows in memory.
    pub fn recent_rows(&self) -> usize {
        self.recent.iter().map(|r| r.rows.rows()).sum()
    }
}

/// A re-association of a DiaSource to a solar-system object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reassoc {
    /// The ssObjectId.
    pub ss_object_id: i64,
    /// When, MJD TAI.
    pub time: f64,
    /// Log record that made it.
    pub seq: u64,
}

/// An immutable view of the database: the visits up to `seq`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Last log record included.
    pub seq: u64,
    /// Latest visit time stored (MJD TAI), 0 when empty.
    pub last_visit_time: f64,
    /// Per table: partition index → contents.
    pub tables: [BTreeMap<i64, Arc<PartitionView>>; 3],
    /// DiaSource re-associations.
    pub reassigned: Arc<IdMap<Reassoc>>,
}

/// One version of a DiaObject in the version index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Version {
    /// validityStartMjdTai.
    pub start: f64,
    /// Log record that stored it (0: from a segment at open).
    pub seq: u64,
    /// Its nDiaSources was 1 (an "unassociated" object, dax_apdb's sense).
    pub single_source: bool,
}

/// All versions of one DiaObject, ascending start, and an explicit close.
#[derive(Debug, Clone, Default)]
pub struct ObjectEntry {
    /// Versions, ascending start.
    pub versions: Vec<Version>,
    /// Closed without a successor (validityEnd, seq).
    pub closed: Option<(f64, u64)>,
}

impl ObjectEntry {
    /// The versions and close visible at snapshot `seq`.
    fn visible(&self, seq: u64) -> (&[Version], Option<f64>) {
        let count = self.versions.iter().take_while(|v| v.seq <= seq).count();
        // Versions are appended in seq order, so the visible ones are a prefix.
        let closed = self.closed.filter(|c| c.1 <= seq).map(|c| c.0);
        (&self.versions[..count], closed)
    }

    /// validityEnd of the version starting at `start`, as of snapshot `seq`:
    /// `Some(None)` open, `Some(Some(end))` closed, `None` no such version.
    pub fn end_of(&self, start: f64, seq: u64) -> Option<Option<f64>> {
        let (versions, closed) = self.visible(seq);
        let position = versions.iter().position(|v| v.start == start)?;
        Some(match versions.get(position + 1) {
            Some(next) => Some(next.start),
            None => closed.filter(|&c| c >= start),
        })
    }
}

/// Writer-side bookkeeping, under the writer lock.
pub(crate) struct WriterState {
    pub(crate) wal: Option<WalWriter>,
    pub(crate) visit_detectors: HashSet<(i64, i16)>,
    pub(crate) max_source_id: i64,
    /// Explicit closes (id, time, seq), for the manifest.
    pub(crate) closes: Vec<(i64, f64, u64)>,
    /// (visit, detector) pairs stored without rows, with seq, for the manifest.
    pub(crate) empty_pairs: Vec<(i64, i16, u64)>,
}

/// Group-commit state.
pub(crate) struct SyncState {
    pub(crate) durable_lsn: u64,
    pub(crate) syncing: bool,
    pub(crate) pending: std::collections::VecDeque<store::Pending>,
    pub(crate) published_seq: u64,
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) layout: ApdbLayout,
    pub(crate) chunker: Chunker,
    pub(crate) config: ApdbConfig,
    pub(crate) read_only: bool,
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    pub(crate) objects: RwLock<IdMap<ObjectEntry>>,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) sync: Mutex<SyncState>,
    pub(crate) synced: Condvar,
    /// (file being appended, written_lsn), for the sync leader.
    pub(crate) tip: Mutex<(Option<Arc<File>>, u64)>,
    pub(crate) poisoned: Mutex<Option<String>>,
    pub(crate) checkpoint: Mutex<compact::CheckpointState>,
    pub(crate) stop: AtomicBool,
    pub(crate) wake: (Mutex<bool>, Condvar),
    /// Replica: the primary's durable seq last heard of.
    pub(crate) primary_head: Mutex<u64>,
    /// Replica: bytes of a log record not yet complete.
    pub(crate) stream_buffer: Mutex<Vec<u8>>,
}

/// Locks a mutex; a poisoned lock (a thread panicked holding it) is taken
/// over, since every structure behind these locks is left consistent
/// between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// An open APDB: many readers and writers may share it (`&Apdb` is `Sync`).
pub struct Apdb {
    pub(crate) shared: Arc<Shared>,
    background: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Apdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apdb")
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenStats {
    /// Log records replayed.
    pub replayed_records: u64,
    /// Bytes of a torn log tail cut off.
    pub torn_bytes: u64,
    /// Segments opened.
    pub segments: u64,
}

/// Sizes of the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApdbStats {
    /// Rows per table (DiaObject counts versions).
    pub rows: [u64; 3],
    /// Rows still in memory.
    pub recent_rows: [u64; 3],
    /// Partitions per table.
    pub partitions: [u64; 3],
    /// Segments per table.
    pub segments: [u64; 3],
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Bytes of log files.
    pub wal_bytes: u64,
    /// Last visible log record.
    pub seq: u64,
}

impl Apdb {
    /// Creates or opens the APDB in `dir` with the felis schema at
    /// `schema_path` (replays the log, cuts a torn tail, starts the
    /// background compaction).
    pub fn open(dir: &Path, schema_path: &Path, config: ApdbConfig) -> Result<Apdb> {
        let felis = FelisSchema::from_file(schema_path)?;
        Apdb::open_with_schema(dir, felis, config).map(|(apdb, _)| apdb)
    }

    /// [`Apdb::open`] with a parsed schema; also returns what recovery did.
    pub fn open_with_schema(
        dir: &Path,
        felis: FelisSchema,
        config: ApdbConfig,
    ) -> Result<(Apdb, OpenStats)> {
        Apdb::open_inner(dir, felis, config, false)
    }

    pub(crate) fn open_inner(
        dir: &Path,
        felis: FelisSchema,
        config: ApdbConfig,
        read_only: bool,
    ) -> Result<(Apdb, OpenStats)> {
        let layout = ApdbLayout::new(felis)?;
        let chunker = Chunker::new(APDB_STRIPES, APDB_SUB_STRIPES, 0.0)?;
        for sub in ["wal", "segments"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| ApdbError::io(format!("creating {}", dir.display()), e))?;
        }
        for table in ApdbTable::ALL {
            std::fs::create_dir_all(dir.join("segments").join(table.name()))
                .map_err(|e| ApdbError::io(format!("creating {}", dir.display()), e))?;
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            layout,
            chunker,
            config,
            read_only,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            objects: RwLock::new(IdMap::default()),
            writer: Mutex::new(WriterState {
                wal: None,
                visit_detectors: HashSet::new(),
                max_source_id: i64::MIN,
                closes: Vec::new(),
                empty_pairs: Vec::new(),
            }),
            sync: Mutex::new(SyncState {
                durable_lsn: 0,
                syncing: false,
                pending: Default::default(),
                published_seq: 0,
            }),
            synced: Condvar::new(),
            tip: Mutex::new((None, 0)),
            poisoned: Mutex::new(None),
            checkpoint: Mutex::new(compact::CheckpointState::default()),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
            primary_head: Mutex::new(0),
            stream_buffer: Mutex::new(Vec::new()),
        });
        let stats = compact::recover(&shared)?;
        let background = if shared.config.background_compaction {
            let worker = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("apdb-compact".into())
                    .spawn(move || compact::background(&worker))
                    .map_err(|e| ApdbError::io("starting the compaction thread", e))?,
            )
        } else {
            None
        };
        Ok((Apdb { shared, background }, stats))
    }

    /// The schema layout.
    pub fn layout(&self) -> &ApdbLayout {
        &self.shared.layout
    }

    /// The schema of one table.
    pub fn schema(&self, table: ApdbTable) -> &TableSchema {
        &self.shared.layout.table(table).schema
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The current snapshot (a consistent prefix of the stored visits).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&read_lock(&self.shared.snapshot))
    }

    /// Sizes of the database as of now.
    pub fn stats(&self) -> ApdbStats {
        let snap = self.snapshot();
        let mut stats = ApdbStats {
            seq: snap.seq,
            ..ApdbStats::default()
        };
        for table in ApdbTable::ALL {
            let t = table.index();
            stats.partitions[t] = snap.tables[t].len() as u64;
            for view in snap.tables[t].values() {
                for segment in &view.segments {
                    stats.rows[t] += segment.rows;
                    stats.segments[t] += 1;
                    stats.segment_bytes += segment.bytes;
                }
                let recent = view.recent_rows() as u64;
                stats.rows[t] += recent;
                stats.recent_rows[t] += recent;
            }
        }
        stats.wal_bytes = wal::list_wal_files(&self.shared.dir.join("wal"))
            .map(|files| {
                files
                    .iter()
                    .filter_map(|(_, p)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        stats
    }

    /// Runs compaction until there is nothing left to do (tests and tools;
    /// the background thread does the same a step at a time).
    pub fn compact_now(&self) -> Result<usize> {
        let mut steps = 0;
        while compact::compact_step(&self.shared, true)? {
            steps += 1;
        }
        Ok(steps)
    }

    /// Stops the background thread and waits for it.
    pub fn close(mut self) {
        self.stop_background();
    }

    fn stop_background(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let (flag, cv) = &self.shared.wake;
            *lock(flag) = true;
            cv.notify_all();
        }
        if let Some(handle) = self.background.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Apdb {
    fn drop(&mut self) {
        self.stop_background();
    }
}
