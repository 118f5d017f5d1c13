//! Compacted partitions: one chunk file (SPEC.md part 1) per (table,
//! partition, generation), rows sorted spatially, one row group per sky
//! chunk (SPEC.md part 4 §6).
//!
//! The file's footer chunk id is the partition index (as u32, two's
//! complement) and each row group's "sub-chunk id" field holds the sky chunk
//! id of the `Chunker(85, 12)` of its rows; inside a row group rows are sorted
//! by (sub-chunk id, row id), so the rows of one sub-chunk, and of one object,
//! lie together.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use skyscan_format::{
    BlockDecoder, ChunkWriter, ColumnData, FileTail, Footer, MinMax, TAIL_LEN, WriterOptions,
    check_header,
};

use super::error::{ApdbError, Result};
use super::rows::take_rows;
use crate::table::Table;

/// A compacted run of one table's partition, memory-mapped, footer decoded.
pub struct Segment {
    /// File name inside the table's directory.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    mmap: Mmap,
    footer: Footer,
    /// Sky chunk id of each row group, ascending (row group `i` has chunk `chunks[i]`).
    pub chunks: Vec<i32>,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Smallest and largest value of the id column (`None` if empty).
    pub id_range: Option<(i64, i64)>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("rows", &self.rows)
            .finish()
    }
}

/// Spatial key of a row: sky chunk id in the high 32 bits, sub-chunk id in
/// the low 32 (both non-negative).
#[inline]
pub fn spatial_key(chunk_id: i32, sub_chunk_id: i32) -> u64 {
    ((chunk_id as u32 as u64) << 32) | (sub_chunk_id as u32 as u64)
}

/// The chunk id of a spatial key.
#[inline]
pub fn key_chunk(key: u64) -> i32 {
    (key >> 32) as u32 as i32
}

/// Writes `rows` (already sorted by `keys`, ascending) as a segment at
/// `path`: temporary name, fsync, rename, fsync of the directory.
pub fn write_segment(
    path: &Path,
    partition: i64,
    rows: &Table,
    keys: &[u64],
    options: WriterOptions,
) -> Result<()> {
    debug_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "keys sorted");
    let mut writer = ChunkWriter::new(rows.schema.clone(), partition as u32, options)?;
    let mut start = 0usize;
    while start < keys.len() {
        let chunk = key_chunk(keys[start]);
        let end = start + keys[start..].partition_point(|&k| key_chunk(k) == chunk);
        let indices: Vec<u32> = (start as u32..end as u32).collect();
        let group = take_rows(rows, &indices);
        writer.add_row_group(chunk as u32, false, &group.columns)?;
        start = end;
    }
    let tmp = path.with_extension("skyscan-tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        writer
            .finish(&mut file)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ApdbError::io(format!("writing segment {}", path.display()), e)
    })
}

/// fsync of a directory, so that a rename or a new name in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Segment {
    /// Opens a segment, checking header, tail and footer (its CRC), that the
    /// table and columns are those expected and that row groups are chunk
    /// ids in ascending order. `id_column` names the column whose range is
    /// kept (from the footer statistics).
    pub fn open(
        path: &Path,
        expect: &skyscan_format::TableSchema,
        id_column: usize,
    ) -> Result<Arc<Segment>> {
        let context = || format!("opening segment {}", path.display());
        let file = File::open(path).map_err(|e| ApdbError::io(context(), e))?;
        // SAFETY: segment files are written once (temporary name + rename)
        // and never modified in place; they are only deleted, which keeps a
        // mapping valid on Unix.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ApdbError::io(context(), e))?;
        let bytes = &mmap[..];
        let corrupt = |e: skyscan_format::FormatError| {
            ApdbError::Corrupt(format!("segment {}: {e}", path.display()))
        };
        if bytes.len() < skyscan_format::HEADER_LEN + TAIL_LEN {
            return Err(ApdbError::Corrupt(format!(
                "segment {}: {} bytes, shorter than any chunk file",
                path.display(),
                bytes.len()
            )));
        }
        check_header(&bytes[..skyscan_format::HEADER_LEN]).map_err(corrupt)?;
        let tail = FileTail::parse(&bytes[bytes.len() - TAIL_LEN..], bytes.len() as u64)
            .map_err(corrupt)?;
        let range = tail.footer_range().to_usize_range().map_err(corrupt)?;
        let footer = Footer::decode(&bytes[range], &tail).map_err(corrupt)?;
        if footer.schema() != expect {
            return Err(ApdbError::Corrupt(format!(
                "segment {}: its columns are not those of table {}",
                path.display(),
                expect.name
            )));
        }
        let chunks: Vec<i32> = footer
            .row_groups()
            .iter()
            .map(|g| g.sub_chunk_id as i32)
            .collect();
        if chunks.windows(2).any(|w| w[0] >= w[1]) || footer.row_groups().iter().any(|g| g.overlap)
        {
            return Err(ApdbError::Corrupt(format!(
                "segment {}: row groups are not ascending chunk ids",
                path.display()
            )));
        }
        let rows = footer
            .row_groups()
            .iter()
            .map(|g| u64::from(g.row_count))
            .sum();
        let mut id_range: Option<(i64, i64)> = None;
        for group in 0..chunks.len() {
            let block = footer.block(group, id_column).map_err(corrupt)?;
            if let Some(MinMax::Int { min, max }) = &block.meta.stats.min_max {
                id_range = Some(match id_range {
                    None => (*min, *max),
                    Some((lo, hi)) => (lo.min(*min), hi.max(*max)),
                });
            }
        }
        let len = bytes.len() as u64;
        Ok(Arc::new(Segment {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_path_buf(),
            mmap,
            footer,
            chunks,
            rows,
            bytes: len,
            id_range,
        }))
    }

    /// The row group of sky chunk `chunk_id`, if the segment has one.
    pub fn row_group_of(&self, chunk_id: i32) -> Option<usize> {
        self.chunks.binary_search(&chunk_id).ok()
    }

    /// Rows in row group `group`.
    pub fn group_rows(&self, group: usize) -> usize {
        self.footer
            .row_groups()
            .get(group)
            .map_or(0, |g| g.row_count as usize)
    }

    /// Decodes column `column` of row group `group` (CRC checked).
    pub fn read_column(
        &self,
        group: usize,
        column: usize,
        decoder: &mut BlockDecoder,
    ) -> Result<ColumnData> {
        let corrupt = |e: skyscan_format::FormatError| {
            ApdbError::Corrupt(format!("segment {}: {e}", self.name))
        };
        let block = self.footer.block(group, column).map_err(corrupt)?;
        let range = block.range().to_usize_range().map_err(corrupt)?;
        let bytes = self.mmap.get(range).ok_or_else(|| {
            ApdbError::Corrupt(format!("segment {}: block outside the file", self.name))
        })?;
        decoder.decode(&block, bytes).map_err(corrupt)
    }

    /// Decodes the whole row group `group`.
    pub fn read_group(&self, group: usize, decoder: &mut BlockDecoder) -> Result<Table> {
        let schema = self.footer.schema().clone();
        let columns = (0..schema.columns.len())
            .map(|c| self.read_column(group, c, decoder))
            .collect::<Result<Vec<_>>>()?;
        Ok(Table { schema, columns })
    }
}
