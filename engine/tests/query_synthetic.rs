//! The query engine against naive oracles on a generated catalog: an
//! Object table (a patch across RA 0, so chunks wrap) and its Sources.
//! Every answer is recomputed row by row from the in-memory tables, with
//! the sky crate's sciSQL ports for geometry, and compared exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, TableKind, load_table_in_memory,
};
use skyscan_engine::query::{EngineOptions, ErrorKind, QueryEngine};
use skyscan_engine::synth::{
    Footprint, ObjectSpec, SourceSpec, generate_objects, generate_sources,
};
use skyscan_engine::table::Table;
use skyscan_format::ColumnData;
use skyscan_kernel::value::Scalar;

struct Fixture {
    engine: QueryEngine,
    /// The same database with every query of a chunk or more on the convoys.
    convoy_engine: QueryEngine,
    objects: Table,
    sources: Table,
}

const OBJECTS: u64 = 40_000;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // About 2 deg² around RA 0 (so the patch wraps), dense enough for pairs at 1′.
        let spec = ObjectSpec {
            rows: OBJECTS,
            seed: 7,
            footprint: Footprint::square(0.0, 1.0, 2.0),
        };
        let objects = generate_objects(&spec, 2).into_table().unwrap();
        let sources = generate_sources(&objects, &SourceSpec::new(5.0, 11), 2).unwrap();
        let root = tempfile::tempdir().unwrap().keep().join("db");
        let db = Database::create(&root, &[]).unwrap();
        let partitioning = Partitioning::qserv_default();
        let object_def =
            TableDef::director(&objects.schema, "objectId", "ra", "decl", partitioning, 20);
        load_table_in_memory(&db, "lsst", object_def, &objects, &LoadOptions::default()).unwrap();
        let source_def = TableDef {
            name: "Source".to_string(),
            kind: TableKind::Child {
                director_table: "Object".to_string(),
                foreign_key_column: "objectId".to_string(),
                ra_column: None,
                decl_column: None,
            },
            columns: TableDef::columns_of(&sources.schema),
            partitioning: Some(Partitioning {
                overlap_deg: 0.0,
                ..partitioning
            }),
            scan_rating: 25,
        };
        load_table_in_memory(&db, "lsst", source_def, &sources, &LoadOptions::default()).unwrap();
        let engine = QueryEngine::new(
            Database::open(&root).unwrap(),
            EngineOptions {
                default_database: Some("lsst".to_string()),
                ..EngineOptions::default()
            },
        );
        let scan = skyscan_engine::scan::EngineConfig {
            interactive_max_chunks: 1,
            ..skyscan_engine::scan::EngineConfig::default()
        };
        let convoy_engine = QueryEngine::new(
            Database::open(&root).unwrap(),
            EngineOptions {
                default_database: Some("lsst".to_string()),
                scan,
                ..EngineOptions::default()
            },
        );
        Fixture {
            engine,
            convoy_engine,
            objects,
            sources,
        }
    })
}

fn f64s<'a>(table: &'a Table, name: &str) -> &'a [f64] {
    table.f64_column(name).unwrap()
}

fn i64s<'a>(table: &'a Table, name: &str) -> &'a [i64] {
    match table.column(name) {
        Some(ColumnData::I64(c)) => &c.values,
        _ => panic!("no i64 column {name}"),
    }
}

fn f32_opt(table: &Table, name: &str, row: usize) -> Option<f32> {
    match table.column(name) {
        Some(ColumnData::F32(c)) => c.get(row),
        _ => panic!("no f32 column {name}"),
    }
}

fn ints_of(result: &skyscan_engine::query::QueryResult, column: usize) -> Vec<i64> {
    result
        .column_values(column)
        .into_iter()
        .map(|v| v.to_i64().unwrap())
        .collect()
}

#[test]
fn filtered_counts_match_a_row_by_row_count() {
    let f = fixture();
    for (band, threshold) in [
        ("r", 0.0),
        ("g", 500.0),
        ("u", 2_000.0),
        ("z", -50.0),
        ("i", 1e6),
    ] {
        let column = format!("{band}_psfFlux");
        let expected = (0..f.objects.rows())
            .filter(|&row| {
                f32_opt(&f.objects, &column, row).is_some_and(|v| f64::from(v) > threshold)
            })
            .count() as i64;
        let sql = format!("SELECT COUNT(*) FROM Object WHERE {column} > {threshold}");
        let result = f.engine.query(&sql).unwrap();
        assert_eq!(ints_of(&result, 0), vec![expected], "{sql}");
        // The same as an aggregate over a projection.
        let sql = format!(
            "SELECT COUNT({column}), SUM(nVisits) FROM Object WHERE {column} > {threshold} AND nVisits >= 0"
        );
        let result = f.engine.query(&sql).unwrap();
        let rows = result.to_rows();
        assert_eq!(rows[0][0].to_i64(), Some(expected), "{sql}");
    }
}

#[test]
fn cone_searches_match_brute_force() {
    let f = fixture();
    let (ra, decl, ids) = (
        f64s(&f.objects, "ra"),
        f64s(&f.objects, "decl"),
        i64s(&f.objects, "objectId"),
    );
    for (center_ra, center_decl, radius) in [
        (0.0, 1.0, 0.1),
        (359.7, 0.6, 0.25),
        (0.4, 1.5, 1.0 / 60.0),
        (0.0, 1.0, 3.0),
    ] {
        let circle = skyscan_sky::Circle::new(center_ra, center_decl, radius).unwrap();
        let expected: BTreeSet<i64> = (0..ra.len())
            .filter(|&row| circle.contains(ra[row], decl[row]))
            .map(|row| ids[row])
            .collect();
        let sql = format!(
            "SELECT objectId FROM Object WHERE qserv_areaspec_circle({center_ra}, {center_decl}, {radius})"
        );
        let got: BTreeSet<i64> = ints_of(&f.engine.query(&sql).unwrap(), 0)
            .into_iter()
            .collect();
        assert_eq!(got, expected, "{sql}");
        // The same cone written as an angular-separation condition.
        let sql = format!(
            "SELECT objectId FROM Object WHERE scisql_angSep(ra, decl, {center_ra}, {center_decl}) <= {radius}"
        );
        let by_distance: BTreeSet<i64> = ints_of(&f.engine.query(&sql).unwrap(), 0)
            .into_iter()
            .collect();
        let expected: BTreeSet<i64> = (0..ra.len())
            .filter(|&row| {
                skyscan_sky::ang_sep_deg(ra[row], decl[row], center_ra, center_decl)
                    .is_some_and(|d| d <= radius)
            })
            .map(|row| ids[row])
            .collect();
        assert_eq!(by_distance, expected, "{sql}");
    }
}

#[test]
fn near_neighbour_pairs_match_brute_force() {
    let f = fixture();
    let (ra, decl, ids) = (
        f64s(&f.objects, "ra"),
        f64s(&f.objects, "decl"),
        i64s(&f.objects, "objectId"),
    );
    // A box across RA 0; partners may lie outside it (they come from overlap rows).
    let (lon_min, lon_max, lat_min, lat_max) = (359.8, 0.2, 0.8, 1.2);
    let in_box = |row: usize| {
        (ra[row] >= lon_min || ra[row] <= lon_max) && decl[row] >= lat_min && decl[row] <= lat_max
    };
    let radius = 1.0 / 60.0;
    let mut expected: BTreeSet<(i64, i64)> = BTreeSet::new();
    let firsts: Vec<usize> = (0..ra.len()).filter(|&r| in_box(r)).collect();
    for &a in &firsts {
        for b in 0..ra.len() {
            if a != b
                && in_box(b)
                && skyscan_sky::ang_sep_deg(ra[a], decl[a], ra[b], decl[b])
                    .is_some_and(|d| d < radius)
            {
                expected.insert((ids[a], ids[b]));
            }
        }
    }
    assert!(
        expected.len() > 100,
        "the fixture should have pairs: {}",
        expected.len()
    );
    let sql = format!(
        "SELECT o1.objectId, o2.objectId FROM Object o1, Object o2 \
         WHERE qserv_areaspec_box({lon_min}, {lat_min}, {lon_max}, {lat_max}) \
         AND scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < {radius} AND o1.objectId <> o2.objectId"
    );
    let result = f.engine.query(&sql).unwrap();
    let got: Vec<(i64, i64)> = ints_of(&result, 0)
        .into_iter()
        .zip(ints_of(&result, 1))
        .collect();
    let got_set: BTreeSet<(i64, i64)> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "each pair exactly once");
    assert_eq!(got_set, expected);
    // COUNT(*) only: the join counts its pairs without producing them.
    let area = format!("qserv_areaspec_box({lon_min}, {lat_min}, {lon_max}, {lat_max})");
    let count = |sql: String| ints_of(&f.engine.query(&sql).unwrap(), 0)[0];
    let near = format!("scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < {radius}");
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM Object o1, Object o2 WHERE {area} AND {near} AND o1.objectId <> o2.objectId"
        )),
        expected.len() as i64
    );
    // A condition across both tables that no join edge enforces: counted
    // on joined rows.
    let ordered = expected.iter().filter(|(a, b)| a < b).count() as i64;
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM Object o1, Object o2 WHERE {area} AND {near} AND o1.objectId < o2.objectId"
        )),
        ordered
    );
    // Without excluding the same row, each row pairs with itself too.
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM Object o1, Object o2 WHERE {area} AND {near}"
        )),
        expected.len() as i64 + firsts.len() as i64
    );
    // A radius above the overlap is refused, saying why.
    let err = f
        .engine
        .query("SELECT o1.objectId FROM Object o1, Object o2 WHERE scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < 0.5")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("overlap"), "{err}");
}

#[test]
fn object_source_joins_and_lookups_match() {
    let f = fixture();
    let object_ids = i64s(&f.objects, "objectId");
    let source_object = i64s(&f.sources, "objectId");
    let mut per_object: BTreeMap<i64, i64> = BTreeMap::new();
    for &id in source_object {
        *per_object.entry(id).or_default() += 1;
    }
    let picks: Vec<i64> = object_ids.iter().step_by(997).copied().take(12).collect();
    let list = picks
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    // Director-index lookup on the child table, grouped.
    let sql = format!(
        "SELECT objectId, COUNT(*) FROM Source WHERE objectId IN ({list}) GROUP BY objectId"
    );
    let result = f.engine.query(&sql).unwrap();
    let got: BTreeMap<i64, i64> = ints_of(&result, 0)
        .into_iter()
        .zip(ints_of(&result, 1))
        .collect();
    let expected: BTreeMap<i64, i64> = picks
        .iter()
        .filter_map(|id| per_object.get(id).map(|n| (*id, *n)))
        .collect();
    assert_eq!(got, expected, "{sql}");
    assert!(
        result.stats.chunks_total <= picks.len() as u64,
        "the director index pruned chunks"
    );
    // The join, chunk-local on the director key.
    let sql = format!(
        "SELECT o.objectId, COUNT(s.sourceId) FROM Object o JOIN Source s ON o.objectId = s.objectId \
         WHERE o.objectId IN ({list}) GROUP BY o.objectId"
    );
    let result = f.engine.query(&sql).unwrap();
    let got: BTreeMap<i64, i64> = ints_of(&result, 0)
        .into_iter()
        .zip(ints_of(&result, 1))
        .collect();
    assert_eq!(got, expected, "{sql}");
    // A full join with a cut on the objects (the semi-join filters the
    // sources while they are buffered), both ways round.
    let object_decl = f64s(&f.objects, "decl");
    let cut: BTreeSet<i64> = object_ids
        .iter()
        .zip(object_decl)
        .filter(|&(_, &d)| d < 0.6)
        .map(|(&id, _)| id)
        .collect();
    let expected_joined = source_object.iter().filter(|id| cut.contains(id)).count() as i64;
    assert!(expected_joined > 100 && (expected_joined as usize) < source_object.len());
    for sql in [
        "SELECT COUNT(*), COUNT(DISTINCT o.objectId) FROM Object o JOIN Source s ON o.objectId = s.objectId WHERE o.decl < 0.6",
        "SELECT COUNT(*), COUNT(DISTINCT o.objectId) FROM Source s JOIN Object o ON s.objectId = o.objectId WHERE o.decl < 0.6",
    ] {
        let result = f.engine.query(sql).unwrap();
        assert_eq!(ints_of(&result, 0), vec![expected_joined], "{sql}");
        let with_sources = cut.iter().filter(|id| per_object.contains_key(id)).count() as i64;
        assert_eq!(ints_of(&result, 1), vec![with_sources], "{sql}");
    }
    // One object by id.
    let id = picks[3];
    let result = f
        .engine
        .query(&format!(
            "SELECT objectId, ra FROM Object WHERE objectId = {id}"
        ))
        .unwrap();
    assert_eq!(ints_of(&result, 0), vec![id]);
    assert_eq!(result.stats.chunks_total, 1);
    // A join that is not chunk-local is refused.
    let err = f
        .engine
        .query("SELECT COUNT(*) FROM Object o, Source s WHERE o.ra > s.ra")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn group_by_order_by_and_limits_match() {
    let f = fixture();
    let decl = f64s(&f.objects, "decl");
    let mut histogram: BTreeMap<i64, i64> = BTreeMap::new();
    for &d in decl {
        *histogram.entry((d * 10.0).floor() as i64).or_default() += 1;
    }
    let result = f
        .engine
        .query("SELECT FLOOR(decl * 10) AS bin, COUNT(*) AS n FROM Object GROUP BY bin ORDER BY bin DESC")
        .unwrap();
    let bins: Vec<i64> = result
        .column_values(0)
        .iter()
        .map(|v| v.to_f64().unwrap() as i64)
        .collect();
    let counts = ints_of(&result, 1);
    let expected: Vec<(i64, i64)> = histogram.iter().rev().map(|(b, n)| (*b, *n)).collect();
    assert_eq!(bins.into_iter().zip(counts).collect::<Vec<_>>(), expected);
    // HAVING on an alias, LIMIT with OFFSET.
    let result = f
        .engine
        .query("SELECT FLOOR(decl * 10) AS bin, COUNT(*) AS n FROM Object GROUP BY bin HAVING n > 0 ORDER BY n DESC, bin LIMIT 2, 3")
        .unwrap();
    let mut by_count: Vec<(i64, i64)> = histogram.iter().map(|(b, n)| (*b, *n)).collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let expected_counts: Vec<i64> = by_count.iter().skip(2).take(3).map(|(_, n)| *n).collect();
    assert_eq!(ints_of(&result, 1), expected_counts);
    // Top-k on a nullable float: the k largest, NULLs last in DESC.
    let ids = i64s(&f.objects, "objectId");
    let mut flux: Vec<(f32, i64)> = (0..f.objects.rows())
        .filter_map(|row| f32_opt(&f.objects, "u_psfFlux", row).map(|v| (v, ids[row])))
        .collect();
    flux.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let result = f
        .engine
        .query("SELECT objectId, u_psfFlux FROM Object ORDER BY u_psfFlux DESC, objectId LIMIT 7")
        .unwrap();
    assert_eq!(
        ints_of(&result, 0),
        flux.iter().take(7).map(|p| p.1).collect::<Vec<_>>()
    );
    // An absurd LIMIT is fine; a result over the configured limit is an error, not an allocation.
    let result = f
        .engine
        .query("SELECT objectId FROM Object WHERE nVisits < 0 LIMIT 18446744073709551615");
    assert!(result.is_ok() || result.unwrap_err().kind == ErrorKind::InvalidArgument);
}

/// ORDER BY a column LIMIT k without conditions reads only the row groups
/// whose best value can be among a chunk's best k: answers equal the
/// generated rows sorted, for floats with NULLs (first in ASC, last in
/// DESC), integers, OFFSET and k beyond the row-group count.
#[test]
fn top_k_by_block_statistics_matches_the_rows() {
    let f = fixture();
    let ids = i64s(&f.objects, "objectId");
    let visits: Vec<i64> = match f.objects.column("nVisits") {
        Some(ColumnData::I32(c)) => c.values.iter().map(|&v| i64::from(v)).collect(),
        _ => panic!("nVisits"),
    };
    // MySQL order: NULL is the smallest value.
    let flux: Vec<Option<f32>> = (0..f.objects.rows())
        .map(|row| f32_opt(&f.objects, "u_psfFlux", row))
        .collect();
    let by_flux = |descending: bool| {
        let mut rows: Vec<usize> = (0..ids.len()).collect();
        rows.sort_by(|&a, &b| {
            let key = |r: usize| flux[r].map(f64::from);
            let natural = match (key(a), key(b)) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => x.total_cmp(&y),
            };
            (if descending {
                natural.reverse()
            } else {
                natural
            })
            .then(ids[a].cmp(&ids[b]))
        });
        rows
    };
    for engine in [&f.engine, &f.convoy_engine] {
        for (descending, limit, offset) in
            [(true, 7, 0), (false, 12, 3), (true, 500, 0), (false, 1, 0)]
        {
            let sql = format!(
                "SELECT objectId FROM Object ORDER BY u_psfFlux {}, objectId LIMIT {offset}, {limit}",
                if descending { "DESC" } else { "ASC" }
            );
            let expected: Vec<i64> = by_flux(descending)
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|r| ids[r])
                .collect();
            assert_eq!(ints_of(&engine.query(&sql).unwrap(), 0), expected, "{sql}");
        }
        let mut by_visits: Vec<usize> = (0..ids.len()).collect();
        by_visits.sort_by(|&a, &b| visits[b].cmp(&visits[a]).then(ids[a].cmp(&ids[b])));
        let result = engine
            .query("SELECT objectId, nVisits FROM Object ORDER BY nVisits DESC, objectId LIMIT 9")
            .unwrap();
        assert_eq!(
            ints_of(&result, 0),
            by_visits
                .iter()
                .take(9)
                .map(|&r| ids[r])
                .collect::<Vec<_>>()
        );
    }
}

/// GROUP BY the director key: each chunk finishes its own groups (HAVING,
/// ORDER BY … LIMIT per chunk). Checked against groups computed from the
/// generated rows, and against the same grouping written as an expression
/// (`objectId + 0`), which takes the hash-merge path.
#[test]
fn chunk_local_groups_match_the_rows_and_the_merged_path() {
    let f = fixture();
    let ids = i64s(&f.sources, "objectId");
    let mut per_object: BTreeMap<i64, i64> = BTreeMap::new();
    for &id in ids {
        *per_object.entry(id).or_default() += 1;
    }
    let threshold = 7;
    let expected: Vec<(i64, i64)> = per_object
        .iter()
        .filter(|&(_, &n)| n >= threshold)
        .map(|(&id, &n)| (id, n))
        .collect();
    assert!(
        expected.len() > 10,
        "the fixture has groups over the threshold"
    );
    for engine in [&f.engine, &f.convoy_engine] {
        let result = engine
            .query(&format!(
                "SELECT objectId, COUNT(*) AS n FROM Source GROUP BY objectId \
                 HAVING COUNT(*) >= {threshold} ORDER BY objectId"
            ))
            .unwrap();
        let got: Vec<(i64, i64)> = ints_of(&result, 0)
            .into_iter()
            .zip(ints_of(&result, 1))
            .collect();
        assert_eq!(got, expected);
        // Top-k of the groups, with OFFSET: per-chunk top-k then the final sort.
        let mut by_count = per_object
            .iter()
            .map(|(&id, &n)| (id, n))
            .collect::<Vec<_>>();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let result = engine
            .query("SELECT objectId, COUNT(*) AS n FROM Source GROUP BY objectId ORDER BY n DESC, objectId LIMIT 3, 5")
            .unwrap();
        assert_eq!(
            ints_of(&result, 0),
            by_count
                .iter()
                .skip(3)
                .take(5)
                .map(|p| p.0)
                .collect::<Vec<_>>()
        );
        for (local, merged) in [
            (
                "SELECT objectId, COUNT(*), AVG(psfFlux), MIN(midpointMjdTai), MAX(ccdVisitId) FROM Source GROUP BY objectId",
                "SELECT objectId + 0, COUNT(*), AVG(psfFlux), MIN(midpointMjdTai), MAX(ccdVisitId) FROM Source GROUP BY objectId + 0",
            ),
            (
                "SELECT objectId, SUM(psfFlux) AS s FROM Source WHERE psfFlux > 0 GROUP BY objectId HAVING s > 1000 ORDER BY s DESC LIMIT 20",
                "SELECT objectId + 0, SUM(psfFlux) AS s FROM Source WHERE psfFlux > 0 GROUP BY objectId + 0 HAVING s > 1000 ORDER BY s DESC LIMIT 20",
            ),
            (
                "SELECT objectId, COUNT(*) FROM Object GROUP BY objectId HAVING COUNT(*) > 1",
                "SELECT objectId + 0, COUNT(*) FROM Object GROUP BY objectId + 0 HAVING COUNT(*) > 1",
            ),
        ] {
            let a = engine.query(local).unwrap();
            let b = engine.query(merged).unwrap();
            assert_eq!(sorted_rows(&a), sorted_rows(&b), "{local}");
        }
    }
}

/// `subChunkId` is per row group: a query reading it gets one row group per
/// batch (no coalescing), and every row its own sub-chunk, recomputed here
/// with the chunker.
#[test]
fn sub_chunk_ids_match_the_chunker() {
    let f = fixture();
    let chunker = Partitioning::qserv_default().chunker().unwrap();
    let (ra, decl) = (f64s(&f.objects, "ra"), f64s(&f.objects, "decl"));
    let mut expected: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for (&r, &d) in ra.iter().zip(decl) {
        let at = chunker.locate(r, d).unwrap();
        *expected
            .entry((i64::from(at.chunk_id), i64::from(at.sub_chunk_id)))
            .or_default() += 1;
    }
    for engine in [&f.engine, &f.convoy_engine] {
        let result = engine
            .query("SELECT chunkId, subChunkId, COUNT(*) FROM Object GROUP BY chunkId, subChunkId")
            .unwrap();
        let got: BTreeMap<(i64, i64), i64> = ints_of(&result, 0)
            .into_iter()
            .zip(ints_of(&result, 1))
            .zip(ints_of(&result, 2))
            .collect();
        assert_eq!(got, expected);
        // In a filter too.
        let (&(chunk, sub), &n) = expected.iter().max_by_key(|&(_, n)| *n).unwrap();
        let result = engine
            .query(&format!(
                "SELECT COUNT(*) FROM Object WHERE chunkId = {chunk} AND subChunkId = {sub}"
            ))
            .unwrap();
        assert_eq!(ints_of(&result, 0), vec![n]);
    }
}

#[test]
fn subqueries_and_expressions_beyond_qserv() {
    let f = fixture();
    let decl = f64s(&f.objects, "decl");
    let max_decl = decl.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let result = f
        .engine
        .query("SELECT objectId FROM Object WHERE decl = (SELECT MAX(decl) FROM Object)")
        .unwrap();
    let row = decl.iter().position(|&d| d == max_decl).unwrap();
    assert_eq!(ints_of(&result, 0), vec![i64s(&f.objects, "objectId")[row]]);
    // IN (SELECT …) across tables, and a derived table.
    let sql = "SELECT COUNT(*) FROM (SELECT objectId, COUNT(*) AS n FROM Source GROUP BY objectId) AS per WHERE n >= 5";
    let mut per_object: BTreeMap<i64, i64> = BTreeMap::new();
    for &id in i64s(&f.sources, "objectId") {
        *per_object.entry(id).or_default() += 1;
    }
    let expected = per_object.values().filter(|&&n| n >= 5).count() as i64;
    assert_eq!(ints_of(&f.engine.query(sql).unwrap(), 0), vec![expected]);
    // SELECT without FROM, and MySQL arithmetic.
    let rows = f
        .engine
        .query("SELECT 1 + 1, 7 DIV 2, 7 % 3, 1 / 0, 5 <=> NULL")
        .unwrap()
        .to_rows();
    assert_eq!(
        rows,
        vec![vec![
            Scalar::Int(2),
            Scalar::Int(3),
            Scalar::Int(1),
            Scalar::Null,
            Scalar::Bool(false)
        ]]
    );
    // Errors say where.
    let err = f
        .engine
        .query("SELECT objectId FROM Object WHERE\n  nosuch > 1")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Name);
    assert_eq!(
        err.position.map(|p| (p.line, p.column)),
        Some((2, 3)),
        "{err}"
    );
    let err = f.engine.query("SELECT FROM WHERE").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert!(err.position.is_some());
    let err = f.engine.query("DELETE FROM Object").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    let err = f
        .engine
        .query("SELECT objectId FROM Object WHERE objectId IN (SELECT o.objectId FROM Object AS x)")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Name);
}

/// Answers as sorted rows, for comparing execution paths.
fn sorted_rows(result: &skyscan_engine::query::QueryResult) -> Vec<String> {
    let mut rows: Vec<String> = result.to_rows().iter().map(|r| format!("{r:?}")).collect();
    rows.sort();
    rows
}

const PATH_QUERIES: [&str; 11] = [
    "SELECT COUNT(*), SUM(nVisits), MIN(ra), MAX(decl) FROM Object WHERE g_psfFlux > 100",
    "SELECT objectId, r_psfFlux FROM Object WHERE extendedness > 0.5 AND decl > 1.2",
    "SELECT FLOOR(decl * 20) AS b, COUNT(*), AVG(u_psfFlux) FROM Object GROUP BY b",
    "SELECT objectId FROM Object ORDER BY z_psfFlux DESC, objectId LIMIT 25",
    "SELECT o.objectId, COUNT(*) FROM Object o JOIN Source s USING (objectId) WHERE o.decl < 0.3 GROUP BY o.objectId",
    "SELECT COUNT(*) FROM Object o1, Object o2 WHERE scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < 0.005 AND o1.objectId < o2.objectId",
    "SELECT chunkId, COUNT(*) FROM Source GROUP BY chunkId",
    "SELECT refBand, COUNT(DISTINCT nVisits) FROM Object GROUP BY refBand",
    // Some sub-chunks of some chunks: runs of row groups split where plans differ.
    "SELECT COUNT(*), SUM(nVisits), MAX(r_psfFlux) FROM Object WHERE qserv_areaspec_box(359.5, 0.2, 0.6, 1.1)",
    "SELECT objectId, decl FROM Object WHERE qserv_areaspec_circle(0.3, 0.8, 0.25) AND g_psfFlux > 50",
    "SELECT chunkId, subChunkId, COUNT(*) FROM Object GROUP BY chunkId, subChunkId",
];

#[test]
fn convoys_plain_path_and_interactive_give_the_same_answers() {
    let f = fixture();
    for sql in PATH_QUERIES {
        let default = sorted_rows(&f.engine.query(sql).unwrap());
        let convoy = sorted_rows(&f.convoy_engine.query(sql).unwrap());
        assert_eq!(default, convoy, "convoy path: {sql}");
        let options = skyscan_engine::query::ExecOptions {
            threads: 1,
            path: skyscan_engine::query::ScanPath::Plain,
            ..skyscan_engine::query::ExecOptions::default()
        };
        let mut sink = skyscan_engine::query::CollectSink::new(u64::MAX);
        f.engine.query_with(sql, &options, &mut sink).unwrap();
        assert_eq!(default, sorted_rows(&sink.result), "plain path: {sql}");
        assert!(!default.is_empty(), "{sql}");
    }
    // Bytes read are reported on the convoys too (mapped or streamed): more
    // than nothing, at most the chunk files of the two tables.
    let catalog = f.engine.database().catalog();
    let on_disk: u64 = ["Object", "Source"]
        .iter()
        .map(|t| catalog.table("lsst", t).map(|entry| entry.bytes).unwrap())
        .sum();
    let mut sink = skyscan_engine::query::CollectSink::new(u64::MAX);
    let stats = f
        .convoy_engine
        .query_with(
            "SELECT COUNT(*), AVG(r_psfFlux) FROM Object WHERE g_psfFlux > 100",
            &skyscan_engine::query::ExecOptions::default(),
            &mut sink,
        )
        .unwrap();
    assert!(
        stats.bytes_read > 0 && stats.bytes_read <= on_disk,
        "{stats:?}, {on_disk} bytes on disk"
    );
}

#[test]
fn concurrent_queries_share_scans_and_stay_correct() {
    let f = fixture();
    let expected: Vec<Vec<String>> = PATH_QUERIES
        .iter()
        .map(|sql| sorted_rows(&f.engine.query(sql).unwrap()))
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let sql = PATH_QUERIES[i % PATH_QUERIES.len()];
                let engine = &f.convoy_engine;
                scope.spawn(move || {
                    (
                        i % PATH_QUERIES.len(),
                        sorted_rows(&engine.query(sql).unwrap()),
                    )
                })
            })
            .collect();
        for handle in handles {
            let (index, rows) = handle.join().unwrap();
            assert_eq!(rows, expected[index], "{}", PATH_QUERIES[index]);
        }
    });
}

#[test]
fn a_cancelled_query_stops_with_a_cancelled_error() {
    let f = fixture();
    let options = skyscan_engine::query::ExecOptions::default();
    options.cancel.cancel();
    let mut sink = skyscan_engine::query::CollectSink::new(u64::MAX);
    let err = f
        .convoy_engine
        .query_with(
            "SELECT COUNT(*) FROM Object o JOIN Source s USING (objectId)",
            &options,
            &mut sink,
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
    // The engine goes on serving.
    assert!(f.convoy_engine.query("SELECT COUNT(*) FROM Object").is_ok());
}
