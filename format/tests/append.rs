//! Decoding several row groups into one batch (`BlockDecoder::decode_append`,
//! `ColumnData::append`, `Bitmap::extend_from`) gives exactly the rows of
//! the row groups one after another.

use skyscan_format::{
    Bitmap, BlockDecoder, BoolColumn, ChunkFile, ChunkWriter, ColumnData, ColumnSchema, ColumnType,
    PrimitiveColumn, TableSchema, VarColumn, WriterOptions,
};

#[test]
fn bitmaps_extend_at_every_offset() {
    for first in 0..130usize {
        for second in [0usize, 1, 63, 64, 65, 200] {
            let a: Vec<bool> = (0..first).map(|i| i % 3 == 0).collect();
            let b: Vec<bool> = (0..second).map(|i| i % 5 != 1).collect();
            let mut joined = Bitmap::from_bools(&a);
            joined.extend_from(&Bitmap::from_bools(&b));
            let expected: Vec<bool> = a.iter().chain(&b).copied().collect();
            assert_eq!(joined, Bitmap::from_bools(&expected), "{first} + {second}");
            let mut ones = Bitmap::from_bools(&a);
            ones.extend_set(second);
            let expected: Vec<bool> = a.iter().copied().chain((0..second).map(|_| true)).collect();
            assert_eq!(
                ones,
                Bitmap::from_bools(&expected),
                "{first} + {second} set"
            );
        }
    }
}

/// Rows `0..rows` of row group `g` as optional values, column by column.
type Rows = (
    Vec<Option<i64>>,
    Vec<Option<f32>>,
    Vec<Option<bool>>,
    Vec<Option<String>>,
);

/// Row group `g` of the test file: `rows` rows; nulls only in odd groups.
fn rows_of(g: usize, rows: usize) -> Rows {
    let nulls = g % 2 == 1;
    let value = |i: usize| !(nulls && i % 7 == 3);
    (
        (0..rows)
            .map(|i| value(i).then_some((g * 1000 + i) as i64))
            .collect(),
        (0..rows)
            .map(|i| value(i).then_some(i as f32 * 0.5 + g as f32))
            .collect(),
        (0..rows).map(|i| value(i).then_some(i % 3 == 0)).collect(),
        (0..rows)
            .map(|i| value(i).then(|| format!("g{g}-{}", "x".repeat(i % 5))))
            .collect(),
    )
}

fn columns(rows: &Rows) -> Vec<ColumnData> {
    vec![
        ColumnData::I64(PrimitiveColumn::from_options(&rows.0)),
        ColumnData::F32(PrimitiveColumn::from_options(&rows.1)),
        ColumnData::Bool(BoolColumn::from_options(&rows.2)),
        ColumnData::Utf8(VarColumn::from_options(&rows.3)),
    ]
}

fn group(g: usize, rows: usize) -> Vec<ColumnData> {
    columns(&rows_of(g, rows))
}

#[test]
fn decode_append_equals_row_groups_concatenated() {
    let schema = TableSchema::new(
        "t",
        vec![
            ColumnSchema::new("id", ColumnType::I64, true),
            ColumnSchema::new("f", ColumnType::F32, true),
            ColumnSchema::new("b", ColumnType::Bool, true),
            ColumnSchema::new("s", ColumnType::Utf8, true),
        ],
    );
    let sizes = [1usize, 200, 64, 513, 3, 1000];
    let mut writer = ChunkWriter::new(schema, 9, WriterOptions::default()).unwrap();
    for (g, &rows) in sizes.iter().enumerate() {
        writer
            .add_row_group(g as u32, false, &group(g, rows))
            .unwrap();
    }
    let mut bytes = Vec::new();
    writer.finish(&mut bytes).unwrap();
    let file = ChunkFile::from_bytes(&bytes).unwrap();
    for column in 0..4 {
        // Every run of consecutive row groups, from every start.
        for start in 0..sizes.len() {
            let mut decoder = BlockDecoder::new();
            let mut batch = ColumnData::empty(file.footer().schema().columns[column].column_type);
            let mut all: Rows = Default::default();
            for (g, &rows) in sizes.iter().enumerate().skip(start) {
                let block = file.footer().block(g, column).unwrap();
                decoder
                    .decode_append(
                        &block,
                        file.block_bytes(g, column).unwrap(),
                        &mut batch,
                        true,
                    )
                    .unwrap();
                let part = rows_of(g, rows);
                all.0.extend(part.0);
                all.1.extend(part.1);
                all.2.extend(part.2);
                all.3.extend(part.3);
                let expected = columns(&all).swap_remove(column);
                assert!(
                    batch.logical_eq(&expected),
                    "column {column}, row groups {start}..={g}"
                );
            }
        }
    }
    // A type mismatch is an error, not a panic.
    let mut ints = ColumnData::I64(PrimitiveColumn::new(vec![1]));
    assert!(
        ints.append(&ColumnData::F64(PrimitiveColumn::new(vec![1.0])))
            .is_err()
    );
}
