//! Reading: the per-visit reads of the alert pipeline, the historical forms
//! of LDM-135 §4.1, and a plain table scan for the query engine. Every read
//! works on one [`Snapshot`] and so sees a prefix of the stored visits.

use std::sync::Arc;

use skyscan_format::{Bitmap, BlockDecoder, ColumnData, PrimitiveColumn, TableSchema};
use skyscan_sky::{Region, Relation};

use super::error::{ApdbError, Result};
use super::rows::{append_rows, empty_table, f64_values, i64_values, take_rows};
use super::segment::spatial_key;
use super::{
    Apdb, ApdbTable, MAX_IDS_PER_CALL, MemRun, PartitionView, Shared, Snapshot, partition_of,
    read_lock,
};
use crate::table::Table;

/// Rows returned by a read: batches of columns under one schema (each batch
/// is a [`Table`] of that schema). This is also what the query engine gets
/// from [`ApdbReader::scan`].
#[derive(Debug, Clone)]
pub struct ResultSet {
    /// The schema of every batch.
    pub schema: TableSchema,
    /// The batches (possibly none).
    pub batches: Vec<Table>,
}

impl ResultSet {
    /// Total rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(Table::rows).sum()
    }

    /// All batches as one table (copies).
    pub fn concat(&self) -> Result<Table> {
        let mut out = empty_table(&self.schema);
        for batch in &self.batches {
            append_rows(&mut out, batch)?;
        }
        Ok(out)
    }
}

/// Which rows of a time-partitioned table a scan wants.
struct Scan<'a> {
    table: ApdbTable,
    region: Option<&'a Region>,
    /// Keep rows with time in `(min, max]` (`None`: no bound).
    time_after: Option<f64>,
    time_upto: Option<f64>,
    object_ids: Option<&'a super::IdSet>,
    /// A last filter over the candidates (decoded columns: position, time,
    /// ids), applied before any other column is gathered.
    row_filter: Option<&'a RowFilter<'a>>,
}

/// See [`Scan::row_filter`].
type RowFilter<'a> = dyn Fn(&Table, &mut Vec<u32>) + 'a;

/// A region's sub-chunks: key ranges (inclusive, ascending) each marked
/// whether the region surely contains its sub-chunks, and per chunk whether
/// the region contains it and its sub-chunks with that mark. Rows of a
/// contained sub-chunk need no point-in-region test (no trigonometry).
struct Cover {
    ranges: Vec<(u64, u64, bool)>,
    chunks: Vec<CoverChunk>,
}

/// A sub-chunk id and whether the region surely contains the sub-chunk.
type MarkedSub = (i32, bool);

/// A chunk of a [`Cover`]: id, whether the region contains it, its
/// sub-chunks that the region may touch (ascending).
type CoverChunk = (i32, bool, Vec<MarkedSub>);

fn cover(shared: &Shared, region: &Region) -> Cover {
    let mut ranges = Vec::new();
    let mut chunks = Vec::new();
    for (chunk, subs) in shared.chunker.sub_chunks_intersecting(region) {
        let contained = shared
            .chunker
            .chunk_bounds(chunk)
            .map(|b| region.relate(&b) == Relation::Contains)
            .unwrap_or(false);
        let marked: Vec<MarkedSub> = subs
            .iter()
            .map(|&sub| {
                let inside = contained
                    || shared
                        .chunker
                        .sub_chunk_bounds(chunk, sub)
                        .map(|b| region.relate(&b) == Relation::Contains)
                        .unwrap_or(false);
                (sub, inside)
            })
            .collect();
        let mut index = 0;
        while index < marked.len() {
            let mut end = index;
            while end + 1 < marked.len()
                && marked[end + 1].0 == marked[end].0 + 1
                && marked[end + 1].1 == marked[index].1
            {
                end += 1;
            }
            ranges.push((
                spatial_key(chunk, marked[index].0),
                spatial_key(chunk, marked[end].0),
                marked[index].1,
            ));
            index = end + 1;
        }
        chunks.push((chunk, contained, marked));
    }
    Cover { ranges, chunks }
}

/// Keeps the candidate rows of one chunk's row group that lie in the
/// region: rows of sub-chunks the region contains at once, rows of
/// sub-chunks it misses never, the others by the exact test.
fn retain_in_region(
    shared: &Shared,
    region: &Region,
    subs: &[MarkedSub],
    ra: &[f64],
    dec: &[f64],
    candidates: &mut Vec<u32>,
) {
    candidates.retain(|&r| {
        let (ra, dec) = (ra[r as usize], dec[r as usize]);
        match shared.chunker.locate(ra, dec) {
            Ok(location) => match subs.binary_search_by_key(&location.sub_chunk_id, |s| s.0) {
                Ok(found) => subs[found].1 || region.contains(ra, dec),
                Err(_) => false,
            },
            Err(_) => false,
        }
    });
}

/// Selection over candidate rows: region, time and object-id filters.
fn select(
    shared: &Shared,
    scan: &Scan<'_>,
    rows: &Table,
    candidates: &mut Vec<u32>,
    skip_region: bool,
) {
    let t = shared.layout.table(scan.table);
    if let Some(region) = scan.region
        && !skip_region
    {
        let ra = f64_values(rows, t.ra);
        let dec = f64_values(rows, t.dec);
        candidates.retain(|&r| region.contains(ra[r as usize], dec[r as usize]));
    }
    if scan.time_after.is_some() || scan.time_upto.is_some() {
        let time = f64_values(rows, t.time);
        let after = scan.time_after.unwrap_or(f64::NEG_INFINITY);
        let upto = scan.time_upto.unwrap_or(f64::INFINITY);
        candidates.retain(|&r| time[r as usize] > after && time[r as usize] <= upto);
    }
    if let Some(ids) = scan.object_ids {
        let object = i64_values(rows, t.object_id);
        let valid = rows.columns[t.object_id].validity();
        candidates.retain(|&r| {
            valid.is_none_or(|v| v.get(r as usize)) && ids.contains(&object[r as usize])
        });
    }
    if let Some(filter) = scan.row_filter
        && !candidates.is_empty()
    {
        filter(rows, candidates);
    }
}

fn scan_run(
    shared: &Shared,
    scan: &Scan<'_>,
    cover: Option<&Cover>,
    run: &MemRun,
    out: &mut Vec<Table>,
) {
    let mut candidates: Vec<u32> = Vec::new();
    let t = shared.layout.table(scan.table);
    let ra = f64_values(&run.rows, t.ra);
    let dec = f64_values(&run.rows, t.dec);
    match (cover, scan.region) {
        (Some(cover), Some(region)) => {
            for &(lo, hi, inside) in &cover.ranges {
                let start = run.keys.partition_point(|&k| k < lo) as u32;
                let end = run.keys.partition_point(|&k| k <= hi) as u32;
                if inside {
                    candidates.extend(start..end);
                } else {
                    candidates.extend(
                        (start..end).filter(|&r| region.contains(ra[r as usize], dec[r as usize])),
                    );
                }
            }
        }
        _ => candidates.extend(0..run.rows.rows() as u32),
    }
    if candidates.is_empty() {
        return;
    }
    select(shared, scan, &run.rows, &mut candidates, true);
    if !candidates.is_empty() {
        out.push(take_rows(&run.rows, &candidates));
    }
}

fn scan_segments(
    shared: &Shared,
    scan: &Scan<'_>,
    cover: Option<&Cover>,
    view: &PartitionView,
    decoder: &mut BlockDecoder,
    out: &mut Vec<Table>,
) -> Result<()> {
    let t = shared.layout.table(scan.table);
    for segment in &view.segments {
        let groups: Vec<(usize, bool, &[MarkedSub])> = match cover {
            Some(cover) => cover
                .chunks
                .iter()
                .filter_map(|(chunk, contained, subs)| {
                    segment
                        .row_group_of(*chunk)
                        .map(|g| (g, *contained, subs.as_slice()))
                })
                .collect(),
            None => (0..segment.chunks.len())
                .map(|g| (g, true, &[][..]))
                .collect(),
        };
        for (group, contained, subs) in groups {
            let rows = segment.group_rows(group);
            if rows == 0 {
                continue;
            }
            // Decode the filter columns first; the rest only if a row passes.
            let mut probe = Table {
                schema: t.schema.clone(),
                columns: Vec::new(),
            };
            let mut candidates: Vec<u32> = (0..rows as u32).collect();
            let needs = scan.region.is_some() && !contained
                || scan.time_after.is_some()
                || scan.time_upto.is_some()
                || scan.object_ids.is_some()
                || scan.row_filter.is_some();
            if needs {
                probe.columns = t
                    .schema
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(c, def)| {
                        if c == t.ra || c == t.dec || c == t.time || c == t.object_id || c == t.id {
                            segment.read_column(group, c, decoder)
                        } else {
                            Ok(ColumnData::empty(def.column_type))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                if let Some(region) = scan.region
                    && !contained
                {
                    let ra = f64_values(&probe, t.ra);
                    let dec = f64_values(&probe, t.dec);
                    retain_in_region(shared, region, subs, ra, dec, &mut candidates);
                }
                select(shared, scan, &probe, &mut candidates, true);
                if candidates.is_empty() {
                    continue;
                }
            }
            // The probe's decoded columns are reused, the rest decoded now.
            let full = if needs {
                let columns = std::mem::take(&mut probe.columns)
                    .into_iter()
                    .enumerate()
                    .map(|(c, column)| {
                        if c == t.ra || c == t.dec || c == t.time || c == t.object_id || c == t.id {
                            Ok(column)
                        } else {
                            segment.read_column(group, c, decoder)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Table {
                    schema: t.schema.clone(),
                    columns,
                }
            } else {
                segment.read_group(group, decoder)?
            };
            if candidates.len() == rows {
                out.push(full);
            } else {
                out.push(take_rows(&full, &candidates));
            }
        }
    }
    Ok(())
}

/// Runs a scan over the partitions in `[first, last]` of a snapshot.
fn run_scan(
    shared: &Shared,
    snap: &Snapshot,
    scan: &Scan<'_>,
    partitions: (i64, i64),
) -> Result<Vec<Table>> {
    let cover = scan.region.map(|r| cover(shared, r));
    let mut decoder = BlockDecoder::new();
    let mut out = Vec::new();
    if partitions.0 > partitions.1 {
        return Ok(out);
    }
    for view in snap.tables[scan.table as usize]
        .range(partitions.0..=partitions.1)
        .map(|(_, v)| v)
    {
        scan_segments(shared, scan, cover.as_ref(), view, &mut decoder, &mut out)?;
        for run in &view.recent {
            scan_run(shared, scan, cover.as_ref(), run, &mut out);
        }
    }
    Ok(out)
}

fn check_time(t: f64, what: &str) -> Result<()> {
    if t.is_finite() {
        Ok(())
    } else {
        Err(ApdbError::InvalidArgument(format!(
            "{what} {t} is not finite"
        )))
    }
}

/// A reader bound to one snapshot: every call sees the same visits.
pub struct ApdbReader<'a> {
    shared: &'a Shared,
    snap: Arc<Snapshot>,
}

impl Apdb {
    /// A reader over the current snapshot.
    pub fn reader(&self) -> ApdbReader<'_> {
        ApdbReader {
            shared: &self.shared,
            snap: self.snapshot(),
        }
    }

    /// Latest versions (validityEnd open) of the DiaObjects in `region`
    /// whose latest version started within the configured object window
    /// (`ApdbConfig::object_window_days`) before the latest stored visit.
    pub fn get_dia_objects(&self, region: &Region) -> Result<ResultSet> {
        self.reader().get_dia_objects(region)
    }

    /// DiaSources of `object_ids` in `region` with `midpointMjdTai` in
    /// `(visit_time − 30·months, visit_time)`, not re-associated before
    /// `visit_time`.
    pub fn get_dia_sources(
        &self,
        region: &Region,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<ResultSet> {
        self.reader()
            .get_dia_sources(region, object_ids, visit_time, months)
    }

    /// DiaForcedSources of `object_ids` in `region` with `midpointMjdTai` in
    /// `(visit_time − 30·months, visit_time)`.
    pub fn get_dia_forced_sources(
        &self,
        region: &Region,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<ResultSet> {
        self.reader()
            .get_dia_forced_sources(region, object_ids, visit_time, months)
    }

    /// Number of latest DiaObject versions with `nDiaSources = 1`
    /// (dax_apdb `countUnassociatedObjects`).
    pub fn count_unassociated_objects(&self) -> u64 {
        self.reader().count_unassociated_objects()
    }
}

impl ApdbReader<'_> {
    /// The snapshot this reader sees.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    fn object_window(&self) -> (i64, f64) {
        match self.shared.config.object_window_days {
            Some(days) => {
                let cutoff = self.snap.last_visit_time - days;
                (partition_of(cutoff), cutoff)
            }
            None => (i64::MIN, f64::NEG_INFINITY),
        }
    }

    /// See [`Apdb::get_dia_objects`].
    pub fn get_dia_objects(&self, region: &Region) -> Result<ResultSet> {
        let (first, cutoff) = self.object_window();
        let seq = self.snap.seq;
        let o = self.shared.layout.table(ApdbTable::DiaObject);
        // Only the latest versions are gathered: the version index decides
        // on the decoded id and start columns, under a short read lock.
        let latest = |rows: &Table, candidates: &mut Vec<u32>| {
            let ids = i64_values(rows, o.id);
            let starts = f64_values(rows, o.time);
            let objects = read_lock(&self.shared.objects);
            candidates.retain(|&r| {
                let r = r as usize;
                starts[r] >= cutoff
                    && objects
                        .get(&ids[r])
                        .and_then(|e| e.end_of(starts[r], seq))
                        .is_some_and(|end| end.is_none())
            });
        };
        let scan = Scan {
            table: ApdbTable::DiaObject,
            region: Some(region),
            time_after: None,
            time_upto: None,
            object_ids: None,
            row_filter: Some(&latest),
        };
        let batches = run_scan(self.shared, &self.snap, &scan, (first, i64::MAX))?;
        Ok(ResultSet {
            schema: o.schema.clone(),
            batches,
        })
    }

    /// DiaObject versions valid at time `t` (`validityStart <= t <
    /// validityEnd`) in `region`, with `validityEndMjdTai` filled in as of
    /// this snapshot (NULL = still open).
    pub fn get_dia_objects_as_of(&self, region: &Region, t: f64) -> Result<ResultSet> {
        check_time(t, "as-of time")?;
        let scan = Scan {
            table: ApdbTable::DiaObject,
            region: Some(region),
            time_after: None,
            time_upto: Some(t),
            object_ids: None,
            row_filter: None,
        };
        let batches = run_scan(self.shared, &self.snap, &scan, (i64::MIN, partition_of(t)))?;
        let seq = self.snap.seq;
        let layout = &self.shared.layout;
        let o = layout.table(ApdbTable::DiaObject);
        let objects = read_lock(&self.shared.objects);
        let mut out = Vec::new();
        for batch in batches {
            let ids = i64_values(&batch, o.id);
            let starts = f64_values(&batch, o.time);
            let mut keep = Vec::new();
            let mut ends = Vec::new();
            for r in 0..batch.rows() {
                if let Some(end) = objects.get(&ids[r]).and_then(|e| e.end_of(starts[r], seq))
                    && end.is_none_or(|e| t < e)
                {
                    keep.push(r as u32);
                    ends.push(end);
                }
            }
            if keep.is_empty() {
                continue;
            }
            let mut batch = take_rows(&batch, &keep);
            batch.columns[layout.validity_end] = end_column(&ends);
            out.push(batch);
        }
        Ok(ResultSet {
            schema: o.schema.clone(),
            batches: out,
        })
    }

    /// See [`Apdb::get_dia_sources`].
    pub fn get_dia_sources(
        &self,
        region: &Region,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<ResultSet> {
        check_time(visit_time, "visit time")?;
        let after = visit_time - f64::from(months) * super::PARTITION_DAYS;
        let ids = id_set(object_ids)?;
        let mut set = self.sources(ApdbTable::DiaSource, region, &ids, after, visit_time)?;
        self.apply_reassoc(&mut set, Some(visit_time));
        Ok(set)
    }

    /// DiaSources of `object_ids` in `region` as of time `t` (LDM-135:
    /// `diaObjectId = X AND midpoint <= t AND (ssObjectId IS NULL OR
    /// ssObjectReassocTime > t)`), with the re-association columns as of
    /// this snapshot.
    pub fn get_dia_sources_as_of(
        &self,
        region: &Region,
        object_ids: &[i64],
        t: f64,
    ) -> Result<ResultSet> {
        check_time(t, "as-of time")?;
        let ids = id_set(object_ids)?;
        let scan = Scan {
            table: ApdbTable::DiaSource,
            region: Some(region),
            time_after: None,
            time_upto: Some(t),
            object_ids: Some(&ids),
            row_filter: None,
        };
        let batches = run_scan(self.shared, &self.snap, &scan, (i64::MIN, partition_of(t)))?;
        let mut set = ResultSet {
            schema: self
                .shared
                .layout
                .table(ApdbTable::DiaSource)
                .schema
                .clone(),
            batches,
        };
        self.apply_reassoc(&mut set, Some(t));
        Ok(set)
    }

    /// See [`Apdb::get_dia_forced_sources`].
    pub fn get_dia_forced_sources(
        &self,
        region: &Region,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<ResultSet> {
        check_time(visit_time, "visit time")?;
        let after = visit_time - f64::from(months) * super::PARTITION_DAYS;
        let ids = id_set(object_ids)?;
        self.sources(ApdbTable::DiaForcedSource, region, &ids, after, visit_time)
    }

    fn sources(
        &self,
        table: ApdbTable,
        region: &Region,
        ids: &super::IdSet,
        after: f64,
        visit_time: f64,
    ) -> Result<ResultSet> {
        // `midpoint < visit_time`: expressed as `<= prev float`.
        let upto = f64::from_bits(visit_time.to_bits().wrapping_sub(1)).min(visit_time);
        let scan = Scan {
            table,
            region: Some(region),
            time_after: Some(after),
            time_upto: Some(upto),
            object_ids: Some(ids),
            row_filter: None,
        };
        let batches = run_scan(
            self.shared,
            &self.snap,
            &scan,
            (partition_of(after), partition_of(visit_time)),
        )?;
        Ok(ResultSet {
            schema: self.shared.layout.table(table).schema.clone(),
            batches,
        })
    }

    /// Fills `ssObjectId` / `ssObjectReassocTimeMjdTai` from the snapshot's
    /// re-associations; with `drop_before = Some(t)` removes sources
    /// re-associated at or before `t`.
    fn apply_reassoc(&self, set: &mut ResultSet, drop_before: Option<f64>) {
        let map = &self.snap.reassigned;
        if map.is_empty() {
            return;
        }
        let layout = &self.shared.layout;
        let s = layout.table(ApdbTable::DiaSource);
        for batch in &mut set.batches {
            let ids = i64_values(batch, s.id).to_vec();
            if !ids.iter().any(|id| map.contains_key(id)) {
                continue;
            }
            let keep: Vec<u32> = (0..ids.len())
                .filter(|&r| {
                    !matches!((map.get(&ids[r]), drop_before), (Some(re), Some(t)) if re.time <= t)
                })
                .map(|r| r as u32)
                .collect();
            let mut rows = take_rows(batch, &keep);
            let kept_ids: Vec<i64> = keep.iter().map(|&r| ids[r as usize]).collect();
            set_reassoc_columns(
                &mut rows,
                &kept_ids,
                map,
                layout.ss_object_id,
                layout.ss_reassoc_time,
            );
            *batch = rows;
        }
        set.batches.retain(|b| b.rows() > 0);
    }

    /// See [`Apdb::count_unassociated_objects`].
    pub fn count_unassociated_objects(&self) -> u64 {
        let seq = self.snap.seq;
        let objects = read_lock(&self.shared.objects);
        objects
            .values()
            .filter(|e| {
                let (versions, closed) = e.visible(seq);
                closed.is_none() && versions.last().is_some_and(|v| v.single_source)
            })
            .count() as u64
    }

    /// Every row of `table` in this snapshot, optionally restricted to a
    /// region and to partitions overlapping `[time_min, time_max]`: the
    /// interface of the SQL layer. DiaObject rows carry their
    /// `validityEndMjdTai` as of the snapshot, DiaSource rows their
    /// re-association.
    pub fn scan(
        &self,
        table: ApdbTable,
        region: Option<&Region>,
        time_min: Option<f64>,
        time_max: Option<f64>,
    ) -> Result<ResultSet> {
        let scan = Scan {
            table,
            region,
            time_after: time_min.map(|t| f64::from_bits(t.to_bits().wrapping_sub(1)).min(t)),
            time_upto: time_max,
            object_ids: None,
            row_filter: None,
        };
        let partitions = (
            time_min.map_or(i64::MIN, partition_of),
            time_max.map_or(i64::MAX, partition_of),
        );
        let batches = run_scan(self.shared, &self.snap, &scan, partitions)?;
        let layout = &self.shared.layout;
        let mut set = ResultSet {
            schema: layout.table(table).schema.clone(),
            batches,
        };
        match table {
            ApdbTable::DiaObject => {
                let o = layout.table(table);
                let objects = read_lock(&self.shared.objects);
                for batch in &mut set.batches {
                    let ids = i64_values(batch, o.id);
                    let starts = f64_values(batch, o.time);
                    let ends: Vec<Option<f64>> = (0..batch.rows())
                        .map(|r| {
                            objects
                                .get(&ids[r])
                                .and_then(|e| e.end_of(starts[r], self.snap.seq))
                                .flatten()
                        })
                        .collect();
                    batch.columns[layout.validity_end] = end_column(&ends);
                }
            }
            ApdbTable::DiaSource => self.apply_reassoc(&mut set, None),
            ApdbTable::DiaForcedSource => {}
        }
        Ok(set)
    }
}

fn id_set(ids: &[i64]) -> Result<super::IdSet> {
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(ApdbError::Limit(format!(
            "{} object ids, at most {MAX_IDS_PER_CALL}",
            ids.len()
        )));
    }
    Ok(ids.iter().copied().collect())
}

fn end_column(ends: &[Option<f64>]) -> ColumnData {
    ColumnData::F64(PrimitiveColumn::from_options(ends))
}

fn set_reassoc_columns(
    rows: &mut Table,
    ids: &[i64],
    map: &super::IdMap<super::Reassoc>,
    ss_column: usize,
    time_column: usize,
) {
    let n = ids.len();
    let mut ss_values = vec![0i64; n];
    let mut ss_valid = Bitmap::new_unset(n);
    let mut t_values = vec![0f64; n];
    let mut t_valid = Bitmap::new_unset(n);
    let old_ss = rows.columns[ss_column].clone();
    let old_t = rows.columns[time_column].clone();
    for (r, id) in ids.iter().enumerate() {
        if let Some(re) = map.get(id) {
            ss_values[r] = re.ss_object_id;
            ss_valid.set(r, true);
            t_values[r] = re.time;
            t_valid.set(r, true);
        } else {
            if let ColumnData::I64(c) = &old_ss
                && let Some(v) = c.get(r)
            {
                ss_values[r] = v;
                ss_valid.set(r, true);
            }
            if let ColumnData::F64(c) = &old_t
                && let Some(v) = c.get(r)
            {
                t_values[r] = v;
                t_valid.set(r, true);
            }
        }
    }
    let norm = |b: Bitmap| (b.count_ones() != b.len()).then_some(b);
    rows.columns[ss_column] = ColumnData::I64(PrimitiveColumn {
        values: ss_values,
        validity: norm(ss_valid),
    });
    rows.columns[time_column] = ColumnData::F64(PrimitiveColumn {
        values: t_values,
        validity: norm(t_valid),
    });
}

/// A circle region for the APDB reads, with a clear error for bad input.
pub fn circle(ra_deg: f64, dec_deg: f64, radius_deg: f64) -> Result<Region> {
    Ok(Region::Circle(skyscan_sky::Circle::new(
        ra_deg, dec_deg, radius_deg,
    )?))
}

/// A convex polygon region (3 to 20 vertices, (ra, dec) degrees, either
/// winding) for the APDB reads; a polygon that is not convex, is degenerate
/// or has repeated vertices is `InvalidRegion`.
pub fn polygon(vertices_deg: &[(f64, f64)]) -> Result<Region> {
    Ok(Region::Polygon(skyscan_sky::ConvexPolygon::new(
        vertices_deg,
    )?))
}
