//! Chunk-local joins: the filtered rows of each table of one chunk (and of
//! the tables stored whole) combined into joined rows.
//!
//! Tables are joined one at a time in a left-deep order: each next table is
//! one connected to the joined set by an equality (hash join) or a
//! near-neighbour condition (a declination sweep), else a cross product.
//! The result is, per table, the row index of every joined row; the caller
//! gathers the columns it needs.

use std::cell::RefCell;
use std::collections::BTreeMap;

use skyscan_format::ColumnData;
use skyscan_kernel::agg::KeyEncoder;
use skyscan_kernel::build::{cast_column, f64_values, i64_values};
use skyscan_kernel::hash::FxHashMap;
use skyscan_kernel::spatial::ang_sep::Within;
use skyscan_kernel::spatial::join::{JoinParams, NeighbourJoin};
use skyscan_kernel::take::take;
use skyscan_kernel::value::DataType;

use super::error::{QueryError, Result};
use super::plan::JoinEdge;

/// (table, column).
type ColumnRef = (usize, usize);

/// The rows of one table taking part in a join: columns by schema index
/// (pseudo-columns after them), `None` for columns not kept.
#[derive(Debug, Clone, Default)]
pub struct TableRows {
    /// Columns by index.
    pub columns: Vec<Option<ColumnData>>,
    /// Number of rows.
    pub rows: usize,
}

impl TableRows {
    fn column(&self, index: usize) -> Result<&ColumnData> {
        self.columns
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| QueryError::internal(format!("join input lacks column {index}")))
    }
}

/// Joined rows: `indices[t][r]` is the row of table `t` in joined row `r`.
#[derive(Debug, Clone, Default)]
pub struct Joined {
    /// Per table (in scope order), the row indices; empty for tables not joined.
    pub indices: Vec<Vec<u32>>,
    /// Number of joined rows.
    pub rows: usize,
    /// Per join edge, whether the join itself enforced its condition (so
    /// the cross-table filter need not test it again).
    pub enforced: Vec<bool>,
}

/// Joins `inputs` (one per table of the scope) under `edges`, producing at
/// most `max_rows` joined rows (an error beyond: a runaway cross product).
///
/// With `count_only` (the caller needs only how many joined rows there are,
/// and every remaining condition belongs to a join edge), a last
/// near-neighbour step that leaves every edge enforced only counts its
/// pairs: `rows` is the count and `indices` stay empty.
pub fn join(
    inputs: &[&TableRows],
    edges: &[JoinEdge],
    max_rows: usize,
    count_only: bool,
) -> Result<Joined> {
    let tables = inputs.len();
    let mut joined = Joined {
        indices: vec![Vec::new(); tables],
        rows: 0,
        enforced: vec![false; edges.len()],
    };
    // Inner joins: a table without rows (in this chunk) joins to nothing.
    if tables == 0 || inputs.iter().any(|t| t.rows == 0) {
        return Ok(joined);
    }
    // Start from the own side of a near-neighbour join, else table 0.
    let first = edges
        .iter()
        .find_map(|e| match e {
            JoinEdge::Near { own, .. } => Some(*own),
            JoinEdge::Equi { .. } => None,
        })
        .unwrap_or(0);
    let mut done = vec![false; tables];
    done[first] = true;
    joined.indices[first] = (0..inputs[first].rows as u32).collect();
    joined.rows = inputs[first].rows;
    for step in 1..tables {
        // The next table: connected by an edge if possible.
        let connected = |t: usize| {
            edges.iter().any(|e| match e {
                JoinEdge::Equi { left, right } => {
                    (left.0 == t && done[right.0]) || (right.0 == t && done[left.0])
                }
                JoinEdge::Near { own, partner, .. } => {
                    (*partner == t && done[*own]) || (*own == t && done[*partner])
                }
            })
        };
        let next = (0..tables)
            .find(|&t| !done[t] && connected(t))
            .or_else(|| (0..tables).find(|&t| !done[t]))
            .ok_or_else(|| QueryError::internal("join order"))?;
        let equi: Vec<(ColumnRef, ColumnRef)> = edges
            .iter()
            .filter_map(|e| match e {
                JoinEdge::Equi { left, right } if left.0 == next && done[right.0] => {
                    Some((*right, *left))
                }
                JoinEdge::Equi { left, right } if right.0 == next && done[left.0] => {
                    Some((*left, *right))
                }
                _ => None,
            })
            .collect();
        let near = edges.iter().enumerate().find_map(|(index, e)| match e {
            JoinEdge::Near {
                own,
                partner,
                own_position,
                partner_position,
                radius_deg,
                inclusive,
                by_sub_chunk,
                exclude_same,
            } if *partner == next && done[*own] => Some((
                index,
                *own,
                *own_position,
                *partner_position,
                NearSpec {
                    radius_deg: *radius_deg,
                    inclusive: *inclusive,
                    by_sub_chunk: *by_sub_chunk,
                    exclude_same: *exclude_same,
                },
            )),
            JoinEdge::Near {
                own,
                partner,
                own_position,
                partner_position,
                radius_deg,
                inclusive,
                by_sub_chunk,
                exclude_same,
            } if *own == next && done[*partner] => Some((
                index,
                *partner,
                *partner_position,
                *own_position,
                NearSpec {
                    radius_deg: *radius_deg,
                    inclusive: *inclusive,
                    by_sub_chunk: *by_sub_chunk,
                    exclude_same: *exclude_same,
                },
            )),
            _ => None,
        });
        let pairs: Vec<(u32, u32)> = if !equi.is_empty() {
            for (index, edge) in edges.iter().enumerate() {
                if let JoinEdge::Equi { left, right } = edge
                    && ((left.0 == next && done[right.0]) || (right.0 == next && done[left.0]))
                {
                    joined.enforced[index] = true;
                }
            }
            hash_join(inputs, &joined, &equi, next, max_rows)?
        } else if let Some((index, joined_table, joined_position, next_position, spec)) = near {
            joined.enforced[index] = true;
            let counting = count_only && step + 1 == tables && joined.enforced.iter().all(|&e| e);
            let (pairs, count) = near_join(
                inputs,
                &joined,
                joined_table,
                joined_position,
                next,
                next_position,
                spec,
                max_rows,
                counting,
            )?;
            if counting {
                joined.rows = count;
                joined.indices = vec![Vec::new(); tables];
                return Ok(joined);
            }
            pairs
        } else {
            cross_join(joined.rows, inputs[next].rows, max_rows)?
        };
        // pairs: (joined row, row of `next`).
        let mut indices = vec![Vec::new(); tables];
        for t in 0..tables {
            if done[t] {
                let source = &joined.indices[t];
                indices[t] = pairs.iter().map(|&(r, _)| source[r as usize]).collect();
            }
        }
        indices[next] = pairs.iter().map(|&(_, n)| n).collect();
        done[next] = true;
        joined.rows = pairs.len();
        joined.indices = indices;
    }
    Ok(joined)
}

/// Equal integer keys: maps `mapped` (key → its rows, chained), streams
/// `streamed` through the map and emits (mapped row, streamed row) per
/// match; null keys match nothing. At most `max_rows` matches.
fn int_key_pairs(
    mapped: &[i64],
    mapped_valid: impl Fn(usize) -> bool,
    streamed: &[i64],
    streamed_valid: impl Fn(usize) -> bool,
    max_rows: usize,
    mut emit: impl FnMut(u32, u32),
) -> Result<()> {
    let mut heads: FxHashMap<i64, u32> = FxHashMap::default();
    heads.reserve(mapped.len());
    let mut chain = vec![u32::MAX; mapped.len()];
    for row in (0..mapped.len()).rev() {
        if mapped_valid(row)
            && let Some(previous) = heads.insert(mapped[row], row as u32)
        {
            chain[row] = previous;
        }
    }
    let mut emitted = 0usize;
    for (row, key) in streamed.iter().enumerate() {
        if !streamed_valid(row) {
            continue;
        }
        let mut cursor = heads.get(key).copied().unwrap_or(u32::MAX);
        while cursor != u32::MAX {
            emit(cursor, row as u32);
            emitted += 1;
            if emitted > max_rows {
                return Err(limit_error(max_rows));
            }
            cursor = chain[cursor as usize];
        }
    }
    Ok(())
}

fn limit_error(max_rows: usize) -> QueryError {
    QueryError::limit(format!(
        "a join in one chunk produced more than {max_rows} rows; add conditions or raise the join limit"
    ))
}

fn cross_join(left: usize, right: usize, max_rows: usize) -> Result<Vec<(u32, u32)>> {
    if left.saturating_mul(right) > max_rows {
        return Err(limit_error(max_rows));
    }
    Ok((0..left as u32)
        .flat_map(|l| (0..right as u32).map(move |r| (l, r)))
        .collect())
}

/// The key columns of one side, cast to a type both sides share.
fn key_type(a: DataType, b: DataType) -> DataType {
    if a.is_integer() && b.is_integer() {
        DataType::I64
    } else if a.is_string() && b.is_string() {
        if a == DataType::Binary || b == DataType::Binary {
            DataType::Binary
        } else {
            DataType::Utf8
        }
    } else {
        DataType::F64
    }
}

fn hash_join(
    inputs: &[&TableRows],
    joined: &Joined,
    equi: &[(ColumnRef, ColumnRef)],
    next: usize,
    max_rows: usize,
) -> Result<Vec<(u32, u32)>> {
    // Build side: the new table's key columns; probe side: the joined rows'.
    let mut build_keys = Vec::with_capacity(equi.len());
    let mut probe_keys = Vec::with_capacity(equi.len());
    for &((pt, pc), (_, bc)) in equi {
        let probe_source = inputs[pt].column(pc)?;
        let build_source = inputs[next].column(bc)?;
        let t = key_type(
            DataType::of_column(probe_source.column_type()),
            DataType::of_column(build_source.column_type()),
        );
        let probe = take(probe_source, &joined.indices[pt])
            .map_err(|e| QueryError::internal(e.to_string()))?;
        probe_keys.push(cast_column(&probe, t)?);
        build_keys.push(cast_column(build_source, t)?);
    }
    let build_rows = inputs[next].rows;
    let mut pairs = Vec::new();
    // One integer key: an integer map; otherwise encoded keys.
    if let ([build], [probe]) = (build_keys.as_slice(), probe_keys.as_slice())
        && matches!(build, ColumnData::I64(_))
    {
        let build_values = i64_values(build)?;
        let probe_values = i64_values(probe)?;
        // The map on the smaller side: a cut Object table against all of
        // a chunk's Sources maps the objects and streams the sources.
        let probe_valid = |row: usize| probe.is_valid(row);
        let build_valid = |row: usize| build.is_valid(row);
        if probe_values.len() < build_rows {
            int_key_pairs(
                &probe_values,
                probe_valid,
                &build_values,
                build_valid,
                max_rows,
                |m, s| pairs.push((m, s)),
            )?;
        } else {
            int_key_pairs(
                &build_values,
                build_valid,
                &probe_values,
                probe_valid,
                max_rows,
                |m, s| pairs.push((s, m)),
            )?;
        }
        return Ok(pairs);
    }
    let build_refs: Vec<&ColumnData> = build_keys.iter().collect();
    let probe_refs: Vec<&ColumnData> = probe_keys.iter().collect();
    let build_encoder = KeyEncoder::new(&build_refs)?;
    let probe_encoder = KeyEncoder::new(&probe_refs)?;
    let all_valid = |columns: &[&ColumnData], row: usize| columns.iter().all(|c| c.is_valid(row));
    let mut heads: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
    let mut chain = vec![u32::MAX; build_rows];
    let mut scratch = Vec::new();
    for row in (0..build_rows).rev() {
        if !all_valid(&build_refs, row) {
            continue;
        }
        scratch.clear();
        build_encoder.encode(row, &mut scratch);
        if let Some(previous) = heads.insert(scratch.clone().into_boxed_slice(), row as u32) {
            chain[row] = previous;
        }
    }
    for probe_row in 0..joined.rows {
        if !all_valid(&probe_refs, probe_row) {
            continue;
        }
        scratch.clear();
        probe_encoder.encode(probe_row, &mut scratch);
        let mut cursor = heads.get(scratch.as_slice()).copied().unwrap_or(u32::MAX);
        while cursor != u32::MAX {
            pairs.push((probe_row as u32, cursor));
            if pairs.len() > max_rows {
                return Err(limit_error(max_rows));
            }
            cursor = chain[cursor as usize];
        }
    }
    Ok(pairs)
}

/// Positions of one side as doubles, NULL rows as NaN (the kernel skips
/// invalid positions, as `scisql_angSep` gives NULL for them).
fn positions(column: &ColumnData) -> Vec<f64> {
    let mut values = f64_values(column).into_owned();
    if let Some(validity) = column.validity() {
        for (row, value) in values.iter_mut().enumerate() {
            if !validity.get(row) {
                *value = f64::NAN;
            }
        }
    }
    values
}

thread_local! {
    /// The join kernel's scratch, reused by every chunk a worker runs (fresh
    /// pages are slow to come by on this VM; MEASURED.md).
    static NEIGHBOURS: RefCell<(NeighbourJoin, Vec<u32>, Vec<u32>)> =
        RefCell::new((NeighbourJoin::new(), Vec::new(), Vec::new()));
}

/// The condition of a near-neighbour join step.
#[derive(Debug, Clone, Copy)]
struct NearSpec {
    radius_deg: f64,
    inclusive: bool,
    by_sub_chunk: bool,
    exclude_same: bool,
}

/// The rows of each sub-chunk, by the subChunkId pseudo-column (the last
/// slot of a partitioned table's rows).
fn rows_by_sub_chunk(rows: &TableRows) -> Result<BTreeMap<i64, Vec<u32>>> {
    let index = rows
        .columns
        .len()
        .checked_sub(1)
        .ok_or_else(|| QueryError::internal("no subChunkId column"))?;
    let sub_chunks = i64_values(rows.column(index)?)?;
    let mut groups: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (row, &sub) in sub_chunks.iter().enumerate() {
        groups.entry(sub).or_default().push(row as u32);
    }
    Ok(groups)
}

/// Pairs with `scisql_angSep(joined, next) < radius` (or `<=`), exactly as
/// sciSQL decides them (the kernel rechecks near-threshold pairs with the
/// haversine), as (joined row, row of `next`). With `by_sub_chunk`, each
/// sub-chunk's own rows of the joined table meet the rows `next` holds for
/// that sub-chunk (its own and overlap rows), as Qserv's sub-chunk joins do.
#[allow(clippy::too_many_arguments)]
fn near_join(
    inputs: &[&TableRows],
    joined: &Joined,
    joined_table: usize,
    joined_position: (usize, usize),
    next: usize,
    next_position: (usize, usize),
    spec: NearSpec,
    max_rows: usize,
    count_only: bool,
) -> Result<(Vec<(u32, u32)>, usize)> {
    let a = inputs[joined_table];
    let b = inputs[next];
    let (a_ra, a_decl) = (
        positions(a.column(joined_position.0)?),
        positions(a.column(joined_position.1)?),
    );
    let (b_ra, b_decl) = (
        positions(b.column(next_position.0)?),
        positions(b.column(next_position.1)?),
    );
    let params = JoinParams {
        radius_deg: spec.radius_deg,
        comparison: if spec.inclusive {
            Within::LessOrEqual
        } else {
            Within::Less
        },
        max_pairs: max_rows,
    };
    // How many joined rows hold each row of `joined_table` (a pair of rows
    // makes that many joined rows).
    // Only a count needs it: pairs are expanded through `first_of` below.
    let source = &joined.indices[joined_table];
    let mut multiplicity: Vec<u32> = Vec::new();
    if count_only {
        multiplicity.resize(a.rows, 0);
        source
            .iter()
            .for_each(|&row| multiplicity[row as usize] += 1);
    }
    let one_each = source.len() == a.rows && multiplicity.iter().all(|&m| m == 1);
    let mut counted: usize = 0;
    let mut run = |a_rows: Option<&[u32]>,
                   b_rows: Option<&[u32]>,
                   same: Option<&[u32]>,
                   pairs: &mut Vec<(u32, u32)>|
     -> Result<()> {
        let pick = |values: &[f64], rows: Option<&[u32]>| -> Vec<f64> {
            match rows {
                Some(rows) => rows.iter().map(|&r| values[r as usize]).collect(),
                None => values.to_vec(),
            }
        };
        let (ar, ad) = (pick(&a_ra, a_rows), pick(&a_decl, a_rows));
        let (br, bd) = (pick(&b_ra, b_rows), pick(&b_decl, b_rows));
        NEIGHBOURS.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (kernel, out_a, out_b) = &mut *guard;
            out_a.clear();
            out_b.clear();
            kernel
                .run(&ar, &ad, &br, &bd, &params, same, out_a, out_b)
                .map_err(|e| match e {
                    skyscan_kernel::spatial::SpatialError::TooManyPairs { .. } => {
                        limit_error(max_rows)
                    }
                    other => QueryError::invalid(format!("near-neighbour join: {other:?}")),
                })?;
            if count_only {
                counted += if one_each {
                    out_a.len()
                } else {
                    out_a
                        .iter()
                        .map(|&i| {
                            multiplicity[a_rows.map_or(i, |rows| rows[i as usize]) as usize]
                                as usize
                        })
                        .sum()
                };
                return Ok(());
            }
            for (&i, &j) in out_a.iter().zip(out_b.iter()) {
                let ai = a_rows.map_or(i, |rows| rows[i as usize]);
                let bj = b_rows.map_or(j, |rows| rows[j as usize]);
                pairs.push((ai, bj));
            }
            if pairs.len() > max_rows {
                return Err(limit_error(max_rows));
            }
            Ok(())
        })
    };
    // Pairs between rows of `joined_table` and rows of `next`.
    let mut table_pairs: Vec<(u32, u32)> = Vec::new();
    if spec.by_sub_chunk {
        let a_groups = rows_by_sub_chunk(a)?;
        let b_groups = rows_by_sub_chunk(b)?;
        let mut same: Vec<u32> = Vec::new();
        for (sub_chunk, a_rows) in &a_groups {
            if let Some(b_rows) = b_groups.get(sub_chunk) {
                // Both sides read the same own rows first (same row groups,
                // same filter): own row i of A is row i of B's group.
                let same_rows = if spec.exclude_same {
                    if a_rows.len() > b_rows.len() {
                        return Err(QueryError::internal(
                            "a self-join's sides do not read the same own rows",
                        ));
                    }
                    same.clear();
                    same.extend(0..a_rows.len() as u32);
                    Some(same.as_slice())
                } else {
                    None
                };
                run(Some(a_rows), Some(b_rows), same_rows, &mut table_pairs)?;
            }
        }
    } else {
        run(None, None, None, &mut table_pairs)?;
    }
    if count_only {
        return Ok((Vec::new(), counted));
    }
    // Map rows of `joined_table` to the joined rows that hold them.
    let mut first_of: Vec<u32> = vec![u32::MAX; a.rows];
    let mut chain: Vec<u32> = vec![u32::MAX; source.len()];
    for (joined_row, &table_row) in source.iter().enumerate().rev() {
        let slot = &mut first_of[table_row as usize];
        chain[joined_row] = *slot;
        *slot = joined_row as u32;
    }
    let mut pairs = Vec::with_capacity(table_pairs.len());
    for (table_row, next_row) in table_pairs {
        let mut cursor = first_of[table_row as usize];
        while cursor != u32::MAX {
            pairs.push((cursor, next_row));
            if pairs.len() > max_rows {
                return Err(limit_error(max_rows));
            }
            cursor = chain[cursor as usize];
        }
    }
    let count = pairs.len();
    Ok((pairs, count))
}
