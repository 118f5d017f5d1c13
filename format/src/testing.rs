//! Tools for fuzzers and corruption tests. Not for production readers.

use crate::error::{FormatError, Location, Result};
use crate::meta::{FileTail, Footer, TAIL_LEN};

/// Recomputes every block checksum and the footer checksum of a chunk file
/// in place, so that a mutated file gets past the checksums and exercises
/// the validation behind them. Fails when the tail or the footer structure
/// (ignoring its checksum) does not parse.
pub fn reseal(bytes: &mut [u8]) -> Result<()> {
    if bytes.len() < TAIL_LEN {
        return Err(FormatError::corrupt(Location::Tail, "too short"));
    }
    let tail_start = bytes.len() - TAIL_LEN;
    let tail = FileTail::parse(&bytes[tail_start..], bytes.len() as u64)?;
    let footer_range = tail.footer_range().to_usize_range()?;
    let footer =
        Footer::decode_unverified(&bytes[footer_range.clone()], tail.footer_range().offset)?;
    let columns = footer.schema().columns.len();
    let mut metas = Vec::with_capacity(footer.row_groups().len() * columns);
    let mut extents = Vec::with_capacity(columns);
    for column in 0..columns {
        extents.extend(footer.column_extent(column));
    }
    for row_group in 0..footer.row_groups().len() {
        for column in 0..columns {
            let block = footer.block(row_group, column)?;
            let mut meta = block.meta.clone();
            meta.crc32c = crate::checksum::crc32c(&bytes[block.range().to_usize_range()?]);
            metas.push(meta);
        }
    }
    let encoded = Footer::encode(
        footer.chunk_id(),
        footer.schema(),
        footer.row_groups(),
        &extents,
        &metas,
    );
    if encoded.len() != footer_range.len() {
        return Err(FormatError::invalid(
            "footer did not re-encode to the same length",
        ));
    }
    bytes[footer_range].copy_from_slice(&encoded);
    let new_tail = FileTail::encode(tail.footer_len, crate::checksum::crc32c(&encoded));
    bytes[tail_start..].copy_from_slice(&new_tail);
    Ok(())
}
