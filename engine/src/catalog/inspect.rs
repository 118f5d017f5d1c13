//! What `skyscan info` and `skyscan verify` report: table sizes and
//! compression from the chunk footers, and a full check of every file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use skyscan_format::{ChunkFile, ColumnType, FileTail, Footer, RowGroupSet, TAIL_LEN};

use super::db::Database;
use super::meta::{Catalog, TableEntry, TableKind};
use super::{CatalogError, Result};
use crate::director::DirectorIndex;

/// Most problems [`verify_database`] collects before it stops looking.
pub const MAX_PROBLEMS: usize = 1000;
/// Largest chunk file `verify` reads into memory.
pub const MAX_VERIFY_FILE_BYTES: u64 = 64 << 30;

/// Size and shape of one table, for `skyscan info`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Database name.
    pub database: String,
    /// Table name.
    pub table: String,
    /// `director`, `child` or `replicated`.
    pub kind: &'static str,
    /// Scan rating.
    pub scan_rating: u8,
    /// Rows (each once).
    pub rows: u64,
    /// Overlap copies.
    pub overlap_rows: u64,
    /// Chunk files.
    pub chunks: u64,
    /// Bytes on disk: chunk files and director index.
    pub bytes: u64,
    /// Bytes of the values as plain arrays (see [`raw_block_bytes`]).
    pub raw_bytes: u64,
    /// Bytes of the encoded blocks.
    pub encoded_bytes: u64,
    /// Bytes of chunk files per spindle (index = spindle).
    pub bytes_per_spindle: Vec<u64>,
    /// Bytes of the director index, if any.
    pub director_index_bytes: Option<u64>,
}

impl TableInfo {
    /// Encoded bytes / raw bytes (lower is better).
    pub fn compression_ratio(&self) -> f64 {
        self.encoded_bytes as f64 / self.raw_bytes.max(1) as f64
    }
}

/// Raw (plain array) bytes of one block, from its footer entry: fixed-width
/// values take `rows × width`, bools `ceil(rows / 8)`, variable-length values
/// their values section before compression (the exact plain size is not in
/// the footer; for PLAIN blocks this is the data plus bit-packed lengths),
/// plus a validity bitmap of `ceil(rows / 8)` when the block has nulls.
pub fn raw_block_bytes(
    column_type: ColumnType,
    row_count: u32,
    null_count: u32,
    values_raw_len: u32,
) -> u64 {
    let rows = u64::from(row_count);
    let values = match column_type.fixed_width() {
        Some(width) => rows * width as u64,
        None if column_type == ColumnType::Bool => rows.div_ceil(8),
        None => u64::from(values_raw_len),
    };
    values + if null_count > 0 { rows.div_ceil(8) } else { 0 }
}

/// Reads and decodes only the tail and the footer of a chunk file.
pub fn read_footer(path: &Path) -> Result<Footer> {
    let mut file = File::open(path).map_err(|e| CatalogError::io(path, "open", e))?;
    let len = file
        .metadata()
        .map_err(|e| CatalogError::io(path, "stat", e))?
        .len();
    if len < TAIL_LEN as u64 {
        return Err(CatalogError::corrupt(
            path,
            format!("{len} bytes: shorter than a chunk file's tail"),
        ));
    }
    let mut tail = [0u8; TAIL_LEN];
    file.seek(SeekFrom::Start(len - TAIL_LEN as u64))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| CatalogError::io(path, "read", e))?;
    let tail =
        FileTail::parse(&tail, len).map_err(|e| CatalogError::corrupt(path, e.to_string()))?;
    let range = tail.footer_range();
    let mut footer = vec![0u8; tail.footer_len as usize];
    file.seek(SeekFrom::Start(range.offset))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(|e| CatalogError::io(path, "read", e))?;
    Footer::decode(&footer, &tail).map_err(|e| CatalogError::corrupt(path, e.to_string()))
}

/// Sizes of every table of `catalog`, reading the footer of every chunk file.
pub fn table_infos(db: &Database, catalog: &Catalog) -> Result<Vec<TableInfo>> {
    let mut infos = Vec::new();
    for (database, table, entry) in catalog.tables() {
        let mut info = TableInfo {
            database: database.to_string(),
            table: table.to_string(),
            kind: entry.kind.name(),
            scan_rating: entry.scan_rating,
            rows: entry.rows,
            overlap_rows: entry.overlap_rows,
            chunks: entry.chunks.len() as u64,
            bytes: entry.bytes,
            raw_bytes: 0,
            encoded_bytes: 0,
            bytes_per_spindle: vec![0; catalog.spindles.len()],
            director_index_bytes: entry.director_index.as_ref().map(|d| d.bytes),
        };
        for chunk in &entry.chunks {
            if let Some(bytes) = info.bytes_per_spindle.get_mut(chunk.spindle as usize) {
                *bytes += chunk.bytes;
            }
            let footer = read_footer(&db.table_file(entry, chunk.spindle, &chunk.file)?)?;
            let columns = footer.schema().columns.len();
            for row_group in 0..footer.row_groups().len() {
                for column in 0..columns {
                    let block = footer
                        .block(row_group, column)
                        .map_err(|e| CatalogError::Load(e.to_string()))?;
                    info.encoded_bytes += block.len();
                    info.raw_bytes += raw_block_bytes(
                        block.column.column_type,
                        block.meta.row_count,
                        block.meta.null_count,
                        block.meta.values_raw_len,
                    );
                }
            }
        }
        if let (Some(index), Some(bytes)) = (&entry.director_index, info.director_index_bytes)
            && let Some(total) = info.bytes_per_spindle.get_mut(index.spindle as usize)
        {
            *total += bytes;
        }
        infos.push(info);
    }
    Ok(infos)
}

/// Where `verify` is, for a progress line.
#[derive(Debug, Clone)]
pub struct VerifyProgress<'a> {
    /// `database.table` being checked.
    pub table: &'a str,
    /// Files checked so far (all tables).
    pub files_done: u64,
    /// Files to check (all tables).
    pub files_total: u64,
    /// Bytes read so far.
    pub bytes_done: u64,
    /// Bytes to read.
    pub bytes_total: u64,
}

/// What `verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files checked (chunk files and director indexes).
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Blocks checksummed and decoded.
    pub blocks: u64,
    /// Rows decoded (own and overlap).
    pub rows: u64,
    /// One line per problem, each naming the file (and the block).
    pub problems: Vec<String>,
    /// True when more than [`MAX_PROBLEMS`] problems were found (the rest not listed).
    pub truncated: bool,
}

impl VerifyReport {
    /// True when nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, path: &Path, message: impl std::fmt::Display) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{}: {message}", path.display()));
        } else {
            self.truncated = true;
        }
    }
}

/// Reads every chunk file of every table of `catalog`: tail, footer, every
/// block's checksum and decoding; compares footers with the catalog (chunk
/// id, schema, own and overlap row counts, sub-chunk ids); opens and checks
/// every block of each director index. Problems are collected, not raised;
/// `Err` only for failures of the verifier itself.
pub fn verify_database(
    db: &Database,
    catalog: &Catalog,
    progress: &mut dyn FnMut(&VerifyProgress<'_>),
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let files_total: u64 = catalog
        .tables()
        .map(|(_, _, t)| t.chunks.len() as u64 + u64::from(t.director_index.is_some()))
        .sum();
    let bytes_total: u64 = catalog.tables().map(|(_, _, t)| t.bytes).sum();
    for (database, table, entry) in catalog.tables() {
        let name = format!("{database}.{table}");
        for chunk in &entry.chunks {
            progress(&VerifyProgress {
                table: &name,
                files_done: report.files,
                files_total,
                bytes_done: report.bytes,
                bytes_total,
            });
            let path = db.table_file(entry, chunk.spindle, &chunk.file)?;
            verify_chunk(
                &path,
                table,
                entry,
                chunk.chunk_id,
                chunk.rows,
                chunk.overlap_rows,
                chunk.bytes,
                &mut report,
            );
            report.files += 1;
        }
        if let Some(index) = &entry.director_index {
            let path = db.table_file(entry, index.spindle, &index.file)?;
            match DirectorIndex::open(&path) {
                Ok(opened) => {
                    if let Err(e) = opened.verify_all() {
                        report.problem(&path, e);
                    } else if opened.len() != index.entries {
                        report.problem(
                            &path,
                            format!(
                                "{} entries, the catalog says {}",
                                opened.len(),
                                index.entries
                            ),
                        );
                    }
                }
                Err(e) => report.problem(&path, e),
            }
            report.files += 1;
            report.bytes += index.bytes;
        }
    }
    progress(&VerifyProgress {
        table: "",
        files_done: report.files,
        files_total,
        bytes_done: report.bytes,
        bytes_total,
    });
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn verify_chunk(
    path: &PathBuf,
    table: &str,
    entry: &TableEntry,
    chunk_id: i32,
    rows: u64,
    overlap_rows: u64,
    bytes: u64,
    report: &mut VerifyReport,
) {
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) => return report.problem(path, format!("cannot stat: {e}")),
    };
    if len != bytes {
        report.problem(path, format!("{len} bytes, the catalog says {bytes}"));
    }
    if len > MAX_VERIFY_FILE_BYTES {
        return report.problem(
            path,
            format!("{len} bytes, over the verifier's limit {MAX_VERIFY_FILE_BYTES}"),
        );
    }
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) => return report.problem(path, format!("cannot read: {e}")),
    };
    report.bytes += data.len() as u64;
    let file = match ChunkFile::from_bytes(&data) {
        Ok(file) => file,
        Err(e) => return report.problem(path, e),
    };
    let footer = file.footer();
    if i64::from(footer.chunk_id()) != i64::from(chunk_id) {
        report.problem(
            path,
            format!(
                "footer says chunk {}, the catalog {chunk_id}",
                footer.chunk_id()
            ),
        );
    }
    let expected = entry.schema(table);
    let same_columns = expected.columns.len() == footer.schema().columns.len()
        && expected
            .columns
            .iter()
            .zip(&footer.schema().columns)
            .all(|(a, b)| {
                a.name == b.name && a.column_type == b.column_type && a.nullable == b.nullable
            });
    if !same_columns {
        report.problem(
            path,
            "the footer's columns differ from the catalog's schema",
        );
    }
    let (own, overlap) = (
        footer.row_count(RowGroupSet::Own),
        footer.row_count(RowGroupSet::Overlap),
    );
    if (own, overlap) != (rows, overlap_rows) {
        report.problem(
            path,
            format!("{own} own + {overlap} overlap rows, the catalog says {rows} + {overlap_rows}"),
        );
    }
    if let Some(chunker) = entry.partitioning.and_then(|p| p.chunker().ok())
        && !matches!(entry.kind, TableKind::Replicated)
    {
        for (index, group) in footer.row_groups().iter().enumerate() {
            let valid = i32::try_from(group.sub_chunk_id)
                .is_ok_and(|sub_chunk_id| chunker.is_valid_sub_chunk(chunk_id, sub_chunk_id));
            if !valid {
                report.problem(
                    path,
                    format!(
                        "row group {index}: sub-chunk {} is not in chunk {chunk_id}",
                        group.sub_chunk_id
                    ),
                );
            }
        }
    }
    let columns = footer.schema().columns.len();
    let mut decoder = skyscan_format::BlockDecoder::new();
    for row_group in 0..footer.row_groups().len() {
        for column in 0..columns {
            let decoded = footer
                .block(row_group, column)
                .and_then(|block| decoder.decode(&block, file.block_bytes(row_group, column)?));
            match decoded {
                Ok(values) => report.rows += if column == 0 { values.len() as u64 } else { 0 },
                Err(e) => report.problem(path, e),
            }
            report.blocks += 1;
        }
    }
}
