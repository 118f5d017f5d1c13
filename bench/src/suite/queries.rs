//! The query pools, modelled on Qserv's performance tests (LDM-552): low
//! volume LV1–LV4 and high volume HV1–HV5, each written for skyscan (Qserv's
//! dialect) and for every peer that can answer it. Peer SQL names the tables
//! `{Object}` and `{Source}`; each peer substitutes its own names.
//!
//! Constants are chosen so that every engine computes the same answer:
//! thresholds are exact in f32, colour cuts are flux ratios (products of
//! doubles, correctly rounded everywhere) rather than logarithms, histogram
//! bins are `FLOOR(decl * 2)` (exact), and cones and pairs are decided by
//! the haversine formula (sciSQL's) or Q3C's distance, whose rounding
//! differs only for points within ~1e-15° of the boundary.

use std::collections::BTreeMap;

use super::data::Dataset;

/// The peers, by the names `bench/peers/suite_peers.py` knows.
pub const PEERS: [&str; 4] = ["duckdb", "duckdb-parquet", "chdb", "postgres"];

/// The near-neighbour radius: 1′, within the Object table's overlap (0.01667°).
pub const NN_RADIUS_DEG: f64 = 1.0 / 60.0;

/// One query class of the pool.
#[derive(Debug, Clone, Copy)]
pub struct Class {
    /// `LV1` … `HV5`.
    pub name: &'static str,
    /// What it asks.
    pub what: &'static str,
    /// Low volume (interactive) or high volume (scan).
    pub low_volume: bool,
}

/// Every class, in report order.
pub const CLASSES: [Class; 9] = [
    Class {
        name: "LV1",
        what: "object by id",
        low_volume: true,
    },
    Class {
        name: "LV2",
        what: "light curve: Source by objectId",
        low_volume: true,
    },
    Class {
        name: "LV3",
        what: "small cone, 1′–10′",
        low_volume: true,
    },
    Class {
        name: "LV4",
        what: "object and its sources (Object ⋈ Source by id)",
        low_volume: true,
    },
    Class {
        name: "HV1",
        what: "full Object scan, colour cuts (case01 2001_fullObjectScan)",
        low_volume: false,
    },
    Class {
        name: "HV2",
        what: "full Object scan, histogram + 5 aggregates",
        low_volume: false,
    },
    Class {
        name: "HV3",
        what: "near-neighbour pairs < 1′ over an area",
        low_volume: false,
    },
    Class {
        name: "HV4",
        what: "Object ⋈ Source with a cut, per band",
        low_volume: false,
    },
    Class {
        name: "HV5",
        what: "GROUP BY objectId over Source, HAVING",
        low_volume: false,
    },
];

/// One query: skyscan's SQL and each peer's.
#[derive(Debug, Clone)]
pub struct Question {
    /// The class name.
    pub class: &'static str,
    /// Unique id, `class#instance`.
    pub id: String,
    /// skyscan's SQL (Qserv dialect).
    pub skyscan: String,
    /// Peer name → its SQL; a peer absent here does not answer this class.
    pub peers: BTreeMap<&'static str, String>,
    /// Rows compare in order (ORDER BY) rather than as a multiset.
    pub ordered: bool,
    /// `Table.column`s a full scan of this query reads (empty: not a full
    /// scan): their decoded bytes at memory bandwidth are its floor.
    pub scan_columns: Vec<&'static str>,
}

fn all_peers(sql: &str) -> BTreeMap<&'static str, String> {
    PEERS.iter().map(|&p| (p, sql.to_string())).collect()
}

/// The haversine separation in degrees, in SQL that DuckDB, ClickHouse
/// and PostgreSQL all evaluate (sciSQL's formula).
fn haversine_sql(ra1: &str, dec1: &str, ra2: &str, dec2: &str) -> String {
    format!(
        "degrees(2 * asin(sqrt(pow(sin(radians({dec2} - {dec1}) / 2), 2) + \
         cos(radians({dec1})) * cos(radians({dec2})) * pow(sin(radians({ra2} - {ra1}) / 2), 2))))"
    )
}

/// An RA/Dec box the size of `area_deg2` at the footprint's centre (inside it).
pub fn nn_box(data: &Dataset, area_deg2: f64) -> (f64, f64, f64, f64) {
    let f = data.footprint;
    let dec_c = (f.dec_min_deg + f.dec_max_deg) / 2.0;
    let ra_c = (f.ra_min_deg + f.ra_max_deg) / 2.0;
    let side = area_deg2.sqrt().min(f.dec_max_deg - f.dec_min_deg);
    let width = (side / dec_c.to_radians().cos()).min(f.ra_max_deg - f.ra_min_deg);
    // Rounded to 1e-6° so the SQL texts carry the same constants.
    let round = |x: f64| (x * 1e6).round() / 1e6;
    (
        round(ra_c - width / 2.0),
        round(dec_c - side / 2.0),
        round(ra_c + width / 2.0),
        round(dec_c + side / 2.0),
    )
}

/// The LV queries: `count` instances of each LV class.
pub fn low_volume(data: &Dataset, count: usize) -> Vec<Question> {
    let mut out = Vec::new();
    let n = count.min(data.sample_ids.len()).max(1);
    for index in 0..n {
        let id = data.sample_ids[index % data.sample_ids.len()];
        let lv1 = format!(
            "SELECT objectId, ra, decl, r_psfFlux, extendedness FROM {{Object}} WHERE objectId = {id}"
        );
        out.push(Question {
            class: "LV1",
            id: format!("LV1#{index}"),
            skyscan: lv1.replace("{Object}", "Object"),
            peers: all_peers(&lv1),
            ordered: false,
            scan_columns: Vec::new(),
        });
        let lv2 = format!(
            "SELECT sourceId, midpointMjdTai, band, psfFlux FROM {{Source}} WHERE objectId = {id}"
        );
        out.push(Question {
            class: "LV2",
            id: format!("LV2#{index}"),
            skyscan: lv2.replace("{Source}", "Source"),
            peers: all_peers(&lv2),
            ordered: false,
            scan_columns: Vec::new(),
        });
        let lv4 = format!(
            "SELECT o.objectId, o.ra, o.decl, s.sourceId, s.psfFlux FROM {{Object}} o JOIN {{Source}} s \
             ON o.objectId = s.objectId WHERE o.objectId = {id}"
        );
        out.push(Question {
            class: "LV4",
            id: format!("LV4#{index}"),
            skyscan: lv4
                .replace("{Object}", "Object")
                .replace("{Source}", "Source"),
            peers: all_peers(&lv4),
            ordered: false,
            scan_columns: Vec::new(),
        });
        // Cones from 1′ to 10′.
        let (ra, decl) = data.sample_positions[index % data.sample_positions.len()];
        let radius = (1.0 + 9.0 * index as f64 / (n.max(2) - 1) as f64) / 60.0;
        let radius = (radius * 1e9).round() / 1e9;
        let dra = radius / decl.to_radians().cos() * 1.000001 + 1e-9;
        let bbox = format!(
            "decl BETWEEN {} AND {} AND ra BETWEEN {} AND {}",
            decl - radius * 1.000001,
            decl + radius * 1.000001,
            ra - dra,
            ra + dra
        );
        let scan_cone = format!(
            "SELECT objectId, ra, decl FROM {{Object}} WHERE {bbox} AND {} <= {radius}",
            haversine_sql(&ra.to_string(), &decl.to_string(), "ra", "decl")
        );
        let mut peers = all_peers(&scan_cone);
        peers.insert(
            "postgres",
            format!(
                "SELECT objectId, ra, decl FROM {{Object}} WHERE q3c_radial_query(ra, decl, {ra}, {decl}, {radius})"
            ),
        );
        out.push(Question {
            class: "LV3",
            id: format!("LV3#{index}"),
            skyscan: format!(
                "SELECT objectId, ra, decl FROM Object WHERE qserv_areaspec_circle({ra}, {decl}, {radius})"
            ),
            peers,
            ordered: false,
        scan_columns: Vec::new(),
        });
    }
    out
}

/// HV1's colour cuts in flux ratios: g − r > 0.7 (g < 10^(−0.28) r),
/// r − i < 0.3 (i < 10^(0.12) r), i − z < 0.8, bright in r, point-like.
const HV1_WHERE: &str = "r_psfFlux > 3000 AND extendedness < 0.5 \
     AND g_psfFlux < 5.248074602497726e-1 * r_psfFlux \
     AND i_psfFlux < 1.318256738556407 * r_psfFlux \
     AND z_psfFlux < 2.0892961308540396 * i_psfFlux";

/// The HV queries; `nn_area_deg2` is HV3's area.
pub fn high_volume(data: &Dataset, nn_area_deg2: f64) -> Vec<Question> {
    let mut out = Vec::new();
    let hv1 = format!("SELECT objectId, ra, decl, r_psfFlux FROM {{Object}} WHERE {HV1_WHERE}");
    let mut peers = all_peers(&hv1);
    peers.remove("postgres");
    out.push(Question {
        class: "HV1",
        id: "HV1".to_string(),
        skyscan: hv1.replace("{Object}", "Object"),
        peers,
        ordered: false,
        scan_columns: vec![
            "Object.objectId",
            "Object.ra",
            "Object.decl",
            "Object.r_psfFlux",
            "Object.extendedness",
            "Object.g_psfFlux",
            "Object.i_psfFlux",
            "Object.z_psfFlux",
        ],
    });

    let hv2 = "SELECT FLOOR(decl * 2) AS bin, COUNT(*) AS n, AVG(r_psfFlux) AS r, MIN(g_psfFlux) AS gmin, \
               MAX(i_psfFlux) AS imax, SUM(nVisits) AS visits FROM {Object} WHERE r_psfFlux > 0 \
               GROUP BY bin ORDER BY bin";
    let mut peers = all_peers(hv2);
    peers.remove("postgres");
    out.push(Question {
        class: "HV2",
        id: "HV2".to_string(),
        skyscan: hv2.replace("{Object}", "Object"),
        peers,
        ordered: true,
        scan_columns: vec![
            "Object.decl",
            "Object.r_psfFlux",
            "Object.g_psfFlux",
            "Object.i_psfFlux",
            "Object.nVisits",
        ],
    });

    let (ra1, dec1, ra2, dec2) = nn_box(data, nn_area_deg2);
    let r = NN_RADIUS_DEG;
    // DuckDB at its best: a grid-cell hash join (cells of side >= r; each
    // point against the 3x3 cells around it), then the haversine.
    let cell_ra = r
        / (dec1.abs().max(dec2.abs()) + r)
            .min(89.0)
            .to_radians()
            .cos();
    let grid = format!(
        "WITH p AS (SELECT objectId, ra, decl, CAST(floor(ra / {cell_ra}) AS BIGINT) AS cx, \
         CAST(floor(decl / {r}) AS BIGINT) AS cy FROM {{Object}} \
         WHERE ra BETWEEN {ra1} AND {ra2} AND decl BETWEEN {dec1} AND {dec2}), \
         n AS (SELECT objectId, ra, decl, cx + dx AS ncx, cy + dy AS ncy FROM p, \
         (VALUES (-1), (0), (1)) AS tx(dx), (VALUES (-1), (0), (1)) AS ty(dy)) \
         SELECT COUNT(*) FROM p AS a JOIN n AS b ON a.cx = b.ncx AND a.cy = b.ncy \
         WHERE a.objectId <> b.objectId AND {} < {r}",
        haversine_sql("a.ra", "a.decl", "b.ra", "b.decl")
    );
    let mut peers = BTreeMap::new();
    peers.insert("duckdb", grid.clone());
    peers.insert("duckdb-parquet", grid);
    peers.insert(
        "postgres",
        // LATERAL: with both sides' boxes in one WHERE, PostgreSQL 15
        // plans a nested loop over the two filtered scans without the Q3C
        // index (O(n²): 12 s instead of 0.2 s at 10^4 objects); per-o1
        // subqueries make it probe the index, as Q3C's documentation intends.
        format!(
            "SELECT SUM(n) FROM {{Object}} o1 CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM {{Object}} o2 \
             WHERE q3c_join(o1.ra, o1.decl, o2.ra, o2.decl, {r}) \
             AND o2.ra BETWEEN {ra1} AND {ra2} AND o2.decl BETWEEN {dec1} AND {dec2} \
             AND o1.objectId <> o2.objectId) AS c \
             WHERE o1.ra BETWEEN {ra1} AND {ra2} AND o1.decl BETWEEN {dec1} AND {dec2}"
        ),
    );
    out.push(Question {
        class: "HV3",
        id: "HV3".to_string(),
        skyscan: format!(
            "SELECT COUNT(*) FROM Object o1, Object o2 WHERE qserv_areaspec_box({ra1}, {dec1}, {ra2}, {dec2}) \
             AND scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < {r} AND o1.objectId <> o2.objectId"
        ),
        peers,
        ordered: false,
        scan_columns: Vec::new(),
    });

    let hv4 = "SELECT s.band, COUNT(*) AS n, AVG(s.psfFlux) AS flux, MAX(s.midpointMjdTai) AS last \
               FROM {Object} o JOIN {Source} s ON o.objectId = s.objectId \
               WHERE o.extendedness < 0.5 AND o.r_psfFlux > 5000 GROUP BY s.band ORDER BY s.band";
    let mut peers = all_peers(hv4);
    peers.remove("postgres");
    out.push(Question {
        class: "HV4",
        id: "HV4".to_string(),
        skyscan: hv4
            .replace("{Object}", "Object")
            .replace("{Source}", "Source"),
        peers,
        ordered: true,
        scan_columns: vec![
            "Object.objectId",
            "Object.extendedness",
            "Object.r_psfFlux",
            "Source.objectId",
            "Source.band",
            "Source.psfFlux",
            "Source.midpointMjdTai",
        ],
    });

    let hv5 = format!(
        "SELECT objectId, COUNT(*) AS n, AVG(psfFlux) AS flux, MIN(midpointMjdTai) AS first FROM {{Source}} \
         GROUP BY objectId HAVING COUNT(*) >= {} ORDER BY objectId",
        data.min_sources
    );
    let mut peers = all_peers(&hv5);
    peers.remove("postgres");
    out.push(Question {
        class: "HV5",
        id: "HV5".to_string(),
        skyscan: hv5.replace("{Source}", "Source"),
        peers,
        ordered: true,
        scan_columns: vec!["Source.objectId", "Source.psfFlux", "Source.midpointMjdTai"],
    });
    out
}
