//! Acceptance of the query engine on Qserv's integration test case01: every
//! query Qserv answers runs, and every one with a reference result (made by
//! MariaDB on the unpartitioned tables, `expected/`) gives that result —
//! values compared with the README's tolerances, rows as multisets where
//! the reference was sorted or the query has no ORDER BY.
//!
//! The queries Qserv refuses (`queries/unsupported_*`) must give a clean
//! error or, where skyscan goes beyond Qserv (subqueries, ORDER BY
//! expressions), a result; never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use skyscan_engine::catalog::Database;
use skyscan_engine::ingest::qserv::{ImportOptions, import_qserv};
use skyscan_engine::query::{EngineOptions, ErrorKind, QueryEngine, QueryResult};
use skyscan_kernel::value::{DataType, Scalar};

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
    root.join("qserv/case01")
}

/// The imported case01 database, shared by the tests of this file.
fn engine() -> &'static QueryEngine {
    static ENGINE: OnceLock<QueryEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let db = dir.join("db");
        import_qserv(&case01(), &db, &ImportOptions::default(), &mut |_| {}).unwrap();
        let options = EngineOptions {
            default_database: Some("qcase01".to_string()),
            ..EngineOptions::default()
        };
        QueryEngine::new(Database::open(&db).unwrap(), options)
    })
}

/// A query file in its Qserv form, with its pragmas.
struct QueryFile {
    name: String,
    sql: String,
    sort_result: bool,
    no_header: bool,
}

fn read_query(path: &Path) -> QueryFile {
    let text = std::fs::read_to_string(path).unwrap();
    let mut sql = String::new();
    let (mut sort_result, mut no_header) = (false, false);
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(pragma) = trimmed.strip_prefix("-- pragma") {
            sort_result |= pragma.contains("sortresult");
            no_header |= pragma.contains("noheader");
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("-- withQserv") {
            sql.push_str(rest);
            sql.push('\n');
            continue;
        }
        if line.trim_end().ends_with("-- noQserv") {
            continue;
        }
        // Drop comments (no `--` appears inside a string literal in case01).
        let code = match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        };
        sql.push_str(code);
        sql.push('\n');
    }
    let sql = sql.replace("{DBTAG_A}", "qcase01.");
    let sql = sql.trim().trim_end_matches(';').to_string();
    QueryFile {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        sql,
        sort_result,
        no_header,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::from("0x");
    for b in bytes {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Whether our value matches the reference cell.
fn cell_matches(value: &Scalar, data_type: DataType, expected: &str) -> bool {
    match value {
        Scalar::Null => expected == "NULL",
        _ if expected == "NULL" => false,
        Scalar::Bool(b) => expected == if *b { "1" } else { "0" },
        Scalar::Int(v) => expected.parse::<i64>().map_or_else(
            |_| {
                expected
                    .parse::<f64>()
                    .is_ok_and(|e| (e - *v as f64).abs() <= 1e-9 * e.abs().max(1.0))
            },
            |e| e == *v,
        ),
        Scalar::Float(v) => {
            let Ok(e) = expected.parse::<f64>() else {
                return false;
            };
            let tolerance = if data_type == DataType::F32 {
                1e-6
            } else {
                1e-9
            };
            (e - v).abs() <= tolerance * e.abs().max(v.abs()) || (e - v).abs() < 1e-300
        }
        Scalar::Utf8(s) => s == expected,
        Scalar::Binary(b) => hex(b) == expected || String::from_utf8_lossy(b) == expected,
    }
}

fn row_matches(row: &[Scalar], types: &[DataType], expected: &[&str]) -> bool {
    row.len() == expected.len()
        && row
            .iter()
            .zip(types)
            .zip(expected)
            .all(|((v, t), e)| cell_matches(v, *t, e))
}

/// A key of the exactly comparable cells of a row (integers, strings).
fn exact_key(cells: &[String]) -> String {
    cells.join("\u{1}")
}

fn our_exact_cells(row: &[Scalar], float_columns: &[bool]) -> Vec<String> {
    row.iter()
        .zip(float_columns)
        .map(|(v, &f)| {
            if f {
                String::new()
            } else {
                match v {
                    Scalar::Null => "NULL".into(),
                    Scalar::Bool(b) => u8::from(*b).to_string(),
                    Scalar::Int(i) => i.to_string(),
                    Scalar::Float(x) => x.to_string(),
                    Scalar::Utf8(s) => s.clone(),
                    Scalar::Binary(b) => hex(b),
                }
            }
        })
        .collect()
}

fn compare(
    query: &QueryFile,
    result: &QueryResult,
    expected_text: &str,
    ordered: bool,
) -> Result<(), String> {
    let mut lines: Vec<&str> = expected_text.lines().filter(|l| !l.is_empty()).collect();
    let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    if lines.is_empty() {
        // MariaDB prints nothing, not even a header, for an empty result.
        return if result.rows() == 0 {
            Ok(())
        } else {
            Err(format!("expected no rows, got {}", result.rows()))
        };
    }
    if !query.no_header {
        let header_index = if query.sort_result {
            lines
                .iter()
                .position(|l| {
                    l.split('\t')
                        .map(str::to_ascii_lowercase)
                        .eq(names.iter().map(|n| n.to_ascii_lowercase()))
                })
                .or_else(|| {
                    lines.iter().position(|l| {
                        l.split('\t').count() == names.len()
                            && l.split('\t')
                                .next()
                                .is_some_and(|c| c.parse::<f64>().is_err() && c != "NULL")
                    })
                })
        } else {
            Some(0)
        };
        let Some(index) = header_index else {
            return Err("no header line found in the reference".into());
        };
        let header = lines.remove(index);
        let header_names: Vec<String> = header.split('\t').map(str::to_ascii_lowercase).collect();
        let ours: Vec<String> = names
            .iter()
            .map(|n| n.to_ascii_lowercase().replace(' ', ""))
            .collect();
        let theirs: Vec<String> = header_names.iter().map(|n| n.replace(' ', "")).collect();
        if ours != theirs {
            return Err(format!(
                "header differs: ours {names:?}, reference {header}"
            ));
        }
    }
    let types: Vec<DataType> = result.columns.iter().map(|c| c.data_type).collect();
    let rows = result.to_rows();
    if rows.len() != lines.len() {
        return Err(format!(
            "{} rows, reference has {}",
            rows.len(),
            lines.len()
        ));
    }
    let expected: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    if ordered {
        for (index, (row, e)) in rows.iter().zip(&expected).enumerate() {
            if !row_matches(row, &types, e) {
                return Err(format!("row {index}: ours {row:?}, reference {e:?}"));
            }
        }
        return Ok(());
    }
    // Multisets: bucket our rows by their exactly comparable cells.
    let float_columns: Vec<bool> = types.iter().map(|t| t.is_float()).collect();
    let mut buckets: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        buckets
            .entry(exact_key(&our_exact_cells(row, &float_columns)))
            .or_default()
            .push(index);
    }
    for e in &expected {
        let key_cells: Vec<String> = e
            .iter()
            .zip(&float_columns)
            .map(|(c, &f)| if f { String::new() } else { (*c).to_string() })
            .collect();
        let key = exact_key(&key_cells);
        let candidates = buckets.get_mut(&key);
        let found = candidates.and_then(|list| {
            let position = list
                .iter()
                .position(|&i| row_matches(&rows[i], &types, e))?;
            Some(list.swap_remove(position))
        });
        if found.is_none() {
            return Err(format!("reference row {e:?} not in our result"));
        }
    }
    Ok(())
}

fn query_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_supported_query_runs_and_matches_the_reference() {
    let engine = engine();
    let mut failures = Vec::new();
    let mut compared = 0;
    let files = query_files(&case01().join("queries"));
    assert!(
        files.len() >= 78,
        "case01 has 78+ queries, found {}",
        files.len()
    );
    for path in files {
        let query = read_query(&path);
        let result = match engine.query(&query.sql) {
            Ok(result) => result,
            Err(err) => {
                failures.push(format!("{}: {err}\n    {}", query.name, query.sql));
                continue;
            }
        };
        let expected_path = case01()
            .join("expected")
            .join(format!("{}.txt", query.name));
        if let Ok(expected) = std::fs::read_to_string(&expected_path) {
            compared += 1;
            let upper = query.sql.to_ascii_uppercase();
            let ordered = !query.sort_result && upper.contains("ORDER BY");
            if let Err(diff) = compare(&query, &result, &expected, ordered) {
                failures.push(format!("{}: {diff}\n    {}", query.name, query.sql));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the case01 queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared >= 38,
        "only {compared} queries had reference results"
    );
}

#[test]
fn queries_qserv_refuses_give_clean_errors_or_results() {
    let engine = engine();
    for folder in [
        "unsupported_columns",
        "unsupported_syntax",
        "unsupported_tables",
    ] {
        for path in query_files(&case01().join("queries").join(folder)) {
            let query = read_query(&path);
            match engine.query(&query.sql) {
                Ok(_) => {}
                Err(err) => {
                    assert!(
                        matches!(
                            err.kind,
                            ErrorKind::Syntax
                                | ErrorKind::Unsupported
                                | ErrorKind::Name
                                | ErrorKind::Type
                                | ErrorKind::InvalidArgument
                        ),
                        "{}: unexpected error kind {:?}: {err}",
                        query.name,
                        err.kind
                    );
                    assert!(!err.message.is_empty());
                }
            }
        }
    }
    // Names that do not exist are name errors.
    let err = engine
        .query("SELECT nonExistingColumn FROM Object")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Name, "{err}");
    let err = engine.query("SELECT * FROM NoSuchTable").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Name, "{err}");
}

#[test]
fn the_comparison_detects_wrong_answers() {
    let engine = engine();
    let query = read_query(&case01().join("queries/1101.1_having.sql"));
    let result = engine.query(&query.sql).unwrap();
    let expected = std::fs::read_to_string(case01().join("expected/1101.1_having.txt")).unwrap();
    compare(&query, &result, &expected, false).unwrap();
    // One value changed in the reference: the comparison must fail.
    let first = expected.lines().next().unwrap();
    let mut cells: Vec<String> = first.split('\t').map(str::to_string).collect();
    let value: f64 = cells[1].parse().unwrap();
    cells[1] = format!("{}", value * (1.0 + 1e-6));
    let altered = expected.replacen(first, &cells.join("\t"), 1);
    assert!(compare(&query, &result, &altered, false).is_err());
    // A missing row must fail too.
    let fewer: String = expected.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(compare(&query, &result, &fewer, false).is_err());
}
