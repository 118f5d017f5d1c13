#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A generated catalog loaded from Parquet and from TSV gives identical
//! chunk files (issue 3 acceptance), with the generated values; bad Parquet
//! is an error, never a panic.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, TableKind, load_table_in_memory,
};
use skyscan_engine::ingest::IngestError;
use skyscan_engine::ingest::parquet::{
    InputOptions, ParquetOptions, open_parquet_file, read_input_files,
};
use skyscan_engine::ingest::schema::{SqlTable, parse_schema_sql};
use skyscan_engine::synth::export::{schema_sql, write_parquet, write_tsv};
use skyscan_engine::synth::{ObjectSpec, SourceSpec, generate_objects, generate_sources};
use skyscan_engine::table::Table;
use skyscan_format::{ColumnData, ColumnSchema, ColumnType, TableSchema};

fn sql_of(table: &Table) -> SqlTable {
    let mut tables = parse_schema_sql(&schema_sql(&table.schema), "generated").unwrap();
    assert_eq!(tables.len(), 1);
    tables.remove(0)
}

fn export(table: &Table, dir: &Path) -> (PathBuf, PathBuf) {
    let tsv = dir.join(format!("{}.tsv", table.schema.name));
    let parquet = dir.join(format!("{}.parquet", table.schema.name));
    let mut out = BufWriter::new(File::create(&tsv).unwrap());
    write_tsv(table, &mut out, &mut |_| {}).unwrap();
    drop(out);
    let mut out = BufWriter::new(File::create(&parquet).unwrap());
    write_parquet(table, &mut out, &mut |_| {}).unwrap();
    drop(out);
    (tsv, parquet)
}

fn read(paths: &[PathBuf], sql: &SqlTable) -> Table {
    read_input_files(paths, sql, &InputOptions::default(), &|_| {}).unwrap()
}

fn assert_same_values(read: &Table, generated: &Table) {
    assert_eq!(read.rows(), generated.rows());
    assert_eq!(read.schema, generated.schema);
    for ((a, b), def) in read
        .columns
        .iter()
        .zip(&generated.columns)
        .zip(&generated.schema.columns)
    {
        assert!(a.logical_eq(b), "column {} differs", def.name);
    }
}

fn partitioning() -> Partitioning {
    Partitioning {
        stripes: 85,
        sub_stripes: 12,
        overlap_deg: 0.01667,
    }
}

fn load_both(root: &Path, object: &Table, source: &Table) -> Database {
    let db = Database::create(root, &[]).unwrap();
    let object_def =
        TableDef::director(&object.schema, "objectId", "ra", "decl", partitioning(), 20);
    load_table_in_memory(&db, "lsst", object_def, object, &LoadOptions::default()).unwrap();
    let source_def = TableDef {
        name: "Source".to_string(),
        kind: TableKind::Child {
            director_table: "Object".to_string(),
            foreign_key_column: "objectId".to_string(),
            ra_column: None,
            decl_column: None,
        },
        columns: TableDef::columns_of(&source.schema),
        partitioning: Some(Partitioning {
            overlap_deg: 0.0,
            ..partitioning()
        }),
        scan_rating: 30,
    };
    load_table_in_memory(&db, "lsst", source_def, source, &LoadOptions::default()).unwrap();
    db
}

/// Every chunk file and director index of `table`, by file name.
fn table_files(db: &Database, table: &str) -> Vec<(String, Vec<u8>)> {
    let catalog = db.reload().unwrap();
    let entry = catalog.table("lsst", table).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = entry
        .chunks
        .iter()
        .map(|chunk| {
            let path = db.table_file(entry, chunk.spindle, &chunk.file).unwrap();
            (chunk.file.clone(), std::fs::read(path).unwrap())
        })
        .collect();
    if let Some(index) = &entry.director_index {
        let path = db.table_file(entry, index.spindle, &index.file).unwrap();
        files.push((index.file.clone(), std::fs::read(path).unwrap()));
    }
    assert!(!files.is_empty());
    files
}

#[test]
fn parquet_and_tsv_loads_give_identical_chunk_files() {
    let dir = tempfile::tempdir().unwrap();
    let object = generate_objects(&ObjectSpec::with_density(50_000, 20_000.0, 7), 2)
        .into_table()
        .unwrap();
    let source = generate_sources(&object, &SourceSpec::new(3.0, 7), 2).unwrap();
    let (object_tsv, object_parquet) = export(&object, dir.path());
    let (source_tsv, source_parquet) = export(&source, dir.path());

    let (object_sql, source_sql) = (sql_of(&object), sql_of(&source));
    let object_from_tsv = read(&[object_tsv], &object_sql);
    let object_from_parquet = read(&[object_parquet], &object_sql);
    let source_from_tsv = read(&[source_tsv], &source_sql);
    let source_from_parquet = read(&[source_parquet], &source_sql);
    assert_same_values(&object_from_tsv, &object);
    assert_same_values(&object_from_parquet, &object);
    assert_same_values(&source_from_tsv, &source);
    assert_same_values(&source_from_parquet, &source);

    let tsv_db = load_both(
        &dir.path().join("tsv-db"),
        &object_from_tsv,
        &source_from_tsv,
    );
    let parquet_db = load_both(
        &dir.path().join("parquet-db"),
        &object_from_parquet,
        &source_from_parquet,
    );
    for table in ["Object", "Source"] {
        let from_tsv = table_files(&tsv_db, table);
        let from_parquet = table_files(&parquet_db, table);
        assert_eq!(from_tsv.len(), from_parquet.len(), "{table}: file count");
        for ((name_a, bytes_a), (name_b, bytes_b)) in from_tsv.iter().zip(&from_parquet) {
            assert_eq!(name_a, name_b);
            assert!(bytes_a == bytes_b, "{table}: {name_a} differs");
        }
    }
}

#[test]
fn many_files_and_row_groups_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let object = generate_objects(&ObjectSpec::with_density(9_000, 20_000.0, 11), 2)
        .into_table()
        .unwrap();
    let sql = sql_of(&object);
    // Three files: Parquet, TSV, Parquet, each a third of the rows.
    let mut paths = Vec::new();
    let third = object.rows() / 3;
    for (part, start) in [0, third, 2 * third].into_iter().enumerate() {
        let end = if part == 2 {
            object.rows()
        } else {
            start + third
        };
        let rows: Vec<u32> = (start as u32..end as u32).collect();
        let columns = object
            .columns
            .iter()
            .map(|c| skyscan_kernel::take::take(c, &rows).unwrap())
            .collect();
        let piece = Table::new(object.schema.clone(), columns).unwrap();
        let (tsv, parquet) = export(&piece, &dir.path().join(format!("{part}")).tap_mkdir());
        paths.push(if part == 1 { tsv } else { parquet });
    }
    let read = read_input_files(
        &paths,
        &sql,
        &InputOptions {
            threads: 2,
            ..InputOptions::default()
        },
        &|_| {},
    )
    .unwrap();
    assert_same_values(&read, &object);
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

/// Reads every batch of a Parquet file.
fn read_parquet(path: &Path, schema: &TableSchema) -> Result<u64, IngestError> {
    let mut rows = 0;
    for batch in open_parquet_file(path, schema, &ParquetOptions::default())? {
        rows += batch?.rows as u64;
    }
    Ok(rows)
}

#[test]
fn bad_parquet_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let object = generate_objects(&ObjectSpec::with_density(5_000, 20_000.0, 3), 1)
        .into_table()
        .unwrap();
    let (_, parquet) = export(&object, dir.path());
    let sql = sql_of(&object);
    let bytes = std::fs::read(&parquet).unwrap();

    // Truncated at many points, and with bytes flipped: errors, no panics.
    let damaged = dir.path().join("damaged.parquet");
    for cut in [
        0,
        3,
        4,
        8,
        100,
        bytes.len() / 2,
        bytes.len() - 9,
        bytes.len() - 1,
    ] {
        std::fs::write(&damaged, &bytes[..cut]).unwrap();
        assert!(
            read_parquet(&damaged, &sql.schema).is_err(),
            "truncated at {cut} was accepted"
        );
    }
    for position in (8..bytes.len() - 8).step_by(bytes.len() / 97 + 1) {
        let mut flipped = bytes.clone();
        flipped[position] ^= 0x5a;
        std::fs::write(&damaged, &flipped).unwrap();
        // May or may not fail (a flipped value byte is still a value), but never panics.
        let _ = read_parquet(&damaged, &sql.schema);
    }

    // Wrong types: a schema that declares `ra` as text, and `refBand` as an integer.
    let mut wrong = object.schema.clone();
    wrong.columns[1] = ColumnSchema::new("ra", ColumnType::Utf8, false);
    let error = open_parquet_file(&parquet, &wrong, &ParquetOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(error, IngestError::UnsupportedType { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("ra"), "{error}");

    // A missing column and an extra column.
    let mut missing = object.schema.clone();
    missing
        .columns
        .push(ColumnSchema::new("extra", ColumnType::I32, true));
    let error = open_parquet_file(&parquet, &missing, &ParquetOptions::default())
        .err()
        .unwrap();
    assert!(error.to_string().contains("extra"), "{error}");
    let mut fewer = object.schema.clone();
    fewer.columns.pop();
    let error = open_parquet_file(&parquet, &fewer, &ParquetOptions::default())
        .err()
        .unwrap();
    assert!(error.to_string().contains("detect_isPrimary"), "{error}");

    // NULLs in a NOT NULL column: the generated u_psfFlux has NULLs.
    let mut strict = object.schema.clone();
    let u_flux = strict.column_index("u_psfFlux").unwrap();
    strict.columns[u_flux].nullable = false;
    let mut reader = open_parquet_file(&parquet, &strict, &ParquetOptions::default()).unwrap();
    let error = reader.next_batch().err().unwrap();
    assert!(error.to_string().contains("u_psfFlux"), "{error}");
    assert!(error.to_string().contains("NULL"), "{error}");

    // An integer narrowed out of range: objectId (i64) into an i16 column.
    let narrow = TableSchema::new(
        "Object",
        object
            .schema
            .columns
            .iter()
            .map(|c| {
                if c.name == "objectId" {
                    ColumnSchema::new("objectId", ColumnType::I16, false)
                } else {
                    c.clone()
                }
            })
            .collect(),
    );
    let mut reader = open_parquet_file(&parquet, &narrow, &ParquetOptions::default()).unwrap();
    let error = reader.next_batch().err().unwrap();
    assert!(error.to_string().contains("objectId"), "{error}");
    assert!(matches!(&object.columns[0], ColumnData::I64(_)));
}
