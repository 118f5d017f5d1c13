//! From a plan to bytes in memory: which ranges of a chunk file to read
//! (coalesced, rounded out to 4 KiB for `O_DIRECT`), reading them into one
//! buffer, and finding each block's bytes in it.

use std::path::PathBuf;
use std::sync::Arc;

use skyscan_format::{BlockDecoder, ColumnData, Footer};

use super::buffer::IO_ALIGN;
use super::error::{Result, StorageError};
use super::io::{IoBackend, IoFile, ReadRequest, ReadStats, align_range};
use super::memory::{Buffer, MemoryManager, PinMode};

/// How ranges are formed.
#[derive(Debug, Clone, Copy)]
pub struct RangeOptions {
    /// Two ranges closer than this are read as one (reading a gap is
    /// cheaper than another request on a disk).
    pub max_gap_bytes: u64,
    /// Largest single request; longer ranges are split so several are in
    /// flight at once.
    pub max_request_bytes: u64,
}

impl Default for RangeOptions {
    fn default() -> Self {
        RangeOptions {
            max_gap_bytes: 64 << 10,
            max_request_bytes: 4 << 20,
        }
    }
}

/// One column and the row groups of it to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnWant {
    /// Schema column index.
    pub column: usize,
    /// Row-group indices, ascending.
    pub row_groups: Vec<usize>,
}

/// The byte ranges of a file to read, sorted, disjoint, 4 KiB aligned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRanges {
    /// `(offset, len)` pairs.
    pub ranges: Vec<(u64, u64)>,
}

impl ReadRanges {
    /// Total bytes.
    pub fn total_bytes(&self) -> u64 {
        self.ranges.iter().map(|&(_, len)| len).sum()
    }

    /// The ranges holding the blocks of `wants` in `footer`.
    pub fn plan(
        footer: &Footer,
        wants: &[ColumnWant],
        options: RangeOptions,
    ) -> Result<ReadRanges> {
        let mut blocks: Vec<(u64, u64)> = Vec::new();
        for want in wants {
            for &row_group in &want.row_groups {
                let block = footer
                    .block(row_group, want.column)
                    .map_err(|e| StorageError::InvalidPlan(e.to_string()))?;
                if !block.is_empty() {
                    blocks.push(align_range(block.offset(), block.len()));
                }
            }
        }
        blocks.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(blocks.len());
        for (offset, len) in blocks {
            match merged.last_mut() {
                Some((last_offset, last_len))
                    if offset <= *last_offset + *last_len + options.max_gap_bytes =>
                {
                    let end = (offset + len).max(*last_offset + *last_len);
                    *last_len = end - *last_offset;
                }
                _ => merged.push((offset, len)),
            }
        }
        let piece =
            (options.max_request_bytes.max(IO_ALIGN as u64) / IO_ALIGN as u64) * IO_ALIGN as u64;
        let mut ranges = Vec::with_capacity(merged.len());
        for (offset, len) in merged {
            let mut done = 0;
            while done < len {
                let this = piece.min(len - done);
                ranges.push((offset + done, this));
                done += this;
            }
        }
        Ok(ReadRanges { ranges })
    }
}

/// The bytes of a file's ranges: read into one buffer, or a whole file
/// mapped.
#[derive(Debug)]
pub struct FileData {
    source: Source,
    /// What the read cost.
    pub stats: ReadStats,
}

#[derive(Debug)]
enum Source {
    /// Read ranges: the buffer and `(file offset, len, buffer offset)`
    /// spans, sorted by file offset.
    Buffer {
        buffer: Buffer,
        ranges: Vec<(u64, u64, usize)>,
    },
    /// The whole file, memory-mapped.
    Mapped(Arc<super::mapped::MappedFile>),
}

impl FileData {
    /// Reads `ranges` of `file` into a buffer from `memory` (`mode`).
    pub fn read(
        backend: &dyn IoBackend,
        file: &IoFile,
        ranges: &ReadRanges,
        memory: &Arc<MemoryManager>,
        mode: PinMode,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<FileData> {
        let buffer = memory.acquire(ranges.total_bytes(), mode, cancelled)?;
        FileData::read_into(backend, file, ranges, buffer)
    }

    /// Reads `ranges` of `file` into `buffer` (at least
    /// [`ReadRanges::total_bytes`] long).
    pub fn read_into(
        backend: &dyn IoBackend,
        file: &IoFile,
        ranges: &ReadRanges,
        mut buffer: Buffer,
    ) -> Result<FileData> {
        if (buffer.len() as u64) < ranges.total_bytes() {
            return Err(StorageError::InvalidPlan(format!(
                "a buffer of {} bytes for {} bytes of ranges",
                buffer.len(),
                ranges.total_bytes()
            )));
        }
        let mut placed = Vec::with_capacity(ranges.ranges.len());
        let mut requests = Vec::with_capacity(ranges.ranges.len());
        let mut rest = buffer.as_mut_slice();
        let mut at = 0usize;
        for &(offset, len) in &ranges.ranges {
            let (head, tail) = rest.split_at_mut(len as usize);
            requests.push(ReadRequest { offset, buf: head });
            // Pieces of one split range are adjacent in the file and in the
            // buffer: keep them as one span so a block may straddle them.
            match placed.last_mut() {
                Some((last_offset, last_len, last_at))
                    if *last_offset + *last_len == offset
                        && *last_at + *last_len as usize == at =>
                {
                    *last_len += len;
                }
                _ => placed.push((offset, len, at)),
            }
            at += len as usize;
            rest = tail;
        }
        let stats = backend
            .read(file, &mut requests)
            .map_err(|e| StorageError::io(&file.path, "read", e))?;
        drop(requests);
        Ok(FileData {
            source: Source::Buffer {
                buffer,
                ranges: placed,
            },
            stats,
        })
    }

    /// A mapped file: every byte is available, nothing is copied. `planned`
    /// is the number of bytes the plan reads (reported as page-cache bytes).
    pub fn mapped(map: Arc<super::mapped::MappedFile>, planned: u64) -> FileData {
        FileData {
            source: Source::Mapped(map),
            stats: ReadStats {
                cached_bytes: planned,
                ..ReadStats::default()
            },
        }
    }

    /// Bytes held (of a buffer; a map holds none of the process's memory).
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Buffer { buffer, .. } => buffer.len(),
            Source::Mapped(_) => 0,
        }
    }

    /// True when nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is pinned.
    pub fn is_pinned(&self) -> bool {
        match &self.source {
            Source::Buffer { buffer, .. } => buffer.is_pinned(),
            Source::Mapped(_) => false,
        }
    }

    /// The shared map, when the bytes come from one.
    fn mapped_file(&self) -> Option<&super::mapped::MappedFile> {
        match &self.source {
            Source::Mapped(map) => Some(map),
            Source::Buffer { .. } => None,
        }
    }

    /// The bytes `[offset, offset + len)` of the file, if they were read.
    pub fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        match &self.source {
            Source::Mapped(map) => {
                let start = usize::try_from(offset).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                map.map.get(start..end)
            }
            Source::Buffer { buffer, ranges } => {
                let index = ranges.partition_point(|&(start, _, _)| start <= offset);
                let &(start, range_len, at) = ranges.get(index.checked_sub(1)?)?;
                if offset + len > start + range_len {
                    return None;
                }
                let from = at + (offset - start) as usize;
                buffer.as_slice().get(from..from + len as usize)
            }
        }
    }
}

/// A chunk file's planned bytes in memory with what is needed to decode
/// and name its blocks.
#[derive(Debug)]
pub struct LoadedFile {
    /// The file's footer.
    pub footer: Arc<Footer>,
    /// The bytes read.
    pub data: FileData,
    /// The file, for errors.
    pub path: PathBuf,
    /// The chunk, for errors.
    pub chunk_id: i32,
}

impl LoadedFile {
    /// Hints the CPU to fetch the bytes of block (`row_group`, `column`)
    /// into its caches ([`skyscan_format::kernels::prefetch`]); nothing when
    /// the block was not read.
    pub fn prefetch(&self, row_group: usize, column: usize) {
        if let Ok(block) = self.footer.block(row_group, column)
            && let Some(bytes) = self.data.bytes(block.offset(), block.len())
        {
            skyscan_format::kernels::prefetch(bytes);
        }
    }

    /// [`decode`](Self::decode), appending the block's rows to the rows
    /// `slot` holds (a batch of several row groups).
    pub fn decode_append(
        &self,
        row_group: usize,
        column: usize,
        decoder: &mut BlockDecoder,
        slot: &mut Option<ColumnData>,
    ) -> Result<()> {
        self.decode_with(row_group, column, decoder, slot, true)
    }

    /// Decodes block (`row_group`, `column`) into `slot` (reusing its
    /// allocation). Errors name the file, chunk and block.
    pub fn decode(
        &self,
        row_group: usize,
        column: usize,
        decoder: &mut BlockDecoder,
        slot: &mut Option<ColumnData>,
    ) -> Result<()> {
        self.decode_with(row_group, column, decoder, slot, false)
    }

    fn decode_with(
        &self,
        row_group: usize,
        column: usize,
        decoder: &mut BlockDecoder,
        slot: &mut Option<ColumnData>,
        append: bool,
    ) -> Result<()> {
        let block = self
            .footer
            .block(row_group, column)
            .map_err(|e| StorageError::InvalidPlan(e.to_string()))?;
        let bytes = self
            .data
            .bytes(block.offset(), block.len())
            .ok_or_else(|| {
                StorageError::InvalidPlan(format!(
                    "block (row group {row_group}, column {column}) was not read"
                ))
            })?;
        let out = slot.get_or_insert_with(|| ColumnData::empty(block.column.column_type));
        if out.column_type() != block.column.column_type {
            *out = ColumnData::empty(block.column.column_type);
        }
        // A block of a mapped file is verified once per map.
        let mapped = self.data.mapped_file();
        let blocks = self.footer.row_groups().len() * self.footer.schema().columns.len();
        let index = row_group * self.footer.schema().columns.len() + column;
        let verify = !mapped.is_some_and(|m| m.is_verified(index, blocks));
        let decoded = if append {
            decoder.decode_append(&block, bytes, out, verify)
        } else {
            decoder.decode_checked(&block, bytes, out, verify)
        };
        decoded.map_err(|e| StorageError::from_format(&self.path, self.chunk_id, e))?;
        if verify && let Some(m) = mapped {
            m.set_verified(index, blocks);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryConfig, MlockPolicy, PreadBackend};
    use skyscan_format::{
        ChunkWriter, ColumnSchema, ColumnType, PrimitiveColumn, TableSchema, WriterOptions,
    };

    /// A block larger than the request size straddles two requests.
    #[test]
    fn blocks_straddling_split_requests_are_found() {
        let schema = TableSchema::new("t", vec![ColumnSchema::new("x", ColumnType::F64, false)]);
        let mut writer = ChunkWriter::new(schema, 7, WriterOptions::default()).unwrap();
        let values: Vec<f64> = (0..100_000).map(|i| (i as f64).sin() * 1e6).collect();
        writer
            .add_row_group(
                0,
                false,
                &[ColumnData::F64(PrimitiveColumn::new(values.clone()))],
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.skychunk");
        let mut file = std::fs::File::create(&path).unwrap();
        writer.finish(&mut file).unwrap();
        let footer = Arc::new(
            crate::storage::read_footer(
                &std::fs::File::open(&path).unwrap(),
                &path,
                std::fs::metadata(&path).unwrap().len(),
                7,
            )
            .unwrap(),
        );
        let wants = [ColumnWant {
            column: 0,
            row_groups: vec![0],
        }];
        let options = RangeOptions {
            max_gap_bytes: 0,
            max_request_bytes: 8192,
        };
        let ranges = ReadRanges::plan(&footer, &wants, options).unwrap();
        assert!(ranges.ranges.len() > 10);
        let memory = MemoryManager::new(MemoryConfig {
            budget_bytes: 16 << 20,
            mlock: MlockPolicy::Off,
        });
        let backend = PreadBackend;
        let io_file = backend.open(&path).unwrap();
        let data = FileData::read(
            &backend,
            &io_file,
            &ranges,
            &memory,
            PinMode::Required,
            &|| false,
        )
        .unwrap();
        let loaded = LoadedFile {
            footer,
            data,
            path,
            chunk_id: 7,
        };
        let mut slot = None;
        loaded
            .decode(0, 0, &mut BlockDecoder::new(), &mut slot)
            .unwrap();
        match slot {
            Some(ColumnData::F64(column)) => assert_eq!(column.values, values),
            other => panic!("{other:?}"),
        }
    }
}
