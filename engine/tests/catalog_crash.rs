//! kill -9 during a load, at every step of the publish protocol: the
//! database opens, shows either the previous or the new state (never a
//! half-loaded table), verifies clean, and has no leftovers.
//!
//! The parent test re-runs this test binary as a child process (filtered to
//! `crash_child`, which does nothing unless `SKYSCAN_CRASH_ROOT` is set). The
//! child starts a load and, at the chosen point, prints a marker and sleeps;
//! the parent reads the marker and sends SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catalog_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use catalog_support::*;
use skyscan_engine::catalog::inspect::verify_database;
use skyscan_engine::catalog::{CommitStep, Database, LoadOptions, TableDef, write_table_into_load};
use skyscan_engine::partition::assign_rows;

const ROOT_VAR: &str = "SKYSCAN_CRASH_ROOT";
const POINT_VAR: &str = "SKYSCAN_CRASH_POINT";
const MODE_VAR: &str = "SKYSCAN_CRASH_MODE";
const MARKER: &str = "SKYSCAN-CRASH-POINT-REACHED";

const OLD_ROWS: u64 = 1_500;
const NEW_ROWS: u64 = 2_500;

/// Points where the child stops, in protocol order, and whether the new
/// state is visible after a kill there.
const POINTS: [(&str, bool); 9] = [
    ("mid-chunks", false),
    ("before-commit", false),
    ("FilesSynced", false),
    ("DataMoved", false),
    ("CatalogHalfWritten", false),
    ("CatalogWritten", false),
    ("PointerWritten", false),
    ("PointerRenamed", true),
    ("Committed", true),
];

fn stop_here() -> ! {
    println!("{MARKER}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The child: replaces `lsst.Object` (mode `replace`) or adds
/// `lsst.Object2` (mode `new`), stopping at `SKYSCAN_CRASH_POINT`.
#[test]
fn crash_child() {
    let Ok(root) = std::env::var(ROOT_VAR) else {
        return;
    };
    let point = std::env::var(POINT_VAR).unwrap();
    let mode = std::env::var(MODE_VAR).unwrap();
    let db = Database::open(Path::new(&root)).unwrap();
    let mut table = objects(NEW_ROWS, 2);
    let mut def = object_def(&table);
    let mut load = if mode == "replace" {
        db.begin_replace("lsst", def).unwrap()
    } else {
        def.name = "Object2".to_string();
        table.schema.name = "Object2".to_string();
        db.begin_load("lsst", def).unwrap()
    };
    if point == "mid-chunks" {
        // Some chunk files whole, one half written (as a loader killed mid-write leaves it).
        let chunker = load.chunker().unwrap().clone();
        let assignment = assign_rows(
            &chunker,
            table.f64_column("ra").unwrap(),
            table.f64_column("decl").unwrap(),
            true,
        )
        .unwrap();
        for (index, (&chunk_id, _)) in assignment.iter().enumerate() {
            let path = load.chunk_path(chunk_id).unwrap();
            let bytes = vec![0x5a; 10_000];
            let len = if index == 0 {
                bytes.len() / 2
            } else {
                bytes.len()
            };
            std::fs::write(&path, &bytes[..len]).unwrap();
            std::fs::write(path.with_extension("skyscan-tmp"), &bytes[..len]).unwrap();
        }
        stop_here();
    }
    write_table_into_load(&mut load, &table, &LoadOptions::default()).unwrap();
    if point == "before-commit" {
        stop_here();
    }
    load.commit_with_hook(|step: CommitStep| {
        if format!("{step:?}") == point {
            stop_here();
        }
    })
    .unwrap();
    panic!("crash point {point} was never reached");
}

/// Runs the child up to `point` and kills it with SIGKILL.
fn run_child_and_kill(root: &Path, point: &str, mode: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROOT_VAR, root)
        .env(POINT_VAR, point)
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reached = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains(MARKER) {
            reached = true;
            break;
        }
    }
    if !reached {
        let output = child.wait_with_output().unwrap();
        panic!(
            "child ({mode}, {point}) exited with {} before its crash point:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed");
}

/// Files under the spindles and root that must not survive cleanup.
fn leftovers(db: &Database) -> Vec<String> {
    let catalog = db.catalog();
    let referenced: Vec<String> = catalog
        .tables()
        .map(|(_, _, t)| t.data_dir.clone())
        .collect();
    let mut bad = Vec::new();
    for spindle in db.spindle_paths() {
        for name in tree(spindle) {
            let staging_content = name.starts_with(".staging/") && name != ".staging/";
            if staging_content || name.ends_with(".tmp") || name.ends_with(".skyscan-tmp") {
                bad.push(format!("{}/{name}", spindle.display()));
            }
        }
    }
    for name in tree(db.root()) {
        if let Some(generation) = name
            .strip_prefix("catalog.")
            .and_then(|n| n.strip_suffix(".json"))
            && generation.parse::<u64>().unwrap() > catalog.generation
        {
            bad.push(format!("catalog generation never made current: {name}"));
        }
    }
    // Data directories of the killed load are unreferenced by every kept
    // generation (its generation never became current), so must be gone.
    let killed_load = format!("g{}", catalog.generation + 1);
    for spindle in db.spindle_paths() {
        for name in tree(&spindle.join("data")) {
            if name.contains(&format!(".{killed_load}"))
                && !referenced.iter().any(|r| r.ends_with(&killed_load))
            {
                bad.push(format!("{}/data/{name}", spindle.display()));
            }
        }
    }
    bad
}

fn check_after_crash(
    dir: &Path,
    root: &Path,
    point: &str,
    mode: &str,
    new_visible: bool,
    old_generation: u64,
) {
    let context = format!("{mode} killed at {point}");
    let db = Database::open(root).unwrap_or_else(|e| panic!("{context}: open failed: {e}"));
    let catalog = db.catalog();
    let object = catalog.table("lsst", "Object").unwrap();
    let object2 = catalog.table("lsst", "Object2");
    match (mode, new_visible) {
        ("replace", false) => {
            assert_eq!(object.rows, OLD_ROWS, "{context}");
            assert_eq!(catalog.generation, old_generation, "{context}");
        }
        ("replace", true) => assert_eq!(object.rows, NEW_ROWS, "{context}"),
        (_, false) => {
            assert!(object2.is_none(), "{context}: no half-loaded table");
            assert_eq!(object.rows, OLD_ROWS, "{context}");
        }
        (_, true) => assert_eq!(object2.unwrap().rows, NEW_ROWS, "{context}"),
    }
    let report = verify_database(&db, &catalog, &mut |_| {}).unwrap();
    assert!(report.is_clean(), "{context}: {:?}", report.problems);
    let bad = leftovers(&db);
    assert!(bad.is_empty(), "{context}: leftovers {bad:?}");
    // The killed writer's lock died with it: a new load works.
    let filter = filters();
    let mut def = TableDef::replicated(&filter.schema, 0);
    def.name = "AfterCrash".to_string();
    skyscan_engine::catalog::load_table_in_memory(
        &db,
        "lsst",
        def,
        &filter,
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{context}: load after crash: {e}"));
    let _ = dir;
}

fn crash_scenario(mode: &str) {
    for (point, new_visible) in POINTS {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = database_with_objects(dir.path(), OLD_ROWS, 1);
        let old_generation = db.catalog().generation;
        let root: PathBuf = db.root().to_path_buf();
        drop(db);
        run_child_and_kill(&root, point, mode);
        // The kill left traces of the load (so the checks below test cleanup).
        let load_id = format!("g{}", old_generation + 1);
        let traces: Vec<String> = tree(dir.path())
            .into_iter()
            .filter(|name| {
                name.contains(&load_id)
                    || name.ends_with(".tmp")
                    || name.contains(&format!("catalog.{}.json", old_generation + 1))
            })
            .collect();
        assert!(
            !traces.is_empty(),
            "{mode} killed at {point}: no trace of the load"
        );
        check_after_crash(dir.path(), &root, point, mode, new_visible, old_generation);
    }
}

#[test]
fn kill_9_during_a_replace_leaves_the_old_or_the_new_version() {
    crash_scenario("replace");
}

#[test]
fn kill_9_during_a_new_table_load_leaves_no_half_loaded_table() {
    crash_scenario("new");
}
