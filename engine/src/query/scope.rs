//! Name resolution: the tables of a query's FROM clause and the columns
//! they make visible.
//!
//! Every table of a query gets a range of *slots* in the query's joined row:
//! its schema columns, then the pseudo-columns `chunkId` and `subChunkId`
//! (partitioned tables only). Bound expressions refer to these global slots;
//! the planner localizes them to one table's schema when they touch only it.

use std::sync::Arc;

use skyscan_format::ColumnData;
use skyscan_kernel::value::DataType;

use super::error::{QueryError, Result};
use crate::apdb::{Apdb, ApdbTable};
use crate::catalog::{Partitioning, TableKind};
use crate::storage::TableHandle;

/// Number of pseudo-columns of a partitioned table (`chunkId`, `subChunkId`).
pub const PSEUDO_COLUMNS: usize = 2;

/// One column a table makes visible.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// Column name as stored.
    pub name: String,
    /// Evaluation type.
    pub data_type: DataType,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// A subquery result used as a table (`FROM (SELECT …) AS t`).
#[derive(Debug, Clone)]
pub struct Materialized {
    /// Whole columns, one per column of the table.
    pub data: Vec<ColumnData>,
}

impl Materialized {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.first().map_or(0, ColumnData::len)
    }
}

/// Where a table's rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A catalog table.
    Catalog(TableHandle),
    /// A materialized subquery.
    Derived(Arc<Materialized>),
    /// A live table of an attached alert-production database.
    Apdb {
        /// The database.
        apdb: Arc<Apdb>,
        /// Which table.
        table: ApdbTable,
    },
}

/// How a table is placed on the sky (what chunk-local joins may rely on).
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// A director table: key column, position columns, partitioning.
    Director {
        /// Index of the key column.
        key: usize,
        /// Index of the right-ascension column.
        ra: usize,
        /// Index of the declination column.
        decl: usize,
        /// The partitioning (overlap radius for near-neighbour joins).
        partitioning: Partitioning,
    },
    /// A child table: placed in its director row's chunk and sub-chunk.
    Child {
        /// The director table's name.
        director: String,
        /// Index of the column holding the director key.
        foreign_key: usize,
        /// Indices of the director position columns the child carries.
        position: Option<(usize, usize)>,
        /// The partitioning.
        partitioning: Partitioning,
    },
    /// Stored whole (replicated table or subquery result): joins anywhere.
    Whole,
}

impl Placement {
    /// True for director and child tables.
    pub fn is_partitioned(&self) -> bool {
        !matches!(self, Placement::Whole)
    }

    /// The position columns the spatial restrictor applies to.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Placement::Director { ra, decl, .. } => Some((*ra, *decl)),
            Placement::Child { position, .. } => *position,
            Placement::Whole => None,
        }
    }

    /// The column holding the director key (the key itself or a child's
    /// foreign key).
    pub fn director_key(&self) -> Option<usize> {
        match self {
            Placement::Director { key, .. } => Some(*key),
            Placement::Child { foreign_key, .. } => Some(*foreign_key),
            Placement::Whole => None,
        }
    }

    /// The partitioning of a partitioned table.
    pub fn partitioning(&self) -> Option<Partitioning> {
        match self {
            Placement::Director { partitioning, .. } | Placement::Child { partitioning, .. } => {
                Some(*partitioning)
            }
            Placement::Whole => None,
        }
    }
}

/// One table of the FROM clause.
#[derive(Debug, Clone)]
pub struct ScopeTable {
    /// The name the query qualifies its columns with (alias, else table name).
    pub alias: String,
    /// The database (catalog tables).
    pub database: Option<String>,
    /// The table name (the alias for derived tables).
    pub table: String,
    /// Where rows come from.
    pub source: Source,
    /// Sky placement.
    pub placement: Placement,
    /// Schema columns.
    pub columns: Vec<ColumnInfo>,
    /// First global slot.
    pub slot_offset: usize,
}

impl ScopeTable {
    /// Slots this table occupies (schema columns plus pseudo-columns).
    pub fn slot_count(&self) -> usize {
        self.columns.len() + PSEUDO_COLUMNS
    }

    /// Index of column `name` (case-insensitive, as MySQL column names),
    /// pseudo-columns included (`columns.len()` = chunkId, `+ 1` = subChunkId).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        if let Some(index) = self
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
        {
            return Some(index);
        }
        if self.placement.is_partitioned() {
            if name.eq_ignore_ascii_case("chunkId") {
                return Some(self.columns.len());
            }
            if name.eq_ignore_ascii_case("subChunkId") {
                return Some(self.columns.len() + 1);
            }
        }
        None
    }

    /// The type of column `index` (pseudo-columns are BIGINT).
    pub fn column_type(&self, index: usize) -> DataType {
        self.columns
            .get(index)
            .map_or(DataType::I64, |c| c.data_type)
    }

    /// The name of column `index`.
    pub fn column_name(&self, index: usize) -> &str {
        match self.columns.get(index) {
            Some(column) => &column.name,
            None if index == self.columns.len() => "chunkId",
            None => "subChunkId",
        }
    }
}

/// The tables of a query and the `USING` columns joining them.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Tables in FROM order.
    pub tables: Vec<ScopeTable>,
    /// `USING (c)` columns: (lower-case name, the tables it joins).
    pub using: Vec<(String, Vec<usize>)>,
}

impl Scope {
    /// Total number of slots.
    pub fn slot_count(&self) -> usize {
        self.tables
            .last()
            .map_or(0, |t| t.slot_offset + t.slot_count())
    }

    /// Adds a table, assigning its slots.
    pub fn push(&mut self, mut table: ScopeTable) -> Result<usize> {
        if self
            .tables
            .iter()
            .any(|t| t.alias.eq_ignore_ascii_case(&table.alias))
        {
            return Err(QueryError::name(format!(
                "not unique table/alias: '{}'",
                table.alias
            )));
        }
        table.slot_offset = self.slot_count();
        self.tables.push(table);
        Ok(self.tables.len() - 1)
    }

    /// The table owning global slot `slot`, and the column index within it.
    pub fn locate_slot(&self, slot: usize) -> Option<(usize, usize)> {
        self.tables.iter().enumerate().find_map(|(index, table)| {
            (slot >= table.slot_offset && slot < table.slot_offset + table.slot_count())
                .then(|| (index, slot - table.slot_offset))
        })
    }

    /// Resolves `[database.][table.]column` to `(table index, column index)`.
    pub fn resolve(&self, parts: &[String]) -> Result<(usize, usize)> {
        match parts {
            [column] => self.resolve_unqualified(column),
            [qualifier, column] => self.resolve_in(None, qualifier, column),
            [database, qualifier, column] => self.resolve_in(Some(database), qualifier, column),
            _ => Err(QueryError::name(format!(
                "column name `{}` has too many parts",
                parts.join(".")
            ))),
        }
    }

    fn resolve_unqualified(&self, column: &str) -> Result<(usize, usize)> {
        let matches: Vec<(usize, usize)> = self
            .tables
            .iter()
            .enumerate()
            .filter_map(|(index, table)| table.column_index(column).map(|c| (index, c)))
            .collect();
        match matches.as_slice() {
            [] => Err(QueryError::name(format!("unknown column '{column}'"))),
            [one] => Ok(*one),
            [first, rest @ ..] => {
                // A USING column is one column: the first table's.
                let lower = column.to_ascii_lowercase();
                let joined = self.using.iter().any(|(name, tables)| {
                    *name == lower
                        && std::iter::once(first)
                            .chain(rest)
                            .all(|(t, _)| tables.contains(t))
                });
                if joined {
                    Ok(*first)
                } else {
                    Err(QueryError::name(format!(
                        "column '{column}' is ambiguous: it is in {}",
                        std::iter::once(first)
                            .chain(rest)
                            .map(|(t, _)| self.tables[*t].alias.clone())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )))
                }
            }
        }
    }

    fn resolve_in(
        &self,
        database: Option<&String>,
        qualifier: &str,
        column: &str,
    ) -> Result<(usize, usize)> {
        let table_index = self.table_index(database, qualifier)?;
        let table = &self.tables[table_index];
        let column_index = table.column_index(column).ok_or_else(|| {
            QueryError::name(format!(
                "unknown column '{column}' in table '{}'",
                table.alias
            ))
        })?;
        Ok((table_index, column_index))
    }

    /// The table a qualifier names (alias first, then table name; exact case
    /// first, then without case).
    pub fn table_index(&self, database: Option<&String>, qualifier: &str) -> Result<usize> {
        let matches_db = |t: &ScopeTable| {
            database.is_none_or(|d| {
                t.database
                    .as_deref()
                    .is_some_and(|td| td.eq_ignore_ascii_case(d))
            })
        };
        let found = self
            .tables
            .iter()
            .position(|t| t.alias == qualifier && matches_db(t))
            .or_else(|| {
                self.tables
                    .iter()
                    .position(|t| t.alias.eq_ignore_ascii_case(qualifier) && matches_db(t))
            })
            .or_else(|| {
                self.tables
                    .iter()
                    .position(|t| t.table.eq_ignore_ascii_case(qualifier) && matches_db(t))
            });
        found.ok_or_else(|| QueryError::name(format!("unknown table '{qualifier}'")))
    }

    /// The global slot of (table, column).
    pub fn slot(&self, table: usize, column: usize) -> usize {
        self.tables[table].slot_offset + column
    }
}

/// The placement of a catalog table from its kind.
pub fn placement_of(handle: &TableHandle) -> Result<Placement> {
    let entry = handle.entry();
    let index = |name: &str| -> Result<usize> {
        entry
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                QueryError::internal(format!(
                    "catalog of {}.{} names column {name}, which it lacks",
                    handle.database(),
                    handle.table()
                ))
            })
    };
    Ok(match (&entry.kind, entry.partitioning) {
        (
            TableKind::Director {
                key_column,
                ra_column,
                decl_column,
            },
            Some(partitioning),
        ) => Placement::Director {
            key: index(key_column)?,
            ra: index(ra_column)?,
            decl: index(decl_column)?,
            partitioning,
        },
        (
            TableKind::Child {
                director_table,
                foreign_key_column,
                ra_column,
                decl_column,
            },
            Some(partitioning),
        ) => Placement::Child {
            director: director_table.clone(),
            foreign_key: index(foreign_key_column)?,
            position: match (ra_column, decl_column) {
                (Some(ra), Some(decl)) => Some((index(ra)?, index(decl)?)),
                _ => None,
            },
            partitioning,
        },
        _ => Placement::Whole,
    })
}

/// The visible columns of a catalog table.
pub fn columns_of(handle: &TableHandle) -> Vec<ColumnInfo> {
    handle
        .entry()
        .columns
        .iter()
        .map(|c| ColumnInfo {
            name: c.name.clone(),
            data_type: DataType::of_column(c.column_type),
            nullable: c.nullable,
        })
        .collect()
}
