//! The catalog: create/open round trips, publish and abort, one writer,
//! replace and drop, child and replicated tables, bad metadata, verify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catalog_support;

use std::sync::Arc;

use catalog_support::*;
use skyscan_engine::catalog::inspect::{table_infos, verify_database};
use skyscan_engine::catalog::{
    CatalogError, Database, LoadOptions, Partitioning, TableDef, TableKind, load_table_in_memory,
    write_table_into_load,
};
use skyscan_engine::director::DirectorIndex;
use skyscan_format::ChunkFile;

#[test]
fn create_load_open_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (db, summary) = database_with_objects(dir.path(), 3_000, 7);
    assert_eq!(summary.rows, 3_000);
    assert!(summary.overlap_rows > 0);
    assert!(
        summary.chunks >= 2,
        "a few square degrees cover several chunks"
    );
    assert_eq!(summary.director_index_entries, Some(3_000));

    let catalog = db.catalog();
    assert_eq!(catalog.generation, summary.generation);
    let entry = catalog.table("lsst", "Object").unwrap();
    assert_eq!(entry.rows, 3_000);
    assert_eq!(entry.overlap_rows, summary.overlap_rows);
    assert_eq!(entry.chunks.len() as u64, summary.chunks);
    assert!(
        matches!(&entry.kind, TableKind::Director { key_column, .. } if key_column == "objectId")
    );
    assert_eq!(entry.partitioning, Some(Partitioning::qserv_default()));
    assert_eq!(entry.scan_rating, 15);
    for chunk in &entry.chunks {
        assert_eq!(
            chunk.spindle,
            chunk.chunk_id.rem_euclid(2) as u32,
            "chunk_id mod spindles"
        );
        let path = db.chunk_file("lsst", "Object", chunk.chunk_id).unwrap();
        assert!(path.starts_with(&db.spindle_paths()[chunk.spindle as usize]));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, chunk.bytes);
        let file = ChunkFile::from_bytes(&bytes).unwrap();
        assert_eq!(file.footer().chunk_id() as i32, chunk.chunk_id);
    }
    let index_entry = entry.director_index.as_ref().unwrap();
    let index = DirectorIndex::open(
        &db.table_file(entry, index_entry.spindle, &index_entry.file)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(index.len(), 3_000);

    // Re-open: the same catalog; the metadata is readable JSON.
    let reopened = Database::open(db.root()).unwrap();
    assert_eq!(*reopened.catalog(), *catalog);
    let json = std::fs::read_to_string(
        db.root()
            .join(format!("catalog.{}.json", catalog.generation)),
    )
    .unwrap();
    assert!(json.contains("\"format\": \"skyscan-catalog\""), "{json}");
    assert!(json.contains("\"type\": \"director\""), "{json}");
    assert!(json.contains("\"type\": \"i64\""), "{json}");
    let current = std::fs::read_to_string(db.root().join("CURRENT")).unwrap();
    assert_eq!(current, format!("catalog.{}.json\n", catalog.generation));

    let report = verify_database(&db, &catalog, &mut |_| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.files, summary.chunks + 1);
    let infos = table_infos(&db, &catalog).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].rows, 3_000);
    assert!(
        infos[0].compression_ratio() > 0.0 && infos[0].compression_ratio() < 1.0,
        "{:?}",
        infos[0]
    );
    assert_eq!(infos[0].bytes_per_spindle.iter().sum::<u64>(), entry.bytes);
}

#[test]
fn create_refuses_existing_or_foreign_roots() {
    let dir = tempfile::tempdir().unwrap();
    let (root, spindles) = layout(dir.path());
    Database::create(&root, &spindles).unwrap();
    assert!(matches!(
        Database::create(&root, &spindles),
        Err(CatalogError::AlreadyExists(_))
    ));
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let err = Database::create(&foreign, &[]).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    // A spindle of another database is refused.
    let other = dir.path().join("other");
    let err = Database::create(&other, &[spindles[0].clone()]).unwrap_err();
    assert!(err.to_string().contains("spindle of database"), "{err}");
    // Opening something that is not a database.
    let err = Database::open(&foreign).unwrap_err();
    assert!(matches!(err, CatalogError::NotFound(_)), "{err}");
}

#[test]
fn single_spindle_database_lives_in_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let db = Database::create(&root, &[]).unwrap();
    assert_eq!(db.catalog().spindles, vec![".".to_string()]);
    let table = filters();
    let summary = load_table_in_memory(
        &db,
        "lsst",
        TableDef::replicated(&table.schema, 0),
        &table,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(summary.chunks, 1);
    let entry = db.catalog().table("lsst", "Filter").unwrap().clone();
    assert_eq!(entry.chunks[0].chunk_id, 0);
    assert_eq!(entry.rows, 6);
    assert!(entry.partitioning.is_none());
    let path = db.chunk_file("lsst", "Filter", 0).unwrap();
    assert!(
        path.starts_with(db.root().join("data/lsst")),
        "{}",
        path.display()
    );
    let report = verify_database(&db, &db.catalog(), &mut |_| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn abort_and_drop_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 1_000, 1);
    let before_catalog = db.catalog();
    let before_tree: Vec<Vec<String>> = db.spindle_paths().iter().map(|p| tree(p)).collect();
    let table = objects(1_000, 2);
    let mut def = object_def(&table);
    def.name = "Object2".to_string();

    let mut load = db.begin_load("lsst", def.clone()).unwrap();
    let mut renamed = table.clone();
    renamed.schema.name = "Object2".to_string();
    write_table_into_load(&mut load, &renamed, &LoadOptions::default()).unwrap();
    load.abort();
    assert_eq!(db.reload().unwrap(), before_catalog);
    for (path, before) in db.spindle_paths().iter().zip(&before_tree) {
        assert_eq!(
            &tree(path),
            before,
            "abort removed staging on {}",
            path.display()
        );
    }

    // Dropping the load without commit aborts too.
    {
        let mut load = db.begin_load("lsst", def.clone()).unwrap();
        write_table_into_load(&mut load, &renamed, &LoadOptions::default()).unwrap();
    }
    assert_eq!(db.reload().unwrap(), before_catalog);
    for (path, before) in db.spindle_paths().iter().zip(&before_tree) {
        assert_eq!(&tree(path), before);
    }

    // A failing commit (declared size wrong) aborts and keeps the old state.
    let mut load = db.begin_load("lsst", def).unwrap();
    let chunk_id = load
        .chunker()
        .unwrap()
        .locate(60.0, -30.0)
        .unwrap()
        .chunk_id;
    let path = load.chunk_path(chunk_id).unwrap();
    std::fs::write(&path, b"not a chunk").unwrap();
    load.add_chunk(chunk_id, 1, 0, 999).unwrap();
    let err = load.commit().unwrap_err();
    assert!(err.to_string().contains("999 declared"), "{err}");
    assert_eq!(db.reload().unwrap(), before_catalog);
    for (path, before) in db.spindle_paths().iter().zip(&before_tree) {
        assert_eq!(&tree(path), before);
    }
}

#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 500, 1);
    let table = filters();
    let load = db
        .begin_load("lsst", TableDef::replicated(&table.schema, 0))
        .unwrap();
    let err = db
        .begin_load("lsst", TableDef::replicated(&table.schema, 0))
        .unwrap_err();
    assert!(matches!(err, CatalogError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("one writer at a time"), "{err}");
    let other_handle = Database::open(db.root()).unwrap(); // readers open while a writer runs
    assert!(matches!(
        other_handle.drop_table("lsst", "Object"),
        Err(CatalogError::Busy { .. })
    ));
    // The writer's staging survives another handle's open (no cleanup while busy).
    let staged = load.chunk_path(0).unwrap();
    assert!(staged.parent().unwrap().is_dir());
    drop(load);
    db.begin_load("lsst", TableDef::replicated(&table.schema, 0))
        .unwrap()
        .abort();
}

#[test]
fn replace_and_drop_are_atomic_and_old_snapshots_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 1_000, 1);
    let old: Arc<_> = db.catalog();
    let old_paths: Vec<_> = old
        .table("lsst", "Object")
        .unwrap()
        .chunks
        .iter()
        .map(|c| {
            db.table_file(old.table("lsst", "Object").unwrap(), c.spindle, &c.file)
                .unwrap()
        })
        .collect();

    let table = objects(2_000, 2);
    let err = load_table_in_memory(
        &db,
        "lsst",
        object_def(&table),
        &table,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CatalogError::AlreadyExists(_)), "{err}");
    let options = LoadOptions {
        replace: true,
        ..LoadOptions::default()
    };
    load_table_in_memory(&db, "lsst", object_def(&table), &table, &options).unwrap();
    let new = db.catalog();
    assert_eq!(new.table("lsst", "Object").unwrap().rows, 2_000);
    assert_ne!(
        new.table("lsst", "Object").unwrap().data_dir,
        old.table("lsst", "Object").unwrap().data_dir
    );
    // The previous version's files are untouched: a reader of `old` still works.
    assert!(old_paths.iter().all(|p| p.exists()));
    let report = verify_database(&db, &old, &mut |_| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    // Drop: gone from the catalog at once; the files go once no kept
    // generation names them (KEPT_OLD_GENERATIONS further commits).
    db.drop_table("lsst", "Object").unwrap();
    assert!(db.catalog().databases.is_empty());
    assert!(
        old_paths.iter().all(|p| p.exists()),
        "generation - 2 is still kept"
    );
    let filter = filters();
    for round in 0..3 {
        let mut def = TableDef::replicated(&filter.schema, 0);
        def.name = format!("Filter{round}");
        load_table_in_memory(&db, "lsst", def, &filter, &LoadOptions::default()).unwrap();
    }
    assert!(
        old_paths.iter().all(|p| !p.exists()),
        "pruned after the kept window"
    );
    let names: Vec<String> = std::fs::read_dir(db.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("catalog."))
        .collect();
    assert_eq!(names.len(), 3, "current + 2 kept generations: {names:?}");
    assert!(matches!(
        db.drop_table("lsst", "Object"),
        Err(CatalogError::NotFound(_))
    ));
}

#[test]
fn child_tables_follow_their_director() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 2_000, 3);
    let objects_table = objects(2_000, 3);
    let source = sources(&objects_table, 3);
    let partitioning = Partitioning {
        overlap_deg: 0.0,
        ..Partitioning::qserv_default()
    };
    // By the director index.
    let by_key = TableDef {
        name: "Source".to_string(),
        kind: TableKind::Child {
            director_table: "Object".to_string(),
            foreign_key_column: "objectId".to_string(),
            ra_column: None,
            decl_column: None,
        },
        columns: TableDef::columns_of(&source.schema),
        partitioning: Some(partitioning),
        scan_rating: 25,
    };
    load_table_in_memory(
        &db,
        "lsst",
        by_key.clone(),
        &source,
        &LoadOptions::default(),
    )
    .unwrap();
    // By the director's position columns.
    let mut by_position = by_key.clone();
    by_position.name = "SourcePos".to_string();
    by_position.kind = TableKind::Child {
        director_table: "Object".to_string(),
        foreign_key_column: "objectId".to_string(),
        ra_column: Some("objRa".to_string()),
        decl_column: Some("objDecl".to_string()),
    };
    let mut renamed = source.clone();
    renamed.schema.name = "SourcePos".to_string();
    load_table_in_memory(&db, "lsst", by_position, &renamed, &LoadOptions::default()).unwrap();

    let catalog = db.catalog();
    let object = catalog.table("lsst", "Object").unwrap();
    let child = catalog.table("lsst", "Source").unwrap();
    let child_pos = catalog.table("lsst", "SourcePos").unwrap();
    assert_eq!(child.rows, 6_000);
    assert_eq!(child.overlap_rows, 0);
    let object_chunks: Vec<(i32, u64)> = object
        .chunks
        .iter()
        .filter(|c| c.rows > 0)
        .map(|c| (c.chunk_id, c.rows * 3))
        .collect();
    assert!(object_chunks.len() >= 2, "{object_chunks:?}");
    let child_chunks: Vec<(i32, u64)> = child.chunks.iter().map(|c| (c.chunk_id, c.rows)).collect();
    let child_pos_chunks: Vec<(i32, u64)> = child_pos
        .chunks
        .iter()
        .map(|c| (c.chunk_id, c.rows))
        .collect();
    assert_eq!(
        child_chunks, object_chunks,
        "each source sits in its object's chunk"
    );
    assert_eq!(child_pos_chunks, object_chunks);
    for c in &child.chunks {
        assert_eq!(
            c.spindle,
            object.chunk(c.chunk_id).unwrap().spindle,
            "a chunk of every table on one disk"
        );
    }
    let report = verify_database(&db, &catalog, &mut |_| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    // A director with children cannot be dropped; an orphan child is refused.
    let err = db.drop_table("lsst", "Object").unwrap_err();
    assert!(
        err.to_string().contains("drop the child tables first"),
        "{err}"
    );
    let mut orphan = by_key.clone();
    orphan.name = "Orphan".to_string();
    orphan.kind = TableKind::Child {
        director_table: "Missing".to_string(),
        foreign_key_column: "objectId".to_string(),
        ra_column: None,
        decl_column: None,
    };
    assert!(matches!(
        db.begin_load("lsst", orphan),
        Err(CatalogError::NotFound(_))
    ));
    // Child rows without a director row fail the load, naming the keys.
    let strangers = sources(&objects(10, 99), 1);
    let mut def = by_key;
    def.name = "Stray".to_string();
    let err =
        load_table_in_memory(&db, "lsst", def, &strangers, &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("have no director row"), "{err}");
    assert!(db.reload().unwrap().table("lsst", "Stray").is_none());
}

#[test]
fn bad_definitions_and_chunk_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 300, 1);
    let table = objects(300, 1);
    let mut def = object_def(&table);
    def.name = "bad/name".to_string();
    assert!(
        db.begin_load("lsst", def)
            .unwrap_err()
            .to_string()
            .contains("table name")
    );
    let mut def = object_def(&table);
    def.name = "Other".to_string();
    def.kind = TableKind::Director {
        key_column: "objectId".to_string(),
        ra_column: "refBand".to_string(),
        decl_column: "decl".to_string(),
    };
    let err = db.begin_load("lsst", def).unwrap_err();
    assert!(err.to_string().contains("positions are f64"), "{err}");
    let mut def = object_def(&table);
    def.name = "Other".to_string();
    def.scan_rating = 101;
    assert!(
        db.begin_load("lsst", def)
            .unwrap_err()
            .to_string()
            .contains("scan rating")
    );
    let mut def = object_def(&table);
    def.name = "Other".to_string();
    let err = db.begin_load("..", def.clone()).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("database name"), "{err}");
    let mut load = db.begin_load("lsst", def).unwrap();
    assert!(load.chunk_path(-5).is_err());
    let valid = load
        .chunker()
        .unwrap()
        .locate(60.0, -30.0)
        .unwrap()
        .chunk_id;
    assert!(load.chunk_path(valid).is_ok());
    assert!(
        load.chunk_path(169).is_err(),
        "85 stripes: stripe 0's chunk ids stop well below 170"
    );
    assert!(load.director_index_path().is_ok());
    load.add_chunk(valid, 1, 0, 10).unwrap();
    assert!(load.add_chunk(valid, 1, 0, 10).is_err(), "declared twice");
    load.abort();
    let replicated = filters();
    let load = db
        .begin_load("lsst", TableDef::replicated(&replicated.schema, 0))
        .unwrap();
    assert!(
        load.chunk_path(1).is_err(),
        "replicated tables have only chunk 0"
    );
    assert!(load.director_index_path().is_err());
    load.abort();
}

#[test]
fn corrupt_foreign_and_future_metadata_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 300, 1);
    let root = db.root().to_path_buf();
    let generation = db.catalog().generation;
    let catalog_path = root.join(format!("catalog.{generation}.json"));
    let good = std::fs::read(&catalog_path).unwrap();
    drop(db);

    let open_err = || Database::open(&root).unwrap_err();

    std::fs::write(&catalog_path, &good[..good.len() / 2]).unwrap();
    let err = open_err();
    assert!(matches!(err, CatalogError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("catalog.{generation}.json")),
        "{err}"
    );

    std::fs::write(&catalog_path, br#"{"hello": "world"}"#).unwrap();
    let err = open_err();
    assert!(err.to_string().contains("not a skyscan catalog"), "{err}");

    let future =
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"version\": 1", "\"version\": 99", 1);
    std::fs::write(&catalog_path, future).unwrap();
    let err = open_err();
    assert!(matches!(err, CatalogError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("version 99"), "{err}");

    let broken =
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"rows\": 300", "\"rows\": 301", 1);
    std::fs::write(&catalog_path, broken).unwrap();
    let err = open_err();
    assert!(
        err.to_string().contains("differ from the chunks' sums"),
        "{err}"
    );

    let unknown_field = String::from_utf8(good.clone()).unwrap().replacen(
        "\"generation\"",
        "\"surprise\": 1,\n  \"generation\"",
        1,
    );
    std::fs::write(&catalog_path, unknown_field).unwrap();
    let err = open_err();
    assert!(err.to_string().contains("surprise"), "{err}");

    let escaping =
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"file\": \"", "\"file\": \"../", 1);
    std::fs::write(&catalog_path, escaping).unwrap();
    let err = open_err();
    assert!(err.to_string().contains("not a plain file name"), "{err}");

    std::fs::write(&catalog_path, &good).unwrap();
    std::fs::write(root.join("CURRENT"), "../../etc/passwd\n").unwrap();
    let err = open_err();
    assert!(err.to_string().contains("does not name a catalog"), "{err}");

    std::fs::write(root.join("CURRENT"), format!("catalog.{generation}.json\n")).unwrap();
    Database::open(&root).unwrap();

    // A spindle that is not mounted (marker missing).
    let marker = dir.path().join("disk1").join("SKYSCAN_SPINDLE");
    std::fs::rename(&marker, dir.path().join("saved-marker")).unwrap();
    let err = open_err();
    assert!(err.to_string().contains("not mounted"), "{err}");
    std::fs::rename(dir.path().join("saved-marker"), &marker).unwrap();
    Database::open(&root).unwrap();
}

#[test]
fn verify_names_the_file_and_block_of_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = database_with_objects(dir.path(), 2_000, 5);
    let catalog = db.catalog();
    let entry = catalog.table("lsst", "Object").unwrap();
    let chunk = &entry.chunks[0];
    let path = db.table_file(entry, chunk.spindle, &chunk.file).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let file = ChunkFile::from_bytes(&bytes).unwrap();
    let block = file.footer().block(0, 1).unwrap();
    let offset = block.offset() as usize + 3;
    drop(file);
    bytes[offset] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let report = verify_database(&db, &catalog, &mut |_| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert!(problem.contains(&path.display().to_string()), "{problem}");
    assert!(problem.contains("row group 0, column 1 `ra`"), "{problem}");
}
