//! Shared test helpers: the golden-file generator and sample tables.
#![allow(dead_code)]
// Test helpers outside #[test] functions: clippy.toml only covers the latter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skyscan_format::{
    Bitmap, BoolColumn, ChunkWriter, ColumnData, ColumnSchema, ColumnType, PrimitiveColumn,
    TableSchema, VarColumn, WriterOptions,
};

/// SplitMix64: a tiny deterministic generator (Steele, Lea, Flood 2014).
#[derive(Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The schema of the "every type" sample table.
pub fn all_types_schema() -> TableSchema {
    TableSchema::new(
        "Object",
        vec![
            ColumnSchema::new("objectId", ColumnType::I64, false),
            ColumnSchema::new("ra", ColumnType::F64, false),
            ColumnSchema::new("decl", ColumnType::F64, true),
            ColumnSchema::new("psFlux", ColumnType::F32, true),
            ColumnSchema::new("flags", ColumnType::I32, true),
            ColumnSchema::new("nDet", ColumnType::I16, true),
            ColumnSchema::new("band", ColumnType::Utf8, true),
            ColumnSchema::new("isPrimary", ColumnType::Bool, true),
            ColumnSchema::new("qual", ColumnType::I8, true),
            ColumnSchema::new("blob", ColumnType::Binary, true),
        ],
    )
}

/// Rows of one row group of the "every type" table, deterministic in
/// (`seed`, `sub_chunk_id`, `overlap`, `rows`). Every 7th row of nullable
/// columns is null; ids are sorted; ra/decl carry 6 decimals; fluxes are
/// noisy; flags are bit fields; bands come from ugrizy.
pub fn all_types_rows(seed: u64, sub_chunk_id: u32, overlap: bool, rows: usize) -> Vec<ColumnData> {
    let mut rng = SplitMix(seed ^ (u64::from(sub_chunk_id) << 20) ^ u64::from(overlap));
    let null = |row: usize| row % 7 == 3;
    let mut id = (u64::from(sub_chunk_id) << 32) as i64 + if overlap { 1 << 31 } else { 0 };
    let ids: Vec<i64> = (0..rows)
        .map(|_| {
            id += 1 + rng.below(5) as i64;
            id
        })
        .collect();
    let ra_base = f64::from(sub_chunk_id % 360);
    let ra: Vec<f64> = (0..rows)
        .map(|_| ((ra_base + rng.unit() * 0.25) * 1e6).round() / 1e6)
        .collect();
    let decl: Vec<Option<f64>> = (0..rows)
        .map(|row| (!null(row)).then(|| ((-30.0 + rng.unit() * 0.25) * 1e6).round() / 1e6))
        .collect();
    let flux: Vec<Option<f32>> = (0..rows)
        .map(|row| match row % 97 {
            5 => Some(f32::NAN),
            6 => Some(-0.0),
            7 => Some(f32::INFINITY),
            _ => (!null(row)).then(|| (1000.0 + 50.0 * (rng.unit() - 0.5)) as f32),
        })
        .collect();
    let flags: Vec<Option<i32>> = (0..rows)
        .map(|row| {
            (!null(row)).then(|| [0, 1, 1 << 5, 1 << 17 | 1, i32::MIN][rng.below(5) as usize])
        })
        .collect();
    let n_det: Vec<Option<i16>> = (0..rows)
        .map(|row| (!null(row)).then(|| rng.below(40) as i16))
        .collect();
    let bands = ["u", "g", "r", "i", "z", "y"];
    let band: Vec<Option<&str>> = (0..rows)
        .map(|row| (!null(row)).then(|| bands[rng.below(6) as usize]))
        .collect();
    let primary: Vec<Option<bool>> = (0..rows)
        .map(|row| (!null(row)).then(|| rng.below(3) != 0))
        .collect();
    let qual: Vec<Option<i8>> = (0..rows)
        .map(|row| (!null(row)).then(|| [i8::MIN, -1, 0, 1, i8::MAX][rng.below(5) as usize]))
        .collect();
    let blob: Vec<Option<Vec<u8>>> = (0..rows)
        .map(|row| (!null(row)).then(|| (0..rng.below(12)).map(|_| rng.next() as u8).collect()))
        .collect();
    vec![
        ColumnData::I64(PrimitiveColumn::new(ids)),
        ColumnData::F64(PrimitiveColumn::new(ra)),
        ColumnData::F64(PrimitiveColumn::from_options(&decl)),
        ColumnData::F32(PrimitiveColumn::from_options(&flux)),
        ColumnData::I32(PrimitiveColumn::from_options(&flags)),
        ColumnData::I16(PrimitiveColumn::from_options(&n_det)),
        ColumnData::Utf8(VarColumn::from_options(&band)),
        ColumnData::Bool(BoolColumn::from_options(&primary)),
        ColumnData::I8(PrimitiveColumn::from_options(&qual)),
        ColumnData::Binary(VarColumn::from_options(&blob)),
    ]
}

/// The row groups of the sample file: (sub_chunk_id, overlap, rows), in
/// the order they are added (not sorted: the writer sorts).
/// The first row group has more than 512 rows, so bit-packed streams have a
/// full interleaved group and a tail.
pub const SAMPLE_ROW_GROUPS: [(u32, bool, usize); 4] = [
    (12, false, 700),
    (3, false, 70),
    (3, true, 20),
    (40, true, 0),
];

/// Row groups of the small file used by the byte-flip corruption test.
pub const SMALL_ROW_GROUPS: [(u32, bool, usize); 3] =
    [(5, false, 40), (2, false, 13), (2, true, 9)];

/// Writes the sample "every type" file.
pub fn all_types_file(seed: u64, options: WriterOptions) -> Vec<u8> {
    all_types_file_with(seed, options, &SAMPLE_ROW_GROUPS)
}

/// Writes the "every type" file with the given row groups.
pub fn all_types_file_with(
    seed: u64,
    options: WriterOptions,
    groups: &[(u32, bool, usize)],
) -> Vec<u8> {
    let mut writer = ChunkWriter::new(all_types_schema(), 7, options).unwrap();
    for &(sub_chunk_id, overlap, rows) in groups {
        writer
            .add_row_group(
                sub_chunk_id,
                overlap,
                &all_types_rows(seed, sub_chunk_id, overlap, rows),
            )
            .unwrap();
    }
    writer.finish_to_vec().unwrap().0
}

/// The expected row groups of the sample file, in file order.
pub fn all_types_expected(seed: u64) -> Vec<(u32, bool, Vec<ColumnData>)> {
    let mut groups: Vec<_> = SAMPLE_ROW_GROUPS
        .iter()
        .map(|&(sub_chunk_id, overlap, rows)| {
            (
                sub_chunk_id,
                overlap,
                all_types_rows(seed, sub_chunk_id, overlap, rows),
            )
        })
        .collect();
    groups.sort_by_key(|(sub_chunk_id, overlap, _)| (*overlap, *sub_chunk_id));
    groups
}

/// Asserts two columns are logically equal, with a helpful message.
pub fn assert_column_eq(actual: &ColumnData, expected: &ColumnData, what: &str) {
    assert!(
        actual.logical_eq(expected),
        "{what}: decoded column differs\nexpected: {expected:?}\nactual:   {actual:?}"
    );
}

/// A bitmap helper for tests.
pub fn bitmap(bits: &[bool]) -> Bitmap {
    Bitmap::from_bools(bits)
}

/// Golden files of format v1: (file name, forced encoding or `None` for the
/// automatic choice, lz4 always). Each holds the "every type" table restricted
/// to the columns that support the encoding, generated with `seed` 11 by
/// [`golden_file`].
pub const GOLDEN_FILES: [(&str, Option<skyscan_format::Encoding>, bool); 10] = {
    use skyscan_format::Encoding::*;
    [
        ("v1_auto.skychunk", None, false),
        ("v1_auto_lz4.skychunk", None, true),
        ("v1_plain.skychunk", Some(Plain), false),
        ("v1_for_bitpack.skychunk", Some(ForBitpack), false),
        ("v1_delta_bitpack.skychunk", Some(DeltaBitpack), false),
        ("v1_dictionary.skychunk", Some(Dictionary), false),
        ("v1_byte_shuffle.skychunk", Some(ByteShuffle), true),
        ("v1_alp.skychunk", Some(Alp), false),
        ("v1_float_for.skychunk", Some(FloatFor), false),
        ("v1_sparse.skychunk", Some(Sparse), false),
    ]
};

/// Seed of the golden files.
pub const GOLDEN_SEED: u64 = 11;

/// Indices of the sample columns a golden file holds.
pub fn golden_columns(encoding: Option<skyscan_format::Encoding>) -> Vec<usize> {
    let schema = all_types_schema();
    (0..schema.columns.len())
        .filter(|&index| encoding.is_none_or(|e| schema.columns[index].column_type.supports(e)))
        .collect()
}

/// The golden-file generator: the sample row groups, restricted to
/// [`golden_columns`], encoded with the given choice.
pub fn golden_file(encoding: Option<skyscan_format::Encoding>, lz4: bool) -> Vec<u8> {
    use skyscan_format::{CompressionChoice, EncodeOptions};
    let columns = golden_columns(encoding);
    let full = all_types_schema();
    let schema = TableSchema::new(
        "Object",
        columns
            .iter()
            .map(|&index| full.columns[index].clone())
            .collect(),
    );
    let compression = if lz4 {
        CompressionChoice::Always
    } else {
        CompressionChoice::Auto
    };
    let options = WriterOptions {
        encode: EncodeOptions {
            encoding,
            compression,
        },
    };
    let mut writer = ChunkWriter::new(schema, 7, options).unwrap();
    for (sub_chunk_id, overlap, rows) in SAMPLE_ROW_GROUPS {
        let all = all_types_rows(GOLDEN_SEED, sub_chunk_id, overlap, rows);
        let data: Vec<ColumnData> = columns.iter().map(|&index| all[index].clone()).collect();
        writer.add_row_group(sub_chunk_id, overlap, &data).unwrap();
    }
    writer.finish_to_vec().unwrap().0
}
