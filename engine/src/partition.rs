//! In-memory partitioning of a director table into chunk files.
//!
//! Every row goes to its own (chunk, sub-chunk) and, with a non-zero overlap
//! radius, a copy goes to every overlap location (BRIEF §2). Inside a chunk,
//! rows are ordered by sub-chunk and, inside a sub-chunk, by declination:
//! the order near-neighbour plane sweeps want and the one that compresses
//! positions best. One row group per sub-chunk; overlap row groups follow the
//! chunk's own ones.
//!
//! [`assign_rows`] is the reference in-memory assignment (the demo and the
//! tests compare the loader's output with it); the loader
//! ([`crate::loader`]) places rows the same way while streaming.

use std::collections::BTreeMap;

use skyscan_format::{ChunkWriter, ColumnData, WriteStats, WriterOptions};
use skyscan_kernel::take::take;
use skyscan_sky::{Chunker, Location};

use crate::table::Table;

/// The rows of one row group: its sub-chunk, whether it holds overlap copies, and the row indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupRows {
    /// Sub-chunk id of the group.
    pub sub_chunk_id: i32,
    /// Whether these rows are overlap copies of rows owned by another sub-chunk.
    pub overlap: bool,
    /// Indices into the input table, ordered by declination.
    pub rows: Vec<u32>,
}

/// The row groups of one chunk, own groups first (by sub-chunk), then overlap groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkRows {
    /// Row groups in file order.
    pub groups: Vec<RowGroupRows>,
}

impl ChunkRows {
    /// Rows this chunk owns (overlap copies excluded).
    pub fn own_rows(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| !g.overlap)
            .map(|g| g.rows.len())
            .sum()
    }

    /// Overlap copies held by this chunk.
    pub fn overlap_rows(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.overlap)
            .map(|g| g.rows.len())
            .sum()
    }
}

/// Assigns every row (and, if the chunker has an overlap radius and `with_overlap`, its
/// overlap copies) to chunks and row groups.
pub fn assign_rows(
    chunker: &Chunker,
    ra_deg: &[f64],
    dec_deg: &[f64],
    with_overlap: bool,
) -> Result<BTreeMap<i32, ChunkRows>, String> {
    if ra_deg.len() != dec_deg.len() {
        return Err(format!(
            "ra has {} values, decl {}",
            ra_deg.len(),
            dec_deg.len()
        ));
    }
    if ra_deg.len() > u32::MAX as usize {
        return Err(format!(
            "{} rows is more than one in-memory partitioning pass takes",
            ra_deg.len()
        ));
    }
    // (chunk, overlap, sub-chunk, decl bits, row): sorting it yields file order.
    let mut entries: Vec<(i32, bool, i32, i64, u32)> = Vec::with_capacity(ra_deg.len() * 11 / 10);
    let mut copies: Vec<Location> = Vec::new();
    for (row, (&ra, &dec)) in ra_deg.iter().zip(dec_deg).enumerate() {
        let own = chunker
            .locate(ra, dec)
            .map_err(|e| format!("row {row}: {e}"))?;
        let dec_key = order_key(dec);
        entries.push((own.chunk_id, false, own.sub_chunk_id, dec_key, row as u32));
        if with_overlap && chunker.overlap_deg() > 0.0 {
            copies.clear();
            chunker
                .overlap_locations(ra, dec, &mut copies)
                .map_err(|e| format!("row {row}: {e}"))?;
            for copy in &copies {
                entries.push((copy.chunk_id, true, copy.sub_chunk_id, dec_key, row as u32));
            }
        }
    }
    entries.sort_unstable();
    let mut chunks: BTreeMap<i32, ChunkRows> = BTreeMap::new();
    for (chunk_id, overlap, sub_chunk_id, _, row) in entries {
        let chunk = chunks.entry(chunk_id).or_default();
        match chunk.groups.last_mut() {
            Some(group) if group.sub_chunk_id == sub_chunk_id && group.overlap == overlap => {
                group.rows.push(row)
            }
            _ => chunk.groups.push(RowGroupRows {
                sub_chunk_id,
                overlap,
                rows: vec![row],
            }),
        }
    }
    Ok(chunks)
}

/// A total order on f64 that matches numeric order for non-NaN values.
fn order_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// A chunk writer holding chunk `chunk_id` of `table` (its row groups in
/// `rows`), ready for [`crate::loader::write_chunk_file`].
pub fn chunk_writer(
    table: &Table,
    chunk_id: i32,
    rows: &ChunkRows,
    options: &WriterOptions,
) -> Result<ChunkWriter, String> {
    let file_chunk_id =
        u32::try_from(chunk_id).map_err(|_| format!("chunk {chunk_id}: negative chunk id"))?;
    let mut writer = ChunkWriter::new(table.schema.clone(), file_chunk_id, *options)
        .map_err(|e| format!("chunk {chunk_id}: {e}"))?;
    for group in &rows.groups {
        let columns: Vec<ColumnData> = table
            .columns
            .iter()
            .map(|column| take(column, &group.rows))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("chunk {chunk_id}: {e}"))?;
        writer
            .add_row_group(group.sub_chunk_id as u32, group.overlap, &columns)
            .map_err(|e| format!("chunk {chunk_id} sub-chunk {}: {e}", group.sub_chunk_id))?;
    }
    Ok(writer)
}

/// The file name of chunk `chunk_id` of a table inside the table's directory.
pub fn chunk_file_name(chunk_id: i32) -> String {
    format!("chunk_{chunk_id}.skychunk")
}

/// Writes one chunk file per entry of `work` (chunk id, its rows, the path) on up to
/// `threads` threads, each file atomically; returns what was written, by chunk id.
/// For callers that placed the rows of an in-memory table themselves (the
/// Qserv import's child placement); the loader ([`crate::loader`]) is the
/// general path. Both write files through [`crate::loader::write_chunk_file`].
pub fn write_chunk_files(
    table: &Table,
    work: &[(i32, &ChunkRows, std::path::PathBuf)],
    options: &WriterOptions,
    threads: usize,
) -> Result<Vec<(i32, WriteStats)>, String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = threads.clamp(1, 64).min(work.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(i32, WriteStats)>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    let mut buffer = Vec::new();
                    while let Some((chunk_id, rows, path)) =
                        work.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let writer = chunk_writer(table, *chunk_id, rows, options)?;
                        let stats = crate::loader::write_chunk_file(path, writer, &mut buffer)?;
                        done.push((*chunk_id, stats));
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a chunk writer thread panicked".to_string()))
            })
            .collect()
    });
    let mut written = Vec::with_capacity(work.len());
    for result in results {
        written.extend(result?);
    }
    written.sort_unstable_by_key(|(chunk_id, _)| *chunk_id);
    Ok(written)
}

/// Writes `path` through a temporary sibling: write, fsync, rename, fsync the directory.
pub fn write_file_atomically<T>(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T, String>,
) -> Result<T, String> {
    use std::io::Write as _;
    let shown = path.display();
    let tmp = path.with_extension("skyscan-tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = write(&mut out).and_then(|value| {
        out.flush().map_err(|e| format!("{shown}: {e}"))?;
        out.get_ref()
            .sync_all()
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(value)
    });
    let value = match result {
        Ok(value) => value,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path).map_err(|e| format!("{shown}: {e}"))?;
    if let Some(parent) = path.parent() {
        let dir = std::fs::File::open(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        dir.sync_all()
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_is_monotonic() {
        let values = [-1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, f64::INFINITY];
        for pair in values.windows(2) {
            assert!(order_key(pair[0]) <= order_key(pair[1]), "{pair:?}");
        }
        assert!(order_key(f64::NEG_INFINITY) < order_key(-1e300));
    }

    #[test]
    fn assignment_matches_locate_and_orders_rows() {
        let chunker = Chunker::new(85, 12, 0.01667).unwrap();
        let ra: Vec<f64> = (0..2_000).map(|k| 10.0 + (k % 50) as f64 * 0.05).collect();
        let dec: Vec<f64> = (0..2_000).map(|k| -5.0 + (k / 50) as f64 * 0.05).collect();
        let chunks = assign_rows(&chunker, &ra, &dec, true).unwrap();
        let own: usize = chunks.values().map(ChunkRows::own_rows).sum();
        assert_eq!(own, ra.len(), "every row is owned exactly once");
        let mut seen = vec![0u8; ra.len()];
        for (&chunk_id, chunk) in &chunks {
            let mut last: Option<(bool, i32)> = None;
            for group in &chunk.groups {
                assert!(
                    last < Some((group.overlap, group.sub_chunk_id)),
                    "groups ordered, own first"
                );
                last = Some((group.overlap, group.sub_chunk_id));
                for pair in group.rows.windows(2) {
                    assert!(dec[pair[0] as usize] <= dec[pair[1] as usize]);
                }
                for &row in &group.rows {
                    let location = chunker.locate(ra[row as usize], dec[row as usize]).unwrap();
                    if group.overlap {
                        assert_ne!(
                            (location.chunk_id, location.sub_chunk_id),
                            (chunk_id, group.sub_chunk_id)
                        );
                    } else {
                        assert_eq!(
                            (location.chunk_id, location.sub_chunk_id),
                            (chunk_id, group.sub_chunk_id)
                        );
                        seen[row as usize] += 1;
                    }
                }
            }
        }
        assert!(seen.iter().all(|&count| count == 1));
        let overlap: usize = chunks.values().map(ChunkRows::overlap_rows).sum();
        assert!(overlap > 0, "a 2.5° x 5° grid straddles sub-chunk edges");
    }
}
