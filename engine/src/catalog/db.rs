//! The database handle, the writer ([`Load`]), the publish protocol and cleanup
//! (SPEC.md part 3 §4 and §5).

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use skyscan_sky::Chunker;

use super::fsutil::{
    WriterLock, create_dir_durable, list_dir, read_limited, remove_all, rename, sync_dir,
    sync_file, write_synced,
};
use super::meta::{
    Catalog, ChunkEntry, DIRECTOR_INDEX_FILE, DirectorIndexEntry, REPLICATED_CHUNK_ID, TableDef,
    TableEntry, TableKind, check_child_director, check_name, table_data_dir,
};
use super::{CatalogError, KEPT_OLD_GENERATIONS, MAX_CATALOG_BYTES, Result};
use crate::partition::chunk_file_name;

/// The pointer file naming the live catalog generation.
const CURRENT: &str = "CURRENT";
/// Temporary name of the pointer while it is written.
const CURRENT_TMP: &str = "CURRENT.tmp";
/// The writer lock file.
const LOCK: &str = "LOCK";
/// Marker file at the top of every spindle.
const SPINDLE_MARKER: &str = "SKYSCAN_SPINDLE";
/// Directory of in-progress loads on every spindle.
const STAGING: &str = ".staging";
/// Directory of published table data on every spindle.
const DATA: &str = "data";
/// Longest `CURRENT` or spindle marker file read.
const MAX_SMALL_FILE_BYTES: u64 = 4096;
/// Attempts to read `CURRENT` and the catalog it names when a writer prunes
/// the named generation between the two reads.
const OPEN_ATTEMPTS: usize = 3;

/// `catalog.<generation>.json`.
fn catalog_file_name(generation: u64) -> String {
    format!("catalog.{generation}.json")
}

/// Parses `catalog.<generation>.json` (decimal without leading zeros).
fn parse_catalog_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("catalog.")?.strip_suffix(".json")?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The contents of a spindle's marker file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpindleMarker {
    database_id: String,
    spindle: u32,
}

/// A step of [`Load::commit_with_hook`], reported before the next one starts
/// so crash tests can stop the process between any two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitStep {
    /// Every declared file is checked and fsynced in staging.
    FilesSynced,
    /// The staging directories are renamed to the table's data directories
    /// (not yet referenced by any catalog).
    DataMoved,
    /// Half of the new `catalog.<g>.json.tmp` is written.
    CatalogHalfWritten,
    /// `catalog.<g>.json` is written, fsynced and renamed into place.
    CatalogWritten,
    /// `CURRENT.tmp` is written and fsynced.
    PointerWritten,
    /// `CURRENT` was renamed to name the new generation: the commit point.
    PointerRenamed,
    /// The root directory is fsynced: the commit is durable.
    Committed,
}

/// State shared by a [`Database`] and its [`Load`]s.
#[derive(Debug)]
struct Shared {
    root: PathBuf,
    spindle_paths: Vec<PathBuf>,
    current: RwLock<Arc<Catalog>>,
}

impl Shared {
    fn snapshot(&self) -> Arc<Catalog> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set_snapshot(&self, catalog: Arc<Catalog>) {
        match self.current.write() {
            Ok(mut guard) => *guard = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }
}

/// An open skyscan database root: paths plus a snapshot of the catalog.
/// Cheap to clone; clones share the snapshot, which [`Database::reload`] and
/// commits through this handle replace.
#[derive(Debug, Clone)]
pub struct Database {
    shared: Arc<Shared>,
}

/// Absolute form of `path` (relative to the working directory).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| CatalogError::io(path, "resolve path", e))
}

/// A random identifier: `RandomState` is seeded from the OS's randomness.
fn random_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolves the catalog's spindle strings against the root.
fn spindle_paths(root: &Path, catalog: &Catalog) -> Vec<PathBuf> {
    catalog
        .spindles
        .iter()
        .map(|s| {
            if s == "." {
                root.to_path_buf()
            } else {
                root.join(s)
            }
        })
        .collect()
}

/// Names the root may hold before `create` (left by a crashed `create`).
fn is_own_root_entry(name: &str) -> bool {
    matches!(name, LOCK | CURRENT_TMP | SPINDLE_MARKER | STAGING | DATA)
        || name.starts_with("catalog.")
}

impl Database {
    /// Creates a database at `root` spanning `spindles` (data directories,
    /// one per disk; empty: the root alone). Relative spindle paths are
    /// resolved against the working directory; the catalog records paths
    /// inside the root relative to it, others absolute. Refuses a root that
    /// holds a database or foreign files, and a spindle of another database.
    pub fn create(root: &Path, spindles: &[PathBuf]) -> Result<Database> {
        let root = absolute(root)?;
        create_dir_durable(&root)?;
        if root.join(CURRENT).exists() {
            return Err(CatalogError::AlreadyExists(format!(
                "a skyscan database at {}",
                root.display()
            )));
        }
        if let Some((name, _)) = list_dir(&root)?
            .into_iter()
            .find(|(name, _)| !is_own_root_entry(name))
        {
            return Err(CatalogError::InvalidArgument(format!(
                "{} is not empty (it holds `{name}`); a database needs an empty directory",
                root.display()
            )));
        }
        let _lock = WriterLock::try_acquire(&root.join(LOCK))?;
        let mut recorded = Vec::new();
        let mut paths = Vec::new();
        if spindles.is_empty() {
            recorded.push(".".to_string());
            paths.push(root.clone());
        }
        for spindle in spindles {
            let path = absolute(spindle)?;
            let text = match path.strip_prefix(&root) {
                Ok(inside) if inside.as_os_str().is_empty() => ".".to_string(),
                Ok(inside) => inside.to_string_lossy().into_owned(),
                Err(_) => path.to_string_lossy().into_owned(),
            };
            if path.to_str().is_none() {
                return Err(CatalogError::InvalidArgument(format!(
                    "spindle path {} is not UTF-8",
                    path.display()
                )));
            }
            if paths.contains(&path) {
                return Err(CatalogError::InvalidArgument(format!(
                    "spindle {} given twice",
                    path.display()
                )));
            }
            recorded.push(text);
            paths.push(path);
        }
        let database_id = random_id();
        for (index, path) in (0u32..).zip(&paths) {
            create_dir_durable(path)?;
            let marker_path = path.join(SPINDLE_MARKER);
            if marker_path.exists() {
                let marker = read_marker(&marker_path)?;
                if path != &root || marker.spindle != index {
                    return Err(CatalogError::AlreadyExists(format!(
                        "{} is a spindle of database {} already",
                        path.display(),
                        marker.database_id
                    )));
                }
            }
            let marker = SpindleMarker {
                database_id: database_id.clone(),
                spindle: index,
            };
            let mut bytes = serde_json::to_vec(&marker)
                .map_err(|e| CatalogError::InvalidArgument(e.to_string()))?;
            bytes.push(b'\n');
            let tmp = path.join(format!("{SPINDLE_MARKER}.tmp"));
            write_synced(&tmp, &bytes, || {})?;
            rename(&tmp, &marker_path)?;
            sync_dir(path)?;
        }
        let catalog = Catalog::empty(database_id, recorded);
        catalog.validate().map_err(CatalogError::InvalidArgument)?;
        publish(&root, &catalog, &mut |_| {})?;
        let shared = Shared {
            root,
            spindle_paths: paths,
            current: RwLock::new(Arc::new(catalog)),
        };
        Ok(Database {
            shared: Arc::new(shared),
        })
    }

    /// Opens the database at `root`: reads the catalog `CURRENT` names,
    /// checks the spindles' markers, and, when no writer is active, removes
    /// what interrupted loads left (SPEC.md part 3 §5).
    pub fn open(root: &Path) -> Result<Database> {
        let root = absolute(root)?;
        let catalog = read_current(&root)?;
        let paths = spindle_paths(&root, &catalog);
        for (index, path) in (0u32..).zip(&paths) {
            let marker_path = path.join(SPINDLE_MARKER);
            let marker = read_marker(&marker_path)?;
            if marker.database_id != catalog.database_id || marker.spindle != index {
                return Err(CatalogError::corrupt(
                    &marker_path,
                    format!(
                        "spindle {index} of database {} holds the marker of spindle {} of database {} \
                         (wrong disk mounted?)",
                        catalog.database_id, marker.spindle, marker.database_id
                    ),
                ));
            }
        }
        let shared = Shared {
            root: root.clone(),
            spindle_paths: paths,
            current: RwLock::new(Arc::new(catalog)),
        };
        let db = Database {
            shared: Arc::new(shared),
        };
        // Cleanup runs only under the writer lock; a busy database is being
        // written, and its writer cleans when it commits.
        match WriterLock::try_acquire(&root.join(LOCK)) {
            Ok(_lock) => {
                let latest = read_current(&root)?;
                cleanup(&db.shared, &latest)?;
                db.shared.set_snapshot(Arc::new(latest));
            }
            Err(CatalogError::Busy { .. }) => {}
            // A reader without write access to the root cannot clean; it can read.
            Err(CatalogError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(e),
        }
        Ok(db)
    }

    /// The root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The data directories, index = spindle number (absolute).
    pub fn spindle_paths(&self) -> &[PathBuf] {
        &self.shared.spindle_paths
    }

    /// The catalog snapshot this handle reads. Holding the `Arc` keeps a
    /// consistent view; its files stay on disk for at least
    /// [`super::KEPT_OLD_GENERATIONS`] further commits.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.shared.snapshot()
    }

    /// Re-reads `CURRENT` and replaces the snapshot (to see other processes' commits).
    pub fn reload(&self) -> Result<Arc<Catalog>> {
        let catalog = Arc::new(read_current(&self.shared.root)?);
        self.shared.set_snapshot(Arc::clone(&catalog));
        Ok(catalog)
    }

    /// The path of a file of a table version: `<spindle>/<data_dir>/<file>`.
    pub fn table_file(&self, entry: &TableEntry, spindle: u32, file: &str) -> Result<PathBuf> {
        let base = self
            .shared
            .spindle_paths
            .get(spindle as usize)
            .ok_or_else(|| {
                CatalogError::InvalidArgument(format!(
                    "spindle {spindle} of {}",
                    self.shared.spindle_paths.len()
                ))
            })?;
        Ok(base.join(&entry.data_dir).join(file))
    }

    /// The chunk file of `chunk_id` of `database.table` in the current snapshot.
    pub fn chunk_file(&self, database: &str, table: &str, chunk_id: i32) -> Result<PathBuf> {
        let catalog = self.catalog();
        let entry = catalog
            .table(database, table)
            .ok_or_else(|| CatalogError::NotFound(format!("table {database}.{table}")))?;
        let chunk = entry.chunk(chunk_id).ok_or_else(|| {
            CatalogError::NotFound(format!("chunk {chunk_id} of {database}.{table}"))
        })?;
        self.table_file(entry, chunk.spindle, &chunk.file)
    }

    /// The spindle a chunk goes to: `chunk_id mod spindles` (Euclidean), so
    /// the chunks of one stripe alternate between disks and the same chunk of
    /// every table lands on the same disk (chunk-local joins read one disk).
    pub fn spindle_of(&self, chunk_id: i32) -> u32 {
        placement(chunk_id, self.shared.spindle_paths.len())
    }

    /// Starts loading a new table `def` into `database` (created if new).
    /// Fails with [`CatalogError::AlreadyExists`] if the table exists (see
    /// [`Database::begin_replace`]) and [`CatalogError::Busy`] while another
    /// writer runs. The returned [`Load`] holds the writer lock.
    pub fn begin_load(&self, database: &str, def: TableDef) -> Result<Load> {
        Load::begin(self, database, def, false)
    }

    /// Like [`Database::begin_load`], but the commit replaces an existing
    /// table of that name atomically (readers see the old or the new version).
    pub fn begin_replace(&self, database: &str, def: TableDef) -> Result<Load> {
        Load::begin(self, database, def, true)
    }

    /// Removes `database.table` from the catalog with one atomic switch. Its
    /// files are deleted by a later cleanup, once no kept generation names
    /// them. Refuses to drop a director that child tables reference.
    pub fn drop_table(&self, database: &str, table: &str) -> Result<()> {
        let _lock = WriterLock::try_acquire(&self.shared.root.join(LOCK))?;
        let mut catalog = read_current(&self.shared.root)?;
        let db = catalog
            .databases
            .get_mut(database)
            .ok_or_else(|| CatalogError::NotFound(format!("database {database}")))?;
        if let Some((child, _)) = db.tables.iter().find(
            |(_, entry)| matches!(&entry.kind, TableKind::Child { director_table, .. } if director_table == table),
        ) {
            return Err(CatalogError::InvalidArgument(format!(
                "{database}.{table} is the director of {database}.{child}; drop the child tables first"
            )));
        }
        if db.tables.remove(table).is_none() {
            return Err(CatalogError::NotFound(format!("table {database}.{table}")));
        }
        if db.tables.is_empty() {
            catalog.databases.remove(database);
        }
        catalog.generation += 1;
        catalog.validate().map_err(|e| {
            CatalogError::InvalidArgument(format!("drop would break the catalog: {e}"))
        })?;
        publish(&self.shared.root, &catalog, &mut |_| {})?;
        self.shared.set_snapshot(Arc::new(catalog.clone()));
        cleanup(&self.shared, &catalog)
    }
}

fn placement(chunk_id: i32, spindles: usize) -> u32 {
    let spindles = i64::try_from(spindles.max(1)).unwrap_or(1);
    // rem_euclid of a positive modulus is in [0, spindles), which fits u32
    // because spindles <= MAX_SPINDLES.
    u32::try_from(i64::from(chunk_id).rem_euclid(spindles)).unwrap_or(0)
}

fn read_marker(path: &Path) -> Result<SpindleMarker> {
    let bytes = match read_limited(path, MAX_SMALL_FILE_BYTES) {
        Err(CatalogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(CatalogError::corrupt(
                path,
                "missing: this directory is not a spindle of the database (disk not mounted?)",
            ));
        }
        other => other?,
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| CatalogError::corrupt(path, format!("bad spindle marker: {e}")))
}

/// Reads `CURRENT` and the catalog it names.
fn read_current(root: &Path) -> Result<Catalog> {
    let pointer = root.join(CURRENT);
    let mut last_error = None;
    for _ in 0..OPEN_ATTEMPTS {
        let bytes = match read_limited(&pointer, MAX_SMALL_FILE_BYTES) {
            Err(CatalogError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(CatalogError::NotFound(format!(
                    "a skyscan database at {} (no {CURRENT} file)",
                    root.display()
                )));
            }
            other => other?,
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| CatalogError::corrupt(&pointer, "not UTF-8 text"))?;
        let name = text.strip_suffix('\n').unwrap_or(text);
        let generation = parse_catalog_file_name(name).ok_or_else(|| {
            CatalogError::corrupt(
                &pointer,
                format!(
                    "`{}` does not name a catalog.<generation>.json file",
                    name.escape_debug()
                ),
            )
        })?;
        let path = root.join(name);
        match read_limited(&path, MAX_CATALOG_BYTES) {
            Ok(bytes) => {
                let catalog = Catalog::from_json(&bytes, &path)?;
                if catalog.generation != generation {
                    return Err(CatalogError::corrupt(
                        &path,
                        format!(
                            "holds generation {}, its name says {generation}",
                            catalog.generation
                        ),
                    ));
                }
                return Ok(catalog);
            }
            // A writer pruned it between the two reads: read CURRENT again.
            Err(CatalogError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                last_error = Some(CatalogError::corrupt(
                    &path,
                    format!("named by {CURRENT} but missing"),
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| CatalogError::corrupt(&pointer, "unreadable")))
}

/// Writes `catalog` as the new generation and switches `CURRENT` to it
/// (steps 3–4 of the protocol). The rename of `CURRENT` is the commit point.
fn publish(root: &Path, catalog: &Catalog, hook: &mut dyn FnMut(CommitStep)) -> Result<()> {
    let bytes = catalog
        .to_json()
        .map_err(|e| CatalogError::InvalidArgument(format!("catalog to JSON: {e}")))?;
    if bytes.len() as u64 > MAX_CATALOG_BYTES {
        return Err(CatalogError::InvalidArgument(format!(
            "the catalog would take {} bytes, over the limit of {MAX_CATALOG_BYTES}",
            bytes.len()
        )));
    }
    let name = catalog_file_name(catalog.generation);
    let final_path = root.join(&name);
    let tmp = root.join(format!("{name}.tmp"));
    write_synced(&tmp, &bytes, || hook(CommitStep::CatalogHalfWritten))?;
    rename(&tmp, &final_path)?;
    sync_dir(root)?;
    hook(CommitStep::CatalogWritten);
    let pointer_tmp = root.join(CURRENT_TMP);
    write_synced(&pointer_tmp, format!("{name}\n").as_bytes(), || {})?;
    hook(CommitStep::PointerWritten);
    rename(&pointer_tmp, &root.join(CURRENT))?;
    hook(CommitStep::PointerRenamed);
    sync_dir(root)?;
    hook(CommitStep::Committed);
    Ok(())
}

/// Removes leftovers (SPEC.md part 3 §5). Runs under the writer lock,
/// with `current` the catalog `CURRENT` names.
fn cleanup(shared: &Shared, current: &Catalog) -> Result<()> {
    // 1. Staging areas of loads that did not commit.
    for spindle in &shared.spindle_paths {
        for (_, path) in list_dir(&spindle.join(STAGING))? {
            remove_all(&path)?;
        }
        remove_all(&spindle.join(format!("{SPINDLE_MARKER}.tmp")))?;
    }
    // 2. Catalog files: temporaries, generations never made current, and
    //    generations older than the kept window.
    let root = &shared.root;
    let mut older: Vec<(u64, PathBuf)> = Vec::new();
    for (name, path) in list_dir(root)? {
        if name == CURRENT_TMP || (name.starts_with("catalog.") && name.ends_with(".json.tmp")) {
            remove_all(&path)?;
        } else if let Some(generation) = parse_catalog_file_name(&name) {
            if generation > current.generation {
                remove_all(&path)?;
            } else if generation < current.generation {
                older.push((generation, path));
            }
        }
    }
    older.sort_unstable_by_key(|(generation, _)| std::cmp::Reverse(*generation));
    let mut referenced: HashSet<String> = current
        .tables()
        .map(|(_, _, t)| t.data_dir.clone())
        .collect();
    for (rank, (_, path)) in older.iter().enumerate() {
        if rank >= KEPT_OLD_GENERATIONS {
            remove_all(path)?;
            continue;
        }
        // A kept generation that does not parse cannot be read by anyone:
        // its data needs no protection.
        if let Ok(bytes) = read_limited(path, MAX_CATALOG_BYTES)
            && let Ok(old) = Catalog::from_json(&bytes, path)
        {
            referenced.extend(old.tables().map(|(_, _, t)| t.data_dir.clone()));
        }
    }
    // 3. Table data directories no kept generation references.
    for spindle in &shared.spindle_paths {
        let data = spindle.join(DATA);
        for (db_name, db_path) in list_dir(&data)? {
            if check_name("database", &db_name).is_err() || !db_path.is_dir() {
                continue;
            }
            let mut kept = 0usize;
            for (entry_name, entry_path) in list_dir(&db_path)? {
                let ours = entry_name.split_once('.').is_some_and(|(table, load)| {
                    check_name("table", table).is_ok() && check_name("load", load).is_ok()
                });
                let relative = format!("{DATA}/{db_name}/{entry_name}");
                if ours && !referenced.contains(&relative) {
                    remove_all(&entry_path)?;
                } else {
                    kept += 1;
                }
            }
            if kept == 0 {
                remove_all(&db_path)?;
            }
        }
    }
    Ok(())
}

/// Row counts and size of one chunk file, as a loader reports them to [`Load::add_chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Declared {
    rows: u64,
    overlap_rows: u64,
    bytes: u64,
}

/// One load: writes a table (or a new version of one) into staging and
/// publishes it with [`Load::commit`]. Holds the database's writer lock;
/// dropping it without commit aborts (removes staging).
#[derive(Debug)]
pub struct Load {
    shared: Arc<Shared>,
    lock: Option<WriterLock>,
    base: Catalog,
    database: String,
    def: TableDef,
    chunker: Option<Chunker>,
    generation: u64,
    load_id: String,
    chunks: BTreeMap<i32, Declared>,
    director_index_entries: Option<u64>,
    finished: bool,
}

impl Load {
    fn begin(db: &Database, database: &str, def: TableDef, replace: bool) -> Result<Load> {
        check_name("database", database).map_err(CatalogError::InvalidArgument)?;
        def.check().map_err(|e| {
            CatalogError::InvalidArgument(format!("table {database}.{}: {e}", def.name))
        })?;
        let shared = Arc::clone(&db.shared);
        let lock = WriterLock::try_acquire(&shared.root.join(LOCK))?;
        let base = read_current(&shared.root)?;
        if !replace && base.table(database, &def.name).is_some() {
            return Err(CatalogError::AlreadyExists(format!(
                "table {database}.{}",
                def.name
            )));
        }
        if let TableKind::Child { director_table, .. } = &def.kind {
            let director = base.table(database, director_table).ok_or_else(|| {
                CatalogError::NotFound(format!(
                    "director table {database}.{director_table} of {}",
                    def.name
                ))
            })?;
            check_child_director(def.partitioning.as_ref(), director).map_err(|e| {
                CatalogError::InvalidArgument(format!("table {database}.{}: {e}", def.name))
            })?;
        }
        if replace && base.tables().any(|(db_name, _, t)| {
            db_name == database
                && matches!(&t.kind, TableKind::Child { director_table, .. } if *director_table == def.name)
        }) && !matches!(def.kind, TableKind::Director { .. })
        {
            return Err(CatalogError::InvalidArgument(format!(
                "{database}.{} is the director of child tables; its replacement must be a director too",
                def.name
            )));
        }
        let chunker = def
            .partitioning
            .map(|p| p.chunker())
            .transpose()
            .map_err(CatalogError::InvalidArgument)?;
        let generation = base.generation + 1;
        let load = Load {
            shared,
            lock: Some(lock),
            base,
            database: database.to_string(),
            def,
            chunker,
            generation,
            load_id: format!("g{generation}"),
            chunks: BTreeMap::new(),
            director_index_entries: None,
            finished: false,
        };
        // Leftovers of a crashed load with the same id are not referenced by
        // any catalog (their generation never became current): replace them.
        for spindle in 0..load.shared.spindle_paths.len() {
            let staging = load.staging_dir(spindle);
            remove_all(&staging)?;
            remove_all(&load.final_dir(spindle))?;
            create_dir_durable(&staging)?;
        }
        Ok(load)
    }

    /// The load id (`g<generation>`): names the staging and data directories.
    pub fn load_id(&self) -> &str {
        &self.load_id
    }

    /// The table being loaded.
    pub fn table_def(&self) -> &TableDef {
        &self.def
    }

    /// The database the table goes into.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The catalog this load started from (the latest at `begin_load`).
    pub fn base_catalog(&self) -> &Catalog {
        &self.base
    }

    /// The chunker of a partitioned table (`None` for replicated tables).
    pub fn chunker(&self) -> Option<&Chunker> {
        self.chunker.as_ref()
    }

    /// The path of a file of a published table version (e.g. the director
    /// index of this child table's director), through this load's spindles.
    pub fn published_file(&self, entry: &TableEntry, spindle: u32, file: &str) -> Result<PathBuf> {
        let base = self
            .shared
            .spindle_paths
            .get(spindle as usize)
            .ok_or_else(|| {
                CatalogError::InvalidArgument(format!(
                    "spindle {spindle} of {}",
                    self.shared.spindle_paths.len()
                ))
            })?;
        Ok(base.join(&entry.data_dir).join(file))
    }

    fn staging_dir(&self, spindle: usize) -> PathBuf {
        self.shared.spindle_paths[spindle]
            .join(STAGING)
            .join(&self.load_id)
    }

    fn final_dir(&self, spindle: usize) -> PathBuf {
        self.shared.spindle_paths[spindle].join(table_data_dir(
            &self.database,
            &self.def.name,
            &self.load_id,
        ))
    }

    fn check_chunk_id(&self, chunk_id: i32) -> Result<()> {
        let ok = match &self.chunker {
            Some(chunker) => chunker.is_valid_chunk(chunk_id),
            None => chunk_id == REPLICATED_CHUNK_ID,
        };
        if ok {
            Ok(())
        } else {
            Err(CatalogError::InvalidArgument(format!(
                "chunk {chunk_id} is not a chunk of {}.{} ({})",
                self.database,
                self.def.name,
                match &self.def.partitioning {
                    Some(p) => format!("{} stripes, {} sub-stripes", p.stripes, p.sub_stripes),
                    None => format!("replicated tables have only chunk {REPLICATED_CHUNK_ID}"),
                }
            )))
        }
    }

    /// Where the loader writes the file of `chunk_id`: in this load's staging
    /// directory on the chunk's spindle ([`Database::spindle_of`]).
    pub fn chunk_path(&self, chunk_id: i32) -> Result<PathBuf> {
        self.check_chunk_id(chunk_id)?;
        let spindle = placement(chunk_id, self.shared.spindle_paths.len()) as usize;
        Ok(self.staging_dir(spindle).join(chunk_file_name(chunk_id)))
    }

    /// Declares the file written at [`Load::chunk_path`]`(chunk_id)`: its own
    /// rows, overlap copies and size (checked against the file at commit).
    pub fn add_chunk(
        &mut self,
        chunk_id: i32,
        rows: u64,
        overlap_rows: u64,
        bytes: u64,
    ) -> Result<()> {
        self.check_chunk_id(chunk_id)?;
        if overlap_rows > 0 && !matches!(self.def.kind, TableKind::Director { .. }) {
            return Err(CatalogError::InvalidArgument(format!(
                "chunk {chunk_id}: only director tables have overlap rows"
            )));
        }
        if self
            .chunks
            .insert(
                chunk_id,
                Declared {
                    rows,
                    overlap_rows,
                    bytes,
                },
            )
            .is_some()
        {
            return Err(CatalogError::InvalidArgument(format!(
                "chunk {chunk_id} declared twice"
            )));
        }
        Ok(())
    }

    /// A scratch directory for the loader's spilled runs, inside this load's
    /// staging area on spindle 0 (created if absent). Whatever the loader
    /// leaves there is removed with the staging area when the load is
    /// dropped; the loader empties it before [`Load::commit`].
    pub fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = self.staging_dir(0).join(".spill");
        std::fs::create_dir_all(&dir).map_err(|e| CatalogError::io(&dir, "create", e))?;
        Ok(dir)
    }

    /// Where the loader writes the director index (director tables only):
    /// `director.idx` in staging on spindle 0.
    pub fn director_index_path(&self) -> Result<PathBuf> {
        if !matches!(self.def.kind, TableKind::Director { .. }) {
            return Err(CatalogError::InvalidArgument(format!(
                "{}.{} is a {} table; only directors have a director index",
                self.database,
                self.def.name,
                self.def.kind.name()
            )));
        }
        Ok(self.staging_dir(0).join(DIRECTOR_INDEX_FILE))
    }

    /// Declares the director index written at [`Load::director_index_path`]
    /// with `entries` keys (must equal the table's rows at commit).
    pub fn add_director_index(&mut self, entries: u64) -> Result<()> {
        self.director_index_path()?;
        self.director_index_entries = Some(entries);
        Ok(())
    }

    /// Publishes the table: see [`Load::commit_with_hook`]. Returns the new catalog.
    pub fn commit(self) -> Result<Arc<Catalog>> {
        self.commit_with_hook(|_| {})
    }

    /// Publishes the table, calling `hook` after each [`CommitStep`] (crash
    /// tests stop the process there). Protocol (SPEC.md part 3 §4):
    /// check and fsync every declared file, rename staging to the data
    /// directories, write `catalog.<g>.json`, switch `CURRENT`. An error
    /// before the switch aborts the load and leaves the previous catalog.
    pub fn commit_with_hook(mut self, mut hook: impl FnMut(CommitStep)) -> Result<Arc<Catalog>> {
        self.finished = true;
        let mut switched = false;
        let result = self.publish_load(&mut |step| {
            switched |= step == CommitStep::PointerRenamed;
            hook(step)
        });
        match result {
            Ok(catalog) => {
                let catalog = Arc::new(catalog);
                self.shared.set_snapshot(Arc::clone(&catalog));
                // The commit stands whatever cleanup finds; the next open retries it.
                let _ = cleanup(&self.shared, &catalog);
                self.lock = None;
                Ok(catalog)
            }
            // `CURRENT` names the new generation already: its files must stay.
            Err(e) if switched => {
                self.lock = None;
                Err(e)
            }
            Err(e) => {
                self.remove_files();
                self.lock = None;
                Err(e)
            }
        }
    }

    fn publish_load(&mut self, hook: &mut dyn FnMut(CommitStep)) -> Result<Catalog> {
        let spindles = self.shared.spindle_paths.len();
        // 1. Check and fsync every declared file; remove undeclared ones.
        let mut declared_files: Vec<HashSet<String>> = vec![HashSet::new(); spindles];
        let mut entries = Vec::with_capacity(self.chunks.len());
        for (&chunk_id, declared) in &self.chunks {
            let spindle = placement(chunk_id, spindles);
            let file = chunk_file_name(chunk_id);
            let path = self.staging_dir(spindle as usize).join(&file);
            check_size(&path, declared.bytes)?;
            sync_file(&path)?;
            declared_files[spindle as usize].insert(file.clone());
            entries.push(ChunkEntry {
                chunk_id,
                spindle,
                file,
                rows: declared.rows,
                overlap_rows: declared.overlap_rows,
                bytes: declared.bytes,
            });
        }
        let director_index = match self.director_index_entries {
            Some(entries) => {
                let path = self.director_index_path()?;
                let bytes = std::fs::metadata(&path)
                    .map_err(|e| CatalogError::io(&path, "stat", e))?
                    .len();
                sync_file(&path)?;
                declared_files[0].insert(DIRECTOR_INDEX_FILE.to_string());
                Some(DirectorIndexEntry {
                    spindle: 0,
                    file: DIRECTOR_INDEX_FILE.to_string(),
                    entries,
                    bytes,
                })
            }
            None => None,
        };
        for (spindle, declared) in declared_files.iter().enumerate() {
            let staging = self.staging_dir(spindle);
            for (name, path) in list_dir(&staging)? {
                if !declared.contains(&name) {
                    remove_all(&path)?;
                }
            }
            sync_dir(&staging)?;
        }
        hook(CommitStep::FilesSynced);
        // 2. Staging becomes the table's data directories (unreferenced until step 4).
        for (spindle, declared) in declared_files.iter().enumerate() {
            let staging = self.staging_dir(spindle);
            if declared.is_empty() {
                remove_all(&staging)?;
                continue;
            }
            let target = self.final_dir(spindle);
            let parent = target.parent().map(Path::to_path_buf).unwrap_or_default();
            create_dir_durable(&parent)?;
            rename(&staging, &target)?;
            sync_dir(&parent)?;
            if let Some(staging_parent) = staging.parent() {
                sync_dir(staging_parent)?;
            }
        }
        hook(CommitStep::DataMoved);
        // 3–4. The new catalog, then the switch.
        let (rows, overlap_rows) = entries
            .iter()
            .fold((0u64, 0u64), |(r, o), c| (r + c.rows, o + c.overlap_rows));
        let bytes = entries.iter().map(|c| c.bytes).sum::<u64>()
            + director_index.as_ref().map_or(0, |d| d.bytes);
        let entry = TableEntry {
            kind: self.def.kind.clone(),
            columns: self.def.columns.clone(),
            partitioning: self.def.partitioning,
            scan_rating: self.def.scan_rating,
            load_id: self.load_id.clone(),
            data_dir: table_data_dir(&self.database, &self.def.name, &self.load_id),
            rows,
            overlap_rows,
            bytes,
            chunks: entries,
            director_index,
            committed_unix_s: unix_now_s(),
        };
        let mut catalog = self.base.clone();
        catalog.generation = self.generation;
        catalog
            .databases
            .entry(self.database.clone())
            .or_default()
            .tables
            .insert(self.def.name.clone(), entry);
        catalog.validate().map_err(|e| {
            CatalogError::InvalidArgument(format!("the load would break the catalog: {e}"))
        })?;
        publish(&self.shared.root, &catalog, hook)?;
        Ok(catalog)
    }

    /// Removes this load's staging and (not yet referenced) data directories.
    fn remove_files(&self) {
        for spindle in 0..self.shared.spindle_paths.len() {
            // Best effort: whatever stays is removed by the next open.
            let _ = remove_all(&self.staging_dir(spindle));
            let _ = remove_all(&self.final_dir(spindle));
        }
    }

    /// Abandons the load: removes its staging files and releases the lock.
    pub fn abort(mut self) {
        self.finished = true;
        self.remove_files();
        self.lock = None;
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if !self.finished {
            self.remove_files();
        }
    }
}

fn check_size(path: &Path, declared: u64) -> Result<()> {
    let actual = std::fs::metadata(path)
        .map_err(|e| CatalogError::io(path, "stat", e))?
        .len();
    if actual != declared {
        return Err(CatalogError::InvalidArgument(format!(
            "{}: {actual} bytes on disk, {declared} declared",
            path.display()
        )));
    }
    Ok(())
}
