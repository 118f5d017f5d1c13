//! `skyscan info` and `skyscan verify` on a real database: exit status and
//! messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_format::ChunkFile;

/// A scratch directory removed on drop (server has no tempfile dependency).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("skyscan-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_database(dir: &Path) -> Database {
    let db = Database::create(&dir.join("db"), &[dir.join("d0"), dir.join("d1")]).unwrap();
    let table = generate_objects(&ObjectSpec::with_density(3_000, 300.0, 11), 2)
        .into_table()
        .unwrap();
    let def = TableDef::director(
        &table.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        15,
    );
    load_table_in_memory(&db, "lsst", def, &table, &LoadOptions::default()).unwrap();
    db
}

fn skyscan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skyscan"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn info_lists_tables_and_spindles() {
    let scratch = Scratch::new("info");
    let db = make_database(&scratch.0);
    let output = skyscan(&["info", db.root().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("lsst.Object"), "{stdout}");
    assert!(stdout.contains("director"), "{stdout}");
    assert!(stdout.contains("3000"), "{stdout}");
    assert!(stdout.contains("spindle 1"), "{stdout}");
}

#[test]
fn verify_passes_a_good_database_and_names_file_and_block_of_a_bad_one() {
    let scratch = Scratch::new("verify");
    let db = make_database(&scratch.0);
    let root = db.root().to_str().unwrap().to_string();
    let output = skyscan(&["verify", &root]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verify: OK"), "{stdout}");

    // Flip one byte inside a block of the `decl` column of one chunk file.
    let catalog = db.catalog();
    let entry = catalog.table("lsst", "Object").unwrap();
    let chunk = entry.chunks.iter().max_by_key(|c| c.rows).unwrap();
    let path = db.table_file(entry, chunk.spindle, &chunk.file).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = {
        let file = ChunkFile::from_bytes(&bytes).unwrap();
        let row_group = file.footer().row_groups().len() - 1;
        let block = file.footer().block(row_group, 2).unwrap();
        (block.offset() + block.len() / 2) as usize
    };
    bytes[offset] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let output = skyscan(&["verify", &root]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("column 2 `decl`"),
        "names the block: {stderr}"
    );
    assert!(stderr.contains("1 problem(s)"), "{stderr}");

    // Not a database: a clear error, non-zero exit.
    let output = skyscan(&["verify", scratch.0.join("nothing").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.starts_with("skyscan: verify:"), "{stderr}");
}
