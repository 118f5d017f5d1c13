//! [`TableHandle`]: one table of a scan, resolved from the catalog once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::catalog::{CatalogError, Database, TableEntry};

use super::error::{Result, StorageError};

/// Most resolved table entries kept by the process-wide handle cache.
const MAX_CACHED_ENTRIES: usize = 256;

/// Key of the handle cache: a catalog generation of one database root.
type EntryKey = (PathBuf, u64, String, String);

/// Resolving a table clones its catalog entry (one `ChunkEntry` per chunk,
/// ~9,000 for a whole-sky table): interactive queries resolve the same
/// tables again and again, so resolved entries are shared per catalog
/// generation. A generation's catalog never changes (SPEC.md part 3 §4).
static ENTRY_CACHE: Mutex<Option<HashMap<EntryKey, Arc<TableEntry>>>> = Mutex::new(None);

/// One table of a scan, resolved from a catalog snapshot: where each chunk
/// file is, its schema and its scan rating. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TableHandle {
    database: String,
    table: String,
    entry: Arc<TableEntry>,
    db: Database,
    total_bytes: u64,
}

/// Where one chunk file of a table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    /// The chunk file.
    pub path: PathBuf,
    /// The data directory (disk) it is on.
    pub spindle: u32,
    /// Its size as the catalog records it.
    pub bytes: u64,
}

impl TableHandle {
    /// Resolves `database.table` in the current catalog snapshot of `db`.
    pub fn new(db: &Database, database: &str, table: &str) -> Result<TableHandle> {
        let catalog = db.catalog();
        let key = (
            db.root().to_path_buf(),
            catalog.generation,
            database.to_string(),
            table.to_string(),
        );
        let cached = match ENTRY_CACHE.lock() {
            Ok(guard) => guard.as_ref().and_then(|map| map.get(&key).cloned()),
            Err(poisoned) => poisoned
                .into_inner()
                .as_ref()
                .and_then(|map| map.get(&key).cloned()),
        };
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let entry = catalog.table(database, table).ok_or_else(|| {
                    StorageError::Catalog(CatalogError::NotFound(format!(
                        "table {database}.{table}"
                    )))
                })?;
                let entry = Arc::new(entry.clone());
                let mut guard = match ENTRY_CACHE.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let map = guard.get_or_insert_with(HashMap::new);
                if map.len() >= MAX_CACHED_ENTRIES {
                    map.clear();
                }
                map.insert(key, Arc::clone(&entry));
                entry
            }
        };
        let total_bytes = entry.chunks.iter().map(|c| c.bytes).sum();
        Ok(TableHandle {
            database: database.to_string(),
            table: table.to_string(),
            entry,
            db: db.clone(),
            total_bytes,
        })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The catalog entry (schema, kind, chunks).
    pub fn entry(&self) -> &TableEntry {
        &self.entry
    }

    /// The database root this table belongs to.
    pub fn root(&self) -> &Path {
        self.db.root()
    }

    /// Bytes of all the table's chunk files.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The scan rating (Qserv scan class: fast 0–10, medium 11–20, slow
    /// 21–30, snail 31–100).
    pub fn scan_rating(&self) -> u8 {
        self.entry.scan_rating
    }

    /// Whether the table has a file for `chunk_id`.
    pub fn has_chunk(&self, chunk_id: i32) -> bool {
        self.entry.chunk(chunk_id).is_some()
    }

    /// Where the file of `chunk_id` is; `None` when the table lacks the chunk.
    pub fn chunk_location(&self, chunk_id: i32) -> Result<Option<ChunkLocation>> {
        let Some(chunk) = self.entry.chunk(chunk_id) else {
            return Ok(None);
        };
        let path = self
            .db
            .table_file(&self.entry, chunk.spindle, &chunk.file)?;
        Ok(Some(ChunkLocation {
            path,
            spindle: chunk.spindle,
            bytes: chunk.bytes,
        }))
    }

    /// The data directory of spindle `spindle` (the disk's identity for the
    /// convoys); the root for an out-of-range index.
    pub fn spindle_path(&self, spindle: u32) -> PathBuf {
        self.db
            .spindle_paths()
            .get(spindle as usize)
            .cloned()
            .unwrap_or_else(|| self.db.root().to_path_buf())
    }

    /// Number of data directories of the database.
    pub fn spindle_count(&self) -> usize {
        self.db.spindle_paths().len()
    }
}
