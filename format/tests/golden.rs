//! Compatibility: the committed v1 golden files decode to the values their
//! generator (tests/common/mod.rs, `golden_file`) defines, recomputed here.
//! Regenerate (only for a new format version, never to "fix" this test):
//! `SKYSCAN_REGEN_GOLDEN=1 cargo test -p skyscan-format --test golden`.

// Helpers outside #[test] functions may unwrap too (clippy.toml covers only the latter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::*;
use skyscan_format::{ChunkFile, Compression, Encoding};

fn golden_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests")
    .join("golden")
}

#[test]
fn golden_files_decode_to_their_generated_values() {
    let regenerate = std::env::var_os("SKYSCAN_REGEN_GOLDEN").is_some();
    let mut seen_encodings = std::collections::HashSet::new();
    for (name, encoding, lz4) in GOLDEN_FILES {
        let path = golden_dir().join(name);
        if regenerate {
            std::fs::write(&path, golden_file(encoding, lz4)).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|err| {
            panic!(
                "{}: {err} (see the module doc to regenerate)",
                path.display()
            )
        });
        let file = ChunkFile::from_bytes(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
        let footer = file.footer();
        assert_eq!(footer.chunk_id(), 7);
        assert_eq!(footer.schema().name, "Object");
        let columns = golden_columns(encoding);
        let full = all_types_schema();
        let names: Vec<&str> = footer
            .schema()
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let expected_names: Vec<&str> = columns
            .iter()
            .map(|&i| full.columns[i].name.as_str())
            .collect();
        assert_eq!(names, expected_names, "{name}");
        let expected = all_types_expected(GOLDEN_SEED);
        assert_eq!(footer.row_groups().len(), expected.len());
        let decoded = file
            .read_all()
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        for (row_group, (sub_chunk_id, overlap, data)) in expected.iter().enumerate() {
            assert_eq!(footer.row_groups()[row_group].sub_chunk_id, *sub_chunk_id);
            assert_eq!(footer.row_groups()[row_group].overlap, *overlap);
            for (position, &column) in columns.iter().enumerate() {
                assert_column_eq(
                    &decoded[row_group][position],
                    &data[column],
                    &format!(
                        "{name} row group {row_group} column {}",
                        full.columns[column].name
                    ),
                );
                let meta = footer.block(row_group, position).unwrap().meta;
                if let Some(encoding) = encoding {
                    assert_eq!(meta.encoding, encoding, "{name}");
                }
                if lz4 {
                    assert_eq!(meta.compression, Compression::Lz4, "{name}");
                }
                seen_encodings.insert(meta.encoding);
            }
        }
    }
    for encoding in Encoding::ALL {
        assert!(
            seen_encodings.contains(&encoding),
            "no golden block uses {encoding:?}"
        );
    }
}
