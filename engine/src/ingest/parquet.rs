//! Reading Parquet files (what astronomers' catalogs ship in today) into
//! batches of [`ColumnData`] under a target [`TableSchema`], through the
//! arrow-rs `parquet` crate.
//!
//! Columns are matched by name (case-insensitively, as MySQL compares
//! names); every schema column must be in the file and the file may hold no
//! other column. Arrow types are converted to the column's type when the
//! conversion is exact (integers widen, or narrow when every value fits;
//! f32 widens to f64; strings and binaries of every offset width); anything
//! else is refused with an error naming the file and the column. A NULL in
//! a NOT NULL column is an error naming the file, row and column. Null
//! slots hold the type's default value, as the text reader leaves them, so
//! the same rows read from Parquet or from TSV give identical columns.
//!
//! The rules are documented in `docs/loading.md`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use skyscan_format::{
    Bitmap, BoolColumn, ColumnData, ColumnType, PrimitiveColumn, TableSchema, VarColumn,
};

use super::tsv::{Batch, MAX_BATCH_ROWS};
use super::{IngestError, ParseError, Result};

/// The 4-byte magic at both ends of a Parquet file.
pub const PARQUET_MAGIC: [u8; 4] = *b"PAR1";

/// Options of a [`ParquetTableReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Rows per batch at most (1..=[`MAX_BATCH_ROWS`]).
    pub batch_rows: usize,
    /// Read only these row groups of the file (all when `None`); lets two
    /// threads split one file.
    pub row_groups: Option<Vec<usize>>,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            batch_rows: 64 * 1024,
            row_groups: None,
        }
    }
}

/// Whether the file at `path` starts with the Parquet magic `PAR1`.
pub fn is_parquet_file(path: &Path) -> Result<bool> {
    let mut head = [0u8; 4];
    let mut file = File::open(path).map_err(|source| IngestError::Io {
        source_name: path.display().to_string(),
        source,
    })?;
    let mut filled = 0;
    while filled < head.len() {
        let read = file
            .read(&mut head[filled..])
            .map_err(|source| IngestError::Io {
                source_name: path.display().to_string(),
                source,
            })?;
        if read == 0 {
            return Ok(false);
        }
        filled += read;
    }
    Ok(head == PARQUET_MAGIC)
}

/// Number of row groups of a Parquet file (reads only its footer).
pub fn parquet_row_groups(path: &Path) -> Result<usize> {
    let source_name = path.display().to_string();
    let file = File::open(path).map_err(|source| IngestError::Io {
        source_name: source_name.clone(),
        source,
    })?;
    let builder = guarded(&source_name, || {
        ParquetRecordBatchReaderBuilder::try_new(file)
    })?;
    Ok(builder.metadata().num_row_groups())
}

/// Streams rows of one table from one Parquet file; see the module docs.
pub struct ParquetTableReader {
    reader: ParquetRecordBatchReader,
    source_name: String,
    schema: TableSchema,
    /// For each schema column, its index in the reader's record batches.
    batch_index: Vec<usize>,
    /// Row number (0-based, in the file) of the first row read.
    first_row: u64,
    /// Rows returned so far.
    rows_read: u64,
    finished: bool,
}

fn corrupt(source_name: &str, error: &dyn std::fmt::Display) -> IngestError {
    IngestError::Corrupt {
        source_name: source_name.to_string(),
        message: format!("not a readable Parquet file: {error}"),
    }
}

/// Runs a parquet-crate call, turning its errors and its panics (it panics
/// on some damaged files) into [`IngestError::Corrupt`].
fn guarded<T>(
    source_name: &str,
    call: impl FnOnce() -> std::result::Result<T, parquet::errors::ParquetError>,
) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(corrupt(source_name, &error)),
        Err(_) => Err(corrupt(source_name, &"the decoder failed on damaged data")),
    }
}

/// Opens `path` as a reader of rows of `schema`.
pub fn open_parquet_file(
    path: &Path,
    schema: &TableSchema,
    options: &ParquetOptions,
) -> Result<ParquetTableReader> {
    if !(1..=MAX_BATCH_ROWS).contains(&options.batch_rows) {
        return Err(IngestError::InvalidOptions(format!(
            "batch_rows {} outside 1..={MAX_BATCH_ROWS}",
            options.batch_rows
        )));
    }
    let source_name = path.display().to_string();
    let file = File::open(path).map_err(|source| IngestError::Io {
        source_name: source_name.clone(),
        source,
    })?;
    let builder = guarded(&source_name, || {
        ParquetRecordBatchReaderBuilder::try_new(file)
    })?;
    let file_schema = builder.schema().clone();
    let mismatch = |message: String| IngestError::Schema {
        source_name: source_name.clone(),
        message,
    };
    // Match file columns to schema columns by name, refusing extras.
    let mut file_index_of = vec![usize::MAX; schema.columns.len()];
    for (file_index, field) in file_schema.fields().iter().enumerate() {
        let target = schema
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(field.name()))
            .ok_or_else(|| {
                mismatch(format!(
                    "column `{}` of the Parquet file is not in table `{}`",
                    field.name(),
                    schema.name
                ))
            })?;
        if file_index_of[target] != usize::MAX {
            return Err(mismatch(format!(
                "the Parquet file has column `{}` twice",
                field.name()
            )));
        }
        file_index_of[target] = file_index;
        check_type(field.data_type(), schema.columns[target].column_type).ok_or_else(|| {
            IngestError::UnsupportedType {
                table: schema.name.clone(),
                column: format!("{} (in {source_name})", schema.columns[target].name),
                sql_type: format!(
                    "Parquet/Arrow {} into {:?}",
                    field.data_type(),
                    schema.columns[target].column_type
                ),
            }
        })?;
    }
    if let Some(missing) = file_index_of.iter().position(|&index| index == usize::MAX) {
        return Err(mismatch(format!(
            "column `{}` of table `{}` is not in the Parquet file",
            schema.columns[missing].name, schema.name
        )));
    }
    let mask = ProjectionMask::roots(
        builder.parquet_schema(),
        (0..file_schema.fields().len()).collect::<Vec<_>>(),
    );
    let mut first_row = 0u64;
    let mut builder = builder
        .with_batch_size(options.batch_rows)
        .with_projection(mask);
    if let Some(groups) = &options.row_groups {
        let available = builder.metadata().num_row_groups();
        if let Some(bad) = groups.iter().find(|&&g| g >= available) {
            return Err(IngestError::InvalidOptions(format!(
                "{source_name}: row group {bad} of {available}"
            )));
        }
        // Row numbers in errors count from the file's first row (groups are
        // read in the order given; exact when they are contiguous).
        let first = groups.iter().copied().min().unwrap_or(0);
        first_row = (0..first)
            .map(|g| builder.metadata().row_group(g).num_rows().max(0) as u64)
            .sum();
        builder = builder.with_row_groups(groups.clone());
    }
    let reader = guarded(&source_name, || builder.build())?;
    Ok(ParquetTableReader {
        reader,
        source_name,
        schema: schema.clone(),
        batch_index: file_index_of,
        first_row,
        rows_read: 0,
        finished: false,
    })
}

/// Whether values of arrow type `from` can be read into `to` (exactly, or
/// checked value by value).
fn check_type(from: &DataType, to: ColumnType) -> Option<()> {
    use DataType as D;
    let ok = match to {
        ColumnType::Bool => matches!(from, D::Boolean),
        ColumnType::I8 | ColumnType::I16 | ColumnType::I32 | ColumnType::I64 => matches!(
            from,
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64
        ),
        ColumnType::F32 => matches!(from, D::Float32),
        ColumnType::F64 => matches!(from, D::Float32 | D::Float64),
        ColumnType::Utf8 => matches!(from, D::Utf8 | D::LargeUtf8 | D::Utf8View),
        ColumnType::Binary => matches!(
            from,
            D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)
        ),
    };
    ok.then_some(())
}

impl ParquetTableReader {
    /// The next batch of rows, or `None` at the end of the file. After an
    /// error the reader is finished.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.finished {
            return Ok(None);
        }
        let result = self.read_batch();
        if !matches!(result, Ok(Some(_))) {
            self.finished = true;
        }
        result
    }

    /// Rows returned so far.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    fn read_batch(&mut self) -> Result<Option<Batch>> {
        // The parquet crate panics on some damaged files (e.g. inside
        // arrow-buffer's bit iterators, seen with flipped bytes in
        // tests/parquet_tsv.rs); a user's file must never reach a panic, so a
        // panic while decoding is reported as a corrupt file.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.reader.next()))
            .map_err(|_| corrupt(&self.source_name, &"the decoder failed on damaged data"))?;
        let record_batch: RecordBatch = match next {
            None => return Ok(None),
            Some(Err(error)) => return Err(corrupt(&self.source_name, &error)),
            Some(Ok(batch)) => batch,
        };
        let rows = record_batch.num_rows();
        let first_row = self.first_row + self.rows_read;
        let mut columns = Vec::with_capacity(self.schema.columns.len());
        for (column_index, def) in self.schema.columns.iter().enumerate() {
            let array = record_batch.column(self.batch_index[column_index]);
            let fail = |row: usize, message: String| {
                IngestError::Parse(Box::new(ParseError {
                    source_name: self.source_name.clone(),
                    line: first_row + row as u64 + 1,
                    record: first_row + row as u64 + 1,
                    column: Some((column_index, def.name.clone())),
                    message,
                }))
            };
            if !def.nullable
                && array.null_count() > 0
                && let Some(row) = (0..rows).find(|&row| array.is_null(row))
            {
                return Err(fail(
                    row,
                    format!(
                        "NULL in NOT NULL column (Parquet row {})",
                        first_row + row as u64 + 1
                    ),
                ));
            }
            let converted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                convert(array.as_ref(), def.column_type)
            }))
            .map_err(|_| corrupt(&self.source_name, &"the decoder failed on damaged data"))?;
            let column = converted.map_err(|(row, message)| fail(row, message))?;
            columns.push(column);
        }
        self.rows_read += rows as u64;
        Ok(Some(Batch {
            columns,
            rows,
            first_record: first_row + 1,
            first_line: first_row + 1,
        }))
    }
}

impl Iterator for ParquetTableReader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// A conversion failure: the row (within the batch) and what is wrong.
type Failure = (usize, String);

fn validity_of(array: &dyn Array) -> Option<Bitmap> {
    let nulls = array.logical_nulls()?;
    if nulls.null_count() == 0 {
        return None;
    }
    let bits: Vec<bool> = nulls.iter().collect();
    Some(Bitmap::from_bools(&bits))
}

/// Converts one primitive array into `T`, value by value; null slots get
/// `T::default()`.
fn primitive<S, T>(
    array: &dyn Array,
    convert: impl Fn(S::Native) -> Option<T>,
) -> std::result::Result<PrimitiveColumn<T>, Failure>
where
    S: ArrowPrimitiveType,
    S::Native: std::fmt::Display,
    T: Default + Copy,
{
    let typed = array.as_primitive::<S>();
    let validity = validity_of(array);
    let mut values = Vec::with_capacity(typed.len());
    match &validity {
        None => {
            for (row, &value) in typed.values().iter().enumerate() {
                values.push(convert(value).ok_or_else(|| out_of_range(row, value))?);
            }
        }
        Some(valid) => {
            for (row, &value) in typed.values().iter().enumerate() {
                if valid.get(row) {
                    values.push(convert(value).ok_or_else(|| out_of_range(row, value))?);
                } else {
                    values.push(T::default());
                }
            }
        }
    }
    Ok(PrimitiveColumn { values, validity })
}

fn out_of_range(row: usize, value: impl std::fmt::Display) -> Failure {
    (row, format!("value {value} does not fit the column's type"))
}

/// Reads an integer array of any width into `T`, checking the range.
fn integer<T>(array: &dyn Array) -> std::result::Result<PrimitiveColumn<T>, Failure>
where
    T: Default + Copy + TryFrom<i64>,
{
    fn narrow<T: TryFrom<i64>>(value: i64) -> Option<T> {
        T::try_from(value).ok()
    }
    match array.data_type() {
        DataType::Int8 => primitive::<Int8Type, T>(array, |v| narrow(i64::from(v))),
        DataType::Int16 => primitive::<Int16Type, T>(array, |v| narrow(i64::from(v))),
        DataType::Int32 => primitive::<Int32Type, T>(array, |v| narrow(i64::from(v))),
        DataType::Int64 => primitive::<Int64Type, T>(array, narrow),
        DataType::UInt8 => primitive::<UInt8Type, T>(array, |v| narrow(i64::from(v))),
        DataType::UInt16 => primitive::<UInt16Type, T>(array, |v| narrow(i64::from(v))),
        DataType::UInt32 => primitive::<UInt32Type, T>(array, |v| narrow(i64::from(v))),
        DataType::UInt64 => {
            primitive::<UInt64Type, T>(array, |v| i64::try_from(v).ok().and_then(narrow))
        }
        other => Err((0, format!("cannot read {other} as an integer"))),
    }
}

fn var_column<'a>(
    array: &dyn Array,
    value: impl Fn(usize) -> &'a [u8],
) -> std::result::Result<VarColumn, Failure> {
    let validity = validity_of(array);
    let rows = array.len();
    let mut column = VarColumn::default();
    column.offsets.reserve(rows);
    for row in 0..rows {
        if validity.as_ref().is_none_or(|v| v.get(row)) {
            column.data.extend_from_slice(value(row));
        }
        let end = u32::try_from(column.data.len())
            .map_err(|_| (row, "more than 4 GiB of values in one batch".to_string()))?;
        column.offsets.push(end);
    }
    column.validity = validity;
    Ok(column)
}

/// Converts one arrow array into a column of type `to` (the caller checked
/// the pair with [`check_type`]).
fn convert(array: &dyn Array, to: ColumnType) -> std::result::Result<ColumnData, Failure> {
    match to {
        ColumnType::Bool => {
            let typed = array
                .as_boolean_opt()
                .ok_or((0, "not a boolean".to_string()))?;
            let validity = validity_of(array);
            let bits: Vec<bool> = (0..typed.len())
                .map(|row| validity.as_ref().is_none_or(|v| v.get(row)) && typed.value(row))
                .collect();
            Ok(ColumnData::Bool(BoolColumn {
                values: Bitmap::from_bools(&bits),
                validity,
            }))
        }
        ColumnType::I8 => integer::<i8>(array).map(ColumnData::I8),
        ColumnType::I16 => integer::<i16>(array).map(ColumnData::I16),
        ColumnType::I32 => integer::<i32>(array).map(ColumnData::I32),
        ColumnType::I64 => integer::<i64>(array).map(ColumnData::I64),
        ColumnType::F32 => primitive::<Float32Type, f32>(array, Some).map(ColumnData::F32),
        ColumnType::F64 => match array.data_type() {
            DataType::Float32 => {
                primitive::<Float32Type, f64>(array, |v| Some(f64::from(v))).map(ColumnData::F64)
            }
            _ => primitive::<Float64Type, f64>(array, Some).map(ColumnData::F64),
        },
        ColumnType::Utf8 => {
            let column = match array.data_type() {
                DataType::Utf8 => {
                    let typed = array.as_string::<i32>();
                    var_column(array, |row| typed.value(row).as_bytes())?
                }
                DataType::LargeUtf8 => {
                    let typed = array.as_string::<i64>();
                    var_column(array, |row| typed.value(row).as_bytes())?
                }
                _ => {
                    let typed = array.as_string_view();
                    var_column(array, |row| typed.value(row).as_bytes())?
                }
            };
            Ok(ColumnData::Utf8(column))
        }
        ColumnType::Binary => {
            let column = match array.data_type() {
                DataType::Binary => {
                    let typed = array.as_binary::<i32>();
                    var_column(array, |row| typed.value(row))?
                }
                DataType::LargeBinary => {
                    let typed = array.as_binary::<i64>();
                    var_column(array, |row| typed.value(row))?
                }
                DataType::FixedSizeBinary(_) => {
                    let typed = array.as_fixed_size_binary();
                    var_column(array, |row| typed.value(row))?
                }
                _ => {
                    let typed = array.as_binary_view();
                    var_column(array, |row| typed.value(row))?
                }
            };
            Ok(ColumnData::Binary(column))
        }
    }
}

/// Most bytes of column data [`read_input_files`] holds by default.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 8 << 30;
/// Most rows of one in-memory table (the partitioner indexes rows with u32).
pub const MAX_TABLE_ROWS: u64 = u32::MAX as u64;

/// Options of [`read_input_files`].
#[derive(Debug, Clone)]
pub struct InputOptions {
    /// Threads reading (Parquet row groups and text files are read in parallel), 1..=64.
    pub threads: usize,
    /// Most bytes of column data held (uncompressed, as
    /// [`crate::table::Table::raw_bytes`] counts them); more is refused.
    pub max_memory_bytes: u64,
    /// Text files ending in `.csv` / `.csv.gz` use MySQL CSV with this
    /// delimiter; other text files are mysqldump TSV.
    pub csv_delimiter: u8,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            threads: 2,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            csv_delimiter: b',',
        }
    }
}

/// One unit of reading work: a text file, or some row groups of a Parquet file.
#[derive(Debug, Clone)]
enum Unit {
    Text(std::path::PathBuf),
    Parquet(std::path::PathBuf, Vec<usize>),
}

/// Reads every input file (Parquet, recognized by its magic; otherwise
/// mysqldump TSV, or MySQL CSV for `*.csv[.gz]`, plain or gzip) into one
/// in-memory table of `sql`'s schema, in file order (and row order within a
/// file). `progress(rows_read_so_far)` is called after every batch (from
/// reader threads). Fails on the first bad file, row or value, or when the
/// data exceed `options.max_memory_bytes`.
pub fn read_input_files(
    paths: &[std::path::PathBuf],
    sql: &super::schema::SqlTable,
    options: &InputOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<crate::table::Table> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    if !(1..=64).contains(&options.threads) {
        return Err(IngestError::InvalidOptions(format!(
            "threads {} outside 1..=64",
            options.threads
        )));
    }
    let mut units = Vec::new();
    for path in paths {
        if is_parquet_file(path)? {
            let groups = parquet_row_groups(path)?;
            // One row group per unit: threads share a file's row groups.
            let all: Vec<usize> = (0..groups).collect();
            for part in all.chunks(1) {
                units.push(Unit::Parquet(path.clone(), part.to_vec()));
            }
        } else {
            units.push(Unit::Text(path.clone()));
        }
    }
    let slots: Vec<Mutex<Option<Result<Vec<Batch>>>>> =
        units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let rows = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let read_unit = |unit: &Unit| -> Result<Vec<Batch>> {
        let mut batches = Vec::new();
        let mut keep = |batch: Batch| -> Result<()> {
            let batch_bytes: u64 = batch
                .columns
                .iter()
                .map(crate::table::column_raw_bytes)
                .sum();
            let total_bytes = bytes.fetch_add(batch_bytes, Ordering::Relaxed) + batch_bytes;
            let total_rows =
                rows.fetch_add(batch.rows as u64, Ordering::Relaxed) + batch.rows as u64;
            if total_bytes > options.max_memory_bytes {
                return Err(IngestError::Limit {
                    source_name: sql.name().to_string(),
                    line: 0,
                    message: format!(
                        "the input needs more than {} bytes of memory (the cap of this \
                         in-memory reader); raise the cap, or load through the streaming \
                         loader (`skyscan load`, `loader::FileSource`), which spills",
                        options.max_memory_bytes
                    ),
                });
            }
            if total_rows > MAX_TABLE_ROWS {
                return Err(IngestError::Limit {
                    source_name: sql.name().to_string(),
                    line: 0,
                    message: format!("more than {MAX_TABLE_ROWS} rows in one load"),
                });
            }
            progress(total_rows);
            batches.push(batch);
            Ok(())
        };
        match unit {
            Unit::Text(path) => {
                let name = path.display().to_string().to_ascii_lowercase();
                let format = if name.ends_with(".csv") || name.ends_with(".csv.gz") {
                    super::tsv::TextFormat::mysql_csv(options.csv_delimiter)
                } else {
                    super::tsv::TextFormat::mysql_tsv()
                };
                let reader_options = super::tsv::ReaderOptions {
                    format,
                    ..super::tsv::ReaderOptions::default()
                };
                for batch in super::tsv::open_table_file(path, sql, reader_options)? {
                    keep(batch?)?;
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
            Unit::Parquet(path, groups) => {
                let parquet_options = ParquetOptions {
                    row_groups: Some(groups.clone()),
                    ..ParquetOptions::default()
                };
                for batch in open_parquet_file(path, &sql.schema, &parquet_options)? {
                    keep(batch?)?;
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
        }
        Ok(batches)
    };
    let threads = options.threads.min(units.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(unit) = units.get(index) else { break };
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = read_unit(unit);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = slots[index].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let mut columns: Vec<ColumnData> = sql
        .schema
        .columns
        .iter()
        .map(|c| ColumnData::empty(c.column_type))
        .collect();
    for (slot, unit) in slots.into_iter().zip(&units) {
        let result = slot
            .into_inner()
            .map_err(|_| IngestError::InvalidOptions("a reader thread failed".to_string()))?;
        // Units after the first failure may not have run; report the first error.
        let Some(result) = result else { continue };
        for batch in result? {
            for (dst, src) in columns.iter_mut().zip(&batch.columns) {
                crate::table::append_column(dst, src).map_err(|message| IngestError::Limit {
                    source_name: match unit {
                        Unit::Text(path) | Unit::Parquet(path, _) => path.display().to_string(),
                    },
                    line: 0,
                    message,
                })?;
            }
        }
    }
    if failed.load(Ordering::Relaxed) {
        return Err(IngestError::InvalidOptions(
            "a reader failed without reporting an error".to_string(),
        ));
    }
    crate::table::Table::new(sql.schema.clone(), columns).map_err(IngestError::InvalidOptions)
}
