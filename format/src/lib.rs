//! # skyscan chunk file format, version 1
//!
//! One file per (table, chunk): columnar, compressed, checksummed. The
//! normative byte layout is `SPEC.md`, part 1; this crate mirrors it.
//!
//! * Bytes only, no I/O. Reading is push-style (sans-IO): the caller fetches
//!   the last [`TAIL_LEN`] bytes and gives them to [`FileTail::parse`], which
//!   names the footer's byte range; [`Footer::decode`] turns those bytes into
//!   metadata; [`Footer::block`] / [`Footer::column_range`] name the block
//!   ranges to fetch; a [`BlockDecoder`] verifies and decodes each block into
//!   a reused [`ColumnData`].
//! * Writing: [`ChunkWriter::new`], [`ChunkWriter::add_row_group`] per
//!   sub-chunk (own or overlap rows), [`ChunkWriter::finish`] into any
//!   `std::io::Write`.
//! * [`ChunkFile::from_bytes`] reads a file held in memory (tests, tools).
//!
//! Every error is a [`FormatError`]; corrupt input never panics and never
//! yields a wrong value (every block and the footer carry a CRC-32C, and every
//! length is checked against the limits in [`limits`] before allocation).

// `unsafe` is allowed in one place only: the SIMD dispatch in `kernels::simd`.
#![deny(unsafe_code)]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "skyscan-format casts little-endian on-disk values in place: little-endian targets only"
);

pub mod checksum;
mod column;
mod decode;
mod encode;
mod error;
mod ids;
pub mod kernels;
pub mod limits;
mod meta;
mod reader;
pub mod testing;
mod writer;

pub use column::{Bitmap, BoolColumn, ColumnData, PrimitiveColumn, VarColumn};
pub use decode::{BlockDecoder, decode_block, decode_block_into};
pub use encode::{CompressionChoice, EncodeOptions, EncodedBlock, encode_block};
pub use error::{FormatError, Location, Result};
pub use ids::{ColumnType, Compression, Encoding};
pub use meta::{
    BLOCK_ALIGN, BlockMeta, BlockRef, BlockStats, ByteRange, ColumnExtent, ColumnSchema,
    DATA_START, EXTENT_ALIGN, FORMAT_VERSION, FileTail, Footer, HEADER_LEN, MAGIC, MinMax,
    RowGroupMeta, RowGroupSet, TAIL_LEN, TableSchema, check_header,
};
pub use reader::ChunkFile;
pub use writer::{ChunkWriter, WriteStats, WriterOptions};
