//! Ground truth from the reference implementations: Qserv's partitioner
//! output and lsst-sphgeom's `Chunker(85, 12)`.

// Test code: helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use skyscan_sky::{Chunker, Location};

fn qserv_chunker() -> Chunker {
    Chunker::new(85, 12, 0.01667).unwrap()
}

/// `partitioner/qserv_partitioner_vectors.tsv`: rows written by Qserv's
/// partitioner (85 stripes, 12 sub-stripes, overlap 0.01667) into
/// `chunk_NNNN.txt` (own locations) and `chunk_NNNN_overlap.txt` (overlap
/// copies).
///
/// What the file covers: the own rows of 1000 objects of chunk 7480, and
/// the overlap rows of those same objects that Qserv wrote into
/// `chunk_7480_overlap.txt` and `chunk_7310_overlap.txt` (every objectId of
/// an overlap row is one of the 1000). Overlap copies of these objects that
/// went to other chunks (the left neighbour across RA 0, chunk 7648, or the
/// stripe above, 7650…) are not in the file.
///
/// Checked, with zero mismatches allowed:
/// 1. every own row: `locate(ra, dec)` is exactly its (chunkId, subChunkId);
/// 2. every overlap row: its (chunkId, subChunkId) is in
///    `overlap_locations(ra, dec)`;
/// 3. conversely, for each of the 1000 objects, every overlap location we
///    produce whose chunk is 7480 or 7310 (the two overlap files present)
///    is an overlap row of that object in the file.
#[test]
fn qserv_partitioner_vectors() {
    let text = common::read_testdata("partitioner/qserv_partitioner_vectors.tsv");
    let chunker = qserv_chunker();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header,
        "file\tobjectId\tra_PS\tdecl_PS\tchunkId\tsubChunkId"
    );

    // objectId -> (ra, dec); objectId -> overlap locations in the file.
    let mut own: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut file_overlaps: BTreeMap<u64, BTreeSet<Location>> = BTreeMap::new();
    let mut overlap_files: BTreeSet<i32> = BTreeSet::new();
    let (mut own_rows, mut overlap_rows, mut mismatches) = (0, 0, Vec::new());
    let mut buf = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "bad line {line:?}");
        let object_id: u64 = f[1].parse().unwrap();
        let ra: f64 = f[2].parse().unwrap();
        let dec: f64 = f[3].parse().unwrap();
        let expected = Location {
            chunk_id: f[4].parse().unwrap(),
            sub_chunk_id: f[5].parse().unwrap(),
        };
        let file_chunk: i32 = f[0]
            .trim_start_matches("chunk_")
            .trim_end_matches(".txt")
            .trim_end_matches("_overlap")
            .parse()
            .unwrap();
        assert_eq!(
            file_chunk, expected.chunk_id,
            "row in the wrong file: {line:?}"
        );
        if f[0].ends_with("_overlap.txt") {
            overlap_rows += 1;
            overlap_files.insert(file_chunk);
            chunker.overlap_locations(ra, dec, &mut buf).unwrap();
            if !buf.contains(&expected) {
                mismatches.push(format!(
                    "overlap row not produced: {line} (we give {buf:?})"
                ));
            }
            file_overlaps.entry(object_id).or_default().insert(expected);
        } else {
            own_rows += 1;
            let got = chunker.locate(ra, dec).unwrap();
            if got != expected {
                mismatches.push(format!("own row: {line}: we give {got:?}"));
            }
            assert!(own.insert(object_id, (ra, dec)).is_none());
        }
    }
    assert_eq!(own_rows, 1000);
    assert_eq!(overlap_rows, 157);
    assert_eq!(overlap_files, BTreeSet::from([7310, 7480]));
    // Every overlap row belongs to one of the objects with an own row.
    for object_id in file_overlaps.keys() {
        assert!(
            own.contains_key(object_id),
            "overlap row of unknown object {object_id}"
        );
    }
    // Converse, restricted to the chunks whose overlap files are present.
    let mut produced_in_files = 0;
    for (object_id, &(ra, dec)) in &own {
        chunker.overlap_locations(ra, dec, &mut buf).unwrap();
        for loc in &buf {
            if overlap_files.contains(&loc.chunk_id) {
                produced_in_files += 1;
                let in_file = file_overlaps
                    .get(object_id)
                    .is_some_and(|set| set.contains(loc));
                if !in_file {
                    mismatches.push(format!(
                        "object {object_id} ({ra}, {dec}): we produce overlap {loc:?}, \
                         Qserv did not"
                    ));
                }
            }
        }
    }
    assert_eq!(produced_in_files, overlap_rows);
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    let _ = writeln!(
        std::io::stderr(),
        "qserv vectors: {own_rows} own rows and {overlap_rows} overlap rows matched, \
         {produced_in_files} produced overlap locations in chunks {overlap_files:?} all present"
    );
}

/// `partitioner/sphgeom_chunker_85_12_seed42.csv`: 10,000 random points
/// located by lsst-sphgeom's `Chunker(85, 12)`; all must match exactly.
#[test]
fn sphgeom_random_points() {
    let text = common::read_testdata("partitioner/sphgeom_chunker_85_12_seed42.csv");
    let chunker = qserv_chunker();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "ra,dec,chunkId,subChunkId");
    let mut ras = Vec::new();
    let mut decs = Vec::new();
    let mut expected = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        ras.push(f[0].parse::<f64>().unwrap());
        decs.push(f[1].parse::<f64>().unwrap());
        expected.push(Location {
            chunk_id: f[2].parse().unwrap(),
            sub_chunk_id: f[3].parse().unwrap(),
        });
    }
    assert_eq!(expected.len(), 10_000);
    let mut got = Vec::new();
    chunker.locate_batch(&ras, &decs, &mut got).unwrap();
    let mismatches: Vec<String> = (0..expected.len())
        .filter(|&i| got[i] != expected[i])
        .map(|i| {
            format!(
                "({}, {}): sphgeom {:?}, we {:?}",
                ras[i], decs[i], expected[i], got[i]
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of 10000 mismatch:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    let _ = writeln!(std::io::stderr(), "sphgeom points: 10000 of 10000 matched");
}
