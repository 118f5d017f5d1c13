//! Queries: the Qserv SQL dialect over a skyscan database, embeddable.
//!
//! [`QueryEngine::query`] parses SQL (MySQL as Qserv speaks it, plus the
//! sciSQL functions), plans it ([`plan`]: names, spatial restrictor and
//! director-index pruning, chunk-local joins, the per-chunk / merge split)
//! and executes it ([`exec`]) through the scan layer, chunk by chunk.
//!
//! Beyond Qserv: uncorrelated subqueries (`IN (SELECT …)`, scalar, in
//! FROM), ORDER BY on expressions and aliases, `SELECT` without FROM,
//! `SHOW TABLES` / `SHOW COLUMNS` / `DESCRIBE`. What is refused gets an
//! error saying what and where ([`QueryError`]).

mod bind;
mod dialect;
mod error;
mod exec;
mod join;
mod plan;
mod scope;
mod show;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sqlparser::ast::{self, Spanned};
use sqlparser::parser::Parser;

use skyscan_format::ColumnData;
use skyscan_kernel::build::{append_rows, scalar_at};
use skyscan_kernel::value::{DataType, Scalar};

pub use bind::BindLimits;
pub use dialect::QservDialect;
pub use error::{ErrorKind, QueryError, Result, SqlPosition};
pub use exec::{ExecOptions, ExecStats, ScanPath};
pub use plan::KeyRestriction;

use crate::apdb::Apdb;
use crate::catalog::Database;
use crate::director::DirectorIndex;
use crate::scan::{EngineConfig, ScanEngine};
use crate::storage::Storage;
use bind::{SourceText, SubqueryRunner};
use plan::{DirectorLookup, Locations, PlanContext};

/// Most SQL text accepted (bytes).
pub const MAX_SQL_BYTES: usize = 16 << 20;
/// Deepest nesting of subqueries.
pub const MAX_SUBQUERY_DEPTH: usize = 8;
/// Most director-index entries a range restriction walks to prune chunks.
pub const MAX_RANGE_LOOKUP: usize = 1_000_000;

/// One column of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultColumn {
    /// The column's name (alias, column name as written, or the
    /// expression's text).
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// Progress of a running query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Chunks whose work is complete.
    pub chunks_done: u64,
    /// Chunks the query visits.
    pub chunks_total: u64,
    /// The chunk that completed last.
    pub last_chunk: i32,
}

/// Receives a query's result: the schema once, then batches of rows.
pub trait ResultSink {
    /// The result's columns, before any row.
    fn begin(&mut self, columns: &[ResultColumn]) -> Result<()>;
    /// One batch: a column per result column, all of one length.
    fn batch(&mut self, columns: Vec<ColumnData>) -> Result<()>;
}

/// A whole result in memory.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// The columns.
    pub columns: Vec<ResultColumn>,
    /// Batches of rows, a column per result column each.
    pub batches: Vec<Vec<ColumnData>>,
    /// What the execution did.
    pub stats: ExecStats,
}

impl QueryResult {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.first().map_or(0, ColumnData::len))
            .sum()
    }

    /// The values of column `index`, in row order.
    pub fn column_values(&self, index: usize) -> Vec<Scalar> {
        self.batches
            .iter()
            .filter_map(|b| b.get(index))
            .flat_map(|c| (0..c.len()).map(move |row| scalar_at(c, row)))
            .collect()
    }

    /// Every row as scalars.
    pub fn to_rows(&self) -> Vec<Vec<Scalar>> {
        let mut rows = Vec::with_capacity(self.rows());
        for batch in &self.batches {
            let n = batch.first().map_or(0, ColumnData::len);
            for row in 0..n {
                rows.push(batch.iter().map(|c| scalar_at(c, row)).collect());
            }
        }
        rows
    }

    /// The result as one column per result column.
    pub fn concatenated(&self) -> Result<Vec<ColumnData>> {
        let mut out: Vec<ColumnData> = self
            .columns
            .iter()
            .map(|c| ColumnData::empty(c.data_type.column_type()))
            .collect();
        for batch in &self.batches {
            for (column, part) in out.iter_mut().zip(batch) {
                append_rows(column, part, None)?;
            }
        }
        Ok(out)
    }
}

/// A [`ResultSink`] that keeps everything, within a byte limit.
#[derive(Debug)]
pub struct CollectSink {
    /// The result so far.
    pub result: QueryResult,
    max_bytes: u64,
    bytes: u64,
}

impl CollectSink {
    /// A sink holding at most `max_bytes` of result.
    pub fn new(max_bytes: u64) -> CollectSink {
        CollectSink {
            result: QueryResult::default(),
            max_bytes,
            bytes: 0,
        }
    }
}

impl ResultSink for CollectSink {
    fn begin(&mut self, columns: &[ResultColumn]) -> Result<()> {
        self.result.columns = columns.to_vec();
        Ok(())
    }

    fn batch(&mut self, columns: Vec<ColumnData>) -> Result<()> {
        self.bytes += columns
            .iter()
            .map(crate::table::column_raw_bytes)
            .sum::<u64>();
        if self.bytes > self.max_bytes {
            return Err(QueryError::limit(format!(
                "the result exceeds {} bytes (the result memory limit); add a LIMIT or use an asynchronous query",
                self.max_bytes
            )));
        }
        self.result.batches.push(columns);
        Ok(())
    }
}

/// Options of a [`QueryEngine`].
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Defaults for every query.
    pub exec: ExecOptions,
    /// The scan engine: storage (backends, memory budget, footer cache),
    /// convoy workers, scan classes.
    pub scan: EngineConfig,
    /// The database unqualified table names resolve in (`None`: a table
    /// name unique across databases resolves to it).
    pub default_database: Option<String>,
    /// Binder limits.
    pub limits: BindLimits,
}

/// The embedded query engine over one database root.
pub struct QueryEngine {
    db: Database,
    scan: ScanEngine,
    options: EngineOptions,
    /// Open director indexes by (database, table, load id).
    directors: Mutex<HashMap<(String, String, String), Arc<DirectorIndex>>>,
    /// Alert-production databases queryable by name.
    apdbs: std::sync::RwLock<std::collections::BTreeMap<String, Arc<Apdb>>>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("root", &self.db.root())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl QueryEngine {
    /// Opens the database at `root` with default options.
    pub fn open(root: &Path) -> Result<QueryEngine> {
        let db = Database::open(root)?;
        Ok(QueryEngine::new(db, EngineOptions::default()))
    }

    /// An engine over an open database.
    pub fn new(db: Database, options: EngineOptions) -> QueryEngine {
        let scan = ScanEngine::new(options.scan.clone());
        QueryEngine {
            db,
            scan,
            options,
            directors: Mutex::new(HashMap::new()),
            apdbs: std::sync::RwLock::new(std::collections::BTreeMap::new()),
        }
    }

    /// Makes the live tables of `apdb` (DiaObject, DiaSource,
    /// DiaForcedSource) queryable as database `name`: each query reads one
    /// consistent snapshot of them.
    pub fn attach_apdb(&self, name: &str, apdb: Arc<Apdb>) {
        let mut apdbs = match self.apdbs.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        apdbs.insert(name.to_string(), apdb);
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The storage layer.
    pub fn storage(&self) -> &Arc<Storage> {
        self.scan.storage()
    }

    /// The scan engine (convoys, scan classes, status).
    pub fn scan_engine(&self) -> &ScanEngine {
        &self.scan
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Runs `sql` with the default options and returns the whole result.
    pub fn query(&self, sql: &str) -> Result<QueryResult> {
        let options = self.options.exec.clone();
        let mut sink = CollectSink::new(options.max_result_bytes);
        let stats = self.query_with(sql, &options, &mut sink)?;
        let mut result = sink.result;
        result.stats = stats;
        Ok(result)
    }

    /// Runs `sql` with `options`, streaming the result into `sink`.
    pub fn query_with(
        &self,
        sql: &str,
        options: &ExecOptions,
        sink: &mut (dyn ResultSink + Send),
    ) -> Result<ExecStats> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(QueryError::limit(format!(
                "the query text is {} bytes (at most {MAX_SQL_BYTES})",
                sql.len()
            )));
        }
        let source = SourceText::new(sql);
        let statement = parse_one(sql)?;
        self.run_statement(&statement, &source, options, sink, 0)
    }

    fn run_statement(
        &self,
        statement: &ast::Statement,
        source: &SourceText,
        options: &ExecOptions,
        sink: &mut (dyn ResultSink + Send),
        depth: usize,
    ) -> Result<ExecStats> {
        match statement {
            ast::Statement::Query(query) => self.run_query(query, source, options, sink, depth),
            ast::Statement::ShowTables { .. }
            | ast::Statement::ShowColumns { .. }
            | ast::Statement::ExplainTable { .. }
            | ast::Statement::ShowDatabases { .. } => {
                show::run(self, statement, self.options.default_database.as_deref(), sink)
            }
            other => Err(QueryError::unsupported(format!(
                "`{}` is not supported through the query path: skyscan answers SELECT, SHOW and DESCRIBE \
                 (load data with `skyscan load`)",
                first_words(&other.to_string())
            ))
            .at(SourceText::position(other.span()))),
        }
    }

    fn run_query(
        &self,
        query: &ast::Query,
        source: &SourceText,
        options: &ExecOptions,
        sink: &mut (dyn ResultSink + Send),
        depth: usize,
    ) -> Result<ExecStats> {
        if depth > MAX_SUBQUERY_DEPTH {
            return Err(QueryError::limit(format!(
                "subqueries nested deeper than {MAX_SUBQUERY_DEPTH}"
            )));
        }
        if query.with.is_some() {
            return Err(QueryError::unsupported("WITH (common table expressions)"));
        }
        if query.fetch.is_some() || !query.locks.is_empty() || query.for_clause.is_some() {
            return Err(QueryError::unsupported("FETCH, FOR UPDATE and FOR clauses"));
        }
        let select = match query.body.as_ref() {
            ast::SetExpr::Select(select) => select,
            ast::SetExpr::Query(inner)
                if query.order_by.is_none() && query.limit_clause.is_none() =>
            {
                return self.run_query(inner, source, options, sink, depth);
            }
            ast::SetExpr::SetOperation { op, .. } => {
                return Err(QueryError::unsupported(format!("{op} of queries"))
                    .at(SourceText::position(query.span())));
            }
            other => {
                return Err(QueryError::unsupported(format!("`{other}`"))
                    .at(SourceText::position(query.span())));
            }
        };
        let runner = Runner {
            engine: self,
            source,
            options,
            depth,
        };
        let apdbs = match self.apdbs.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let ctx = PlanContext {
            apdbs: &apdbs,
            db: &self.db,
            default_database: self.options.default_database.as_deref(),
            source,
            subqueries: &runner,
            directors: self,
            limits: self.options.limits,
        };
        let plan = plan::plan_select(&ctx, select, query)?;
        drop(apdbs);
        exec::execute_select(&self.scan, plan, options, sink)
    }

    fn director_index(&self, database: &str, table: &str) -> Result<Option<Arc<DirectorIndex>>> {
        let catalog = self.db.catalog();
        let Some(entry) = catalog.table(database, table) else {
            return Ok(None);
        };
        let Some(index) = &entry.director_index else {
            return Ok(None);
        };
        let key = (
            database.to_string(),
            table.to_string(),
            entry.load_id.clone(),
        );
        let mut cache = match self.directors.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(open) = cache.get(&key) {
            return Ok(Some(Arc::clone(open)));
        }
        let path = self.db.table_file(entry, index.spindle, &index.file)?;
        let open = Arc::new(DirectorIndex::open(&path)?);
        // A small cache: one entry per director table version.
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&open));
        Ok(Some(open))
    }
}

impl DirectorLookup for QueryEngine {
    fn locate(
        &self,
        database: &str,
        director: &str,
        restriction: &KeyRestriction,
    ) -> Result<Option<Locations>> {
        let Some(index) = self.director_index(database, director)? else {
            return Ok(None);
        };
        let mut located: Locations = Locations::new();
        match restriction {
            KeyRestriction::Values(values) => {
                let mut keys = values.clone();
                keys.sort_unstable();
                keys.dedup();
                for (chunk, sub) in index.lookup_sorted_batch(&keys)?.into_iter().flatten() {
                    located.entry(chunk).or_default().insert(sub);
                }
            }
            KeyRestriction::Range(low, high) => {
                if low > high {
                    return Ok(Some(located));
                }
                for (walked, entry) in index.range(*low..=*high).enumerate() {
                    if walked >= MAX_RANGE_LOOKUP {
                        return Ok(None);
                    }
                    let entry = entry?;
                    located
                        .entry(entry.chunk_id)
                        .or_default()
                        .insert(entry.sub_chunk_id);
                }
            }
        }
        Ok(Some(located))
    }
}

/// Runs subqueries of one statement.
struct Runner<'e> {
    engine: &'e QueryEngine,
    source: &'e SourceText,
    options: &'e ExecOptions,
    depth: usize,
}

impl SubqueryRunner for Runner<'_> {
    fn run_subquery(&self, query: &ast::Query) -> Result<QueryResult> {
        let mut sink = CollectSink::new(self.options.max_result_bytes);
        let stats =
            self.engine
                .run_query(query, self.source, self.options, &mut sink, self.depth + 1)?;
        let mut result = sink.result;
        result.stats = stats;
        Ok(result)
    }
}

/// Parses exactly one statement.
pub fn parse_one(sql: &str) -> Result<ast::Statement> {
    let dialect = QservDialect::default();
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(syntax_error)?;
    match statements.len() {
        0 => Err(QueryError::syntax("no statement")),
        1 => Ok(statements.remove(0)),
        n => Err(QueryError::syntax(format!(
            "{n} statements: send one statement at a time"
        ))),
    }
}

/// A sqlparser error as a syntax error with its position.
fn syntax_error(err: sqlparser::parser::ParserError) -> QueryError {
    let message = err.to_string();
    let position = parse_position(&message);
    let text = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(&message)
        .to_string();
    let text = match text.find(" at Line: ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    QueryError::syntax(format!("syntax error: {text}")).at(position)
}

/// Reads "at Line: L, Column: C" out of a sqlparser message.
fn parse_position(message: &str) -> Option<SqlPosition> {
    let rest = &message[message.find("Line: ")? + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(SqlPosition {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
