//! The interface between the scan layer and a query: what a query wants
//! from each chunk ([`ChunkTask::plan`]), the decoded row groups it gets
//! ([`ChunkTask::row_group`]), and the query as a whole ([`ScanQuery`]).
//!
//! The same interface serves the plain path ([`crate::scan::run_plain`]) and
//! the shared-scan convoys ([`crate::scan::ScanEngine`]): a query does not
//! know which one runs it.

use std::path::PathBuf;
use std::sync::Arc;

use skyscan_format::{ColumnData, Footer, RowGroupMeta};

use super::error::{Result, StorageError};
use super::table::TableHandle;

/// What a task wants from one chunk file of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Schema column indices, strictly ascending.
    pub columns: Vec<usize>,
    /// Row-group indices (own and/or overlap), strictly ascending.
    pub row_groups: Vec<usize>,
    /// The task takes batches spanning several consecutive row groups of
    /// the plan (all own or all overlap; see [`RowGroupBatch::row_groups`]):
    /// it does not look at sub-chunk ids. Batches of ~200-row sub-chunks
    /// (10^6 Objects at 10^4/deg²) cost a query more in per-batch work than
    /// in the rows themselves.
    pub coalesce: bool,
}

impl ReadPlan {
    /// A plan reading nothing.
    pub fn empty() -> ReadPlan {
        ReadPlan::default()
    }

    /// `columns` of every own row group of `footer` (a full scan).
    pub fn own(footer: &Footer, columns: Vec<usize>) -> ReadPlan {
        ReadPlan {
            columns,
            row_groups: footer
                .row_group_indices(skyscan_format::RowGroupSet::Own)
                .collect(),
            coalesce: false,
        }
    }

    /// `columns` of every row group, own and overlap (near-neighbour joins).
    pub fn all(footer: &Footer, columns: Vec<usize>) -> ReadPlan {
        ReadPlan {
            columns,
            row_groups: (0..footer.row_groups().len()).collect(),
            coalesce: false,
        }
    }

    /// True when the plan reads nothing.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() || self.row_groups.is_empty()
    }

    /// Checks the contract against the file's footer: indices in range,
    /// strictly ascending.
    pub fn check(&self, footer: &Footer) -> Result<()> {
        let columns = footer.schema().columns.len();
        let row_groups = footer.row_groups().len();
        check_ascending("column", &self.columns, columns)?;
        check_ascending("row group", &self.row_groups, row_groups)
    }
}

fn check_ascending(what: &str, indices: &[usize], bound: usize) -> Result<()> {
    for pair in indices.windows(2) {
        if pair[0] >= pair[1] {
            return Err(StorageError::InvalidPlan(format!(
                "{what} indices must be strictly ascending ({} then {})",
                pair[0], pair[1]
            )));
        }
    }
    if let Some(&last) = indices.last()
        && last >= bound
    {
        return Err(StorageError::InvalidPlan(format!(
            "{what} index {last} out of range (the file has {bound})"
        )));
    }
    Ok(())
}

/// Metadata of one chunk file, handed to a task before any block is read.
#[derive(Debug, Clone)]
pub struct ChunkMeta {
    /// The chunk.
    pub chunk_id: i32,
    /// The file's decoded footer (schema, row groups, block statistics for
    /// pruning).
    pub footer: Arc<Footer>,
    /// The chunk file.
    pub path: PathBuf,
    /// The data directory (disk) holding the file.
    pub spindle: u32,
}

/// One decoded row group, or several consecutive ones of a plan with
/// [`ReadPlan::coalesce`].
#[derive(Debug, Clone, Copy)]
pub struct RowGroupBatch<'a> {
    /// Index of the (first) row group in the file's footer.
    pub index: usize,
    /// Number of row groups in the batch: `index`, then the plan's next
    /// `row_groups - 1` ones. More than 1 only for a coalescing plan.
    pub row_groups: usize,
    /// Sub-chunk id and overlap flag of the first row group; the row count
    /// of the whole batch.
    pub meta: RowGroupMeta,
    /// Decoded columns indexed by schema column index: `Some` for every
    /// column the task planned (and possibly others that another task of a
    /// shared scan planned), `None` for columns no task asked for.
    pub columns: &'a [Option<ColumnData>],
}

impl<'a> RowGroupBatch<'a> {
    /// Column `index`, or an error naming it when it was not planned.
    pub fn column(&self, index: usize) -> Result<&'a ColumnData> {
        match self.columns.get(index) {
            Some(Some(column)) => Ok(column),
            _ => Err(StorageError::InvalidPlan(format!(
                "column {index} was not read for row group {}",
                self.index
            ))),
        }
    }

    /// Number of rows.
    pub fn row_count(&self) -> usize {
        self.meta.row_count as usize
    }
}

/// A query's work on one chunk (all of its tables). Created per chunk by
/// [`ScanQuery::new_task`], handed back by [`ScanQuery::finish_task`].
///
/// `Any` is a supertrait so that `finish_task` can recover the concrete
/// type: `let any: Box<dyn Any> = task; any.downcast::<MyTask>()`.
pub trait ChunkTask: Send + std::any::Any {
    /// Given the footer of table `table`'s file for this chunk, what to read
    /// (an empty plan reads nothing for this task). Called once per table
    /// that has the chunk, in the order of [`ScanQuery::tables`], before any
    /// row group of the chunk is delivered.
    fn plan(&mut self, table: usize, meta: &ChunkMeta) -> Result<ReadPlan>;

    /// One decoded row group (or run of them, for a coalescing plan) of
    /// table `table`, in ascending row-group order; tables are delivered in
    /// the order of [`ScanQuery::tables`]. Exactly the row groups of the
    /// plan are delivered, each once.
    fn row_group(&mut self, table: usize, batch: &RowGroupBatch<'_>) -> Result<()>;
}

/// A query as the scan layer sees it.
pub trait ScanQuery: Send + Sync {
    /// The tables the query reads, resolved once.
    fn tables(&self) -> &[TableHandle];

    /// Chunk ids to visit (after pruning), strictly ascending. A chunk a
    /// table lacks is skipped for that table (the task sees no row group
    /// from it); a chunk no table has is skipped (no task is created).
    fn chunks(&self) -> &[i32];

    /// A task for `chunk_id`.
    fn new_task(&self, chunk_id: i32) -> Result<Box<dyn ChunkTask>>;

    /// All tables of the chunk delivered: the task is handed back (its
    /// partial result goes to the query's merge step). Called exactly once
    /// per chunk that ran to completion, from any worker thread, in any
    /// chunk order. Never called for a chunk whose task failed.
    fn finish_task(&self, chunk_id: i32, task: Box<dyn ChunkTask>) -> Result<()>;

    /// Bytes the query itself holds (partial results, merge state), for the
    /// per-query memory limit. The scan layer adds the bytes it reads for
    /// the query. Default: not reported.
    fn memory_bytes(&self) -> u64 {
        0
    }
}
