//! Writer misuse is `InvalidInput`, never a panic and never a bad file.

// Helpers outside #[test] functions may unwrap too (clippy.toml covers only the latter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skyscan_format::limits::*;
use skyscan_format::*;

fn schema() -> TableSchema {
    TableSchema::new(
        "t",
        vec![
            ColumnSchema::new("a", ColumnType::I32, false),
            ColumnSchema::new("s", ColumnType::Utf8, true),
        ],
    )
}

fn good_rows(rows: usize) -> Vec<ColumnData> {
    vec![
        ColumnData::I32(PrimitiveColumn::new(vec![1; rows])),
        ColumnData::Utf8(VarColumn::from_options(&vec![Some("x"); rows])),
    ]
}

fn is_invalid<T: std::fmt::Debug>(result: Result<T>) -> bool {
    matches!(result, Err(FormatError::InvalidInput { .. }))
}

#[test]
fn bad_schemas() {
    let new = |schema| ChunkWriter::new(schema, 0, WriterOptions::default()).map(|_| ());
    assert!(is_invalid(new(TableSchema::new("t", vec![]))));
    let duplicate = vec![ColumnSchema::new("a", ColumnType::I8, false); 2];
    assert!(is_invalid(new(TableSchema::new("t", duplicate))));
    assert!(is_invalid(new(TableSchema::new(
        "t",
        vec![ColumnSchema::new("", ColumnType::I8, false)]
    ))));
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert!(is_invalid(new(TableSchema::new(
        long.clone(),
        vec![ColumnSchema::new("a", ColumnType::I8, false)]
    ))));
    assert!(is_invalid(new(TableSchema::new(
        "t",
        vec![ColumnSchema::new(long, ColumnType::I8, false)]
    ))));
    let many = (0..=MAX_COLUMNS)
        .map(|i| ColumnSchema::new(format!("c{i}"), ColumnType::I8, false))
        .collect();
    assert!(is_invalid(new(TableSchema::new("t", many))));
}

#[test]
fn bad_row_groups() {
    let mut writer = ChunkWriter::new(schema(), 0, WriterOptions::default()).unwrap();
    // Wrong column count, types, lengths.
    assert!(is_invalid(writer.add_row_group(
        1,
        false,
        &good_rows(3)[..1]
    )));
    let mut wrong_type = good_rows(3);
    wrong_type[0] = ColumnData::I64(PrimitiveColumn::new(vec![1; 3]));
    assert!(is_invalid(writer.add_row_group(1, false, &wrong_type)));
    let mut wrong_len = good_rows(3);
    wrong_len[0] = ColumnData::I32(PrimitiveColumn::new(vec![1; 4]));
    assert!(is_invalid(writer.add_row_group(1, false, &wrong_len)));
    // Nulls in a non-nullable column.
    let mut nulls = good_rows(3);
    nulls[0] = ColumnData::I32(PrimitiveColumn::from_options(&[Some(1), None, Some(2)]));
    assert!(is_invalid(writer.add_row_group(1, false, &nulls)));
    // Validity of the wrong length.
    let mut bad_validity = good_rows(3);
    bad_validity[1] = ColumnData::Utf8(VarColumn {
        offsets: vec![0, 1, 2, 3],
        data: b"abc".to_vec(),
        validity: Some(Bitmap::new_set(4)),
    });
    assert!(is_invalid(writer.add_row_group(1, false, &bad_validity)));
    // Bad offsets and bad UTF-8.
    for (offsets, data) in [
        (vec![0, 2, 1, 3], b"abc".to_vec()),
        (vec![1, 2, 3, 3], b"abc".to_vec()),
        (vec![0, 1, 2, 4], b"abc".to_vec()),
        (vec![0, 1, 2, 3], vec![b'a', 0xFF, b'c']),
        (vec![0, 1, 2, 3], "aé".as_bytes().to_vec()),
        (vec![], vec![]),
    ] {
        let mut rows = good_rows(3);
        rows[1] = ColumnData::Utf8(VarColumn {
            offsets,
            data,
            validity: None,
        });
        assert!(is_invalid(writer.add_row_group(1, false, &rows)));
    }
    // Duplicate sub-chunk (own twice), but own + overlap of the same id is fine.
    writer.add_row_group(1, false, &good_rows(3)).unwrap();
    assert!(is_invalid(writer.add_row_group(1, false, &good_rows(3))));
    writer.add_row_group(1, true, &good_rows(2)).unwrap();
    let (bytes, stats) = writer.finish_to_vec().unwrap();
    assert_eq!(stats.own_rows, 3);
    assert_eq!(stats.overlap_rows, 2);
    assert_eq!(stats.file_len, bytes.len() as u64);
    ChunkFile::from_bytes(&bytes).unwrap().read_all().unwrap();
}

#[test]
fn forced_encoding_must_fit_the_type() {
    let options = WriterOptions {
        encode: EncodeOptions {
            encoding: Some(Encoding::Alp),
            compression: CompressionChoice::Auto,
        },
    };
    let mut writer = ChunkWriter::new(schema(), 0, options).unwrap();
    assert!(is_invalid(writer.add_row_group(1, false, &good_rows(3))));
    // A forced dictionary over more than MAX_DICT_LEN distinct values.
    let options = WriterOptions {
        encode: EncodeOptions {
            encoding: Some(Encoding::Dictionary),
            compression: CompressionChoice::Auto,
        },
    };
    let one = TableSchema::new("t", vec![ColumnSchema::new("a", ColumnType::I32, false)]);
    let mut writer = ChunkWriter::new(one, 0, options).unwrap();
    let distinct = ColumnData::I32(PrimitiveColumn::new((0..=MAX_DICT_LEN as i32).collect()));
    assert!(is_invalid(writer.add_row_group(1, false, &[distinct])));
}

#[test]
fn too_many_rows() {
    let one = TableSchema::new("t", vec![ColumnSchema::new("a", ColumnType::Bool, false)]);
    let mut writer = ChunkWriter::new(one, 0, WriterOptions::default()).unwrap();
    let rows = MAX_ROWS_PER_ROW_GROUP as usize + 1;
    let column = ColumnData::Bool(BoolColumn {
        values: Bitmap::new_unset(rows),
        validity: None,
    });
    assert!(is_invalid(writer.add_row_group(1, false, &[column])));
}

#[test]
fn failing_sink_is_an_io_error() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = ChunkWriter::new(schema(), 0, WriterOptions::default()).unwrap();
    writer.add_row_group(0, false, &good_rows(5)).unwrap();
    assert!(matches!(
        writer.finish(&mut Broken),
        Err(FormatError::Io(_))
    ));
}

#[test]
fn empty_file_roundtrips() {
    let writer = ChunkWriter::new(schema(), 9, WriterOptions::default()).unwrap();
    let (bytes, _) = writer.finish_to_vec().unwrap();
    let file = ChunkFile::from_bytes(&bytes).unwrap();
    assert_eq!(file.footer().chunk_id(), 9);
    assert!(file.footer().row_groups().is_empty());
    assert_eq!(
        file.footer().column_range(0, RowGroupSet::All).unwrap().len,
        0
    );
}
