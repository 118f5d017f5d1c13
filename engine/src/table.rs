//! A table held in memory as whole columns: what the synthetic generators
//! produce and what the partitioner cuts into chunk files.

use skyscan_format::{ColumnData, TableSchema};

/// Columns of equal length under a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Names and types of the columns.
    pub schema: TableSchema,
    /// One entry per schema column, all of `rows` rows.
    pub columns: Vec<ColumnData>,
}

impl Table {
    /// A table, checking that the columns match the schema in count, type and length.
    pub fn new(schema: TableSchema, columns: Vec<ColumnData>) -> Result<Table, String> {
        if schema.columns.len() != columns.len() {
            return Err(format!(
                "table {}: schema has {} columns, data has {}",
                schema.name,
                schema.columns.len(),
                columns.len()
            ));
        }
        let rows = columns.first().map_or(0, ColumnData::len);
        for (def, data) in schema.columns.iter().zip(&columns) {
            if def.column_type != data.column_type() {
                return Err(format!(
                    "table {}: column {} is declared {:?} but holds {:?}",
                    schema.name,
                    def.name,
                    def.column_type,
                    data.column_type()
                ));
            }
            if data.len() != rows {
                return Err(format!(
                    "table {}: column {} has {} rows, the first column {}",
                    schema.name,
                    def.name,
                    data.len(),
                    rows
                ));
            }
        }
        Ok(Table { schema, columns })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, ColumnData::len)
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.schema
            .column_index(name)
            .and_then(|index| self.columns.get(index))
    }

    /// The f64 values of column `name`, or an error saying why not.
    pub fn f64_column(&self, name: &str) -> Result<&[f64], String> {
        match self.column(name) {
            Some(ColumnData::F64(c)) => Ok(&c.values),
            Some(other) => Err(format!(
                "table {}: column {name} is {:?}, not f64",
                self.schema.name,
                other.column_type()
            )),
            None => Err(format!("table {}: no column {name}", self.schema.name)),
        }
    }

    /// Bytes the values occupy uncompressed (fixed width, or offsets + data, plus validity bitmaps).
    pub fn raw_bytes(&self) -> u64 {
        self.columns.iter().map(column_raw_bytes).sum()
    }
}

/// Uncompressed bytes of one column: what a plain array in memory costs.
pub fn column_raw_bytes(column: &ColumnData) -> u64 {
    let rows = column.len() as u64;
    let values = match column {
        ColumnData::Bool(_) => rows.div_ceil(8),
        ColumnData::I8(_) => rows,
        ColumnData::I16(_) => rows * 2,
        ColumnData::I32(_) | ColumnData::F32(_) => rows * 4,
        ColumnData::I64(_) | ColumnData::F64(_) => rows * 8,
        ColumnData::Utf8(c) | ColumnData::Binary(c) => 4 * (rows + 1) + c.data.len() as u64,
    };
    let validity = if column.validity().is_some() {
        rows.div_ceil(8)
    } else {
        0
    };
    values + validity
}
