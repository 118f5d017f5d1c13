//! Recovery at open, the manifest (SPEC.md part 4 §5), and compaction:
//! writing recent runs out as segments and merging the runs of a closed
//! partition into one, without blocking readers or writers (they keep
//! working on their snapshots; the swap is one pointer under a lock).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use skyscan_format::{BlockDecoder, ColumnData, WriterOptions};

use super::error::{ApdbError, Result};
use super::rows::{append_rows, empty_table, f64_values, i64_values, take_rows};
use super::segment::{Segment, spatial_key, sync_dir, write_segment};
use super::store::{
    Payload, apply_visit_state, decode_reassign, decode_visit, insert_version, visit_payload,
};
use super::wal::{self, RecordKind, WalWriter};
use super::{
    ApdbTable, OpenStats, PartitionView, Reassoc, Shared, Snapshot, Version, lock, partition_start,
    read_lock, write_lock,
};
use crate::table::Table;

/// Name of the manifest file.
pub const MANIFEST_NAME: &str = "MANIFEST";
/// Largest manifest read, bytes.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;
const MANIFEST_FORMAT: &str = "skyscan-apdb-manifest";
const MANIFEST_VERSION: u32 = 1;

/// The manifest: which segments hold which partitions, and the state that
/// outlives the log records it came from (SPEC.md part 4 §5).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `"skyscan-apdb-manifest"`.
    pub format: String,
    /// 1.
    pub version: u32,
    /// Increases with every manifest written.
    pub generation: u64,
    /// Number for the next segment file name.
    pub next_segment: u64,
    /// Every log record up to this one is reflected here or in a segment.
    pub snapshot_seq: u64,
    /// Latest visit time stored (MJD TAI).
    pub last_visit_time: f64,
    /// Segments per (table, partition).
    pub partitions: Vec<ManifestPartition>,
    /// DiaSource re-associations: [diaSourceId, ssObjectId, time].
    pub reassigned: Vec<(i64, i64, f64)>,
    /// DiaObjects closed without successor: [diaObjectId, time].
    pub closed_objects: Vec<(i64, f64)>,
    /// (visit, detector) pairs stored without any row.
    pub empty_visit_detectors: Vec<(i64, i16)>,
}

/// One (table, partition) of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestPartition {
    /// `DiaObject`, `DiaSource` or `DiaForcedSource`.
    pub table: String,
    /// Partition index (`floor(mjd / 30)`).
    pub partition: i64,
    /// Log records up to this one are in the segments for this partition.
    pub covered_seq: u64,
    /// Segment file names in `segments/<table>/`, oldest first.
    pub segments: Vec<String>,
}

/// Compaction bookkeeping, under the checkpoint lock.
#[derive(Debug, Default)]
pub struct CheckpointState {
    /// Generation of the last manifest written.
    pub generation: u64,
    /// Number of the next segment file.
    pub next_segment: u64,
    /// The last compaction error (reported by `Apdb::compaction_error`).
    pub last_error: Option<String>,
}

fn table_dir(dir: &Path, table: ApdbTable) -> PathBuf {
    dir.join("segments").join(table.name())
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_NAME);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApdbError::io(format!("reading {}", path.display()), e)),
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(ApdbError::Corrupt(format!(
            "{}: {} bytes, over the limit",
            path.display(),
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ApdbError::io(format!("reading {}", path.display()), e))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| ApdbError::Corrupt(format!("{}: {e}", path.display())))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(ApdbError::Corrupt(format!(
            "{}: not an APDB manifest",
            path.display()
        )));
    }
    if manifest.version != MANIFEST_VERSION {
        return Err(ApdbError::Corrupt(format!(
            "{}: manifest version {} is not supported",
            path.display(),
            manifest.version
        )));
    }
    for p in &manifest.partitions {
        if table_by_name(&p.table).is_none() {
            return Err(ApdbError::Corrupt(format!(
                "manifest names table {}",
                p.table
            )));
        }
        for name in &p.segments {
            if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
                return Err(ApdbError::Corrupt(format!(
                    "manifest segment name {name:?} is not a plain file name"
                )));
            }
        }
    }
    Ok(Some(manifest))
}

fn table_by_name(name: &str) -> Option<ApdbTable> {
    ApdbTable::ALL.into_iter().find(|t| t.name() == name)
}

/// Writes the manifest atomically (temporary + fsync + rename + fsync dir).
pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| ApdbError::Corrupt(format!("encoding the manifest: {e}")))?;
    let tmp = dir.join("MANIFEST.tmp");
    let path = dir.join(MANIFEST_NAME);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    };
    write().map_err(|e| ApdbError::io(format!("writing {}", path.display()), e))
}

/// Opens the database state: manifest, segments, log replay.
pub(crate) fn recover(shared: &Shared) -> Result<OpenStats> {
    let dir = &shared.dir;
    let layout = &shared.layout;
    let manifest = read_manifest(dir)?.unwrap_or(Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        ..Manifest::default()
    });
    let mut stats = OpenStats::default();
    let mut snap = Snapshot {
        seq: manifest.snapshot_seq,
        last_visit_time: manifest.last_visit_time,
        ..Snapshot::default()
    };
    let mut objects: super::IdMap<super::ObjectEntry> = super::IdMap::default();
    let mut writer = lock(&shared.writer);
    let mut referenced: HashSet<(usize, String)> = HashSet::new();
    let mut decoder = BlockDecoder::new();
    for p in &manifest.partitions {
        let Some(table) = table_by_name(&p.table) else {
            continue;
        };
        let t = layout.table(table);
        let mut view = PartitionView {
            covered_seq: p.covered_seq,
            ..PartitionView::default()
        };
        for name in &p.segments {
            let segment = Segment::open(&table_dir(dir, table).join(name), &t.schema, t.id)?;
            index_segment(
                shared,
                table,
                &segment,
                &mut objects,
                &mut writer,
                &mut decoder,
            )?;
            referenced.insert((table as usize, name.clone()));
            view.segments.push(segment);
            stats.segments += 1;
        }
        snap.tables[table as usize].insert(p.partition, Arc::new(view));
    }
    // Leftovers: segments a crashed compaction wrote but never published.
    // (A replica owns its directory too: it writes its own log.)
    {
        for table in ApdbTable::ALL {
            let tdir = table_dir(dir, table);
            let entries = std::fs::read_dir(&tdir)
                .map_err(|e| ApdbError::io(format!("listing {}", tdir.display()), e))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(&(table as usize, name)) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = std::fs::remove_file(dir.join("MANIFEST.tmp"));
    }
    let mut reassigned: super::IdMap<Reassoc> = manifest
        .reassigned
        .iter()
        .map(|&(s, ss, time)| {
            (
                s,
                Reassoc {
                    ss_object_id: ss,
                    time,
                    seq: 0,
                },
            )
        })
        .collect();
    for &(id, time) in &manifest.closed_objects {
        let entry = objects.entry(id).or_default();
        if entry.versions.last().is_some_and(|v| v.start < time) {
            entry.closed = Some((time, 0));
        }
        writer.closes.push((id, time, 0));
    }
    for &(visit, detector) in &manifest.empty_visit_detectors {
        writer.visit_detectors.insert((visit, detector));
        writer.empty_pairs.push((visit, detector, 0));
    }
    // Replay.
    let wal_dir = dir.join("wal");
    let recovered = wal::recover(&wal_dir, true)?;
    stats.torn_bytes = recovered.torn_bytes;
    for record in &recovered.records {
        match record.kind {
            RecordKind::Visit => {
                let visit = decode_visit(&record.body, layout)?;
                apply_visit_state(layout, &mut writer, &mut objects, &visit, record.seq);
                if let Payload::Visit { visit_time, runs } =
                    visit_payload(shared, &visit, record.seq)?
                {
                    snap.last_visit_time = snap.last_visit_time.max(visit_time);
                    for (table, partition, run) in runs {
                        let view = snap.tables[table].entry(partition).or_default();
                        if record.seq > view.covered_seq {
                            Arc::make_mut(view).recent.push(Arc::new(run));
                        }
                    }
                }
            }
            RecordKind::Reassign => {
                if record.seq > manifest.snapshot_seq {
                    let r = decode_reassign(&record.body)?;
                    for (source, ss) in r.pairs {
                        reassigned.insert(
                            source,
                            Reassoc {
                                ss_object_id: ss,
                                time: r.time,
                                seq: record.seq,
                            },
                        );
                    }
                }
            }
            RecordKind::Head => {}
        }
        snap.seq = snap.seq.max(record.seq);
        stats.replayed_records += 1;
    }
    snap.reassigned = Arc::new(reassigned);
    let next_seq = recovered.next_seq.max(snap.seq + 1);
    let wal = WalWriter::open(&wal_dir, next_seq)?;
    *lock(&shared.tip) = (Some(wal.current_file()), 0);
    writer.wal = Some(wal);
    {
        let mut sync = lock(&shared.sync);
        sync.published_seq = snap.seq;
    }
    {
        let mut cp = lock(&shared.checkpoint);
        cp.generation = manifest.generation;
        cp.next_segment = manifest.next_segment;
    }
    *write_lock(&shared.objects) = objects;
    *write_lock(&shared.snapshot) = Arc::new(snap);
    Ok(stats)
}

/// Adds a segment's rows to the version index and writer state.
fn index_segment(
    shared: &Shared,
    table: ApdbTable,
    segment: &Segment,
    objects: &mut super::IdMap<super::ObjectEntry>,
    writer: &mut super::WriterState,
    decoder: &mut BlockDecoder,
) -> Result<()> {
    let layout = &shared.layout;
    let t = layout.table(table);
    for group in 0..segment.chunks.len() {
        match table {
            ApdbTable::DiaObject => {
                let ids = segment.read_column(group, t.id, decoder)?;
                let starts = segment.read_column(group, t.time, decoder)?;
                let n = segment.read_column(group, layout.n_dia_sources, decoder)?;
                if let (ColumnData::I64(ids), ColumnData::F64(starts), ColumnData::I32(n)) =
                    (&ids, &starts, &n)
                {
                    for row in 0..ids.values.len() {
                        insert_version(
                            objects.entry(ids.values[row]).or_default(),
                            Version {
                                start: starts.values[row],
                                seq: 0,
                                single_source: n.values[row] == 1,
                            },
                        );
                    }
                }
            }
            ApdbTable::DiaSource | ApdbTable::DiaForcedSource => {
                let (Some(v), Some(d)) = (t.visit, t.detector) else {
                    continue;
                };
                let visits = segment.read_column(group, v, decoder)?;
                let detectors = segment.read_column(group, d, decoder)?;
                if let (ColumnData::I64(visits), ColumnData::I16(detectors)) = (&visits, &detectors)
                {
                    for (visit, detector) in visits.values.iter().zip(&detectors.values) {
                        writer.visit_detectors.insert((*visit, *detector));
                    }
                }
                if table == ApdbTable::DiaSource
                    && let Some((_, max)) = segment.id_range
                {
                    writer.max_source_id = writer.max_source_id.max(max);
                }
            }
        }
    }
    Ok(())
}

/// What one compaction step does.
enum Job {
    /// Merge every segment and run of a closed partition into one segment.
    Merge,
    /// Write the recent runs of a partition as one more segment.
    Flush,
}

/// One step: picks one (table, partition) with work, writes its new
/// segment, swaps it in, writes the manifest, removes what it replaced and
/// the log files nothing needs. `force` also flushes open partitions that
/// are under the flush threshold. Returns whether there was work.
pub(crate) fn compact_step(shared: &Shared, force: bool) -> Result<bool> {
    let mut cp = lock(&shared.checkpoint);
    let snap = Arc::clone(&read_lock(&shared.snapshot));
    let mut job = None;
    'find: for table in ApdbTable::ALL {
        for (&partition, view) in &snap.tables[table as usize] {
            let closed = partition_start(partition + 1) + shared.config.close_grace_days
                <= snap.last_visit_time;
            if closed && (!view.recent.is_empty() || view.segments.len() > 1) {
                job = Some((table, partition, Arc::clone(view), Job::Merge));
                break 'find;
            }
            if !view.recent.is_empty() && (force || view.recent_rows() >= shared.config.flush_rows)
            {
                job = Some((table, partition, Arc::clone(view), Job::Flush));
                break 'find;
            }
        }
    }
    let Some((table, partition, view, kind)) = job else {
        return Ok(false);
    };
    let layout = &shared.layout;
    let t = layout.table(table);
    let merged: Vec<Arc<Segment>> = match kind {
        Job::Merge => view.segments.clone(),
        Job::Flush => Vec::new(),
    };
    // Gather the rows.
    let mut rows = empty_table(&t.schema);
    let mut decoder = BlockDecoder::new();
    for segment in &merged {
        for group in 0..segment.chunks.len() {
            append_rows(&mut rows, &segment.read_group(group, &mut decoder)?)?;
        }
    }
    for run in &view.recent {
        append_rows(&mut rows, &run.rows)?;
    }
    let sorted = sort_spatially(shared, table, &rows)?;
    let (rows, keys) = sorted;
    let number = cp.next_segment;
    cp.next_segment += 1;
    let name = format!("p{partition}.s{number}.skychunk");
    let path = table_dir(&shared.dir, table).join(&name);
    write_segment(&path, partition, &rows, &keys, WriterOptions::default())?;
    let segment = Segment::open(&path, &t.schema, t.id)?;
    let included_max_seq = view.recent.iter().map(|r| r.seq).max().unwrap_or(0);
    // Swap in.
    let published = {
        let mut guard = write_lock(&shared.snapshot);
        let mut next: Snapshot = (**guard).clone();
        let entry = next.tables[table as usize].entry(partition).or_default();
        let mut updated = (**entry).clone();
        let merged_names: HashSet<&str> = merged.iter().map(|s| s.name.as_str()).collect();
        updated
            .segments
            .retain(|s| !merged_names.contains(s.name.as_str()));
        updated.segments.push(segment);
        updated.recent.retain(|r| r.seq > included_max_seq);
        updated.covered_seq = updated.covered_seq.max(snap.seq).max(included_max_seq);
        *entry = Arc::new(updated);
        let published = Arc::new(next);
        *guard = Arc::clone(&published);
        published
    };
    checkpoint(shared, &mut cp, &published)?;
    for segment in &merged {
        let _ = std::fs::remove_file(&segment.path);
    }
    Ok(true)
}

/// Rows sorted by (spatial key, id), and their keys.
fn sort_spatially(shared: &Shared, table: ApdbTable, rows: &Table) -> Result<(Table, Vec<u64>)> {
    let t = shared.layout.table(table);
    let ra = f64_values(rows, t.ra);
    let dec = f64_values(rows, t.dec);
    let id = i64_values(rows, t.id);
    let mut order: Vec<(u64, i64, u32)> = Vec::with_capacity(rows.rows());
    for row in 0..rows.rows() {
        let location = shared.chunker.locate(ra[row], dec[row])?;
        order.push((
            spatial_key(location.chunk_id, location.sub_chunk_id),
            id[row],
            row as u32,
        ));
    }
    order.sort_unstable();
    let indices: Vec<u32> = order.iter().map(|o| o.2).collect();
    Ok((
        take_rows(rows, &indices),
        order.iter().map(|o| o.0).collect(),
    ))
}

/// Writes the manifest of `snap` and removes log files it makes unneeded.
pub(crate) fn checkpoint(shared: &Shared, cp: &mut CheckpointState, snap: &Snapshot) -> Result<()> {
    let (closes, empty) = {
        let writer = lock(&shared.writer);
        let mut closes: BTreeMap<i64, f64> = BTreeMap::new();
        for &(id, time, seq) in &writer.closes {
            if seq <= snap.seq {
                closes.insert(id, time);
            }
        }
        let empty: std::collections::BTreeSet<(i64, i16)> = writer
            .empty_pairs
            .iter()
            .filter(|p| p.2 <= snap.seq)
            .map(|p| (p.0, p.1))
            .collect();
        (closes, empty)
    };
    // Closes that a later version superseded are kept: replay ignores them
    // by time.
    cp.generation += 1;
    let mut partitions = Vec::new();
    for table in ApdbTable::ALL {
        for (&partition, view) in &snap.tables[table as usize] {
            if view.segments.is_empty() {
                continue;
            }
            partitions.push(ManifestPartition {
                table: table.name().to_string(),
                partition,
                covered_seq: view.covered_seq,
                segments: view.segments.iter().map(|s| s.name.clone()).collect(),
            });
        }
    }
    let mut reassigned: Vec<(i64, i64, f64)> = snap
        .reassigned
        .iter()
        .map(|(&s, r)| (s, r.ss_object_id, r.time))
        .collect();
    reassigned.sort_by_key(|r| r.0);
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        generation: cp.generation,
        next_segment: cp.next_segment,
        snapshot_seq: snap.seq,
        last_visit_time: snap.last_visit_time,
        partitions,
        reassigned,
        closed_objects: closes.into_iter().collect(),
        empty_visit_detectors: empty.into_iter().collect(),
    };
    write_manifest(&shared.dir, &manifest)?;
    // Log files whose every record is older than the oldest record still
    // needed (a run in memory, or anything after the snapshot).
    let needed = snap
        .tables
        .iter()
        .flat_map(|m| m.values())
        .flat_map(|v| v.recent.iter().map(|r| r.seq))
        .min()
        .unwrap_or(u64::MAX)
        .min(snap.seq + 1);
    let files = wal::list_wal_files(&shared.dir.join("wal"))?;
    for pair in files.windows(2) {
        let (_, path) = &pair[0];
        let (next_first, _) = pair[1];
        if next_first <= needed {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// The background compaction loop.
pub(crate) fn background(shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        match compact_step(shared, false) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                lock(&shared.checkpoint).last_error = Some(e.to_string());
            }
        }
        let (flag, cv) = &shared.wake;
        let guard = lock(flag);
        if *guard {
            break;
        }
        let _ = cv.wait_timeout(guard, shared.config.compaction_interval);
    }
}

impl super::Apdb {
    /// The last error of the background compaction, if any (it retries).
    pub fn compaction_error(&self) -> Option<String> {
        lock(&self.shared.checkpoint).last_error.clone()
    }

    /// Writes a copy of this database into the empty directory `dest`, from
    /// which a replica can start: segments are hard-linked (copied when
    /// linking fails), the manifest and the durable part of the log are
    /// copied. Returns the last log record in the copy.
    pub fn base_copy(&self, dest: &Path) -> Result<u64> {
        let shared = &self.shared;
        let mut cp = lock(&shared.checkpoint);
        let snap = Arc::clone(&read_lock(&shared.snapshot));
        // A fresh manifest of exactly this snapshot.
        checkpoint(shared, &mut cp, &snap)?;
        for sub in ["wal", "segments"] {
            std::fs::create_dir_all(dest.join(sub))
                .map_err(|e| ApdbError::io(format!("creating {}", dest.display()), e))?;
        }
        for table in ApdbTable::ALL {
            let to = table_dir(dest, table);
            std::fs::create_dir_all(&to)
                .map_err(|e| ApdbError::io(format!("creating {}", to.display()), e))?;
            for view in snap.tables[table as usize].values() {
                for segment in &view.segments {
                    let target = to.join(&segment.name);
                    if std::fs::hard_link(&segment.path, &target).is_err() {
                        std::fs::copy(&segment.path, &target).map_err(|e| {
                            ApdbError::io(format!("copying {}", segment.path.display()), e)
                        })?;
                    }
                }
            }
        }
        std::fs::copy(shared.dir.join(MANIFEST_NAME), dest.join(MANIFEST_NAME))
            .map_err(|e| ApdbError::io("copying the manifest", e))?;
        let wal_dir = shared.dir.join("wal");
        let oldest = wal::list_wal_files(&wal_dir)?
            .first()
            .map_or(snap.seq + 1, |f| f.0);
        let bytes = wal::read_from(&wal_dir, oldest, snap.seq, usize::MAX)?.ok_or_else(|| {
            ApdbError::Corrupt("the log changed while it was being copied".into())
        })?;
        // One log file in the copy holding every durable record still kept.
        let first = match wal::parse_record(&bytes) {
            wal::Parsed::Record(r, _) => r.seq,
            _ => snap.seq + 1,
        };
        let mut file_bytes = Vec::with_capacity(bytes.len() + wal::WAL_HEADER_LEN);
        file_bytes.extend_from_slice(&wal::encode_file_header(first));
        file_bytes.extend_from_slice(&bytes);
        let path = dest.join("wal").join(wal::wal_file_name(first));
        std::fs::write(&path, &file_bytes)
            .and_then(|()| std::fs::File::open(&path)?.sync_all())
            .and_then(|()| sync_dir(&dest.join("wal")))
            .map_err(|e| ApdbError::io(format!("writing {}", path.display()), e))?;
        Ok(snap.seq)
    }
}
