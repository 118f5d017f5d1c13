//! A convenience reader over a whole file held in memory, for tests and
//! small tools. The scan engine drives [`FileTail`], [`Footer`] and
//! [`BlockDecoder`] itself with its own I/O.

use crate::column::ColumnData;
use crate::decode::BlockDecoder;
use crate::error::{FormatError, Location, Result};
use crate::meta::{FileTail, Footer, HEADER_LEN, TAIL_LEN, check_header};

/// A chunk file in memory with its decoded footer.
#[derive(Debug, Clone)]
pub struct ChunkFile<'a> {
    bytes: &'a [u8],
    footer: Footer,
}

impl<'a> ChunkFile<'a> {
    /// Parses the header, the tail and the footer (verifying its checksum).
    /// Blocks are verified when read.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<ChunkFile<'a>> {
        if bytes.len() < HEADER_LEN + TAIL_LEN {
            return Err(FormatError::corrupt(
                Location::Tail,
                "file shorter than the smallest chunk file",
            ));
        }
        check_header(&bytes[..HEADER_LEN])?;
        let tail = FileTail::parse(&bytes[bytes.len() - TAIL_LEN..], bytes.len() as u64)?;
        let footer_bytes = &bytes[tail.footer_range().to_usize_range()?];
        let footer = Footer::decode(footer_bytes, &tail)?;
        Ok(ChunkFile { bytes, footer })
    }

    /// The footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes of the block of (`row_group`, `column`).
    pub fn block_bytes(&self, row_group: usize, column: usize) -> Result<&'a [u8]> {
        let block = self.footer.block(row_group, column)?;
        // The footer decoder checked the range lies before the footer.
        Ok(&self.bytes[block.range().to_usize_range()?])
    }

    /// Decodes the block of (`row_group`, `column`).
    pub fn read_block(&self, row_group: usize, column: usize) -> Result<ColumnData> {
        let block = self.footer.block(row_group, column)?;
        BlockDecoder::new().decode(&block, self.block_bytes(row_group, column)?)
    }

    /// Decodes the block of (`row_group`, `column`) into `out` with `decoder`.
    pub fn read_block_into(
        &self,
        row_group: usize,
        column: usize,
        decoder: &mut BlockDecoder,
        out: &mut ColumnData,
    ) -> Result<()> {
        let block = self.footer.block(row_group, column)?;
        decoder.decode_into(&block, self.block_bytes(row_group, column)?, out)
    }

    /// Decodes every block: `result[row_group][column]`.
    pub fn read_all(&self) -> Result<Vec<Vec<ColumnData>>> {
        let mut decoder = BlockDecoder::new();
        let columns = self.footer.schema().columns.len();
        (0..self.footer.row_groups().len())
            .map(|row_group| {
                (0..columns)
                    .map(|column| {
                        let block = self.footer.block(row_group, column)?;
                        decoder.decode(&block, self.block_bytes(row_group, column)?)
                    })
                    .collect()
            })
            .collect()
    }
}
