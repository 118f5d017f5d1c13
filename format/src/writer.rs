//! The chunk writer: encodes row groups as they come, lays the file out in
//! `finish`. Writing to a caller-given sink is the only output.

use std::io::Write;

use crate::column::ColumnData;
use crate::encode::{EncodeOptions, EncodedBlock, encode_block};
use crate::error::{FormatError, Result};
use crate::limits::*;
use crate::meta::{
    BLOCK_ALIGN, BlockMeta, ColumnExtent, DATA_START, EXTENT_ALIGN, FileTail, Footer, RowGroupMeta,
    TableSchema, encode_header,
};

/// Options of a [`ChunkWriter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// Encoding and compression choice for every block.
    pub encode: EncodeOptions,
}

/// What [`ChunkWriter::finish`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Bytes written (the file length).
    pub file_len: u64,
    /// Bytes of the footer.
    pub footer_len: u64,
    /// Bytes of blocks (validity + values).
    pub block_bytes: u64,
    /// Bytes of zero padding (header padding, extent and block alignment).
    pub padding_bytes: u64,
    /// Block bytes per column (all row groups).
    pub column_bytes: Vec<u64>,
    /// Rows in own row groups.
    pub own_rows: u64,
    /// Rows in overlap row groups.
    pub overlap_rows: u64,
}

struct PendingRowGroup {
    meta: RowGroupMeta,
    blocks: Vec<EncodedBlock>,
}

/// Writes one chunk file: `new`, `add_row_group` per sub-chunk (own and
/// overlap, in any order), then `finish`. Holds the encoded blocks in memory
/// until `finish`, because the column-major layout needs all of them.
pub struct ChunkWriter {
    schema: TableSchema,
    chunk_id: u32,
    options: WriterOptions,
    row_groups: Vec<PendingRowGroup>,
}

impl ChunkWriter {
    /// A writer for the chunk `chunk_id` of a table with `schema`.
    pub fn new(schema: TableSchema, chunk_id: u32, options: WriterOptions) -> Result<ChunkWriter> {
        schema.check().map_err(FormatError::invalid)?;
        Ok(ChunkWriter {
            schema,
            chunk_id,
            options,
            row_groups: Vec::new(),
        })
    }

    /// The schema.
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// Encodes the rows of one sub-chunk (`overlap`: copies of rows of
    /// neighbouring chunks), one [`ColumnData`] per schema column, all of the
    /// same length. A sub-chunk id may appear once as own and once as overlap.
    pub fn add_row_group(
        &mut self,
        sub_chunk_id: u32,
        overlap: bool,
        columns: &[ColumnData],
    ) -> Result<()> {
        if self.row_groups.len() >= MAX_ROW_GROUPS {
            return Err(FormatError::invalid(format!(
                "more than {MAX_ROW_GROUPS} row groups"
            )));
        }
        if columns.len() != self.schema.columns.len() {
            return Err(FormatError::invalid(format!(
                "{} columns given, the schema has {}",
                columns.len(),
                self.schema.columns.len()
            )));
        }
        if self.row_groups.iter().any(|pending| {
            pending.meta.sub_chunk_id == sub_chunk_id && pending.meta.overlap == overlap
        }) {
            return Err(FormatError::invalid(format!(
                "sub-chunk {sub_chunk_id} (overlap: {overlap}) added twice"
            )));
        }
        let rows = columns.first().map_or(0, ColumnData::len);
        if let Some(column) = columns.iter().position(|column| column.len() != rows) {
            return Err(FormatError::invalid(format!(
                "column `{}` has {} rows, the first column {rows}",
                self.schema.columns[column].name,
                columns[column].len()
            )));
        }
        if rows > MAX_ROWS_PER_ROW_GROUP as usize {
            return Err(FormatError::invalid(format!(
                "{rows} rows over the limit {MAX_ROWS_PER_ROW_GROUP}"
            )));
        }
        let blocks = self
            .schema
            .columns
            .iter()
            .zip(columns)
            .map(|(schema, data)| encode_block(schema, data, &self.options.encode))
            .collect::<Result<Vec<_>>>()?;
        self.row_groups.push(PendingRowGroup {
            meta: RowGroupMeta {
                sub_chunk_id,
                overlap,
                row_count: rows as u32,
            },
            blocks,
        });
        Ok(())
    }

    /// Lays out and writes the file to `sink`: header, one extent per column
    /// (own row groups by sub-chunk id, then overlap ones), footer, tail.
    pub fn finish<W: Write + ?Sized>(self, sink: &mut W) -> Result<WriteStats> {
        let ChunkWriter {
            schema,
            chunk_id,
            row_groups: mut pending,
            ..
        } = self;
        pending.sort_by_key(|row_group| (row_group.meta.overlap, row_group.meta.sub_chunk_id));
        let columns = schema.columns.len();

        // Layout: place every block.
        let mut position = DATA_START;
        let mut extents = Vec::with_capacity(columns);
        let mut metas: Vec<BlockMeta> = Vec::with_capacity(pending.len() * columns);
        for row_group in &pending {
            metas.extend(row_group.blocks.iter().map(|block| block.meta.clone()));
        }
        for column in 0..columns {
            position = position.next_multiple_of(EXTENT_ALIGN);
            let extent_start = position;
            for (row_group_index, row_group) in pending.iter().enumerate() {
                position = position.next_multiple_of(BLOCK_ALIGN);
                metas[row_group_index * columns + column].offset = position;
                position += row_group.blocks[column].bytes.len() as u64;
            }
            extents.push(ColumnExtent {
                offset: extent_start,
                len: position - extent_start,
            });
        }
        let row_group_metas: Vec<RowGroupMeta> =
            pending.iter().map(|row_group| row_group.meta).collect();
        let footer = Footer::encode(chunk_id, &schema, &row_group_metas, &extents, &metas);
        let footer_len = u32::try_from(footer.len())
            .ok()
            .filter(|&len| len as usize <= MAX_FOOTER_LEN)
            .ok_or_else(|| {
                FormatError::invalid(format!("footer of {} bytes over the limit", footer.len()))
            })?;

        // Write.
        let mut stats = WriteStats {
            column_bytes: vec![0; columns],
            ..WriteStats::default()
        };
        let mut written = 0u64;
        let header = encode_header();
        sink.write_all(&header)?;
        written += header.len() as u64;
        let zeros = [0u8; EXTENT_ALIGN as usize];
        let pad_to = |sink: &mut W, written: &mut u64, target: u64| -> Result<u64> {
            let padding = target - *written;
            let mut left = padding;
            while left > 0 {
                let chunk = left.min(zeros.len() as u64) as usize;
                sink.write_all(&zeros[..chunk])?;
                left -= chunk as u64;
            }
            *written = target;
            Ok(padding)
        };
        for column in 0..columns {
            for (row_group_index, row_group) in pending.iter().enumerate() {
                let meta = &metas[row_group_index * columns + column];
                stats.padding_bytes += pad_to(sink, &mut written, meta.offset)?;
                let bytes = &row_group.blocks[column].bytes;
                sink.write_all(bytes)?;
                written += bytes.len() as u64;
                stats.block_bytes += bytes.len() as u64;
                stats.column_bytes[column] += bytes.len() as u64;
            }
            let target = (extents[column].offset + extents[column].len).max(written);
            stats.padding_bytes += pad_to(sink, &mut written, target)?;
        }
        // Up to the footer (also the header padding when there are no blocks).
        let footer_offset = extents
            .last()
            .map_or(DATA_START, |extent| extent.offset + extent.len);
        let target = footer_offset.max(written);
        stats.padding_bytes += pad_to(sink, &mut written, target)?;
        sink.write_all(&footer)?;
        let tail = FileTail::encode(footer_len, crate::checksum::crc32c(&footer));
        sink.write_all(&tail)?;
        written += footer.len() as u64 + tail.len() as u64;
        stats.file_len = written;
        stats.footer_len = footer.len() as u64;
        for row_group in &row_group_metas {
            if row_group.overlap {
                stats.overlap_rows += u64::from(row_group.row_count);
            } else {
                stats.own_rows += u64::from(row_group.row_count);
            }
        }
        Ok(stats)
    }

    /// [`finish`](Self::finish) into a new vector.
    pub fn finish_to_vec(self) -> Result<(Vec<u8>, WriteStats)> {
        let mut out = Vec::new();
        let stats = self.finish(&mut out)?;
        Ok((out, stats))
    }
}
