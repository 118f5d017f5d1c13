//! Helpers of the scan tests: a database of synthetic objects and simple
//! aggregate queries (sums and counts per chunk) the scan layer runs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::storage::{
    ChunkMeta, ChunkTask, ReadPlan, RowGroupBatch, ScanQuery, StorageError, TableHandle,
};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::Table;
use skyscan_format::ColumnData;

/// A synthetic Object table over a few square degrees (several chunks).
pub fn objects(rows: u64, seed: u64) -> Table {
    generate_objects(&ObjectSpec::with_density(rows, 300.0, seed), 2)
        .into_table()
        .unwrap()
}

/// A two-spindle database holding `lsst.Object`; returns it with the table.
pub fn database(dir: &Path, rows: u64, seed: u64) -> (Database, Table) {
    let db = Database::create(&dir.join("db"), &[dir.join("disk0"), dir.join("disk1")]).unwrap();
    let table = objects(rows, seed);
    let def = TableDef::director(
        &table.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        15,
    );
    load_table_in_memory(&db, "lsst", def, &table, &LoadOptions::default()).unwrap();
    (db, table)
}

/// Aggregates of one column over the rows a task saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnSums {
    /// Non-null values.
    pub count: u64,
    /// Sum of integer values (bools as 0/1), exact.
    pub int_sum: i128,
    /// Sum of float values in delivery order, as bits (exact comparison).
    pub float_sum_bits: u64,
    /// Sum of the byte lengths of string values.
    pub bytes: u64,
}

/// What one chunk's task computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkResult {
    /// Rows delivered.
    pub rows: u64,
    /// Row groups delivered.
    pub row_groups: u64,
    /// Per planned column.
    pub columns: BTreeMap<usize, ColumnSums>,
}

/// Adds one column of a batch into `sums`.
pub fn add_column(column: &ColumnData, sums: &mut ColumnSums) {
    let valid = |row: usize| column.is_valid(row);
    let mut float_sum = f64::from_bits(sums.float_sum_bits);
    match column {
        ColumnData::Bool(c) => {
            for row in (0..c.values.len()).filter(|&r| valid(r)) {
                sums.count += 1;
                sums.int_sum += i128::from(c.values.get(row));
            }
        }
        ColumnData::I8(c) => int_sums(&c.values, valid, sums),
        ColumnData::I16(c) => int_sums(&c.values, valid, sums),
        ColumnData::I32(c) => int_sums(&c.values, valid, sums),
        ColumnData::I64(c) => int_sums(&c.values, valid, sums),
        ColumnData::F32(c) => {
            for (row, &value) in c.values.iter().enumerate() {
                if valid(row) {
                    sums.count += 1;
                    float_sum += f64::from(value);
                }
            }
        }
        ColumnData::F64(c) => {
            for (row, &value) in c.values.iter().enumerate() {
                if valid(row) {
                    sums.count += 1;
                    float_sum += value;
                }
            }
        }
        ColumnData::Utf8(c) | ColumnData::Binary(c) => {
            for row in 0..c.len() {
                if valid(row) {
                    sums.count += 1;
                    sums.bytes += c.value(row).len() as u64;
                }
            }
        }
    }
    sums.float_sum_bits = float_sum.to_bits();
}

fn int_sums<T: Copy + Into<i64>>(
    values: &[T],
    valid: impl Fn(usize) -> bool,
    sums: &mut ColumnSums,
) {
    for (row, &value) in values.iter().enumerate() {
        if valid(row) {
            sums.count += 1;
            sums.int_sum += i128::from(value.into());
        }
    }
}

/// A query summing `columns` of the own rows of one table over `chunks`,
/// optionally sleeping per row group (a slow query) or failing at a chunk.
pub struct SumQuery {
    pub tables: Vec<TableHandle>,
    pub chunks: Vec<i32>,
    pub columns: Vec<usize>,
    pub overlap: bool,
    pub sleep_per_row_group: Duration,
    pub fail_at_chunk: Option<i32>,
    pub results: Mutex<BTreeMap<i32, ChunkResult>>,
    pub duplicates: Mutex<Vec<i32>>,
}

impl SumQuery {
    /// Sums `columns` of every chunk of `table`.
    pub fn new(table: TableHandle, columns: Vec<usize>) -> SumQuery {
        let chunks = table.entry().chunks.iter().map(|c| c.chunk_id).collect();
        SumQuery {
            tables: vec![table],
            chunks,
            columns,
            overlap: false,
            sleep_per_row_group: Duration::ZERO,
            fail_at_chunk: None,
            results: Mutex::new(BTreeMap::new()),
            duplicates: Mutex::new(Vec::new()),
        }
    }

    /// The per-chunk results, taken.
    pub fn results(&self) -> BTreeMap<i32, ChunkResult> {
        self.results.lock().unwrap().clone()
    }

    /// Totals over all chunks (integer parts only: float sums depend on order).
    pub fn totals(&self) -> (u64, BTreeMap<usize, (u64, i128)>) {
        let mut rows = 0;
        let mut columns = BTreeMap::new();
        for result in self.results.lock().unwrap().values() {
            rows += result.rows;
            for (&column, sums) in &result.columns {
                let entry = columns.entry(column).or_insert((0, 0));
                entry.0 += sums.count;
                entry.1 += sums.int_sum;
            }
        }
        (rows, columns)
    }
}

struct SumTask {
    chunk_id: i32,
    columns: Vec<usize>,
    overlap: bool,
    sleep: Duration,
    fail: bool,
    result: ChunkResult,
    /// Last (table, row group) delivered: deliveries must increase.
    last: Option<(usize, usize)>,
}

impl ChunkTask for SumTask {
    fn plan(&mut self, _table: usize, meta: &ChunkMeta) -> Result<ReadPlan, StorageError> {
        assert_eq!(meta.chunk_id, self.chunk_id);
        Ok(if self.overlap {
            ReadPlan::all(&meta.footer, self.columns.clone())
        } else {
            ReadPlan::own(&meta.footer, self.columns.clone())
        })
    }

    fn row_group(&mut self, table: usize, batch: &RowGroupBatch<'_>) -> Result<(), StorageError> {
        let _table = table;
        if self.fail {
            return Err(StorageError::task(format!(
                "task of chunk {} failed",
                self.chunk_id
            )));
        }
        let now = (_table, batch.index);
        if let Some(last) = self.last {
            assert!(now > last, "delivery out of order: {last:?} then {now:?}");
        }
        self.last = Some(now);
        if !self.sleep.is_zero() {
            std::thread::sleep(self.sleep);
        }
        self.result.rows += batch.row_count() as u64;
        self.result.row_groups += 1;
        for &column in &self.columns {
            let data = batch.column(column)?;
            assert_eq!(data.len(), batch.row_count());
            add_column(
                data,
                self.result
                    .columns
                    .entry(table * 1000 + column)
                    .or_default(),
            );
        }
        Ok(())
    }
}

impl ScanQuery for SumQuery {
    fn tables(&self) -> &[TableHandle] {
        &self.tables
    }

    fn chunks(&self) -> &[i32] {
        &self.chunks
    }

    fn new_task(&self, chunk_id: i32) -> Result<Box<dyn ChunkTask>, StorageError> {
        Ok(Box::new(SumTask {
            chunk_id,
            columns: self.columns.clone(),
            overlap: self.overlap,
            sleep: self.sleep_per_row_group,
            fail: self.fail_at_chunk == Some(chunk_id),
            result: ChunkResult::default(),
            last: None,
        }))
    }

    fn finish_task(&self, chunk_id: i32, task: Box<dyn ChunkTask>) -> Result<(), StorageError> {
        let task: Box<dyn std::any::Any> = task;
        let task = task.downcast::<SumTask>().unwrap();
        let mut results = self.results.lock().unwrap();
        if results.insert(chunk_id, task.result).is_some() {
            self.duplicates.lock().unwrap().push(chunk_id);
        }
        Ok(())
    }
}

/// `table` under another name (a second table with the same rows).
pub fn renamed(table: &Table, name: &str) -> Table {
    let mut schema = table.schema.clone();
    schema.name = name.to_string();
    Table::new(schema, table.columns.clone()).unwrap()
}

/// Loads `table` as another director table of `lsst`.
pub fn load_copy(db: &Database, table: &Table, name: &str) {
    let copy = renamed(table, name);
    let def = TableDef::director(
        &copy.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        15,
    );
    load_table_in_memory(db, "lsst", def, &copy, &LoadOptions::default()).unwrap();
}

/// Expected (rows, per column (non-null count, integer sum)) of `table`'s columns.
pub fn expected_totals(table: &Table, columns: &[usize]) -> (u64, BTreeMap<usize, (u64, i128)>) {
    let mut out = BTreeMap::new();
    for &column in columns {
        let mut sums = ColumnSums::default();
        add_column(&table.columns[column], &mut sums);
        out.insert(column, (sums.count, sums.int_sum));
    }
    (table.rows() as u64, out)
}
