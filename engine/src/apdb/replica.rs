//! Log shipping and read replicas (DMTN-018: a read-only instance for user
//! queries, updated continuously from the primary).
//!
//! The primary hands out its durable log records as bytes
//! ([`Apdb::ship_log`]): the records exactly as in its log files (SPEC.md
//! part 4 §3), followed by one `Head` record carrying its durable sequence
//! number. Any byte stream can carry them (a file, a pipe, later the TCP
//! protocol): the follower ([`Apdb::apply_log`]) buffers partial records,
//! checks every CRC, applies whole records in sequence order through its own
//! log (so it is itself crash-safe), and publishes each one as the primary
//! did, so its readers always see a prefix of the primary's visits.

use std::io::Write;

use super::error::{ApdbError, Result};
use super::store::{Payload, apply_visit_state, decode_reassign, decode_visit, visit_payload};
use super::wal::{self, Parsed, RecordKind};
use super::{Apdb, ApdbConfig, FelisSchema, Reassoc, lock, read_lock, write_lock};
use std::path::Path;

/// Most bytes a follower buffers of a record not yet complete.
pub const MAX_PENDING_STREAM_BYTES: usize = (wal::MAX_RECORD_BODY as usize) + 64;

/// One shipment of log records.
#[derive(Debug, Clone, PartialEq)]
pub struct LogBatch {
    /// Records (SPEC.md part 4 §3), then a `Head` record.
    pub bytes: Vec<u8>,
    /// The primary's last durable record.
    pub durable_seq: u64,
    /// The last record in `bytes` (or `from_seq - 1` when none).
    pub last_seq: u64,
}

/// Where a replica stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaStatus {
    /// Last record applied and visible.
    pub applied_seq: u64,
    /// The primary's durable record, as last heard.
    pub primary_seq: u64,
    /// Records behind the primary.
    pub lag_records: u64,
    /// Latest visit time visible here (MJD TAI).
    pub last_visit_time: f64,
}

impl Apdb {
    /// The durable log records from `from_seq` on, at most about
    /// `max_bytes`, for a follower. `InvalidArgument` when `from_seq` is
    /// older than the kept log (the follower needs a new [`Apdb::base_copy`]).
    pub fn ship_log(&self, from_seq: u64, max_bytes: usize) -> Result<LogBatch> {
        let durable_seq = lock(&self.shared.sync).published_seq;
        let bytes = wal::read_from(
            &self.shared.dir.join("wal"),
            from_seq,
            durable_seq,
            max_bytes,
        )?
        .ok_or_else(|| {
            ApdbError::InvalidArgument(format!(
                "log record {from_seq} is no longer kept: start the replica from a new base copy"
            ))
        })?;
        let mut last_seq = from_seq.saturating_sub(1);
        let mut offset = 0;
        while let Parsed::Record(r, len) = wal::parse_record(&bytes[offset..]) {
            last_seq = r.seq;
            offset += len;
        }
        let mut out = bytes;
        wal::encode_record(RecordKind::Head, durable_seq, &[], &mut out);
        Ok(LogBatch {
            bytes: out,
            durable_seq,
            last_seq,
        })
    }

    /// Writes shipments to `sink` until the follower is at the primary's
    /// durable record (one call of a shipping loop).
    pub fn ship_log_to(&self, from_seq: u64, sink: &mut dyn Write) -> Result<u64> {
        let mut next = from_seq;
        loop {
            let batch = self.ship_log(next, 64 << 20)?;
            sink.write_all(&batch.bytes)
                .map_err(|e| ApdbError::io("sending log records", e))?;
            if batch.last_seq >= batch.durable_seq || batch.last_seq + 1 == next {
                return Ok(batch.last_seq);
            }
            next = batch.last_seq + 1;
        }
    }

    /// Opens a replica in `dir` (made by [`Apdb::base_copy`], or empty to
    /// follow a primary from its first record). It refuses `store` and
    /// `reassign`; it applies the primary's log with [`Apdb::apply_log`].
    pub fn open_replica(dir: &Path, felis: FelisSchema, config: ApdbConfig) -> Result<Apdb> {
        Apdb::open_inner(dir, felis, config, true).map(|(apdb, _)| apdb)
    }

    /// Replica: feeds bytes of the primary's log stream (any split);
    /// applies every whole record, keeps the rest for the next call.
    /// Returns the number of visit and reassign records applied.
    pub fn apply_log(&self, bytes: &[u8]) -> Result<usize> {
        let shared = &self.shared;
        if !shared.read_only {
            return Err(ApdbError::ReadOnly(
                "apply_log is for replicas; this APDB is a primary".into(),
            ));
        }
        let mut buffer = lock(&shared.stream_buffer);
        if buffer.len() + bytes.len() > MAX_PENDING_STREAM_BYTES + bytes.len().min(64 << 20) {
            return Err(ApdbError::Limit("log stream buffer over its limit".into()));
        }
        buffer.extend_from_slice(bytes);
        let mut applied = 0;
        let mut offset = 0;
        loop {
            match wal::parse_record(&buffer[offset..]) {
                Parsed::Incomplete => break,
                Parsed::Invalid(why) => {
                    return Err(ApdbError::Corrupt(format!("log stream: {why}")));
                }
                Parsed::Record(record, len) => {
                    offset += len;
                    let next = lock(&shared.writer).wal.as_ref().map_or(0, |w| w.next_seq);
                    match record.kind {
                        RecordKind::Head => {
                            let mut head = lock(&shared.primary_head);
                            *head = (*head).max(record.seq);
                        }
                        _ if record.seq < next => {} // already applied
                        RecordKind::Visit => {
                            let visit = decode_visit(&record.body, &shared.layout)?;
                            let payload = visit_payload(shared, &visit, record.seq)?;
                            shared.append_and_commit(
                                RecordKind::Visit,
                                &record.body,
                                Some(record.seq),
                                |writer, seq| {
                                    let mut objects = write_lock(&shared.objects);
                                    apply_visit_state(
                                        &shared.layout,
                                        writer,
                                        &mut objects,
                                        &visit,
                                        seq,
                                    );
                                    Ok(payload)
                                },
                            )?;
                            applied += 1;
                        }
                        RecordKind::Reassign => {
                            let r = decode_reassign(&record.body)?;
                            shared.append_and_commit(
                                RecordKind::Reassign,
                                &record.body,
                                Some(record.seq),
                                |_, seq| {
                                    Ok(Payload::Reassign(
                                        r.pairs
                                            .iter()
                                            .map(|&(s, ss)| {
                                                (
                                                    s,
                                                    Reassoc {
                                                        ss_object_id: ss,
                                                        time: r.time,
                                                        seq,
                                                    },
                                                )
                                            })
                                            .collect(),
                                    ))
                                },
                            )?;
                            applied += 1;
                        }
                    }
                }
            }
        }
        buffer.drain(..offset);
        Ok(applied)
    }

    /// Replica: forgets the bytes of an incomplete record kept by
    /// [`Apdb::apply_log`]. A follower calls it when its stream broke off
    /// (a lost connection) before asking again from its last applied
    /// record, so the new stream does not continue a torn one.
    pub fn reset_log_stream(&self) {
        lock(&self.shared.stream_buffer).clear();
    }

    /// Waits until the record `seq` is durable and visible, or `timeout`
    /// passes; returns the last visible sequence number. Long polls of log
    /// shipping wait here instead of asking again and again.
    pub fn wait_for_seq(&self, seq: u64, timeout: std::time::Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        let mut sync = lock(&self.shared.sync);
        while sync.published_seq < seq {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            sync = match self.shared.synced.wait_timeout(sync, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        sync.published_seq
    }

    /// Whether this APDB is a read-only replica.
    pub fn is_replica(&self) -> bool {
        self.shared.read_only
    }

    /// Replica: how far it is behind the primary.
    pub fn replica_status(&self) -> ReplicaStatus {
        let snap = read_lock(&self.shared.snapshot);
        let primary = *lock(&self.shared.primary_head);
        ReplicaStatus {
            applied_seq: snap.seq,
            primary_seq: primary.max(snap.seq),
            lag_records: primary.saturating_sub(snap.seq),
            last_visit_time: snap.last_visit_time,
        }
    }
}
