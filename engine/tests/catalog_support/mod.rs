//! Helpers shared by the catalog tests: synthetic tables and database set-up.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use skyscan_engine::catalog::{
    Database, LoadOptions, LoadSummary, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::Table;
use skyscan_format::{ColumnData, ColumnSchema, ColumnType, PrimitiveColumn, TableSchema};

/// A synthetic Object table of `rows` rows over a few square degrees (several chunks).
pub fn objects(rows: u64, seed: u64) -> Table {
    generate_objects(&ObjectSpec::with_density(rows, 300.0, seed), 2)
        .into_table()
        .unwrap()
}

/// The director definition of the synthetic Object table.
pub fn object_def(table: &Table) -> TableDef {
    TableDef::director(
        &table.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        15,
    )
}

/// A child table: `per_object` sources per object of `objects`, with the
/// object's position copied into `objRa`/`objDecl`.
pub fn sources(objects: &Table, per_object: usize) -> Table {
    let ids = match objects.column("objectId").unwrap() {
        ColumnData::I64(c) => c.values.clone(),
        _ => unreachable!(),
    };
    let ra = objects.f64_column("ra").unwrap();
    let decl = objects.f64_column("decl").unwrap();
    let mut source_id = Vec::new();
    let mut object_id = Vec::new();
    let mut obj_ra = Vec::new();
    let mut obj_decl = Vec::new();
    let mut flux = Vec::new();
    for (index, &id) in ids.iter().enumerate() {
        for k in 0..per_object {
            source_id.push((index * per_object + k) as i64);
            object_id.push(id);
            obj_ra.push(ra[index]);
            obj_decl.push(decl[index]);
            flux.push(k as f32 * 0.5);
        }
    }
    let schema = TableSchema::new(
        "Source",
        vec![
            ColumnSchema::new("sourceId", ColumnType::I64, false),
            ColumnSchema::new("objectId", ColumnType::I64, false),
            ColumnSchema::new("objRa", ColumnType::F64, false),
            ColumnSchema::new("objDecl", ColumnType::F64, false),
            ColumnSchema::new("flux", ColumnType::F32, false),
        ],
    );
    Table::new(
        schema,
        vec![
            ColumnData::I64(PrimitiveColumn::new(source_id)),
            ColumnData::I64(PrimitiveColumn::new(object_id)),
            ColumnData::F64(PrimitiveColumn::new(obj_ra)),
            ColumnData::F64(PrimitiveColumn::new(obj_decl)),
            ColumnData::F32(PrimitiveColumn::new(flux)),
        ],
    )
    .unwrap()
}

/// A small replicated table.
pub fn filters() -> Table {
    let schema = TableSchema::new(
        "Filter",
        vec![
            ColumnSchema::new("filterId", ColumnType::I32, false),
            ColumnSchema::new("filterName", ColumnType::Utf8, false),
        ],
    );
    let names: Vec<Option<&[u8]>> = ["u", "g", "r", "i", "z", "y"]
        .iter()
        .map(|s| Some(s.as_bytes()))
        .collect();
    Table::new(
        schema,
        vec![
            ColumnData::I32(PrimitiveColumn::new((0..6).collect())),
            ColumnData::Utf8(skyscan_format::VarColumn::from_options(&names)),
        ],
    )
    .unwrap()
}

/// Paths of a test database: root plus two spindles outside it.
pub fn layout(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    (dir.join("db"), vec![dir.join("disk0"), dir.join("disk1")])
}

/// Creates a two-spindle database holding `lsst.Object` of `rows` rows.
pub fn database_with_objects(dir: &Path, rows: u64, seed: u64) -> (Database, LoadSummary) {
    let (root, spindles) = layout(dir);
    let db = Database::create(&root, &spindles).unwrap();
    let table = objects(rows, seed);
    let summary = load_table_in_memory(
        &db,
        "lsst",
        object_def(&table),
        &table,
        &LoadOptions::default(),
    )
    .unwrap();
    (db, summary)
}

/// Every file name under `dir`, recursively, relative to it, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.push(format!("{relative}/"));
                walk(base, &path, out);
            } else {
                out.push(relative);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
