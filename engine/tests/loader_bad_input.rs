//! Bad input on the streaming loader's path (issue 3, "Bad input"): the load
//! stops with a message naming the file, the record and the column, and the
//! database stays as it was (the previous version of a replaced table, no
//! staging leftovers) — also when the error comes after runs were spilled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catalog_support;

use std::path::{Path, PathBuf};

use catalog_support::{object_def, tree};
use skyscan_engine::catalog::{Database, LoadOptions, TableDef, TableKind};
use skyscan_engine::ingest::schema::{SqlTable, parse_schema_sql};
use skyscan_engine::loader::{FileSource, load_source};
use skyscan_engine::synth::export::{schema_sql, write_tsv};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::Table;

fn objects(rows: u64) -> Table {
    generate_objects(&ObjectSpec::with_density(rows, 20_000.0, 5), 2)
        .into_table()
        .unwrap()
}

fn sql_of(table: &Table) -> SqlTable {
    parse_schema_sql(&schema_sql(&table.schema), "Object.sql")
        .unwrap()
        .remove(0)
}

/// Writes `table` as TSV, then lets `edit` change the text (by lines).
fn tsv(dir: &Path, name: &str, table: &Table, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let mut bytes = Vec::new();
    write_tsv(table, &mut bytes, &mut |_| {}).unwrap();
    let mut lines: Vec<String> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    edit(&mut lines);
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Replaces field `column` (0-based) of line `line` (0-based).
fn set_field(lines: &mut [String], line: usize, column: usize, value: &str) {
    let mut fields: Vec<&str> = lines[line].split('\t').collect();
    fields[column] = value;
    lines[line] = fields.join("\t");
}

/// Loads `paths` as `def` (replacing), expecting an error; returns its text.
fn failing_load(db: &Database, def: TableDef, sql: &SqlTable, paths: &[PathBuf]) -> String {
    let options = LoadOptions {
        memory_budget_bytes: skyscan_engine::loader::MIN_LOAD_MEMORY,
        replace: true,
        ..LoadOptions::default()
    };
    let source = FileSource::new(paths, sql, b',').unwrap();
    let mut load = db.begin_replace("lsst", def).unwrap();
    let error = load_source(&mut load, &source, &options, None).unwrap_err();
    drop(load);
    error.to_string()
}

#[test]
fn bad_rows_name_file_record_and_column_and_leave_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(&dir.path().join("db"), &[]).unwrap();
    let table = objects(30_000);
    let sql = sql_of(&table);
    let good = tsv(dir.path(), "good.tsv", &table, |_| {});
    // A first, good version of the table.
    let source = FileSource::new(std::slice::from_ref(&good), &sql, b',').unwrap();
    let mut load = db.begin_load("lsst", object_def(&table)).unwrap();
    let first = load_source(&mut load, &source, &LoadOptions::default(), None).unwrap();
    load.commit().unwrap();
    let before = tree(&dir.path().join("db"));
    let generation = db.reload().unwrap().generation;
    assert_eq!(first.rows, 30_000);

    let ra = table.schema.column_index("ra").unwrap();
    let decl = table.schema.column_index("decl").unwrap();
    let flux = table.schema.column_index("g_psfFlux").unwrap();
    type Edit = Box<dyn FnOnce(&mut Vec<String>)>;
    let cases: Vec<(&str, Edit, Vec<String>)> = vec![
        (
            "number.tsv",
            Box::new(move |lines| set_field(lines, 28_000, flux, "1.2.3")),
            vec![
                "number.tsv:28001: record 28001".into(),
                "column 11 `g_psfFlux`".into(),
                "`1.2.3`".into(),
            ],
        ),
        (
            "null_ra.tsv",
            Box::new(move |lines| set_field(lines, 29_500, ra, "\\N")),
            vec!["null_ra.tsv".into(), "record 29501".into(), "`ra`".into()],
        ),
        (
            "decl.tsv",
            Box::new(move |lines| set_field(lines, 25_000, decl, "91.5")),
            vec!["decl.tsv: record 25001".into(), "(".into()],
        ),
        (
            "fields.tsv",
            Box::new(|lines| lines[27_000].push_str("\textra")),
            vec!["fields.tsv:27001: record 27001".into()],
        ),
        (
            "duplicate.tsv",
            Box::new(|lines| {
                let copy = lines[10].clone();
                lines[29_990] = copy;
            }),
            vec!["duplicate director key".into()],
        ),
    ];
    for (name, edit, expected) in cases {
        let path = tsv(dir.path(), name, &table, edit);
        let message = failing_load(&db, object_def(&table), &sql, &[good.clone(), path]);
        for part in &expected {
            assert!(
                message.contains(part.as_str()),
                "{name}: `{message}` lacks `{part}`"
            );
        }
        assert_eq!(
            tree(&dir.path().join("db")),
            before,
            "{name}: database changed"
        );
        assert_eq!(db.reload().unwrap().generation, generation);
    }
    // A missing file is refused before anything is read.
    let missing = FileSource::new(&[dir.path().join("absent.tsv")], &sql, b',').unwrap_err();
    assert!(missing.to_string().contains("absent.tsv"), "{missing}");
    // The table still opens with its first version.
    let entry = db.reload().unwrap();
    let object = entry.table("lsst", "Object").unwrap();
    assert_eq!(object.chunks.iter().map(|c| c.rows).sum::<u64>(), 30_000);
}

#[test]
fn child_rows_without_a_director_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(&dir.path().join("db"), &[]).unwrap();
    let table = objects(2_000);
    skyscan_engine::catalog::load_table_in_memory(
        &db,
        "lsst",
        object_def(&table),
        &table,
        &LoadOptions::default(),
    )
    .unwrap();
    let sources = catalog_support::sources(&table, 2);
    let sql = parse_schema_sql(&schema_sql(&sources.schema), "Source.sql")
        .unwrap()
        .remove(0);
    let object_id = sources.schema.column_index("objectId").unwrap();
    let path = tsv(dir.path(), "Source.tsv", &sources, |lines| {
        set_field(lines, 3_001, object_id, "123456789")
    });
    let def = TableDef {
        name: "Source".to_string(),
        kind: TableKind::Child {
            director_table: "Object".to_string(),
            foreign_key_column: "objectId".to_string(),
            ra_column: None,
            decl_column: None,
        },
        columns: TableDef::columns_of(&sources.schema),
        partitioning: Some(skyscan_engine::catalog::Partitioning {
            overlap_deg: 0.0,
            ..skyscan_engine::catalog::Partitioning::qserv_default()
        }),
        scan_rating: 1,
    };
    let source = FileSource::new(&[path], &sql, b',').unwrap();
    let mut load = db.begin_load("lsst", def).unwrap();
    let message = load_source(&mut load, &source, &LoadOptions::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("Source.tsv") && message.contains("record 3002 key 123456789"),
        "{message}"
    );
}
