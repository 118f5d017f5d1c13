//! `skyscan-bench query`: single queries on a generated Object table,
//! skyscan against DuckDB on its native table (`bench/peers/duckdb_queries.py`),
//! same rows, same thread counts, in one run, hot cache. Every answer is
//! checked equal between the engines before a time is printed.
//!
//! Queries: a filter with a count, a filtered aggregate, a GROUP BY
//! histogram, a top-k, and cone searches of 1′, 10′ and 1° (DuckDB with a
//! bounding-box prefilter so its zone maps prune, then the haversine).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::query::{EngineOptions, ExecOptions, QueryEngine, QueryResult};
use skyscan_engine::synth::export::write_parquet;
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_kernel::value::Scalar;

/// Options of `skyscan-bench query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Object rows (the figures use 10–20 M).
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Timed repetitions per query (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Thread counts to measure, comma-separated.
    #[arg(long, default_value = "1,2")]
    threads: String,
    /// Where the generated data is kept between runs.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Skip DuckDB.
    #[arg(long)]
    no_peer: bool,
    /// Only queries whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Objects per square degree (50,000 is the near-neighbour patch).
    #[arg(long, default_value_t = 200_000.0)]
    density: f64,
}

/// One question, in both dialects.
struct Question {
    name: &'static str,
    skyscan: String,
    duckdb: String,
    /// Compare answers as unordered rows.
    unordered: bool,
}

fn cone(name: &'static str, ra: f64, decl: f64, radius_deg: f64) -> Question {
    let cos = decl.to_radians().cos();
    let dra = radius_deg / cos;
    Question {
        name,
        skyscan: format!(
            "SELECT objectId FROM Object WHERE qserv_areaspec_circle({ra}, {decl}, {radius_deg})"
        ),
        duckdb: format!(
            "SELECT objectId FROM Object WHERE decl BETWEEN {} AND {} AND ra BETWEEN {} AND {} AND \
             degrees(2 * asin(sqrt(pow(sin(radians(decl - {decl}) / 2), 2) + cos(radians(decl)) * cos(radians({decl})) * pow(sin(radians(ra - {ra}) / 2), 2)))) <= {radius_deg}",
            decl - radius_deg,
            decl + radius_deg,
            ra - dra,
            ra + dra
        ),
        unordered: true,
    }
}

/// Pairs within `radius_deg` of each other, both in a box of `area_deg2`
/// around `center` (the whole table when `None`), counted as ordered pairs
/// of distinct objects. DuckDB at its best: a grid-cell hash join (cells of
/// side ≥ r, each point against the 3×3 cells around it) then the haversine.
fn near_neighbours(
    name: &'static str,
    center: (f64, f64),
    area_deg2: Option<f64>,
    radius_deg: f64,
) -> Question {
    let (ra, decl) = center;
    let (box_sql, box_where) = match area_deg2 {
        Some(area) => {
            let half = area.sqrt() / 2.0;
            let half_ra = half / decl.to_radians().cos();
            let (lon_min, lon_max, lat_min, lat_max) =
                (ra - half_ra, ra + half_ra, decl - half, decl + half);
            (
                format!("qserv_areaspec_box({lon_min}, {lat_min}, {lon_max}, {lat_max}) AND "),
                format!(
                    "WHERE ra BETWEEN {lon_min} AND {lon_max} AND decl BETWEEN {lat_min} AND {lat_max}"
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    // RA cells wide enough at the table's highest |decl| (the patch spans a few degrees).
    let ra_cell = radius_deg / (decl.abs() + 10.0).min(89.0).to_radians().cos();
    Question {
        name,
        skyscan: format!(
            "SELECT COUNT(*) FROM Object o1, Object o2 WHERE {box_sql}scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < {radius_deg} \
             AND o1.objectId <> o2.objectId"
        ),
        duckdb: format!(
            "WITH p AS (SELECT objectId AS id, ra, decl, floor(ra / {ra_cell})::BIGINT AS cx, floor(decl / {radius_deg})::BIGINT AS cy \
             FROM Object {box_where}), \
             n AS (SELECT id, ra, decl, cx + dx AS ncx, cy + dy AS ncy FROM p, (VALUES (-1), (0), (1)) AS tx(dx), (VALUES (-1), (0), (1)) AS ty(dy)) \
             SELECT count(*) FROM p AS a JOIN n AS b ON a.cx = b.ncx AND a.cy = b.ncy \
             WHERE a.id <> b.id AND 2 * asin(sqrt(pow(sin(radians(b.decl - a.decl) / 2), 2) \
             + cos(radians(a.decl)) * cos(radians(b.decl)) * pow(sin(radians(b.ra - a.ra) / 2), 2))) < radians({radius_deg})"
        ),
        unordered: false,
    }
}

fn questions(center: (f64, f64), density: f64) -> Vec<Question> {
    let (ra, decl) = center;
    // 1′ at 50,000 objects per deg² (the patch), scaled so that the
    // pairs per object stay the same at other densities.
    let nn_radius = (1.0 / 60.0) * (50_000.0 / density).sqrt();
    let mut nn = vec![
        near_neighbours("nn_1deg2", center, Some(1.0), nn_radius),
        near_neighbours("nn_10deg2", center, Some(10.0), nn_radius),
        near_neighbours("nn_whole_table", center, None, nn_radius),
    ];
    let mut list = vec![
        Question {
            name: "filter_count",
            skyscan: "SELECT COUNT(*) FROM Object WHERE r_psfFlux > 20000".into(),
            duckdb: "SELECT COUNT(*) FROM Object WHERE r_psfFlux > 20000".into(),
            unordered: false,
        },
        Question {
            name: "filter_aggregate",
            skyscan: "SELECT COUNT(*), AVG(g_psfFlux), MAX(r_psfFlux), SUM(i_psfFlux), MIN(z_psfFluxErr) FROM Object \
                      WHERE extendedness > 0.5 AND y_psfFlux > 1000"
                .into(),
            duckdb: "SELECT COUNT(*), AVG(g_psfFlux), MAX(r_psfFlux), SUM(i_psfFlux), MIN(z_psfFluxErr) FROM Object \
                     WHERE extendedness > 0.5 AND y_psfFlux > 1000"
                .into(),
            unordered: false,
        },
        Question {
            name: "group_by_histogram",
            skyscan: "SELECT FLOOR(decl * 10) AS bin, COUNT(*), AVG(r_psfFlux) FROM Object GROUP BY bin ORDER BY bin".into(),
            duckdb: "SELECT floor(decl * 10) AS bin, COUNT(*), AVG(r_psfFlux) FROM Object GROUP BY bin ORDER BY bin".into(),
            unordered: false,
        },
        Question {
            name: "top_k",
            skyscan: "SELECT objectId, r_psfFlux FROM Object ORDER BY r_psfFlux DESC LIMIT 10".into(),
            duckdb: "SELECT objectId, r_psfFlux FROM Object ORDER BY r_psfFlux DESC NULLS LAST LIMIT 10".into(),
            unordered: false,
        },
        cone("cone_1arcmin", ra, decl, 1.0 / 60.0),
        cone("cone_10arcmin", ra, decl, 10.0 / 60.0),
        cone("cone_1deg", ra, decl, 1.0),
    ];
    list.append(&mut nn);
    list
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The answer as rows of optional numbers/strings, for comparison.
pub(crate) fn normalized(result: &QueryResult) -> Vec<Vec<Option<String>>> {
    result
        .to_rows()
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| match v {
                    Scalar::Null => None,
                    Scalar::Bool(b) => Some(u8::from(b).to_string()),
                    Scalar::Int(i) => Some(format!("{}", i as f64)),
                    Scalar::Float(f) => Some(format!("{f}")),
                    Scalar::Utf8(s) => Some(s),
                    Scalar::Binary(b) => Some(format!("{b:?}")),
                })
                .collect()
        })
        .collect()
}

fn values_match(ours: &Option<String>, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (None, serde_json::Value::Null) => true,
        (Some(a), serde_json::Value::Number(n)) => {
            let (Ok(x), Some(y)) = (a.parse::<f64>(), n.as_f64()) else {
                return false;
            };
            // Sums of f32 in different orders: 1e-6 relative.
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-300)
        }
        (Some(a), serde_json::Value::String(s)) => a == s,
        _ => false,
    }
}

pub(crate) fn answers_match(
    ours: &[Vec<Option<String>>],
    theirs: &[serde_json::Value],
    unordered: bool,
) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!("{} rows, DuckDB {}", ours.len(), theirs.len()));
    }
    let theirs: Vec<&Vec<serde_json::Value>> = theirs.iter().filter_map(|r| r.as_array()).collect();
    let row_eq = |a: &Vec<Option<String>>, b: &Vec<serde_json::Value>| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_match(x, y))
    };
    if unordered {
        let mut ours_sorted = ours.to_vec();
        ours_sorted.sort();
        let mut keyed: Vec<(String, &Vec<serde_json::Value>)> = theirs
            .iter()
            .map(|r| {
                let key: Vec<Option<String>> = r
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::Null => None,
                        serde_json::Value::Number(n) => {
                            Some(format!("{}", n.as_f64().unwrap_or(f64::NAN)))
                        }
                        other => Some(other.to_string()),
                    })
                    .collect();
                (format!("{key:?}"), *r)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        ours_sorted.sort_by_key(|r| format!("{r:?}"));
        for (a, (_, b)) in ours_sorted.iter().zip(&keyed) {
            if !row_eq(a, b) {
                return Err(format!("row {a:?} differs from DuckDB's {b:?}"));
            }
        }
        return Ok(());
    }
    for (index, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if !row_eq(a, b) {
            return Err(format!("row {index}: {a:?} differs from DuckDB's {b:?}"));
        }
    }
    Ok(())
}

/// Generates the Object table of `rows` rows, loads it into skyscan and
/// writes it as Parquet (once per data dir): (database root, Parquet file).
pub(crate) fn prepare_object_table(
    rows: u64,
    density: f64,
    dir: &Path,
) -> Result<(PathBuf, PathBuf), String> {
    let root = dir.join("skyscan-db");
    let parquet = dir.join("Object.parquet");
    let marker = dir.join("READY");
    if marker.exists() {
        return Ok((root, parquet));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let started = Instant::now();
    let table = generate_objects(&ObjectSpec::with_density(rows, density, 42), 2).into_table()?;
    let db = Database::create(&root, &[]).map_err(|e| e.to_string())?;
    let def = TableDef::director(
        &table.schema,
        "objectId",
        "ra",
        "decl",
        Partitioning::qserv_default(),
        20,
    );
    load_table_in_memory(&db, "bench", def, &table, &LoadOptions::default())
        .map_err(|e| e.to_string())?;
    let mut out =
        BufWriter::with_capacity(1 << 20, File::create(&parquet).map_err(|e| e.to_string())?);
    write_parquet(&table, &mut out, &mut |_| {})?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    std::fs::write(&marker, b"ok").map_err(|e| e.to_string())?;
    eprintln!(
        "generated and loaded {} rows in {:.1} s",
        rows,
        started.elapsed().as_secs_f64()
    );
    Ok((root, parquet))
}

/// Runs the benchmark.
pub fn run(args: &QueryArgs) -> Result<(), String> {
    if args.rows == 0 || args.rows > 200_000_000 {
        return Err("query: --rows must be in 1..=200000000".to_string());
    }
    let threads: Vec<usize> = args
        .threads
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad --threads {t}"))
        })
        .collect::<Result<_, _>>()?;
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "skyscan-bench-query-{}-{}",
            args.rows, args.density
        ))
    });
    let (root, parquet) = prepare_object_table(args.rows, args.density, &dir)?;
    let db = Database::open(&root).map_err(|e| e.to_string())?;
    let engine = QueryEngine::new(
        db,
        EngineOptions {
            default_database: Some("bench".to_string()),
            ..EngineOptions::default()
        },
    );
    // A cone center inside the data: the mean position.
    let center = engine
        .query("SELECT AVG(ra), AVG(decl) FROM Object")
        .map_err(|e| e.to_string())?
        .to_rows()
        .first()
        .and_then(|r| Some((r.first()?.to_f64()?, r.get(1)?.to_f64()?)))
        .ok_or("no rows")?;
    let questions: Vec<Question> = questions(center, args.density)
        .into_iter()
        .filter(|q| {
            args.only
                .as_ref()
                .is_none_or(|o| q.name.contains(o.as_str()))
        })
        .collect();

    // skyscan.
    let mut ours: Vec<(String, usize, f64, QueryResult)> = Vec::new();
    for q in &questions {
        for &t in &threads {
            let options = ExecOptions {
                threads: t,
                ..ExecOptions::default()
            };
            let run_once = || -> Result<(f64, QueryResult), String> {
                let mut sink = skyscan_engine::query::CollectSink::new(u64::MAX);
                let start = Instant::now();
                engine
                    .query_with(&q.skyscan, &options, &mut sink)
                    .map_err(|e| format!("{}: {e}", q.name))?;
                Ok((start.elapsed().as_secs_f64() * 1000.0, sink.result))
            };
            let (_, answer) = run_once()?;
            let mut times = Vec::with_capacity(args.reps);
            for _ in 0..args.reps {
                times.push(run_once()?.0);
            }
            ours.push((q.name.to_string(), t, median(&mut times), answer));
        }
    }

    // DuckDB.
    let mut peer: Option<serde_json::Value> = None;
    if !args.no_peer {
        let spec = serde_json::json!({
            "db": dir.join("duck.db"),
            "parquet": parquet,
            "threads": threads,
            "reps": args.reps,
            "queries": questions.iter().map(|q| serde_json::json!({"name": q.name, "sql": q.duckdb})).collect::<Vec<_>>(),
        });
        let spec_path = dir.join("duckdb-spec.json");
        std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/duckdb_queries.py");
        let output = Command::new("python3")
            .arg(&script)
            .arg(&spec_path)
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success() {
            peer = Some(
                serde_json::from_str(stdout.trim())
                    .map_err(|e| format!("DuckDB output: {e}: {stdout}"))?,
            );
        } else {
            eprintln!(
                "DuckDB peer skipped: {}{}",
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }

    println!(
        "query benchmark: {} Objects, hot cache, median of {} runs; DuckDB {} on its native table",
        args.rows,
        args.reps,
        peer.as_ref()
            .and_then(|p| p["version"].as_str())
            .unwrap_or("(not run)")
    );
    println!(
        "{:<20} {:>7} {:>12} {:>12} {:>9} {:>8}  check",
        "query", "threads", "skyscan ms", "duckdb ms", "speedup", "rows"
    );
    let mut mismatches = 0;
    for (name, t, ms, answer) in &ours {
        let question = questions
            .iter()
            .find(|q| q.name == name)
            .ok_or("question")?;
        let theirs = peer
            .as_ref()
            .map(|p| &p["results"][name.as_str()][t.to_string()]);
        let (duck_ms, check) = match theirs {
            Some(entry) if entry.is_object() => {
                let mut times: Vec<f64> = entry["ms"]
                    .as_array()
                    .map_or_else(Vec::new, |a| a.iter().filter_map(|v| v.as_f64()).collect());
                let duck = median(&mut times);
                let rows = entry["rows"].as_array().cloned().unwrap_or_default();
                let row_count = entry["row_count"].as_u64().unwrap_or(0);
                let outcome = if row_count as usize > rows.len() {
                    // Too many rows to ship: compare the count and the sum of the first column.
                    let ours_sum: f64 = answer
                        .column_values(0)
                        .iter()
                        .filter_map(Scalar::to_f64)
                        .sum();
                    let theirs_sum = entry["sum_first"].as_f64().unwrap_or(f64::NAN);
                    if answer.rows() as u64 != row_count {
                        Err(format!("{} rows, DuckDB {row_count}", answer.rows()))
                    } else if (ours_sum - theirs_sum).abs() > 1e-9 * theirs_sum.abs() {
                        Err(format!(
                            "sum of the first column {ours_sum}, DuckDB {theirs_sum}"
                        ))
                    } else {
                        Ok(())
                    }
                } else {
                    answers_match(&normalized(answer), &rows, question.unordered)
                };
                let check = match outcome {
                    Ok(()) => "same answer".to_string(),
                    Err(e) => {
                        mismatches += 1;
                        format!("DIFFERENT: {e}")
                    }
                };
                (Some(duck), check)
            }
            _ => (None, "no peer".to_string()),
        };
        println!(
            "{:<20} {:>7} {:>12.2} {:>12} {:>9} {:>8}  {}",
            name,
            t,
            ms,
            duck_ms.map_or("-".to_string(), |d| format!("{d:.2}")),
            duck_ms.map_or("-".to_string(), |d| format!("{:.2}x", d / ms)),
            answer.rows(),
            check
        );
    }
    if mismatches > 0 {
        return Err(format!("{mismatches} answers differ from DuckDB's"));
    }
    Ok(())
}
