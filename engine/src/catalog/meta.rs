//! The catalog metadata: serde structs mirroring `catalog.<generation>.json`
//! (SPEC.md part 3 §3), their parsing and their invariants.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use skyscan_format::{ColumnSchema, ColumnType, TableSchema};
use skyscan_sky::Chunker;

use super::{CatalogError, Result};

/// The `format` field of every catalog file: says "this JSON is a skyscan catalog".
pub const CATALOG_FORMAT: &str = "skyscan-catalog";
/// The catalog format version this build writes and reads.
pub const CATALOG_VERSION: u32 = 1;
/// The chunk id of the one chunk file of a replicated table.
pub const REPLICATED_CHUNK_ID: i32 = 0;
/// The largest scan rating (Qserv's classes: fast 0–10, medium 11–20, slow
/// 21–30, snail 31–100; BRIEF §4).
pub const MAX_SCAN_RATING: u8 = 100;
/// Longest database, table, column-reference or load-id name, bytes.
const MAX_NAME_LEN: usize = 64;
/// Most spindles a database may span.
const MAX_SPINDLES: usize = 256;
/// Most columns of a table (the chunk format's limit).
const MAX_COLUMNS: usize = 4096;

/// The whole catalog of one skyscan root: what `catalog.<generation>.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Always [`CATALOG_FORMAT`].
    pub format: String,
    /// Catalog format version ([`CATALOG_VERSION`]).
    pub version: u32,
    /// Generation of this catalog: 1 at creation, +1 per commit.
    pub generation: u64,
    /// Random identifier of the database root, also written into every
    /// spindle's marker file so a wrongly mounted disk is noticed.
    pub database_id: String,
    /// Data directories, index = spindle number. Relative paths are relative
    /// to the root; `"."` is the root itself.
    pub spindles: Vec<String>,
    /// Databases by name.
    pub databases: BTreeMap<String, DatabaseEntry>,
}

/// One database: a namespace of tables.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseEntry {
    /// Tables by name.
    pub tables: BTreeMap<String, TableEntry>,
}

/// What kind of table, with the facts that kind needs (BRIEF §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TableKind {
    /// Partitioned by its own position; carries overlap rows; has a
    /// director index on `key_column`.
    Director {
        /// The director key (objectId): i64 or i32, unique, not null.
        key_column: String,
        /// Right ascension, degrees (f64).
        ra_column: String,
        /// Declination, degrees (f64).
        decl_column: String,
    },
    /// Placed in the chunk of its director row.
    Child {
        /// The director table, in the same database.
        director_table: String,
        /// The column holding the director key.
        foreign_key_column: String,
        /// The director's right ascension as carried by the child row, if it
        /// has it (then placement uses positions, not the director index).
        ra_column: Option<String>,
        /// The director's declination as carried by the child row.
        decl_column: Option<String>,
    },
    /// Small table stored whole, as one file (chunk id [`REPLICATED_CHUNK_ID`]).
    Replicated,
}

impl TableKind {
    /// `director`, `child` or `replicated`.
    pub fn name(&self) -> &'static str {
        match self {
            TableKind::Director { .. } => "director",
            TableKind::Child { .. } => "child",
            TableKind::Replicated => "replicated",
        }
    }
}

/// One column of a table's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Column type, written as `bool`, `i8`, `i16`, `i32`, `i64`, `f32`,
    /// `f64`, `utf8` or `binary`.
    #[serde(rename = "type", with = "column_type_name")]
    pub column_type: ColumnType,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

/// Spatial partitioning parameters (BRIEF §2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitioning {
    /// Number of declination stripes (S).
    pub stripes: u32,
    /// Sub-stripes per stripe (s).
    pub sub_stripes: u32,
    /// Overlap radius in degrees (R); 0 for child tables.
    pub overlap_deg: f64,
}

impl Partitioning {
    /// Qserv's usual setting: 85 stripes, 12 sub-stripes, 1 arcmin overlap.
    pub fn qserv_default() -> Partitioning {
        Partitioning {
            stripes: 85,
            sub_stripes: 12,
            overlap_deg: 0.01667,
        }
    }

    /// The chunker these parameters describe (fails for invalid parameters).
    pub fn chunker(&self) -> std::result::Result<Chunker, String> {
        Chunker::new(self.stripes, self.sub_stripes, self.overlap_deg)
            .map_err(|e| format!("partitioning {self:?}: {e}"))
    }
}

/// One chunk file of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    /// Chunk id (Qserv numbering; [`REPLICATED_CHUNK_ID`] for replicated tables).
    pub chunk_id: i32,
    /// Index into [`Catalog::spindles`] of the data directory holding the file.
    pub spindle: u32,
    /// File name inside the table's data directory (as written:
    /// [`crate::partition::chunk_file_name`]).
    pub file: String,
    /// Rows the chunk owns.
    pub rows: u64,
    /// Overlap copies held by the chunk (director tables only).
    pub overlap_rows: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// The director index file of a director table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorIndexEntry {
    /// Index into [`Catalog::spindles`].
    pub spindle: u32,
    /// File name inside the table's data directory.
    pub file: String,
    /// Entries (= rows of the table).
    pub entries: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// One published table (one version of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    /// Kind and kind-specific facts.
    pub kind: TableKind,
    /// Columns in storage order.
    pub columns: Vec<ColumnDef>,
    /// Partitioning; `None` exactly for replicated tables.
    pub partitioning: Option<Partitioning>,
    /// Scan rating, 0..=[`MAX_SCAN_RATING`].
    pub scan_rating: u8,
    /// The load that wrote this version (`g<generation>`).
    pub load_id: String,
    /// The table's data directory relative to each spindle:
    /// `data/<database>/<table>.<load_id>`.
    pub data_dir: String,
    /// Rows (each once, overlap copies excluded).
    pub rows: u64,
    /// Overlap copies over all chunks.
    pub overlap_rows: u64,
    /// Bytes of all chunk files and of the director index.
    pub bytes: u64,
    /// Chunk files, by ascending chunk id.
    pub chunks: Vec<ChunkEntry>,
    /// The director index (director tables, when the load built one).
    pub director_index: Option<DirectorIndexEntry>,
    /// When the load committed, seconds since the Unix epoch.
    pub committed_unix_s: u64,
}

impl TableEntry {
    /// The schema as the chunk format knows it, named `table`.
    pub fn schema(&self, table: &str) -> TableSchema {
        TableSchema::new(
            table,
            self.columns
                .iter()
                .map(|c| ColumnSchema::new(c.name.clone(), c.column_type, c.nullable))
                .collect(),
        )
    }

    /// The chunk entry of `chunk_id`.
    pub fn chunk(&self, chunk_id: i32) -> Option<&ChunkEntry> {
        self.chunks
            .binary_search_by_key(&chunk_id, |c| c.chunk_id)
            .ok()
            .and_then(|index| self.chunks.get(index))
    }
}

/// What a load declares about the table it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// Kind and kind-specific facts.
    pub kind: TableKind,
    /// Columns in storage order.
    pub columns: Vec<ColumnDef>,
    /// Partitioning; must be `None` exactly for replicated tables.
    pub partitioning: Option<Partitioning>,
    /// Scan rating, 0..=[`MAX_SCAN_RATING`].
    pub scan_rating: u8,
}

impl TableDef {
    /// Columns of a chunk-format schema.
    pub fn columns_of(schema: &TableSchema) -> Vec<ColumnDef> {
        schema
            .columns
            .iter()
            .map(|c| ColumnDef {
                name: c.name.clone(),
                column_type: c.column_type,
                nullable: c.nullable,
            })
            .collect()
    }

    /// A director table named like `schema`.
    pub fn director(
        schema: &TableSchema,
        key_column: &str,
        ra_column: &str,
        decl_column: &str,
        partitioning: Partitioning,
        scan_rating: u8,
    ) -> TableDef {
        TableDef {
            name: schema.name.clone(),
            kind: TableKind::Director {
                key_column: key_column.to_string(),
                ra_column: ra_column.to_string(),
                decl_column: decl_column.to_string(),
            },
            columns: TableDef::columns_of(schema),
            partitioning: Some(partitioning),
            scan_rating,
        }
    }

    /// A replicated table named like `schema`.
    pub fn replicated(schema: &TableSchema, scan_rating: u8) -> TableDef {
        TableDef {
            name: schema.name.clone(),
            kind: TableKind::Replicated,
            columns: TableDef::columns_of(schema),
            partitioning: None,
            scan_rating,
        }
    }

    /// The schema as the chunk format knows it.
    pub fn schema(&self) -> TableSchema {
        TableSchema::new(
            self.name.clone(),
            self.columns
                .iter()
                .map(|c| ColumnSchema::new(c.name.clone(), c.column_type, c.nullable))
                .collect(),
        )
    }

    /// Checks names, kind facts against the columns, partitioning and rating.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        check_name("table", &self.name)?;
        check_table_shape(
            &self.kind,
            &self.columns,
            self.partitioning.as_ref(),
            self.scan_rating,
        )
    }
}

/// Checks a database, table or load-id name: 1..=64 bytes of ASCII letters,
/// digits, `_` and `-`, not starting with `-`. Names become path components,
/// so nothing else is allowed (no `.`, `/`, spaces).
pub fn check_name(what: &str, name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}`: use 1..={MAX_NAME_LEN} ASCII letters, digits, `_` or `-` \
             (not starting with `-`)"
        ))
    }
}

fn column<'a>(
    columns: &'a [ColumnDef],
    name: &str,
    role: &str,
) -> std::result::Result<&'a ColumnDef, String> {
    columns
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("{role} column `{name}` is not in the schema"))
}

fn check_position_column(
    columns: &[ColumnDef],
    name: &str,
    role: &str,
) -> std::result::Result<(), String> {
    let def = column(columns, name, role)?;
    if def.column_type != ColumnType::F64 {
        return Err(format!(
            "{role} column `{name}` is {:?}; positions are f64 degrees",
            def.column_type
        ));
    }
    Ok(())
}

fn check_key_column(
    columns: &[ColumnDef],
    name: &str,
    role: &str,
) -> std::result::Result<(), String> {
    let def = column(columns, name, role)?;
    if !matches!(def.column_type, ColumnType::I64 | ColumnType::I32) {
        return Err(format!(
            "{role} column `{name}` is {:?}; keys are i64 or i32",
            def.column_type
        ));
    }
    Ok(())
}

/// Checks what a table entry and a table definition share.
fn check_table_shape(
    kind: &TableKind,
    columns: &[ColumnDef],
    partitioning: Option<&Partitioning>,
    scan_rating: u8,
) -> std::result::Result<(), String> {
    if columns.is_empty() || columns.len() > MAX_COLUMNS {
        return Err(format!(
            "{} columns; a table has 1..={MAX_COLUMNS}",
            columns.len()
        ));
    }
    let mut names = HashSet::new();
    for def in columns {
        if def.name.is_empty() || def.name.len() > 1024 {
            return Err(format!("column name `{}`: 1..=1024 bytes", def.name));
        }
        if !names.insert(def.name.as_str()) {
            return Err(format!("duplicate column `{}`", def.name));
        }
    }
    if scan_rating > MAX_SCAN_RATING {
        return Err(format!(
            "scan rating {scan_rating} is over {MAX_SCAN_RATING}"
        ));
    }
    match kind {
        TableKind::Director {
            key_column,
            ra_column,
            decl_column,
        } => {
            check_key_column(columns, key_column, "director key")?;
            check_position_column(columns, ra_column, "ra")?;
            check_position_column(columns, decl_column, "decl")?;
        }
        TableKind::Child {
            director_table,
            foreign_key_column,
            ra_column,
            decl_column,
        } => {
            check_name("director table", director_table)?;
            check_key_column(columns, foreign_key_column, "foreign key")?;
            match (ra_column, decl_column) {
                (Some(ra), Some(decl)) => {
                    check_position_column(columns, ra, "director ra")?;
                    check_position_column(columns, decl, "director decl")?;
                }
                (None, None) => {}
                _ => {
                    return Err(
                        "a child table names both director position columns or neither".to_string(),
                    );
                }
            }
        }
        TableKind::Replicated => {}
    }
    match (kind, partitioning) {
        (TableKind::Replicated, None) => Ok(()),
        (TableKind::Replicated, Some(_)) => {
            Err("a replicated table has no partitioning".to_string())
        }
        (_, None) => Err(format!(
            "a {} table needs partitioning parameters",
            kind.name()
        )),
        (_, Some(partitioning)) => partitioning.chunker().map(|_| ()),
    }
}

impl Catalog {
    /// An empty catalog of generation 1.
    pub(crate) fn empty(database_id: String, spindles: Vec<String>) -> Catalog {
        Catalog {
            format: CATALOG_FORMAT.to_string(),
            version: CATALOG_VERSION,
            generation: 1,
            database_id,
            spindles,
            databases: BTreeMap::new(),
        }
    }

    /// The table `table` of database `database`.
    pub fn table(&self, database: &str, table: &str) -> Option<&TableEntry> {
        self.databases
            .get(database)
            .and_then(|db| db.tables.get(table))
    }

    /// Every table as (database, table, entry), in name order.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str, &TableEntry)> {
        self.databases.iter().flat_map(|(db_name, db)| {
            db.tables
                .iter()
                .map(move |(name, entry)| (db_name.as_str(), name.as_str(), entry))
        })
    }

    /// Parses and validates catalog JSON read from `path` (named in errors).
    /// Foreign JSON and unknown versions are refused before the full parse.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Catalog> {
        #[derive(Deserialize)]
        struct Probe {
            format: Option<String>,
            version: Option<u64>,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| CatalogError::corrupt(path, format!("not catalog JSON: {e}")))?;
        if probe.format.as_deref() != Some(CATALOG_FORMAT) {
            return Err(CatalogError::corrupt(
                path,
                format!("not a skyscan catalog (no \"format\": \"{CATALOG_FORMAT}\")"),
            ));
        }
        match probe.version {
            Some(version) if version == u64::from(CATALOG_VERSION) => {}
            Some(version) => {
                return Err(CatalogError::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "catalog format version {version} is not supported by this skyscan \
                         (it reads version {CATALOG_VERSION}); use a skyscan that knows it"
                    ),
                });
            }
            None => return Err(CatalogError::corrupt(path, "no \"version\" field")),
        }
        let catalog: Catalog = serde_json::from_slice(bytes)
            .map_err(|e| CatalogError::corrupt(path, e.to_string()))?;
        catalog
            .validate()
            .map_err(|message| CatalogError::corrupt(path, message))?;
        Ok(catalog)
    }

    /// Serializes as pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> std::result::Result<Vec<u8>, String> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Checks every invariant of SPEC.md part 3 §3; returns the first violation.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != CATALOG_FORMAT || self.version != CATALOG_VERSION {
            return Err(format!("format `{}` version {}", self.format, self.version));
        }
        if self.generation == 0 {
            return Err("generation 0; generations start at 1".to_string());
        }
        check_name("database id", &self.database_id)?;
        if self.spindles.is_empty() || self.spindles.len() > MAX_SPINDLES {
            return Err(format!(
                "{} spindles; a database has 1..={MAX_SPINDLES}",
                self.spindles.len()
            ));
        }
        for spindle in &self.spindles {
            if spindle.is_empty() {
                return Err("empty spindle path".to_string());
            }
        }
        let spindle_count = self.spindles.len() as u64;
        for (db_name, db) in &self.databases {
            check_name("database", db_name)?;
            for (table_name, table) in &db.tables {
                let at = |message: String| format!("table {db_name}.{table_name}: {message}");
                check_name("table", table_name).map_err(at)?;
                check_table_shape(
                    &table.kind,
                    &table.columns,
                    table.partitioning.as_ref(),
                    table.scan_rating,
                )
                .map_err(at)?;
                check_name("load id", &table.load_id).map_err(at)?;
                let data_dir = table_data_dir(db_name, table_name, &table.load_id);
                if table.data_dir != data_dir {
                    return Err(at(format!(
                        "data_dir `{}`, expected `{data_dir}`",
                        table.data_dir
                    )));
                }
                let chunker = table
                    .partitioning
                    .map(|p| p.chunker())
                    .transpose()
                    .map_err(at)?;
                let (mut rows, mut overlap_rows, mut bytes) = (0u64, 0u64, 0u64);
                let mut previous: Option<i32> = None;
                for chunk in &table.chunks {
                    let chunk_at =
                        |message: String| at(format!("chunk {}: {message}", chunk.chunk_id));
                    if previous.is_some_and(|p| p >= chunk.chunk_id) {
                        return Err(chunk_at(
                            "chunks are not in strictly ascending id order".to_string(),
                        ));
                    }
                    previous = Some(chunk.chunk_id);
                    match &chunker {
                        Some(chunker) if !chunker.is_valid_chunk(chunk.chunk_id) => {
                            return Err(chunk_at(
                                "not a chunk of the table's partitioning".to_string(),
                            ));
                        }
                        None if chunk.chunk_id != REPLICATED_CHUNK_ID => {
                            return Err(chunk_at(format!(
                                "a replicated table has only chunk {REPLICATED_CHUNK_ID}"
                            )));
                        }
                        _ => {}
                    }
                    if u64::from(chunk.spindle) >= spindle_count {
                        return Err(chunk_at(format!(
                            "spindle {} of {spindle_count}",
                            chunk.spindle
                        )));
                    }
                    check_file_name(&chunk.file).map_err(chunk_at)?;
                    if chunk.overlap_rows > 0 && !matches!(table.kind, TableKind::Director { .. }) {
                        return Err(chunk_at(
                            "overlap rows in a table that is not a director".to_string(),
                        ));
                    }
                    rows = rows
                        .checked_add(chunk.rows)
                        .ok_or_else(|| chunk_at("row count overflows".to_string()))?;
                    overlap_rows = overlap_rows
                        .checked_add(chunk.overlap_rows)
                        .ok_or_else(|| chunk_at("overlap row count overflows".to_string()))?;
                    bytes = bytes
                        .checked_add(chunk.bytes)
                        .ok_or_else(|| chunk_at("byte count overflows".to_string()))?;
                }
                if let Some(index) = &table.director_index {
                    if !matches!(table.kind, TableKind::Director { .. }) {
                        return Err(at(
                            "a director index on a table that is not a director".to_string()
                        ));
                    }
                    check_file_name(&index.file).map_err(at)?;
                    if u64::from(index.spindle) >= spindle_count {
                        return Err(at(format!(
                            "director index on spindle {} of {spindle_count}",
                            index.spindle
                        )));
                    }
                    if index.entries != rows {
                        return Err(at(format!(
                            "director index has {} entries, the table {rows} rows",
                            index.entries
                        )));
                    }
                    bytes = bytes
                        .checked_add(index.bytes)
                        .ok_or_else(|| at("byte count overflows".to_string()))?;
                }
                if (rows, overlap_rows, bytes) != (table.rows, table.overlap_rows, table.bytes) {
                    return Err(at(format!(
                        "totals (rows {}, overlap {}, bytes {}) differ from the chunks' sums ({rows}, {overlap_rows}, {bytes})",
                        table.rows, table.overlap_rows, table.bytes
                    )));
                }
                if let TableKind::Child { director_table, .. } = &table.kind {
                    let director = db.tables.get(director_table).ok_or_else(|| {
                        at(format!(
                            "director table `{director_table}` is not in database `{db_name}`"
                        ))
                    })?;
                    check_child_director(table.partitioning.as_ref(), director).map_err(at)?;
                }
            }
        }
        Ok(())
    }
}

/// Checks that `director` can be the director of a child partitioned by `partitioning`.
pub(crate) fn check_child_director(
    partitioning: Option<&Partitioning>,
    director: &TableEntry,
) -> std::result::Result<(), String> {
    if !matches!(director.kind, TableKind::Director { .. }) {
        return Err(format!("its director is a {} table", director.kind.name()));
    }
    match (partitioning, director.partitioning.as_ref()) {
        (Some(child), Some(parent))
            if child.stripes == parent.stripes && child.sub_stripes == parent.sub_stripes =>
        {
            Ok(())
        }
        _ => Err("partitioned with other stripes/sub-stripes than its director".to_string()),
    }
}

/// The file name of a director index inside a table's data directory.
pub(crate) const DIRECTOR_INDEX_FILE: &str = "director.idx";

/// Checks a file name recorded in the catalog: one path component (readers
/// join it to a data directory, so it must not escape it).
fn check_file_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file name `{}` is not a plain file name",
            name.escape_debug()
        ))
    }
}

/// `data/<database>/<table>.<load_id>`: a table version's directory on every spindle.
pub(crate) fn table_data_dir(database: &str, table: &str, load_id: &str) -> String {
    format!("data/{database}/{table}.{load_id}")
}

/// (De)serializes [`ColumnType`] as its lower-case name.
mod column_type_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use skyscan_format::ColumnType;

    const NAMES: [(ColumnType, &str); 9] = [
        (ColumnType::Bool, "bool"),
        (ColumnType::I8, "i8"),
        (ColumnType::I16, "i16"),
        (ColumnType::I32, "i32"),
        (ColumnType::I64, "i64"),
        (ColumnType::F32, "f32"),
        (ColumnType::F64, "f64"),
        (ColumnType::Utf8, "utf8"),
        (ColumnType::Binary, "binary"),
    ];

    pub fn serialize<S: Serializer>(value: &ColumnType, serializer: S) -> Result<S::Ok, S::Error> {
        let name = NAMES
            .iter()
            .find(|(t, _)| t == value)
            .map_or("unknown", |(_, name)| name);
        serializer.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ColumnType, D::Error> {
        let name = String::deserialize(deserializer)?;
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(t, _)| *t)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown column type `{name}`")))
    }
}
