//! File structure: header, tail, footer (schema, row groups, block metadata).
//! Byte layouts are in `SPEC.md`, part 1; this module mirrors them.

use std::collections::HashSet;
use std::ops::Range;

use crate::error::{Bad, BadResult, FormatError, Location, Result, bad, ensure};
use crate::ids::{ColumnType, Compression, Encoding};
use crate::limits::*;

/// Magic bytes at offset 0 and in the last 8 bytes of every chunk file.
pub const MAGIC: [u8; 8] = *b"SKYCHUNK";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the meaningful part of the header (magic, version, reserved).
pub const HEADER_LEN: usize = 16;
/// Offset of the first column extent: the header is zero-padded to here.
pub const DATA_START: u64 = 4096;
/// Length of the fixed tail.
pub const TAIL_LEN: usize = 32;
/// Alignment of every column extent (O_DIRECT friendly).
pub const EXTENT_ALIGN: u64 = 4096;
/// Alignment of every block inside an extent (cache line).
pub const BLOCK_ALIGN: u64 = 64;

/// Stats flag: `min`/`max` are present.
pub(crate) const STATS_HAS_MIN_MAX: u8 = 1;
/// Stats flag: the block holds at least one NaN (floats only).
pub(crate) const STATS_HAS_NAN: u8 = 2;
/// Stats flag: min/max of a variable-length column were truncated to bounds.
pub(crate) const STATS_TRUNCATED: u8 = 4;

/// A byte range of the file, `[offset, offset + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl ByteRange {
    /// One past the last byte (saturating: validated ranges never saturate).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// As a `usize` range for slicing an in-memory file. Fails on 32-bit
    /// targets for ranges past 4 GiB.
    pub fn to_usize_range(&self) -> Result<Range<usize>> {
        let start = usize::try_from(self.offset);
        let end = usize::try_from(self.end());
        match (start, end) {
            (Ok(start), Ok(end)) => Ok(start..end),
            _ => Err(FormatError::invalid("byte range does not fit in memory")),
        }
    }
}

/// One column of the table schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    /// Column name (1..=[`MAX_NAME_LEN`] bytes of UTF-8, unique in the table).
    pub name: String,
    /// Logical type.
    pub column_type: ColumnType,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

impl ColumnSchema {
    /// A column description.
    pub fn new(name: impl Into<String>, column_type: ColumnType, nullable: bool) -> Self {
        ColumnSchema {
            name: name.into(),
            column_type,
            nullable,
        }
    }
}

/// The table a chunk file belongs to: its name and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// Table name (0..=[`MAX_NAME_LEN`] bytes of UTF-8).
    pub name: String,
    /// Columns, in storage order (1..=[`MAX_COLUMNS`]).
    pub columns: Vec<ColumnSchema>,
}

impl TableSchema {
    /// A table description.
    pub fn new(name: impl Into<String>, columns: Vec<ColumnSchema>) -> Self {
        TableSchema {
            name: name.into(),
            columns,
        }
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    /// Checks the limits and name rules; returns a description of the first
    /// violation.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.name.len() > MAX_NAME_LEN {
            return Err(format!("table name longer than {MAX_NAME_LEN} bytes"));
        }
        if self.columns.is_empty() || self.columns.len() > MAX_COLUMNS {
            return Err(format!(
                "{} columns; a table has 1..={MAX_COLUMNS}",
                self.columns.len()
            ));
        }
        let mut names = HashSet::new();
        for column in &self.columns {
            if column.name.is_empty() || column.name.len() > MAX_NAME_LEN {
                return Err(format!(
                    "column name `{}`: 1..={MAX_NAME_LEN} bytes",
                    column.name
                ));
            }
            if !names.insert(column.name.as_str()) {
                return Err(format!("duplicate column name `{}`", column.name));
            }
        }
        Ok(())
    }
}

/// Metadata of one row group (one sub-chunk, own or overlap rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupMeta {
    /// Sub-chunk id of all rows of the row group.
    pub sub_chunk_id: u32,
    /// True for overlap rows (copies of rows of neighbouring chunks).
    pub overlap: bool,
    /// Number of rows (0..=[`MAX_ROWS_PER_ROW_GROUP`]).
    pub row_count: u32,
}

/// Minimum and maximum of the non-null (and non-NaN) values of a block.
#[derive(Debug, Clone, PartialEq)]
pub enum MinMax {
    /// Bool columns.
    Bool {
        /// Smallest value (false < true).
        min: bool,
        /// Largest value.
        max: bool,
    },
    /// Integer columns, widened to i64.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// Float columns (f32 widened exactly to f64). NaN is ignored; -0.0 < 0.0
    /// (IEEE total order), so both are valid bounds under `<=`.
    Float {
        /// Smallest non-NaN value.
        min: f64,
        /// Largest non-NaN value.
        max: f64,
    },
    /// Utf8/binary columns, compared bytewise.
    Bytes {
        /// A lower bound: the smallest value, or a prefix of it.
        min: Vec<u8>,
        /// An upper bound: the largest value, or (when truncated) a value
        /// greater than every value of the block.
        max: Vec<u8>,
        /// True when the bounds were truncated to [`MAX_STAT_BYTES`] bytes
        /// (they are then bounds, not values of the block).
        truncated: bool,
    },
}

/// Statistics of one block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockStats {
    /// `None` when the block has no non-null, non-NaN value.
    pub min_max: Option<MinMax>,
    /// True when a non-null value is NaN (floats only).
    pub has_nan: bool,
}

/// Metadata of one column block, as stored in the footer.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMeta {
    /// File offset of the block (64-byte aligned).
    pub offset: u64,
    /// Length of the block in bytes (validity section + stored values section).
    pub len: u32,
    /// CRC-32C (Castagnoli) of the `len` bytes of the block.
    pub crc32c: u32,
    /// Encoding of the values section.
    pub encoding: Encoding,
    /// Compression of the values section.
    pub compression: Compression,
    /// Number of rows (equals the row group's row count).
    pub row_count: u32,
    /// Number of null rows; the validity section exists only when it is > 0.
    pub null_count: u32,
    /// Length of the validity section (0, or `8 * ceil(row_count / 64)`).
    pub validity_len: u32,
    /// Length of the values section after decompression.
    pub values_raw_len: u32,
    /// Statistics.
    pub stats: BlockStats,
}

impl BlockMeta {
    /// The byte range of the block in the file.
    pub fn range(&self) -> ByteRange {
        ByteRange {
            offset: self.offset,
            len: u64::from(self.len),
        }
    }
}

/// Where a column's blocks are: one contiguous extent per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnExtent {
    /// Offset of the extent (4 KiB aligned), the first byte of its first block.
    pub offset: u64,
    /// Length of the extent, up to the end of its last block.
    pub len: u64,
}

/// Which row groups a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowGroupSet {
    /// Own rows only (a full scan).
    Own,
    /// Overlap rows only.
    Overlap,
    /// Own and overlap rows (near-neighbour joins).
    All,
}

/// A reference to one block with the context needed to decode it and to name
/// it in errors. Obtained from [`Footer::block`] (or built by hand for blocks
/// encoded with [`crate::encode_block`]).
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    /// Row group index.
    pub row_group: u32,
    /// Column index.
    pub column_index: u32,
    /// Column schema (type, name).
    pub column: &'a ColumnSchema,
    /// Block metadata.
    pub meta: &'a BlockMeta,
}

impl BlockRef<'_> {
    /// File offset of the block.
    pub fn offset(&self) -> u64 {
        self.meta.offset
    }

    /// Length of the block in bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.meta.len)
    }

    /// True for a zero-length block (never written by v1 writers).
    pub fn is_empty(&self) -> bool {
        self.meta.len == 0
    }

    /// The byte range to read.
    pub fn range(&self) -> ByteRange {
        self.meta.range()
    }

    /// The error location naming this block.
    pub fn location(&self) -> Location {
        Location::Block {
            row_group: self.row_group,
            column_index: self.column_index,
            column_name: self.column.name.clone(),
        }
    }
}

/// The parsed fixed tail: says which bytes hold the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTail {
    /// Length of the footer in bytes.
    pub footer_len: u32,
    /// CRC-32C of the footer bytes.
    pub footer_crc32c: u32,
    /// Format version (1).
    pub version: u32,
    /// Length of the whole file.
    pub file_len: u64,
}

impl FileTail {
    /// Parses the last [`TAIL_LEN`] bytes of a file of `file_len` bytes.
    pub fn parse(tail: &[u8], file_len: u64) -> Result<FileTail> {
        let corrupt = |what: &str| FormatError::corrupt(Location::Tail, what);
        if tail.len() != TAIL_LEN {
            return Err(FormatError::invalid(format!(
                "FileTail::parse takes the last {TAIL_LEN} bytes, got {}",
                tail.len()
            )));
        }
        let min_len = DATA_START + TAIL_LEN as u64;
        if file_len < min_len {
            return Err(corrupt("file shorter than the smallest chunk file"));
        }
        let mut cursor = Cursor::new(tail);
        let parsed = (|| -> BadResult<_> {
            let footer_len = cursor.u64()?;
            let footer_crc32c = cursor.u32()?;
            let version = cursor.u32()?;
            let reserved = cursor.u64()?;
            let magic = cursor.take(8)?;
            Ok((footer_len, footer_crc32c, version, reserved, magic))
        })();
        let (footer_len, footer_crc32c, version, reserved, magic) =
            parsed.map_err(|bad| bad.at(Location::Tail))?;
        if magic != MAGIC {
            return Err(corrupt("bad magic: not a skyscan chunk file"));
        }
        if version != FORMAT_VERSION {
            return Err(FormatError::Unsupported {
                what: format!("format version {version} (this reader knows {FORMAT_VERSION})"),
                location: Location::Tail,
            });
        }
        if reserved != 0 {
            return Err(corrupt("reserved tail bytes are not zero"));
        }
        if footer_len > MAX_FOOTER_LEN as u64 {
            return Err(corrupt(&format!(
                "footer length {footer_len} over the limit {MAX_FOOTER_LEN}"
            )));
        }
        if footer_len > file_len - min_len {
            return Err(corrupt(&format!(
                "footer length {footer_len} does not fit in a file of {file_len} bytes"
            )));
        }
        Ok(FileTail {
            footer_len: footer_len as u32,
            footer_crc32c,
            version,
            file_len,
        })
    }

    /// The bytes to fetch and pass to [`Footer::decode`].
    pub fn footer_range(&self) -> ByteRange {
        let len = u64::from(self.footer_len);
        ByteRange {
            offset: self.file_len - TAIL_LEN as u64 - len,
            len,
        }
    }

    /// Serializes a tail.
    pub(crate) fn encode(footer_len: u32, footer_crc32c: u32) -> [u8; TAIL_LEN] {
        let mut out = [0u8; TAIL_LEN];
        out[0..8].copy_from_slice(&u64::from(footer_len).to_le_bytes());
        out[8..12].copy_from_slice(&footer_crc32c.to_le_bytes());
        out[12..16].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[24..32].copy_from_slice(&MAGIC);
        out
    }
}

/// Checks the header (the first [`HEADER_LEN`] bytes of the file). The tail is
/// authoritative; readers that fetch the start of the file should check it.
pub fn check_header(header: &[u8]) -> Result<()> {
    let corrupt = |what: &str| Err(FormatError::corrupt(Location::Header, what));
    if header.len() < HEADER_LEN {
        return corrupt("header truncated");
    }
    if header[0..8] != MAGIC {
        return corrupt("bad magic: not a skyscan chunk file");
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&header[8..12]);
    let version = u32::from_le_bytes(version);
    if version != FORMAT_VERSION {
        return Err(FormatError::Unsupported {
            what: format!("format version {version} (this reader knows {FORMAT_VERSION})"),
            location: Location::Header,
        });
    }
    if header[12..16] != [0; 4] {
        return corrupt("reserved header bytes are not zero");
    }
    Ok(())
}

/// Serializes the header (then zero padding up to [`DATA_START`]).
pub(crate) fn encode_header() -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out
}

/// The decoded footer: everything needed to plan reads and decode blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Footer {
    chunk_id: u32,
    schema: TableSchema,
    row_groups: Vec<RowGroupMeta>,
    own_row_group_count: u32,
    extents: Vec<ColumnExtent>,
    /// Column major: block of (row group r, column c) at `c * row_groups + r`,
    /// so that a scan of one column through consecutive row groups walks
    /// memory in order (the footer of a 10^6-row chunk holds ~10^4 blocks:
    /// row-group major, every lookup was a cache miss).
    blocks: Vec<BlockMeta>,
    footer_offset: u64,
}

/// Fixed part of the footer header.
const FOOTER_HEADER_LEN: u64 = 24;
/// Fixed part of a column description.
const COLUMN_DESC_LEN: u64 = 24;
/// Fixed part of a row group description.
const ROW_GROUP_DESC_LEN: u64 = 12;
/// Fixed part of a block description.
const BLOCK_DESC_LEN: u64 = 32;

impl Footer {
    /// Decodes and validates the footer bytes named by `tail`
    /// ([`FileTail::footer_range`]). Verifies the footer checksum first.
    pub fn decode(footer: &[u8], tail: &FileTail) -> Result<Footer> {
        if footer.len() != tail.footer_len as usize {
            return Err(FormatError::invalid(format!(
                "footer bytes: expected {}, got {}",
                tail.footer_len,
                footer.len()
            )));
        }
        let crc = crate::checksum::crc32c(footer);
        if crc != tail.footer_crc32c {
            return Err(FormatError::corrupt(
                Location::Footer,
                format!(
                    "checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                    tail.footer_crc32c
                ),
            ));
        }
        Self::decode_unverified(footer, tail.footer_range().offset)
    }

    /// Decodes without checking the footer checksum (for tools that repair
    /// checksums, see [`crate::testing`]).
    pub(crate) fn decode_unverified(footer: &[u8], footer_offset: u64) -> Result<Footer> {
        decode_footer(footer, footer_offset).map_err(|bad| match bad {
            Bad::Corrupt(what) => FormatError::corrupt(Location::Footer, what),
            Bad::Unsupported(what) => FormatError::Unsupported {
                what,
                location: Location::Footer,
            },
        })
    }

    /// The chunk id.
    pub fn chunk_id(&self) -> u32 {
        self.chunk_id
    }

    /// The table schema.
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// All row groups: own ones (by sub-chunk id), then overlap ones.
    pub fn row_groups(&self) -> &[RowGroupMeta] {
        &self.row_groups
    }

    /// Indices of the row groups in `set`.
    pub fn row_group_indices(&self, set: RowGroupSet) -> Range<usize> {
        let own = self.own_row_group_count as usize;
        match set {
            RowGroupSet::Own => 0..own,
            RowGroupSet::Overlap => own..self.row_groups.len(),
            RowGroupSet::All => 0..self.row_groups.len(),
        }
    }

    /// Total rows of the row groups in `set`.
    pub fn row_count(&self, set: RowGroupSet) -> u64 {
        self.row_groups[self.row_group_indices(set)]
            .iter()
            .map(|row_group| u64::from(row_group.row_count))
            .sum()
    }

    /// The extent of column `column` (all its blocks).
    pub fn column_extent(&self, column: usize) -> Option<ColumnExtent> {
        self.extents.get(column).copied()
    }

    /// The smallest byte range holding the blocks of `column` for the row
    /// groups in `set`: one sequential read. Empty when the set is empty.
    pub fn column_range(&self, column: usize, set: RowGroupSet) -> Option<ByteRange> {
        let extent = self.extents.get(column)?;
        let indices = self.row_group_indices(set);
        if indices.is_empty() {
            return Some(ByteRange {
                offset: extent.offset,
                len: 0,
            });
        }
        let base = column * self.row_groups.len();
        let first = &self.blocks[base + indices.start];
        let last = &self.blocks[base + indices.end - 1];
        Some(ByteRange {
            offset: first.offset,
            len: last.range().end() - first.offset,
        })
    }

    /// The block of (`row_group`, `column`).
    pub fn block(&self, row_group: usize, column: usize) -> Result<BlockRef<'_>> {
        let columns = self.schema.columns.len();
        if row_group >= self.row_groups.len() || column >= columns {
            return Err(FormatError::invalid(format!(
                "block ({row_group}, {column}) out of range ({} row groups, {columns} columns)",
                self.row_groups.len()
            )));
        }
        Ok(BlockRef {
            row_group: row_group as u32,
            column_index: column as u32,
            column: &self.schema.columns[column],
            meta: &self.blocks[column * self.row_groups.len() + row_group],
        })
    }

    /// Offset of the footer in the file (= end of the data region).
    pub fn footer_offset(&self) -> u64 {
        self.footer_offset
    }

    /// Serializes a footer (writer side).
    pub(crate) fn encode(
        chunk_id: u32,
        schema: &TableSchema,
        row_groups: &[RowGroupMeta],
        extents: &[ColumnExtent],
        blocks: &[BlockMeta],
    ) -> Vec<u8> {
        let columns = schema.columns.len();
        assert_eq!(blocks.len(), row_groups.len() * columns, "block count");
        assert_eq!(extents.len(), columns, "extent count");
        let own = row_groups
            .iter()
            .filter(|row_group| !row_group.overlap)
            .count();
        let mut out = Vec::new();
        out.extend_from_slice(&chunk_id.to_le_bytes());
        out.extend_from_slice(&(columns as u32).to_le_bytes());
        out.extend_from_slice(&(row_groups.len() as u32).to_le_bytes());
        out.extend_from_slice(&(own as u32).to_le_bytes());
        out.extend_from_slice(&(schema.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(schema.name.as_bytes());
        for (column, extent) in schema.columns.iter().zip(extents) {
            out.push(column.column_type.id());
            out.push(u8::from(column.nullable));
            out.extend_from_slice(&(column.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&extent.offset.to_le_bytes());
            out.extend_from_slice(&extent.len.to_le_bytes());
            out.extend_from_slice(column.name.as_bytes());
        }
        for (row_group, blocks) in row_groups.iter().zip(blocks.chunks(columns.max(1))) {
            out.extend_from_slice(&row_group.sub_chunk_id.to_le_bytes());
            out.extend_from_slice(&row_group.row_count.to_le_bytes());
            out.push(u8::from(row_group.overlap));
            out.extend_from_slice(&[0; 3]);
            for (block, column) in blocks.iter().zip(&schema.columns) {
                encode_block_desc(block, column.column_type, &mut out);
            }
        }
        out
    }
}

fn encode_block_desc(block: &BlockMeta, column_type: ColumnType, out: &mut Vec<u8>) {
    out.extend_from_slice(&block.offset.to_le_bytes());
    out.extend_from_slice(&block.len.to_le_bytes());
    out.extend_from_slice(&block.crc32c.to_le_bytes());
    out.push(block.encoding.id());
    out.push(block.compression.id());
    let mut flags = 0;
    if block.stats.min_max.is_some() {
        flags |= STATS_HAS_MIN_MAX;
    }
    if block.stats.has_nan {
        flags |= STATS_HAS_NAN;
    }
    if let Some(MinMax::Bytes {
        truncated: true, ..
    }) = block.stats.min_max
    {
        flags |= STATS_TRUNCATED;
    }
    out.push(flags);
    out.push(0);
    out.extend_from_slice(&block.null_count.to_le_bytes());
    out.extend_from_slice(&block.validity_len.to_le_bytes());
    out.extend_from_slice(&block.values_raw_len.to_le_bytes());
    let (min, max) = match &block.stats.min_max {
        None if column_type.is_var_len() => {
            out.extend_from_slice(&[0; 4]);
            return;
        }
        None => (0, 0),
        Some(MinMax::Bool { min, max }) => (u64::from(*min), u64::from(*max)),
        Some(MinMax::Int { min, max }) => (*min as u64, *max as u64),
        Some(MinMax::Float { min, max }) => (min.to_bits(), max.to_bits()),
        Some(MinMax::Bytes { min, max, .. }) => {
            for bound in [min, max] {
                out.extend_from_slice(&(bound.len() as u16).to_le_bytes());
                out.extend_from_slice(bound);
            }
            return;
        }
    };
    out.extend_from_slice(&min.to_le_bytes());
    out.extend_from_slice(&max.to_le_bytes());
}

/// A bounds-checked little-endian reader over a byte slice.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub(crate) fn take(&mut self, len: usize) -> BadResult<&'a [u8]> {
        if len > self.remaining() {
            return bad!(
                "truncated: need {len} bytes at {}, have {}",
                self.position,
                self.remaining()
            );
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> BadResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> BadResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> BadResult<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> BadResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> BadResult<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads `len` bytes that must be zero (reserved fields, padding).
    pub(crate) fn zeros(&mut self, len: usize, what: &str) -> BadResult<()> {
        let bytes = self.take(len)?;
        ensure!(
            bytes.iter().all(|&byte| byte == 0),
            "{what}: reserved bytes are not zero"
        );
        Ok(())
    }
}

fn decode_footer(footer: &[u8], footer_offset: u64) -> BadResult<Footer> {
    ensure!(
        footer.len() as u64 >= FOOTER_HEADER_LEN,
        "footer of {} bytes is truncated",
        footer.len()
    );
    let mut cursor = Cursor::new(footer);
    let chunk_id = cursor.u32()?;
    let column_count = cursor.u32()?;
    let row_group_count = cursor.u32()?;
    let own_row_group_count = cursor.u32()?;
    let table_name_len = cursor.u16()?;
    cursor.zeros(6, "footer header")?;
    ensure!(
        (1..=MAX_COLUMNS as u32).contains(&column_count),
        "column count {column_count} not in 1..={MAX_COLUMNS}"
    );
    ensure!(
        row_group_count <= MAX_ROW_GROUPS as u32,
        "row group count {row_group_count} over the limit {MAX_ROW_GROUPS}"
    );
    ensure!(
        own_row_group_count <= row_group_count,
        "own row group count {own_row_group_count} over the row group count {row_group_count}"
    );
    ensure!(
        usize::from(table_name_len) <= MAX_NAME_LEN,
        "table name too long"
    );
    let table_name = utf8(cursor.take(usize::from(table_name_len))?, "table name")?;

    let columns = column_count as usize;
    ensure!(
        cursor.remaining() as u64 >= u64::from(column_count) * COLUMN_DESC_LEN,
        "footer too short for {column_count} columns"
    );
    let mut schema_columns = Vec::with_capacity(columns);
    let mut extents = Vec::with_capacity(columns);
    let mut names = HashSet::with_capacity(columns);
    let mut previous_extent_end = DATA_START;
    for column_index in 0..columns {
        let type_id = cursor.u8()?;
        let flags = cursor.u8()?;
        let name_len = usize::from(cursor.u16()?);
        cursor.zeros(4, "column description")?;
        let offset = cursor.u64()?;
        let len = cursor.u64()?;
        let Some(column_type) = ColumnType::from_id(type_id) else {
            return Err(Bad::Unsupported(format!(
                "column {column_index}: unknown column type id {type_id}"
            )));
        };
        ensure!(
            flags & !1 == 0,
            "column {column_index}: unknown flags {flags:#x}"
        );
        ensure!(
            (1..=MAX_NAME_LEN).contains(&name_len),
            "column {column_index}: name length {name_len} not in 1..={MAX_NAME_LEN}"
        );
        let name = utf8(cursor.take(name_len)?, "column name")?;
        ensure!(names.insert(name.clone()), "duplicate column name `{name}`");
        let end = offset.checked_add(len);
        ensure!(
            offset >= previous_extent_end && end.is_some_and(|end| end <= footer_offset),
            "column `{name}`: extent [{offset}, +{len}) outside the data region or overlapping"
        );
        previous_extent_end = offset + len;
        schema_columns.push(ColumnSchema {
            name,
            column_type,
            nullable: flags & 1 == 1,
        });
        extents.push(ColumnExtent { offset, len });
    }
    let schema = TableSchema {
        name: table_name,
        columns: schema_columns,
    };

    // Before allocating the block table, check the footer can hold it.
    let min_desc_len: u64 = schema
        .columns
        .iter()
        .map(|column| {
            BLOCK_DESC_LEN
                + if column.column_type.is_var_len() {
                    4
                } else {
                    16
                }
        })
        .sum();
    ensure!(
        cursor.remaining() as u64
            >= u64::from(row_group_count) * (ROW_GROUP_DESC_LEN + min_desc_len),
        "footer too short for {row_group_count} row groups of {column_count} columns"
    );
    let mut row_groups = Vec::with_capacity(row_group_count as usize);
    let mut blocks = Vec::with_capacity(row_group_count as usize * columns);
    let mut previous_block_end: Vec<u64> = extents.iter().map(|extent| extent.offset).collect();
    for row_group_index in 0..row_group_count {
        let sub_chunk_id = cursor.u32()?;
        let row_count = cursor.u32()?;
        let flags = cursor.u8()?;
        cursor.zeros(3, "row group description")?;
        ensure!(
            flags & !1 == 0,
            "row group {row_group_index}: unknown flags {flags:#x}"
        );
        let overlap = flags & 1 == 1;
        ensure!(
            overlap == (row_group_index >= own_row_group_count),
            "row group {row_group_index}: overlap flag does not match the own row group count"
        );
        ensure!(
            row_count <= MAX_ROWS_PER_ROW_GROUP,
            "row group {row_group_index}: {row_count} rows over the limit {MAX_ROWS_PER_ROW_GROUP}"
        );
        if let Some(previous) = row_groups
            .last()
            .filter(|previous: &&RowGroupMeta| previous.overlap == overlap)
        {
            ensure!(
                previous.sub_chunk_id < sub_chunk_id,
                "row group {row_group_index}: sub-chunk ids not strictly increasing"
            );
        }
        let row_group = RowGroupMeta {
            sub_chunk_id,
            overlap,
            row_count,
        };
        for (column_index, column) in schema.columns.iter().enumerate() {
            let block =
                decode_block_desc(&mut cursor, column, row_count).map_err(|bad| match bad {
                    Bad::Corrupt(what) => Bad::Corrupt(format!(
                        "block (row group {row_group_index}, column `{}`): {what}",
                        column.name
                    )),
                    Bad::Unsupported(what) => Bad::Unsupported(format!(
                        "block (row group {row_group_index}, column `{}`): {what}",
                        column.name
                    )),
                })?;
            let extent = extents[column_index];
            let block_end = block.offset.saturating_add(u64::from(block.len));
            ensure!(
                block.offset >= previous_block_end[column_index]
                    && block_end <= extent.offset + extent.len,
                "block (row group {row_group_index}, column `{}`) at [{}, +{}) outside its extent or out of order",
                column.name,
                block.offset,
                block.len
            );
            previous_block_end[column_index] = block_end;
            blocks.push(block);
        }
        row_groups.push(row_group);
    }
    ensure!(
        cursor.remaining() == 0,
        "{} trailing bytes after the footer",
        cursor.remaining()
    );
    // Stored row-group major; kept column major (see `Footer::blocks`).
    let row_group_total = row_groups.len();
    let mut slots: Vec<Option<BlockMeta>> = blocks.into_iter().map(Some).collect();
    let mut blocks = Vec::with_capacity(slots.len());
    for column in 0..columns {
        for row_group in 0..row_group_total {
            if let Some(block) = slots[row_group * columns + column].take() {
                blocks.push(block);
            }
        }
    }
    Ok(Footer {
        chunk_id,
        schema,
        row_groups,
        own_row_group_count,
        extents,
        blocks,
        footer_offset,
    })
}

fn utf8(bytes: &[u8], what: &str) -> BadResult<String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => bad!("{what} is not UTF-8"),
    }
}

fn decode_block_desc(
    cursor: &mut Cursor<'_>,
    column: &ColumnSchema,
    row_count: u32,
) -> BadResult<BlockMeta> {
    let offset = cursor.u64()?;
    let len = cursor.u32()?;
    let crc32c = cursor.u32()?;
    let encoding_id = cursor.u8()?;
    let compression_id = cursor.u8()?;
    let flags = cursor.u8()?;
    cursor.zeros(1, "block description")?;
    let null_count = cursor.u32()?;
    let validity_len = cursor.u32()?;
    let values_raw_len = cursor.u32()?;
    let column_type = column.column_type;
    let Some(encoding) = Encoding::from_id(encoding_id) else {
        return Err(Bad::Unsupported(format!(
            "unknown encoding id {encoding_id}"
        )));
    };
    let Some(compression) = Compression::from_id(compression_id) else {
        return Err(Bad::Unsupported(format!(
            "unknown compression id {compression_id}"
        )));
    };
    ensure!(
        column_type.supports(encoding),
        "encoding {encoding:?} is not defined for {column_type:?}"
    );
    ensure!(
        flags & !(STATS_HAS_MIN_MAX | STATS_HAS_NAN | STATS_TRUNCATED) == 0,
        "unknown stats flags {flags:#x}"
    );
    ensure!(
        flags & STATS_HAS_NAN == 0 || column_type.is_float(),
        "NaN flag on a non-float column"
    );
    ensure!(
        flags & STATS_TRUNCATED == 0
            || (column_type.is_var_len() && flags & STATS_HAS_MIN_MAX != 0),
        "truncated-stats flag without variable-length min/max"
    );
    ensure!(
        null_count <= row_count,
        "null count {null_count} over the row count {row_count}"
    );
    ensure!(
        null_count == 0 || column.nullable,
        "nulls in a non-nullable column"
    );
    let expected_validity_len = if null_count > 0 {
        validity_section_len(row_count)
    } else {
        0
    };
    ensure!(
        validity_len == expected_validity_len,
        "validity length {validity_len}, expected {expected_validity_len}"
    );
    ensure!(
        len >= validity_len,
        "block length {len} shorter than its validity section"
    );
    ensure!(
        offset % BLOCK_ALIGN == 0,
        "block offset {offset} not {BLOCK_ALIGN}-byte aligned"
    );
    let values_len = len - validity_len;
    match compression {
        Compression::None => ensure!(
            values_raw_len == values_len,
            "uncompressed values length {values_raw_len} differs from the stored {values_len}"
        ),
        Compression::Lz4 => ensure!(
            u64::from(values_raw_len) <= u64::from(values_len) * LZ4_MAX_RATIO + 64,
            "lz4 values length {values_raw_len} impossible from {values_len} compressed bytes"
        ),
    }
    let has_min_max = flags & STATS_HAS_MIN_MAX != 0;
    let min_max = if column_type.is_var_len() {
        let mut bounds = [Vec::new(), Vec::new()];
        for bound in &mut bounds {
            let bound_len = usize::from(cursor.u16()?);
            ensure!(
                bound_len <= MAX_STAT_BYTES,
                "stats bound of {bound_len} bytes"
            );
            *bound = cursor.take(bound_len)?.to_vec();
        }
        let [min, max] = bounds;
        if has_min_max {
            ensure!(min <= max, "stats min > max");
            Some(MinMax::Bytes {
                min,
                max,
                truncated: flags & STATS_TRUNCATED != 0,
            })
        } else {
            ensure!(
                min.is_empty() && max.is_empty(),
                "stats bounds without the min/max flag"
            );
            None
        }
    } else {
        let min = cursor.u64()?;
        let max = cursor.u64()?;
        if has_min_max {
            let min_max = match column_type {
                ColumnType::Bool => {
                    ensure!(min <= 1 && max <= 1, "bool stats not 0 or 1");
                    MinMax::Bool {
                        min: min == 1,
                        max: max == 1,
                    }
                }
                ColumnType::F32 | ColumnType::F64 => {
                    let (min, max) = (f64::from_bits(min), f64::from_bits(max));
                    ensure!(!min.is_nan() && !max.is_nan(), "NaN in float stats");
                    ensure!(min.total_cmp(&max).is_le(), "stats min > max");
                    MinMax::Float { min, max }
                }
                _ => {
                    let (min, max) = (min as i64, max as i64);
                    ensure!(min <= max, "stats min > max");
                    MinMax::Int { min, max }
                }
            };
            Some(min_max)
        } else {
            ensure!(
                min == 0 && max == 0,
                "stats values without the min/max flag"
            );
            None
        }
    };
    Ok(BlockMeta {
        offset,
        len,
        crc32c,
        encoding,
        compression,
        row_count,
        null_count,
        validity_len,
        values_raw_len,
        stats: BlockStats {
            min_max,
            has_nan: flags & STATS_HAS_NAN != 0,
        },
    })
}

/// Length of a validity (or bool values) bitmap section for `rows` rows:
/// whole little-endian u64 words.
pub(crate) const fn validity_section_len(rows: u32) -> u32 {
    rows.div_ceil(64) * 8
}
