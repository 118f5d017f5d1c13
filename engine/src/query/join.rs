//! Chunk-local joins: the filtered rows of each table of one chunk (and of
//! the tables stored whole) combined into joined rows.
//!
//! Tables are joined one at a time in a left-deep order: each next table is
//! one connected to the joined set by an equality (hash join) or a
//! near-neighbour condition (a declination sweep), else a cross product.
//! The result is, per table, the row index of every joined row; the caller
//! gathers the columns it needs.

use skyscan_format::ColumnData;
use skyscan_kernel::agg::KeyEncoder;
use skyscan_kernel::build::{cast_column, f64_values, i64_values};
use skyscan_kernel::hash::FxHashMap;
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
}

/// Joins `inputs` (one per table of the scope) under `edges`, producing at
/// most `max_rows` joined rows (an error beyond: a runaway cross product).
pub fn join(inputs: &[&TableRows], edges: &[JoinEdge], max_rows: usize) -> Result<Joined> {
    let tables = inputs.len();
    let mut joined = Joined {
        indices: vec![Vec::new(); tables],
        rows: 0,
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
    for _ in 1..tables {
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
        let near = edges.iter().find_map(|e| match e {
            JoinEdge::Near {
                own,
                partner,
                own_position,
                partner_position,
                radius_deg,
                ..
            } if *partner == next && done[*own] => {
                Some((*own, *own_position, *partner_position, *radius_deg))
            }
            JoinEdge::Near {
                own,
                partner,
                own_position,
                partner_position,
                radius_deg,
                ..
            } if *own == next && done[*partner] => {
                Some((*partner, *partner_position, *own_position, *radius_deg))
            }
            _ => None,
        });
        let pairs: Vec<(u32, u32)> = if !equi.is_empty() {
            hash_join(inputs, &joined, &equi, next, max_rows)?
        } else if let Some((joined_table, joined_position, next_position, radius)) = near {
            near_join(
                inputs,
                &joined,
                joined_table,
                joined_position,
                next,
                next_position,
                radius,
                max_rows,
            )?
        } else {
            cross_join(joined.rows, inputs[next].rows, max_rows)?
        };
        // pairs: (joined row, row of `next`).
        let mut indices = vec![Vec::with_capacity(pairs.len()); tables];
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
        let mut heads: FxHashMap<i64, u32> = FxHashMap::default();
        let mut chain = vec![u32::MAX; build_rows];
        for row in (0..build_rows).rev() {
            if build.is_valid(row) {
                let key = build_values[row];
                if let Some(previous) = heads.insert(key, row as u32) {
                    chain[row] = previous;
                }
            }
        }
        for (probe_row, &key) in probe_values.iter().enumerate() {
            if !probe.is_valid(probe_row) {
                continue;
            }
            let mut cursor = heads.get(&key).copied().unwrap_or(u32::MAX);
            while cursor != u32::MAX {
                pairs.push((probe_row as u32, cursor));
                if pairs.len() > max_rows {
                    return Err(limit_error(max_rows));
                }
                cursor = chain[cursor as usize];
            }
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

/// Candidate pairs within `radius_deg` (a superset decided exactly by the
/// residual `scisql_angSep` condition): a sweep over declination with a
/// chord-length test on unit vectors.
#[allow(clippy::too_many_arguments)]
fn near_join(
    inputs: &[&TableRows],
    joined: &Joined,
    joined_table: usize,
    joined_position: (usize, usize),
    next: usize,
    next_position: (usize, usize),
    radius_deg: f64,
    max_rows: usize,
) -> Result<Vec<(u32, u32)>> {
    let a = inputs[joined_table];
    let b = inputs[next];
    let (a_ra, a_decl) = (
        f64_values(a.column(joined_position.0)?),
        f64_values(a.column(joined_position.1)?),
    );
    let (b_ra, b_decl) = (
        f64_values(b.column(next_position.0)?),
        f64_values(b.column(next_position.1)?),
    );
    let a_valid = |r: usize| {
        a.column(joined_position.0).is_ok_and(|c| c.is_valid(r))
            && a.column(joined_position.1).is_ok_and(|c| c.is_valid(r))
    };
    let b_valid = |r: usize| {
        b.column(next_position.0).is_ok_and(|c| c.is_valid(r))
            && b.column(next_position.1).is_ok_and(|c| c.is_valid(r))
    };
    let unit = |ra: f64, decl: f64| {
        let (ra, decl) = (ra.to_radians(), decl.to_radians());
        [decl.cos() * ra.cos(), decl.cos() * ra.sin(), decl.sin()]
    };
    // A little slack so that every pair sciSQL accepts is a candidate.
    let slack = 1e-9;
    let chord = 2.0 * ((radius_deg + slack).to_radians() / 2.0).sin();
    let chord2 = chord * chord;
    let mut b_order: Vec<u32> = (0..b.rows as u32)
        .filter(|&r| b_valid(r as usize) && b_decl[r as usize].is_finite())
        .collect();
    b_order.sort_unstable_by(|&x, &y| b_decl[x as usize].total_cmp(&b_decl[y as usize]));
    let b_sorted_decl: Vec<f64> = b_order.iter().map(|&r| b_decl[r as usize]).collect();
    let b_units: Vec<[f64; 3]> = b_order
        .iter()
        .map(|&r| unit(b_ra[r as usize], b_decl[r as usize]))
        .collect();
    // Pairs between rows of table `joined_table` and rows of `next`.
    let mut table_pairs: Vec<(u32, u32)> = Vec::new();
    for row in 0..a.rows {
        if !a_valid(row) || !a_decl[row].is_finite() || !a_ra[row].is_finite() {
            continue;
        }
        let decl = a_decl[row];
        let u = unit(a_ra[row], decl);
        let low = b_sorted_decl.partition_point(|&d| d < decl - radius_deg - slack);
        for k in low..b_sorted_decl.len() {
            if b_sorted_decl[k] > decl + radius_deg + slack {
                break;
            }
            let v = b_units[k];
            let d = [u[0] - v[0], u[1] - v[1], u[2] - v[2]];
            if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= chord2 {
                table_pairs.push((row as u32, b_order[k]));
                if table_pairs.len() > max_rows {
                    return Err(limit_error(max_rows));
                }
            }
        }
    }
    // Map rows of `joined_table` to the joined rows that hold them.
    let source = &joined.indices[joined_table];
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
    pairs.sort_unstable();
    Ok(pairs)
}
