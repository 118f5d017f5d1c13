//! Sorted runs spilled to the load's staging area when the memory budget is
//! reached, and read back by row range when chunks are written.
//!
//! One file per spill (one reader thread's buffered rows of every chunk);
//! in it, one segment per chunk, sorted in file order: the keys region
//! (`group u32 × n`, `decl u64 × n`, `seq u64 × n`, little-endian), then one
//! region per column ([`ColBuf::write_permuted`]). Where every region starts,
//! its length and its CRC-32C stay in memory ([`SpilledSegment`]): the files
//! are scratch, removed when the load ends, whatever the outcome. A region
//! read whole is checked against its CRC; a part of one (a merge window
//! smaller than the segment) is checked for structure only.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use skyscan_format::ColumnType;

use super::colbuf::ColBuf;
use crate::catalog::CatalogError;

/// Write buffer of a spill file.
const SPILL_WRITE_BUFFER: usize = 1 << 20;

/// A spill file, removed when the last segment referring to it is dropped.
#[derive(Debug)]
pub(crate) struct SpillFile {
    path: PathBuf,
    file: File,
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // Best effort: leftovers lie in staging, which the load removes.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A byte range of a spill file and its checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    offset: u64,
    len: u64,
    crc: u32,
}

/// One chunk's rows in a spill file, sorted.
#[derive(Debug)]
pub(crate) struct SpilledSegment {
    file: Arc<SpillFile>,
    /// The chunk.
    pub(crate) chunk_id: i32,
    /// Rows in the segment.
    pub(crate) rows: usize,
    keys: Region,
    columns: Vec<(ColumnType, Region)>,
}

/// Sorted keys of a segment: group, decl key and seq of each row, in order.
#[derive(Debug, Default)]
pub(crate) struct SortedKeys {
    pub(crate) groups: Vec<u32>,
    pub(crate) decls: Vec<u64>,
    pub(crate) seqs: Vec<u64>,
}

fn io<'a>(
    path: &'a Path,
    operation: &'static str,
) -> impl FnOnce(std::io::Error) -> CatalogError + 'a {
    move |e| CatalogError::io(path, operation, e)
}

fn corrupt(path: &Path, message: impl std::fmt::Display) -> CatalogError {
    CatalogError::Load(format!(
        "{}: spilled run damaged ({message}); disk corruption while loading?",
        path.display()
    ))
}

/// What one chunk contributes to a spill: its chunk id, its rows' keys, the
/// column buffers, and the order `perm` in which to write the rows.
pub(crate) struct SpillPart<'a> {
    pub(crate) chunk_id: i32,
    pub(crate) groups: &'a [u32],
    pub(crate) decls: &'a [u64],
    pub(crate) seqs: &'a [u64],
    pub(crate) columns: &'a [ColBuf],
    pub(crate) perm: &'a [u32],
}

/// Writes `parts` as one new spill file in `dir`; returns its segments.
pub(crate) fn write_spill(
    dir: &Path,
    parts: &[SpillPart<'_>],
    scratch: &mut Vec<u8>,
) -> Result<Vec<SpilledSegment>, CatalogError> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "run-{}-{}.spill",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io(&path, "create"))?;
    let handle = file.try_clone().map_err(io(&path, "open"))?;
    let spill = Arc::new(SpillFile {
        path: path.clone(),
        file,
    });
    let mut out = BufWriter::with_capacity(SPILL_WRITE_BUFFER, handle);
    let mut offset = 0u64;
    let mut segments = Vec::with_capacity(parts.len());
    for part in parts {
        scratch.clear();
        for &row in part.perm {
            scratch.extend_from_slice(&part.groups[row as usize].to_le_bytes());
        }
        for &row in part.perm {
            scratch.extend_from_slice(&part.decls[row as usize].to_le_bytes());
        }
        for &row in part.perm {
            scratch.extend_from_slice(&part.seqs[row as usize].to_le_bytes());
        }
        out.write_all(scratch).map_err(io(&path, "write"))?;
        let keys = Region {
            offset,
            len: scratch.len() as u64,
            crc: skyscan_format::checksum::crc32c(scratch),
        };
        offset += keys.len;
        let mut columns = Vec::with_capacity(part.columns.len());
        for column in part.columns {
            let (len, crc) = column
                .write_permuted(part.perm, scratch, &mut out)
                .map_err(io(&path, "write"))?;
            columns.push((column.column_type, Region { offset, len, crc }));
            offset += len;
        }
        segments.push(SpilledSegment {
            file: Arc::clone(&spill),
            chunk_id: part.chunk_id,
            rows: part.perm.len(),
            keys,
            columns,
        });
    }
    out.flush().map_err(io(&path, "write"))?;
    Ok(segments)
}

impl SpilledSegment {
    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, CatalogError> {
        let path = &self.file.path;
        let len =
            usize::try_from(len).map_err(|_| corrupt(path, "region over the address space"))?;
        let mut bytes = vec![0u8; len];
        self.file
            .file
            .read_exact_at(&mut bytes, offset)
            .map_err(io(path, "read"))?;
        Ok(bytes)
    }

    fn read_region(&self, region: Region) -> Result<Vec<u8>, CatalogError> {
        let bytes = self.read(region.offset, region.len)?;
        if skyscan_format::checksum::crc32c(&bytes) != region.crc {
            return Err(corrupt(&self.file.path, "checksum mismatch"));
        }
        Ok(bytes)
    }

    /// Bytes of the segment's column regions.
    pub(crate) fn column_bytes(&self) -> u64 {
        self.columns.iter().map(|(_, region)| region.len).sum()
    }

    /// Bytes of the whole segment in the file.
    pub(crate) fn bytes(&self) -> u64 {
        self.keys.len + self.column_bytes()
    }

    /// The segment's keys, in order.
    pub(crate) fn read_keys(&self) -> Result<SortedKeys, CatalogError> {
        let bytes = self.read_region(self.keys)?;
        let rows = self.rows;
        if bytes.len() != rows * 20 {
            return Err(corrupt(&self.file.path, "keys region size"));
        }
        let (groups, rest) = bytes.split_at(rows * 4);
        let (decls, seqs) = rest.split_at(rows * 8);
        let word4 = |chunk: &[u8]| {
            let mut array = [0u8; 4];
            array.copy_from_slice(chunk);
            u32::from_le_bytes(array)
        };
        let word8 = |chunk: &[u8]| {
            let mut array = [0u8; 8];
            array.copy_from_slice(chunk);
            u64::from_le_bytes(array)
        };
        Ok(SortedKeys {
            groups: groups.chunks_exact(4).map(word4).collect(),
            decls: decls.chunks_exact(8).map(word8).collect(),
            seqs: seqs.chunks_exact(8).map(word8).collect(),
        })
    }

    /// Rows `range` (in sorted order) of column `column`.
    pub(crate) fn read_column(
        &self,
        column: usize,
        range: std::ops::Range<usize>,
    ) -> Result<ColBuf, CatalogError> {
        let path = &self.file.path;
        let (column_type, region) = self.columns[column];
        if range.start == 0 && range.end == self.rows {
            let bytes = self.read_region(region)?;
            return ColBuf::read_spilled(column_type, self.rows, &bytes)
                .map_err(|e| corrupt(path, e));
        }
        if range.start > range.end || range.end > self.rows {
            return Err(corrupt(path, "row range outside the segment"));
        }
        let count = range.len();
        // Rebuild the sub-range in the spill layout and parse it.
        let flag = self.read(region.offset, 1)?;
        let has_valid = match flag.first() {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(corrupt(path, "validity flag")),
        };
        let mut bytes = Vec::new();
        bytes.push(u8::from(has_valid));
        let mut values_offset = region.offset + 1;
        if has_valid {
            bytes.extend(self.read(values_offset + range.start as u64, count as u64)?);
            values_offset += self.rows as u64;
        }
        match column_type.fixed_width() {
            Some(width) => {
                let width = width as u64;
                bytes.extend(self.read(
                    values_offset + range.start as u64 * width,
                    count as u64 * width,
                )?);
            }
            None if column_type == ColumnType::Bool => {
                bytes.extend(self.read(values_offset + range.start as u64, count as u64)?);
            }
            None => {
                let first = range.start.saturating_sub(1);
                let ends_bytes = self.read(
                    values_offset + first as u64 * 8,
                    (range.end - first) as u64 * 8,
                )?;
                let ends: Vec<u64> = ends_bytes
                    .chunks_exact(8)
                    .map(|chunk| {
                        let mut array = [0u8; 8];
                        array.copy_from_slice(chunk);
                        u64::from_le_bytes(array)
                    })
                    .collect();
                let (start, ends) = if range.start == 0 {
                    (0, &ends[..])
                } else {
                    (ends[0], &ends[1..])
                };
                let stop = ends.last().copied().unwrap_or(start);
                if stop < start {
                    return Err(corrupt(path, "offsets decrease"));
                }
                for &end in ends {
                    bytes.extend_from_slice(&end.wrapping_sub(start).to_le_bytes());
                }
                let data_offset = values_offset + self.rows as u64 * 8;
                bytes.extend(self.read(data_offset + start, stop - start)?);
            }
        }
        ColBuf::read_spilled(column_type, count, &bytes).map_err(|e| corrupt(path, e))
    }
}
