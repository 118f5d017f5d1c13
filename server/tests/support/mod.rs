//! Shared fixtures of the server tests: a small synthetic database, servers
//! started in-process, result comparison against the embedded engine.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::query::{EngineOptions, QueryEngine, QueryResult};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_server::arrow_conv::{arrow_schema, to_record_batch};
use skyscan_server::{ServerConfig, ServerHandle};

/// Rows of the test Object table.
pub const OBJECT_ROWS: u64 = 30_000;

/// A database with one director table `test.Object` (30,000 rows over
/// about 30 deg², several chunks), made once per test binary.
pub fn test_db() -> &'static Path {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| {
        // One directory per test binary under cargo's scratch space,
        // replaced on every run (a temporary directory would outlive the
        // process: statics are never dropped).
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
            .unwrap_or_else(|| "server-tests".to_string());
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{binary}-db"));
        let _ = std::fs::remove_dir_all(&root);
        let table = generate_objects(&ObjectSpec::with_density(OBJECT_ROWS, 1000.0, 7), 2)
            .into_table()
            .unwrap();
        let db = Database::create(&root, &[]).unwrap();
        let def = TableDef::director(
            &table.schema,
            "objectId",
            "ra",
            "decl",
            Partitioning::qserv_default(),
            20,
        );
        load_table_in_memory(&db, "test", def, &table, &LoadOptions::default()).unwrap();
        root
    })
}

/// An engine over the test database.
pub fn engine() -> Arc<QueryEngine> {
    let options = EngineOptions {
        default_database: Some("test".to_string()),
        ..EngineOptions::default()
    };
    Arc::new(QueryEngine::new(
        Database::open(test_db()).unwrap(),
        options,
    ))
}

/// A test server configuration: port 0 on loopback, quiet, one scan thread.
pub fn config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        query_threads: 1,
        log: false,
        grace: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

/// Starts a server over the test database.
pub fn server(config: ServerConfig) -> ServerHandle {
    skyscan_server::start(engine(), config).unwrap()
}

/// Every row of `batches` as text, one string per row.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| float_tolerant(f.value(row).to_string()))
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

/// Floating-point cells to 12 significant digits: sums and averages of
/// floats depend on the order in which chunk partials merge, which differs
/// from run to run (as in any parallel database), in the last bits.
fn float_tolerant(cell: String) -> String {
    if (cell.contains('.') || cell.contains('e'))
        && let Ok(value) = cell.parse::<f64>()
    {
        return format!("{value:.11e}");
    }
    cell
}

/// The embedded engine's result as text rows (through the same Arrow
/// conversion the server uses; the conversion has its own unit tests).
pub fn engine_rows(result: &QueryResult) -> Vec<String> {
    let schema = arrow_schema(&result.columns);
    let batches: Vec<RecordBatch> = result
        .batches
        .iter()
        .map(|b| to_record_batch(&schema, b.clone()).unwrap())
        .collect();
    rows_of(&batches)
}

/// Sorted, for results without ORDER BY (chunks finish in any order).
pub fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}
