//! The director index: round trips against a BTreeMap model, the spill and
//! multi-pass merge paths, duplicates, every single-byte corruption and every
//! truncation of a small file (an error or the right answer, never a wrong
//! answer or a panic).

// Test code: unwrap/expect/panic are how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use skyscan_engine::director::layout::MIN_BLOCK_ENTRIES;
use skyscan_engine::director::{
    BuildOptions, DirectorEntry, DirectorError, DirectorIndex, DirectorIndexBuilder,
};

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

type Model = BTreeMap<i64, (i32, i32)>;

/// Random keys of mixed shapes: full-range, small negative, dense runs, extremes.
fn random_model(seed: u64, count: usize) -> Model {
    let mut rng = SplitMix(seed);
    let mut model = Model::new();
    for key in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
        model.insert(key, (rng.next() as i32, rng.next() as i32));
    }
    while model.len() < count {
        let key = match rng.next() % 4 {
            0 => rng.next() as i64,
            1 => -((rng.next() % 1_000_000) as i64),
            2 => 90_030_275_138_483 + (rng.next() % 100_000) as i64,
            _ => (rng.next() % 10_000) as i64 * 7,
        };
        let chunk = match rng.next() % 3 {
            0 => (rng.next() % 14_450) as i32,
            1 => rng.next() as i32,
            _ => 6_630,
        };
        model.insert(key, (chunk, (rng.next() % 200) as i32 - 10));
    }
    model
}

fn build(
    model: &Model,
    path: &Path,
    options: BuildOptions,
    seed: u64,
) -> skyscan_engine::director::BuildStats {
    let mut builder = DirectorIndexBuilder::new(options).unwrap();
    // Insert in a shuffled order.
    let mut entries: Vec<(i64, (i32, i32))> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let mut rng = SplitMix(seed);
    for index in (1..entries.len()).rev() {
        entries.swap(index, (rng.next() % (index as u64 + 1)) as usize);
    }
    for (key, (chunk, sub)) in entries {
        builder.add(key, chunk, sub).unwrap();
    }
    assert_eq!(builder.len(), model.len() as u64);
    builder.finish(path).unwrap()
}

fn probes(model: &Model) -> Vec<i64> {
    let mut keys: Vec<i64> = model
        .keys()
        .flat_map(|&k| [k.wrapping_sub(1), k, k.wrapping_add(1)])
        .collect();
    keys.extend([i64::MIN, i64::MAX, 0, 12345]);
    keys.sort_unstable();
    keys
}

fn check_against_model(index: &DirectorIndex, model: &Model) {
    assert_eq!(index.len(), model.len() as u64);
    for &key in &probes(model) {
        assert_eq!(
            index.lookup(key).unwrap(),
            model.get(&key).copied(),
            "key {key}"
        );
    }
    let sorted = probes(model);
    let answers = index.lookup_sorted_batch(&sorted).unwrap();
    for (key, answer) in sorted.iter().zip(&answers) {
        assert_eq!(*answer, model.get(key).copied(), "batch key {key}");
    }
    // Unsorted input is still answered correctly.
    let mut shuffled = sorted.clone();
    shuffled.reverse();
    shuffled.rotate_left(sorted.len() / 3);
    let answers = index.lookup_sorted_batch(&shuffled).unwrap();
    for (key, answer) in shuffled.iter().zip(&answers) {
        assert_eq!(*answer, model.get(key).copied(), "unsorted batch key {key}");
    }
    let all: Vec<DirectorEntry> = index.iter().collect::<Result<_, _>>().unwrap();
    let expected: Vec<DirectorEntry> = model
        .iter()
        .map(|(&object_id, &(chunk_id, sub_chunk_id))| DirectorEntry {
            object_id,
            chunk_id,
            sub_chunk_id,
        })
        .collect();
    assert_eq!(all, expected);
    let mut rng = SplitMix(99);
    let keys: Vec<i64> = model.keys().copied().collect();
    for _ in 0..200 {
        let a = keys[(rng.next() % keys.len() as u64) as usize]
            .wrapping_add((rng.next() % 3) as i64 - 1);
        let b = keys[(rng.next() % keys.len() as u64) as usize]
            .wrapping_add((rng.next() % 3) as i64 - 1);
        let (lo, hi) = (a.min(b), a.max(b));
        let got: Vec<i64> = index.range(lo..=hi).map(|e| e.unwrap().object_id).collect();
        let want: Vec<i64> = model.range(lo..=hi).map(|(k, _)| *k).collect();
        assert_eq!(got, want, "range {lo}..={hi}");
        let got: Vec<i64> = index.range(lo..hi).map(|e| e.unwrap().object_id).collect();
        let want: Vec<i64> = model.range(lo..hi).map(|(k, _)| *k).collect();
        assert_eq!(got, want, "range {lo}..{hi}");
    }
    assert_eq!(index.range(5..5).count(), 0);
    assert_eq!(
        index.range(i64::MAX..).count(),
        usize::from(model.contains_key(&i64::MAX))
    );
    index.verify_all().unwrap();
}

#[test]
fn round_trip_random_keys_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, count, block_entries) in [
        (1, 7, 16),
        (2, 1_000, 16),
        (3, 20_000, 512),
        (4, 5_000, 65_536),
        (5, 4_097, 1024),
    ] {
        let model = random_model(seed, count);
        let path = dir.path().join(format!("director-{seed}.idx"));
        let options = BuildOptions {
            block_entries,
            ..BuildOptions::default()
        };
        let stats = build(&model, &path, options, seed);
        assert_eq!(stats.entries, model.len() as u64);
        assert_eq!(
            stats.blocks,
            (model.len() as u64).div_ceil(u64::from(block_entries))
        );
        assert_eq!(stats.spilled_runs, 0);
        let index = DirectorIndex::open(&path).unwrap();
        assert_eq!(stats.file_bytes, index.size_bytes());
        assert_eq!(index.key_range(), Some((i64::MIN, i64::MAX)));
        check_against_model(&index, &model);
    }
    // Only the index files remain: no temporary files.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("director-") && n.ends_with(".idx")),
        "{names:?}"
    );
}

#[test]
fn spill_and_multi_pass_merge_give_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let model = random_model(11, 10_000);
    let in_memory = dir.path().join("memory.idx");
    build(
        &model,
        &in_memory,
        BuildOptions {
            block_entries: 64,
            ..BuildOptions::default()
        },
        11,
    );
    // 64 entries per run: ~156 runs, more than one merge can take.
    let spilled = dir.path().join("spilled.idx");
    let options = BuildOptions {
        memory_budget_bytes: 64 * 16,
        spill_dir: Some(spill.clone()),
        block_entries: 64,
    };
    let stats = build(&model, &spilled, options, 12);
    assert!(stats.spilled_runs > 100, "{stats:?}");
    assert!(stats.merge_passes > 0, "{stats:?}");
    assert_eq!(
        std::fs::read(&in_memory).unwrap(),
        std::fs::read(&spilled).unwrap()
    );
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "runs are removed"
    );
    check_against_model(&DirectorIndex::open(&spilled).unwrap(), &model);
}

#[test]
fn duplicate_keys_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    for budget in [1 << 20, 64 * 16] {
        let mut builder = DirectorIndexBuilder::new(BuildOptions {
            memory_budget_bytes: budget,
            spill_dir: Some(spill.clone()),
            block_entries: 16,
        })
        .unwrap();
        for key in 0..1_000i64 {
            builder.add(key * 3, 1, 2).unwrap();
        }
        builder.add(1_500, 7, 8).unwrap(); // 1500 = 500 * 3: a duplicate
        let path = dir.path().join("dup.idx");
        match builder.finish(&path) {
            Err(DirectorError::DuplicateKey {
                object_id,
                first,
                second,
            }) => {
                assert_eq!(object_id, 1_500);
                let mut placements = [first, second];
                placements.sort();
                assert_eq!(placements, [(1, 2), (7, 8)]);
            }
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the spill dir remains"
        );
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    }
    let message = DirectorError::DuplicateKey {
        object_id: 42,
        first: (1, 2),
        second: (3, 4),
    }
    .to_string();
    assert!(message.contains("42"), "{message}");
}

#[test]
fn empty_index_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.idx");
    let stats = DirectorIndexBuilder::new(BuildOptions::default())
        .unwrap()
        .finish(&path)
        .unwrap();
    assert_eq!((stats.entries, stats.blocks, stats.file_bytes), (0, 0, 112));
    let index = DirectorIndex::open(&path).unwrap();
    assert!(index.is_empty());
    assert_eq!(index.lookup(0).unwrap(), None);
    assert_eq!(
        index.lookup_sorted_batch(&[1, 2]).unwrap(),
        vec![None, None]
    );
    assert_eq!(index.iter().count(), 0);
    assert_eq!(index.key_range(), None);
    for options in [
        BuildOptions {
            memory_budget_bytes: 10,
            ..BuildOptions::default()
        },
        BuildOptions {
            block_entries: 100,
            ..BuildOptions::default()
        },
        BuildOptions {
            block_entries: MIN_BLOCK_ENTRIES / 2,
            ..BuildOptions::default()
        },
    ] {
        assert!(matches!(
            DirectorIndexBuilder::new(options),
            Err(DirectorError::InvalidArgument(_))
        ));
    }
    let mut builder = DirectorIndexBuilder::new(BuildOptions::default()).unwrap();
    assert!(builder.add_batch(&[1, 2], &[1], &[1, 2]).is_err());
    builder.add_batch(&[1, 2], &[1, 1], &[1, 2]).unwrap();
    let missing_dir = dir.path().join("no/such/dir/x.idx");
    assert!(matches!(
        builder.finish(&missing_dir),
        Err(DirectorError::Io { .. })
    ));
    assert!(matches!(
        DirectorIndex::open(&dir.path().join("absent.idx")),
        Err(DirectorError::Io { .. })
    ));
}

#[test]
fn rebuilding_replaces_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object.idx");
    let first = random_model(21, 300);
    build(
        &first,
        &path,
        BuildOptions {
            block_entries: 16,
            ..BuildOptions::default()
        },
        1,
    );
    let open_before = DirectorIndex::open(&path).unwrap();
    let second = random_model(22, 500);
    build(
        &second,
        &path,
        BuildOptions {
            block_entries: 16,
            ..BuildOptions::default()
        },
        2,
    );
    // The map taken before the rename still sees the old file; a new open the new one.
    check_against_model(&open_before, &first);
    check_against_model(&DirectorIndex::open(&path).unwrap(), &second);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

fn small_index_bytes() -> (Vec<u8>, Model) {
    let dir = tempfile::tempdir().unwrap();
    let model = random_model(31, 100);
    let path = dir.path().join("small.idx");
    build(
        &model,
        &path,
        BuildOptions {
            block_entries: 16,
            ..BuildOptions::default()
        },
        31,
    );
    (std::fs::read(&path).unwrap(), model)
}

/// Every answer of a possibly damaged index is an error or the model's answer.
fn never_wrong(index: &DirectorIndex, model: &Model, probes: &[i64]) {
    for &key in probes {
        if let Ok(answer) = index.lookup(key) {
            assert_eq!(answer, model.get(&key).copied(), "key {key}");
        }
    }
    if let Ok(answers) = index.lookup_sorted_batch(probes) {
        for (key, answer) in probes.iter().zip(answers) {
            assert_eq!(answer, model.get(key).copied());
        }
    }
    let mut expected = model.iter();
    for item in index.iter() {
        match item {
            Ok(entry) => {
                let (&key, &(chunk, sub)) = expected.next().expect("more entries than the model");
                assert_eq!(
                    entry,
                    DirectorEntry {
                        object_id: key,
                        chunk_id: chunk,
                        sub_chunk_id: sub
                    }
                );
            }
            Err(_) => break,
        }
    }
}

#[test]
fn every_byte_flip_is_detected_and_never_gives_a_wrong_answer() {
    let (bytes, model) = small_index_bytes();
    let probes = probes(&model);
    let mut detected_on_open = 0;
    for position in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[position] ^= flip;
            match DirectorIndex::from_bytes(damaged) {
                Err(error) => {
                    assert!(matches!(error, DirectorError::Corrupt { .. }), "{error}");
                    detected_on_open += 1;
                }
                Ok(index) => {
                    never_wrong(&index, &model, &probes);
                    // Every byte is under some checksum: a full verify finds it.
                    assert!(
                        index.verify_all().is_err(),
                        "flip {flip:#x} at {position} not detected"
                    );
                }
            }
        }
    }
    assert!(detected_on_open > 0);
    println!(
        "{} bytes, {} flips, {detected_on_open} detected on open",
        bytes.len(),
        bytes.len() * 3
    );
}

#[test]
fn every_truncation_and_extension_is_an_error() {
    let (bytes, _) = small_index_bytes();
    for len in 0..bytes.len() {
        assert!(
            DirectorIndex::from_bytes(bytes[..len].to_vec()).is_err(),
            "truncated to {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0u8; 24]);
    assert!(DirectorIndex::from_bytes(longer).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.idx");
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        DirectorIndex::open(&path),
        Err(DirectorError::Corrupt { .. })
    ));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        DirectorIndex::open(&path),
        Err(DirectorError::Corrupt { .. })
    ));
}

#[test]
fn random_garbage_never_panics() {
    let (bytes, model) = small_index_bytes();
    let probes = probes(&model);
    let mut rng = SplitMix(77);
    for _ in 0..5_000 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + rng.next() % 8 {
            let position = (rng.next() % damaged.len() as u64) as usize;
            damaged[position] = rng.next() as u8;
        }
        if let Ok(index) = DirectorIndex::from_bytes(damaged) {
            never_wrong(&index, &model, &probes);
        }
    }
}

#[test]
fn lookups_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let model = random_model(41, 50_000);
    let path = dir.path().join("shared.idx");
    build(&model, &path, BuildOptions::default(), 41);
    let index = DirectorIndex::open(&path).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let index = &index;
            let model = &model;
            scope.spawn(move || {
                for (position, (&key, &value)) in model.iter().enumerate() {
                    if position % 4 == thread {
                        assert_eq!(index.lookup(key).unwrap(), Some(value));
                    }
                }
            });
        }
    });
}
