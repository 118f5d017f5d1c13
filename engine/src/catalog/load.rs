//! Loading an in-memory [`Table`] through a [`Load`]: partition, write the
//! chunk files into staging, build the director index, commit. What
//! `skyscan demo`, the tests and the benchmarks use; the streaming loader
//! for inputs larger than memory drives [`Load`] the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;

use skyscan_format::{ColumnData, WriteStats, WriterOptions};

use super::db::{Database, Load};
use super::meta::{REPLICATED_CHUNK_ID, TableDef, TableKind};
use super::{CatalogError, Result};
use crate::director::{BuildOptions, DirectorIndex, DirectorIndexBuilder};
use crate::partition::{ChunkRows, RowGroupRows, assign_rows, write_chunk_files};
use crate::table::Table;

/// Rows per row group of a replicated table's single file (its row groups
/// take sub-chunk ids 0, 1, 2, …).
const REPLICATED_ROWS_PER_GROUP: usize = 1 << 20;
/// Most missing director keys named in an error.
const MISSING_KEYS_SHOWN: usize = 5;

/// Options of [`load_table_in_memory`] and [`write_table_into_load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Encoding choices of the chunk writer.
    pub writer: WriterOptions,
    /// Threads writing chunk files (1..=64).
    pub threads: usize,
    /// Replace an existing table of that name ([`Database::begin_replace`]).
    pub replace: bool,
    /// Build the director index of a director table.
    pub director_index: bool,
    /// Memory for the director index builder before it spills, bytes.
    pub index_memory_bytes: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            writer: WriterOptions::default(),
            threads: 2,
            replace: false,
            director_index: true,
            index_memory_bytes: 256 << 20,
        }
    }
}

/// What a load wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Chunk files written.
    pub chunks: u64,
    /// Rows (each once).
    pub rows: u64,
    /// Overlap copies.
    pub overlap_rows: u64,
    /// Bytes of the chunk files.
    pub chunk_bytes: u64,
    /// Director index entries, when one was built.
    pub director_index_entries: Option<u64>,
    /// The catalog generation that published the table (0 before commit).
    pub generation: u64,
}

/// Loads `table` as `def` into `database` and commits: the one call a
/// caller holding a whole table in memory needs.
pub fn load_table_in_memory(
    db: &Database,
    database: &str,
    def: TableDef,
    table: &Table,
    options: &LoadOptions,
) -> Result<LoadSummary> {
    let mut load = if options.replace {
        db.begin_replace(database, def)?
    } else {
        db.begin_load(database, def)?
    };
    let mut summary = write_table_into_load(&mut load, table, options)?;
    let catalog = load.commit()?;
    summary.generation = catalog.generation;
    Ok(summary)
}

/// Partitions `table` according to the load's table definition, writes one
/// chunk file per chunk at [`Load::chunk_path`] (fsynced), declares them,
/// and builds the director index of a director table. Does not commit.
pub fn write_table_into_load(
    load: &mut Load,
    table: &Table,
    options: &LoadOptions,
) -> Result<LoadSummary> {
    let def = load.table_def().clone();
    check_columns(&def, table)?;
    let assignment = assign(load, &def, table)?;
    let work: Vec<(i32, &ChunkRows, PathBuf)> = assignment
        .iter()
        .map(|(&chunk_id, rows)| Ok((chunk_id, rows, load.chunk_path(chunk_id)?)))
        .collect::<Result<_>>()?;
    let written = write_chunks(table, &work, options)?;
    let mut summary = LoadSummary::default();
    for (chunk_id, stats) in written {
        load.add_chunk(chunk_id, stats.own_rows, stats.overlap_rows, stats.file_len)?;
        summary.chunks += 1;
        summary.rows += stats.own_rows;
        summary.overlap_rows += stats.overlap_rows;
        summary.chunk_bytes += stats.file_len;
    }
    if let TableKind::Director { key_column, .. } = &def.kind
        && options.director_index
    {
        let keys = key_values(table, key_column, "director key")?;
        let path = load.director_index_path()?;
        let spill_dir = path.parent().map(PathBuf::from);
        let mut builder = DirectorIndexBuilder::new(BuildOptions {
            memory_budget_bytes: options.index_memory_bytes,
            spill_dir,
            ..BuildOptions::default()
        })
        .map_err(|e| CatalogError::Load(e.to_string()))?;
        let (mut ids, mut chunk_ids, mut sub_chunk_ids) = (Vec::new(), Vec::new(), Vec::new());
        for (&chunk_id, rows) in &assignment {
            for group in rows.groups.iter().filter(|g| !g.overlap) {
                ids.clear();
                ids.extend(group.rows.iter().map(|&row| keys[row as usize]));
                chunk_ids.clear();
                chunk_ids.resize(ids.len(), chunk_id);
                sub_chunk_ids.clear();
                sub_chunk_ids.resize(ids.len(), group.sub_chunk_id);
                builder
                    .add_batch(&ids, &chunk_ids, &sub_chunk_ids)
                    .map_err(|e| CatalogError::Load(e.to_string()))?;
            }
        }
        let stats = builder
            .finish(&path)
            .map_err(|e| CatalogError::Load(e.to_string()))?;
        load.add_director_index(stats.entries)?;
        summary.director_index_entries = Some(stats.entries);
    }
    Ok(summary)
}

fn check_columns(def: &TableDef, table: &Table) -> Result<()> {
    let expected = def.schema();
    let same = expected.columns.len() == table.schema.columns.len()
        && expected
            .columns
            .iter()
            .zip(&table.schema.columns)
            .all(|(a, b)| {
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

/// The key column's values as i64, refusing nulls.
fn key_values<'a>(table: &'a Table, name: &str, role: &str) -> Result<std::borrow::Cow<'a, [i64]>> {
    let column = table
        .column(name)
        .ok_or_else(|| CatalogError::InvalidArgument(format!("{role} column `{name}` missing")))?;
    if column.null_count() > 0 {
        return Err(CatalogError::Load(format!(
            "{role} column `{name}` has {} nulls",
            column.null_count()
        )));
    }
    match column {
        ColumnData::I64(c) => Ok(std::borrow::Cow::Borrowed(&c.values)),
        ColumnData::I32(c) => Ok(std::borrow::Cow::Owned(
            c.values.iter().map(|&v| i64::from(v)).collect(),
        )),
        other => Err(CatalogError::InvalidArgument(format!(
            "{role} column `{name}` is {:?}, not i64 or i32",
            other.column_type()
        ))),
    }
}

/// Which rows go to which chunk and row group.
fn assign(load: &Load, def: &TableDef, table: &Table) -> Result<BTreeMap<i32, ChunkRows>> {
    let positions = |ra: &str, decl: &str| -> Result<(&[f64], &[f64])> {
        let ra = table
            .f64_column(ra)
            .map_err(CatalogError::InvalidArgument)?;
        let decl = table
            .f64_column(decl)
            .map_err(CatalogError::InvalidArgument)?;
        Ok((ra, decl))
    };
    let chunker = load.chunker();
    match (&def.kind, chunker) {
        (
            TableKind::Director {
                ra_column,
                decl_column,
                ..
            },
            Some(chunker),
        ) => {
            let (ra, decl) = positions(ra_column, decl_column)?;
            assign_rows(chunker, ra, decl, chunker.overlap_deg() > 0.0).map_err(CatalogError::Load)
        }
        (
            TableKind::Child {
                ra_column: Some(ra),
                decl_column: Some(decl),
                ..
            },
            Some(chunker),
        ) => {
            let (ra, decl) = positions(ra, decl)?;
            assign_rows(chunker, ra, decl, false).map_err(CatalogError::Load)
        }
        (
            TableKind::Child {
                director_table,
                foreign_key_column,
                ..
            },
            Some(_),
        ) => assign_by_director_index(load, director_table, foreign_key_column, table),
        (TableKind::Replicated, _) => {
            let rows = u32::try_from(table.rows()).map_err(|_| {
                CatalogError::Load(format!("{} rows is too many for one load", table.rows()))
            })?;
            let all: Vec<u32> = (0..rows).collect();
            let groups = all
                .chunks(REPLICATED_ROWS_PER_GROUP)
                .zip(0i32..)
                .map(|(rows, sub_chunk_id)| RowGroupRows {
                    sub_chunk_id,
                    overlap: false,
                    rows: rows.to_vec(),
                })
                .collect();
            Ok(BTreeMap::from([(
                REPLICATED_CHUNK_ID,
                ChunkRows { groups },
            )]))
        }
        (_, None) => Err(CatalogError::InvalidArgument(format!(
            "table {}: no partitioning",
            def.name
        ))),
    }
}

/// Places child rows in the chunk and sub-chunk of their director row, looked
/// up in the director's published index. Rows keep their input order within
/// a sub-chunk. Child rows whose director is missing fail the load.
fn assign_by_director_index(
    load: &Load,
    director_table: &str,
    foreign_key_column: &str,
    table: &Table,
) -> Result<BTreeMap<i32, ChunkRows>> {
    let database = load.database();
    let director = load
        .base_catalog()
        .table(database, director_table)
        .ok_or_else(|| {
            CatalogError::NotFound(format!("director table {database}.{director_table}"))
        })?;
    let index_entry = director.director_index.as_ref().ok_or_else(|| {
        CatalogError::InvalidArgument(format!(
            "director table {database}.{director_table} has no director index; give the child \
             table the director's position columns instead"
        ))
    })?;
    let path = load.published_file(director, index_entry.spindle, &index_entry.file)?;
    let index = DirectorIndex::open(&path).map_err(|e| CatalogError::Load(e.to_string()))?;
    let keys = key_values(table, foreign_key_column, "foreign key")?;
    let rows = u32::try_from(keys.len())
        .map_err(|_| CatalogError::Load(format!("{} rows is too many for one load", keys.len())))?;
    let mut order: Vec<u32> = (0..rows).collect();
    order.sort_by_key(|&row| keys[row as usize]);
    let sorted: Vec<i64> = order.iter().map(|&row| keys[row as usize]).collect();
    let found = index
        .lookup_sorted_batch(&sorted)
        .map_err(|e| CatalogError::Load(e.to_string()))?;
    let mut placed: Vec<(i32, i32, u32)> = Vec::with_capacity(order.len());
    let mut missing: Vec<i64> = Vec::new();
    let mut missing_count = 0u64;
    for ((&row, &key), location) in order.iter().zip(&sorted).zip(found) {
        match location {
            Some((chunk_id, sub_chunk_id)) => placed.push((chunk_id, sub_chunk_id, row)),
            None => {
                missing_count += 1;
                if missing.len() < MISSING_KEYS_SHOWN {
                    missing.push(key);
                }
            }
        }
    }
    if missing_count > 0 {
        return Err(CatalogError::Load(format!(
            "{missing_count} rows of {} have no director row in {database}.{director_table} \
             (column `{foreign_key_column}`, first keys {missing:?})",
            load.table_def().name
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
    Ok(chunks)
}

fn write_chunks(
    table: &Table,
    work: &[(i32, &ChunkRows, PathBuf)],
    options: &LoadOptions,
) -> Result<Vec<(i32, WriteStats)>> {
    write_chunk_files(table, work, &options.writer, options.threads).map_err(CatalogError::Load)
}
