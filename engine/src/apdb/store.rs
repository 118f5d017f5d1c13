//! Writing: `store` (one visit, or one CCD of it, as one atomic durable
//! step), `reassign_dia_sources`, and the group commit that makes them
//! durable and then visible.

use std::collections::HashSet;
use std::sync::Arc;

use skyscan_format::ColumnData;
use skyscan_sky::Chunker;

use super::error::{ApdbError, Result};
use super::rows::{
    Cursor, conform, decode_table, encode_table, f64_values, i16_values, i64_values, take_rows,
    validity,
};
use super::segment::spatial_key;
use super::wal::RecordKind;
use super::{
    Apdb, ApdbLayout, ApdbTable, MAX_IDS_PER_CALL, MAX_ROWS_PER_STORE,
    MAX_VISIT_DETECTORS_PER_STORE, MemRun, ObjectEntry, Reassoc, Shared, Snapshot, Version,
    WriterState, lock, partition_of, read_lock, write_lock,
};
use crate::table::Table;

/// One `store`: what the pipeline writes for one visit (or one CCD).
#[derive(Debug, Clone)]
pub struct StoreRequest {
    /// The visit time, MJD TAI: new DiaObject versions start here, and the
    /// versions they supersede end here.
    pub visit_time: f64,
    /// The (visit, detector) pairs this store completes; every source row
    /// must belong to one of them, and each may be stored only once.
    pub visit_detectors: Vec<(i64, i16)>,
    /// New DiaObject versions (`validityStartMjdTai` = `visit_time`,
    /// `validityEndMjdTai` NULL). A version of a known object supersedes its
    /// open version.
    pub objects: Table,
    /// New DiaSources.
    pub sources: Table,
    /// New DiaForcedSources.
    pub forced_sources: Table,
    /// Objects whose open version ends at `visit_time` without a successor
    /// (LDM-135: an object left without sources after re-association).
    pub close_object_ids: Vec<i64>,
}

/// What a successful `store` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreReceipt {
    /// The log record's sequence number; visible in every snapshot with
    /// `seq >=` this.
    pub seq: u64,
}

/// A decoded visit record.
#[derive(Debug, Clone)]
pub(crate) struct VisitRecord {
    pub(crate) visit_time: f64,
    pub(crate) visit_detectors: Vec<(i64, i16)>,
    pub(crate) close_object_ids: Vec<i64>,
    pub(crate) tables: [Table; 3],
}

/// A decoded reassign record.
#[derive(Debug, Clone)]
pub(crate) struct ReassignRecord {
    pub(crate) time: f64,
    pub(crate) pairs: Vec<(i64, i64)>,
}

/// What becomes visible when a record is durable.
pub(crate) enum Payload {
    Visit {
        visit_time: f64,
        runs: Vec<(usize, i64, MemRun)>,
    },
    Reassign(Vec<(i64, Reassoc)>),
}

pub(crate) struct Pending {
    pub(crate) end_lsn: u64,
    pub(crate) seq: u64,
    pub(crate) payload: Payload,
}

pub(crate) fn encode_visit(record: &VisitRecord) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        64 + record
            .tables
            .iter()
            .map(|t| t.raw_bytes() as usize + 16 * t.columns.len())
            .sum::<usize>(),
    );
    body.extend_from_slice(&record.visit_time.to_le_bytes());
    body.extend_from_slice(&(record.visit_detectors.len() as u32).to_le_bytes());
    for &(visit, detector) in &record.visit_detectors {
        body.extend_from_slice(&visit.to_le_bytes());
        body.extend_from_slice(&detector.to_le_bytes());
        body.extend_from_slice(&[0u8; 6]);
    }
    body.extend_from_slice(&(record.close_object_ids.len() as u32).to_le_bytes());
    for id in &record.close_object_ids {
        body.extend_from_slice(&id.to_le_bytes());
    }
    for table in &record.tables {
        encode_table(table, &mut body);
    }
    body
}

pub(crate) fn decode_visit(body: &[u8], layout: &ApdbLayout) -> Result<VisitRecord> {
    let mut c = Cursor::new(body, "visit record");
    let visit_time = c.f64()?;
    let pairs = c.u32()? as usize;
    if pairs > MAX_VISIT_DETECTORS_PER_STORE || pairs * 16 > c.remaining() {
        return Err(c.corrupt("too many visit/detector pairs"));
    }
    let mut visit_detectors = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let visit = c.i64()?;
        let d = c.take(8)?;
        if d[2..] != [0; 6] {
            return Err(c.corrupt("reserved bytes are not zero"));
        }
        visit_detectors.push((visit, i16::from_le_bytes([d[0], d[1]])));
    }
    let closes = c.u32()? as usize;
    if closes * 8 > c.remaining() {
        return Err(c.corrupt("too many closed objects"));
    }
    let close_object_ids = (0..closes).map(|_| c.i64()).collect::<Result<Vec<_>>>()?;
    let object = decode_table(&mut c, &layout.tables[0].schema, MAX_ROWS_PER_STORE)?;
    let source = decode_table(&mut c, &layout.tables[1].schema, MAX_ROWS_PER_STORE)?;
    let forced = decode_table(&mut c, &layout.tables[2].schema, MAX_ROWS_PER_STORE)?;
    if c.remaining() != 0 {
        return Err(c.corrupt("bytes after the last table"));
    }
    Ok(VisitRecord {
        visit_time,
        visit_detectors,
        close_object_ids,
        tables: [object, source, forced],
    })
}

pub(crate) fn encode_reassign(record: &ReassignRecord) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + 16 * record.pairs.len());
    body.extend_from_slice(&record.time.to_le_bytes());
    body.extend_from_slice(&(record.pairs.len() as u32).to_le_bytes());
    for &(source, ss) in &record.pairs {
        body.extend_from_slice(&source.to_le_bytes());
        body.extend_from_slice(&ss.to_le_bytes());
    }
    body
}

pub(crate) fn decode_reassign(body: &[u8]) -> Result<ReassignRecord> {
    let mut c = Cursor::new(body, "reassign record");
    let time = c.f64()?;
    let n = c.u32()? as usize;
    if n * 16 != c.remaining() {
        return Err(c.corrupt("pair count does not match the body length"));
    }
    let pairs = (0..n)
        .map(|_| Ok((c.i64()?, c.i64()?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(ReassignRecord { time, pairs })
}

/// Splits a table's rows by partition and sorts each part by (spatial key,
/// id): the runs a record adds. Positions were validated before.
pub(crate) fn split_runs(
    shared_chunker: &Chunker,
    layout: &ApdbLayout,
    table: ApdbTable,
    rows: &Table,
    seq: u64,
) -> Result<Vec<(i64, MemRun)>> {
    let t = layout.table(table);
    let ra = f64_values(rows, t.ra);
    let dec = f64_values(rows, t.dec);
    let time = f64_values(rows, t.time);
    let id = i64_values(rows, t.id);
    let mut order: Vec<(i64, u64, i64, u32)> = Vec::with_capacity(rows.rows());
    for row in 0..rows.rows() {
        let location = shared_chunker.locate(ra[row], dec[row])?;
        let key = spatial_key(location.chunk_id, location.sub_chunk_id);
        order.push((partition_of(time[row]), key, id[row], row as u32));
    }
    order.sort_unstable();
    let mut runs = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let partition = order[start].0;
        let end = start + order[start..].partition_point(|o| o.0 == partition);
        let indices: Vec<u32> = order[start..end].iter().map(|o| o.3).collect();
        let keys: Vec<u64> = order[start..end].iter().map(|o| o.1).collect();
        runs.push((
            partition,
            MemRun {
                seq,
                rows: take_rows(rows, &indices),
                keys,
            },
        ));
        start = end;
    }
    Ok(runs)
}

fn valid_position(ra: f64, dec: f64) -> bool {
    ra.is_finite() && dec.is_finite() && (-90.0..=90.0).contains(&dec)
}

/// Checks of a request that need no database state.
fn check_request(layout: &ApdbLayout, req: &StoreRequest) -> Result<VisitRecord> {
    let reject = |m: String| Err(ApdbError::Rejected(m));
    if !req.visit_time.is_finite() || req.visit_time <= 0.0 {
        return reject(format!(
            "visit time {} is not a positive MJD",
            req.visit_time
        ));
    }
    if req.visit_detectors.is_empty() {
        return reject("a store must name the (visit, detector) pairs it completes".into());
    }
    if req.visit_detectors.len() > MAX_VISIT_DETECTORS_PER_STORE {
        return reject(format!(
            "{} (visit, detector) pairs, at most {MAX_VISIT_DETECTORS_PER_STORE}",
            req.visit_detectors.len()
        ));
    }
    let pairs: HashSet<(i64, i16)> = req.visit_detectors.iter().copied().collect();
    if pairs.len() != req.visit_detectors.len() {
        return reject("a (visit, detector) pair is named twice".into());
    }
    let inputs = [&req.objects, &req.sources, &req.forced_sources];
    let mut tables = Vec::with_capacity(3);
    for (table, input) in ApdbTable::ALL.iter().zip(inputs) {
        if input.rows() > MAX_ROWS_PER_STORE {
            return reject(format!(
                "{}: {} rows, at most {MAX_ROWS_PER_STORE} per store",
                table.name(),
                input.rows()
            ));
        }
        let rows = conform(input, &layout.table(*table).schema)?;
        let t = layout.table(*table);
        let ra = f64_values(&rows, t.ra);
        let dec = f64_values(&rows, t.dec);
        if let Some(row) = (0..rows.rows()).find(|&r| !valid_position(ra[r], dec[r])) {
            return reject(format!(
                "{} row {row}: position ({}, {}) is not finite with dec in [-90, 90]",
                table.name(),
                ra[row],
                dec[row]
            ));
        }
        let time = f64_values(&rows, t.time);
        if let Some(row) = (0..rows.rows()).find(|&r| !time[r].is_finite() || time[r] <= 0.0) {
            return reject(format!(
                "{} row {row}: time {} is not a positive MJD",
                table.name(),
                time[row]
            ));
        }
        if let (Some(v), Some(d)) = (t.visit, t.detector) {
            let visits = i64_values(&rows, v);
            let detectors = i16_values(&rows, d);
            if let Some(row) =
                (0..rows.rows()).find(|&r| !pairs.contains(&(visits[r], detectors[r])))
            {
                return reject(format!(
                    "{} row {row}: visit {} detector {} is not among the pairs of this store",
                    table.name(),
                    visits[row],
                    detectors[row]
                ));
            }
        }
        tables.push(rows);
    }
    let [objects, sources, forced]: [Table; 3] = tables
        .try_into()
        .map_err(|_| ApdbError::Rejected("internal: three tables expected".into()))?;
    // DiaObject versions.
    let o = layout.table(ApdbTable::DiaObject);
    let starts = f64_values(&objects, o.time);
    if let Some(row) = starts.iter().position(|&s| s != req.visit_time) {
        return reject(format!(
            "DiaObject row {row}: validityStartMjdTai {} is not the visit time {}",
            starts[row], req.visit_time
        ));
    }
    let end_validity = validity(&objects, layout.validity_end);
    if objects.rows() > 0 && end_validity.is_none_or(|v| v.count_ones() > 0) {
        return reject(
            "DiaObject: new versions must have validityEndMjdTai NULL (the APDB closes \
             superseded versions itself)"
                .into(),
        );
    }
    unique(i64_values(&objects, o.id), "DiaObject", "diaObjectId")?;
    unique(
        i64_values(&sources, layout.table(ApdbTable::DiaSource).id),
        "DiaSource",
        "diaSourceId",
    )?;
    let f = layout.table(ApdbTable::DiaForcedSource);
    let mut keys = HashSet::with_capacity(forced.rows());
    let (fo, fv, fd) = (
        i64_values(&forced, f.object_id),
        i64_values(&forced, f.visit.unwrap_or(0)),
        i16_values(&forced, f.detector.unwrap_or(0)),
    );
    for row in 0..forced.rows() {
        if !keys.insert((fo[row], fv[row], fd[row])) {
            return reject(format!(
                "DiaForcedSource: primary key (diaObjectId {}, visit {}, detector {}) twice",
                fo[row], fv[row], fd[row]
            ));
        }
    }
    let closes: super::IdSet = req.close_object_ids.iter().copied().collect();
    if closes.len() != req.close_object_ids.len() {
        return reject("an object is closed twice in one store".into());
    }
    if let Some(id) = i64_values(&objects, o.id)
        .iter()
        .find(|id| closes.contains(id))
    {
        return reject(format!(
            "DiaObject {id} both gets a new version and is closed"
        ));
    }
    Ok(VisitRecord {
        visit_time: req.visit_time,
        visit_detectors: req.visit_detectors.clone(),
        close_object_ids: req.close_object_ids.clone(),
        tables: [objects, sources, forced],
    })
}

fn unique(ids: &[i64], table: &str, column: &str) -> Result<()> {
    let mut seen = super::IdSet::with_capacity_and_hasher(ids.len(), Default::default());
    for id in ids {
        if !seen.insert(*id) {
            return Err(ApdbError::Rejected(format!(
                "{table}: {column} {id} appears twice in this store"
            )));
        }
    }
    Ok(())
}

/// Checks against the database state (under the writer lock).
fn check_state(
    shared: &Shared,
    writer: &WriterState,
    objects: &super::IdMap<ObjectEntry>,
    record: &VisitRecord,
) -> Result<()> {
    let layout = &shared.layout;
    let reject = |m: String| Err(ApdbError::Rejected(m));
    for pair in &record.visit_detectors {
        if writer.visit_detectors.contains(pair) {
            return reject(format!(
                "visit {} detector {} is already stored",
                pair.0, pair.1
            ));
        }
    }
    let [new_objects, sources, forced] = &record.tables;
    let o = layout.table(ApdbTable::DiaObject);
    let new_ids: super::IdSet = i64_values(new_objects, o.id).iter().copied().collect();
    let unknown = new_ids
        .iter()
        .filter(|id| !objects.contains_key(id))
        .count();
    if objects.len() + unknown > shared.config.max_objects {
        return Err(ApdbError::Limit(format!(
            "{} DiaObjects would pass the limit of {} (ApdbConfig::max_objects)",
            objects.len() + unknown,
            shared.config.max_objects
        )));
    }
    for id in i64_values(new_objects, o.id) {
        if let Some(entry) = objects.get(id)
            && let Some(last) = entry.versions.last()
        {
            if last.start >= record.visit_time {
                return reject(format!(
                    "DiaObject {id}: its latest version starts at {}, not before the visit time {}",
                    last.start, record.visit_time
                ));
            }
            if let Some((closed, _)) = entry.closed
                && closed > record.visit_time
            {
                return reject(format!(
                    "DiaObject {id} was closed at {closed}, after this visit"
                ));
            }
        }
    }
    for id in &record.close_object_ids {
        match objects.get(id) {
            None => {
                return reject(format!("validity update for unknown DiaObject {id}"));
            }
            Some(entry) if entry.closed.is_some() => {
                return reject(format!("DiaObject {id} is already closed"));
            }
            Some(entry)
                if entry
                    .versions
                    .last()
                    .is_some_and(|v| v.start >= record.visit_time) =>
            {
                return reject(format!(
                    "DiaObject {id}: its open version does not start before {}",
                    record.visit_time
                ));
            }
            Some(_) => {}
        }
    }
    let known = |id: &i64| new_ids.contains(id) || objects.contains_key(id);
    let s = layout.table(ApdbTable::DiaSource);
    let source_objects = i64_values(sources, s.object_id);
    let source_valid = validity(sources, s.object_id);
    for (row, id) in source_objects.iter().enumerate() {
        if source_valid.is_none_or(|v| v.get(row)) && !known(id) {
            return reject(format!(
                "DiaSource {}: refers to unknown DiaObject {id}",
                i64_values(sources, s.id)[row]
            ));
        }
    }
    let f = layout.table(ApdbTable::DiaForcedSource);
    if let Some(id) = i64_values(forced, f.object_id).iter().find(|id| !known(id)) {
        return reject(format!("DiaForcedSource refers to unknown DiaObject {id}"));
    }
    let ids = i64_values(sources, s.id);
    if ids.iter().any(|&id| id <= writer.max_source_id) {
        let wanted: super::IdSet = ids
            .iter()
            .copied()
            .filter(|&id| id <= writer.max_source_id)
            .collect();
        if let Some(id) = existing_source_id(shared, &wanted)? {
            return reject(format!("DiaSource: diaSourceId {id} is already stored"));
        }
    }
    Ok(())
}

/// The first of `wanted` that is already stored (visible or pending), by
/// reading id columns: the slow path, for ids at or below the largest
/// stored one.
fn existing_source_id(shared: &Shared, wanted: &super::IdSet) -> Result<Option<i64>> {
    let s = shared.layout.table(ApdbTable::DiaSource);
    {
        let sync = lock(&shared.sync);
        for pending in &sync.pending {
            if let Payload::Visit { runs, .. } = &pending.payload {
                for (table, _, run) in runs {
                    if *table == 1
                        && let Some(id) = i64_values(&run.rows, s.id)
                            .iter()
                            .find(|id| wanted.contains(id))
                    {
                        return Ok(Some(*id));
                    }
                }
            }
        }
    }
    let snap = Arc::clone(&read_lock(&shared.snapshot));
    let mut decoder = skyscan_format::BlockDecoder::new();
    let (lo, hi) = wanted.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &id| {
        (lo.min(id), hi.max(id))
    });
    for view in snap.tables[1].values() {
        for run in &view.recent {
            if let Some(id) = i64_values(&run.rows, s.id)
                .iter()
                .find(|id| wanted.contains(id))
            {
                return Ok(Some(*id));
            }
        }
        for segment in &view.segments {
            if segment
                .id_range
                .is_none_or(|(min, max)| max < lo || min > hi)
            {
                continue;
            }
            for group in 0..segment.chunks.len() {
                if let ColumnData::I64(c) = segment.read_column(group, s.id, &mut decoder)?
                    && let Some(id) = c.values.iter().find(|id| wanted.contains(id))
                {
                    return Ok(Some(*id));
                }
            }
        }
    }
    Ok(None)
}

/// Applies a visit record to the writer-side state and the version index.
pub(crate) fn apply_visit_state(
    layout: &ApdbLayout,
    writer: &mut WriterState,
    objects: &mut super::IdMap<ObjectEntry>,
    record: &VisitRecord,
    seq: u64,
) {
    let [new_objects, sources, forced] = &record.tables;
    let o = layout.table(ApdbTable::DiaObject);
    let ids = i64_values(new_objects, o.id);
    let starts = f64_values(new_objects, o.time);
    let n_sources = match &new_objects.columns[layout.n_dia_sources] {
        ColumnData::I32(c) => &c.values[..],
        _ => &[],
    };
    for row in 0..new_objects.rows() {
        let entry = objects.entry(ids[row]).or_default();
        // A new version reopens a closed object (by time, so that replay in
        // any order of segments and log gives the same state).
        if entry.closed.is_some_and(|c| c.0 <= starts[row]) {
            entry.closed = None;
        }
        insert_version(
            entry,
            Version {
                start: starts[row],
                seq,
                single_source: n_sources.get(row) == Some(&1),
            },
        );
    }
    for id in &record.close_object_ids {
        if let Some(entry) = objects.get_mut(id)
            && entry
                .versions
                .last()
                .is_some_and(|v| v.start < record.visit_time)
        {
            entry.closed = Some((record.visit_time, seq));
        }
        writer.closes.push((*id, record.visit_time, seq));
    }
    let mut had_rows = HashSet::new();
    for (table, rows) in [
        (ApdbTable::DiaSource, sources),
        (ApdbTable::DiaForcedSource, forced),
    ] {
        let t = layout.table(table);
        if let (Some(v), Some(d)) = (t.visit, t.detector) {
            let visits = i64_values(rows, v);
            let detectors = i16_values(rows, d);
            for row in 0..rows.rows() {
                had_rows.insert((visits[row], detectors[row]));
            }
        }
    }
    for pair in &record.visit_detectors {
        writer.visit_detectors.insert(*pair);
        if !had_rows.contains(pair) {
            writer.empty_pairs.push((pair.0, pair.1, seq));
        }
    }
    let s = layout.table(ApdbTable::DiaSource);
    if let Some(max) = i64_values(sources, s.id).iter().max() {
        writer.max_source_id = writer.max_source_id.max(*max);
    }
}

/// Inserts a version keeping ascending start (normally an append).
pub(crate) fn insert_version(entry: &mut ObjectEntry, version: Version) {
    match entry.versions.last() {
        Some(last) if last.start > version.start => {
            let at = entry.versions.partition_point(|v| v.start < version.start);
            if entry
                .versions
                .get(at)
                .is_none_or(|v| v.start != version.start)
            {
                entry.versions.insert(at, version);
            }
        }
        Some(last) if last.start == version.start => {}
        _ => entry.versions.push(version),
    }
}

/// Builds the payload of a visit record.
pub(crate) fn visit_payload(shared: &Shared, record: &VisitRecord, seq: u64) -> Result<Payload> {
    let mut runs = Vec::new();
    for table in ApdbTable::ALL {
        for (partition, run) in split_runs(
            &shared.chunker,
            &shared.layout,
            table,
            &record.tables[table as usize],
            seq,
        )? {
            runs.push((table as usize, partition, run));
        }
    }
    Ok(Payload::Visit {
        visit_time: record.visit_time,
        runs,
    })
}

/// Makes a payload visible: a new snapshot from the current one.
pub(crate) fn publish(shared: &Shared, seq: u64, payload: Payload) {
    let mut guard = write_lock(&shared.snapshot);
    let mut next: Snapshot = (**guard).clone();
    next.seq = next.seq.max(seq);
    match payload {
        Payload::Visit { visit_time, runs } => {
            next.last_visit_time = next.last_visit_time.max(visit_time);
            for (table, partition, run) in runs {
                let view = next.tables[table].entry(partition).or_default();
                let mut updated = (**view).clone();
                updated.recent.push(Arc::new(run));
                *view = Arc::new(updated);
            }
        }
        Payload::Reassign(items) => {
            let mut map = (*next.reassigned).clone();
            for (source, reassoc) in items {
                map.insert(source, reassoc);
            }
            next.reassigned = Arc::new(map);
        }
    }
    *guard = Arc::new(next);
}

impl Shared {
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(ApdbError::ReadOnly(
                "this APDB is a replica: it only applies the primary's log".into(),
            ));
        }
        if let Some(why) = lock(&self.poisoned).as_ref() {
            return Err(ApdbError::Poisoned(why.clone()));
        }
        Ok(())
    }

    pub(crate) fn poison(&self, why: &str) {
        let mut p = lock(&self.poisoned);
        if p.is_none() {
            *p = Some(why.to_string());
        }
    }

    /// Appends a record under the writer lock (after `check`), then waits
    /// until it is durable and published.
    pub(crate) fn append_and_commit(
        &self,
        kind: RecordKind,
        body: &[u8],
        expect_seq: Option<u64>,
        check_and_apply: impl FnOnce(&mut WriterState, u64) -> Result<Payload>,
    ) -> Result<u64> {
        let (seq, end_lsn) = {
            let mut writer = lock(&self.writer);
            if let Some(why) = lock(&self.poisoned).as_ref() {
                return Err(ApdbError::Poisoned(why.clone()));
            }
            let next_seq = writer.wal.as_ref().map_or(0, |w| w.next_seq);
            if let Some(want) = expect_seq
                && want != next_seq
            {
                return Err(ApdbError::Corrupt(format!(
                    "log record {want} where {next_seq} was expected"
                )));
            }
            // Validation and the state change come first; the log append
            // after them cannot be undone, so a failed append poisons.
            let payload = check_and_apply(&mut writer, next_seq)?;
            let Some(wal) = writer.wal.as_mut() else {
                return Err(ApdbError::ReadOnly("the log is not open".into()));
            };
            let appended = wal.append(kind, body);
            let (seq, end_lsn) = match appended {
                Ok(v) => v,
                Err(e) => {
                    self.poison(&e.message());
                    return Err(e);
                }
            };
            let file = wal.current_file();
            *lock(&self.tip) = (Some(file), end_lsn);
            lock(&self.sync).pending.push_back(Pending {
                end_lsn,
                seq,
                payload,
            });
            (seq, end_lsn)
        };
        self.wait_durable(end_lsn)?;
        Ok(seq)
    }

    /// Group commit: waits until `end_lsn` is durable; the first waiter
    /// finding no sync running becomes the leader and syncs for everyone.
    pub(crate) fn wait_durable(&self, end_lsn: u64) -> Result<()> {
        let mut sync = lock(&self.sync);
        loop {
            if let Some(why) = lock(&self.poisoned).as_ref() {
                return Err(ApdbError::Poisoned(why.clone()));
            }
            if sync.durable_lsn >= end_lsn {
                return Ok(());
            }
            if !sync.syncing {
                sync.syncing = true;
                drop(sync);
                let (file, target) = {
                    let tip = lock(&self.tip);
                    (tip.0.clone(), tip.1)
                };
                let result = match (&file, self.config.fsync) {
                    (Some(f), true) => f.sync_data(),
                    _ => Ok(()),
                };
                sync = lock(&self.sync);
                sync.syncing = false;
                if let Err(e) = result {
                    self.poison(&format!("fsync of the log failed: {e}"));
                    self.synced.notify_all();
                    return Err(ApdbError::Poisoned(format!("fsync of the log failed: {e}")));
                }
                while sync.pending.front().is_some_and(|p| p.end_lsn <= target) {
                    if let Some(p) = sync.pending.pop_front() {
                        publish(self, p.seq, p.payload);
                        sync.published_seq = p.seq;
                    }
                }
                sync.durable_lsn = sync.durable_lsn.max(target);
                self.synced.notify_all();
                continue;
            }
            sync = self.synced.wait(sync).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Apdb {
    /// Stores one visit (or one CCD of it) as one atomic, durable step:
    /// inserts the sources and forced sources, closes the versions that the
    /// new DiaObject versions supersede (and those in `close_object_ids`),
    /// inserts the new versions. Returns once the record is fsynced; the
    /// visit is then visible to every new snapshot. A rejected request
    /// leaves nothing behind.
    pub fn store(&self, req: &StoreRequest) -> Result<StoreReceipt> {
        let shared = &self.shared;
        shared.check_writable()?;
        let record = check_request(&shared.layout, req)?;
        let in_memory: usize = {
            let snap = read_lock(&shared.snapshot);
            snap.tables
                .iter()
                .flat_map(|t| t.values())
                .map(|v| v.recent_rows())
                .sum()
        };
        if in_memory > shared.config.max_recent_rows {
            super::compact::compact_step(shared, true)?;
        }
        let body = encode_visit(&record);
        // Runs are built before the lock (sorting is the expensive part);
        // their seq is set once it is known.
        let Payload::Visit { visit_time, runs } = visit_payload(shared, &record, 0)? else {
            return Err(ApdbError::Rejected("internal: not a visit payload".into()));
        };
        let seq = shared.append_and_commit(RecordKind::Visit, &body, None, |writer, seq| {
            let mut objects = write_lock(&shared.objects);
            check_state(shared, writer, &objects, &record)?;
            apply_visit_state(&shared.layout, writer, &mut objects, &record, seq);
            let runs = runs
                .into_iter()
                .map(|(t, p, mut run)| {
                    run.seq = seq;
                    (t, p, run)
                })
                .collect();
            Ok(Payload::Visit { visit_time, runs })
        })?;
        Ok(StoreReceipt { seq })
    }

    /// Re-associates DiaSources with solar-system objects at `time` (MJD
    /// TAI): sets `ssObjectId` and `ssObjectReassocTimeMjdTai`, durably.
    /// Unknown or already re-associated sources reject the whole call.
    pub fn reassign_dia_sources(&self, pairs: &[(i64, i64)], time: f64) -> Result<StoreReceipt> {
        let shared = &self.shared;
        shared.check_writable()?;
        if !time.is_finite() || time <= 0.0 {
            return Err(ApdbError::InvalidArgument(format!(
                "re-association time {time} is not a positive MJD"
            )));
        }
        if pairs.len() > MAX_IDS_PER_CALL {
            return Err(ApdbError::Limit(format!(
                "{} re-associations, at most {MAX_IDS_PER_CALL}",
                pairs.len()
            )));
        }
        let wanted: super::IdSet = pairs.iter().map(|p| p.0).collect();
        if wanted.len() != pairs.len() {
            return Err(ApdbError::Rejected(
                "a DiaSource is re-associated twice in one call".into(),
            ));
        }
        let record = ReassignRecord {
            time,
            pairs: pairs.to_vec(),
        };
        let body = encode_reassign(&record);
        let seq = shared.append_and_commit(RecordKind::Reassign, &body, None, |_, seq| {
            let found = find_sources(shared, &wanted)?;
            if let Some(missing) = wanted.iter().find(|id| !found.contains(id)) {
                return Err(ApdbError::Rejected(format!(
                    "re-association of unknown DiaSource {missing}"
                )));
            }
            let snap = Arc::clone(&read_lock(&shared.snapshot));
            let pending_reassigned = {
                let sync = lock(&shared.sync);
                sync.pending.iter().any(|p| match &p.payload {
                    Payload::Reassign(items) => items.iter().any(|(s, _)| wanted.contains(s)),
                    Payload::Visit { .. } => false,
                })
            };
            if pending_reassigned || wanted.iter().any(|s| snap.reassigned.contains_key(s)) {
                return Err(ApdbError::Rejected(
                    "a DiaSource is already re-associated (LDM-135: never back)".into(),
                ));
            }
            Ok(Payload::Reassign(
                pairs
                    .iter()
                    .map(|&(source, ss)| {
                        (
                            source,
                            Reassoc {
                                ss_object_id: ss,
                                time,
                                seq,
                            },
                        )
                    })
                    .collect(),
            ))
        })?;
        Ok(StoreReceipt { seq })
    }

    /// Whether (visit, detector) has been stored (dax_apdb
    /// `containsVisitDetector`); counts stores not yet durable too, so that
    /// a second writer of the same CCD is refused.
    pub fn contains_visit_detector(&self, visit: i64, detector: i16) -> bool {
        lock(&self.shared.writer)
            .visit_detectors
            .contains(&(visit, detector))
    }
}

/// Which of `wanted` are stored DiaSources (visible or pending).
fn find_sources(shared: &Shared, wanted: &super::IdSet) -> Result<super::IdSet> {
    let s = shared.layout.table(ApdbTable::DiaSource);
    let mut found = super::IdSet::default();
    {
        let sync = lock(&shared.sync);
        for pending in &sync.pending {
            if let Payload::Visit { runs, .. } = &pending.payload {
                for (table, _, run) in runs {
                    if *table == 1 {
                        found.extend(
                            i64_values(&run.rows, s.id)
                                .iter()
                                .filter(|id| wanted.contains(id)),
                        );
                    }
                }
            }
        }
    }
    let snap = Arc::clone(&read_lock(&shared.snapshot));
    let mut decoder = skyscan_format::BlockDecoder::new();
    let (lo, hi) = wanted.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &id| {
        (lo.min(id), hi.max(id))
    });
    for view in snap.tables[1].values() {
        for run in &view.recent {
            found.extend(
                i64_values(&run.rows, s.id)
                    .iter()
                    .filter(|id| wanted.contains(id)),
            );
        }
        for segment in &view.segments {
            if segment
                .id_range
                .is_none_or(|(min, max)| max < lo || min > hi)
            {
                continue;
            }
            for group in 0..segment.chunks.len() {
                if let ColumnData::I64(c) = segment.read_column(group, s.id, &mut decoder)? {
                    found.extend(c.values.iter().filter(|id| wanted.contains(id)));
                }
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    Ok(found)
}
