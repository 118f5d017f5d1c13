//! Compatibility: the committed v1 director index (`golden/director_v1.idx`)
//! reads back to the entries below, and building those entries reproduces it
//! byte for byte (pins the layout; SPEC.md part 2 shows its bytes).
//! Regenerate deliberately (a format change needs a new version) with
//! `SKYSCAN_REGEN_GOLDEN=1 cargo test -p skyscan-engine --test director_golden`.

// Test code: unwrap/expect/panic are how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use skyscan_engine::director::{BuildOptions, DirectorEntry, DirectorIndex, DirectorIndexBuilder};

fn golden_entries() -> Vec<DirectorEntry> {
    let mut entries: Vec<DirectorEntry> = (0..35i64)
        .map(|i| DirectorEntry {
            object_id: 90_030_275_138_483 + i * 17,
            chunk_id: 6_630 + (i / 10) as i32,
            sub_chunk_id: (i % 12) as i32,
        })
        .collect();
    entries.push(DirectorEntry {
        object_id: i64::MIN,
        chunk_id: 0,
        sub_chunk_id: 0,
    });
    entries.push(DirectorEntry {
        object_id: -1,
        chunk_id: -1,
        sub_chunk_id: -1,
    });
    entries.push(DirectorEntry {
        object_id: i64::MAX,
        chunk_id: i32::MAX,
        sub_chunk_id: 143,
    });
    entries.sort();
    entries
}

#[test]
fn golden_v1_index_reads_and_rebuilds_identically() {
    let golden = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/golden/director_v1.idx");
    let dir = tempfile::tempdir().unwrap();
    let built = dir.path().join("built.idx");
    let mut builder = DirectorIndexBuilder::new(BuildOptions {
        block_entries: 16,
        ..BuildOptions::default()
    })
    .unwrap();
    for entry in golden_entries().iter().rev() {
        builder
            .add(entry.object_id, entry.chunk_id, entry.sub_chunk_id)
            .unwrap();
    }
    builder.finish(&built).unwrap();
    if std::env::var_os("SKYSCAN_REGEN_GOLDEN").is_some() {
        std::fs::copy(&built, &golden).unwrap();
    }
    let index = DirectorIndex::open(&golden).unwrap();
    index.verify_all().unwrap();
    let entries: Vec<DirectorEntry> = index.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries, golden_entries());
    assert_eq!(
        index.lookup(90_030_275_138_483 + 17).unwrap(),
        Some((6_630, 1))
    );
    assert_eq!(index.lookup(90_030_275_138_483 + 18).unwrap(), None);
    assert_eq!(
        std::fs::read(&golden).unwrap(),
        std::fs::read(&built).unwrap(),
        "the writer's bytes changed"
    );
}
