//! `import-qserv`: loads a directory laid out like Qserv's integration test
//! cases and ingest bundles into a skyscan database (docs/import-qserv.md).
//!
//! The directory holds `schema/<Table>.schema` (MySQL `CREATE TABLE`),
//! `partition/common.json` (stripes, sub-stripes, default overlap, director
//! database and table), `partition/<Table>.json` for partitioned tables, and
//! one or more data files per table (`<Table>.tsv[.gz]`, `<Table>.csv[.gz]`,
//! or `<Table>.<part>.tsv[.gz]`…, in the directory or in `data/`). Tables
//! without a partition file are replicated.
//!
//! The import runs in two phases so that bad input leaves the database as it
//! was: first every configuration file is parsed and every data file read
//! into memory and checked (field lists against schemas, director positions
//! and keys); nothing is written. Then each table is published with one
//! atomic catalog switch: directors first (with overlap copies and a director
//! index), then their children (placed through the published director index),
//! then the replicated tables. A table that exists already is replaced
//! atomically.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use skyscan_format::{ColumnData, WriteStats, WriterOptions};
use skyscan_sky::Chunker;

use super::IngestError;
use super::schema::{SqlTable, parse_schema_file};
use super::tsv::{ReaderOptions, TextFormat, open_table_file};
use crate::catalog::{
    CatalogError, Database, Load, LoadOptions, Partitioning, TableDef, TableKind,
    write_table_into_load,
};
use crate::director::DirectorIndex;
use crate::partition::{ChunkRows, RowGroupRows, write_chunk_files};
use crate::table::Table;
pub use crate::table::append_column;

/// Largest JSON configuration file read (checked before reading).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Most tables one import takes.
pub const MAX_TABLES: usize = 1024;
/// Most data files per table.
pub const MAX_FILES_PER_TABLE: usize = 100_000;
/// Most rows of one table (the in-memory partitioner indexes rows with u32).
pub const MAX_TABLE_ROWS: u64 = u32::MAX as u64;

/// Options of [`import_qserv`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The skyscan database name the tables go into; `None`: `dirDb` of
    /// `partition/common.json`, else `database` of `ingest/database.json`,
    /// else the input directory's name.
    pub database: Option<String>,
    /// Threads writing chunk files (1..=64).
    pub threads: usize,
    /// Most bytes of column data held in memory for the whole import
    /// (uncompressed, as [`Table::raw_bytes`] counts them).
    pub max_memory_bytes: u64,
    /// How many child rows without a director row are listed by key.
    pub orphans_listed: usize,
    /// Encoding choices of the chunk writer.
    pub writer: WriterOptions,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            database: None,
            threads: 2,
            max_memory_bytes: 8 << 30,
            orphans_listed: 10,
            writer: WriterOptions::default(),
        }
    }
}

/// The import error: what is wrong and where (file, line/record, column).
#[derive(Debug)]
#[non_exhaustive]
pub enum ImportError {
    /// A configuration file (partition JSON, schema, directory layout) is
    /// missing or unusable.
    Config {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or parsing a schema or data file failed.
    Ingest(IngestError),
    /// The data breaks a rule of its table kind (NULL or out-of-range
    /// director position, duplicate director key, child rows that cannot be
    /// placed, a child position inconsistent with its director).
    Data {
        /// The table.
        table: String,
        /// What is wrong, naming file, record and column.
        message: String,
    },
    /// A size limit was exceeded.
    Limit(String),
    /// The database refused an operation.
    Catalog(CatalogError),
    /// Publishing `table` failed after the tables in `published` were
    /// published (each table is all-or-nothing; nothing of `table` is visible).
    Publish {
        /// The table that failed.
        table: String,
        /// Tables of this import published before it.
        published: Vec<String>,
        /// Why it failed.
        source: Box<ImportError>,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Config { path, message } => write!(f, "{}: {message}", path.display()),
            ImportError::Ingest(e) => write!(f, "{e}"),
            ImportError::Data { table, message } => write!(f, "table {table}: {message}"),
            ImportError::Limit(message) => write!(f, "limit: {message}"),
            ImportError::Catalog(e) => write!(f, "{e}"),
            ImportError::Publish {
                table,
                published,
                source,
            } => {
                write!(f, "{source} (nothing of {table} was published")?;
                if published.is_empty() {
                    write!(f, "; the database is as it was)")
                } else {
                    write!(
                        f,
                        "; published before it: {}; re-run the import to retry)",
                        published.join(", ")
                    )
                }
            }
        }
    }
}

impl std::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImportError::Ingest(e) => Some(e),
            ImportError::Catalog(e) => Some(e),
            ImportError::Publish { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<IngestError> for ImportError {
    fn from(e: IngestError) -> Self {
        ImportError::Ingest(e)
    }
}

impl From<CatalogError> for ImportError {
    fn from(e: CatalogError) -> Self {
        ImportError::Catalog(e)
    }
}

/// Result of import operations.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;

fn config(path: &Path, message: impl Into<String>) -> ImportError {
    ImportError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// How a table is partitioned, as its partition JSON says.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Partitioned by its own position, with overlap copies and a director index.
    Director {
        /// The key column (`id` / `dirColName`).
        key_column: String,
        /// Right ascension column (first of `part.pos`).
        ra_column: String,
        /// Declination column (second of `part.pos`).
        decl_column: String,
        /// Overlap radius, degrees (`part.overlap`, else the common default).
        overlap_deg: f64,
    },
    /// Placed in the chunk of its director row.
    Child {
        /// The director table (`dirTable`, else the common `dirTable`).
        director_table: String,
        /// The column holding the director key (`part.id`, else `dirColName`).
        key_column: String,
        /// The director's position carried by the child (`part.pos`), if any.
        position: Option<(String, String)>,
    },
    /// Stored whole (no partition JSON).
    Replicated,
}

/// One table of the input directory.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name (from the schema).
    pub name: String,
    /// The parsed `CREATE TABLE`.
    pub sql: SqlTable,
    /// The schema file.
    pub schema_path: PathBuf,
    /// The partition JSON, if the table is partitioned.
    pub partition_path: Option<PathBuf>,
    /// Data files, in load order.
    pub data_files: Vec<PathBuf>,
    /// Kind and placement facts.
    pub role: Role,
    /// Scan rating (`sharedScan.scanRating`, 0 when absent).
    pub scan_rating: u8,
    /// Text dialect of the data files.
    pub format: TextFormat,
}

/// What `partition/common.json` and the table files describe.
#[derive(Debug, Clone)]
pub struct QservLayout {
    /// The input directory.
    pub dir: PathBuf,
    /// Database name the tables go into.
    pub database: String,
    /// Stripes, sub-stripes and default overlap.
    pub partitioning: Partitioning,
    /// The tables, in schema-file name order.
    pub tables: Vec<TableSpec>,
}

fn read_json(path: &Path) -> Result<Value> {
    let meta = std::fs::metadata(path).map_err(|e| config(path, e.to_string()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(config(
            path,
            format!("{} bytes; the limit is {MAX_CONFIG_BYTES}", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| config(path, e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| config(path, format!("bad JSON: {e}")))
}

/// `value[a][b]…` if every step exists.
fn at<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |v, k| v.get(*k))
}

fn str_at(value: &Value, keys: &[&str], path: &Path) -> Result<Option<String>> {
    match at(value, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(config(
            path,
            format!("`{}` is {other}, not a string", keys.join(".")),
        )),
    }
}

fn f64_at(value: &Value, keys: &[&str], path: &Path) -> Result<Option<f64>> {
    match at(value, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| config(path, format!("`{}` is {v}, not a number", keys.join(".")))),
    }
}

fn u32_at(value: &Value, keys: &[&str], path: &Path) -> Result<Option<u32>> {
    match at(value, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                config(
                    path,
                    format!("`{}` is {v}, not a small whole number", keys.join(".")),
                )
            }),
    }
}

/// The data file dialect from `in.csv` of common.json and the table JSON.
fn text_format(
    common: &Value,
    table: Option<&Value>,
    files: &[PathBuf],
    path: &Path,
) -> Result<TextFormat> {
    let csv = files.iter().any(|f| {
        let name = f.to_string_lossy();
        name.ends_with(".csv") || name.ends_with(".csv.gz")
    });
    let mut format = if csv {
        TextFormat::mysql_csv(b',')
    } else {
        TextFormat::mysql_tsv()
    };
    let pick = |keys: &[&str]| -> Result<Option<String>> {
        if let Some(table) = table
            && let Some(s) = str_at(table, keys, path)?
        {
            return Ok(Some(s));
        }
        str_at(common, keys, path)
    };
    // str_at trims, which would eat a tab delimiter: read it raw.
    let raw_delimiter = table
        .and_then(|t| at(t, &["in", "csv", "delimiter"]))
        .or_else(|| at(common, &["in", "csv", "delimiter"]));
    if let Some(value) = raw_delimiter {
        match value.as_str().map(str::as_bytes) {
            Some([byte]) => format.delimiter = *byte,
            _ => {
                return Err(config(
                    path,
                    format!("`in.csv.delimiter` {value}: one ASCII character expected"),
                ));
            }
        }
    }
    if let Some(null) = pick(&["in", "csv", "null"])?
        && null != "\\N"
    {
        format.null_literal = Some(null.into_bytes());
    }
    Ok(format)
}

/// Splits `"ra, decl"` into its two column names.
fn position_pair(text: &str, path: &Path) -> Result<(String, String)> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [ra, decl] if !ra.is_empty() && !decl.is_empty() => Ok((ra.to_string(), decl.to_string())),
        _ => Err(config(
            path,
            format!("`part.pos` is `{text}`; expected `ra column, decl column`"),
        )),
    }
}

/// The schema's spelling of column `name` (matched case-insensitively, as MySQL does).
fn schema_column(sql: &SqlTable, name: &str, role: &str, path: &Path) -> Result<String> {
    sql.column_index(name)
        .and_then(|index| sql.columns.get(index))
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            config(
                path,
                format!(
                    "{role} column `{name}` is not a column of table {}",
                    sql.name()
                ),
            )
        })
}

/// Checks `in.csv.field` (the data files' column order) against the schema's.
fn check_field_list(sql: &SqlTable, table: &Value, path: &Path) -> Result<()> {
    let Some(fields) = at(table, &["in", "csv", "field"]) else {
        return Ok(());
    };
    let fields: Vec<&str> = fields
        .as_array()
        .ok_or_else(|| config(path, "`in.csv.field` is not a list"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::trim)
                .ok_or_else(|| config(path, format!("`in.csv.field` entry {v} is not a string")))
        })
        .collect::<Result<_>>()?;
    for (index, column) in sql.columns.iter().enumerate() {
        match fields.get(index) {
            Some(field) if field.eq_ignore_ascii_case(&column.name) => {}
            Some(field) => {
                return Err(config(
                    path,
                    format!(
                        "`in.csv.field` position {} is `{field}` but column {} of the schema of \
                         {} is `{}`: the data files' column order differs from the schema's",
                        index + 1,
                        index + 1,
                        sql.name(),
                        column.name
                    ),
                ));
            }
            None => {
                return Err(config(
                    path,
                    format!(
                        "`in.csv.field` has {} fields; schema column {} `{}` of {} is missing",
                        fields.len(),
                        index + 1,
                        column.name,
                        sql.name()
                    ),
                ));
            }
        }
    }
    if let Some(extra) = fields.get(sql.columns.len()) {
        return Err(config(
            path,
            format!(
                "`in.csv.field` position {} `{extra}` is not in the schema of {} ({} columns)",
                sql.columns.len() + 1,
                sql.name(),
                sql.columns.len()
            ),
        ));
    }
    Ok(())
}

const DATA_EXTENSIONS: [&str; 4] = [".tsv", ".tsv.gz", ".csv", ".csv.gz"];

/// Data files of `table`: `<table>.<ext>` and `<table>.<part>.<ext>` in
/// `dir` and `dir/data`, sorted by path.
fn data_files(dir: &Path, table: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for base in [dir.to_path_buf(), dir.join("data")] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|e| config(&base, e.to_string()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(table) else {
                continue;
            };
            let matches = DATA_EXTENSIONS.iter().any(|ext| {
                rest == *ext
                    || rest
                        .strip_suffix(ext)
                        .and_then(|middle| middle.strip_prefix('.'))
                        .is_some_and(|part| !part.is_empty() && !part.contains('.'))
            });
            if matches && entry.path().is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    if files.len() > MAX_FILES_PER_TABLE {
        return Err(ImportError::Limit(format!(
            "table {table}: {} data files; the limit is {MAX_FILES_PER_TABLE}",
            files.len()
        )));
    }
    Ok(files)
}

/// Reads the configuration of the Qserv directory `dir` (no data yet).
pub fn read_layout(dir: &Path, database: Option<&str>) -> Result<QservLayout> {
    let schema_dir = dir.join("schema");
    let common_path = dir.join("partition").join("common.json");
    let common = if common_path.exists() {
        read_json(&common_path)?
    } else {
        Value::Object(serde_json::Map::new())
    };
    let database = match database {
        Some(name) => name.to_string(),
        None => {
            let ingest_db = dir.join("ingest").join("database.json");
            let from_ingest = if ingest_db.is_file() {
                str_at(&read_json(&ingest_db)?, &["database"], &ingest_db)?
            } else {
                None
            };
            str_at(&common, &["dirDb"], &common_path)?
                .or(from_ingest)
                .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| config(dir, "no database name; give one"))?
        }
    };
    let default = Partitioning::qserv_default();
    let partitioning = Partitioning {
        stripes: u32_at(&common, &["part", "num-stripes"], &common_path)?
            .unwrap_or(default.stripes),
        sub_stripes: u32_at(&common, &["part", "num-sub-stripes"], &common_path)?
            .unwrap_or(default.sub_stripes),
        overlap_deg: f64_at(&common, &["part", "default-overlap"], &common_path)?
            .unwrap_or(default.overlap_deg),
    };
    partitioning
        .chunker()
        .map_err(|e| config(&common_path, format!("partitioning: {e}")))?;
    let common_director = str_at(&common, &["dirTable"], &common_path)?;

    let mut schema_files: Vec<PathBuf> = std::fs::read_dir(&schema_dir)
        .map_err(|e| {
            config(
                &schema_dir,
                format!("cannot list the schema directory: {e}"),
            )
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "schema" || e == "sql"))
        .collect();
    schema_files.sort();
    if schema_files.is_empty() {
        return Err(config(&schema_dir, "no *.schema files"));
    }
    if schema_files.len() > MAX_TABLES {
        return Err(ImportError::Limit(format!(
            "{} schema files; the limit is {MAX_TABLES}",
            schema_files.len()
        )));
    }
    let mut tables = Vec::new();
    for schema_path in schema_files {
        for sql in parse_schema_file(&schema_path)? {
            let name = sql.name().to_string();
            let partition_path = dir.join("partition").join(format!("{name}.json"));
            let partition = if partition_path.is_file() {
                Some(read_json(&partition_path)?)
            } else {
                None
            };
            let files = data_files(dir, &name)?;
            if files.is_empty() {
                return Err(config(
                    &dir.join(format!("{name}.tsv.gz")),
                    format!(
                        "table {name} (schema {}) has no data file: expected {name}.tsv[.gz] \
                         or {name}.csv[.gz] in {} or its data/ folder",
                        schema_path.display(),
                        dir.display()
                    ),
                ));
            }
            let format = text_format(&common, partition.as_ref(), &files, &partition_path)?;
            let (role, scan_rating) = match &partition {
                None => (Role::Replicated, 0),
                Some(json) => {
                    check_field_list(&sql, json, &partition_path)?;
                    let rating =
                        u32_at(json, &["sharedScan", "scanRating"], &partition_path)?.unwrap_or(0);
                    let rating = u8::try_from(rating).map_err(|_| {
                        config(&partition_path, format!("scan rating {rating} is over 255"))
                    })?;
                    (
                        role_of(
                            &sql,
                            json,
                            common_director.as_deref(),
                            partitioning,
                            &partition_path,
                        )?,
                        rating,
                    )
                }
            };
            tables.push(TableSpec {
                name,
                sql,
                schema_path: schema_path.clone(),
                partition_path: partition.is_some().then_some(partition_path),
                data_files: files,
                role,
                scan_rating,
                format,
            });
        }
    }
    if tables.len() > MAX_TABLES {
        return Err(ImportError::Limit(format!(
            "{} tables; the limit is {MAX_TABLES}",
            tables.len()
        )));
    }
    Ok(QservLayout {
        dir: dir.to_path_buf(),
        database,
        partitioning,
        tables,
    })
}

fn role_of(
    sql: &SqlTable,
    json: &Value,
    common_director: Option<&str>,
    partitioning: Partitioning,
    path: &Path,
) -> Result<Role> {
    let name = sql.name();
    let director_table =
        str_at(json, &["dirTable"], path)?.or_else(|| common_director.map(str::to_string));
    let child_key = str_at(json, &["part", "id"], path)?;
    let is_director = match &director_table {
        Some(director) => director.eq_ignore_ascii_case(name) && child_key.is_none(),
        None => child_key.is_none(),
    };
    let position = str_at(json, &["part", "pos"], path)?
        .map(|text| position_pair(&text, path))
        .transpose()?;
    if is_director {
        let key = str_at(json, &["dirColName"], path)?
            .or(str_at(json, &["id"], path)?)
            .ok_or_else(|| config(path, "a director table needs `id` or `dirColName`"))?;
        let (ra, decl) =
            position.ok_or_else(|| config(path, "a director table needs `part.pos`"))?;
        let overlap_deg =
            f64_at(json, &["part", "overlap"], path)?.unwrap_or(partitioning.overlap_deg);
        Ok(Role::Director {
            key_column: schema_column(sql, &key, "director key", path)?,
            ra_column: schema_column(sql, &ra, "ra", path)?,
            decl_column: schema_column(sql, &decl, "decl", path)?,
            overlap_deg,
        })
    } else {
        let director_table = director_table.ok_or_else(|| {
            config(
                path,
                "a child table needs `dirTable` (here or in common.json)",
            )
        })?;
        let key = child_key
            .or(str_at(json, &["dirColName"], path)?)
            .ok_or_else(|| config(path, "a child table needs `part.id` or `dirColName`"))?;
        let position = match position {
            Some((ra, decl)) => Some((
                schema_column(sql, &ra, "director ra", path)?,
                schema_column(sql, &decl, "director decl", path)?,
            )),
            None => None,
        };
        Ok(Role::Child {
            director_table,
            key_column: schema_column(sql, &key, "director key", path)?,
            position,
        })
    }
}

/// A table read into memory, with where each record came from.
#[derive(Debug)]
pub struct LoadedTable {
    /// The table's spec.
    pub spec: TableSpec,
    /// All rows.
    pub table: Table,
    /// `(first row, file)` of each data file, ascending.
    pub file_starts: Vec<(u64, PathBuf)>,
}

impl LoadedTable {
    /// `file:record N` of row `row` (0-based over the whole table).
    fn locate_row(&self, row: usize) -> String {
        let row = row as u64;
        let index = self
            .file_starts
            .partition_point(|(start, _)| *start <= row)
            .saturating_sub(1);
        match self.file_starts.get(index) {
            Some((start, path)) => format!("{}: record {}", path.display(), row - start + 1),
            None => format!("row {}", row + 1),
        }
    }
}

/// Reads every data file of `spec` into one in-memory table; `budget` is
/// the memory left for the import and is reduced by what was read.
pub fn read_table(spec: &TableSpec, budget: &mut u64) -> Result<LoadedTable> {
    let mut columns: Vec<ColumnData> = spec
        .sql
        .schema
        .columns
        .iter()
        .map(|c| ColumnData::empty(c.column_type))
        .collect();
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut file_starts = Vec::with_capacity(spec.data_files.len());
    for path in &spec.data_files {
        file_starts.push((rows, path.clone()));
        let options = ReaderOptions {
            format: spec.format.clone(),
            ..ReaderOptions::default()
        };
        for batch in open_table_file(path, &spec.sql, options)? {
            let batch = batch?;
            rows += batch.rows as u64;
            if rows > MAX_TABLE_ROWS {
                return Err(ImportError::Limit(format!(
                    "table {}: more than {MAX_TABLE_ROWS} rows",
                    spec.name
                )));
            }
            let batch_bytes: u64 = batch
                .columns
                .iter()
                .map(crate::table::column_raw_bytes)
                .sum();
            bytes += batch_bytes;
            if bytes > *budget {
                return Err(ImportError::Limit(format!(
                    "table {} needs more than the {} bytes of memory left for this import \
                     (ImportOptions::max_memory_bytes); import it in parts",
                    spec.name, *budget
                )));
            }
            for (dst, src) in columns.iter_mut().zip(&batch.columns) {
                append_column(dst, src).map_err(|message| ImportError::Data {
                    table: spec.name.clone(),
                    message: format!("{}: {message}", path.display()),
                })?;
            }
        }
    }
    *budget -= bytes;
    let table =
        Table::new(spec.sql.schema.clone(), columns).map_err(|message| ImportError::Data {
            table: spec.name.clone(),
            message,
        })?;
    Ok(LoadedTable {
        spec: spec.clone(),
        table,
        file_starts,
    })
}

/// Checks a director table: positions present and locatable, keys present and unique.
fn check_director(loaded: &LoadedTable, partitioning: Partitioning) -> Result<()> {
    let Role::Director {
        key_column,
        ra_column,
        decl_column,
        overlap_deg,
    } = &loaded.spec.role
    else {
        return Ok(());
    };
    let name = &loaded.spec.name;
    let data = |message: String| ImportError::Data {
        table: name.clone(),
        message,
    };
    let chunker = Partitioning {
        overlap_deg: *overlap_deg,
        ..partitioning
    }
    .chunker()
    .map_err(|e| data(format!("partitioning: {e}")))?;
    let table = &loaded.table;
    for column_name in [ra_column, decl_column] {
        let column = table
            .column(column_name)
            .ok_or_else(|| data(format!("no column `{column_name}`")))?;
        if let Some(row) = (0..column.len()).find(|&row| !column.is_valid(row)) {
            return Err(data(format!(
                "{}, column `{column_name}`: NULL position in a director table",
                loaded.locate_row(row)
            )));
        }
    }
    let ra = table.f64_column(ra_column).map_err(data)?;
    let decl = table.f64_column(decl_column).map_err(data)?;
    for (row, (&ra, &decl)) in ra.iter().zip(decl).enumerate() {
        if let Err(e) = chunker.locate(ra, decl) {
            return Err(data(format!(
                "{}, columns `{ra_column}`, `{decl_column}`: position ({ra}, {decl}): {e}",
                loaded.locate_row(row)
            )));
        }
    }
    let keys = key_options(table, key_column).map_err(data)?;
    if let Some(row) = keys.iter().position(Option::is_none) {
        return Err(data(format!(
            "{}, column `{key_column}`: NULL director key",
            loaded.locate_row(row)
        )));
    }
    let mut sorted: Vec<(i64, usize)> = keys
        .iter()
        .enumerate()
        .filter_map(|(row, key)| key.map(|k| (k, row)))
        .collect();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(data(format!(
            "duplicate director key {} in column `{key_column}`: {} and {}",
            pair[0].0,
            loaded.locate_row(pair[0].1),
            loaded.locate_row(pair[1].1)
        )));
    }
    Ok(())
}

/// A key column's values as `Option<i64>` (i64 or i32 columns).
fn key_options(table: &Table, name: &str) -> std::result::Result<Vec<Option<i64>>, String> {
    match table.column(name) {
        Some(ColumnData::I64(c)) => Ok((0..c.values.len()).map(|row| c.get(row)).collect()),
        Some(ColumnData::I32(c)) => Ok((0..c.values.len())
            .map(|row| c.get(row).map(i64::from))
            .collect()),
        Some(other) => Err(format!(
            "key column `{name}` is {:?}, not i64 or i32",
            other.column_type()
        )),
        None => Err(format!("no column `{name}`")),
    }
}

/// Child rows whose director row is missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrphanReport {
    /// How many child rows have no director row (or a NULL key); they were
    /// placed by their own director-position columns.
    pub rows: u64,
    /// The first [`ImportOptions::orphans_listed`] of them: where, and the key.
    pub listed: Vec<(String, Option<i64>)>,
    /// Child rows whose position columns locate to another sub-chunk (same
    /// chunk) than their director row; placed at the director's.
    pub sub_chunk_mismatches: u64,
}

/// What the import did with one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// `director`, `child` or `replicated`.
    pub kind: &'static str,
    /// Rows loaded (each once).
    pub rows: u64,
    /// Overlap copies written.
    pub overlap_rows: u64,
    /// Chunk files written.
    pub chunks: u64,
    /// Bytes of the chunk files.
    pub bytes: u64,
    /// Director index entries (director tables).
    pub director_index_entries: Option<u64>,
    /// Seconds spent reading and checking the data files.
    pub read_seconds: f64,
    /// Seconds spent partitioning, writing and publishing.
    pub write_seconds: f64,
    /// Child tables: rows without a director.
    pub orphans: Option<OrphanReport>,
}

/// What [`import_qserv`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The database name the tables went into.
    pub database: String,
    /// Whether the database root was created by this import.
    pub created: bool,
    /// One entry per table, in publish order.
    pub tables: Vec<TableReport>,
}

/// Progress of [`import_qserv`], for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportEvent {
    /// A table's data files were read and checked.
    Read {
        /// Table name.
        table: String,
        /// Rows read.
        rows: u64,
        /// Seconds it took.
        seconds: f64,
    },
    /// A table was published.
    Published(TableReport),
}

/// Imports the Qserv directory `dir` into the skyscan database at `db_root`
/// (created if it has no database yet). See the module docs.
pub fn import_qserv(
    dir: &Path,
    db_root: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&ImportEvent),
) -> Result<ImportReport> {
    let layout = read_layout(dir, options.database.as_deref())?;
    crate::catalog::check_name("database", &layout.database).map_err(|e| config(dir, e))?;
    // Phase 1: read and check everything; nothing is written.
    let mut budget = options.max_memory_bytes;
    let mut loaded = Vec::with_capacity(layout.tables.len());
    for spec in &layout.tables {
        let started = Instant::now();
        let table = read_table(spec, &mut budget)?;
        check_director(&table, layout.partitioning)?;
        if let Role::Child { key_column, .. } = &spec.role {
            key_options(&table.table, key_column).map_err(|message| ImportError::Data {
                table: spec.name.clone(),
                message,
            })?;
        }
        let seconds = started.elapsed().as_secs_f64();
        progress(&ImportEvent::Read {
            table: spec.name.clone(),
            rows: table.table.rows() as u64,
            seconds,
        });
        loaded.push((table, seconds));
    }
    // Children whose director is in this import are placed once against the
    // director's own locations, so that rows which cannot be placed stop the
    // import before anything is published.
    for (child, _) in &loaded {
        let Role::Child { director_table, .. } = &child.spec.role else {
            continue;
        };
        let Some((director, _)) = loaded.iter().find(|(t, _)| {
            t.spec.name == *director_table && matches!(t.spec.role, Role::Director { .. })
        }) else {
            continue;
        };
        let places = director_locations(director, layout.partitioning)?;
        let chunker = Partitioning {
            overlap_deg: 0.0,
            ..layout.partitioning
        }
        .chunker()
        .map_err(|e| config(dir, e))?;
        place_rows(child, &chunker, options, &|sorted: &[i64]| {
            Ok(sorted.iter().map(|key| places.get(key).copied()).collect())
        })?;
    }
    // Phase 2: publish, directors first, then children, then replicated.
    let created = !db_root.join("CURRENT").exists();
    let db = if created {
        Database::create(db_root, &[])?
    } else {
        Database::open(db_root)?
    };
    let rank = |role: &Role| match role {
        Role::Director { .. } => 0,
        Role::Child { .. } => 1,
        Role::Replicated => 2,
    };
    loaded.sort_by_key(|(t, _)| rank(&t.spec.role));
    let mut reports = Vec::with_capacity(loaded.len());
    for (table, read_seconds) in &loaded {
        let started = Instant::now();
        let mut report =
            publish(&db, &layout, table, options).map_err(|e| ImportError::Publish {
                table: table.spec.name.clone(),
                published: reports
                    .iter()
                    .map(|r: &TableReport| r.table.clone())
                    .collect(),
                source: Box::new(e),
            })?;
        report.read_seconds = *read_seconds;
        report.write_seconds = started.elapsed().as_secs_f64();
        progress(&ImportEvent::Published(report.clone()));
        reports.push(report);
    }
    Ok(ImportReport {
        database: layout.database,
        created,
        tables: reports,
    })
}

fn table_def(layout: &QservLayout, loaded: &LoadedTable) -> TableDef {
    let spec = &loaded.spec;
    let schema = &loaded.table.schema;
    match &spec.role {
        Role::Director {
            key_column,
            ra_column,
            decl_column,
            overlap_deg,
        } => TableDef::director(
            schema,
            key_column,
            ra_column,
            decl_column,
            Partitioning {
                overlap_deg: *overlap_deg,
                ..layout.partitioning
            },
            spec.scan_rating,
        ),
        Role::Child {
            director_table,
            key_column,
            position,
        } => TableDef {
            name: schema.name.clone(),
            kind: TableKind::Child {
                director_table: director_table.clone(),
                foreign_key_column: key_column.clone(),
                ra_column: position.as_ref().map(|p| p.0.clone()),
                decl_column: position.as_ref().map(|p| p.1.clone()),
            },
            columns: TableDef::columns_of(schema),
            partitioning: Some(Partitioning {
                overlap_deg: 0.0,
                ..layout.partitioning
            }),
            scan_rating: spec.scan_rating,
        },
        Role::Replicated => TableDef::replicated(schema, spec.scan_rating),
    }
}

fn publish(
    db: &Database,
    layout: &QservLayout,
    loaded: &LoadedTable,
    options: &ImportOptions,
) -> Result<TableReport> {
    let def = table_def(layout, loaded);
    let kind = def.kind.name();
    let exists = db.reload()?.table(&layout.database, &def.name).is_some();
    let mut load = if exists {
        db.begin_replace(&layout.database, def)?
    } else {
        db.begin_load(&layout.database, def)?
    };
    let load_options = LoadOptions {
        writer: options.writer,
        threads: options.threads,
        replace: exists,
        ..LoadOptions::default()
    };
    let mut report = TableReport {
        table: loaded.spec.name.clone(),
        kind,
        rows: 0,
        overlap_rows: 0,
        chunks: 0,
        bytes: 0,
        director_index_entries: None,
        read_seconds: 0.0,
        write_seconds: 0.0,
        orphans: None,
    };
    match &loaded.spec.role {
        Role::Child { .. } => {
            let (assignment, orphans) = place_children(&load, loaded, options)?;
            let written = write_chunks(&load, &loaded.table, &assignment, options)?;
            for (chunk_id, stats) in written {
                load.add_chunk(chunk_id, stats.own_rows, stats.overlap_rows, stats.file_len)?;
                report.chunks += 1;
                report.rows += stats.own_rows;
                report.bytes += stats.file_len;
            }
            report.orphans = Some(orphans);
        }
        _ => {
            let summary = write_table_into_load(&mut load, &loaded.table, &load_options)?;
            report.rows = summary.rows;
            report.overlap_rows = summary.overlap_rows;
            report.chunks = summary.chunks;
            report.bytes = summary.chunk_bytes;
            report.director_index_entries = summary.director_index_entries;
        }
    }
    load.commit()?;
    Ok(report)
}

/// Places each child row through the director's published index
/// ([`place_rows`] has the rules).
fn place_children(
    load: &Load,
    loaded: &LoadedTable,
    options: &ImportOptions,
) -> Result<(BTreeMap<i32, ChunkRows>, OrphanReport)> {
    let Role::Child { director_table, .. } = &loaded.spec.role else {
        return Err(config(&loaded.spec.schema_path, "not a child table"));
    };
    let data = |message: String| ImportError::Data {
        table: loaded.spec.name.clone(),
        message,
    };
    let database = load.database();
    let director = load
        .base_catalog()
        .table(database, director_table)
        .ok_or_else(|| {
            data(format!(
                "director table {database}.{director_table} is neither in the input nor in the database"
            ))
        })?;
    let index_entry = director.director_index.as_ref().ok_or_else(|| {
        data(format!(
            "director table {database}.{director_table} has no director index"
        ))
    })?;
    let path = load.published_file(director, index_entry.spindle, &index_entry.file)?;
    let index = DirectorIndex::open(&path).map_err(|e| data(format!("{}: {e}", path.display())))?;
    let chunker = load
        .chunker()
        .ok_or_else(|| data("a child table needs partitioning".to_string()))?;
    place_rows(loaded, chunker, options, &|sorted: &[i64]| {
        index
            .lookup_sorted_batch(sorted)
            .map_err(|e| format!("{}: {e}", path.display()))
    })
}

/// Where the rows of director `director` go (own rows only), by key.
fn director_locations(
    director: &LoadedTable,
    partitioning: Partitioning,
) -> Result<HashMap<i64, (i32, i32)>> {
    let Role::Director {
        key_column,
        ra_column,
        decl_column,
        ..
    } = &director.spec.role
    else {
        return Ok(HashMap::new());
    };
    let data = |message: String| ImportError::Data {
        table: director.spec.name.clone(),
        message,
    };
    let chunker = partitioning.chunker().map_err(data)?;
    let keys = key_options(&director.table, key_column).map_err(data)?;
    let ra = director.table.f64_column(ra_column).map_err(data)?;
    let decl = director.table.f64_column(decl_column).map_err(data)?;
    let mut places = HashMap::with_capacity(keys.len());
    for ((key, &ra), &decl) in keys.iter().zip(ra).zip(decl) {
        let place = chunker.locate(ra, decl).map_err(|e| data(e.to_string()))?;
        if let Some(key) = key {
            places.insert(*key, (place.chunk_id, place.sub_chunk_id));
        }
    }
    Ok(places)
}

/// Answers director keys (sorted ascending) with `(chunk, sub-chunk)` each.
type DirectorLookup<'a> =
    dyn Fn(&[i64]) -> std::result::Result<Vec<Option<(i32, i32)>>, String> + 'a;

/// Places each child row in the chunk and sub-chunk of its director row,
/// found by `lookup` (sorted keys in, one answer per key out). A row that
/// also carries the director's position must locate to the same chunk (else
/// the import fails). A row without a director row (or with a NULL key) is
/// placed by its own position columns and reported; without them the import
/// fails.
fn place_rows(
    loaded: &LoadedTable,
    chunker: &Chunker,
    options: &ImportOptions,
    lookup: &DirectorLookup<'_>,
) -> Result<(BTreeMap<i32, ChunkRows>, OrphanReport)> {
    let Role::Child {
        director_table,
        key_column,
        position,
    } = &loaded.spec.role
    else {
        return Err(config(&loaded.spec.schema_path, "not a child table"));
    };
    let name = &loaded.spec.name;
    let data = |message: String| ImportError::Data {
        table: name.clone(),
        message,
    };
    let table = &loaded.table;
    let keys = key_options(table, key_column).map_err(data)?;
    let positions: Option<(&ColumnData, &[f64], &ColumnData, &[f64])> = match position {
        Some((ra, decl)) => {
            let ra_values = table.f64_column(ra).map_err(data)?;
            let decl_values = table.f64_column(decl).map_err(data)?;
            let ra_column = table
                .column(ra)
                .ok_or_else(|| data(format!("no column `{ra}`")))?;
            let decl_column = table
                .column(decl)
                .ok_or_else(|| data(format!("no column `{decl}`")))?;
            Some((ra_column, ra_values, decl_column, decl_values))
        }
        None => None,
    };
    let position_of = |row: usize| -> Option<(f64, f64)> {
        let (ra_column, ra, decl_column, decl) = positions?;
        (ra_column.is_valid(row) && decl_column.is_valid(row)).then(|| (ra[row], decl[row]))
    };
    let mut order: Vec<usize> = (0..keys.len()).filter(|&row| keys[row].is_some()).collect();
    order.sort_by_key(|&row| keys[row]);
    let sorted: Vec<i64> = order.iter().filter_map(|&row| keys[row]).collect();
    let found = lookup(&sorted).map_err(data)?;
    if found.len() != sorted.len() {
        return Err(data(format!(
            "director lookup answered {} of {} keys",
            found.len(),
            sorted.len()
        )));
    }
    let mut location: Vec<Option<(i32, i32)>> = vec![None; keys.len()];
    for (&row, answer) in order.iter().zip(found) {
        location[row] = answer;
    }
    let mut orphans = OrphanReport::default();
    let mut placed: Vec<(i32, i32, u32)> = Vec::with_capacity(keys.len());
    let mut inconsistent: Vec<String> = Vec::new();
    let mut inconsistent_count = 0u64;
    let mut unplaceable: Vec<String> = Vec::new();
    let mut unplaceable_count = 0u64;
    let position_names = position
        .as_ref()
        .map(|(ra, decl)| format!("`{ra}`, `{decl}`"))
        .unwrap_or_default();
    for row in 0..keys.len() {
        let own = match position_of(row) {
            Some((ra, decl)) => Some(chunker.locate(ra, decl).map_err(|e| {
                data(format!(
                    "{}, columns {position_names}: position ({ra}, {decl}): {e}",
                    loaded.locate_row(row)
                ))
            })?),
            None => None,
        };
        let row_u32 = u32::try_from(row).map_err(|_| data("too many rows".to_string()))?;
        match (location[row], own) {
            (Some((chunk_id, sub_chunk_id)), own) => {
                if let Some(own) = own {
                    if own.chunk_id != chunk_id {
                        inconsistent_count += 1;
                        if inconsistent.len() < options.orphans_listed {
                            inconsistent.push(format!(
                                "{} (key {:?}: director in chunk {chunk_id}, position in chunk {})",
                                loaded.locate_row(row),
                                keys[row],
                                own.chunk_id
                            ));
                        }
                    } else if own.sub_chunk_id != sub_chunk_id {
                        orphans.sub_chunk_mismatches += 1;
                    }
                }
                placed.push((chunk_id, sub_chunk_id, row_u32));
            }
            (None, own) => {
                orphans.rows += 1;
                if orphans.listed.len() < options.orphans_listed {
                    orphans.listed.push((loaded.locate_row(row), keys[row]));
                }
                match own {
                    Some(own) => placed.push((own.chunk_id, own.sub_chunk_id, row_u32)),
                    None => {
                        unplaceable_count += 1;
                        if unplaceable.len() < options.orphans_listed {
                            unplaceable.push(format!(
                                "{} (key {:?})",
                                loaded.locate_row(row),
                                keys[row]
                            ));
                        }
                    }
                }
            }
        }
    }
    if inconsistent_count > 0 {
        return Err(data(format!(
            "{inconsistent_count} rows carry a director position ({position_names}) in another \
             chunk than their director row in {director_table}: {}",
            inconsistent.join("; ")
        )));
    }
    if unplaceable_count > 0 {
        return Err(data(format!(
            "{unplaceable_count} rows have no director row in {director_table} (column \
             `{key_column}`) and no director position to place them by: {}",
            unplaceable.join("; ")
        )));
    }
    placed.sort_unstable();
    let mut chunks: BTreeMap<i32, ChunkRows> = BTreeMap::new();
    for (chunk_id, sub_chunk_id, row) in placed {
        let chunk = chunks.entry(chunk_id).or_default();
        match chunk.groups.last_mut() {
            Some(group) if group.sub_chunk_id == sub_chunk_id => group.rows.push(row),
            _ => chunk.groups.push(RowGroupRows {
                sub_chunk_id,
                overlap: false,
                rows: vec![row],
            }),
        }
    }
    Ok((chunks, orphans))
}

/// Writes the chunk files of `assignment` into the load's staging, on up to
/// `options.threads` threads.
fn write_chunks(
    load: &Load,
    table: &Table,
    assignment: &BTreeMap<i32, ChunkRows>,
    options: &ImportOptions,
) -> Result<Vec<(i32, WriteStats)>> {
    let work: Vec<(i32, &ChunkRows, PathBuf)> = assignment
        .iter()
        .map(|(&chunk_id, rows)| Ok((chunk_id, rows, load.chunk_path(chunk_id)?)))
        .collect::<Result<_>>()?;
    write_chunk_files(table, &work, &options.writer, options.threads)
        .map_err(|e| ImportError::Catalog(CatalogError::Load(e)))
}

#[cfg(test)]
mod tests {
    use super::append_column;
    use skyscan_format::{BoolColumn, ColumnData, PrimitiveColumn, VarColumn};

    fn check(parts: &[ColumnData], whole: &ColumnData) {
        let mut out = ColumnData::empty(whole.column_type());
        for part in parts {
            assert_eq!(append_column(&mut out, part), Ok(()));
        }
        assert!(out.logical_eq(whole), "{out:?} != {whole:?}");
        assert_eq!(out.null_count(), whole.null_count());
    }

    #[test]
    fn append_keeps_values_and_nulls() {
        let a = [Some(1i64), Some(2)];
        let b = [None, Some(4)];
        let c = [Some(5i64)];
        let whole: Vec<Option<i64>> = a.iter().chain(&b).chain(&c).copied().collect();
        check(
            &[
                ColumnData::I64(PrimitiveColumn::from_options(&a)),
                ColumnData::I64(PrimitiveColumn::from_options(&b)),
                ColumnData::I64(PrimitiveColumn::from_options(&c)),
            ],
            &ColumnData::I64(PrimitiveColumn::from_options(&whole)),
        );
        let a: [Option<&[u8]>; 2] = [Some(b"ab"), Some(b"")];
        let b: [Option<&[u8]>; 2] = [None, Some(b"\xe9t\xe9")];
        let whole: Vec<Option<&[u8]>> = a.iter().chain(&b).copied().collect();
        check(
            &[
                ColumnData::Binary(VarColumn::from_options(&a)),
                ColumnData::Binary(VarColumn::from_options(&b)),
                ColumnData::Binary(VarColumn::from_options(&a)),
            ],
            &ColumnData::Binary(VarColumn::from_options(
                &whole.iter().chain(&a).copied().collect::<Vec<_>>(),
            )),
        );
        let a = [Some(true), None];
        let b = [Some(false), Some(true)];
        let whole: Vec<Option<bool>> = a.iter().chain(&b).copied().collect();
        check(
            &[
                ColumnData::Bool(BoolColumn::from_options(&a)),
                ColumnData::Bool(BoolColumn::from_options(&b)),
            ],
            &ColumnData::Bool(BoolColumn::from_options(&whole)),
        );
    }

    #[test]
    fn append_refuses_other_types() {
        let mut out = ColumnData::empty(skyscan_format::ColumnType::I32);
        let other = ColumnData::I64(PrimitiveColumn::new(vec![1]));
        assert!(append_column(&mut out, &other).is_err());
    }
}
