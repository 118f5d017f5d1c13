//! Planning a SELECT: tables and their filters, the spatial restrictor and
//! director-index lookups turned into chunk and sub-chunk pruning,
//! chunk-local joins, and the per-chunk / merge split of the rest.
//!
//! The plan keeps every expression over the query's global slots
//! ([`super::scope`]); a table's own filter is localized to its schema so
//! the scan evaluates it directly on decoded row groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sqlparser::ast::{self, Spanned};

use skyscan_kernel::agg::AggSpec;
use skyscan_kernel::eval::eval_constant;
use skyscan_kernel::expr::{BinaryOp, Expr, Func};
use skyscan_kernel::value::{DataType, Scalar};
use skyscan_sky::{Chunker, Region};

use super::ResultColumn;
use super::bind::{
    AggContext, BindLimits, Binder, SourceText, SubqueryRunner, contains_aggregate, function_args,
    function_name, is_areaspec,
};
use super::error::{QueryError, Result};
use super::scope::{
    ColumnInfo, Materialized, Placement, Scope, ScopeTable, Source, columns_of, placement_of,
};
use crate::apdb::{Apdb, ApdbTable};
use crate::catalog::{Database, Partitioning};
use crate::storage::TableHandle;

/// Restriction of a director key found in WHERE.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRestriction {
    /// The key is one of these values.
    Values(Vec<i64>),
    /// The key lies in `[low, high]`.
    Range(i64, i64),
}

/// Where rows of a restricted key live: chunk → sub-chunks.
pub type Locations = BTreeMap<i32, BTreeSet<i32>>;

/// Resolves director-key restrictions through director indexes.
pub trait DirectorLookup {
    /// The (chunk, sub-chunk) locations of the keys of `restriction` in the
    /// director table `database.director`; `None` when the index cannot
    /// answer cheaply (a range over too many keys, no index).
    fn locate(
        &self,
        database: &str,
        director: &str,
        restriction: &KeyRestriction,
    ) -> Result<Option<Locations>>;
}

/// What planning needs from its surroundings.
pub struct PlanContext<'a> {
    /// The database root.
    pub db: &'a Database,
    /// The database unqualified table names resolve in.
    pub default_database: Option<&'a str>,
    /// The SQL text.
    pub source: &'a SourceText,
    /// Runs subqueries.
    pub subqueries: &'a dyn SubqueryRunner,
    /// Director index lookups.
    pub directors: &'a dyn DirectorLookup,
    /// Binder limits.
    pub limits: BindLimits,
    /// Alert-production databases attached by name.
    pub apdbs: &'a BTreeMap<String, Arc<Apdb>>,
}

/// A predicate usable against block min/max statistics: `column op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatPredicate {
    /// Schema column index.
    pub column: usize,
    /// `=`, `<`, `<=`, `>`, `>=`.
    pub op: BinaryOp,
    /// The constant.
    pub value: Scalar,
}

/// The per-table part of a plan.
#[derive(Debug, Clone, Default)]
pub struct TablePlan {
    /// The table's own conditions, over its schema slots (pseudo-columns as
    /// `chunkId` / `subChunkId` expressions).
    pub filter: Option<Expr>,
    /// Schema columns to read (ascending): those of the filter and those the
    /// rest of the query uses.
    pub read: Vec<usize>,
    /// Columns (schema indices and pseudo-column indices) the rest of the
    /// query uses from this table after filtering.
    pub keep: Vec<usize>,
    /// Conditions for block-statistics pruning.
    pub stats: Vec<StatPredicate>,
    /// Whether overlap row groups are read (the partner side of a
    /// near-neighbour join).
    pub read_overlap: bool,
    /// The sub-chunks that may hold matching rows, per chunk (`None`: all).
    pub sub_chunks: Option<Arc<Locations>>,
}

/// A chunk-local join condition between two tables.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinEdge {
    /// `left.column = right.column`.
    Equi {
        /// (table, column) of one side.
        left: (usize, usize),
        /// (table, column) of the other.
        right: (usize, usize),
    },
    /// `scisql_angSep(own.ra, own.decl, partner.ra, partner.decl) < radius`:
    /// own rows of `own` against own and overlap rows of `partner`.
    Near {
        /// The table whose own rows drive the join.
        own: usize,
        /// The table whose overlap rows are read too.
        partner: usize,
        /// (ra, decl) columns of `own`.
        own_position: (usize, usize),
        /// (ra, decl) columns of `partner`.
        partner_position: (usize, usize),
        /// The radius, degrees.
        radius_deg: f64,
        /// `<=` instead of `<`.
        inclusive: bool,
        /// Join sub-chunk by sub-chunk: the own rows of sub-chunk `s`
        /// against the partner's own and overlap rows of `s`, so that each
        /// pair is found exactly once (a row is copied into every
        /// neighbouring sub-chunk of its chunk, so within a chunk it can
        /// appear more than once). True for two director tables.
        by_sub_chunk: bool,
        /// Leave out the pairs of an object with itself (a self-join whose
        /// two sides read the same rows, with `o1.key <> o2.key` among the
        /// conditions): the kernel skips them instead of the filter.
        exclude_same: bool,
    },
}

/// One condition over several tables.
#[derive(Debug, Clone)]
pub struct ResidualPart {
    /// The condition, over global slots.
    pub expr: Expr,
    /// The join edge (index into [`SelectPlan::joins`]) made from it: when
    /// the join enforced that edge, the condition holds for every joined row.
    pub edge: Option<usize>,
}

/// What is computed from the (joined, filtered) rows.
#[derive(Debug, Clone)]
pub enum Body {
    /// One output row per input row: the visible outputs, then hidden
    /// sort keys.
    Project {
        /// Expressions over global slots.
        exprs: Vec<Expr>,
    },
    /// Grouped aggregation, then HAVING and the outputs over the
    /// aggregation's result (keys, then aggregates).
    Aggregate {
        /// Group keys over global slots.
        keys: Vec<Expr>,
        /// Aggregates over global slots.
        aggs: Vec<AggSpec>,
        /// HAVING over the aggregation's result.
        having: Option<Expr>,
        /// Outputs (visible, then hidden sort keys) over the aggregation's result.
        exprs: Vec<Expr>,
    },
}

impl Body {
    /// The output expressions (visible and hidden).
    pub fn exprs(&self) -> &[Expr] {
        match self {
            Body::Project { exprs } | Body::Aggregate { exprs, .. } => exprs,
        }
    }
}

/// A planned SELECT.
#[derive(Debug, Clone)]
pub struct SelectPlan {
    /// The tables.
    pub scope: Scope,
    /// Per-table plans, aligned with `scope.tables`.
    pub tables: Vec<TablePlan>,
    /// The chunks to visit (`None`: every chunk of the partitioned tables).
    pub chunks: Option<Vec<i32>>,
    /// WHERE is constantly false or NULL: no row qualifies.
    pub empty: bool,
    /// Join conditions between tables.
    pub joins: Vec<JoinEdge>,
    /// Conditions over several tables, evaluated on joined rows (global
    /// slots), each with the join edge that can enforce it.
    pub residual: Vec<ResidualPart>,
    /// What is computed.
    pub body: Body,
    /// The visible output columns.
    pub columns: Vec<ResultColumn>,
    /// ORDER BY: (index into the body's outputs, descending).
    pub order: Vec<(usize, bool)>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET.
    pub offset: u64,
    /// The spatial restrictor's region (prunes live alert-production tables).
    pub region: Option<Region>,
}

impl SelectPlan {
    /// Indices of the partitioned tables.
    pub fn partitioned(&self) -> Vec<usize> {
        (0..self.scope.tables.len())
            .filter(|&t| self.scope.tables[t].placement.is_partitioned())
            .collect()
    }
}

/// One conjunct of WHERE / ON after binding, with where it came from.
struct Conjunct {
    expr: Expr,
    tables: BTreeSet<usize>,
}

fn tables_of(scope: &Scope, expr: &Expr) -> BTreeSet<usize> {
    expr.slots()
        .into_iter()
        .filter_map(|slot| scope.locate_slot(slot).map(|(t, _)| t))
        .collect()
}

/// Splits a WHERE clause into its top-level AND terms.
fn split_and<'e>(expr: &'e ast::Expr, out: &mut Vec<&'e ast::Expr>) {
    match expr {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        ast::Expr::Nested(inner)
            if matches!(
                **inner,
                ast::Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        other => out.push(other),
    }
}

/// If `expr` is a spatial restrictor (`qserv_areaspec_*(…)`, optionally
/// `= 1` / `1 =`), its function call.
fn as_areaspec(expr: &ast::Expr) -> Option<&ast::Function> {
    let is_one = |e: &ast::Expr| matches!(e, ast::Expr::Value(v) if matches!(&v.value, ast::Value::Number(n, _) if n == "1"));
    match expr {
        ast::Expr::Function(f) if is_areaspec(&function_name(&f.name)) => Some(f),
        ast::Expr::Nested(inner) => as_areaspec(inner),
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } => {
            if is_one(right) {
                as_areaspec(left)
            } else if is_one(left) {
                as_areaspec(right)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A restrictor's region and the sciSQL predicate that tests a point.
#[derive(Debug, Clone)]
pub struct Restrictor {
    /// The region (for chunk pruning).
    pub region: Region,
    /// The `scisql_s2PtIn*` function.
    pub func: Func,
    /// Its constant arguments after the point.
    pub args: Vec<Scalar>,
}

impl Restrictor {
    /// The row predicate on (ra, decl) columns.
    pub fn predicate(&self, ra: Expr, decl: Expr) -> Expr {
        let mut args = vec![ra, decl];
        args.extend(self.args.iter().cloned().map(Expr::literal));
        Expr::Call {
            func: self.func,
            args,
            data_type: DataType::Bool,
        }
    }
}

fn numeric_args(binder: &Binder<'_>, function: &ast::Function) -> Result<Vec<f64>> {
    let (args, distinct, star) = function_args(function)?;
    if distinct || star {
        return Err(QueryError::invalid(format!(
            "{} takes numbers",
            function.name
        )));
    }
    args.iter()
        .map(|arg| {
            let bound = binder.bind(arg)?;
            if !bound.is_constant() {
                return Err(QueryError::invalid(format!(
                    "the arguments of {} must be constants",
                    function.name
                )));
            }
            eval_constant(&bound)?
                .to_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    QueryError::invalid(format!("{} needs finite numbers", function.name))
                })
        })
        .collect()
}

fn region_error(function: &ast::Function, err: impl std::fmt::Display) -> QueryError {
    QueryError::invalid(format!("{function}: {err}")).at(SourceText::position(function.span()))
}

/// Parses a `qserv_areaspec_*` call.
pub fn parse_restrictor(binder: &Binder<'_>, function: &ast::Function) -> Result<Restrictor> {
    let name = function_name(&function.name);
    let values =
        numeric_args(binder, function).map_err(|e| e.at(SourceText::position(function.span())))?;
    let arity_error = |expected: &str| {
        QueryError::invalid(format!(
            "{} takes {expected} arguments, got {}",
            function.name,
            values.len()
        ))
        .at(SourceText::position(function.span()))
    };
    let (region, func) = match name.as_str() {
        "qserv_areaspec_box" => {
            let [lon_min, lat_min, lon_max, lat_max] = values[..] else {
                return Err(arity_error("4"));
            };
            let sky_box = skyscan_sky::SkyBox::new(lon_min, lat_min, lon_max, lat_max)
                .map_err(|e| region_error(function, e))?;
            (Region::Box(sky_box), Func::PtInBox)
        }
        "qserv_areaspec_circle" => {
            let [lon, lat, radius] = values[..] else {
                return Err(arity_error("3"));
            };
            let circle = skyscan_sky::Circle::new(lon, lat, radius)
                .map_err(|e| region_error(function, e))?;
            (Region::Circle(circle), Func::PtInCircle)
        }
        "qserv_areaspec_ellipse" => {
            let [lon, lat, a, b, pa] = values[..] else {
                return Err(arity_error("5"));
            };
            let ellipse = skyscan_sky::Ellipse::new(lon, lat, a, b, pa)
                .map_err(|e| region_error(function, e))?;
            (Region::Ellipse(ellipse), Func::PtInEllipse)
        }
        "qserv_areaspec_poly" => {
            if values.len() < 6 || values.len() % 2 != 0 {
                return Err(arity_error("an even number (at least 6) of"));
            }
            let vertices: Vec<(f64, f64)> = values.chunks(2).map(|p| (p[0], p[1])).collect();
            let polygon = skyscan_sky::ConvexPolygon::new(&vertices)
                .map_err(|e| region_error(function, e))?;
            (Region::Polygon(polygon), Func::PtInCPoly)
        }
        other => {
            return Err(
                QueryError::name(format!("unknown spatial restrictor {other}"))
                    .at(SourceText::position(function.span())),
            );
        }
    };
    Ok(Restrictor {
        region,
        func,
        args: values.into_iter().map(Scalar::Float).collect(),
    })
}

/// The region of a lone `scisql_s2PtIn*(col, col, constants…)` predicate.
fn region_of_point_predicate(expr: &Expr) -> Option<Region> {
    let call = match expr {
        Expr::Call { .. } => expr,
        Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } => match (&**left, &**right) {
            (call @ Expr::Call { .. }, Expr::Literal(one))
            | (Expr::Literal(one), call @ Expr::Call { .. })
                if one.to_f64() == Some(1.0) =>
            {
                call
            }
            _ => return None,
        },
        _ => return None,
    };
    let Expr::Call { func, args, .. } = call else {
        return None;
    };
    if args.len() < 2
        || !matches!(args[0], Expr::Column { .. })
        || !matches!(args[1], Expr::Column { .. })
    {
        return None;
    }
    let constants: Option<Vec<f64>> = args[2..]
        .iter()
        .map(|a| match a {
            Expr::Literal(s) => s.to_f64(),
            _ => None,
        })
        .collect();
    let v = constants?;
    match func {
        Func::PtInBox if v.len() == 4 => skyscan_sky::SkyBox::new(v[0], v[1], v[2], v[3])
            .ok()
            .map(Region::Box),
        Func::PtInCircle if v.len() == 3 => skyscan_sky::Circle::new(v[0], v[1], v[2])
            .ok()
            .map(Region::Circle),
        Func::PtInEllipse if v.len() == 5 => {
            skyscan_sky::Ellipse::new(v[0], v[1], v[2], v[3], v[4])
                .ok()
                .map(Region::Ellipse)
        }
        Func::PtInCPoly if v.len() >= 6 && v.len() % 2 == 0 => {
            let vertices: Vec<(f64, f64)> = v.chunks(2).map(|p| (p[0], p[1])).collect();
            skyscan_sky::ConvexPolygon::new(&vertices)
                .ok()
                .map(Region::Polygon)
        }
        _ => None,
    }
}

/// A FROM-clause name of a table of an attached alert-production database:
/// `apdb.DiaObject`, or an unqualified live table name no catalog database has.
fn resolve_apdb_table(
    ctx: &PlanContext<'_>,
    name: &ast::ObjectName,
) -> Option<(String, Arc<Apdb>, ApdbTable)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => i.value.clone(),
            ast::ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect();
    let table_of = |t: &str| {
        ApdbTable::ALL
            .into_iter()
            .find(|x| x.name().eq_ignore_ascii_case(t))
    };
    match parts.as_slice() {
        [database, table] => {
            let (db, apdb) = ctx
                .apdbs
                .iter()
                .find(|(d, _)| d.eq_ignore_ascii_case(database))?;
            Some((db.clone(), Arc::clone(apdb), table_of(table)?))
        }
        [table] => {
            let live = table_of(table)?;
            let in_catalog = ctx
                .db
                .catalog()
                .databases
                .values()
                .any(|d| d.tables.keys().any(|t| t.eq_ignore_ascii_case(table)));
            if in_catalog {
                return None;
            }
            let (db, apdb) = ctx.apdbs.iter().next()?;
            Some((db.clone(), Arc::clone(apdb), live))
        }
        _ => None,
    }
}

/// Resolves a FROM-clause table name.
fn resolve_table(ctx: &PlanContext<'_>, name: &ast::ObjectName) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => i.value.clone(),
            ast::ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect();
    let catalog = ctx.db.catalog();
    let find_database = |wanted: &str| -> Option<String> {
        catalog
            .databases
            .keys()
            .find(|d| d.as_str() == wanted)
            .or_else(|| {
                catalog
                    .databases
                    .keys()
                    .find(|d| d.eq_ignore_ascii_case(wanted))
            })
            .cloned()
    };
    let (database, table) = match parts.as_slice() {
        [table] => {
            let database = match ctx.default_database {
                Some(d) => find_database(d)
                    .ok_or_else(|| QueryError::name(format!("unknown database '{d}'")))?,
                None => {
                    // Unique table name across databases, else ambiguous.
                    let owners: Vec<&String> = catalog
                        .databases
                        .iter()
                        .filter(|(_, entry)| {
                            entry.tables.keys().any(|t| t.eq_ignore_ascii_case(table))
                        })
                        .map(|(name, _)| name)
                        .collect();
                    match owners.as_slice() {
                        [] => {
                            return Err(QueryError::name(format!("table '{table}' doesn't exist")));
                        }
                        [one] => (*one).clone(),
                        _ => {
                            return Err(QueryError::name(format!(
                                "table '{table}' is in several databases ({}): qualify it as database.table",
                                owners
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )));
                        }
                    }
                }
            };
            (database, table.clone())
        }
        [database, table] => (
            find_database(database)
                .ok_or_else(|| QueryError::name(format!("unknown database '{database}'")))?,
            table.clone(),
        ),
        _ => {
            return Err(QueryError::name(format!(
                "table name `{name}` has too many parts"
            )));
        }
    };
    let entry = catalog
        .databases
        .get(&database)
        .ok_or_else(|| QueryError::name(format!("unknown database '{database}'")))?;
    let table = entry
        .tables
        .keys()
        .find(|t| t.as_str() == table)
        .or_else(|| entry.tables.keys().find(|t| t.eq_ignore_ascii_case(&table)))
        .cloned()
        .ok_or_else(|| QueryError::name(format!("table '{database}.{table}' doesn't exist")))?;
    Ok((database, table))
}

fn alias_name(alias: &Option<ast::TableAlias>) -> Result<Option<String>> {
    match alias {
        None => Ok(None),
        Some(a) if !a.columns.is_empty() => {
            Err(QueryError::unsupported("column lists in table aliases"))
        }
        Some(a) => Ok(Some(a.name.value.clone())),
    }
}

fn add_factor(
    ctx: &PlanContext<'_>,
    scope: &mut Scope,
    factor: &ast::TableFactor,
) -> Result<usize> {
    match factor {
        ast::TableFactor::Table {
            name, alias, args, ..
        } => {
            if args.is_some() {
                return Err(QueryError::unsupported(format!("table function {name}")));
            }
            if let Some((database, apdb, table)) = resolve_apdb_table(ctx, name) {
                let columns: Vec<ColumnInfo> = apdb
                    .schema(table)
                    .columns
                    .iter()
                    .map(|c| ColumnInfo {
                        name: c.name.clone(),
                        data_type: DataType::of_column(c.column_type),
                        nullable: c.nullable,
                    })
                    .collect();
                let alias = alias_name(alias)?.unwrap_or_else(|| table.name().to_string());
                return scope
                    .push(ScopeTable {
                        alias,
                        database: Some(database),
                        table: table.name().to_string(),
                        source: Source::Apdb { apdb, table },
                        placement: Placement::Whole,
                        columns,
                        slot_offset: 0,
                    })
                    .map_err(|e| e.at(SourceText::position(name.span())));
            }
            let (database, table) =
                resolve_table(ctx, name).map_err(|e| e.at(SourceText::position(name.span())))?;
            let handle = TableHandle::new(ctx.db, &database, &table)?;
            let placement = placement_of(&handle)?;
            let columns = columns_of(&handle);
            let alias = alias_name(alias)?.unwrap_or_else(|| table.clone());
            scope
                .push(ScopeTable {
                    alias,
                    database: Some(database),
                    table,
                    source: Source::Catalog(handle),
                    placement,
                    columns,
                    slot_offset: 0,
                })
                .map_err(|e| e.at(SourceText::position(name.span())))
        }
        ast::TableFactor::Derived {
            subquery,
            alias,
            lateral,
            ..
        } => {
            if *lateral {
                return Err(QueryError::unsupported("LATERAL subqueries"));
            }
            let alias = alias_name(alias)?.ok_or_else(|| {
                QueryError::invalid("every derived table must have its own alias")
            })?;
            let result = ctx.subqueries.run_subquery(subquery)?;
            let columns: Vec<ColumnInfo> = result
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    data_type: c.data_type,
                    nullable: c.nullable,
                })
                .collect();
            let data = result.concatenated()?;
            scope.push(ScopeTable {
                alias: alias.clone(),
                database: None,
                table: alias,
                source: Source::Derived(Arc::new(Materialized { data })),
                placement: Placement::Whole,
                columns,
                slot_offset: 0,
            })
        }
        other => Err(QueryError::unsupported(format!("FROM item `{other}`"))),
    }
}

/// A USING column of a join: (left table, left column, right table, right column).
type UsingPair = (usize, usize, usize, usize);

/// Builds the scope and collects ON conditions and USING pairs.
fn build_scope<'q>(
    ctx: &PlanContext<'_>,
    from: &'q [ast::TableWithJoins],
) -> Result<(Scope, Vec<&'q ast::Expr>, Vec<UsingPair>)> {
    let mut scope = Scope::default();
    let mut on = Vec::new();
    let mut using = Vec::new();
    for item in from {
        add_factor(ctx, &mut scope, &item.relation)?;
        for join in &item.joins {
            let constraint = match &join.join_operator {
                ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => Some(c),
                ast::JoinOperator::CrossJoin(c) => Some(c),
                other => {
                    return Err(QueryError::unsupported(format!(
                        "{} joins (only inner joins are supported)",
                        format!("{other:?}")
                            .split('(')
                            .next()
                            .unwrap_or("this kind of")
                    )));
                }
            };
            let right = add_factor(ctx, &mut scope, &join.relation)?;
            match constraint {
                Some(ast::JoinConstraint::On(expr)) => on.push(expr),
                Some(ast::JoinConstraint::Using(names)) => {
                    for name in names {
                        let column = name.to_string();
                        let column = column.trim_matches('`').to_string();
                        // The left side: the first earlier table that has the column.
                        let left = (0..right)
                            .find(|&t| scope.tables[t].column_index(&column).is_some())
                            .ok_or_else(|| {
                                QueryError::name(format!("unknown column '{column}' in USING"))
                            })?;
                        let left_column = scope.tables[left].column_index(&column).unwrap_or(0);
                        let right_column =
                            scope.tables[right].column_index(&column).ok_or_else(|| {
                                QueryError::name(format!("unknown column '{column}' in USING"))
                            })?;
                        using.push((left, left_column, right, right_column));
                        let lower = column.to_ascii_lowercase();
                        match scope.using.iter_mut().find(|(n, _)| *n == lower) {
                            Some((_, tables)) => {
                                for t in [left, right] {
                                    if !tables.contains(&t) {
                                        tables.push(t);
                                    }
                                }
                            }
                            None => scope.using.push((lower, vec![left, right])),
                        }
                    }
                }
                Some(ast::JoinConstraint::Natural) => {
                    return Err(QueryError::unsupported("NATURAL joins"));
                }
                _ => {}
            }
        }
    }
    Ok((scope, on, using))
}

/// `objectId = c`, `IN (…)`, `< > <= >=` against constants, and ORs of
/// equalities, on column `key` of the table's slots.
fn key_restriction(expr: &Expr, key_slot: usize) -> Option<KeyRestriction> {
    let is_key = |e: &Expr| matches!(e, Expr::Column { slot, data_type } if *slot == key_slot && data_type.is_integer());
    let constant = |e: &Expr| match e {
        Expr::Literal(Scalar::Int(v)) => Some(*v),
        _ => None,
    };
    match expr {
        Expr::Binary { op, left, right } => {
            let (op, value) = if is_key(left) {
                (*op, constant(right))
            } else if is_key(right) {
                (op.swapped(), constant(left))
            } else if *op == BinaryOp::Or {
                let (a, b) = (
                    key_restriction(left, key_slot)?,
                    key_restriction(right, key_slot)?,
                );
                return match (a, b) {
                    (KeyRestriction::Values(mut x), KeyRestriction::Values(y)) => {
                        x.extend(y);
                        Some(KeyRestriction::Values(x))
                    }
                    _ => None,
                };
            } else {
                return None;
            };
            let value = value?;
            Some(match op {
                BinaryOp::Eq => KeyRestriction::Values(vec![value]),
                BinaryOp::Lt => KeyRestriction::Range(i64::MIN, value.checked_sub(1)?),
                BinaryOp::LtEq => KeyRestriction::Range(i64::MIN, value),
                BinaryOp::Gt => KeyRestriction::Range(value.checked_add(1)?, i64::MAX),
                BinaryOp::GtEq => KeyRestriction::Range(value, i64::MAX),
                _ => return None,
            })
        }
        Expr::InList {
            arg,
            list,
            negated: false,
        } if is_key(arg) => {
            let values: Option<Vec<i64>> = list
                .iter()
                .filter(|s| !s.is_null())
                .map(|s| match s {
                    Scalar::Int(v) => Some(*v),
                    _ => None,
                })
                .collect();
            values.map(KeyRestriction::Values)
        }
        _ => None,
    }
}

/// The condition a key restriction stands for, on `column`.
fn restriction_filter(column: Expr, restriction: &KeyRestriction) -> Expr {
    match restriction {
        KeyRestriction::Values(values) => Expr::InList {
            arg: Box::new(column),
            list: values.iter().map(|&v| Scalar::Int(v)).collect(),
            negated: false,
        },
        KeyRestriction::Range(low, high) => Expr::binary(
            BinaryOp::And,
            Expr::binary(
                BinaryOp::GtEq,
                column.clone(),
                Expr::literal(Scalar::Int(*low)),
            ),
            Expr::binary(BinaryOp::LtEq, column, Expr::literal(Scalar::Int(*high))),
        ),
    }
}

fn intersect(a: KeyRestriction, b: KeyRestriction) -> KeyRestriction {
    match (a, b) {
        (KeyRestriction::Range(l1, h1), KeyRestriction::Range(l2, h2)) => {
            KeyRestriction::Range(l1.max(l2), h1.min(h2))
        }
        (KeyRestriction::Values(v), KeyRestriction::Range(l, h))
        | (KeyRestriction::Range(l, h), KeyRestriction::Values(v)) => {
            KeyRestriction::Values(v.into_iter().filter(|x| (l..=h).contains(x)).collect())
        }
        (KeyRestriction::Values(a), KeyRestriction::Values(b)) => {
            KeyRestriction::Values(a.into_iter().filter(|x| b.contains(x)).collect())
        }
    }
}

fn intersect_locations(a: Locations, b: &Locations) -> Locations {
    a.into_iter()
        .filter_map(|(chunk, subs)| {
            let other = b.get(&chunk)?;
            let common: BTreeSet<i32> = subs.intersection(other).copied().collect();
            (!common.is_empty()).then_some((chunk, common))
        })
        .collect()
}

/// `scisql_angSep(a.ra, a.decl, b.ra, b.decl) < r` between two tables.
struct NearCondition {
    first: usize,
    first_position: (usize, usize),
    second: usize,
    second_position: (usize, usize),
    radius_deg: f64,
    inclusive: bool,
}

fn near_edge(scope: &Scope, expr: &Expr) -> Option<NearCondition> {
    let Expr::Binary { op, left, right } = expr else {
        return None;
    };
    let (call, radius, inclusive) = match (op, &**left, &**right) {
        (BinaryOp::Lt, c @ Expr::Call { .. }, Expr::Literal(r)) => (c, r, false),
        (BinaryOp::LtEq, c @ Expr::Call { .. }, Expr::Literal(r)) => (c, r, true),
        (BinaryOp::Gt, Expr::Literal(r), c @ Expr::Call { .. }) => (c, r, false),
        (BinaryOp::GtEq, Expr::Literal(r), c @ Expr::Call { .. }) => (c, r, true),
        _ => return None,
    };
    let Expr::Call {
        func: Func::AngSep,
        args,
        ..
    } = call
    else {
        return None;
    };
    let column = |e: &Expr| match e {
        Expr::Column { slot, .. } => scope.locate_slot(*slot),
        _ => None,
    };
    let (t1, ra1) = column(&args[0])?;
    let (t1b, decl1) = column(&args[1])?;
    let (t2, ra2) = column(&args[2])?;
    let (t2b, decl2) = column(&args[3])?;
    if t1 != t1b || t2 != t2b || t1 == t2 {
        return None;
    }
    Some(NearCondition {
        first: t1,
        first_position: (ra1, decl1),
        second: t2,
        second_position: (ra2, decl2),
        radius_deg: radius.to_f64()?,
        inclusive,
    })
}

/// Union-find root.
fn root(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Localizes an expression over global slots to table `table`'s slots.
pub fn localize(scope: &Scope, table: usize, expr: &Expr) -> Result<Expr> {
    let t = &scope.tables[table];
    let columns = t.columns.len();
    let mut out = expr.clone();
    let mut error = None;
    map_columns(&mut out, &mut |slot, data_type| {
        let local = slot.wrapping_sub(t.slot_offset);
        if slot < t.slot_offset || local >= t.slot_count() {
            error = Some(QueryError::internal(
                "a table filter references another table",
            ));
            return Expr::column(slot, data_type);
        }
        if local == columns {
            Expr::ChunkId
        } else if local == columns + 1 {
            Expr::SubChunkId
        } else {
            Expr::column(local, data_type)
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Replaces every column node with `f(slot, type)`.
pub fn map_columns(expr: &mut Expr, f: &mut impl FnMut(usize, DataType) -> Expr) {
    match expr {
        Expr::Column { slot, data_type } => *expr = f(*slot, *data_type),
        Expr::Literal(_) | Expr::ChunkId | Expr::SubChunkId => {}
        Expr::Unary { arg, .. }
        | Expr::IsNull { arg, .. }
        | Expr::InList { arg, .. }
        | Expr::Like { arg, .. }
        | Expr::Cast { arg, .. } => map_columns(arg, f),
        Expr::Binary { left, right, .. } => {
            map_columns(left, f);
            map_columns(right, f);
        }
        Expr::Case {
            operand,
            branches,
            otherwise,
            ..
        } => {
            if let Some(o) = operand {
                map_columns(o, f);
            }
            for (w, t) in branches {
                map_columns(w, f);
                map_columns(t, f);
            }
            if let Some(o) = otherwise {
                map_columns(o, f);
            }
        }
        Expr::Call { args, .. } => args.iter_mut().for_each(|a| map_columns(a, f)),
    }
}

/// Statistics predicates of one localized conjunct.
fn stat_predicates(expr: &Expr, out: &mut Vec<StatPredicate>) {
    match expr {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            stat_predicates(left, out);
            stat_predicates(right, out);
        }
        Expr::Binary { op, left, right }
            if matches!(
                op,
                BinaryOp::Eq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
            ) =>
        {
            match (&**left, &**right) {
                (Expr::Column { slot, .. }, Expr::Literal(v)) if !v.is_null() => {
                    out.push(StatPredicate {
                        column: *slot,
                        op: *op,
                        value: v.clone(),
                    })
                }
                (Expr::Literal(v), Expr::Column { slot, .. }) if !v.is_null() => {
                    out.push(StatPredicate {
                        column: *slot,
                        op: op.swapped(),
                        value: v.clone(),
                    })
                }
                _ => {}
            }
        }
        Expr::InList {
            arg,
            list,
            negated: false,
        } => {
            if let Expr::Column { slot, .. } = &**arg {
                let values: Vec<&Scalar> = list.iter().filter(|s| !s.is_null()).collect();
                let numbers: Option<Vec<f64>> = values.iter().map(|s| s.to_f64()).collect();
                if let Some(numbers) = numbers
                    .filter(|n| !n.is_empty() && values.iter().all(|s| !s.data_type().is_string()))
                {
                    let min = numbers.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let as_scalar = |v: f64| {
                        if values.iter().all(|s| matches!(s, Scalar::Int(_))) {
                            Scalar::Int(v as i64)
                        } else {
                            Scalar::Float(v)
                        }
                    };
                    // Exact for integers (|v| < 2^53 holds for list sizes here only when
                    // the values came from i64s; keep ints exact by using the originals).
                    let (lo, hi) = if values.iter().all(|s| matches!(s, Scalar::Int(_))) {
                        let ints: Vec<i64> = values.iter().filter_map(|s| s.to_i64()).collect();
                        (
                            Scalar::Int(ints.iter().copied().min().unwrap_or(0)),
                            Scalar::Int(ints.iter().copied().max().unwrap_or(0)),
                        )
                    } else {
                        (as_scalar(min), as_scalar(max))
                    };
                    out.push(StatPredicate {
                        column: *slot,
                        op: BinaryOp::GtEq,
                        value: lo,
                    });
                    out.push(StatPredicate {
                        column: *slot,
                        op: BinaryOp::LtEq,
                        value: hi,
                    });
                }
            }
        }
        _ => {}
    }
}

/// The name an output column gets: its alias, the column name as written,
/// or the expression's text.
fn output_name(ctx: &PlanContext<'_>, expr: &ast::Expr) -> String {
    match expr {
        ast::Expr::Identifier(ident) => ident.value.clone(),
        ast::Expr::CompoundIdentifier(idents) => {
            idents.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        other => ctx
            .source
            .expression_text(other.span())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| other.to_string()),
    }
}

/// One item of the SELECT list after `*` expansion.
struct SelectItem {
    /// The AST (None for an expanded `*` column).
    ast: Option<ast::Expr>,
    /// For an expanded column: (table, column).
    column: Option<(usize, usize)>,
    name: String,
    alias: Option<String>,
}

fn expand_select(
    ctx: &PlanContext<'_>,
    scope: &Scope,
    items: &[ast::SelectItem],
) -> Result<Vec<SelectItem>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::UnnamedExpr(expr) => out.push(SelectItem {
                ast: Some(expr.clone()),
                column: None,
                name: output_name(ctx, expr),
                alias: None,
            }),
            ast::SelectItem::ExprWithAlias { expr, alias } => out.push(SelectItem {
                ast: Some(expr.clone()),
                column: None,
                name: alias.value.clone(),
                alias: Some(alias.value.clone()),
            }),
            ast::SelectItem::Wildcard(_) => {
                if scope.tables.is_empty() {
                    return Err(QueryError::invalid("SELECT * needs a FROM clause"));
                }
                for (t, table) in scope.tables.iter().enumerate() {
                    for (c, column) in table.columns.iter().enumerate() {
                        // A USING column appears once (from its first table).
                        let lower = column.name.to_ascii_lowercase();
                        let repeated = scope.using.iter().any(|(n, tables)| {
                            *n == lower && tables.first() != Some(&t) && tables.contains(&t)
                        });
                        if !repeated {
                            out.push(SelectItem {
                                ast: None,
                                column: Some((t, c)),
                                name: column.name.clone(),
                                alias: None,
                            });
                        }
                    }
                }
            }
            ast::SelectItem::QualifiedWildcard(kind, _) => {
                let ast::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                    return Err(QueryError::unsupported(format!("{item}")));
                };
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .map(|p| p.to_string().trim_matches('`').to_string())
                    .collect();
                let (database, qualifier) = match parts.as_slice() {
                    [q] => (None, q.clone()),
                    [d, q] => (Some(d.clone()), q.clone()),
                    _ => return Err(QueryError::name(format!("bad qualifier {name}"))),
                };
                let t = scope.table_index(database.as_ref(), &qualifier)?;
                for (c, column) in scope.tables[t].columns.iter().enumerate() {
                    out.push(SelectItem {
                        ast: None,
                        column: Some((t, c)),
                        name: column.name.clone(),
                        alias: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Replaces unqualified identifiers that name a SELECT alias (and no
/// column) by the aliased expression: MySQL lets HAVING and ORDER BY use aliases.
fn substitute_aliases(expr: &ast::Expr, scope: &Scope, items: &[SelectItem]) -> ast::Expr {
    match expr {
        ast::Expr::Identifier(ident) => {
            let is_column = scope.resolve(std::slice::from_ref(&ident.value)).is_ok();
            if !is_column
                && let Some(item) = items.iter().find(|i| {
                    i.alias
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&ident.value))
                })
                && let Some(ast) = &item.ast
            {
                return ast.clone();
            }
            expr.clone()
        }
        ast::Expr::BinaryOp { left, op, right } => ast::Expr::BinaryOp {
            left: Box::new(substitute_aliases(left, scope, items)),
            op: op.clone(),
            right: Box::new(substitute_aliases(right, scope, items)),
        },
        ast::Expr::UnaryOp { op, expr: inner } => ast::Expr::UnaryOp {
            op: *op,
            expr: Box::new(substitute_aliases(inner, scope, items)),
        },
        ast::Expr::Nested(inner) => {
            ast::Expr::Nested(Box::new(substitute_aliases(inner, scope, items)))
        }
        ast::Expr::Between {
            expr: inner,
            negated,
            low,
            high,
        } => ast::Expr::Between {
            expr: Box::new(substitute_aliases(inner, scope, items)),
            negated: *negated,
            low: Box::new(substitute_aliases(low, scope, items)),
            high: Box::new(substitute_aliases(high, scope, items)),
        },
        ast::Expr::IsNull(inner) => {
            ast::Expr::IsNull(Box::new(substitute_aliases(inner, scope, items)))
        }
        ast::Expr::IsNotNull(inner) => {
            ast::Expr::IsNotNull(Box::new(substitute_aliases(inner, scope, items)))
        }
        other => other.clone(),
    }
}

fn constant_u64(binder: &Binder<'_>, expr: &ast::Expr, what: &str) -> Result<u64> {
    let bound = binder.bind(expr)?;
    let value = if bound.is_constant() {
        eval_constant(&bound)?
    } else {
        Scalar::Null
    };
    match value {
        Scalar::Int(v) if v >= 0 => Ok(v as u64),
        _ => Err(QueryError::invalid(format!(
            "{what} must be a non-negative integer, not `{expr}`"
        ))
        .at(SourceText::position(expr.span()))),
    }
}

/// Plans one SELECT (with the ORDER BY and LIMIT of its query).
pub fn plan_select(
    ctx: &PlanContext<'_>,
    select: &ast::Select,
    query: &ast::Query,
) -> Result<SelectPlan> {
    if select
        .distinct
        .as_ref()
        .is_some_and(|d| matches!(d, ast::Distinct::On(_)))
    {
        return Err(QueryError::unsupported("DISTINCT ON"));
    }
    if select.into.is_some() {
        return Err(QueryError::unsupported(
            "SELECT … INTO (writing through the query path)",
        ));
    }
    if select.top.is_some() || !select.lateral_views.is_empty() || select.qualify.is_some() {
        return Err(QueryError::unsupported("TOP, LATERAL VIEW and QUALIFY"));
    }
    let (scope, on_conditions, using) = build_scope(ctx, &select.from)?;
    let binder = Binder {
        scope: &scope,
        subqueries: ctx.subqueries,
        limits: ctx.limits,
    };

    // WHERE and ON: the restrictor out, everything else bound and split.
    let mut where_terms: Vec<&ast::Expr> = Vec::new();
    if let Some(selection) = &select.selection {
        split_and(selection, &mut where_terms);
    }
    for on in &on_conditions {
        split_and(on, &mut where_terms);
    }
    let mut restrictor: Option<Restrictor> = None;
    let mut conjuncts: Vec<Conjunct> = Vec::new();
    for term in where_terms {
        if let Some(function) = as_areaspec(term) {
            if restrictor.is_some() {
                return Err(QueryError::invalid(
                    "at most one spatial restrictor (qserv_areaspec_*) per query",
                )
                .at(SourceText::position(term.span())));
            }
            restrictor = Some(parse_restrictor(&binder, function)?);
            continue;
        }
        if contains_aggregate(term) {
            return Err(
                QueryError::invalid("aggregates are not allowed in WHERE (use HAVING)")
                    .at(SourceText::position(term.span())),
            );
        }
        let bound = binder.bind(term)?;
        for expr in bound.conjuncts() {
            conjuncts.push(Conjunct {
                tables: tables_of(&scope, &expr),
                expr,
            });
        }
    }
    for &(lt, lc, rt, rc) in &using {
        let l = Expr::column(scope.slot(lt, lc), scope.tables[lt].column_type(lc));
        let r = Expr::column(scope.slot(rt, rc), scope.tables[rt].column_type(rc));
        let expr = Expr::binary(BinaryOp::Eq, l, r);
        conjuncts.push(Conjunct {
            tables: [lt, rt].into_iter().collect(),
            expr,
        });
    }

    let table_count = scope.tables.len();
    let mut tables: Vec<TablePlan> = vec![TablePlan::default(); table_count];
    let mut local_filters: Vec<Vec<Expr>> = vec![Vec::new(); table_count];
    let mut residual: Vec<Expr> = Vec::new();
    let mut joins: Vec<(JoinEdge, usize)> = Vec::new();
    let mut empty = false;
    for conjunct in conjuncts {
        match conjunct.tables.len() {
            0 => match eval_constant(&conjunct.expr)?.to_bool() {
                Some(true) => {}
                _ => empty = true,
            },
            1 => {
                let t = *conjunct.tables.iter().next().unwrap_or(&0);
                local_filters[t].push(conjunct.expr);
            }
            _ => {
                if let Expr::Binary {
                    op: BinaryOp::Eq,
                    left,
                    right,
                } = &conjunct.expr
                    && let (Expr::Column { slot: a, .. }, Expr::Column { slot: b, .. }) =
                        (&**left, &**right)
                    && let (Some(l), Some(r)) = (scope.locate_slot(*a), scope.locate_slot(*b))
                    && l.0 != r.0
                {
                    joins.push((JoinEdge::Equi { left: l, right: r }, residual.len()));
                }
                if let Some(near) = near_edge(&scope, &conjunct.expr) {
                    joins.push((
                        JoinEdge::Near {
                            own: near.first,
                            partner: near.second,
                            own_position: near.first_position,
                            partner_position: near.second_position,
                            radius_deg: near.radius_deg,
                            inclusive: near.inclusive,
                            by_sub_chunk: false,
                            exclude_same: false,
                        },
                        residual.len(),
                    ));
                }
                residual.push(conjunct.expr);
            }
        }
    }

    // Partitioned tables share one partitioning.
    let partitioned: Vec<usize> = (0..table_count)
        .filter(|&t| scope.tables[t].placement.is_partitioned())
        .collect();
    let partitioning: Option<Partitioning> = partitioned
        .first()
        .and_then(|&t| scope.tables[t].placement.partitioning());
    if let Some(p) = partitioning {
        for &t in &partitioned {
            let q = scope.tables[t].placement.partitioning().unwrap_or(p);
            if q.stripes != p.stripes || q.sub_stripes != p.sub_stripes {
                return Err(QueryError::invalid(format!(
                    "tables {} and {} are partitioned differently ({}x{} and {}x{} stripes); they cannot be queried together",
                    scope.tables[partitioned[0]].alias,
                    scope.tables[t].alias,
                    p.stripes,
                    p.sub_stripes,
                    q.stripes,
                    q.sub_stripes
                )));
            }
        }
    }

    // Chunk-local joins: partitioned tables must be connected by director-key
    // equalities or near-neighbour conditions within the overlap.
    let mut parent: Vec<usize> = (0..table_count).collect();
    let mut edges_kept = Vec::new();
    for (mut edge, part) in joins {
        match &mut edge {
            JoinEdge::Equi { left, right } => {
                let (lp, rp) = (
                    &scope.tables[left.0].placement,
                    &scope.tables[right.0].placement,
                );
                let chunk_local = lp.is_partitioned()
                    && rp.is_partitioned()
                    && lp.director_key() == Some(left.1)
                    && rp.director_key() == Some(right.1)
                    && director_name(&scope.tables[left.0])
                        == director_name(&scope.tables[right.0]);
                if chunk_local {
                    let (a, b) = (root(&mut parent, left.0), root(&mut parent, right.0));
                    parent[a] = b;
                }
                edges_kept.push((edge, part));
            }
            JoinEdge::Near {
                own,
                partner,
                own_position,
                partner_position,
                radius_deg,
                ..
            } => {
                let (op, pp) = (
                    &scope.tables[*own].placement,
                    &scope.tables[*partner].placement,
                );
                let is_director_position = |p: &Placement, pos: (usize, usize)| matches!(p, Placement::Director { ra, decl, .. } if (*ra, *decl) == pos);
                if !(is_director_position(op, *own_position)
                    && is_director_position(pp, *partner_position))
                {
                    // Not a near-neighbour join of two director tables: an ordinary condition.
                    if op.is_partitioned() && pp.is_partitioned() {
                        continue;
                    }
                    edges_kept.push((edge, part));
                    continue;
                }
                let overlap = pp.partitioning().map_or(0.0, |p| p.overlap_deg);
                let within_overlap = *radius_deg <= overlap;
                if !within_overlap {
                    return Err(QueryError::invalid(format!(
                        "near-neighbour radius {radius_deg}° exceeds the overlap of table {} ({overlap}°): \
                         a chunk-local join would miss pairs; use a radius of at most {overlap}°",
                        scope.tables[*partner].alias
                    )));
                }
                let (a, b) = (root(&mut parent, *own), root(&mut parent, *partner));
                parent[a] = b;
                if let JoinEdge::Near { by_sub_chunk, .. } = &mut edge {
                    *by_sub_chunk = true;
                }
                edges_kept.push((edge, part));
            }
        }
    }
    let mut joins = edges_kept;
    if let Some(&first) = partitioned.first() {
        for &t in &partitioned[1..] {
            if root(&mut parent, t) != root(&mut parent, first) {
                return Err(QueryError::invalid(format!(
                    "tables {} and {} are partitioned: join them on the director key (e.g. {}.objectId = {}.objectId) \
                     or by angular separation within the overlap (scisql_angSep(…) < r); other joins of \
                     partitioned tables are not chunk-local and are refused",
                    scope.tables[first].alias,
                    scope.tables[t].alias,
                    scope.tables[first].alias,
                    scope.tables[t].alias
                )));
            }
        }
    }

    // Key restrictions (director index), before choosing near-join sides.
    let mut key_restrictions: Vec<Option<KeyRestriction>> = vec![None; table_count];
    for &t in &partitioned {
        let Some(key) = scope.tables[t].placement.director_key() else {
            continue;
        };
        let key_slot = scope.slot(t, key);
        for filter in &local_filters[t] {
            if let Some(r) = key_restriction(filter, key_slot) {
                key_restrictions[t] = Some(match key_restrictions[t].take() {
                    Some(prev) => intersect(prev, r),
                    None => r,
                });
            }
        }
    }
    // A director-key restriction also holds for a table joined on the
    // director key (o.objectId = s.objectId): give it to that table too, as
    // a filter and for director-index pruning.
    loop {
        let mut changed = false;
        for (edge, _) in &joins {
            let JoinEdge::Equi { left, right } = edge else {
                continue;
            };
            for (from, to) in [(*left, *right), (*right, *left)] {
                let keyed = |(t, c): (usize, usize)| {
                    scope.tables[t].placement.is_partitioned()
                        && scope.tables[t].placement.director_key() == Some(c)
                };
                if !(keyed(from) && keyed(to)) || key_restrictions[to.0].is_some() {
                    continue;
                }
                let Some(restriction) = key_restrictions[from.0].clone() else {
                    continue;
                };
                let column =
                    Expr::column(scope.slot(to.0, to.1), scope.tables[to.0].column_type(to.1));
                local_filters[to.0].push(restriction_filter(column, &restriction));
                key_restrictions[to.0] = Some(restriction);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // The own side of a near join is the restricted one when only one is.
    for (edge, _) in &mut joins {
        if let JoinEdge::Near {
            own,
            partner,
            own_position,
            partner_position,
            ..
        } = edge
            && key_restrictions[*own].is_none()
            && key_restrictions[*partner].is_some()
        {
            std::mem::swap(own, partner);
            std::mem::swap(own_position, partner_position);
        }
    }
    for (edge, _) in &joins {
        if let JoinEdge::Near { partner, .. } = edge {
            tables[*partner].read_overlap = true;
        }
    }

    // The restrictor: a row predicate on every partitioned table with a
    // position, and chunk / sub-chunk pruning.
    let chunker: Option<Chunker> = partitioning
        .map(|p| p.chunker())
        .transpose()
        .map_err(QueryError::internal)?;
    let mut region = restrictor.as_ref().map(|r| r.region.clone());
    if let Some(r) = &restrictor {
        // Live alert-production tables: the restrictor applies to their ra/dec.
        for (t, table) in scope.tables.iter().enumerate() {
            if let Source::Apdb { .. } = table.source
                && let (Some(ra), Some(dec)) = (table.column_index("ra"), table.column_index("dec"))
            {
                let ra_expr = Expr::column(scope.slot(t, ra), table.column_type(ra));
                let dec_expr = Expr::column(scope.slot(t, dec), table.column_type(dec));
                local_filters[t].insert(0, r.predicate(ra_expr, dec_expr));
            }
        }
        for &t in &partitioned {
            if let Some((ra, decl)) = scope.tables[t].placement.position() {
                let ra_expr = Expr::column(scope.slot(t, ra), scope.tables[t].column_type(ra));
                let decl_expr =
                    Expr::column(scope.slot(t, decl), scope.tables[t].column_type(decl));
                local_filters[t].insert(0, r.predicate(ra_expr, decl_expr));
            }
        }
    } else if partitioned.len() == 1 {
        let t = partitioned[0];
        region = local_filters[t].iter().find_map(region_of_point_predicate);
    }
    let mut chunks: Option<BTreeSet<i32>> = None;
    let mut sub_chunks: Vec<Option<Locations>> = vec![None; table_count];
    if let (Some(region), Some(chunker)) = (&region, &chunker) {
        let located: Locations = chunker
            .sub_chunks_intersecting(region)
            .into_iter()
            .map(|(c, subs)| (c, subs.into_iter().collect()))
            .collect();
        chunks = Some(located.keys().copied().collect());
        for &t in &partitioned {
            sub_chunks[t] = Some(located.clone());
        }
    }
    for &t in &partitioned {
        let Some(restriction) = &key_restrictions[t] else {
            continue;
        };
        let table = &scope.tables[t];
        let director = director_name(table);
        let database = table.database.clone().unwrap_or_default();
        let Some(located) = ctx.directors.locate(&database, &director, restriction)? else {
            continue;
        };
        if tables[t].read_overlap {
            // Overlap copies of a restricted key live in other chunks too.
            continue;
        }
        let keys: BTreeSet<i32> = located.keys().copied().collect();
        chunks = Some(match chunks {
            Some(c) => c.intersection(&keys).copied().collect(),
            None => keys,
        });
        sub_chunks[t] = Some(match sub_chunks[t].take() {
            Some(prev) => intersect_locations(prev, &located),
            None => located,
        });
    }

    // The SELECT list, aggregation, ORDER BY.
    let items = expand_select(ctx, &scope, &select.projection)?;
    let group_by: Vec<ast::Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(QueryError::unsupported("GROUP BY … WITH ROLLUP"));
            }
            exprs.clone()
        }
        ast::GroupByExpr::All(_) => return Err(QueryError::unsupported("GROUP BY ALL")),
    };
    let order_by: Vec<ast::OrderByExpr> = match &query.order_by {
        None => Vec::new(),
        Some(order) => match &order.kind {
            ast::OrderByKind::Expressions(exprs) => exprs.clone(),
            ast::OrderByKind::All(_) => return Err(QueryError::unsupported("ORDER BY ALL")),
        },
    };
    let aggregating = !group_by.is_empty()
        || select.having.is_some()
        || items
            .iter()
            .any(|i| i.ast.as_ref().is_some_and(contains_aggregate))
        || order_by.iter().any(|o| contains_aggregate(&o.expr));
    let distinct = select.distinct.is_some();

    let item_ast = |item: &SelectItem| -> ast::Expr {
        match (&item.ast, item.column) {
            (Some(ast), _) => ast.clone(),
            (None, Some((t, c))) => ast::Expr::CompoundIdentifier(vec![
                ast::Ident::new(scope.tables[t].alias.clone()),
                ast::Ident::new(scope.tables[t].column_name(c).to_string()),
            ]),
            (None, None) => ast::Expr::Value(ast::Value::Null.into()),
        }
    };

    let mut columns: Vec<ResultColumn> = Vec::with_capacity(items.len());
    let mut order: Vec<(usize, bool)> = Vec::new();
    let body = if aggregating || distinct {
        let mut context = AggContext::default();
        if aggregating {
            for g in &group_by {
                // GROUP BY n: the n-th output; GROUP BY alias: that output.
                let expr = match g {
                    ast::Expr::Value(v) if matches!(&v.value, ast::Value::Number(..)) => {
                        let n = constant_u64(&binder, g, "GROUP BY position")? as usize;
                        let item = items.get(n.wrapping_sub(1)).ok_or_else(|| {
                            QueryError::invalid(format!(
                                "GROUP BY position {n} is not in the SELECT list"
                            ))
                        })?;
                        item_ast(item)
                    }
                    other => substitute_aliases(other, &scope, &items),
                };
                if contains_aggregate(&expr) {
                    return Err(QueryError::invalid("GROUP BY cannot use an aggregate"));
                }
                let key = binder.bind(&expr)?;
                if !context.keys.contains(&key) {
                    context.keys.push(key);
                }
            }
        } else {
            // DISTINCT: group by every output.
            for item in &items {
                let key = binder.bind(&item_ast(item))?;
                context.keys.push(key);
            }
        }
        let mut exprs = Vec::with_capacity(items.len());
        for item in &items {
            let expr = binder.bind_post_agg(&item_ast(item), &mut context)?;
            columns.push(ResultColumn {
                name: item.name.clone(),
                data_type: expr.data_type(),
                nullable: true,
            });
            exprs.push(expr);
        }
        let having = select
            .having
            .as_ref()
            .map(|h| binder.bind_post_agg(&substitute_aliases(h, &scope, &items), &mut context))
            .transpose()?;
        for o in &order_by {
            let descending = o.options.asc == Some(false);
            let index = order_target(&binder, &o.expr, &items, &scope)?;
            let index = match index {
                Some(i) => i,
                None => {
                    if distinct && !aggregating {
                        return Err(QueryError::invalid(format!(
                            "ORDER BY `{}` is not in the SELECT list of a SELECT DISTINCT",
                            o.expr
                        ))
                        .at(SourceText::position(o.expr.span())));
                    }
                    let expr = binder.bind_post_agg(
                        &substitute_aliases(&o.expr, &scope, &items),
                        &mut context,
                    )?;
                    match exprs.iter().position(|e| *e == expr) {
                        Some(i) => i,
                        None => {
                            exprs.push(expr);
                            exprs.len() - 1
                        }
                    }
                }
            };
            order.push((index, descending));
        }
        Body::Aggregate {
            keys: context.keys,
            aggs: context.aggs,
            having,
            exprs,
        }
    } else {
        let mut exprs = Vec::with_capacity(items.len());
        for item in &items {
            let expr = match item.column {
                Some((t, c)) => Expr::column(scope.slot(t, c), scope.tables[t].column_type(c)),
                None => binder.bind(&item_ast(item))?,
            };
            columns.push(ResultColumn {
                name: item.name.clone(),
                data_type: expr.data_type(),
                nullable: true,
            });
            exprs.push(expr);
        }
        for o in &order_by {
            let descending = o.options.asc == Some(false);
            let index = match order_target(&binder, &o.expr, &items, &scope)? {
                Some(i) => i,
                None => {
                    let expr = binder.bind(&o.expr)?;
                    match exprs.iter().position(|e| *e == expr) {
                        Some(i) => i,
                        None => {
                            exprs.push(expr);
                            exprs.len() - 1
                        }
                    }
                }
            };
            order.push((index, descending));
        }
        Body::Project { exprs }
    };
    // NULL-typed outputs are stored as nullable BIGINT.
    for column in &mut columns {
        if column.data_type == DataType::Null {
            column.data_type = DataType::I64;
        }
    }

    let (limit, offset) = match &query.limit_clause {
        None => (None, 0),
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(QueryError::unsupported("LIMIT … BY"));
            }
            let limit = limit
                .as_ref()
                .map(|l| constant_u64(&binder, l, "LIMIT"))
                .transpose()?;
            let offset = offset
                .as_ref()
                .map(|o| constant_u64(&binder, &o.value, "OFFSET"))
                .transpose()?
                .unwrap_or(0);
            (limit, offset)
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (
            Some(constant_u64(&binder, limit, "LIMIT")?),
            constant_u64(&binder, offset, "OFFSET")?,
        ),
    };

    // Columns each table must deliver after its filter.
    let mut used_slots: BTreeSet<usize> = BTreeSet::new();
    let mut collect = |e: &Expr| used_slots.extend(e.slots());
    residual.iter().for_each(&mut collect);
    match &body {
        Body::Project { exprs } => exprs.iter().for_each(&mut collect),
        Body::Aggregate { keys, aggs, .. } => {
            keys.iter().for_each(&mut collect);
            aggs.iter().flat_map(|a| &a.args).for_each(&mut collect);
        }
    }
    for (edge, _) in &joins {
        match edge {
            JoinEdge::Equi { left, right } => {
                used_slots.insert(scope.slot(left.0, left.1));
                used_slots.insert(scope.slot(right.0, right.1));
            }
            JoinEdge::Near {
                own,
                partner,
                own_position,
                partner_position,
                by_sub_chunk,
                ..
            } => {
                for (t, (ra, decl)) in [(*own, *own_position), (*partner, *partner_position)] {
                    used_slots.insert(scope.slot(t, ra));
                    used_slots.insert(scope.slot(t, decl));
                    if *by_sub_chunk {
                        // The subChunkId pseudo-column groups the rows.
                        used_slots.insert(scope.slot(t, scope.tables[t].columns.len() + 1));
                    }
                }
            }
        }
    }
    for (t, plan) in tables.iter_mut().enumerate() {
        let table = &scope.tables[t];
        let filter = if local_filters[t].is_empty() {
            None
        } else {
            let combined = Expr::and_all(std::mem::take(&mut local_filters[t]));
            Some(localize(&scope, t, &combined)?)
        };
        let mut read: BTreeSet<usize> = BTreeSet::new();
        if let Some(f) = &filter {
            stat_predicates(f, &mut plan.stats);
            read.extend(f.slots());
        }
        plan.keep = used_slots
            .iter()
            .filter_map(|&slot| {
                scope
                    .locate_slot(slot)
                    .filter(|(owner, _)| *owner == t)
                    .map(|(_, c)| c)
            })
            .collect();
        read.extend(
            plan.keep
                .iter()
                .copied()
                .filter(|&c| c < table.columns.len()),
        );
        plan.read = read.into_iter().collect();
        plan.filter = filter;
        plan.sub_chunks = sub_chunks[t].take().map(Arc::new);
    }

    let residual: Vec<ResidualPart> = residual
        .into_iter()
        .enumerate()
        .map(|(index, expr)| ResidualPart {
            expr,
            edge: joins.iter().position(|(_, part)| *part == index),
        })
        .collect();
    let mut joins: Vec<JoinEdge> = joins.into_iter().map(|(edge, _)| edge).collect();
    let mut residual = residual;
    // `o1.objectId <> o2.objectId` in a near-neighbour self-join whose two
    // sides read the same rows: the kernel leaves out each object's pair
    // with itself, and the condition is enforced by the join.
    for (index, edge) in joins.iter_mut().enumerate() {
        let JoinEdge::Near {
            own,
            partner,
            by_sub_chunk: true,
            exclude_same,
            ..
        } = edge
        else {
            continue;
        };
        let (a, b) = (&scope.tables[*own], &scope.tables[*partner]);
        let same_table = a.database == b.database && a.table == b.table;
        if !same_table || tables[*own].filter != tables[*partner].filter {
            continue;
        }
        let (Some(key_a), Some(key_b)) = (a.placement.director_key(), b.placement.director_key())
        else {
            continue;
        };
        let (slot_a, slot_b) = (scope.slot(*own, key_a), scope.slot(*partner, key_b));
        for part in residual.iter_mut().filter(|p| p.edge.is_none()) {
            if let Expr::Binary {
                op: BinaryOp::NotEq,
                left,
                right,
            } = &part.expr
                && let (Expr::Column { slot: l, .. }, Expr::Column { slot: r, .. }) =
                    (&**left, &**right)
                && ((*l, *r) == (slot_a, slot_b) || (*l, *r) == (slot_b, slot_a))
            {
                *exclude_same = true;
                part.edge = Some(index);
            }
        }
    }
    Ok(SelectPlan {
        scope,
        tables,
        chunks: chunks.map(|c| c.into_iter().collect()),
        empty,
        joins,
        residual,
        body,
        columns,
        order,
        limit,
        offset,
        region: restrictor.map(|r| r.region),
    })
}

/// The director table a partitioned table's key refers to.
fn director_name(table: &ScopeTable) -> String {
    match &table.placement {
        Placement::Child { director, .. } => director.clone(),
        _ => table.table.clone(),
    }
}

/// An ORDER BY item that names an output: a position, an alias, or the
/// same expression as an output column.
fn order_target(
    binder: &Binder<'_>,
    expr: &ast::Expr,
    items: &[SelectItem],
    scope: &Scope,
) -> Result<Option<usize>> {
    if let ast::Expr::Value(v) = expr
        && let ast::Value::Number(..) = &v.value
    {
        let n = constant_u64(binder, expr, "ORDER BY position")? as usize;
        return if n >= 1 && n <= items.len() {
            Ok(Some(n - 1))
        } else {
            Err(
                QueryError::invalid(format!("ORDER BY position {n} is not in the SELECT list"))
                    .at(SourceText::position(expr.span())),
            )
        };
    }
    if let ast::Expr::Identifier(ident) = expr {
        if let Some(index) = items.iter().position(|i| {
            i.alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&ident.value))
        }) {
            return Ok(Some(index));
        }
        let _ = scope;
    }
    // The same text as an unaliased output.
    let text = expr.to_string();
    Ok(items
        .iter()
        .position(|i| i.alias.is_none() && i.ast.as_ref().is_some_and(|a| a.to_string() == text)))
}
