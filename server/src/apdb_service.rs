//! The APDB over the protocol (SPEC.md part 4 §5, "APDB"): the per-visit
//! reads and writes of the alert pipeline, log shipping to replicas, and
//! the follower that keeps a replica in step with its primary.
//!
//! [`ApdbService`] wraps an open [`Apdb`] (primary or replica); the server
//! hands every APDB request ([`MessageType::is_apdb_request`]) to
//! [`handle`]. Each request runs on its own thread, registered like a
//! query, so the per-connection limit and `CANCEL` apply; results stream
//! as Arrow IPC frames through the connection's bounded outbox.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::{
    Array, BinaryArray, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};

use skyscan_client::proto::{
    ApdbRegion, ApdbStatusInfo, ApdbStoreBody, ApdbTableId, EndStats, ErrorCode,
    FRAME_HEADER_BYTES, Message, MessageType, frame_header,
};
use skyscan_client::{Client, ConnectOptions};
use skyscan_engine::apdb::rows::empty_table;
use skyscan_engine::apdb::{Apdb, ApdbError, ApdbTable, ResultSet, StoreRequest};
use skyscan_engine::scan::CancelToken;
use skyscan_engine::table::Table;
use skyscan_format::{
    Bitmap, BoolColumn, ColumnData, ColumnSchema, ColumnType, PrimitiveColumn, TableSchema,
    VarColumn,
};
use skyscan_sky::Region;

use crate::arrow_conv::{IpcEncoder, to_record_batch};
use crate::jobs::split_batch;
use crate::outbox::Outbox;
use crate::server::{Connection, Shared};

/// Default bound on the bytes of store pieces one connection may hold
/// while a multi-frame store arrives (SPEC.md part 4 §10).
pub const DEFAULT_MAX_STORE_BYTES: usize = 1 << 30;

/// Longest wait a `APDB_SHIP_LOG` may ask for.
pub const MAX_SHIP_WAIT: Duration = Duration::from_secs(30);

/// Most bytes of records one shipment carries (the engine returns at least
/// one whole record, which may be larger).
pub const MAX_SHIP_BYTES: usize = 64 << 20;

/// What the follower of a replica knows about its primary.
#[derive(Debug, Default)]
struct FollowerState {
    connected: bool,
    last_contact: Option<Instant>,
    last_error: String,
}

#[derive(Debug)]
struct Follower {
    upstream: String,
    state: Arc<Mutex<FollowerState>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// An open APDB served over the protocol: a primary, or a replica with the
/// thread that follows its primary's log.
pub struct ApdbService {
    apdb: Arc<Apdb>,
    follower: Option<Follower>,
    /// Bytes of store pieces one connection may hold at once.
    pub max_store_bytes: usize,
}

impl std::fmt::Debug for ApdbService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApdbService")
            .field("dir", &self.apdb.dir())
            .field("follower", &self.follower.as_ref().map(|f| &f.upstream))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ApdbService {
    /// Serves a primary (read-write) APDB.
    pub fn primary(apdb: Arc<Apdb>) -> Result<Arc<ApdbService>, String> {
        if apdb.is_replica() {
            return Err(
                "the APDB was opened as a replica; serve it with a primary to follow".into(),
            );
        }
        Ok(Arc::new(ApdbService {
            apdb,
            follower: None,
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
        }))
    }

    /// Serves a replica (opened with `Apdb::open_replica`) and starts the
    /// thread that ships the log of the primary at `upstream` (HOST:PORT)
    /// over the protocol and applies it. It reconnects after errors.
    pub fn replica(
        apdb: Arc<Apdb>,
        upstream: &str,
        options: ConnectOptions,
    ) -> Result<Arc<ApdbService>, String> {
        if !apdb.is_replica() {
            return Err("a follower needs an APDB opened as a replica".into());
        }
        let state = Arc::new(Mutex::new(FollowerState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (apdb, state, stop) = (Arc::clone(&apdb), Arc::clone(&state), Arc::clone(&stop));
            let upstream = upstream.to_string();
            std::thread::Builder::new()
                .name("skyscan-apdb-follow".into())
                .spawn(move || follow(&apdb, &upstream, &options, &state, &stop))
                .map_err(|e| format!("starting the APDB follower: {e}"))?
        };
        Ok(Arc::new(ApdbService {
            apdb,
            follower: Some(Follower {
                upstream: upstream.to_string(),
                state,
                stop,
                thread: Mutex::new(Some(thread)),
            }),
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
        }))
    }

    /// The APDB.
    pub fn apdb(&self) -> &Arc<Apdb> {
        &self.apdb
    }

    /// Role, position and lag (what `APDB_STATUS` answers).
    pub fn status(&self) -> ApdbStatusInfo {
        let status = self.apdb.replica_status();
        let mut info = ApdbStatusInfo {
            replica: self.apdb.is_replica(),
            upstream_connected: false,
            seq: status.applied_seq,
            primary_seq: status.primary_seq,
            lag_records: status.lag_records,
            last_visit_time: status.last_visit_time,
            last_contact_ms: u64::MAX,
            upstream: String::new(),
            last_error: String::new(),
        };
        if let Some(follower) = &self.follower {
            let state = lock(&follower.state);
            info.upstream_connected = state.connected;
            info.last_contact_ms = state
                .last_contact
                .map_or(u64::MAX, |t| t.elapsed().as_millis() as u64);
            info.upstream = follower.upstream.clone();
            info.last_error = state.last_error.clone();
        }
        info
    }

    /// Stops the follower thread (if any) and waits for it.
    pub fn stop(&self) {
        if let Some(follower) = &self.follower {
            follower.stop.store(true, Ordering::SeqCst);
            if let Some(thread) = lock(&follower.thread).take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ApdbService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The follower loop: connect, ship from the record after the last applied
/// one, apply, repeat; on any error note it, forget a torn record, wait a
/// little and reconnect.
fn follow(
    apdb: &Apdb,
    upstream: &str,
    options: &ConnectOptions,
    state: &Mutex<FollowerState>,
    stop: &AtomicBool,
) {
    const WAIT_MS: u32 = 500;
    let mut options = options.clone();
    options.read_timeout =
        Some(Duration::from_millis(u64::from(WAIT_MS)) + Duration::from_secs(60));
    let note_error = |what: String| {
        let mut s = lock(state);
        s.connected = false;
        s.last_error = what;
    };
    while !stop.load(Ordering::SeqCst) {
        match Client::connect(upstream, &options) {
            Err(err) => note_error(format!("connecting to {upstream}: {err}")),
            Ok(mut client) => {
                lock(state).connected = true;
                while !stop.load(Ordering::SeqCst) {
                    let from_seq = apdb.replica_status().applied_seq + 1;
                    let mut apply = |bytes: &[u8]| -> Result<(), String> {
                        apdb.apply_log(bytes).map(|_| ()).map_err(|e| e.to_string())
                    };
                    match client.apdb_ship_log(from_seq, MAX_SHIP_BYTES as u32, WAIT_MS, &mut apply)
                    {
                        Ok(_) => {
                            let mut s = lock(state);
                            s.last_contact = Some(Instant::now());
                            s.connected = true;
                        }
                        Err(err) => {
                            note_error(format!("shipping from {upstream}: {err}"));
                            break;
                        }
                    }
                }
                client.close();
            }
        }
        // A broken stream may have left part of a record behind.
        apdb.reset_log_stream();
        let pause_until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < pause_until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    lock(state).connected = false;
}

/// Store pieces a connection has received (`APDB_STORE_PART`) by request id.
#[derive(Debug, Default)]
pub struct StoreParts {
    pending: HashMap<u32, Pieces>,
    bytes: usize,
}

#[derive(Debug)]
enum Pieces {
    Collecting(Vec<u8>),
    /// Refused already (answered with an error): later pieces are dropped.
    Refused,
}

/// An APDB error as the protocol's code and message.
pub fn apdb_error(err: &ApdbError) -> (ErrorCode, String) {
    let code = match err {
        ApdbError::Rejected(_) | ApdbError::InvalidRegion(_) | ApdbError::InvalidArgument(_) => {
            ErrorCode::InvalidArgument
        }
        ApdbError::Corrupt(_) | ApdbError::Format(_) => ErrorCode::Corrupt,
        ApdbError::Io { .. } | ApdbError::Poisoned(_) => ErrorCode::Io,
        ApdbError::ReadOnly(_) => ErrorCode::ReadOnly,
        ApdbError::Limit(_) => ErrorCode::Limit,
        _ => ErrorCode::Internal,
    };
    (code, err.to_string())
}

type Failure = (ErrorCode, String);

/// Answers one APDB request of `conn`.
pub(crate) fn handle(conn: &mut Connection, request_id: u32, message: Message) {
    let Some(service) = conn.shared.config.apdb.clone() else {
        // A store sent in pieces is refused once, at its last piece.
        if !matches!(message, Message::ApdbStorePart(_)) {
            conn.send(
                request_id,
                &Message::error(
                    ErrorCode::Unsupported,
                    "this server has no APDB (start it with `skyscan serve DB --apdb DIR`)",
                ),
            );
        }
        return;
    };
    if conn.shared.shutting_down.load(Ordering::Acquire) {
        conn.apdb_parts.pending.remove(&request_id);
        conn.send(
            request_id,
            &Message::error(ErrorCode::ShuttingDown, "the server is shutting down"),
        );
        return;
    }
    let refuse_write = |conn: &Connection| {
        conn.send(
            request_id,
            &Message::error(
                ErrorCode::ReadOnly,
                "this server's APDB is a read-only replica: store on its primary",
            ),
        );
    };
    match message {
        Message::ApdbStorePart(piece) => {
            let max_parts = conn.shared.config.max_queries_per_connection;
            let parts = &mut conn.apdb_parts;
            let refused = match parts.pending.get(&request_id) {
                Some(Pieces::Refused) => return,
                Some(Pieces::Collecting(_)) => None,
                None if service.apdb.is_replica() => Some(None),
                None if parts.pending.len() >= max_parts => Some(Some((
                    ErrorCode::TooManyQueries,
                    format!("this connection has {max_parts} stores arriving already (its limit)"),
                ))),
                None => None,
            };
            let over = parts.bytes + piece.len() > service.max_store_bytes;
            if refused.is_none() && !over {
                parts.bytes += piece.len();
                match parts
                    .pending
                    .entry(request_id)
                    .or_insert_with(|| Pieces::Collecting(Vec::new()))
                {
                    Pieces::Collecting(bytes) => bytes.extend_from_slice(&piece),
                    Pieces::Refused => {}
                }
                return;
            }
            if let Some(Pieces::Collecting(bytes)) = parts.pending.remove(&request_id) {
                parts.bytes -= bytes.len();
            }
            // Remember the refusal so that the rest of this store is
            // dropped quietly — within the same bound as arriving stores, so
            // that a client sending pieces under ever new ids cannot grow
            // the map (beyond it, every piece is answered).
            if parts.pending.len() < max_parts {
                parts.pending.insert(request_id, Pieces::Refused);
            }
            match refused {
                Some(None) => refuse_write(conn),
                Some(Some((code, text))) => conn.send(request_id, &Message::error(code, text)),
                None => conn.send(
                    request_id,
                    &Message::error(
                        ErrorCode::Limit,
                        format!(
                            "a store of more than {} bytes (the server's limit)",
                            service.max_store_bytes
                        ),
                    ),
                ),
            }
        }
        Message::ApdbStore(last) => {
            let body = match conn.apdb_parts.pending.remove(&request_id) {
                Some(Pieces::Refused) => return,
                Some(Pieces::Collecting(mut bytes)) => {
                    conn.apdb_parts.bytes -= bytes.len();
                    bytes.extend_from_slice(&last);
                    bytes
                }
                None => last,
            };
            if service.apdb.is_replica() {
                return refuse_write(conn);
            }
            spawn(conn, request_id, move |_ctx| {
                let seq = store(&service.apdb, &body)?;
                Ok(vec![Message::ApdbStored { seq }])
            });
        }
        Message::ApdbReassign { time, pairs } => {
            if service.apdb.is_replica() {
                return refuse_write(conn);
            }
            spawn(conn, request_id, move |_ctx| {
                let receipt = service
                    .apdb
                    .reassign_dia_sources(&pairs, time)
                    .map_err(|e| apdb_error(&e))?;
                Ok(vec![Message::ApdbStored { seq: receipt.seq }])
            });
        }
        Message::ApdbCountUnassociated => spawn(conn, request_id, move |_ctx| {
            Ok(vec![Message::ApdbValue {
                value: service.apdb.count_unassociated_objects(),
            }])
        }),
        Message::ApdbContainsVisitDetector { visit, detector } => {
            spawn(conn, request_id, move |_ctx| {
                Ok(vec![Message::ApdbValue {
                    value: u64::from(service.apdb.contains_visit_detector(visit, detector)),
                }])
            });
        }
        Message::ApdbStatus => {
            let info = service.status();
            conn.send(request_id, &Message::ApdbStatusInfo(info));
        }
        Message::ApdbSchema { table } => spawn(conn, request_id, move |ctx| {
            let set = ResultSet {
                schema: service.apdb.schema(engine_table(table)).clone(),
                batches: Vec::new(),
            };
            ctx.send_result(set)?;
            Ok(Vec::new())
        }),
        Message::ApdbGetObjects { region } => spawn(conn, request_id, move |ctx| {
            let region = engine_region(&region)?;
            let set = ctx.admitted(|| {
                service
                    .apdb
                    .get_dia_objects(&region)
                    .map_err(|e| apdb_error(&e))
            })?;
            ctx.send_result(set)?;
            Ok(Vec::new())
        }),
        Message::ApdbGetSources {
            table,
            months,
            visit_time,
            region,
            object_ids,
        } => spawn(conn, request_id, move |ctx| {
            let region = engine_region(&region)?;
            let set = ctx.admitted(|| {
                match table {
                    ApdbTableId::DiaForcedSource => service.apdb.get_dia_forced_sources(
                        &region,
                        &object_ids,
                        visit_time,
                        months,
                    ),
                    _ => service
                        .apdb
                        .get_dia_sources(&region, &object_ids, visit_time, months),
                }
                .map_err(|e| apdb_error(&e))
            })?;
            ctx.send_result(set)?;
            Ok(Vec::new())
        }),
        Message::ApdbShipLog {
            from_seq,
            max_bytes,
            wait_ms,
        } => spawn(conn, request_id, move |ctx| {
            ship_log(&service.apdb, ctx, from_seq, max_bytes, wait_ms)
        }),
        other => conn.send(
            request_id,
            &Message::error(
                ErrorCode::UnknownMessage,
                format!("{:?} is not an APDB request", other.message_type()),
            ),
        ),
    }
}

/// What a request's thread may use to answer.
pub(crate) struct RequestContext {
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    request_id: u32,
    cancel: CancelToken,
    frame_bytes: usize,
    slow_reader_timeout: Duration,
}

impl RequestContext {
    /// Runs `read` under the server's admission limit on running queries
    /// (reads compete with scans for the cores; writes and log shipping do
    /// not wait behind them).
    fn admitted<T>(&self, read: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
        let deadline = Instant::now() + self.shared.config.query_timeout;
        if !self.shared.admission.acquire(&self.cancel, deadline) {
            return Err(if self.cancel.is_cancelled() {
                (
                    ErrorCode::Cancelled,
                    "cancelled while waiting to run".into(),
                )
            } else {
                (
                    ErrorCode::Timeout,
                    "the read waited its whole time limit for a turn".into(),
                )
            });
        }
        let outcome = read();
        self.shared.admission.release();
        outcome
    }

    fn push(&self, parts: Vec<Vec<u8>>) -> Result<(), Failure> {
        self.outbox
            .push_parts(parts, self.slow_reader_timeout, &self.cancel)
            .map_err(|e| (ErrorCode::Cancelled, format!("sending the answer: {e:?}")))
    }

    /// Streams `set` as `SCHEMA`, `BATCH`* (about `frame_bytes` each), `END`.
    fn send_result(&self, set: ResultSet) -> Result<(), Failure> {
        let internal = |e: String| (ErrorCode::Internal, e);
        let schema = arrow_schema_of(&set.schema);
        let mut encoder = IpcEncoder::new();
        let schema_bytes = encoder.schema_message(&schema).map_err(internal)?;
        self.push(vec![
            Message::Schema(schema_bytes).to_frame_bytes(self.request_id),
        ])?;
        let mut rows = 0u64;
        for table in set.batches {
            if self.cancel.is_cancelled() {
                return Err((ErrorCode::Cancelled, "cancelled".into()));
            }
            let batch = to_record_batch(&schema, table.columns).map_err(internal)?;
            for part in split_batch(&batch, self.frame_bytes) {
                let (mut head, body) = encoder
                    .batch_message_parts(&part, FRAME_HEADER_BYTES)
                    .map_err(internal)?;
                let payload_len = head.len() - FRAME_HEADER_BYTES + body.len();
                head[..FRAME_HEADER_BYTES].copy_from_slice(&frame_header(
                    MessageType::Batch,
                    self.request_id,
                    payload_len,
                ));
                self.push(vec![head, body])?;
                rows += part.num_rows() as u64;
            }
        }
        self.push(vec![
            Message::End(EndStats {
                rows,
                ..EndStats::default()
            })
            .to_frame_bytes(self.request_id),
        ])
    }
}

/// Runs `work` on its own thread as request `request_id` (the connection's
/// request limit and `CANCEL` apply); its messages, or its error, are the
/// answer.
fn spawn(
    conn: &mut Connection,
    request_id: u32,
    work: impl FnOnce(&RequestContext) -> Result<Vec<Message>, Failure> + Send + 'static,
) {
    let Some(cancel) = conn.register(request_id) else {
        return;
    };
    let ctx = RequestContext {
        shared: Arc::clone(&conn.shared),
        outbox: Arc::clone(&conn.outbox),
        request_id,
        cancel,
        frame_bytes: conn.shared.config.frame_bytes.max(1),
        slow_reader_timeout: conn.shared.config.slow_reader_timeout,
    };
    let in_flight = Arc::clone(&conn.in_flight);
    let spawned = std::thread::Builder::new()
        .name("skyscan-apdb".into())
        .stack_size(2 << 20)
        .spawn(move || {
            // Counted with the queries, so that a graceful shutdown lets a
            // store finish and send its answer.
            let query_id = ctx.shared.register_query(&ctx.cancel);
            // A panic in a decoder of client bytes must not leave the
            // request hanging: it is answered as an internal error.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
                .unwrap_or_else(|_| {
                    Err((
                        ErrorCode::Internal,
                        "the APDB request failed unexpectedly (a bug; see the server log)".into(),
                    ))
                });
            let frames = match outcome {
                Ok(messages) => messages
                    .iter()
                    .map(|m| m.to_frame_bytes(request_id))
                    .collect(),
                Err((code, text)) => vec![Message::error(code, text).to_frame_bytes(request_id)],
            };
            for frame in frames {
                let _ = ctx.outbox.push_control(frame);
            }
            ctx.shared.deregister_query(query_id);
            lock(&in_flight).remove(&request_id);
        });
    match spawned {
        Ok(handle) => conn.threads.push(handle),
        Err(err) => {
            lock(&conn.in_flight).remove(&request_id);
            conn.send(
                request_id,
                &Message::error(ErrorCode::Busy, format!("starting a thread: {err}")),
            );
        }
    }
}

/// One shipment: waits up to `wait_ms` for a record at or after
/// `from_seq`, then sends the records (and the head record) as
/// `APDB_LOG_BYTES` frames and `APDB_LOG_END`.
fn ship_log(
    apdb: &Apdb,
    ctx: &RequestContext,
    from_seq: u64,
    max_bytes: u32,
    wait_ms: u32,
) -> Result<Vec<Message>, Failure> {
    if from_seq == 0 {
        return Err((
            ErrorCode::InvalidArgument,
            "log sequence numbers start at 1".into(),
        ));
    }
    let max_bytes = (max_bytes as usize).clamp(1 << 10, MAX_SHIP_BYTES);
    let deadline = Instant::now() + Duration::from_millis(u64::from(wait_ms)).min(MAX_SHIP_WAIT);
    let batch = loop {
        let batch = apdb
            .ship_log(from_seq, max_bytes)
            .map_err(|e| apdb_error(&e))?;
        let now = Instant::now();
        if batch.last_seq >= from_seq || now >= deadline || ctx.cancel.is_cancelled() {
            break batch;
        }
        // Woken by the commit of record `from_seq`; in steps, so that a
        // cancel is seen within 100 ms.
        apdb.wait_for_seq(from_seq, (deadline - now).min(Duration::from_millis(100)));
    };
    for piece in batch.bytes.chunks(ctx.frame_bytes) {
        ctx.push(vec![
            Message::ApdbLogBytes(piece.to_vec()).to_frame_bytes(ctx.request_id),
        ])?;
    }
    Ok(vec![Message::ApdbLogEnd {
        durable_seq: batch.durable_seq,
        last_seq: batch.last_seq,
    }])
}

fn engine_table(table: ApdbTableId) -> ApdbTable {
    match table {
        ApdbTableId::DiaObject => ApdbTable::DiaObject,
        ApdbTableId::DiaSource => ApdbTable::DiaSource,
        ApdbTableId::DiaForcedSource => ApdbTable::DiaForcedSource,
    }
}

fn engine_region(region: &ApdbRegion) -> Result<Region, Failure> {
    match region {
        ApdbRegion::Circle {
            ra_deg,
            dec_deg,
            radius_deg,
        } => skyscan_engine::apdb::circle(*ra_deg, *dec_deg, *radius_deg),
        ApdbRegion::Polygon(vertices) => skyscan_engine::apdb::polygon(vertices),
    }
    .map_err(|e| apdb_error(&e))
}

/// Decodes a store body and stores it; returns its sequence number.
fn store(apdb: &Apdb, body: &[u8]) -> Result<u64, Failure> {
    let (body, table_bytes) =
        ApdbStoreBody::decode_borrowed(body).map_err(|e| (e.code(), format!("APDB_STORE: {e}")))?;
    let mut tables = Vec::with_capacity(3);
    for (table, bytes) in ApdbTable::ALL.iter().zip(table_bytes) {
        tables.push(table_from_ipc(bytes, apdb.schema(*table)).map_err(|e| {
            (
                ErrorCode::InvalidArgument,
                format!("APDB_STORE {}: {e}", table.name()),
            )
        })?);
    }
    let [objects, sources, forced_sources]: [Table; 3] = tables
        .try_into()
        .map_err(|_| (ErrorCode::Internal, "three tables expected".to_string()))?;
    let receipt = apdb
        .store(&StoreRequest {
            visit_time: body.visit_time,
            visit_detectors: body.visit_detectors,
            objects,
            sources,
            forced_sources,
            close_object_ids: body.close_object_ids,
        })
        .map_err(|e| apdb_error(&e))?;
    Ok(receipt.seq)
}

/// The Arrow schema of an APDB table (every field nullable, as results).
pub fn arrow_schema_of(schema: &TableSchema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type_of(c.column_type), true))
            .collect::<Vec<_>>(),
    ))
}

fn arrow_type_of(column_type: ColumnType) -> ArrowType {
    match column_type {
        ColumnType::Bool => ArrowType::Boolean,
        ColumnType::I8 => ArrowType::Int8,
        ColumnType::I16 => ArrowType::Int16,
        ColumnType::I32 => ArrowType::Int32,
        ColumnType::I64 => ArrowType::Int64,
        ColumnType::F32 => ArrowType::Float32,
        ColumnType::F64 => ArrowType::Float64,
        ColumnType::Utf8 => ArrowType::Utf8,
        ColumnType::Binary => ArrowType::Binary,
    }
}

/// An Arrow IPC stream (empty: no rows) as an engine table named like
/// `target`, with the stream's columns; the APDB then conforms it to the
/// schema (order, missing nullable columns, types, NOT NULL). Columns of
/// Arrow type `Null` (all values null, e.g. from pandas) are left out, so
/// they read as NULL.
pub fn table_from_ipc(bytes: &[u8], target: &TableSchema) -> Result<Table, String> {
    if bytes.is_empty() {
        return Ok(empty_table(target));
    }
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<RecordBatch>, _>>()
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    if batches.is_empty() {
        return Ok(empty_table(target));
    }
    // One batch (what the clients send) is used as it is; several are joined.
    let batch = match batches.as_slice() {
        [one] => one.clone(),
        _ => arrow_select::concat::concat_batches(&schema, &batches)
            .map_err(|e| format!("joining record batches: {e}"))?,
    };
    let mut columns = Vec::new();
    let mut data = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if field.data_type() == &ArrowType::Null {
            continue;
        }
        let column = column_from_arrow(array.as_ref()).ok_or_else(|| {
            format!(
                "column {}: Arrow type {} is not an APDB column type (bool, int8..int64, float32, float64, utf8, binary)",
                field.name(),
                field.data_type()
            )
        })??;
        columns.push(ColumnSchema::new(
            field.name().clone(),
            column.column_type(),
            true,
        ));
        data.push(column);
    }
    Table::new(TableSchema::new(target.name.clone(), columns), data)
}

fn validity_of(array: &dyn Array) -> Option<Bitmap> {
    let nulls = array.logical_nulls()?;
    (nulls.null_count() > 0).then(|| bitmap_of(nulls.inner()))
}

/// An Arrow bit buffer as an engine bitmap: both are LSB-first, so an
/// unsliced buffer moves over in 64-bit words; a sliced one bit by bit.
fn bitmap_of(bits: &arrow_buffer::BooleanBuffer) -> Bitmap {
    let len = bits.len();
    if bits.offset() == 0 {
        let bytes = bits.values();
        let words: Vec<u64> = (0..len.div_ceil(64))
            .map(|index| {
                let mut word = [0u8; 8];
                let start = index * 8;
                let end = (start + 8).min(bytes.len());
                word[..end - start].copy_from_slice(&bytes[start..end]);
                u64::from_le_bytes(word)
            })
            .collect();
        return Bitmap::from_words(words, len);
    }
    Bitmap::from_bools(&bits.iter().collect::<Vec<bool>>())
}

fn var_column(
    offsets: &[i64],
    values: &[u8],
    validity: Option<Bitmap>,
) -> Result<VarColumn, String> {
    let first = offsets.first().copied().unwrap_or(0);
    let last = offsets.last().copied().unwrap_or(0);
    let (Ok(start), Ok(end)) = (usize::try_from(first), usize::try_from(last)) else {
        return Err("negative offsets".into());
    };
    if end < start || end > values.len() || end - start > u32::MAX as usize {
        return Err("a variable-length column of more than 4 GiB or with bad offsets".into());
    }
    Ok(VarColumn {
        offsets: offsets.iter().map(|&o| (o - first) as u32).collect(),
        data: values[start..end].to_vec(),
        validity,
    })
}

/// One Arrow array as an engine column; `None` for a type the APDB does
/// not have.
fn column_from_arrow(array: &dyn Array) -> Option<Result<ColumnData, String>> {
    let validity = validity_of(array);
    let any = array.as_any();
    macro_rules! primitive {
        ($arrow:ty, $variant:ident) => {
            if let Some(a) = any.downcast_ref::<$arrow>() {
                return Some(Ok(ColumnData::$variant(PrimitiveColumn {
                    values: a.values().to_vec(),
                    validity,
                })));
            }
        };
    }
    primitive!(Int8Array, I8);
    primitive!(Int16Array, I16);
    primitive!(Int32Array, I32);
    primitive!(Int64Array, I64);
    primitive!(Float32Array, F32);
    primitive!(Float64Array, F64);
    if let Some(a) = any.downcast_ref::<BooleanArray>() {
        return Some(Ok(ColumnData::Bool(BoolColumn {
            values: bitmap_of(a.values()),
            validity,
        })));
    }
    let widen = |o: &[i32]| o.iter().map(|&v| i64::from(v)).collect::<Vec<i64>>();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Some(
            var_column(&widen(a.value_offsets()), a.value_data(), validity).map(ColumnData::Utf8),
        );
    }
    if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        return Some(var_column(a.value_offsets(), a.value_data(), validity).map(ColumnData::Utf8));
    }
    if let Some(a) = any.downcast_ref::<BinaryArray>() {
        return Some(
            var_column(&widen(a.value_offsets()), a.value_data(), validity).map(ColumnData::Binary),
        );
    }
    if let Some(a) = any.downcast_ref::<LargeBinaryArray>() {
        return Some(
            var_column(a.value_offsets(), a.value_data(), validity).map(ColumnData::Binary),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::arrow_conv::to_record_batch;

    #[test]
    fn engine_tables_survive_arrow_ipc() {
        let schema = TableSchema::new(
            "T",
            vec![
                ColumnSchema::new("b", ColumnType::Bool, true),
                ColumnSchema::new("i16", ColumnType::I16, true),
                ColumnSchema::new("i64", ColumnType::I64, false),
                ColumnSchema::new("f64", ColumnType::F64, true),
                ColumnSchema::new("s", ColumnType::Utf8, true),
            ],
        );
        let data = vec![
            ColumnData::Bool(BoolColumn::from_options(&[Some(true), None, Some(false)])),
            ColumnData::I16(PrimitiveColumn::from_options(&[Some(-1), Some(2), None])),
            ColumnData::I64(PrimitiveColumn::new(vec![1, 2, 3])),
            ColumnData::F64(PrimitiveColumn::from_options(&[
                None,
                Some(0.5),
                Some(1e300),
            ])),
            ColumnData::Utf8(VarColumn::from_options(&[Some("αβ"), None, Some("")])),
        ];
        let table = Table::new(schema.clone(), data.clone()).unwrap();
        let arrow = arrow_schema_of(&schema);
        let batch = to_record_batch(&arrow, data).unwrap();
        let mut bytes = Vec::new();
        {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &arrow).unwrap();
            w.write(&batch.slice(0, 1)).unwrap();
            w.write(&batch.slice(1, 2)).unwrap();
            w.finish().unwrap();
        }
        let back = table_from_ipc(&bytes, &schema).unwrap();
        assert_eq!(back.rows(), 3);
        for (a, b) in back.columns.iter().zip(&table.columns) {
            assert!(a.logical_eq(b), "{a:?} vs {b:?}");
        }
        assert_eq!(table_from_ipc(&[], &schema).unwrap().rows(), 0);
        assert!(table_from_ipc(b"not arrow", &schema).is_err());
    }

    #[test]
    fn arrow_bits_become_the_same_bitmap() {
        let bools: Vec<bool> = (0..200).map(|i| i % 3 == 0 || i % 7 == 1).collect();
        let buffer = arrow_buffer::BooleanBuffer::from(bools.clone());
        assert_eq!(bitmap_of(&buffer), Bitmap::from_bools(&bools));
        for (offset, len) in [(3, 70), (64, 100), (0, 65), (5, 0)] {
            let sliced = buffer.slice(offset, len);
            assert_eq!(
                bitmap_of(&sliced),
                Bitmap::from_bools(&bools[offset..offset + len])
            );
        }
    }

    fn stream_of(batch: &RecordBatch) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
        drop(w);
        bytes
    }

    #[test]
    fn null_columns_are_left_out_and_other_types_refused() {
        use arrow_array::{DictionaryArray, NullArray, types::Int32Type};
        let target = TableSchema::new("T", vec![ColumnSchema::new("a", ColumnType::I64, true)]);
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", ArrowType::Int64, true),
                Field::new("n", ArrowType::Null, true),
                Field::new("s", ArrowType::LargeUtf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(NullArray::new(2)),
                Arc::new(LargeStringArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        let table = table_from_ipc(&stream_of(&batch), &target).unwrap();
        let names: Vec<&str> = table
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["a", "s"]);
        assert!(
            table.columns[1].logical_eq(&ColumnData::Utf8(VarColumn::from_options(&[
                Some("x"),
                None
            ])))
        );
        let dictionary: DictionaryArray<Int32Type> = vec!["a", "b"].into_iter().collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "d",
                dictionary.data_type().clone(),
                true,
            )])),
            vec![Arc::new(dictionary)],
        )
        .unwrap();
        let err = table_from_ipc(&stream_of(&batch), &target).unwrap_err();
        assert!(err.contains("column d"), "{err}");
    }
}
