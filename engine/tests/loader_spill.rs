//! The streaming loader under a small memory budget: it spills sorted runs,
//! and the chunk files and director index it writes are byte-identical to
//! a load that fits in memory, to a load on one thread, and to the
//! reference in-memory assignment (`partition::assign_rows` +
//! `partition::write_chunk_files`). Same for child tables placed through
//! the director index, positioned child tables and replicated tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catalog_support;

use std::collections::BTreeMap;
use std::path::Path;

use catalog_support::{filters, object_def, sources};
use skyscan_engine::catalog::CatalogError;
use skyscan_engine::catalog::{Database, LoadOptions, LoadSummary, TableDef, TableKind};
use skyscan_engine::loader::{BatchSource, InputBatch, load_source};
use skyscan_engine::partition::{assign_rows, write_chunk_files};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::Table;
use skyscan_format::TableSchema;

/// Objects dense enough that a chunk holds thousands of rows (row groups of
/// real size, overlap rows in every chunk).
fn dense_objects(rows: u64, seed: u64) -> Table {
    generate_objects(&ObjectSpec::with_density(rows, 20_000.0, seed), 2)
        .into_table()
        .unwrap()
}

/// An in-memory table in small batches (1,000 rows, 7 batches per unit), so
/// that a small budget spills several times and keeps a remainder in memory.
struct Chopped<'a>(&'a Table);

const BATCH_ROWS: usize = 1_000;
const UNIT_ROWS: usize = 7 * BATCH_ROWS;

impl BatchSource for Chopped<'_> {
    fn schema(&self) -> &TableSchema {
        &self.0.schema
    }
    fn unit_count(&self) -> usize {
        self.0.rows().div_ceil(UNIT_ROWS)
    }
    fn unit_bytes(&self, _unit: usize) -> u64 {
        1
    }
    fn read_unit(
        &self,
        unit: usize,
        bytes_read: &std::sync::atomic::AtomicU64,
        sink: &mut dyn FnMut(InputBatch<'_>) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let end = ((unit + 1) * UNIT_ROWS).min(self.0.rows());
        let mut start = unit * UNIT_ROWS;
        while start < end {
            let stop = (start + BATCH_ROWS).min(end);
            sink(InputBatch {
                columns: &self.0.columns,
                rows: start..stop,
                source_name: "chopped",
                first_record: start as u64 + 1,
            })?;
            start = stop;
        }
        bytes_read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Loads `table` as `def` with `options`; returns the summary and every
/// file of the table (chunk files by id, then the director index) as bytes.
fn load(
    dir: &Path,
    director: Option<&Table>,
    def: TableDef,
    table: &Table,
    options: &LoadOptions,
) -> (LoadSummary, BTreeMap<String, Vec<u8>>) {
    let db = Database::create(&dir.join("db"), &[]).unwrap();
    if let Some(director) = director {
        skyscan_engine::catalog::load_table_in_memory(
            &db,
            "lsst",
            object_def(director),
            director,
            &LoadOptions::default(),
        )
        .unwrap();
    }
    let name = def.name.clone();
    let mut load = db.begin_load("lsst", def).unwrap();
    let summary = load_source(&mut load, &Chopped(table), options, None).unwrap();
    load.commit().unwrap();
    let catalog = db.reload().unwrap();
    let entry = catalog.table("lsst", &name).unwrap();
    let mut files = BTreeMap::new();
    for chunk in &entry.chunks {
        let path = db.table_file(entry, chunk.spindle, &chunk.file).unwrap();
        files.insert(chunk.file.clone(), std::fs::read(path).unwrap());
    }
    if let Some(index) = &entry.director_index {
        let path = db.table_file(entry, index.spindle, &index.file).unwrap();
        files.insert(index.file.clone(), std::fs::read(path).unwrap());
    }
    (summary, files)
}

fn small_budget() -> LoadOptions {
    LoadOptions {
        memory_budget_bytes: skyscan_engine::loader::MIN_LOAD_MEMORY,
        index_memory_bytes: skyscan_engine::director::MIN_MEMORY_BUDGET * 4,
        ..LoadOptions::default()
    }
}

fn assert_same(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>, what: &str) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: file lists"
    );
    for (name, bytes) in a {
        assert!(bytes == &b[name], "{what}: {name} differs");
    }
}

#[test]
fn spilling_director_load_equals_in_memory_load() {
    let table = dense_objects(60_000, 7);
    let dir = tempfile::tempdir().unwrap();
    let (fits, fits_files) = load(
        &dir.path().join("a"),
        None,
        object_def(&table),
        &table,
        &LoadOptions::default(),
    );
    assert_eq!(
        fits.spilled_segments, 0,
        "the default budget holds 60 k rows"
    );
    assert_eq!(fits.rows, 60_000);
    assert!(fits.overlap_rows > 0 && fits.chunks > 1, "{fits:?}");
    assert_eq!(fits.director_index_entries, Some(60_000));

    let (spilled, spilled_files) = load(
        &dir.path().join("b"),
        None,
        object_def(&table),
        &table,
        &small_budget(),
    );
    assert!(
        spilled.spilled_segments > 20 && spilled.spilled_bytes > 4 << 20,
        "a 1 MiB budget spills: {spilled:?}"
    );
    assert_eq!(
        (spilled.rows, spilled.overlap_rows, spilled.chunks),
        (fits.rows, fits.overlap_rows, fits.chunks)
    );
    assert_same(&fits_files, &spilled_files, "1 MiB budget");

    let one_thread = LoadOptions {
        threads: 1,
        ..small_budget()
    };
    let (_, one_files) = load(
        &dir.path().join("c"),
        None,
        object_def(&table),
        &table,
        &one_thread,
    );
    assert_same(&fits_files, &one_files, "one thread");

    // The reference: assign_rows + write_chunk_files, the plain in-memory path.
    let chunker = skyscan_engine::catalog::Partitioning::qserv_default()
        .chunker()
        .unwrap();
    let assignment = assign_rows(
        &chunker,
        table.f64_column("ra").unwrap(),
        table.f64_column("decl").unwrap(),
        true,
    )
    .unwrap();
    let reference_dir = dir.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let work: Vec<_> = assignment
        .iter()
        .map(|(&chunk_id, rows)| {
            (
                chunk_id,
                rows,
                reference_dir.join(skyscan_engine::partition::chunk_file_name(chunk_id)),
            )
        })
        .collect();
    write_chunk_files(&table, &work, &Default::default(), 2).unwrap();
    for (chunk_id, _, path) in &work {
        let name = skyscan_engine::partition::chunk_file_name(*chunk_id);
        assert!(
            std::fs::read(path).unwrap() == fits_files[&name],
            "{name} differs from the reference assignment"
        );
    }
}

#[test]
fn spilling_child_and_replicated_loads_equal_in_memory_loads() {
    let objects = dense_objects(20_000, 11);
    let children = sources(&objects, 3);
    let dir = tempfile::tempdir().unwrap();
    let by_index = |table: &Table, with_position: bool| TableDef {
        name: "Source".to_string(),
        kind: TableKind::Child {
            director_table: "Object".to_string(),
            foreign_key_column: "objectId".to_string(),
            ra_column: with_position.then(|| "objRa".to_string()),
            decl_column: with_position.then(|| "objDecl".to_string()),
        },
        columns: TableDef::columns_of(&table.schema),
        partitioning: Some(skyscan_engine::catalog::Partitioning {
            overlap_deg: 0.0,
            ..skyscan_engine::catalog::Partitioning::qserv_default()
        }),
        scan_rating: 1,
    };
    for with_position in [false, true] {
        let tag = if with_position { "position" } else { "index" };
        let (fits, fits_files) = load(
            &dir.path().join(format!("{tag}-a")),
            Some(&objects),
            by_index(&children, with_position),
            &children,
            &LoadOptions::default(),
        );
        assert_eq!(fits.rows, 60_000);
        assert_eq!(fits.overlap_rows, 0);
        let (spilled, spilled_files) = load(
            &dir.path().join(format!("{tag}-b")),
            Some(&objects),
            by_index(&children, with_position),
            &children,
            &small_budget(),
        );
        assert!(spilled.spilled_segments > 0, "{tag}: {spilled:?}");
        assert_same(&fits_files, &spilled_files, tag);
    }
    // Child rows are in input order inside a sub-chunk when placed by index.
    let filter = filters();
    let (_, a) = load(
        &dir.path().join("filter-a"),
        None,
        TableDef::replicated(&filter.schema, 0),
        &filter,
        &LoadOptions::default(),
    );
    let (_, b) = load(
        &dir.path().join("filter-b"),
        None,
        TableDef::replicated(&filter.schema, 0),
        &filter,
        &LoadOptions {
            threads: 1,
            ..small_budget()
        },
    );
    assert_same(&a, &b, "replicated");
}
