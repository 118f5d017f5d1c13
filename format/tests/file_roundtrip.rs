//! Whole-file round trips and the reader API.

// Helpers outside #[test] functions may unwrap too (clippy.toml covers only the latter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use skyscan_format::{
    BLOCK_ALIGN, ChunkFile, CompressionChoice, EXTENT_ALIGN, EncodeOptions, Encoding, RowGroupSet,
    WriterOptions,
};

#[test]
fn sample_file_roundtrips_with_automatic_choice() {
    let bytes = all_types_file(1, WriterOptions::default());
    let file = ChunkFile::from_bytes(&bytes).unwrap();
    let footer = file.footer();
    assert_eq!(footer.chunk_id(), 7);
    assert_eq!(footer.schema(), &all_types_schema());
    let expected = all_types_expected(1);
    assert_eq!(footer.row_groups().len(), expected.len());
    let decoded = file.read_all().unwrap();
    for (index, ((sub_chunk_id, overlap, columns), row_group)) in
        expected.iter().zip(footer.row_groups()).enumerate()
    {
        assert_eq!(row_group.sub_chunk_id, *sub_chunk_id);
        assert_eq!(row_group.overlap, *overlap);
        for (column, data) in columns.iter().enumerate() {
            assert_column_eq(
                &decoded[index][column],
                data,
                &format!("rg {index} col {column}"),
            );
        }
    }
    assert_eq!(footer.row_group_indices(RowGroupSet::Own), 0..2);
    assert_eq!(footer.row_group_indices(RowGroupSet::Overlap), 2..4);
    assert_eq!(footer.row_count(RowGroupSet::Own), 770);
    assert_eq!(footer.row_count(RowGroupSet::Overlap), 20);
}

#[test]
fn layout_is_column_major_and_aligned() {
    let bytes = all_types_file(2, WriterOptions::default());
    let file = ChunkFile::from_bytes(&bytes).unwrap();
    let footer = file.footer();
    let columns = footer.schema().columns.len();
    let mut previous_end = 0;
    for column in 0..columns {
        let extent = footer.column_extent(column).unwrap();
        assert_eq!(extent.offset % EXTENT_ALIGN, 0);
        assert!(extent.offset >= previous_end);
        previous_end = extent.offset + extent.len;
        let own = footer.column_range(column, RowGroupSet::Own).unwrap();
        let all = footer.column_range(column, RowGroupSet::All).unwrap();
        let overlap = footer.column_range(column, RowGroupSet::Overlap).unwrap();
        assert_eq!(all.offset, extent.offset);
        assert_eq!(all.end(), extent.offset + extent.len);
        assert!(
            own.end() <= overlap.offset,
            "overlap blocks come after own blocks"
        );
        for row_group in 0..footer.row_groups().len() {
            let block = footer.block(row_group, column).unwrap();
            assert_eq!(block.offset() % BLOCK_ALIGN, 0);
            assert!(block.range().end() <= extent.offset + extent.len);
        }
    }
}

#[test]
fn every_forced_encoding_and_compression_roundtrips_where_defined() {
    // Force one encoding for a table of the types that support it.
    for encoding in Encoding::ALL {
        for compression in [
            CompressionChoice::Never,
            CompressionChoice::Always,
            CompressionChoice::Auto,
        ] {
            let schema = all_types_schema();
            let keep: Vec<usize> = schema
                .columns
                .iter()
                .enumerate()
                .filter(|(_, column)| column.column_type.supports(encoding))
                .map(|(index, _)| index)
                .collect();
            let schema = skyscan_format::TableSchema::new(
                "t",
                keep.iter()
                    .map(|&index| schema.columns[index].clone())
                    .collect(),
            );
            let options = WriterOptions {
                encode: EncodeOptions {
                    encoding: Some(encoding),
                    compression,
                },
            };
            let mut writer = skyscan_format::ChunkWriter::new(schema, 1, options).unwrap();
            let mut expected = Vec::new();
            for (sub_chunk_id, overlap, rows) in SAMPLE_ROW_GROUPS {
                let all = all_types_rows(3, sub_chunk_id, overlap, rows);
                let columns: Vec<_> = keep.iter().map(|&index| all[index].clone()).collect();
                writer
                    .add_row_group(sub_chunk_id, overlap, &columns)
                    .unwrap();
                expected.push((overlap, sub_chunk_id, columns));
            }
            expected.sort_by_key(|(overlap, sub_chunk_id, _)| (*overlap, *sub_chunk_id));
            let (bytes, _) = writer.finish_to_vec().unwrap();
            let file = ChunkFile::from_bytes(&bytes).unwrap();
            let decoded = file.read_all().unwrap();
            for (row_group, (_, _, columns)) in expected.iter().enumerate() {
                for (column, data) in columns.iter().enumerate() {
                    let meta = file.footer().block(row_group, column).unwrap().meta;
                    assert_eq!(meta.encoding, encoding);
                    if compression == CompressionChoice::Always {
                        assert_eq!(meta.compression, skyscan_format::Compression::Lz4);
                    }
                    assert_column_eq(
                        &decoded[row_group][column],
                        data,
                        &format!("{encoding:?} {compression:?} rg {row_group} col {column}"),
                    );
                }
            }
        }
    }
}
