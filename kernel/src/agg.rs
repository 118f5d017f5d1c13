//! Aggregation: `GROUP BY` with `COUNT`, `SUM`, `AVG`, `MIN`, `MAX`, the
//! standard deviations and variances, `DISTINCT` variants, as partial states
//! per chunk that merge into one (BRIEF §3: COUNT → sum of counts, AVG →
//! sum / sum of counts).
//!
//! Groups are found by hashing an encoding of the key values
//! ([`KeyEncoder`]): equal keys (under MySQL's comparison — text without
//! case, `-0.0 = 0.0`) encode to equal bytes. One integer key, the common
//! `GROUP BY objectId`, uses an integer map instead.

use std::borrow::Cow;

use skyscan_format::{Bitmap, ColumnData, PrimitiveColumn, VarColumn};

use crate::batch::Batch;
use crate::build::{append_rows, cast_column, f64_values, i64_values};
use crate::error::{KernelError, Result};
use crate::eval::eval;
use crate::expr::{AggFunc, Expr};
use crate::hash::{FxHashMap, FxHashSet};
use crate::value::{DataType, Datum, compare_text_ci};

/// One aggregate of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    /// The function.
    pub func: AggFunc,
    /// The arguments (none for `COUNT(*)`; several only for `COUNT(DISTINCT a, b)`).
    pub args: Vec<Expr>,
    /// `DISTINCT`.
    pub distinct: bool,
}

impl AggSpec {
    /// The result type.
    pub fn result_type(&self) -> DataType {
        let arg = self.args.first().map_or(DataType::I64, Expr::data_type);
        self.func.result_type(arg)
    }
}

/// A view of one column for key encoding.
enum KeyView<'a> {
    Int(Cow<'a, [i64]>),
    Float(Cow<'a, [f64]>),
    Text(&'a VarColumn),
    Bytes(&'a VarColumn),
}

/// Encodes rows of a set of columns into bytes that are equal exactly when
/// the rows are equal as keys.
pub struct KeyEncoder<'a> {
    views: Vec<(KeyView<'a>, Option<&'a Bitmap>)>,
}

impl<'a> KeyEncoder<'a> {
    /// An encoder over `columns` (all of one length).
    pub fn new(columns: &[&'a ColumnData]) -> Result<KeyEncoder<'a>> {
        let views = columns
            .iter()
            .map(|&column| {
                let view = match column {
                    ColumnData::Utf8(c) => KeyView::Text(c),
                    ColumnData::Binary(c) => KeyView::Bytes(c),
                    ColumnData::F32(_) | ColumnData::F64(_) => KeyView::Float(f64_values(column)),
                    other => KeyView::Int(i64_values(other)?),
                };
                Ok((view, column.validity()))
            })
            .collect::<Result<_>>()?;
        Ok(KeyEncoder { views })
    }

    /// Appends the encoding of `row` to `out`.
    #[inline]
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) {
        for (view, validity) in &self.views {
            if validity.is_some_and(|v| !v.get(row)) {
                out.push(0);
                continue;
            }
            out.push(1);
            match view {
                KeyView::Int(v) => out.extend_from_slice(&v[row].to_le_bytes()),
                KeyView::Float(v) => {
                    out.extend_from_slice(&canonical_f64_bits(v[row]).to_le_bytes())
                }
                KeyView::Text(c) => {
                    let value = c.value(row);
                    let end = value.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
                    out.extend_from_slice(&(end as u32).to_le_bytes());
                    out.extend(value[..end].iter().map(u8::to_ascii_lowercase));
                }
                KeyView::Bytes(c) => {
                    let value = c.value(row);
                    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                    out.extend_from_slice(value);
                }
            }
        }
    }
}

/// The bits of a double with `-0.0` folded into `0.0` and every NaN into one.
#[inline]
pub fn canonical_f64_bits(value: f64) -> u64 {
    if value == 0.0 {
        0
    } else if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    }
}

/// How groups are looked up.
enum GroupMap {
    /// No GROUP BY: one group.
    Single,
    /// One numeric key, as a 64-bit word (integers as they are, doubles by
    /// their canonical bits), with a one-entry cache: rows arrive sorted by
    /// position, so keys like `FLOOR(decl)` come in long runs.
    Word {
        map: FxHashMap<u64, u32>,
        null_group: Option<u32>,
        last: Option<(u64, u32)>,
    },
    /// Anything else: encoded keys.
    Encoded(FxHashMap<Box<[u8]>, u32>),
}

/// The 64-bit words of a numeric key column (integers as they are,
/// doubles by their canonical bits), in one vectorizable pass.
fn key_words(column: &ColumnData) -> Result<Vec<u64>> {
    Ok(match column {
        ColumnData::F64(c) => c.values.iter().map(|&v| canonical_f64_bits(v)).collect(),
        ColumnData::F32(c) => c
            .values
            .iter()
            .map(|&v| canonical_f64_bits(f64::from(v)))
            .collect(),
        ColumnData::I64(c) => c.values.iter().map(|&v| v as u64).collect(),
        ColumnData::I32(c) => c.values.iter().map(|&v| i64::from(v) as u64).collect(),
        other => i64_values(other)?.iter().map(|&v| v as u64).collect(),
    })
}

/// The accumulators of one aggregate over all groups.
#[derive(Debug)]
enum Acc {
    Count(Vec<i64>),
    SumInt {
        sums: Vec<i128>,
        counts: Vec<i64>,
    },
    SumFloat {
        sums: Vec<f64>,
        counts: Vec<i64>,
    },
    MinMaxInt {
        values: Vec<i64>,
        counts: Vec<i64>,
        max: bool,
    },
    MinMaxFloat {
        values: Vec<f64>,
        counts: Vec<i64>,
        max: bool,
    },
    MinMaxBytes {
        values: Vec<Vec<u8>>,
        counts: Vec<i64>,
        max: bool,
        text: bool,
    },
    Moments {
        counts: Vec<i64>,
        means: Vec<f64>,
        m2: Vec<f64>,
    },
    Distinct(Vec<FxHashSet<Box<[u8]>>>),
}

impl Acc {
    fn new(spec: &AggSpec) -> Acc {
        let arg_type = spec.args.first().map_or(DataType::I64, Expr::data_type);
        if spec.distinct && !matches!(spec.func, AggFunc::Min | AggFunc::Max) {
            return Acc::Distinct(Vec::new());
        }
        match spec.func {
            AggFunc::Count => Acc::Count(Vec::new()),
            AggFunc::Sum if arg_type.is_integer() => Acc::SumInt {
                sums: Vec::new(),
                counts: Vec::new(),
            },
            AggFunc::Sum | AggFunc::Avg => Acc::SumFloat {
                sums: Vec::new(),
                counts: Vec::new(),
            },
            AggFunc::Min | AggFunc::Max => {
                let max = spec.func == AggFunc::Max;
                if arg_type.is_string() {
                    Acc::MinMaxBytes {
                        values: Vec::new(),
                        counts: Vec::new(),
                        max,
                        text: arg_type == DataType::Utf8,
                    }
                } else if arg_type.is_integer() || arg_type == DataType::Null {
                    Acc::MinMaxInt {
                        values: Vec::new(),
                        counts: Vec::new(),
                        max,
                    }
                } else {
                    Acc::MinMaxFloat {
                        values: Vec::new(),
                        counts: Vec::new(),
                        max,
                    }
                }
            }
            AggFunc::StddevPop | AggFunc::StddevSamp | AggFunc::VarPop | AggFunc::VarSamp => {
                Acc::Moments {
                    counts: Vec::new(),
                    means: Vec::new(),
                    m2: Vec::new(),
                }
            }
        }
    }

    /// Makes room for `groups` groups.
    fn grow(&mut self, groups: usize) {
        match self {
            Acc::Count(counts) => counts.resize(groups, 0),
            Acc::SumInt { sums, counts } => {
                sums.resize(groups, 0);
                counts.resize(groups, 0);
            }
            Acc::SumFloat { sums, counts } => {
                sums.resize(groups, 0.0);
                counts.resize(groups, 0);
            }
            Acc::MinMaxInt { values, counts, .. } => {
                values.resize(groups, 0);
                counts.resize(groups, 0);
            }
            Acc::MinMaxFloat { values, counts, .. } => {
                values.resize(groups, 0.0);
                counts.resize(groups, 0);
            }
            Acc::MinMaxBytes { values, counts, .. } => {
                values.resize(groups, Vec::new());
                counts.resize(groups, 0);
            }
            Acc::Moments { counts, means, m2 } => {
                counts.resize(groups, 0);
                means.resize(groups, 0.0);
                m2.resize(groups, 0.0);
            }
            Acc::Distinct(sets) => sets.resize_with(groups, FxHashSet::default),
        }
    }
}

/// Limits of one aggregation.
#[derive(Debug, Clone, Copy)]
pub struct AggLimits {
    /// Most groups (an error beyond).
    pub max_groups: usize,
    /// Most distinct values held over all `DISTINCT` aggregates.
    pub max_distinct_values: usize,
}

impl Default for AggLimits {
    fn default() -> Self {
        AggLimits {
            max_groups: 50_000_000,
            max_distinct_values: 50_000_000,
        }
    }
}

/// Grouped aggregation state: update with batches, merge partial states,
/// finish into columns (the keys, then one column per aggregate).
pub struct Aggregator {
    keys: Vec<Expr>,
    key_types: Vec<DataType>,
    specs: Vec<AggSpec>,
    /// Key values of every group, one column per key (row = group).
    key_columns: Vec<ColumnData>,
    map: GroupMap,
    groups: usize,
    accs: Vec<Acc>,
    limits: AggLimits,
    distinct_values: usize,
    scratch: Vec<u8>,
}

impl Aggregator {
    /// An empty aggregation by `keys` (none: one group) computing `specs`.
    pub fn new(keys: Vec<Expr>, specs: Vec<AggSpec>, limits: AggLimits) -> Aggregator {
        let key_types: Vec<DataType> = keys.iter().map(Expr::data_type).collect();
        let map = match key_types.as_slice() {
            [] => GroupMap::Single,
            [t] if t.is_integer() || t.is_float() => GroupMap::Word {
                map: FxHashMap::default(),
                null_group: None,
                last: None,
            },
            _ => GroupMap::Encoded(FxHashMap::default()),
        };
        let key_columns = key_types
            .iter()
            .map(|t| ColumnData::empty(t.column_type()))
            .collect();
        let accs = specs.iter().map(Acc::new).collect();
        let mut aggregator = Aggregator {
            keys,
            key_types,
            specs,
            key_columns,
            map,
            groups: 0,
            accs,
            limits,
            distinct_values: 0,
            scratch: Vec::new(),
        };
        if matches!(aggregator.map, GroupMap::Single) {
            aggregator.set_groups(1);
        }
        aggregator
    }

    /// An empty aggregator with the same keys, aggregates and limits.
    pub fn empty_like(&self) -> Aggregator {
        Aggregator::new(self.keys.clone(), self.specs.clone(), self.limits)
    }

    /// Number of groups so far.
    pub fn groups(&self) -> usize {
        self.groups
    }

    fn set_groups(&mut self, groups: usize) {
        self.groups = groups;
        for acc in &mut self.accs {
            acc.grow(groups);
        }
    }

    /// Group ids of rows `rows` of `key_columns` (the evaluated keys),
    /// creating groups for new keys.
    fn group_ids(&mut self, key_columns: &[&ColumnData], rows: &[u32]) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut new_rows: Vec<u32> = Vec::new();
        let start_groups = self.groups;
        let mut groups = self.groups;
        match &mut self.map {
            GroupMap::Single => ids.resize(rows.len(), 0),
            GroupMap::Word {
                map,
                null_group,
                last,
            } => {
                let column = key_columns[0];
                let words = key_words(column)?;
                let validity = column.validity().map(Bitmap::words);
                let valid = |row: u32| validity.is_none_or(|words| bit(words, row as usize));
                // Keys come in runs (rows sorted by position, keys like
                // FLOOR(decl)): one lookup and one fill per run.
                let mut at = 0;
                while let Some(&row) = rows.get(at) {
                    if !valid(row) {
                        let id = *null_group.get_or_insert_with(|| {
                            new_rows.push(row);
                            groups += 1;
                            (groups - 1) as u32
                        });
                        ids.push(id);
                        at += 1;
                        continue;
                    }
                    let word = words[row as usize];
                    let run = rows[at + 1..]
                        .iter()
                        .position(|&next| words[next as usize] != word || !valid(next))
                        .map_or(rows.len() - at, |n| n + 1);
                    let id = match last {
                        Some((w, id)) if *w == word => *id,
                        _ => {
                            let id = *map.entry(word).or_insert_with(|| {
                                new_rows.push(row);
                                groups += 1;
                                (groups - 1) as u32
                            });
                            *last = Some((word, id));
                            id
                        }
                    };
                    ids.extend(std::iter::repeat_n(id, run));
                    at += run;
                }
            }
            GroupMap::Encoded(map) => {
                let encoder = KeyEncoder::new(key_columns)?;
                for &row in rows {
                    self.scratch.clear();
                    encoder.encode(row as usize, &mut self.scratch);
                    let id = match map.get(self.scratch.as_slice()) {
                        Some(&id) => id,
                        None => {
                            let id = groups as u32;
                            map.insert(self.scratch.clone().into_boxed_slice(), id);
                            new_rows.push(row);
                            groups += 1;
                            id
                        }
                    };
                    ids.push(id);
                }
            }
        }
        if groups > self.limits.max_groups {
            return Err(KernelError::Limit(format!(
                "more than {} groups (GROUP BY limit)",
                self.limits.max_groups
            )));
        }
        if groups > start_groups {
            for (key_column, source) in self.key_columns.iter_mut().zip(key_columns) {
                append_rows(key_column, source, Some(&new_rows))?;
            }
            self.set_groups(groups);
        }
        Ok(ids)
    }

    /// Adds the rows `selection` of `batch` (all rows when `None`).
    pub fn update(&mut self, batch: &Batch<'_>, selection: Option<&[u32]>) -> Result<()> {
        let all: Vec<u32>;
        let rows: &[u32] = match selection {
            Some(rows) => rows,
            None => {
                all = (0..batch.rows as u32).collect();
                &all
            }
        };
        if rows.is_empty() {
            return Ok(());
        }
        // Columns stay borrowed from the batch; only constants are materialized.
        let key_values: Vec<Datum<'_>> = self
            .keys
            .iter()
            .map(|key| eval(key, batch))
            .collect::<Result<_>>()?;
        let key_columns: Vec<Cow<'_, ColumnData>> = key_values
            .into_iter()
            .zip(&self.key_types)
            .map(|(datum, &t)| as_column(datum, t, batch.rows))
            .collect();
        let key_refs: Vec<&ColumnData> = key_columns.iter().map(|c| c.as_ref()).collect();
        let ids = if matches!(self.map, GroupMap::Single) {
            None
        } else {
            Some(self.group_ids(&key_refs, rows)?)
        };
        for (index, spec) in self.specs.iter().enumerate() {
            let args: Vec<Cow<'_, ColumnData>> = spec
                .args
                .iter()
                .map(|arg| Ok(as_column(eval(arg, batch)?, arg.data_type(), batch.rows)))
                .collect::<Result<_>>()?;
            let arg_refs: Vec<&ColumnData> = args.iter().map(|c| c.as_ref()).collect();
            let added = match &ids {
                Some(ids) => update_acc(&mut self.accs[index], &arg_refs, rows, ids)?,
                None => update_single(&mut self.accs[index], &arg_refs, rows)?,
            };
            self.distinct_values += added;
        }
        if self.distinct_values > self.limits.max_distinct_values {
            return Err(KernelError::Limit(format!(
                "more than {} distinct values held (DISTINCT limit)",
                self.limits.max_distinct_values
            )));
        }
        Ok(())
    }

    /// Adds `rows` rows that all count (COUNT(*) of an ungrouped
    /// aggregation whose only aggregates are COUNT(*)), without evaluating
    /// anything per row.
    pub fn add_counted_rows(&mut self, rows: u64) -> Result<()> {
        if !self.counts_only() {
            return Err(KernelError::Internal(
                "add_counted_rows on a general aggregation".to_string(),
            ));
        }
        for acc in &mut self.accs {
            if let Acc::Count(counts) = acc {
                counts[0] += i64::try_from(rows).unwrap_or(i64::MAX);
            }
        }
        Ok(())
    }

    /// True for an ungrouped aggregation of COUNT(*) only.
    pub fn counts_only(&self) -> bool {
        matches!(self.map, GroupMap::Single)
            && self
                .specs
                .iter()
                .all(|s| s.func == AggFunc::Count && s.args.is_empty() && !s.distinct)
    }

    /// Merges another partial state (same keys and aggregates) into this one.
    pub fn merge(&mut self, other: Aggregator) -> Result<()> {
        if other.groups == 0 {
            return Ok(());
        }
        let other_keys: Vec<&ColumnData> = other.key_columns.iter().collect();
        let all: Vec<u32> = (0..other.groups as u32).collect();
        let mapping = if matches!(self.map, GroupMap::Single) {
            vec![0; other.groups]
        } else {
            self.group_ids(&other_keys, &all)?
        };
        for (mine, theirs) in self.accs.iter_mut().zip(other.accs) {
            self.distinct_values += merge_acc(mine, theirs, &mapping)?;
        }
        if self.distinct_values > self.limits.max_distinct_values {
            return Err(KernelError::Limit(format!(
                "more than {} distinct values held (DISTINCT limit)",
                self.limits.max_distinct_values
            )));
        }
        Ok(())
    }

    /// The result: one column per key, then one per aggregate; one row per group.
    pub fn finish(self) -> Result<Vec<ColumnData>> {
        let mut columns = self.key_columns;
        for (spec, acc) in self.specs.iter().zip(self.accs) {
            columns.push(finish_acc(spec, acc)?);
        }
        Ok(columns)
    }
}

/// A datum as a column: borrowed when it is one, a constant repeated otherwise.
fn as_column<'a>(datum: Datum<'a>, data_type: DataType, rows: usize) -> Cow<'a, ColumnData> {
    match datum {
        Datum::Column(column) => column,
        scalar => Cow::Owned(scalar.into_column(data_type, rows)),
    }
}

/// [`update_acc`] for the single group of an ungrouped aggregation: the
/// same arithmetic without a group id per row, on the column's own type.
fn update_single(acc: &mut Acc, args: &[&ColumnData], rows: &[u32]) -> Result<usize> {
    macro_rules! fold {
        ($values:expr, $validity:expr, $init:expr, $f:expr) => {{
            let values = $values;
            let mut state = $init;
            let mut count = 0i64;
            match $validity {
                None => {
                    for &row in rows {
                        state = $f(state, values[row as usize]);
                    }
                    count = rows.len() as i64;
                }
                Some(v) => {
                    for &row in rows {
                        if v.get(row as usize) {
                            state = $f(state, values[row as usize]);
                            count += 1;
                        }
                    }
                }
            }
            (state, count)
        }};
    }
    match (acc, args.first()) {
        (Acc::Count(counts), None) => counts[0] += rows.len() as i64,
        (Acc::SumFloat { sums, counts }, Some(column)) => {
            let (sum, count) = match column {
                ColumnData::F32(c) => {
                    fold!(&c.values, c.validity.as_ref(), 0.0f64, |s: f64, v: f32| s
                        + f64::from(v))
                }
                ColumnData::F64(c) => {
                    fold!(&c.values, c.validity.as_ref(), 0.0f64, |s: f64, v: f64| s
                        + v)
                }
                other => {
                    let values = f64_values(other);
                    fold!(&values, other.validity(), 0.0f64, |s: f64, v: f64| s + v)
                }
            };
            sums[0] += sum;
            counts[0] += count;
        }
        (
            Acc::MinMaxFloat {
                values,
                counts,
                max,
            },
            Some(column),
        ) => {
            let max = *max;
            let pick = |best: f64, v: f64| {
                // NaN (which MySQL cannot store) is skipped like NULL.
                if v.is_nan() || (!best.is_nan() && ((max && v <= best) || (!max && v >= best))) {
                    best
                } else {
                    v
                }
            };
            let (best, count) = match column {
                ColumnData::F32(c) => fold!(
                    &c.values,
                    c.validity.as_ref(),
                    f64::NAN,
                    |b: f64, v: f32| pick(b, f64::from(v))
                ),
                ColumnData::F64(c) => fold!(
                    &c.values,
                    c.validity.as_ref(),
                    f64::NAN,
                    |b: f64, v: f64| pick(b, v)
                ),
                other => {
                    let input = f64_values(other);
                    fold!(&input, other.validity(), f64::NAN, |b: f64, v: f64| pick(
                        b, v
                    ))
                }
            };
            if !best.is_nan() {
                if counts[0] == 0
                    || values[0].is_nan()
                    || (max && best > values[0])
                    || (!max && best < values[0])
                {
                    values[0] = best;
                }
                counts[0] += count;
            }
        }
        (acc, _) => {
            let ids = vec![0u32; rows.len()];
            return update_acc(acc, args, rows, &ids);
        }
    }
    Ok(0)
}

/// Whether bit `row` of validity `words` is set.
#[inline(always)]
fn bit(words: &[u64], row: usize) -> bool {
    (words[row >> 6] >> (row & 63)) & 1 == 1
}

/// `sums[g] += v`, `counts[g] += 1` for the valid selected rows: the hot
/// loop of grouped SUM and AVG, on the column's own type. Rows arrive
/// sorted by position, so group ids come in runs (`FLOOR(decl)`): a run is
/// summed in a register and stored once, instead of a load-add-store per
/// row through the same memory slot.
#[inline]
fn sum_grouped<T: Copy>(
    values: &[T],
    widen: impl Fn(T) -> f64,
    validity: Option<&[u64]>,
    rows: &[u32],
    ids: &[u32],
    sums: &mut [f64],
    counts: &mut [i64],
) {
    // Runs of one group (keys come in runs), summed with four independent
    // accumulators so that the adds do not wait on each other (a serial f64
    // add per row was a third of a histogram's time).
    let mut start = 0;
    while let Some(&group) = ids.get(start) {
        let len = ids[start..]
            .iter()
            .position(|&g| g != group)
            .unwrap_or(ids.len() - start);
        let run = &rows[start..start + len];
        let valid = |row: u32| validity.is_none_or(|words| bit(words, row as usize));
        let mut lanes = [0.0f64; 4];
        let mut count = 0i64;
        let mut quads = run.chunks_exact(4);
        for quad in &mut quads {
            for (lane, &row) in lanes.iter_mut().zip(quad) {
                let valid = valid(row);
                count += i64::from(valid);
                *lane += if valid {
                    widen(values[row as usize])
                } else {
                    0.0
                };
            }
        }
        let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for &row in quads.remainder() {
            if valid(row) {
                sum += widen(values[row as usize]);
                count += 1;
            }
        }
        sums[group as usize] += sum;
        counts[group as usize] += count;
        start += len;
    }
}

/// `counts[g] += 1` for every selected row, run by run.
#[inline]
fn count_grouped(ids: &[u32], counts: &mut [i64]) {
    let Some(&first) = ids.first() else {
        return;
    };
    let (mut group, mut count) = (first, 0i64);
    for &g in ids {
        if g != group {
            counts[group as usize] += count;
            (group, count) = (g, 0);
        }
        count += 1;
    }
    counts[group as usize] += count;
}

fn valid_at(column: &ColumnData, row: usize) -> bool {
    column.validity().is_none_or(|v| bit(v.words(), row))
}

/// Updates one accumulator; returns the number of distinct values added.
fn update_acc(acc: &mut Acc, args: &[&ColumnData], rows: &[u32], ids: &[u32]) -> Result<usize> {
    let arg = args.first();
    match acc {
        Acc::Count(counts) => match arg {
            None => count_grouped(ids, counts),
            Some(_) => {
                for (&row, &g) in rows.iter().zip(ids) {
                    if args.iter().all(|c| valid_at(c, row as usize)) {
                        counts[g as usize] += 1;
                    }
                }
            }
        },
        Acc::SumInt { sums, counts } => {
            let column =
                arg.ok_or_else(|| KernelError::Internal("SUM without argument".to_string()))?;
            let values = i64_values(column)?;
            for (&row, &g) in rows.iter().zip(ids) {
                if valid_at(column, row as usize) {
                    sums[g as usize] += i128::from(values[row as usize]);
                    counts[g as usize] += 1;
                }
            }
        }
        Acc::SumFloat { sums, counts } => {
            let column =
                arg.ok_or_else(|| KernelError::Internal("SUM without argument".to_string()))?;
            let words = column.validity().map(Bitmap::words);
            match column {
                ColumnData::F32(c) => {
                    sum_grouped(&c.values, f64::from, words, rows, ids, sums, counts)
                }
                ColumnData::F64(c) => sum_grouped(&c.values, |v| v, words, rows, ids, sums, counts),
                other => {
                    let values = f64_values(other);
                    sum_grouped(&values, |v| v, words, rows, ids, sums, counts);
                }
            }
        }
        Acc::MinMaxInt {
            values,
            counts,
            max,
        } => {
            let column =
                arg.ok_or_else(|| KernelError::Internal("MIN without argument".to_string()))?;
            let input = i64_values(column)?;
            for (&row, &g) in rows.iter().zip(ids) {
                let (row, g) = (row as usize, g as usize);
                if valid_at(column, row) {
                    let v = input[row];
                    if counts[g] == 0 || (*max && v > values[g]) || (!*max && v < values[g]) {
                        values[g] = v;
                    }
                    counts[g] += 1;
                }
            }
        }
        Acc::MinMaxFloat {
            values,
            counts,
            max,
        } => {
            let column =
                arg.ok_or_else(|| KernelError::Internal("MIN without argument".to_string()))?;
            let input = f64_values(column);
            for (&row, &g) in rows.iter().zip(ids) {
                let (row, g) = (row as usize, g as usize);
                let v = input[row];
                // NaN (which MySQL cannot store) is skipped like NULL.
                if valid_at(column, row) && !v.is_nan() {
                    if counts[g] == 0 || (*max && v > values[g]) || (!*max && v < values[g]) {
                        values[g] = v;
                    }
                    counts[g] += 1;
                }
            }
        }
        Acc::MinMaxBytes {
            values,
            counts,
            max,
            text,
        } => {
            let column =
                arg.ok_or_else(|| KernelError::Internal("MIN without argument".to_string()))?;
            let (ColumnData::Utf8(c) | ColumnData::Binary(c)) = column else {
                return Err(KernelError::Internal(
                    "string MIN of a non-string".to_string(),
                ));
            };
            for (&row, &g) in rows.iter().zip(ids) {
                let (row, g) = (row as usize, g as usize);
                if valid_at(column, row) {
                    let v = c.value(row);
                    let ordering = if *text {
                        compare_text_ci(v, &values[g])
                    } else {
                        v.cmp(&values[g])
                    };
                    let better = if *max {
                        ordering.is_gt()
                    } else {
                        ordering.is_lt()
                    };
                    if counts[g] == 0 || better {
                        values[g] = v.to_vec();
                    }
                    counts[g] += 1;
                }
            }
        }
        Acc::Moments { counts, means, m2 } => {
            let column =
                arg.ok_or_else(|| KernelError::Internal("STDDEV without argument".to_string()))?;
            let input = f64_values(column);
            for (&row, &g) in rows.iter().zip(ids) {
                let (row, g) = (row as usize, g as usize);
                if valid_at(column, row) {
                    // Welford's update.
                    counts[g] += 1;
                    let x = input[row];
                    let delta = x - means[g];
                    means[g] += delta / counts[g] as f64;
                    m2[g] += delta * (x - means[g]);
                }
            }
        }
        Acc::Distinct(sets) => {
            let encoder = KeyEncoder::new(args)?;
            let mut added = 0;
            let mut scratch = Vec::new();
            for (&row, &g) in rows.iter().zip(ids) {
                // DISTINCT aggregates skip rows where an argument is NULL.
                if !args.iter().all(|c| valid_at(c, row as usize)) {
                    continue;
                }
                scratch.clear();
                encoder.encode(row as usize, &mut scratch);
                if !sets[g as usize].contains(scratch.as_slice()) {
                    sets[g as usize].insert(scratch.clone().into_boxed_slice());
                    added += 1;
                }
            }
            return Ok(added);
        }
    }
    Ok(0)
}

/// Merges `theirs` into `mine` through `mapping` (their group → my group).
fn merge_acc(mine: &mut Acc, theirs: Acc, mapping: &[u32]) -> Result<usize> {
    let pairs = mapping.iter().enumerate().map(|(t, &m)| (t, m as usize));
    match (mine, theirs) {
        (Acc::Count(a), Acc::Count(b)) => pairs.for_each(|(t, m)| a[m] += b[t]),
        (Acc::SumInt { sums, counts }, Acc::SumInt { sums: s, counts: c }) => {
            pairs.for_each(|(t, m)| {
                sums[m] += s[t];
                counts[m] += c[t];
            })
        }
        (Acc::SumFloat { sums, counts }, Acc::SumFloat { sums: s, counts: c }) => {
            pairs.for_each(|(t, m)| {
                sums[m] += s[t];
                counts[m] += c[t];
            })
        }
        (
            Acc::MinMaxInt {
                values,
                counts,
                max,
            },
            Acc::MinMaxInt {
                values: v,
                counts: c,
                ..
            },
        ) => {
            for (t, m) in pairs {
                if c[t] > 0
                    && (counts[m] == 0 || (*max && v[t] > values[m]) || (!*max && v[t] < values[m]))
                {
                    values[m] = v[t];
                }
                counts[m] += c[t];
            }
        }
        (
            Acc::MinMaxFloat {
                values,
                counts,
                max,
            },
            Acc::MinMaxFloat {
                values: v,
                counts: c,
                ..
            },
        ) => {
            for (t, m) in pairs {
                if c[t] > 0
                    && (counts[m] == 0 || (*max && v[t] > values[m]) || (!*max && v[t] < values[m]))
                {
                    values[m] = v[t];
                }
                counts[m] += c[t];
            }
        }
        (
            Acc::MinMaxBytes {
                values,
                counts,
                max,
                text,
            },
            Acc::MinMaxBytes {
                values: v,
                counts: c,
                ..
            },
        ) => {
            for ((t, m), value) in pairs.zip(v) {
                if c[t] == 0 {
                    continue;
                }
                let ordering = if *text {
                    compare_text_ci(&value, &values[m])
                } else {
                    value.as_slice().cmp(values[m].as_slice())
                };
                let better = if *max {
                    ordering.is_gt()
                } else {
                    ordering.is_lt()
                };
                if counts[m] == 0 || better {
                    values[m] = value;
                }
                counts[m] += c[t];
            }
        }
        (
            Acc::Moments { counts, means, m2 },
            Acc::Moments {
                counts: c,
                means: mu,
                m2: q,
            },
        ) => {
            for (t, m) in pairs {
                // Chan et al.'s parallel combination of (count, mean, M2).
                let (na, nb) = (counts[m] as f64, c[t] as f64);
                if c[t] == 0 {
                    continue;
                }
                let n = na + nb;
                let delta = mu[t] - means[m];
                means[m] += delta * nb / n;
                m2[m] += q[t] + delta * delta * na * nb / n;
                counts[m] += c[t];
            }
        }
        (Acc::Distinct(sets), Acc::Distinct(other)) => {
            let mut added = 0;
            for ((_, m), set) in pairs.zip(other) {
                for value in set {
                    if sets[m].insert(value) {
                        added += 1;
                    }
                }
            }
            return Ok(added);
        }
        _ => {
            return Err(KernelError::Internal(
                "merging different aggregates".to_string(),
            ));
        }
    }
    Ok(0)
}

fn nullable_where_zero(counts: &[i64]) -> Option<Bitmap> {
    counts
        .contains(&0)
        .then(|| Bitmap::from_bools(&counts.iter().map(|&c| c > 0).collect::<Vec<_>>()))
}

fn finish_acc(spec: &AggSpec, acc: Acc) -> Result<ColumnData> {
    let result_type = spec.result_type();
    let arg_type = spec.args.first().map_or(DataType::I64, Expr::data_type);
    let column =
        match acc {
            Acc::Count(counts) => ColumnData::I64(PrimitiveColumn::new(counts)),
            Acc::SumInt { sums, counts } => {
                let values = sums
                    .iter()
                    .map(|&s| {
                        i64::try_from(s).map_err(|_| {
                            KernelError::Overflow(format!("SUM {s} is out of the BIGINT range"))
                        })
                    })
                    .collect::<Result<Vec<i64>>>()?;
                ColumnData::I64(PrimitiveColumn {
                    values,
                    validity: nullable_where_zero(&counts),
                })
            }
            Acc::SumFloat { sums, counts } => {
                let values = if spec.func == AggFunc::Avg {
                    sums.iter()
                        .zip(&counts)
                        .map(|(&s, &c)| if c > 0 { s / c as f64 } else { 0.0 })
                        .collect()
                } else {
                    sums
                };
                ColumnData::F64(PrimitiveColumn {
                    values,
                    validity: nullable_where_zero(&counts),
                })
            }
            Acc::MinMaxInt { values, counts, .. } => ColumnData::I64(PrimitiveColumn {
                values,
                validity: nullable_where_zero(&counts),
            }),
            Acc::MinMaxFloat { values, counts, .. } => ColumnData::F64(PrimitiveColumn {
                values,
                validity: nullable_where_zero(&counts),
            }),
            Acc::MinMaxBytes { values, counts, .. } => {
                let mut out = VarColumn {
                    offsets: vec![0],
                    data: Vec::new(),
                    validity: nullable_where_zero(&counts),
                };
                for value in &values {
                    out.data.extend_from_slice(value);
                    out.offsets.push(u32::try_from(out.data.len()).map_err(|_| {
                        KernelError::Limit("MIN/MAX results over 4 GiB".to_string())
                    })?);
                }
                if arg_type == DataType::Utf8 {
                    ColumnData::Utf8(out)
                } else {
                    ColumnData::Binary(out)
                }
            }
            Acc::Moments { counts, m2, .. } => {
                let sample = matches!(spec.func, AggFunc::StddevSamp | AggFunc::VarSamp);
                let root = matches!(spec.func, AggFunc::StddevPop | AggFunc::StddevSamp);
                let mut valid = Vec::with_capacity(counts.len());
                let values = counts
                    .iter()
                    .zip(&m2)
                    .map(|(&n, &q)| {
                        let denominator = if sample { n - 1 } else { n };
                        valid.push(denominator > 0);
                        let variance = if denominator > 0 {
                            (q / denominator as f64).max(0.0)
                        } else {
                            0.0
                        };
                        if root { variance.sqrt() } else { variance }
                    })
                    .collect();
                let all_valid = valid.iter().all(|&v| v);
                ColumnData::F64(PrimitiveColumn {
                    values,
                    validity: (!all_valid).then(|| Bitmap::from_bools(&valid)),
                })
            }
            Acc::Distinct(sets) => finish_distinct(spec, sets, arg_type)?,
        };
    // MIN/MAX of narrow types go back to their type (exactly: the values came from it).
    if DataType::of_column(column.column_type()) != result_type && result_type != DataType::Null {
        return cast_column(&column, result_type);
    }
    Ok(column)
}

/// Decodes one non-null value encoded by [`KeyEncoder`] for a numeric type.
fn decode_number(encoded: &[u8], arg_type: DataType) -> f64 {
    let mut word = [0u8; 8];
    if encoded.len() >= 9 {
        word.copy_from_slice(&encoded[1..9]);
    }
    if arg_type.is_integer() {
        i64::from_le_bytes(word) as f64
    } else {
        f64::from_bits(u64::from_le_bytes(word))
    }
}

fn finish_distinct(
    spec: &AggSpec,
    sets: Vec<FxHashSet<Box<[u8]>>>,
    arg_type: DataType,
) -> Result<ColumnData> {
    let counts: Vec<i64> = sets.iter().map(|s| s.len() as i64).collect();
    Ok(match spec.func {
        AggFunc::Count => ColumnData::I64(PrimitiveColumn::new(counts)),
        AggFunc::Sum if arg_type.is_integer() => {
            let mut values = Vec::with_capacity(sets.len());
            for set in &sets {
                let mut sum = 0i128;
                for value in set {
                    let mut word = [0u8; 8];
                    if value.len() >= 9 {
                        word.copy_from_slice(&value[1..9]);
                    }
                    sum += i128::from(i64::from_le_bytes(word));
                }
                values.push(i64::try_from(sum).map_err(|_| {
                    KernelError::Overflow(format!("SUM {sum} is out of the BIGINT range"))
                })?);
            }
            ColumnData::I64(PrimitiveColumn {
                values,
                validity: nullable_where_zero(&counts),
            })
        }
        AggFunc::Sum | AggFunc::Avg => {
            let values = sets
                .iter()
                .map(|set| {
                    let sum: f64 = set.iter().map(|v| decode_number(v, arg_type)).sum();
                    if spec.func == AggFunc::Avg && !set.is_empty() {
                        sum / set.len() as f64
                    } else {
                        sum
                    }
                })
                .collect();
            ColumnData::F64(PrimitiveColumn {
                values,
                validity: nullable_where_zero(&counts),
            })
        }
        other => {
            return Err(KernelError::Type(format!(
                "{other:?}(DISTINCT …) is not supported; use it without DISTINCT"
            )));
        }
    })
}

#[cfg(test)]
mod tests;
