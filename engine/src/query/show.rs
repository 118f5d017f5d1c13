//! `SHOW DATABASES`, `SHOW TABLES`, `SHOW COLUMNS FROM t`, `DESCRIBE t`:
//! so clients can explore a database. Output follows MySQL's columns.

use sqlparser::ast::{
    self, ShowStatementFilter, ShowStatementFilterPosition, ShowStatementOptions,
};

use skyscan_format::{ColumnData, ColumnType, VarColumn};
use skyscan_kernel::like::LikePattern;
use skyscan_kernel::value::DataType;

use super::error::{QueryError, Result};
use super::exec::ExecStats;
use super::{QueryEngine, ResultColumn, ResultSink};
use crate::catalog::TableKind;

fn text_column(values: &[String]) -> ColumnData {
    let options: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
    ColumnData::Utf8(VarColumn::from_options(&options))
}

fn send(
    sink: &mut (dyn ResultSink + Send),
    names: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<ExecStats> {
    let columns: Vec<ResultColumn> = names
        .iter()
        .map(|n| ResultColumn {
            name: (*n).to_string(),
            data_type: DataType::Utf8,
            nullable: false,
        })
        .collect();
    sink.begin(&columns)?;
    let count = rows.len() as u64;
    if !rows.is_empty() {
        let batch = (0..names.len())
            .map(|c| text_column(&rows.iter().map(|r| r[c].clone()).collect::<Vec<_>>()))
            .collect();
        sink.batch(batch)?;
    }
    Ok(ExecStats {
        rows: count,
        ..ExecStats::default()
    })
}

/// The LIKE filter of a SHOW statement.
fn like_filter(options: &ShowStatementOptions) -> Result<Option<LikePattern>> {
    match &options.filter_position {
        None => Ok(None),
        Some(ShowStatementFilterPosition::Infix(f) | ShowStatementFilterPosition::Suffix(f)) => {
            match f {
                ShowStatementFilter::Like(p) | ShowStatementFilter::NoKeyword(p) => {
                    Ok(Some(LikePattern::new(p.as_bytes(), b'\\', true)))
                }
                other => Err(QueryError::unsupported(format!("SHOW … {other}"))),
            }
        }
    }
}

fn name_parts(name: &ast::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| p.to_string().trim_matches('`').to_string())
        .collect()
}

/// MySQL's name for a column type (the type map of docs/ingest.md, reversed).
fn mysql_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Bool => "tinyint(1)",
        ColumnType::I8 => "tinyint",
        ColumnType::I16 => "smallint",
        ColumnType::I32 => "int",
        ColumnType::I64 => "bigint",
        ColumnType::F32 => "float",
        ColumnType::F64 => "double",
        ColumnType::Utf8 => "text",
        ColumnType::Binary => "blob",
    }
}

/// Runs a SHOW / DESCRIBE statement.
pub fn run(
    engine: &QueryEngine,
    statement: &ast::Statement,
    default_database: Option<&str>,
    sink: &mut (dyn ResultSink + Send),
) -> Result<ExecStats> {
    let catalog = engine.database().catalog();
    match statement {
        ast::Statement::ShowDatabases { show_options, .. } => {
            let like = like_filter(show_options)?;
            let rows = catalog
                .databases
                .keys()
                .filter(|d| like.as_ref().is_none_or(|p| p.matches(d.as_bytes())))
                .map(|d| vec![d.clone()])
                .collect();
            send(sink, &["Database"], rows)
        }
        ast::Statement::ShowTables { show_options, .. } => {
            let like = like_filter(show_options)?;
            let database = match show_options
                .show_in
                .as_ref()
                .and_then(|i| i.parent_name.as_ref())
            {
                Some(name) => Some(name_parts(name).join(".")),
                None => default_database.map(str::to_string),
            };
            match database {
                Some(database) => {
                    let entry = catalog
                        .databases
                        .iter()
                        .find(|(d, _)| d.eq_ignore_ascii_case(&database))
                        .map(|(_, e)| e)
                        .ok_or_else(|| {
                            QueryError::name(format!("unknown database '{database}'"))
                        })?;
                    let rows = entry
                        .tables
                        .keys()
                        .filter(|t| like.as_ref().is_none_or(|p| p.matches(t.as_bytes())))
                        .map(|t| vec![t.clone()])
                        .collect();
                    send(sink, &[&format!("Tables_in_{database}")], rows)
                }
                None => {
                    let rows = catalog
                        .tables()
                        .filter(|(_, t, _)| like.as_ref().is_none_or(|p| p.matches(t.as_bytes())))
                        .map(|(d, t, e)| {
                            vec![d.to_string(), t.to_string(), e.kind.name().to_string()]
                        })
                        .collect();
                    send(sink, &["Database", "Table", "Kind"], rows)
                }
            }
        }
        ast::Statement::ShowColumns { show_options, .. } => {
            let like = like_filter(show_options)?;
            let name = show_options
                .show_in
                .as_ref()
                .and_then(|i| i.parent_name.as_ref())
                .ok_or_else(|| QueryError::invalid("SHOW COLUMNS needs FROM table"))?;
            describe(
                engine,
                &name_parts(name),
                default_database,
                like.as_ref(),
                sink,
            )
        }
        ast::Statement::ExplainTable { table_name, .. } => describe(
            engine,
            &name_parts(table_name),
            default_database,
            None,
            sink,
        ),
        _ => Err(QueryError::internal("not a SHOW statement")),
    }
}

fn describe(
    engine: &QueryEngine,
    parts: &[String],
    default_database: Option<&str>,
    like: Option<&LikePattern>,
    sink: &mut (dyn ResultSink + Send),
) -> Result<ExecStats> {
    let catalog = engine.database().catalog();
    let (database, table) = match parts {
        [t] => {
            let owners: Vec<&str> = catalog
                .tables()
                .filter(|(d, name, _)| {
                    name.eq_ignore_ascii_case(t)
                        && default_database.is_none_or(|dd| dd.eq_ignore_ascii_case(d))
                })
                .map(|(d, _, _)| d)
                .collect();
            match owners.as_slice() {
                [one] => ((*one).to_string(), t.clone()),
                [] => return Err(QueryError::name(format!("table '{t}' doesn't exist"))),
                _ => {
                    return Err(QueryError::name(format!(
                        "table '{t}' is in several databases: qualify it"
                    )));
                }
            }
        }
        [d, t] => (d.clone(), t.clone()),
        _ => {
            return Err(QueryError::name(format!(
                "bad table name {}",
                parts.join(".")
            )));
        }
    };
    let (_, _, entry) = catalog
        .tables()
        .find(|(d, t, _)| d.eq_ignore_ascii_case(&database) && t.eq_ignore_ascii_case(&table))
        .ok_or_else(|| QueryError::name(format!("table '{database}.{table}' doesn't exist")))?;
    let key = match &entry.kind {
        TableKind::Director { key_column, .. } => Some(key_column.as_str()),
        TableKind::Child {
            foreign_key_column, ..
        } => Some(foreign_key_column.as_str()),
        TableKind::Replicated => None,
    };
    let mut rows: Vec<Vec<String>> = entry
        .columns
        .iter()
        .filter(|c| like.is_none_or(|p| p.matches(c.name.as_bytes())))
        .map(|c| {
            vec![
                c.name.clone(),
                mysql_type(c.column_type).to_string(),
                if c.nullable { "YES" } else { "NO" }.to_string(),
                if Some(c.name.as_str()) == key {
                    "MUL"
                } else {
                    ""
                }
                .to_string(),
                "NULL".to_string(),
                String::new(),
            ]
        })
        .collect();
    if !matches!(entry.kind, TableKind::Replicated) {
        for pseudo in ["chunkId", "subChunkId"] {
            if like.is_none_or(|p| p.matches(pseudo.as_bytes())) {
                rows.push(vec![
                    pseudo.to_string(),
                    "int".to_string(),
                    "NO".to_string(),
                    String::new(),
                    "NULL".to_string(),
                    "pseudo-column".to_string(),
                ]);
            }
        }
    }
    send(
        sink,
        &["Field", "Type", "Null", "Key", "Default", "Extra"],
        rows,
    )
}
