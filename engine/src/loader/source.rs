//! Inputs of the loader: units of reading work (a text file, a Parquet row
//! group, a slice of an in-memory table) that reader threads take in order.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use skyscan_format::{ColumnData, TableSchema};

use crate::catalog::CatalogError;
use crate::ingest::parquet::{ParquetOptions, is_parquet_file, open_parquet_file};
use crate::ingest::schema::SqlTable;
use crate::ingest::tsv::{DelimitedReader, ReaderOptions, TextFormat};
use crate::table::Table;

/// Rows of one in-memory slice unit.
const TABLE_UNIT_ROWS: usize = 1 << 14;
/// Read buffer for text inputs (and for gzip output).
const READ_BUFFER_BYTES: usize = 256 << 10;

/// Rows handed to the loader: `rows` of `columns` (whole columns of which
/// only that range belongs to this batch), from `source_name`, the first of
/// them being record `first_record` (1-based) of that input.
#[derive(Debug)]
pub struct InputBatch<'a> {
    /// One column per schema column.
    pub columns: &'a [ColumnData],
    /// The rows of `columns` that form this batch.
    pub rows: Range<usize>,
    /// The input's name for messages (a path).
    pub source_name: &'a str,
    /// Record (text) or row (Parquet, in-memory) number, 1-based, of `rows.start`.
    pub first_record: u64,
}

/// Where a loader gets its rows from: numbered units, read in increasing
/// order by each reader thread. Row order = unit order, then order within
/// a unit; that order breaks ties when rows sort equal.
pub trait BatchSource: Sync {
    /// The schema every batch follows.
    fn schema(&self) -> &TableSchema;
    /// Number of units.
    fn unit_count(&self) -> usize;
    /// Input bytes of unit `unit` (for progress and ETA).
    fn unit_bytes(&self, unit: usize) -> u64;
    /// Reads unit `unit`, calling `sink` for every batch and adding the
    /// input bytes consumed to `bytes_read` as it goes.
    fn read_unit(
        &self,
        unit: usize,
        bytes_read: &AtomicU64,
        sink: &mut dyn FnMut(InputBatch<'_>) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError>;
}

/// An in-memory table as a source, in slices of 16 Ki rows.
#[derive(Debug)]
pub struct TableSource<'a> {
    table: &'a Table,
}

impl<'a> TableSource<'a> {
    /// The rows of `table`.
    pub fn new(table: &'a Table) -> TableSource<'a> {
        TableSource { table }
    }
}

impl BatchSource for TableSource<'_> {
    fn schema(&self) -> &TableSchema {
        &self.table.schema
    }

    fn unit_count(&self) -> usize {
        self.table.rows().div_ceil(TABLE_UNIT_ROWS)
    }

    fn unit_bytes(&self, unit: usize) -> u64 {
        let rows = self.table.rows();
        let slice = (rows - unit * TABLE_UNIT_ROWS).min(TABLE_UNIT_ROWS) as u64;
        self.table.raw_bytes() * slice / rows.max(1) as u64
    }

    fn read_unit(
        &self,
        unit: usize,
        bytes_read: &AtomicU64,
        sink: &mut dyn FnMut(InputBatch<'_>) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let start = unit * TABLE_UNIT_ROWS;
        let end = (start + TABLE_UNIT_ROWS).min(self.table.rows());
        sink(InputBatch {
            columns: &self.table.columns,
            rows: start..end,
            source_name: &self.table.schema.name,
            first_record: start as u64 + 1,
        })?;
        bytes_read.fetch_add(self.unit_bytes(unit), Ordering::Relaxed);
        Ok(())
    }
}

/// One unit of a [`FileSource`].
#[derive(Debug, Clone)]
enum FileUnit {
    Text {
        path: PathBuf,
        bytes: u64,
    },
    Parquet {
        path: PathBuf,
        row_group: usize,
        rows: u64,
        bytes: u64,
    },
}

/// Files of one table: Parquet (recognized by its magic; one unit per row
/// group), else mysqldump TSV, or MySQL CSV when the name ends in `.csv` /
/// `.csv.gz` (one unit per file); gzip is detected by its magic.
#[derive(Debug)]
pub struct FileSource {
    sql: SqlTable,
    units: Vec<FileUnit>,
    csv_delimiter: u8,
    max_bad_rows: u64,
}

fn io_error(path: &Path, operation: &'static str, source: std::io::Error) -> CatalogError {
    CatalogError::io(path, operation, source)
}

/// Row count and compressed bytes of each row group of a Parquet file.
fn parquet_row_groups(path: &Path) -> Result<Vec<(u64, u64)>, CatalogError> {
    let file = File::open(path).map_err(|e| io_error(path, "open", e))?;
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ParquetRecordBatchReaderBuilder::try_new(file).map(|builder| {
            builder
                .metadata()
                .row_groups()
                .iter()
                .map(|group| {
                    (
                        group.num_rows().max(0) as u64,
                        group.compressed_size().max(0) as u64,
                    )
                })
                .collect::<Vec<_>>()
        })
    }));
    match built {
        Ok(Ok(groups)) => Ok(groups),
        Ok(Err(e)) => Err(CatalogError::Load(format!(
            "{}: corrupt input: not a readable Parquet file: {e}",
            path.display()
        ))),
        Err(_) => Err(CatalogError::Load(format!(
            "{}: corrupt input: the Parquet decoder failed on damaged data",
            path.display()
        ))),
    }
}

impl FileSource {
    /// The files `paths` of table `sql`, in that order. Fails on a missing
    /// or unreadable file, or a damaged Parquet footer.
    pub fn new(
        paths: &[PathBuf],
        sql: &SqlTable,
        csv_delimiter: u8,
    ) -> Result<FileSource, CatalogError> {
        let mut units = Vec::new();
        for path in paths {
            let is_parquet =
                is_parquet_file(path).map_err(|e| CatalogError::Load(e.to_string()))?;
            if is_parquet {
                for (row_group, (rows, bytes)) in parquet_row_groups(path)?.into_iter().enumerate()
                {
                    units.push(FileUnit::Parquet {
                        path: path.clone(),
                        row_group,
                        rows,
                        bytes,
                    });
                }
            } else {
                let bytes = std::fs::metadata(path)
                    .map_err(|e| io_error(path, "stat", e))?
                    .len();
                units.push(FileUnit::Text {
                    path: path.clone(),
                    bytes,
                });
            }
        }
        Ok(FileSource {
            sql: sql.clone(),
            units,
            csv_delimiter,
            max_bad_rows: 0,
        })
    }

    /// Total input bytes.
    pub fn total_bytes(&self) -> u64 {
        (0..self.units.len()).map(|u| self.unit_bytes(u)).sum()
    }
}

/// Counts the bytes read from the underlying file (before decompression).
struct CountingReader<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.counter.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Opens a text input, plain or gzip (by magic), counting file bytes read.
fn open_text<'a>(
    path: &Path,
    counter: &'a AtomicU64,
) -> Result<Box<dyn BufRead + 'a>, CatalogError> {
    let file = File::open(path).map_err(|e| io_error(path, "open", e))?;
    let mut reader = BufReader::with_capacity(
        READ_BUFFER_BYTES,
        CountingReader {
            inner: file,
            counter,
        },
    );
    let head = reader.fill_buf().map_err(|e| io_error(path, "read", e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

fn ingest(error: crate::ingest::IngestError) -> CatalogError {
    CatalogError::Load(error.to_string())
}

impl BatchSource for FileSource {
    fn schema(&self) -> &TableSchema {
        &self.sql.schema
    }

    fn unit_count(&self) -> usize {
        self.units.len()
    }

    fn unit_bytes(&self, unit: usize) -> u64 {
        match &self.units[unit] {
            FileUnit::Text { bytes, .. } | FileUnit::Parquet { bytes, .. } => *bytes,
        }
    }

    fn read_unit(
        &self,
        unit: usize,
        bytes_read: &AtomicU64,
        sink: &mut dyn FnMut(InputBatch<'_>) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        match &self.units[unit] {
            FileUnit::Text { path, .. } => {
                let name = path.display().to_string();
                let lower = name.to_ascii_lowercase();
                let format = if lower.ends_with(".csv") || lower.ends_with(".csv.gz") {
                    TextFormat::mysql_csv(self.csv_delimiter)
                } else {
                    TextFormat::mysql_tsv()
                };
                let options = ReaderOptions {
                    format,
                    max_bad_rows: self.max_bad_rows,
                    ..ReaderOptions::default()
                };
                let input = open_text(path, bytes_read)?;
                let mut reader = DelimitedReader::new(input, name.clone(), &self.sql, options)
                    .map_err(ingest)?;
                while let Some(batch) = reader.next_batch().map_err(ingest)? {
                    sink(InputBatch {
                        columns: &batch.columns,
                        rows: 0..batch.rows,
                        source_name: &name,
                        first_record: batch.first_record,
                    })?;
                }
                Ok(())
            }
            FileUnit::Parquet {
                path,
                row_group,
                rows,
                bytes,
            } => {
                let name = path.display().to_string();
                let options = ParquetOptions {
                    row_groups: Some(vec![*row_group]),
                    ..ParquetOptions::default()
                };
                let reader = open_parquet_file(path, &self.sql.schema, &options).map_err(ingest)?;
                let mut done = 0u64;
                for batch in reader {
                    let batch = batch.map_err(ingest)?;
                    let share = bytes * (done + batch.rows as u64) / (*rows).max(1)
                        - bytes * done / (*rows).max(1);
                    done += batch.rows as u64;
                    sink(InputBatch {
                        columns: &batch.columns,
                        rows: 0..batch.rows,
                        source_name: &name,
                        first_record: batch.first_record,
                    })?;
                    bytes_read.fetch_add(share, Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }
}
