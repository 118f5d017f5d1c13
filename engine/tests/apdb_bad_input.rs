//! Bad input of every kind: a clear error, the whole store rejected,
//! nothing written (not even to the log), and the database goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use apdb_support::*;
use skyscan_engine::apdb::rows::take_rows;
use skyscan_engine::apdb::{Apdb, ApdbError, ApdbTable, StoreRequest, circle, polygon};
use skyscan_engine::table::Table;
use skyscan_format::{ColumnData, ColumnSchema, ColumnType, PrimitiveColumn, TableSchema};

fn without_column(t: &Table, name: &str) -> Table {
    let index = t.schema.column_index(name).unwrap();
    let mut columns = t.schema.columns.clone();
    columns.remove(index);
    let mut data = t.columns.clone();
    data.remove(index);
    Table::new(TableSchema::new(t.schema.name.clone(), columns), data).unwrap()
}

fn replace_column(t: &Table, name: &str, def: ColumnSchema, data: ColumnData) -> Table {
    let index = t.schema.column_index(name).unwrap();
    let mut out = t.clone();
    out.schema.columns[index] = def;
    out.columns[index] = data;
    out
}

fn expect_rejected(apdb: &Apdb, req: &StoreRequest, want: &str) {
    let before = apdb.snapshot().seq;
    match apdb.store(req) {
        Err(ApdbError::Rejected(m)) => assert!(m.contains(want), "wanted {want:?}, got {m:?}"),
        other => panic!("wanted a rejection containing {want:?}, got {other:?}"),
    }
    assert_eq!(
        apdb.snapshot().seq,
        before,
        "a rejected store changed the database"
    );
}

#[test]
fn bad_input_is_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (apdb, _) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    let l = layout();
    let all = visits(small_workload(21), 3);
    let good = all[0].store_request();
    apdb.store(&good).unwrap();
    let next = all[1].store_request();

    // Schema violations.
    let mut r = next.clone();
    r.objects = without_column(&r.objects, "ra");
    expect_rejected(&apdb, &r, "NOT NULL column `ra` is missing");
    let mut r = next.clone();
    r.sources = replace_column(
        &r.sources,
        "detector",
        ColumnSchema::new("detector", ColumnType::I64, false),
        ColumnData::I64(PrimitiveColumn::new(vec![0; r.sources.rows()])),
    );
    expect_rejected(&apdb, &r, "DiaSource.detector: values of type I64");
    let mut r = next.clone();
    let n = r.objects.rows();
    r.objects = replace_column(
        &r.objects,
        "nDiaSources",
        ColumnSchema::new("nDiaSources", ColumnType::I32, true),
        ColumnData::I32(PrimitiveColumn::from_options(
            &(0..n).map(|i| (i != 3).then_some(1)).collect::<Vec<_>>(),
        )),
    );
    expect_rejected(
        &apdb,
        &r,
        "nDiaSources: NOT NULL column has 1 nulls (first at row 3)",
    );
    let mut r = next.clone();
    let mut extra = r.forced_sources.clone();
    extra
        .schema
        .columns
        .push(ColumnSchema::new("bogus", ColumnType::I32, true));
    extra
        .columns
        .push(ColumnData::I32(PrimitiveColumn::new(vec![0; extra.rows()])));
    r.forced_sources = extra;
    expect_rejected(&apdb, &r, "no column `bogus`");
    // A nullable column left out is fine (filled with NULL) — checked below
    // with the valid store.

    // Duplicate source ids: inside one store, and against a stored visit.
    let s = l.table(ApdbTable::DiaSource);
    let mut r = next.clone();
    let rows = r.sources.rows() as u32;
    let mut indices: Vec<u32> = (0..rows).collect();
    indices.push(0);
    r.sources = take_rows(&r.sources, &indices);
    expect_rejected(&apdb, &r, "appears twice in this store");
    let mut r = next.clone();
    let ColumnData::I64(stored_ids) = &good.sources.columns[s.id] else {
        panic!()
    };
    if let ColumnData::I64(ids) = &mut r.sources.columns[s.id] {
        ids.values[7] = stored_ids.values[2];
    }
    expect_rejected(
        &apdb,
        &r,
        &format!("diaSourceId {} is already stored", stored_ids.values[2]),
    );

    // A visit stored twice.
    expect_rejected(&apdb, &good, "is already stored");
    let mut r = next.clone();
    r.visit_detectors.push((1, 5));
    expect_rejected(&apdb, &r, "visit 1 detector 5 is already stored");

    // Validity update for an unknown object; closing and updating at once.
    let mut r = next.clone();
    r.close_object_ids = vec![987_654_321];
    expect_rejected(&apdb, &r, "validity update for unknown DiaObject 987654321");
    let o = l.table(ApdbTable::DiaObject);
    let ColumnData::I64(new_ids) = &next.objects.columns[o.id] else {
        panic!()
    };
    let mut r = next.clone();
    r.close_object_ids = vec![new_ids.values[0]];
    expect_rejected(&apdb, &r, "both gets a new version and is closed");

    // Versions must start at the visit time and be open.
    let mut r = next.clone();
    r.visit_time += 0.5;
    expect_rejected(&apdb, &r, "is not the visit time");
    let mut r = next.clone();
    r.objects.columns[l.validity_end] =
        ColumnData::F64(PrimitiveColumn::new(vec![1.0; r.objects.rows()]));
    expect_rejected(&apdb, &r, "validityEndMjdTai NULL");
    // Going back in time for an object.
    let mut r = all[0].store_request();
    r.visit_detectors = vec![(77, 0)];
    r.sources = take_rows(&r.sources, &[]);
    r.forced_sources = take_rows(&r.forced_sources, &[]);
    expect_rejected(&apdb, &r, "not before the visit time");

    // References to unknown objects.
    let mut r = next.clone();
    if let ColumnData::I64(ids) = &mut r.sources.columns[s.object_id] {
        ids.values[0] = -5;
    }
    expect_rejected(&apdb, &r, "refers to unknown DiaObject -5");

    // Bad positions and times.
    let mut r = next.clone();
    if let ColumnData::F64(dec) = &mut r.sources.columns[s.dec] {
        dec.values[4] = 95.0;
    }
    expect_rejected(&apdb, &r, "dec in [-90, 90]");
    let mut r = next.clone();
    r.visit_time = f64::NAN;
    expect_rejected(&apdb, &r, "not a positive MJD");
    let mut r = next.clone();
    r.visit_detectors.clear();
    expect_rejected(&apdb, &r, "must name the (visit, detector) pairs");
    let mut r = next.clone();
    r.visit_detectors.retain(|p| p.1 != 17);
    expect_rejected(&apdb, &r, "detector 17 is not among the pairs");

    // Forced-source primary key twice.
    let mut r = next.clone();
    if r.forced_sources.rows() > 0 {
        r.forced_sources = take_rows(&r.forced_sources, &[0, 0]);
        let f = l.table(ApdbTable::DiaForcedSource);
        if let ColumnData::I64(ids) = &mut r.forced_sources.columns[f.id] {
            ids.values[1] += 1_000_000;
        }
        expect_rejected(&apdb, &r, "primary key");
    }

    // Bad regions and read arguments.
    assert!(matches!(
        polygon(&[(0.0, 0.0), (1.0, 0.0)]),
        Err(ApdbError::InvalidRegion(m)) if m.contains("3 to 20")
    ));
    assert!(matches!(
        polygon(&[(0.0, 0.0), (2.0, 0.0), (1.0, 0.5), (2.0, 2.0), (0.0, 2.0)]),
        Err(ApdbError::InvalidRegion(m)) if m.contains("not convex")
    ));
    assert!(matches!(
        circle(0.0, 100.0, 1.0),
        Err(ApdbError::InvalidRegion(_))
    ));
    let region = circle(45.0, -30.0, 1.0).unwrap();
    assert!(matches!(
        apdb.get_dia_sources(&region, &[1], f64::NAN, 12),
        Err(ApdbError::InvalidArgument(_))
    ));
    assert!(matches!(
        apdb.reassign_dia_sources(&[(-77, 1)], 60_001.0),
        Err(ApdbError::Rejected(m)) if m.contains("unknown DiaSource -77")
    ));

    // The valid store still works, with a nullable column left out.
    let mut r = next.clone();
    r.sources = without_column(&r.sources, "psfFluxErr");
    let receipt = apdb.store(&r).unwrap();
    assert_eq!(receipt.seq, 2);
    drop(apdb);
    // Nothing of the rejected stores reached the log.
    let (apdb, stats) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    assert_eq!(stats.replayed_records, 2);
    assert_eq!(apdb.snapshot().seq, 2);
    let sources = apdb
        .reader()
        .scan(ApdbTable::DiaSource, None, None, None)
        .unwrap();
    assert_eq!(
        sources.rows(),
        all[0].sources.rows() + all[1].sources.rows()
    );
}

#[test]
fn limits_are_errors_and_backpressure_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let all = visits(small_workload(4), 3);
    let config = skyscan_engine::apdb::ApdbConfig {
        max_objects: all[0].objects.rows() + 10,
        max_recent_rows: 100,
        ..test_config()
    };
    let (apdb, _) = Apdb::open_with_schema(dir.path(), felis(), config).unwrap();
    apdb.store(&all[0].store_request()).unwrap();
    // Over max_recent_rows: the next store compacts first.
    match apdb.store(&all[1].store_request()) {
        Err(ApdbError::Limit(m)) => assert!(m.contains("max_objects"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        apdb.stats().segments.iter().sum::<u64>() > 0,
        "backpressure compacted"
    );
    assert_eq!(apdb.snapshot().seq, 1);
}
