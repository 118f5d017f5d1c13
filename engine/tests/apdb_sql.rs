//! The live alert-production tables through SQL: the same answers as the
//! APDB's own per-visit API, and BRIEF §5's historical forms (latest, as of
//! a time, the sources of an object).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use apdb_support::{layout, schema_path, small_workload, test_config};
use skyscan_engine::apdb::workload::Workload;
use skyscan_engine::apdb::{Apdb, ApdbTable};
use skyscan_engine::catalog::Database;
use skyscan_engine::query::{EngineOptions, QueryEngine};
use skyscan_format::ColumnData;

fn ids(set: &skyscan_engine::apdb::ResultSet, column: &str) -> BTreeSet<i64> {
    let index = set.schema.column_index(column).unwrap();
    let mut out = BTreeSet::new();
    for batch in &set.batches {
        match &batch.columns[index] {
            ColumnData::I64(c) => out.extend(c.values.iter().copied()),
            other => panic!("{column} is {:?}", other.column_type()),
        }
    }
    out
}

#[test]
fn live_tables_answer_sql_like_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let apdb =
        Arc::new(Apdb::open(&dir.path().join("apdb"), &schema_path(), test_config()).unwrap());
    let mut workload = Workload::new(small_workload(5), layout());
    let mut times = Vec::new();
    let mut last_region = None;
    for _ in 0..12 {
        let visit = workload.next_visit();
        apdb.store(&visit.store_request()).unwrap();
        times.push(visit.time);
        last_region = Some((visit.ra_deg, visit.dec_deg));
    }
    let db_root = dir.path().join("db");
    Database::create(&db_root, &[]).unwrap();
    let engine = QueryEngine::new(Database::open(&db_root).unwrap(), EngineOptions::default());
    engine.attach_apdb("apdb", Arc::clone(&apdb));

    let (ra, dec) = last_region.unwrap();
    let region = skyscan_engine::apdb::read::circle(ra, dec, 1.75).unwrap();
    // Latest versions in the last visit's circle.
    let api = apdb
        .reader()
        .scan(ApdbTable::DiaObject, Some(&region), None, None)
        .unwrap();
    let sql = format!(
        "SELECT diaObjectId FROM apdb.DiaObject WHERE qserv_areaspec_circle({ra}, {dec}, 1.75) AND validityEndMjdTai IS NULL"
    );
    let result = engine.query(&sql).unwrap();
    let got: BTreeSet<i64> = result
        .column_values(0)
        .iter()
        .map(|v| v.to_i64().unwrap())
        .collect();
    let id_column = api.schema.column_index("diaObjectId").unwrap();
    let end_column = api.schema.column_index("validityEndMjdTai").unwrap();
    let mut latest = BTreeSet::new();
    for batch in &api.batches {
        let ColumnData::I64(idc) = &batch.columns[id_column] else {
            panic!()
        };
        let inside = |row: usize| {
            let ra_i = api.schema.column_index("ra").unwrap();
            let dec_i = api.schema.column_index("dec").unwrap();
            let (ColumnData::F64(r), ColumnData::F64(d)) =
                (&batch.columns[ra_i], &batch.columns[dec_i])
            else {
                panic!()
            };
            region.contains(r.values[row], d.values[row])
        };
        for row in 0..batch.rows() {
            if !batch.columns[end_column].is_valid(row) && inside(row) {
                latest.insert(idc.values[row]);
            }
        }
    }
    assert!(!latest.is_empty());
    assert_eq!(got, latest);

    // As of an earlier time: versions valid then.
    let t = times[5];
    let sql = format!(
        "SELECT COUNT(*) FROM apdb.DiaObject WHERE validityStartMjdTai <= {t} \
         AND (validityEndMjdTai IS NULL OR {t} < validityEndMjdTai)"
    );
    let as_of = engine.query(&sql).unwrap().column_values(0)[0]
        .to_i64()
        .unwrap();
    assert!(
        as_of > 0
            && as_of
                < engine
                    .query("SELECT COUNT(*) FROM apdb.DiaObject")
                    .unwrap()
                    .column_values(0)[0]
                    .to_i64()
                    .unwrap()
    );

    // The sources of one object up to a time, joined to its latest version.
    let object = *latest.iter().next().unwrap();
    let sql = format!(
        "SELECT s.diaSourceId FROM apdb.DiaSource s JOIN apdb.DiaObject o ON s.diaObjectId = o.diaObjectId \
         WHERE o.diaObjectId = {object} AND o.validityEndMjdTai IS NULL AND s.midpointMjdTai <= {}",
        times[11]
    );
    let joined: BTreeSet<i64> = engine
        .query(&sql)
        .unwrap()
        .column_values(0)
        .iter()
        .map(|v| v.to_i64().unwrap())
        .collect();
    let all_sources = apdb
        .reader()
        .scan(ApdbTable::DiaSource, None, None, None)
        .unwrap();
    let obj_col = all_sources.schema.column_index("diaObjectId").unwrap();
    let src_col = all_sources.schema.column_index("diaSourceId").unwrap();
    let mut expected = BTreeSet::new();
    for batch in &all_sources.batches {
        let (ColumnData::I64(o), ColumnData::I64(s)) =
            (&batch.columns[obj_col], &batch.columns[src_col])
        else {
            panic!()
        };
        for row in 0..batch.rows() {
            if batch.columns[obj_col].is_valid(row) && o.values[row] == object {
                expected.insert(s.values[row]);
            }
        }
    }
    assert_eq!(joined, expected);
    assert!(!ids(&all_sources, "diaSourceId").is_empty());
}
