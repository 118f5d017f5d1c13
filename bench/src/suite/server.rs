//! skyscan through its server: an in-process `skyscan_server` on a free
//! loopback port over the same database, queried with the Rust client
//! (`skyscan_client`) on one kept-open connection, as an application would.
//! Its times include the protocol, the Arrow IPC encoding and the transfer;
//! its answers are checked against the embedded engine's.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use skyscan_client::{Client, ConnectOptions};
use skyscan_engine::catalog::Database;
use skyscan_engine::query::{EngineOptions, QueryEngine};
use skyscan_server::{ServerConfig, ServerHandle};

use super::answers::Val;

/// Starts a server over the database at `root` on 127.0.0.1 (free port).
pub fn start(root: &Path, threads: usize, database: &str) -> Result<ServerHandle, String> {
    let engine = Arc::new(QueryEngine::new(
        Database::open(root).map_err(|e| e.to_string())?,
        EngineOptions {
            default_database: Some(database.to_string()),
            scan: skyscan_engine::scan::EngineConfig {
                // As for the embedded engine: peers run at nice 0 too.
                convoy_nice: 0,
                ..skyscan_engine::scan::EngineConfig::default()
            },
            ..EngineOptions::default()
        },
    ));
    skyscan_server::start(
        engine,
        ServerConfig {
            listen: "127.0.0.1:0"
                .parse()
                .map_err(|e| format!("listen address: {e}"))?,
            query_threads: threads,
            jobs: None,
            log: false,
            ..ServerConfig::default()
        },
    )
}

/// Connects the Rust client.
pub fn connect(addr: SocketAddr) -> Result<Client, String> {
    Client::connect(addr, &ConnectOptions::default()).map_err(|e| format!("client: {e}"))
}

/// Runs `sql` through `client`: (milliseconds, rows).
pub fn query(client: &mut Client, sql: &str) -> Result<(f64, Vec<Vec<Val>>), String> {
    let started = Instant::now();
    let outcome = client
        .query_all(sql)
        .map_err(|e| format!("skyscan server: {e}\n  SQL: {sql}"))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((ms, rows_of(&outcome.batches)?))
}

/// Every row of `batches` as values (the types the server sends).
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<Val>>, String> {
    let mut rows = Vec::new();
    for batch in batches {
        let start = rows.len();
        rows.resize_with(start + batch.num_rows(), Vec::new);
        for column in batch.columns() {
            let out = &mut rows[start..];
            push_column(column.as_ref(), out)?;
        }
    }
    Ok(rows)
}

fn push_column(column: &dyn Array, out: &mut [Vec<Val>]) -> Result<(), String> {
    macro_rules! ints {
        ($t:ty) => {{
            let a = column.as_primitive::<$t>();
            for (row, slot) in out.iter_mut().enumerate() {
                slot.push(if a.is_null(row) {
                    Val::Null
                } else {
                    i64::try_from(a.value(row))
                        .map(Val::Int)
                        .map_err(|_| "an unsigned value above i64::MAX".to_string())?
                });
            }
        }};
    }
    match column.data_type() {
        DataType::Null => out.iter_mut().for_each(|slot| slot.push(Val::Null)),
        DataType::Boolean => {
            let a = column.as_boolean();
            for (row, slot) in out.iter_mut().enumerate() {
                slot.push(if a.is_null(row) {
                    Val::Null
                } else {
                    Val::Int(i64::from(a.value(row)))
                });
            }
        }
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float32 => {
            let a = column.as_primitive::<Float32Type>();
            for (row, slot) in out.iter_mut().enumerate() {
                slot.push(if a.is_null(row) {
                    Val::Null
                } else {
                    Val::Float(f64::from(a.value(row)))
                });
            }
        }
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            for (row, slot) in out.iter_mut().enumerate() {
                slot.push(if a.is_null(row) {
                    Val::Null
                } else {
                    Val::Float(a.value(row))
                });
            }
        }
        DataType::Utf8 => {
            let a = column.as_string::<i32>();
            for (row, slot) in out.iter_mut().enumerate() {
                slot.push(if a.is_null(row) {
                    Val::Null
                } else {
                    Val::Text(a.value(row).to_string())
                });
            }
        }
        other => return Err(format!("the server sent a column of type {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    #[test]
    fn batches_become_rows_with_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("flux", DataType::Float32, true),
            Field::new("band", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1i64 << 60, 2])),
                Arc::new(Float32Array::from(vec![Some(1.5f32), None])),
                Arc::new(StringArray::from(vec![None, Some("r")])),
            ],
        )
        .unwrap();
        let rows = rows_of(&[batch.clone(), batch]).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], vec![Val::Int(1 << 60), Val::Float(1.5), Val::Null]);
        assert_eq!(
            rows[3],
            vec![Val::Int(2), Val::Null, Val::Text("r".to_string())]
        );
    }
}
