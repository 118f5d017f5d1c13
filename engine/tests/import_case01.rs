//! Acceptance of `import-qserv` on Qserv's integration-test case01: every
//! table loads, Object and Source land in the chunks Qserv's ingest metadata
//! lists, every Object row and overlap copy sits at the (chunk, sub-chunk)
//! of `Object_partition_locations.tsv`, every value read back from the chunk
//! files equals an independent re-read of the input, the director index maps
//! every objectId, and bad input leaves the database as it was.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use skyscan_engine::catalog::Database;
use skyscan_engine::catalog::inspect::verify_database;
use skyscan_engine::director::DirectorIndex;
use skyscan_engine::ingest::qserv::{ImportOptions, ImportReport, import_qserv};
use skyscan_engine::ingest::schema::parse_schema_file;
use skyscan_engine::ingest::tsv::{ReaderOptions, open_table_file};
use skyscan_format::{ChunkFile, ColumnData};

const DATABASE: &str = "qcase01";

const CASE01_ROWS: [(&str, u64); 9] = [
    ("Object", 88),
    ("Source", 3_339),
    ("Science_Ccd_Exposure", 3_304),
    ("RefSrcMatch", 3_344),
    ("SimRefObject", 3_314),
    ("Logs", 1_000),
    ("Filter", 9),
    ("LeapSeconds", 38),
    ("sdqa_Metric", 53),
];

/// `shared/testdata/qserv/case01`, from `SKYSCAN_TESTDATA` or relative to the crate.
fn case01() -> PathBuf {
    let root = std::env::var_os("SKYSCAN_TESTDATA").map_or_else(
        || {
            PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared/testdata")
        },
        PathBuf::from,
    );
    let dir = root.join("qserv/case01");
    assert!(
        dir.join("schema").is_dir() && dir.join("partition").is_dir(),
        "Qserv case01 test data not found at {} (set SKYSCAN_TESTDATA to the shared/testdata folder)",
        dir.display()
    );
    dir
}

fn import(dir: &Path, db: &Path) -> Result<ImportReport, String> {
    import_qserv(dir, db, &ImportOptions::default(), &mut |_| {}).map_err(|e| e.to_string())
}

/// One value as comparable bytes (`None` = NULL; floats by bit pattern).
fn cell(column: &ColumnData, row: usize) -> Option<Vec<u8>> {
    if !column.is_valid(row) {
        return None;
    }
    Some(match column {
        ColumnData::Bool(c) => vec![u8::from(c.values.get(row))],
        ColumnData::I8(c) => c.values[row].to_le_bytes().to_vec(),
        ColumnData::I16(c) => c.values[row].to_le_bytes().to_vec(),
        ColumnData::I32(c) => c.values[row].to_le_bytes().to_vec(),
        ColumnData::I64(c) => c.values[row].to_le_bytes().to_vec(),
        ColumnData::F32(c) => c.values[row].to_bits().to_le_bytes().to_vec(),
        ColumnData::F64(c) => c.values[row].to_bits().to_le_bytes().to_vec(),
        ColumnData::Utf8(c) | ColumnData::Binary(c) => c.value(row).to_vec(),
    })
}

type Row = Vec<Option<Vec<u8>>>;

fn rows_of(columns: &[ColumnData]) -> Vec<Row> {
    let count = columns.first().map_or(0, ColumnData::len);
    (0..count)
        .map(|row| columns.iter().map(|c| cell(c, row)).collect())
        .collect()
}

/// The input rows of `table`, re-read with the ingest reader.
fn input_rows(dir: &Path, table: &str) -> Vec<Row> {
    let schema = parse_schema_file(&dir.join("schema").join(format!("{table}.schema")))
        .unwrap()
        .remove(0);
    let path = dir.join(format!("{table}.tsv.gz"));
    let mut rows = Vec::new();
    for batch in open_table_file(&path, &schema, ReaderOptions::default()).unwrap() {
        rows.extend(rows_of(&batch.unwrap().columns));
    }
    rows
}

/// Rows stored for `table`: `(chunk, sub-chunk, overlap, row)` for each.
fn stored_rows(db: &Database, table: &str) -> Vec<(i32, u32, bool, Row)> {
    let catalog = db.catalog();
    let entry = catalog.table(DATABASE, table).unwrap();
    let mut out = Vec::new();
    for chunk in &entry.chunks {
        let path = db.chunk_file(DATABASE, table, chunk.chunk_id).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = ChunkFile::from_bytes(&bytes).unwrap();
        let groups = file.read_all().unwrap();
        for (meta, columns) in file.footer().row_groups().iter().zip(groups) {
            for row in rows_of(&columns) {
                out.push((chunk.chunk_id, meta.sub_chunk_id, meta.overlap, row));
            }
        }
    }
    out
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// `ingest/metadata.json`: (all chunks, chunks with overlap) of a table.
fn metadata_chunks(dir: &Path, table: &str) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let text = std::fs::read_to_string(dir.join("ingest/metadata.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["schema"] == format!("{table}.json"))
        .unwrap();
    let ids = |key: &str| -> BTreeSet<i32> {
        entry["data"][0][key]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_i64().unwrap() as i32).collect())
            .unwrap_or_default()
    };
    (ids("chunks"), ids("overlaps"))
}

#[test]
fn case01_imports_exactly() {
    let dir = case01();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("db");
    let report = import(&dir, &root).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.database, DATABASE);
    assert!(report.created);
    let db = Database::open(&root).unwrap();
    let catalog = db.catalog();

    // Row counts.
    for (table, rows) in CASE01_ROWS {
        let entry = catalog
            .table(DATABASE, table)
            .unwrap_or_else(|| panic!("{table} not loaded"));
        assert_eq!(entry.rows, rows, "{table}");
        let reported = report.tables.iter().find(|t| t.table == table).unwrap();
        assert_eq!(reported.rows, rows, "{table}");
    }
    let object = catalog.table(DATABASE, "Object").unwrap();
    assert_eq!(object.kind.name(), "director");
    assert_eq!(
        catalog.table(DATABASE, "Source").unwrap().kind.name(),
        "child"
    );
    assert_eq!(
        catalog.table(DATABASE, "Filter").unwrap().kind.name(),
        "replicated"
    );

    // Chunks of Object and Source, and which Object chunks hold overlap rows.
    for table in ["Object", "Source"] {
        let (chunks, overlaps) = metadata_chunks(&dir, table);
        assert_eq!(chunks.len(), 13, "{table}");
        let entry = catalog.table(DATABASE, table).unwrap();
        let ours: BTreeSet<i32> = entry.chunks.iter().map(|c| c.chunk_id).collect();
        assert_eq!(ours, chunks, "{table} chunks");
        if table == "Object" {
            assert_eq!(overlaps.len(), 10);
            let with_overlap: BTreeSet<i32> = entry
                .chunks
                .iter()
                .filter(|c| c.overlap_rows > 0)
                .map(|c| c.chunk_id)
                .collect();
            assert_eq!(with_overlap, overlaps, "Object overlap chunks");
        }
    }

    // Every Object row and overlap copy at the reference (chunk, sub-chunk).
    let text = std::fs::read_to_string(dir.join("Object_partition_locations.tsv")).unwrap();
    let expected: Vec<(i64, i32, u32, bool)> = sorted(
        text.lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                (
                    f[0].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                    f[5] == "1",
                )
            })
            .collect(),
    );
    let object_rows = stored_rows(&db, "Object");
    let ours: Vec<(i64, i32, u32, bool)> = sorted(
        object_rows
            .iter()
            .map(|(chunk, sub, overlap, row)| {
                let id = i64::from_le_bytes(row[0].clone().unwrap().try_into().unwrap());
                (id, *chunk, *sub, *overlap)
            })
            .collect(),
    );
    assert_eq!(ours.len(), 88 + 24);
    assert_eq!(ours, expected, "Object locations");

    // Every value equals the input, for every table; overlap copies equal their row.
    for (table, _) in CASE01_ROWS {
        let stored = stored_rows(&db, table);
        let own: Vec<Row> = sorted(
            stored
                .iter()
                .filter(|r| !r.2)
                .map(|r| r.3.clone())
                .collect(),
        );
        let input = sorted(input_rows(&dir, table));
        assert_eq!(own.len(), input.len(), "{table}");
        assert!(
            own == input,
            "{table}: values read back differ from the input"
        );
        let originals: BTreeSet<&Row> = input.iter().collect();
        for (chunk, sub, _, row) in stored.iter().filter(|r| r.2) {
            assert!(
                originals.contains(row),
                "{table}: overlap copy in chunk {chunk} sub-chunk {sub} differs from its row"
            );
        }
    }

    // The director index maps every objectId to its own row's place.
    let entry = object.director_index.as_ref().unwrap();
    let index =
        DirectorIndex::open(&db.table_file(object, entry.spindle, &entry.file).unwrap()).unwrap();
    assert_eq!(index.len(), 88);
    let own_places: BTreeMap<i64, (i32, i32)> = ours
        .iter()
        .filter(|r| !r.3)
        .map(|&(id, chunk, sub, _)| (id, (chunk, sub as i32)))
        .collect();
    assert_eq!(own_places.len(), 88);
    for (id, place) in &own_places {
        assert_eq!(index.lookup(*id).unwrap(), Some(*place), "objectId {id}");
    }

    // Source rows of a known director sit in their director's sub-chunk.
    let source_rows = stored_rows(&db, "Source");
    let schema = parse_schema_file(&dir.join("schema/Source.schema"))
        .unwrap()
        .remove(0);
    let object_id = schema.column_index("objectId").unwrap();
    let mut with_director = 0;
    for (chunk, sub, _, row) in &source_rows {
        let id = i64::from_le_bytes(row[object_id].clone().unwrap().try_into().unwrap());
        if let Some(place) = own_places.get(&id) {
            assert_eq!(*place, (*chunk, *sub as i32), "Source of objectId {id}");
            with_director += 1;
        }
    }
    let source = report.tables.iter().find(|t| t.table == "Source").unwrap();
    let orphans = source.orphans.as_ref().unwrap();
    assert_eq!(with_director + orphans.rows, 3_339);
    assert_eq!(
        orphans.rows, 36,
        "Source rows whose objectId is not in Object"
    );

    let verify = verify_database(&db, &catalog, &mut |_| {}).unwrap();
    assert!(verify.is_clean(), "{:?}", verify.problems);
}

/// A copy of case01 (data files linked, configuration copied) to break.
fn copy_case01(to: &Path) -> PathBuf {
    let from = case01();
    let dir = to.join("case01");
    for sub in ["schema", "partition", "ingest"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(sub).join(entry.file_name())).unwrap();
        }
    }
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().ends_with(".tsv.gz") {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// The database at `root` still opens at `generation`, verifies clean, and
/// holds all nine tables.
fn unchanged(root: &Path, generation: u64) {
    let db = Database::open(root).unwrap();
    let catalog = db.catalog();
    assert_eq!(catalog.generation, generation, "the catalog changed");
    assert_eq!(catalog.tables().count(), 9);
    let verify = verify_database(&db, &catalog, &mut |_| {}).unwrap();
    assert!(verify.is_clean(), "{:?}", verify.problems);
}

#[test]
fn bad_input_leaves_the_database_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("db");
    import(&case01(), &root).unwrap_or_else(|e| panic!("{e}"));
    let generation = Database::open(&root).unwrap().catalog().generation;

    // A missing data file.
    let dir = copy_case01(&tmp.path().join("missing"));
    std::fs::remove_file(dir.join("Filter.tsv.gz")).unwrap();
    let error = import(&dir, &root).unwrap_err();
    assert!(
        error.contains("Filter") && error.contains("no data file"),
        "{error}"
    );
    unchanged(&root, generation);

    // A field list that does not match the schema's column order.
    let dir = copy_case01(&tmp.path().join("fields"));
    let path = dir.join("partition/Object.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let swapped = text
        .replacen("\"ra_PS\",", "\"@@\",", 1)
        .replacen("\"decl_PS\",", "\"ra_PS\",", 1)
        .replacen("\"@@\",", "\"decl_PS\",", 1);
    std::fs::write(&path, swapped).unwrap();
    let error = import(&dir, &root).unwrap_err();
    assert!(
        error.contains("Object.json") && error.contains("`ra_PS`") && error.contains("decl_PS"),
        "{error}"
    );
    unchanged(&root, generation);

    // Data that does not match the schema: a word in a float column.
    let dir = copy_case01(&tmp.path().join("data"));
    let filter = dir.join("Filter.tsv.gz");
    std::fs::remove_file(&filter).unwrap();
    std::fs::write(
        dir.join("Filter.tsv"),
        "0\tu\t365.0\t66.0\n1\tg\tnot-a-number\t128.0\n",
    )
    .unwrap();
    let error = import(&dir, &root).unwrap_err();
    assert!(
        error.contains("Filter.tsv:2") && error.contains("photClam"),
        "{error}"
    );
    unchanged(&root, generation);

    // A data file with too few columns.
    std::fs::write(dir.join("Filter.tsv"), "0\tu\t365.0\n").unwrap();
    let error = import(&dir, &root).unwrap_err();
    assert!(error.contains("Filter.tsv:1"), "{error}");
    unchanged(&root, generation);

    // Child rows without a director row and without director position
    // columns to place them by: refused before anything is published.
    let dir = copy_case01(&tmp.path().join("orphans"));
    let path = dir.join("partition/Source.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"pos\":\"raObject, declObject\",", "")).unwrap();
    let error = import(&dir, &root).unwrap_err();
    assert!(
        error.contains("36 rows have no director row") && error.contains("Source.tsv.gz: record 1"),
        "{error}"
    );
    unchanged(&root, generation);

    // Re-running the good import replaces every table and still verifies.
    let report = import(&case01(), &root).unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.created);
    let db = Database::open(&root).unwrap();
    assert!(db.catalog().generation > generation);
    assert_eq!(db.catalog().table(DATABASE, "Source").unwrap().rows, 3_339);
}
