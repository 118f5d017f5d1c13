//! Writing generated tables as files other tools (and `skyscan load`) read:
//! mysqldump `-T` text (tab-separated, `\N` for NULL, backslash escapes),
//! Parquet (snappy, through arrow-rs's `ArrowWriter`), and the `CREATE
//! TABLE` statement the ingest schema parser reads back.
//!
//! Values survive the round trip exactly: f64 is written as its shortest
//! round-tripping decimal, f32 as the shortest decimal of its (exact) f64
//! value, so the loader's text → f64 → f32 conversion gives back the same
//! bits. Non-finite floats are refused (the text reader refuses them too).

use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use skyscan_format::{Bitmap, ColumnData, ColumnType, TableSchema, VarColumn};

use crate::table::Table;

/// Rows per Parquet row group written by [`write_parquet`] (pyarrow's
/// default is 1 Mi rows; a smaller group lets two loader threads share a
/// modest file).
pub const PARQUET_ROW_GROUP_ROWS: usize = 1 << 20;
/// Rows per record batch handed to the Parquet writer and per progress step.
const EXPORT_BATCH_ROWS: usize = 64 * 1024;

/// The MySQL type written in `CREATE TABLE` for a column type; the ingest
/// type map (docs/ingest.md) maps it back to the same type.
pub fn mysql_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Bool => "BOOLEAN",
        ColumnType::I8 => "TINYINT",
        ColumnType::I16 => "SMALLINT",
        ColumnType::I32 => "INT",
        ColumnType::I64 => "BIGINT",
        ColumnType::F32 => "FLOAT",
        ColumnType::F64 => "DOUBLE",
        ColumnType::Utf8 => "TEXT",
        ColumnType::Binary => "LONGBLOB",
    }
}

/// A `CREATE TABLE` statement for `schema` (utf8mb4, NOT NULL where the
/// schema says so).
pub fn schema_sql(schema: &TableSchema) -> String {
    let mut sql = format!("CREATE TABLE `{}` (\n", schema.name);
    for (index, column) in schema.columns.iter().enumerate() {
        sql.push_str(&format!(
            "  `{}` {}{}{}\n",
            column.name,
            mysql_type(column.column_type),
            if column.nullable { "" } else { " NOT NULL" },
            if index + 1 < schema.columns.len() {
                ","
            } else {
                ""
            }
        ));
    }
    sql.push_str(") ENGINE=MyISAM DEFAULT CHARSET=utf8mb4;\n");
    sql
}

/// Writes `text` escaped as mysqldump does: `\` `\t` `\n` `\r` `\0` and
/// 0x1A escaped, everything else as it is.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            0x1a => out.extend_from_slice(b"\\Z"),
            other => out.push(other),
        }
    }
}

fn write_value(out: &mut Vec<u8>, column: &ColumnData, row: usize) -> Result<(), String> {
    use std::io::Write as _;
    if !column.is_valid(row) {
        out.extend_from_slice(b"\\N");
        return Ok(());
    }
    let written = match column {
        ColumnData::Bool(c) => write!(out, "{}", u8::from(c.values.get(row))),
        ColumnData::I8(c) => write!(out, "{}", c.values[row]),
        ColumnData::I16(c) => write!(out, "{}", c.values[row]),
        ColumnData::I32(c) => write!(out, "{}", c.values[row]),
        ColumnData::I64(c) => write!(out, "{}", c.values[row]),
        ColumnData::F32(c) => {
            let value = f64::from(c.values[row]);
            if !value.is_finite() {
                return Err(format!("row {row}: non-finite value {value}"));
            }
            write!(out, "{value:?}")
        }
        ColumnData::F64(c) => {
            let value = c.values[row];
            if !value.is_finite() {
                return Err(format!("row {row}: non-finite value {value}"));
            }
            write!(out, "{value:?}")
        }
        ColumnData::Utf8(c) | ColumnData::Binary(c) => {
            write_escaped(out, c.value(row));
            Ok(())
        }
    };
    written.map_err(|e| e.to_string())
}

/// Writes `table` as mysqldump `-T` text; `progress(rows_written)` is called
/// every [`EXPORT_BATCH_ROWS`] rows.
pub fn write_tsv(
    table: &Table,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(), String> {
    let rows = table.rows();
    let mut line = Vec::with_capacity(1 << 20);
    for start in (0..rows).step_by(EXPORT_BATCH_ROWS) {
        line.clear();
        for row in start..(start + EXPORT_BATCH_ROWS).min(rows) {
            for (index, column) in table.columns.iter().enumerate() {
                if index > 0 {
                    line.push(b'\t');
                }
                write_value(&mut line, column, row).map_err(|message| {
                    format!(
                        "table {}, column `{}`: {message}",
                        table.schema.name, table.schema.columns[index].name
                    )
                })?;
            }
            line.push(b'\n');
        }
        out.write_all(&line).map_err(|e| e.to_string())?;
        progress((start + EXPORT_BATCH_ROWS).min(rows) as u64);
    }
    out.flush().map_err(|e| e.to_string())
}

fn arrow_type(column_type: ColumnType) -> DataType {
    match column_type {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::I8 => DataType::Int8,
        ColumnType::I16 => DataType::Int16,
        ColumnType::I32 => DataType::Int32,
        ColumnType::I64 => DataType::Int64,
        ColumnType::F32 => DataType::Float32,
        ColumnType::F64 => DataType::Float64,
        ColumnType::Utf8 => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
    }
}

/// The arrow schema of `schema` (same names, types and nullability).
pub fn arrow_schema(schema: &TableSchema) -> Schema {
    Schema::new(
        schema
            .columns
            .iter()
            .map(|c| Field::new(c.name.clone(), arrow_type(c.column_type), c.nullable))
            .collect::<Vec<_>>(),
    )
}

fn nulls(validity: Option<&Bitmap>, range: std::ops::Range<usize>) -> Option<NullBuffer> {
    let validity = validity?;
    let bits: Vec<bool> = range.map(|row| validity.get(row)).collect();
    let buffer = NullBuffer::from(bits);
    (buffer.null_count() > 0).then_some(buffer)
}

fn var_array(
    column: &VarColumn,
    range: std::ops::Range<usize>,
) -> Result<(OffsetBuffer<i32>, Buffer, Option<NullBuffer>), String> {
    let base = column.offsets[range.start];
    let end = column.offsets[range.end];
    let offsets: Vec<i32> = column.offsets[range.start..=range.end]
        .iter()
        .map(|&offset| i32::try_from(offset - base))
        .collect::<Result<_, _>>()
        .map_err(|_| "a batch of values over 2 GiB".to_string())?;
    let data = Buffer::from(&column.data[base as usize..end as usize]);
    Ok((
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        data,
        nulls(column.validity.as_ref(), range),
    ))
}

/// Rows `range` of `column` as an arrow array.
fn arrow_array(column: &ColumnData, range: std::ops::Range<usize>) -> Result<ArrayRef, String> {
    let validity = column.validity();
    macro_rules! prim {
        ($array:ty, $c:expr) => {
            Arc::new(<$array>::new(
                ScalarBuffer::from($c.values[range.clone()].to_vec()),
                nulls(validity, range),
            )) as ArrayRef
        };
    }
    Ok(match column {
        ColumnData::Bool(c) => {
            let bits: Vec<bool> = range.clone().map(|row| c.values.get(row)).collect();
            Arc::new(BooleanArray::new(
                BooleanBuffer::from(bits),
                nulls(validity, range),
            ))
        }
        ColumnData::I8(c) => prim!(Int8Array, c),
        ColumnData::I16(c) => prim!(Int16Array, c),
        ColumnData::I32(c) => prim!(Int32Array, c),
        ColumnData::I64(c) => prim!(Int64Array, c),
        ColumnData::F32(c) => prim!(Float32Array, c),
        ColumnData::F64(c) => prim!(Float64Array, c),
        ColumnData::Utf8(c) => {
            let (offsets, data, nulls) = var_array(c, range)?;
            Arc::new(StringArray::try_new(offsets, data, nulls).map_err(|e| e.to_string())?)
        }
        ColumnData::Binary(c) => {
            let (offsets, data, nulls) = var_array(c, range)?;
            Arc::new(BinaryArray::try_new(offsets, data, nulls).map_err(|e| e.to_string())?)
        }
    })
}

/// Writes `table` as one Parquet file (snappy, row groups of
/// [`PARQUET_ROW_GROUP_ROWS`]); `progress(rows_written)` is called per batch.
pub fn write_parquet(
    table: &Table,
    out: &mut (dyn Write + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<(), String> {
    let schema = Arc::new(arrow_schema(&table.schema));
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_size(PARQUET_ROW_GROUP_ROWS)
        .build();
    let mut writer =
        ArrowWriter::try_new(out, schema.clone(), Some(properties)).map_err(|e| e.to_string())?;
    let rows = table.rows();
    for start in (0..rows).step_by(EXPORT_BATCH_ROWS) {
        let range = start..(start + EXPORT_BATCH_ROWS).min(rows);
        let arrays = table
            .columns
            .iter()
            .map(|column| arrow_array(column, range.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
        progress(range.end as u64);
    }
    writer.close().map_err(|e| e.to_string())?;
    Ok(())
}
