//! Corrupt, truncated and foreign input: always an error, never a panic,
//! never a wrong value.

// Helpers outside #[test] functions may unwrap too (clippy.toml covers only the latter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use skyscan_format::{
    BlockDecoder, ChunkFile, ColumnData, FileTail, Footer, FormatError, Location, TAIL_LEN,
    WriterOptions, testing,
};

/// Everything a reader gets out of a file: the footer and every block.
fn decode_all(bytes: &[u8]) -> Result<(Footer, Vec<Vec<ColumnData>>), FormatError> {
    let file = ChunkFile::from_bytes(bytes)?;
    let columns = file.read_all()?;
    Ok((file.footer().clone(), columns))
}

fn same(a: &(Footer, Vec<Vec<ColumnData>>), b: &(Footer, Vec<Vec<ColumnData>>)) -> bool {
    a.0 == b.0
        && a.1.len() == b.1.len()
        && a.1
            .iter()
            .zip(&b.1)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.logical_eq(q)))
}

fn small_file() -> Vec<u8> {
    all_types_file_with(21, WriterOptions::default(), &SMALL_ROW_GROUPS)
}

/// Bytes the reader interprets: header, blocks, footer, tail (the rest is
/// zero padding).
fn meaningful_bytes(bytes: &[u8]) -> Vec<bool> {
    let file = ChunkFile::from_bytes(bytes).unwrap();
    let footer = file.footer();
    let mut meaningful = vec![false; bytes.len()];
    meaningful[..skyscan_format::HEADER_LEN].fill(true);
    meaningful[footer.footer_offset() as usize..].fill(true);
    for row_group in 0..footer.row_groups().len() {
        for column in 0..footer.schema().columns.len() {
            let range = footer.block(row_group, column).unwrap().range();
            meaningful[range.offset as usize..range.end() as usize].fill(true);
        }
    }
    meaningful
}

#[test]
fn every_single_byte_flip_is_an_error_or_harmless() {
    let bytes = small_file();
    let reference = decode_all(&bytes).unwrap();
    let meaningful = meaningful_bytes(&bytes);
    // Debug builds flip every meaningful byte and every 16th padding byte
    // with two patterns (about 10 s); release builds flip every byte with four.
    let (patterns, padding_step): (&[u8], usize) = if cfg!(debug_assertions) {
        (&[0x01, 0xFF], 16)
    } else {
        (&[0x01, 0x80, 0x5A, 0xFF], 1)
    };
    let mut mutated = bytes.clone();
    let mut errors = 0usize;
    for position in 0..bytes.len() {
        if !meaningful[position] && position % padding_step != 0 {
            continue;
        }
        for &pattern in patterns {
            mutated[position] ^= pattern;
            match decode_all(&mutated) {
                Err(_) => errors += 1,
                Ok(result) => assert!(
                    same(&result, &reference),
                    "flip {pattern:#x} at byte {position} changed the decoded file without an error"
                ),
            }
            mutated[position] = bytes[position];
        }
    }
    let meaningful_count = meaningful.iter().filter(|&&m| m).count();
    // Every flip of a meaningful byte is detected (checksums, header checks).
    assert!(
        errors >= meaningful_count * patterns.len(),
        "{errors} errors for {meaningful_count} bytes"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_file();
    for len in 0..bytes.len() {
        assert!(
            ChunkFile::from_bytes(&bytes[..len]).is_err(),
            "truncated to {len} bytes"
        );
    }
    // Extra bytes at the end are an error too (the tail is no longer last).
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(ChunkFile::from_bytes(&longer).is_err());
}

/// Flips bytes and then repairs every checksum, so the mutations reach the
/// validation behind the checksums: any result but a panic is fine.
#[test]
fn resealed_mutations_never_panic() {
    let bytes = all_types_file(22, WriterOptions::default());
    let mut rng = SplitMix(7);
    let iterations = if cfg!(debug_assertions) { 1500 } else { 20_000 };
    let mut decoded_ok = 0usize;
    for _ in 0..iterations {
        let mut mutated = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let position = rng.below(mutated.len() as u64) as usize;
            mutated[position] ^= 1 << rng.below(8);
        }
        if testing::reseal(&mut mutated).is_ok() && decode_all(&mutated).is_ok() {
            decoded_ok += 1;
        }
    }
    assert!(decoded_ok > 0, "some mutations (in padding) must decode");
}

/// The same for a file of every forced encoding (SPARSE in both of its
/// modes, ALP exceptions, dictionaries...), mutating only block bytes so the
/// decoders' own validation is reached.
#[test]
fn resealed_block_mutations_of_every_encoding_never_panic() {
    let mut rng = SplitMix(8);
    let iterations = if cfg!(debug_assertions) { 400 } else { 4000 };
    for encoding in skyscan_format::Encoding::ALL {
        let bytes = golden_file(Some(encoding), false);
        let meaningful = meaningful_bytes(&bytes);
        let footer_offset = ChunkFile::from_bytes(&bytes)
            .unwrap()
            .footer()
            .footer_offset() as usize;
        let block_positions: Vec<usize> = (skyscan_format::HEADER_LEN..footer_offset)
            .filter(|&position| meaningful[position])
            .collect();
        for _ in 0..iterations {
            let mut mutated = bytes.clone();
            for _ in 0..1 + rng.below(3) {
                let position = block_positions[rng.below(block_positions.len() as u64) as usize];
                mutated[position] ^= 1 << rng.below(8);
            }
            testing::reseal(&mut mutated).unwrap();
            let _ = decode_all(&mutated);
        }
    }
}

fn tail_of(bytes: &[u8]) -> &[u8] {
    &bytes[bytes.len() - TAIL_LEN..]
}

#[test]
fn absurd_footer_lengths_are_rejected_before_allocating() {
    let bytes = small_file();
    for footer_len in [u64::MAX, 1 << 40, 64 << 20, bytes.len() as u64] {
        let mut mutated = bytes.clone();
        let tail_start = mutated.len() - TAIL_LEN;
        mutated[tail_start..tail_start + 8].copy_from_slice(&footer_len.to_le_bytes());
        let err = FileTail::parse(tail_of(&mutated), mutated.len() as u64).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
    }
}

#[test]
fn unknown_version_is_unsupported() {
    let mut bytes = small_file();
    let tail_start = bytes.len() - TAIL_LEN;
    bytes[tail_start + 12..tail_start + 16].copy_from_slice(&2u32.to_le_bytes());
    let err = ChunkFile::from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::Unsupported { .. }), "{err}");
}

#[test]
fn foreign_files_are_corrupt() {
    let png = b"\x89PNG\r\n\x1a\n".repeat(1000);
    assert!(ChunkFile::from_bytes(&png).unwrap_err().is_corrupt());
    let zeros = vec![0u8; 10_000];
    assert!(ChunkFile::from_bytes(&zeros).unwrap_err().is_corrupt());
    assert!(ChunkFile::from_bytes(&[]).unwrap_err().is_corrupt());
}

/// Position of the encoding byte of block (0, 0) in the file (spec tables).
fn first_encoding_byte(bytes: &[u8]) -> usize {
    let tail = FileTail::parse(tail_of(bytes), bytes.len() as u64).unwrap();
    let footer = tail.footer_range().offset as usize;
    let table_name_len = u16::from_le_bytes([bytes[footer + 16], bytes[footer + 17]]) as usize;
    let column_count =
        u32::from_le_bytes(bytes[footer + 4..footer + 8].try_into().unwrap()) as usize;
    let mut position = footer + 24 + table_name_len;
    for _ in 0..column_count {
        let name_len = u16::from_le_bytes([bytes[position + 2], bytes[position + 3]]) as usize;
        position += 24 + name_len;
    }
    position + 12 + 16
}

#[test]
fn unknown_encoding_id_is_unsupported() {
    let mut bytes = small_file();
    let position = first_encoding_byte(&bytes);
    assert!((1..=8).contains(&bytes[position]), "an encoding id");
    bytes[position] = 200;
    testing::reseal(&mut bytes).unwrap_err();
    let err = ChunkFile::from_bytes(&bytes).unwrap_err();
    // The footer checksum catches it first...
    assert!(err.is_corrupt(), "{err}");
    // ...and a resealed footer names the unknown id.
    let tail_start = bytes.len() - TAIL_LEN;
    let footer = FileTail::parse(&bytes[tail_start..], bytes.len() as u64)
        .unwrap()
        .footer_range();
    let crc = crc32c::crc32c(&bytes[footer.offset as usize..footer.end() as usize]);
    bytes[tail_start + 8..tail_start + 12].copy_from_slice(&crc.to_le_bytes());
    let err = ChunkFile::from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("encoding id 200"), "{err}");
}

#[test]
fn block_errors_name_the_block() {
    let bytes = small_file();
    let file = ChunkFile::from_bytes(&bytes).unwrap();
    let block = file.footer().block(1, 3).unwrap();
    let mut block_bytes = file.block_bytes(1, 3).unwrap().to_vec();
    block_bytes[0] ^= 1;
    let err = BlockDecoder::new()
        .decode(&block, &block_bytes)
        .unwrap_err();
    match &err {
        FormatError::Corrupt {
            location:
                Location::Block {
                    row_group,
                    column_index,
                    column_name,
                },
            ..
        } => {
            assert_eq!(
                (*row_group, *column_index, column_name.as_str()),
                (1, 3, "psFlux")
            );
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("psFlux"), "{err}");
    // The wrong number of bytes is the caller's mistake.
    let err = BlockDecoder::new()
        .decode(&block, &block_bytes[1..])
        .unwrap_err();
    assert!(matches!(err, FormatError::InvalidInput { .. }), "{err}");
}
