//! Placement: which chunk, row group and position in the row group each
//! input row (and each overlap copy) goes to.
//!
//! A placed row gets a sort key `(group, decl, seq)`: `group` is the row
//! group inside the chunk (`OVERLAP_BIT | sub-chunk` for overlap copies, so
//! own row groups come first), `decl` an order-preserving image of the
//! declination (0 for tables not ordered by position), `seq` the row's
//! position in the input (unit index in the high bits, row within the unit
//! in the low [`SEQ_ROW_BITS`]). Sorting by that key gives the file order:
//! own row groups by sub-chunk, then overlap ones, rows by declination,
//! ties in input order.

use skyscan_format::ColumnData;
use skyscan_sky::{Chunker, Location};

use super::source::InputBatch;
use crate::catalog::{CatalogError, REPLICATED_CHUNK_ID};
use crate::director::DirectorIndex;

/// Group bit marking overlap row groups.
pub(crate) const OVERLAP_BIT: u32 = 1 << 31;
/// Bits of `seq` holding the row within its unit.
pub(crate) const SEQ_ROW_BITS: u32 = 40;
/// Most missing director keys named in an error.
const MISSING_KEYS_SHOWN: usize = 5;

/// An order-preserving `u64` image of a non-NaN f64 (numeric order; -0 < +0).
#[inline]
pub(crate) fn decl_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// How the rows of a table are placed.
#[derive(Debug)]
pub(crate) enum Placement {
    /// By the row's position; with overlap copies when `overlap`.
    Position {
        chunker: Chunker,
        ra: usize,
        decl: usize,
        overlap: bool,
        /// Column of the director key (its index entries), for directors.
        key: Option<usize>,
    },
    /// In the chunk and sub-chunk of the director row (published index),
    /// by the foreign key; rows in input order inside a sub-chunk.
    DirectorIndex {
        index: DirectorIndex,
        key: usize,
        director: String,
    },
    /// Everything in the replicated chunk, in input order.
    Replicated,
}

/// Destinations of one batch, reused between batches.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// Chunk of each destination.
    pub(crate) chunk_ids: Vec<i32>,
    /// Group of each destination.
    pub(crate) groups: Vec<u32>,
    /// Batch row (index into the batch's columns) of each destination.
    pub(crate) rows: Vec<u32>,
    /// `decl_key` of each destination.
    pub(crate) decls: Vec<u64>,
    /// Director index entries of the batch's own rows: key, chunk, sub-chunk.
    pub(crate) index_keys: Vec<i64>,
    /// Chunk of each index entry.
    pub(crate) index_chunks: Vec<i32>,
    /// Sub-chunk of each index entry.
    pub(crate) index_sub_chunks: Vec<i32>,
    copies: Vec<Location>,
    order: Vec<u32>,
    sorted_keys: Vec<i64>,
}

impl Placed {
    fn clear(&mut self) {
        self.chunk_ids.clear();
        self.groups.clear();
        self.rows.clear();
        self.decls.clear();
        self.index_keys.clear();
        self.index_chunks.clear();
        self.index_sub_chunks.clear();
    }

    fn push(&mut self, chunk_id: i32, group: u32, row: u32, decl: u64) {
        self.chunk_ids.push(chunk_id);
        self.groups.push(group);
        self.rows.push(row);
        self.decls.push(decl);
    }
}

/// The error naming the row `row` (index into the batch's columns) of `batch`.
fn row_error(
    batch: &InputBatch<'_>,
    row: usize,
    column: Option<&str>,
    message: impl std::fmt::Display,
) -> CatalogError {
    let record = batch.first_record + (row - batch.rows.start) as u64;
    let column = column.map_or(String::new(), |name| format!(", column `{name}`"));
    CatalogError::Load(format!(
        "{}: record {record}{column}: {message}",
        batch.source_name
    ))
}

fn f64_values<'a>(column: &'a ColumnData, name: &str) -> Result<&'a [f64], CatalogError> {
    match column {
        ColumnData::F64(c) => Ok(&c.values),
        other => Err(CatalogError::InvalidArgument(format!(
            "position column `{name}` is {:?}, not f64",
            other.column_type()
        ))),
    }
}

/// The key column's value at `row` as i64 (NULL refused, naming the row).
fn key_at(
    batch: &InputBatch<'_>,
    column: &ColumnData,
    name: &str,
    row: usize,
) -> Result<i64, CatalogError> {
    if !column.is_valid(row) {
        return Err(row_error(batch, row, Some(name), "NULL key"));
    }
    match column {
        ColumnData::I64(c) => Ok(c.values[row]),
        ColumnData::I32(c) => Ok(i64::from(c.values[row])),
        other => Err(CatalogError::InvalidArgument(format!(
            "key column `{name}` is {:?}, not i64 or i32",
            other.column_type()
        ))),
    }
}

impl Placement {
    /// Places the rows of `batch` into `out` (cleared first).
    pub(crate) fn place(
        &self,
        batch: &InputBatch<'_>,
        names: &[String],
        out: &mut Placed,
    ) -> Result<(), CatalogError> {
        out.clear();
        let row_u32 = |row: usize| {
            u32::try_from(row).map_err(|_| CatalogError::Load("batch over 2^32 rows".to_string()))
        };
        match self {
            Placement::Position {
                chunker,
                ra,
                decl,
                overlap,
                key,
            } => {
                let (ra_column, decl_column) = (&batch.columns[*ra], &batch.columns[*decl]);
                let ra_values = f64_values(ra_column, &names[*ra])?;
                let decl_values = f64_values(decl_column, &names[*decl])?;
                let with_overlap = *overlap && chunker.overlap_deg() > 0.0;
                let nulls = ra_column.null_count() > 0 || decl_column.null_count() > 0;
                for row in batch.rows.clone() {
                    if nulls {
                        for (column, index) in [(ra_column, *ra), (decl_column, *decl)] {
                            if !column.is_valid(row) {
                                return Err(row_error(
                                    batch,
                                    row,
                                    Some(&names[index]),
                                    "NULL position",
                                ));
                            }
                        }
                    }
                    let (ra_deg, decl_deg) = (ra_values[row], decl_values[row]);
                    let own = chunker.locate(ra_deg, decl_deg).map_err(|e| {
                        row_error(
                            batch,
                            row,
                            None,
                            format!("position ({ra_deg}, {decl_deg}): {e}"),
                        )
                    })?;
                    let decl_order = decl_key(decl_deg);
                    let batch_row = row_u32(row)?;
                    out.push(own.chunk_id, own.sub_chunk_id as u32, batch_row, decl_order);
                    if with_overlap {
                        let mut copies = std::mem::take(&mut out.copies);
                        copies.clear();
                        chunker
                            .overlap_locations(ra_deg, decl_deg, &mut copies)
                            .map_err(|e| row_error(batch, row, None, e))?;
                        for copy in &copies {
                            out.push(
                                copy.chunk_id,
                                OVERLAP_BIT | copy.sub_chunk_id as u32,
                                batch_row,
                                decl_order,
                            );
                        }
                        out.copies = copies;
                    }
                    if let Some(key) = key {
                        out.index_keys.push(key_at(
                            batch,
                            &batch.columns[*key],
                            &names[*key],
                            row,
                        )?);
                        out.index_chunks.push(own.chunk_id);
                        out.index_sub_chunks.push(own.sub_chunk_id);
                    }
                }
            }
            Placement::DirectorIndex {
                index,
                key,
                director,
            } => {
                let column = &batch.columns[*key];
                let name = &names[*key];
                let mut order = std::mem::take(&mut out.order);
                let mut sorted = std::mem::take(&mut out.sorted_keys);
                order.clear();
                sorted.clear();
                for row in batch.rows.clone() {
                    key_at(batch, column, name, row)?;
                    order.push(row_u32(row)?);
                }
                let value = |row: u32| key_at(batch, column, name, row as usize).unwrap_or(0);
                order.sort_by_key(|&row| value(row));
                sorted.extend(order.iter().map(|&row| value(row)));
                let found = index
                    .lookup_sorted_batch(&sorted)
                    .map_err(|e| CatalogError::Load(e.to_string()))?;
                let mut missing = Vec::new();
                let mut missing_count = 0u64;
                // Answers come in key order; rows are pushed in input order
                // (the loader relies on a thread's rows arriving in input order).
                let first = batch.rows.start;
                let mut located: Vec<(i32, i32)> = vec![(i32::MIN, 0); batch.rows.len()];
                for ((&row, &key_value), location) in order.iter().zip(&sorted).zip(found) {
                    match location {
                        Some(location) => located[row as usize - first] = location,
                        None => {
                            missing_count += 1;
                            if missing.len() < MISSING_KEYS_SHOWN {
                                let record =
                                    batch.first_record + (row as usize - batch.rows.start) as u64;
                                missing.push(format!("record {record} key {key_value}"));
                            }
                        }
                    }
                }
                out.order = order;
                out.sorted_keys = sorted;
                if missing_count == 0 {
                    for (offset, &(chunk_id, sub_chunk_id)) in located.iter().enumerate() {
                        out.push(chunk_id, sub_chunk_id as u32, row_u32(first + offset)?, 0);
                    }
                }
                if missing_count > 0 {
                    return Err(CatalogError::Load(format!(
                        "{}: {missing_count} rows of this batch have no director row in \
                         {director} (column `{name}`): {}",
                        batch.source_name,
                        missing.join(", ")
                    )));
                }
            }
            Placement::Replicated => {
                for row in batch.rows.clone() {
                    out.push(REPLICATED_CHUNK_ID, 0, row_u32(row)?, 0);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decl_key_is_monotonic() {
        let values = [
            f64::NEG_INFINITY,
            -90.0,
            -2.5,
            -1e-300,
            -0.0,
            0.0,
            1e-300,
            3.0,
            90.0,
            f64::INFINITY,
        ];
        for pair in values.windows(2) {
            assert!(decl_key(pair[0]) < decl_key(pair[1]), "{pair:?}");
        }
    }
}
