//! The per-visit reads and the historical reads, against a brute-force
//! model of everything stored: across partitions, before and after
//! compaction, after re-association and explicit closes, and after reopen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use apdb_support::*;
use skyscan_engine::apdb::{Apdb, ApdbTable};
use skyscan_sky::{Circle, ConvexPolygon, Region};

fn check_all(apdb: &Apdb, model: &Model, regions: &[Region], times: &[f64], seq: u64) {
    let layout = apdb.layout();
    let reader = apdb.reader();
    assert_eq!(reader.snapshot().seq, seq);
    for region in regions {
        let got = reader.get_dia_objects(region).unwrap();
        assert_eq!(
            object_keys(layout, &got),
            model.latest_objects(region, seq, Some(365.0)),
            "latest objects"
        );
        rows_match(model, ApdbTable::DiaObject, &got, &[]);
        let ids: Vec<i64> = object_keys(layout, &got).iter().map(|k| k.0).collect();
        for &t in times {
            let s = reader.get_dia_sources(region, &ids, t, 12).unwrap();
            assert_eq!(
                ids_of(&s, ApdbTable::DiaSource),
                model.sources(1, region, &ids, t, 12, seq)
            );
            let f = reader.get_dia_forced_sources(region, &ids, t, 12).unwrap();
            assert_eq!(
                ids_of(&f, ApdbTable::DiaForcedSource),
                model.sources(2, region, &ids, t, 12, seq)
            );
            rows_match(model, ApdbTable::DiaForcedSource, &f, &[]);
            let asof = reader.get_dia_objects_as_of(region, t).unwrap();
            assert_eq!(
                object_keys_with_end(layout, &asof),
                model.objects_as_of(region, t, seq),
                "objects as of {t}"
            );
        }
    }
}

fn ids_of(set: &skyscan_engine::apdb::ResultSet, t: ApdbTable) -> Vec<i64> {
    ids(&layout(), t, set)
}

#[test]
fn reads_match_the_model_through_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let visits = visits(small_workload(11), 36);
    let (apdb, _) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    let mut model = Model::new(layout());
    let mut regions: Vec<Region> = vec![
        Region::Polygon(
            ConvexPolygon::new(&[(44.0, -31.0), (46.5, -31.0), (46.5, -29.0), (44.0, -29.5)])
                .unwrap(),
        ),
        Region::Circle(Circle::new(45.0, -30.0, 0.4).unwrap()),
    ];
    let mut last_seq = 0;
    for (index, visit) in visits.iter().enumerate() {
        let mut request = visit.store_request();
        if index == 25 {
            // Close three noise objects of an earlier visit (no new version).
            let o = model.layout.tables[0].clone();
            let first = &visits[3].objects;
            let skyscan_format::ColumnData::I64(ids) = &first.columns[o.id] else {
                panic!()
            };
            let noise: Vec<i64> = ids.values.iter().rev().take(3).copied().collect();
            request.close_object_ids = noise.clone();
            for id in noise {
                model.closes.push((id, visit.time, last_seq + 1));
            }
        }
        let receipt = apdb.store(&request).unwrap();
        assert_eq!(receipt.seq, last_seq + 1);
        last_seq = receipt.seq;
        model.add_visit(visit, receipt.seq);
        if index == 20 {
            // Re-associate five sources of visit 10 to solar-system objects.
            let s = model.layout.tables[1].clone();
            let skyscan_format::ColumnData::I64(ids) = &visits[10].sources.columns[s.id] else {
                panic!()
            };
            let pairs: Vec<(i64, i64)> = ids
                .values
                .iter()
                .take(5)
                .map(|&id| (id, 9_000 + id))
                .collect();
            let t = visit.time + 0.5;
            let receipt = apdb.reassign_dia_sources(&pairs, t).unwrap();
            last_seq = receipt.seq;
            for (s, ss) in pairs {
                model.reassigned.insert(s, (ss, t, receipt.seq));
            }
            // A second re-association of the same source is refused.
            assert!(
                apdb.reassign_dia_sources(&[(ids.values[0], 1)], t + 1.0)
                    .is_err()
            );
        }
        if index % 9 == 8 {
            apdb.compact_now().unwrap();
        }
        if index % 9 == 5 {
            regions.push(visit.region.clone());
            let times = [visit.time + 0.1, visit.time - 40.0, visits[index / 2].time];
            check_all(
                &apdb,
                &model,
                &regions[regions.len() - 1..],
                &times,
                last_seq,
            );
            check_all(&apdb, &model, &regions[..2], &times, last_seq);
        }
    }
    let stats = apdb.stats();
    assert!(stats.partitions[0] >= 6, "{stats:?}");
    assert!(stats.segments[1] >= 1, "{stats:?}");
    assert!(apdb.contains_visit_detector(1, 0));
    assert!(!apdb.contains_visit_detector(99, 0));
    let unassociated = apdb.count_unassociated_objects();
    let times: Vec<f64> = [2.0, 17.0, 35.0]
        .iter()
        .map(|&i| visits[i as usize].time + 0.01)
        .collect();
    check_all(&apdb, &model, &regions, &times, last_seq);
    drop(apdb);
    // Reopen: everything is the same (replayed log + segments).
    let (apdb, open) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    assert!(open.segments > 0);
    check_all(&apdb, &model, &regions, &times, last_seq);
    assert_eq!(apdb.count_unassociated_objects(), unassociated);
    assert!(apdb.contains_visit_detector(1, 0));
    // Compact everything, reopen again.
    apdb.compact_now().unwrap();
    check_all(&apdb, &model, &regions, &times, last_seq);
    drop(apdb);
    let (apdb, open) = Apdb::open_with_schema(dir.path(), felis(), test_config()).unwrap();
    assert!(open.replayed_records > 0);
    assert_eq!(
        apdb.stats().recent_rows,
        [0, 0, 0],
        "everything was in segments"
    );
    check_all(&apdb, &model, &regions, &times, last_seq);
    assert_eq!(apdb.count_unassociated_objects(), unassociated);
    // The reassigned sources show their ssObjectId in a plain scan.
    let all = apdb
        .reader()
        .scan(ApdbTable::DiaSource, None, None, None)
        .unwrap();
    assert_eq!(all.rows(), model.tables[1].rows());
    let l = layout();
    let mut reassigned = 0;
    for b in &all.batches {
        let skyscan_format::ColumnData::I64(ss) = &b.columns[l.ss_object_id] else {
            panic!()
        };
        reassigned += (0..b.rows()).filter(|&r| ss.get(r).is_some()).count();
    }
    assert_eq!(reassigned, 5);
}
