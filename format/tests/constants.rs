//! Pins every on-disk constant. A failure here means the bytes changed: that
//! needs a new encoding id or format version, and a spec change.

// Helpers outside #[test] functions may unwrap too (clippy.toml covers only the latter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skyscan_format::limits::*;
use skyscan_format::*;

#[test]
fn encoding_ids_are_forever() {
    let pinned = [
        (Encoding::Plain, 1),
        (Encoding::ForBitpack, 2),
        (Encoding::DeltaBitpack, 3),
        (Encoding::Dictionary, 4),
        (Encoding::ByteShuffle, 5),
        (Encoding::Alp, 6),
        (Encoding::FloatFor, 7),
        (Encoding::Sparse, 8),
    ];
    assert_eq!(pinned.len(), Encoding::ALL.len());
    for (encoding, id) in pinned {
        assert_eq!(encoding.id(), id);
        assert_eq!(encoding as u8, id);
        assert_eq!(Encoding::from_id(id), Some(encoding));
    }
    assert_eq!(Encoding::from_id(0), None, "0 is reserved");
    assert_eq!(Encoding::from_id(9), None);
    assert_eq!(Encoding::from_id(255), None);
}

#[test]
fn compression_ids_are_forever() {
    assert_eq!(Compression::None.id(), 1);
    assert_eq!(Compression::Lz4.id(), 2);
    assert_eq!(Compression::from_id(0), None, "0 is reserved");
    assert_eq!(Compression::from_id(3), None);
}

#[test]
fn column_type_ids_are_forever() {
    let pinned = [
        (ColumnType::Bool, 1),
        (ColumnType::I8, 2),
        (ColumnType::I16, 3),
        (ColumnType::I32, 4),
        (ColumnType::I64, 5),
        (ColumnType::F32, 6),
        (ColumnType::F64, 7),
        (ColumnType::Utf8, 8),
        (ColumnType::Binary, 9),
    ];
    assert_eq!(pinned.len(), ColumnType::ALL.len());
    for (column_type, id) in pinned {
        assert_eq!(column_type.id(), id);
        assert_eq!(ColumnType::from_id(id), Some(column_type));
    }
    assert_eq!(ColumnType::from_id(0), None);
    assert_eq!(ColumnType::from_id(10), None);
}

#[test]
fn encodings_per_type_match_the_spec_table() {
    use ColumnType::*;
    use Encoding::*;
    let table: [(ColumnType, &[Encoding]); 9] = [
        (Bool, &[Plain]),
        (I8, &[Plain, ForBitpack, DeltaBitpack, Dictionary, Sparse]),
        (I16, &[Plain, ForBitpack, DeltaBitpack, Dictionary, Sparse]),
        (I32, &[Plain, ForBitpack, DeltaBitpack, Dictionary, Sparse]),
        (I64, &[Plain, ForBitpack, DeltaBitpack, Dictionary, Sparse]),
        (F32, &[Plain, Dictionary, ByteShuffle, Alp, FloatFor]),
        (F64, &[Plain, Dictionary, ByteShuffle, Alp, FloatFor]),
        (Utf8, &[Plain, Dictionary]),
        (Binary, &[Plain, Dictionary]),
    ];
    for (column_type, supported) in table {
        for encoding in Encoding::ALL {
            assert_eq!(
                column_type.supports(encoding),
                supported.contains(&encoding),
                "{column_type:?} {encoding:?}"
            );
        }
    }
}

#[test]
fn magic_version_and_layout_constants() {
    assert_eq!(&MAGIC, b"SKYCHUNK");
    assert_eq!(FORMAT_VERSION, 1);
    assert_eq!(HEADER_LEN, 16);
    assert_eq!(TAIL_LEN, 32);
    assert_eq!(DATA_START, 4096);
    assert_eq!(EXTENT_ALIGN, 4096);
    assert_eq!(BLOCK_ALIGN, 64);
    assert_eq!(kernels::GROUP, 512);
}

#[test]
fn checksum_is_crc32c_castagnoli() {
    // The standard check value of CRC-32C (RFC 3720), as the spec states.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn limits() {
    assert_eq!(MAX_ROWS_PER_ROW_GROUP, 1 << 24);
    assert_eq!(MAX_COLUMNS, 4096);
    assert_eq!(MAX_ROW_GROUPS, 1 << 16);
    assert_eq!(MAX_FOOTER_LEN, 64 << 20);
    assert_eq!(MAX_NAME_LEN, 1024);
    assert_eq!(MAX_DICT_LEN, 1 << 16);
    assert_eq!(MAX_STAT_BYTES, 64);
    assert_eq!(MAX_VAR_DATA_LEN, 1 << 30);
}

#[test]
fn bit_packed_stream_layout() {
    // 512 values of width 3 form one narrow group of 16 lanes x 3 u32 words;
    // value i is row i / 16 of lane i % 16.
    let values: Vec<u64> = (0..515u64).map(|i| i % 8).collect();
    let mut packed = Vec::new();
    kernels::pack(&values, 3, &mut packed);
    assert_eq!(packed.len(), 64 * 3 + 8);
    assert_eq!(kernels::packed_len(515, 3), 64 * 3 + 8);
    let word =
        |index: usize| u32::from_le_bytes(packed[index * 4..index * 4 + 4].try_into().unwrap());
    // Lane 1 holds values 1, 17, 33, ... = 1, 1, 1, ... (i % 8 with i = 16 r + 1).
    // Rows 0..10 occupy bits 0..30 of word 1 (lane 1, word 0).
    assert_eq!(
        word(1) & 0x3FFF_FFFF,
        0b001_001_001_001_001_001_001_001_001_001
    );
    // The tail (values 512, 513, 514 = 0, 1, 2) is LSB-first in one u64.
    let tail = u64::from_le_bytes(packed[192..200].try_into().unwrap());
    assert_eq!(tail, 0b010_001_000);
}
