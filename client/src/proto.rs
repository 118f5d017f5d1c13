//! The skyscan wire protocol, version 1 (SPEC.md part 4): frames and the
//! messages they carry, sans I/O.
//!
//! A connection is a sequence of frames in each direction. A frame is a
//! 12-byte header (payload length, message type, flags, request id) and a
//! payload of at most the receiver's maximum frame size. [`FrameDecoder`]
//! takes bytes as they arrive and hands out whole frames; it never
//! allocates more than the maximum it was given, so a peer announcing a
//! huge frame gets an error before any memory is reserved. [`Message`]
//! turns a frame's payload into a typed message and back.
//!
//! Result batches are Arrow IPC encapsulated messages carried verbatim in
//! `SCHEMA` and `BATCH` frames: this module does not look inside them.

use std::fmt;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The 8 bytes that open a `HELLO` payload.
pub const HELLO_MAGIC: [u8; 8] = *b"SKYSCANP";

/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 12;

/// The largest frame payload any endpoint may accept (a hard ceiling on
/// configured limits): 256 MiB.
pub const MAX_FRAME_PAYLOAD_LIMIT: u32 = 256 << 20;

/// The largest payload a server accepts before the handshake completed:
/// enough for a token and a client name, not for a denial of service.
pub const MAX_HELLO_PAYLOAD: u32 = 64 << 10;

/// Longest string a message may carry (bytes of UTF-8), whatever the frame
/// size: SQL text is limited by the engine to 16 MiB.
pub const MAX_STRING_BYTES: u32 = 16 << 20;

/// Most job records a `JOBS` message carries.
pub const MAX_JOBS_PER_LIST: u32 = 100_000;

/// Most vertices of a polygon region on the wire (the APDB itself takes
/// at most 20; more are refused by the decoder before allocating).
pub const MAX_REGION_VERTICES: u32 = 1_000;

/// Most ids (object ids, re-associations, closes) in one APDB request, as
/// the engine's `MAX_IDS_PER_CALL`.
pub const MAX_APDB_IDS: u32 = 10_000_000;

/// Most (visit, detector) pairs of one store, as the engine's limit.
pub const MAX_APDB_VISIT_DETECTORS: u32 = 10_000;

/// A sky region of an APDB read (SPEC.md part 4 §5, "APDB region").
#[derive(Debug, Clone, PartialEq)]
pub enum ApdbRegion {
    /// A circle (kind 1).
    Circle {
        /// Centre right ascension, degrees.
        ra_deg: f64,
        /// Centre declination, degrees.
        dec_deg: f64,
        /// Radius, degrees.
        radius_deg: f64,
    },
    /// A convex polygon (kind 2), (ra, dec) vertices in degrees.
    Polygon(Vec<(f64, f64)>),
}

/// One of the three APDB tables, as its wire id.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApdbTableId {
    /// DiaObject (1).
    DiaObject = 1,
    /// DiaSource (2).
    DiaSource = 2,
    /// DiaForcedSource (3).
    DiaForcedSource = 3,
}

impl ApdbTableId {
    /// The table of wire id `id`.
    pub fn from_u8(id: u8) -> Option<ApdbTableId> {
        Some(match id {
            1 => ApdbTableId::DiaObject,
            2 => ApdbTableId::DiaSource,
            3 => ApdbTableId::DiaForcedSource,
            _ => return None,
        })
    }
}

/// What `APDB_STATUS` reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApdbStatusInfo {
    /// The server's APDB is a read-only replica following a primary.
    pub replica: bool,
    /// Replica: its connection to the primary is up.
    pub upstream_connected: bool,
    /// Last log record visible here.
    pub seq: u64,
    /// The primary's last durable record, as last heard (the primary: `seq`).
    pub primary_seq: u64,
    /// Records behind the primary.
    pub lag_records: u64,
    /// Latest visit time visible here (MJD TAI; 0 when empty).
    pub last_visit_time: f64,
    /// Replica: milliseconds since the last shipment arrived
    /// (`u64::MAX`: never).
    pub last_contact_ms: u64,
    /// Replica: the primary's address.
    pub upstream: String,
    /// Replica: the last error of the shipping connection (empty: none).
    pub last_error: String,
}

/// The body of an APDB store: what `APDB_STORE_PART`* and `APDB_STORE`
/// payloads concatenate to (SPEC.md part 4 §5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApdbStoreBody {
    /// The visit time, MJD TAI.
    pub visit_time: f64,
    /// The (visit, detector) pairs the store completes.
    pub visit_detectors: Vec<(i64, i16)>,
    /// DiaObjects closed at `visit_time` without a successor.
    pub close_object_ids: Vec<i64>,
    /// DiaObject, DiaSource, DiaForcedSource rows: each an Arrow IPC
    /// stream, or empty for no rows.
    pub tables: [Vec<u8>; 3],
}

impl ApdbStoreBody {
    /// The body's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            32 + 16 * self.visit_detectors.len()
                + 8 * self.close_object_ids.len()
                + self.tables.iter().map(Vec::len).sum::<usize>(),
        );
        out.extend_from_slice(&self.visit_time.to_le_bytes());
        put_u32(&mut out, len_u32(self.visit_detectors.len()));
        for &(visit, detector) in &self.visit_detectors {
            out.extend_from_slice(&visit.to_le_bytes());
            out.extend_from_slice(&detector.to_le_bytes());
            out.extend_from_slice(&[0; 6]);
        }
        put_u32(&mut out, len_u32(self.close_object_ids.len()));
        for id in &self.close_object_ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for table in &self.tables {
            put_u32(&mut out, len_u32(table.len()));
            out.extend_from_slice(table);
        }
        out
    }

    /// Decodes a body; every count is checked against the bytes present
    /// before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<ApdbStoreBody, ProtoError> {
        let (mut body, tables) = ApdbStoreBody::decode_borrowed(bytes)?;
        body.tables = tables.map(<[u8]>::to_vec);
        Ok(body)
    }

    /// [`ApdbStoreBody::decode`] without copying the tables: the body with
    /// empty `tables`, and the three tables' bytes inside `bytes`.
    pub fn decode_borrowed(bytes: &[u8]) -> Result<(ApdbStoreBody, [&[u8]; 3]), ProtoError> {
        let mut r = Reader::new(bytes);
        let visit_time = r.f64()?;
        let pairs = r.u32()?;
        if pairs > MAX_APDB_VISIT_DETECTORS {
            return Err(ProtoError::Malformed(format!(
                "a store names {pairs} (visit, detector) pairs (at most {MAX_APDB_VISIT_DETECTORS})"
            )));
        }
        r.check_count(pairs, 16, "(visit, detector) pairs")?;
        let mut visit_detectors = Vec::with_capacity(pairs as usize);
        for _ in 0..pairs {
            let visit = r.u64()? as i64;
            let detector = r.u16()? as i16;
            if r.bytes(6)? != [0; 6] {
                return Err(ProtoError::Reserved(
                    "store (visit, detector) padding".to_string(),
                ));
            }
            visit_detectors.push((visit, detector));
        }
        let close_object_ids = r.ids("closed object ids")?;
        let mut tables: [&[u8]; 3] = [&[]; 3];
        for table in &mut tables {
            let len = r.u32()?;
            *table = r.bytes(len as usize)?;
        }
        r.finish(MessageType::ApdbStore)?;
        Ok((
            ApdbStoreBody {
                visit_time,
                visit_detectors,
                close_object_ids,
                tables: Default::default(),
            },
            tables,
        ))
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A message type id (the header's byte 4). Stable forever: 0 is reserved,
/// client → server ids are 0x01–0x3F, server → client ids are 0x41–0x7F.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Client: opens the connection (magic, versions, token).
    Hello = 0x01,
    /// Client: runs a query and streams its result.
    Query = 0x02,
    /// Client: cancels the query of this request id.
    Cancel = 0x03,
    /// Client: submits an asynchronous query.
    Submit = 0x04,
    /// Client: asks for the status of an asynchronous query.
    JobStatus = 0x05,
    /// Client: lists the user's asynchronous queries.
    JobList = 0x06,
    /// Client: streams the result of a finished asynchronous query.
    Fetch = 0x07,
    /// Client: cancels an asynchronous query.
    JobCancel = 0x08,
    /// Client: deletes an asynchronous query and its result.
    JobDelete = 0x09,
    /// Client: asks for a `PONG`.
    Ping = 0x0A,
    /// Client: the Arrow schema of one APDB table (an empty result).
    ApdbSchema = 0x10,
    /// Client: APDB `get_dia_objects` (latest versions in a region).
    ApdbGetObjects = 0x11,
    /// Client: APDB `get_dia_sources` / `get_dia_forced_sources`.
    ApdbGetSources = 0x12,
    /// Client: a leading piece of an APDB store body (more follow).
    ApdbStorePart = 0x13,
    /// Client: the last piece of an APDB store body: store the visit.
    ApdbStore = 0x14,
    /// Client: APDB `reassign_dia_sources`.
    ApdbReassign = 0x15,
    /// Client: APDB `count_unassociated_objects`.
    ApdbCountUnassociated = 0x16,
    /// Client: APDB `contains_visit_detector`.
    ApdbContainsVisitDetector = 0x17,
    /// Client: the APDB's durable log records from a sequence number on.
    ApdbShipLog = 0x18,
    /// Client: the APDB's role, position and replication lag.
    ApdbStatus = 0x19,
    /// Server: the handshake succeeded.
    Welcome = 0x41,
    /// Server: a request (or the connection) failed.
    Error = 0x42,
    /// Server: the result's Arrow schema.
    Schema = 0x43,
    /// Server: one Arrow record batch of the result.
    Batch = 0x44,
    /// Server: progress of a running query.
    Progress = 0x45,
    /// Server: the result is complete.
    End = 0x46,
    /// Server: an asynchronous query was accepted.
    Submitted = 0x47,
    /// Server: one asynchronous query's status.
    Job = 0x48,
    /// Server: the user's asynchronous queries.
    Jobs = 0x49,
    /// Server: the request succeeded and has nothing to return.
    Ok = 0x4A,
    /// Server: the answer to `PING`.
    Pong = 0x4B,
    /// Server: an APDB write is durable; its log sequence number.
    ApdbStored = 0x4C,
    /// Server: a number (a count, or 0/1 for a yes/no question).
    ApdbValue = 0x4D,
    /// Server: a piece of the APDB log stream (SPEC.md part 5 §4).
    ApdbLogBytes = 0x4E,
    /// Server: the end of a log shipment.
    ApdbLogEnd = 0x4F,
    /// Server: the APDB's role, position and lag.
    ApdbStatusInfo = 0x50,
}

impl MessageType {
    /// The type of id `id`, if any.
    pub fn from_id(id: u8) -> Option<MessageType> {
        Some(match id {
            0x01 => MessageType::Hello,
            0x02 => MessageType::Query,
            0x03 => MessageType::Cancel,
            0x04 => MessageType::Submit,
            0x05 => MessageType::JobStatus,
            0x06 => MessageType::JobList,
            0x07 => MessageType::Fetch,
            0x08 => MessageType::JobCancel,
            0x09 => MessageType::JobDelete,
            0x0A => MessageType::Ping,
            0x10 => MessageType::ApdbSchema,
            0x11 => MessageType::ApdbGetObjects,
            0x12 => MessageType::ApdbGetSources,
            0x13 => MessageType::ApdbStorePart,
            0x14 => MessageType::ApdbStore,
            0x15 => MessageType::ApdbReassign,
            0x16 => MessageType::ApdbCountUnassociated,
            0x17 => MessageType::ApdbContainsVisitDetector,
            0x18 => MessageType::ApdbShipLog,
            0x19 => MessageType::ApdbStatus,
            0x41 => MessageType::Welcome,
            0x42 => MessageType::Error,
            0x43 => MessageType::Schema,
            0x44 => MessageType::Batch,
            0x45 => MessageType::Progress,
            0x46 => MessageType::End,
            0x47 => MessageType::Submitted,
            0x48 => MessageType::Job,
            0x49 => MessageType::Jobs,
            0x4A => MessageType::Ok,
            0x4B => MessageType::Pong,
            0x4C => MessageType::ApdbStored,
            0x4D => MessageType::ApdbValue,
            0x4E => MessageType::ApdbLogBytes,
            0x4F => MessageType::ApdbLogEnd,
            0x50 => MessageType::ApdbStatusInfo,
            _ => return None,
        })
    }

    /// Whether clients send this type (servers send the others).
    pub fn is_client_message(self) -> bool {
        (self as u8) < 0x40
    }

    /// Whether this is a request to the APDB (0x10–0x1F).
    pub fn is_apdb_request(self) -> bool {
        (0x10..0x20).contains(&(self as u8))
    }
}

/// An error code of an `ERROR` message. Stable forever: codes below 100
/// are the protocol's and the server's, 100 and above are a query's.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A frame or payload that does not follow SPEC.md part 4.
    Malformed = 1,
    /// No protocol version both ends speak.
    Version = 2,
    /// The token is missing or wrong.
    Auth = 3,
    /// A frame larger than the receiver's maximum.
    FrameTooLarge = 4,
    /// A message type the receiver does not know, or one it must not receive.
    UnknownMessage = 5,
    /// The server has as many connections as it allows.
    TooManyConnections = 6,
    /// The connection has as many running queries as it allows.
    TooManyQueries = 7,
    /// The connection was idle too long.
    IdleTimeout = 8,
    /// The server is shutting down.
    ShuttingDown = 9,
    /// A request id already in use on this connection.
    DuplicateRequest = 10,
    /// No asynchronous query of this id (for this user).
    NoSuchJob = 11,
    /// The asynchronous query has not finished.
    JobNotReady = 12,
    /// The server's queues are full; try later.
    Busy = 13,
    /// The handshake did not complete in time.
    HandshakeTimeout = 14,
    /// The client did not read its result in time.
    SlowReader = 15,
    /// A write sent to a read-only replica.
    ReadOnly = 16,
    /// The SQL text is not valid SQL.
    Syntax = 100,
    /// Valid SQL that skyscan does not support.
    Unsupported = 101,
    /// A database, table or column that does not exist, or an ambiguous name.
    Name = 102,
    /// Operands of the wrong type.
    Type = 103,
    /// A value the query may not use.
    InvalidArgument = 104,
    /// A limit was reached (result size, time, memory).
    Limit = 105,
    /// The query was cancelled.
    Cancelled = 106,
    /// Damaged data on the server.
    Corrupt = 107,
    /// The server's operating system failed an operation.
    Io = 108,
    /// A bug in skyscan.
    Internal = 109,
    /// The query ran past its time limit.
    Timeout = 110,
}

impl ErrorCode {
    /// The code of value `code`; unknown codes (from a newer server) map to
    /// [`ErrorCode::Internal`] so a client can still show the message.
    pub fn from_u16(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::Version,
            3 => ErrorCode::Auth,
            4 => ErrorCode::FrameTooLarge,
            5 => ErrorCode::UnknownMessage,
            6 => ErrorCode::TooManyConnections,
            7 => ErrorCode::TooManyQueries,
            8 => ErrorCode::IdleTimeout,
            9 => ErrorCode::ShuttingDown,
            10 => ErrorCode::DuplicateRequest,
            11 => ErrorCode::NoSuchJob,
            12 => ErrorCode::JobNotReady,
            13 => ErrorCode::Busy,
            14 => ErrorCode::HandshakeTimeout,
            15 => ErrorCode::SlowReader,
            16 => ErrorCode::ReadOnly,
            100 => ErrorCode::Syntax,
            101 => ErrorCode::Unsupported,
            102 => ErrorCode::Name,
            103 => ErrorCode::Type,
            104 => ErrorCode::InvalidArgument,
            105 => ErrorCode::Limit,
            106 => ErrorCode::Cancelled,
            107 => ErrorCode::Corrupt,
            108 => ErrorCode::Io,
            110 => ErrorCode::Timeout,
            _ => ErrorCode::Internal,
        }
    }

    /// A short lowercase name (`"syntax"`, `"auth"`, …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::Version => "version",
            ErrorCode::Auth => "auth",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::UnknownMessage => "unknown message",
            ErrorCode::TooManyConnections => "too many connections",
            ErrorCode::TooManyQueries => "too many queries",
            ErrorCode::IdleTimeout => "idle timeout",
            ErrorCode::ShuttingDown => "shutting down",
            ErrorCode::DuplicateRequest => "duplicate request",
            ErrorCode::NoSuchJob => "no such job",
            ErrorCode::JobNotReady => "job not ready",
            ErrorCode::Busy => "busy",
            ErrorCode::HandshakeTimeout => "handshake timeout",
            ErrorCode::SlowReader => "slow reader",
            ErrorCode::ReadOnly => "read only",
            ErrorCode::Syntax => "syntax",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Name => "name",
            ErrorCode::Type => "type",
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::Limit => "limit",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Io => "io",
            ErrorCode::Internal => "internal",
            ErrorCode::Timeout => "timeout",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be decoded as frames or messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// The header announces a payload above the receiver's maximum.
    FrameTooLarge {
        /// The announced payload length.
        len: u32,
        /// The receiver's maximum.
        max: u32,
    },
    /// A message type id that is not in the table.
    UnknownType(u8),
    /// Flags or reserved bits that must be zero are not.
    Reserved(String),
    /// A payload that does not have the layout of its type.
    Malformed(String),
}

impl ProtoError {
    /// The `ERROR` code a server answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtoError::UnknownType(_) => ErrorCode::UnknownMessage,
            ProtoError::Reserved(_) | ProtoError::Malformed(_) => ErrorCode::Malformed,
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "frame of {len} payload bytes exceeds the maximum of {max}"
                )
            }
            ProtoError::UnknownType(id) => write!(f, "unknown message type 0x{id:02x}"),
            ProtoError::Reserved(what) => write!(f, "reserved field not zero: {what}"),
            ProtoError::Malformed(what) => write!(f, "malformed message: {what}"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// A frame header (SPEC.md part 4, §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes after the header.
    pub payload_len: u32,
    /// The message type.
    pub message_type: MessageType,
    /// The request this frame belongs to (0: the connection itself).
    pub request_id: u32,
}

impl FrameHeader {
    /// The header's 12 bytes.
    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut out = [0u8; FRAME_HEADER_BYTES];
        out[0..4].copy_from_slice(&self.payload_len.to_le_bytes());
        out[4] = self.message_type as u8;
        // out[5] flags and out[6..8] reserved stay zero in version 1.
        out[8..12].copy_from_slice(&self.request_id.to_le_bytes());
        out
    }

    /// Decodes a header, checking the payload length against `max_payload`
    /// before anything is allocated for it.
    pub fn decode(
        bytes: &[u8; FRAME_HEADER_BYTES],
        max_payload: u32,
    ) -> Result<FrameHeader, ProtoError> {
        let payload_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if payload_len > max_payload {
            return Err(ProtoError::FrameTooLarge {
                len: payload_len,
                max: max_payload,
            });
        }
        let message_type =
            MessageType::from_id(bytes[4]).ok_or(ProtoError::UnknownType(bytes[4]))?;
        if bytes[5] != 0 {
            return Err(ProtoError::Reserved(format!("flags 0x{:02x}", bytes[5])));
        }
        if bytes[6] != 0 || bytes[7] != 0 {
            return Err(ProtoError::Reserved("header bytes 6..8".to_string()));
        }
        let request_id = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        Ok(FrameHeader {
            payload_len,
            message_type,
            request_id,
        })
    }
}

/// A whole frame: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type.
    pub message_type: MessageType,
    /// The request id.
    pub request_id: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The frame's bytes (header and payload). `payload` must be at most
    /// [`MAX_FRAME_PAYLOAD_LIMIT`] bytes (the encoders of this crate never
    /// make larger ones; callers splitting results keep below it).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_frame(self.message_type, self.request_id, &self.payload)
    }
}

/// The bytes of a frame of `message_type` carrying `payload`.
pub fn encode_frame(message_type: MessageType, request_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&frame_header(message_type, request_id, payload.len()));
    out.extend_from_slice(payload);
    out
}

/// The header of a frame with `payload_len` payload bytes (lengths above
/// `u32::MAX` are a programming error: payloads are bounded far below).
pub fn frame_header(
    message_type: MessageType,
    request_id: u32,
    payload_len: usize,
) -> [u8; FRAME_HEADER_BYTES] {
    let payload_len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    FrameHeader {
        payload_len,
        message_type,
        request_id,
    }
    .encode()
}

/// Push decoder of frames: feed bytes as they arrive ([`FrameDecoder::push`]),
/// take whole frames out ([`FrameDecoder::next_frame`]). No I/O.
#[derive(Debug)]
pub struct FrameDecoder {
    max_payload: u32,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames.
    consumed: usize,
}

impl FrameDecoder {
    /// A decoder refusing payloads above `max_payload` bytes (clamped to
    /// [`MAX_FRAME_PAYLOAD_LIMIT`]).
    pub fn new(max_payload: u32) -> FrameDecoder {
        FrameDecoder {
            max_payload: max_payload.min(MAX_FRAME_PAYLOAD_LIMIT),
            buf: Vec::new(),
            consumed: 0,
        }
    }

    /// Changes the maximum payload (after the handshake).
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload.min(MAX_FRAME_PAYLOAD_LIMIT);
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 && self.consumed == self.buf.len() {
            self.buf.clear();
            self.consumed = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. After an
    /// error the stream is out of step: the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtoError> {
        let available = &self.buf[self.consumed..];
        let Some(header_bytes) = available.first_chunk::<FRAME_HEADER_BYTES>() else {
            return Ok(None);
        };
        let header = FrameHeader::decode(header_bytes, self.max_payload)?;
        let total = FRAME_HEADER_BYTES + header.payload_len as usize;
        if available.len() < total {
            return Ok(None);
        }
        let payload = available[FRAME_HEADER_BYTES..total].to_vec();
        self.consumed += total;
        if self.consumed == self.buf.len() {
            self.buf.clear();
            self.consumed = 0;
        } else if self.consumed > (1 << 20) && self.consumed * 2 > self.buf.len() {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        Ok(Some(Frame {
            message_type: header.message_type,
            request_id: header.request_id,
            payload,
        }))
    }
}

/// The state of an asynchronous query.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a runner.
    Queued = 1,
    /// Running; `chunks_done` / `chunks_total` tell how far.
    Running = 2,
    /// Finished; the result can be fetched until it expires.
    Done = 3,
    /// Failed; `error_code` and `error_message` tell why.
    Failed = 4,
    /// Cancelled by its owner.
    Cancelled = 5,
}

impl JobState {
    /// The state of id `id`.
    pub fn from_u8(id: u8) -> Option<JobState> {
        Some(match id {
            1 => JobState::Queued,
            2 => JobState::Running,
            3 => JobState::Done,
            4 => JobState::Failed,
            5 => JobState::Cancelled,
            _ => return None,
        })
    }

    /// A lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One asynchronous query as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The query id.
    pub id: u64,
    /// Its state.
    pub state: JobState,
    /// For failed jobs, the error code (0 otherwise).
    pub error_code: u16,
    /// When it was submitted (Unix time, ms).
    pub submitted_ms: u64,
    /// When it started running (0: not yet).
    pub started_ms: u64,
    /// When it finished (0: not yet).
    pub finished_ms: u64,
    /// When its result will be deleted (0: not finished).
    pub expires_ms: u64,
    /// Chunks completed.
    pub chunks_done: u64,
    /// Chunks the query visits (0: not known yet).
    pub chunks_total: u64,
    /// Result rows (so far, while running).
    pub rows: u64,
    /// Bytes of the spooled result.
    pub result_bytes: u64,
    /// For failed jobs, the error message (empty otherwise).
    pub error_message: String,
    /// The SQL text (at most 4 KiB of it).
    pub sql: String,
}

/// Bytes of a job record before its two strings.
const JOB_FIXED_BYTES: usize = 8 + 1 + 3 + 2 + 2 + 9 * 8;

/// A decoded message (SPEC.md part 4, §5).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `HELLO`.
    Hello {
        /// Lowest version the client speaks.
        min_version: u16,
        /// Highest version the client speaks.
        max_version: u16,
        /// The shared secret ("" when none).
        token: String,
        /// The client's name and version, for the server's log.
        client_name: String,
    },
    /// `QUERY`.
    Query {
        /// Send `PROGRESS` messages while running.
        progress: bool,
        /// Most rows wanted (0: the server's limit).
        max_rows: u64,
        /// The SQL text.
        sql: String,
    },
    /// `CANCEL` (the request id names the query).
    Cancel,
    /// `SUBMIT`.
    Submit {
        /// The SQL text.
        sql: String,
    },
    /// `JOB_STATUS`.
    JobStatus {
        /// The query id.
        job_id: u64,
    },
    /// `JOB_LIST`.
    JobList,
    /// `FETCH`.
    Fetch {
        /// The query id.
        job_id: u64,
    },
    /// `JOB_CANCEL`.
    JobCancel {
        /// The query id.
        job_id: u64,
    },
    /// `JOB_DELETE`.
    JobDelete {
        /// The query id.
        job_id: u64,
    },
    /// `PING`.
    Ping,
    /// `APDB_SCHEMA`.
    ApdbSchema {
        /// The table.
        table: ApdbTableId,
    },
    /// `APDB_GET_OBJECTS`.
    ApdbGetObjects {
        /// The region.
        region: ApdbRegion,
    },
    /// `APDB_GET_SOURCES`.
    ApdbGetSources {
        /// DiaSource or DiaForcedSource.
        table: ApdbTableId,
        /// Months of history before `visit_time`.
        months: u32,
        /// The visit time (MJD TAI).
        visit_time: f64,
        /// The region.
        region: ApdbRegion,
        /// The objects whose sources are wanted.
        object_ids: Vec<i64>,
    },
    /// `APDB_STORE_PART`: a leading piece of a store body.
    ApdbStorePart(Vec<u8>),
    /// `APDB_STORE`: the last piece of a store body.
    ApdbStore(Vec<u8>),
    /// `APDB_REASSIGN`.
    ApdbReassign {
        /// Re-association time (MJD TAI).
        time: f64,
        /// (diaSourceId, ssObjectId) pairs.
        pairs: Vec<(i64, i64)>,
    },
    /// `APDB_COUNT_UNASSOCIATED`.
    ApdbCountUnassociated,
    /// `APDB_CONTAINS_VISIT_DETECTOR`.
    ApdbContainsVisitDetector {
        /// The visit.
        visit: i64,
        /// The detector.
        detector: i16,
    },
    /// `APDB_SHIP_LOG`.
    ApdbShipLog {
        /// First record wanted.
        from_seq: u64,
        /// About how many bytes of records at most (at least one record is
        /// sent when one is there).
        max_bytes: u32,
        /// When no record from `from_seq` is durable yet, how long the
        /// server may wait for one before answering (0: answer at once).
        wait_ms: u32,
    },
    /// `APDB_STATUS`.
    ApdbStatus,
    /// `WELCOME`.
    Welcome {
        /// The version both ends speak from now on.
        version: u16,
        /// Largest payload the server accepts from this client.
        max_frame_bytes: u32,
        /// Most queries this connection may run at once.
        max_queries: u32,
        /// The server's name and version.
        server_name: String,
        /// The user the token belongs to.
        user: String,
    },
    /// `ERROR`.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// The code as sent (unknown codes keep their value here).
        raw_code: u16,
        /// For SQL errors, 1-based line (0: none).
        line: u32,
        /// For SQL errors, 1-based column (0: none).
        column: u32,
        /// What went wrong, for a person.
        message: String,
    },
    /// `SCHEMA`: an Arrow IPC schema message.
    Schema(Vec<u8>),
    /// `BATCH`: an Arrow IPC record batch message.
    Batch(Vec<u8>),
    /// `PROGRESS`.
    Progress {
        /// Chunks completed.
        chunks_done: u64,
        /// Chunks the query visits.
        chunks_total: u64,
        /// Rows sent so far.
        rows: u64,
    },
    /// `END`.
    End(EndStats),
    /// `SUBMITTED`.
    Submitted {
        /// The new query's id.
        job_id: u64,
    },
    /// `JOB`.
    Job(JobInfo),
    /// `JOBS`.
    Jobs(Vec<JobInfo>),
    /// `OK`.
    Ok,
    /// `PONG`.
    Pong,
    /// `APDB_STORED`.
    ApdbStored {
        /// The log sequence number of the write.
        seq: u64,
    },
    /// `APDB_VALUE`.
    ApdbValue {
        /// The number.
        value: u64,
    },
    /// `APDB_LOG_BYTES`: a piece of the log stream.
    ApdbLogBytes(Vec<u8>),
    /// `APDB_LOG_END`.
    ApdbLogEnd {
        /// The server's last durable record.
        durable_seq: u64,
        /// The last record this shipment carried (`from_seq - 1`: none).
        last_seq: u64,
    },
    /// `APDB_STATUS_INFO`.
    ApdbStatusInfo(ApdbStatusInfo),
}

/// What an `END` message reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndStats {
    /// Rows of the result.
    pub rows: u64,
    /// Chunks whose work completed.
    pub chunks: u64,
    /// Chunks the plan selected.
    pub chunks_total: u64,
    /// Bytes read from chunk files.
    pub bytes_read: u64,
    /// Time the server spent on the query (µs).
    pub elapsed_us: u64,
}

impl Message {
    /// The type of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello { .. } => MessageType::Hello,
            Message::Query { .. } => MessageType::Query,
            Message::Cancel => MessageType::Cancel,
            Message::Submit { .. } => MessageType::Submit,
            Message::JobStatus { .. } => MessageType::JobStatus,
            Message::JobList => MessageType::JobList,
            Message::Fetch { .. } => MessageType::Fetch,
            Message::JobCancel { .. } => MessageType::JobCancel,
            Message::JobDelete { .. } => MessageType::JobDelete,
            Message::Ping => MessageType::Ping,
            Message::ApdbSchema { .. } => MessageType::ApdbSchema,
            Message::ApdbGetObjects { .. } => MessageType::ApdbGetObjects,
            Message::ApdbGetSources { .. } => MessageType::ApdbGetSources,
            Message::ApdbStorePart(_) => MessageType::ApdbStorePart,
            Message::ApdbStore(_) => MessageType::ApdbStore,
            Message::ApdbReassign { .. } => MessageType::ApdbReassign,
            Message::ApdbCountUnassociated => MessageType::ApdbCountUnassociated,
            Message::ApdbContainsVisitDetector { .. } => MessageType::ApdbContainsVisitDetector,
            Message::ApdbShipLog { .. } => MessageType::ApdbShipLog,
            Message::ApdbStatus => MessageType::ApdbStatus,
            Message::Welcome { .. } => MessageType::Welcome,
            Message::Error { .. } => MessageType::Error,
            Message::Schema(_) => MessageType::Schema,
            Message::Batch(_) => MessageType::Batch,
            Message::Progress { .. } => MessageType::Progress,
            Message::End(_) => MessageType::End,
            Message::Submitted { .. } => MessageType::Submitted,
            Message::Job(_) => MessageType::Job,
            Message::Jobs(_) => MessageType::Jobs,
            Message::Ok => MessageType::Ok,
            Message::Pong => MessageType::Pong,
            Message::ApdbStored { .. } => MessageType::ApdbStored,
            Message::ApdbValue { .. } => MessageType::ApdbValue,
            Message::ApdbLogBytes(_) => MessageType::ApdbLogBytes,
            Message::ApdbLogEnd { .. } => MessageType::ApdbLogEnd,
            Message::ApdbStatusInfo(_) => MessageType::ApdbStatusInfo,
        }
    }

    /// An `ERROR` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error {
            code,
            raw_code: code as u16,
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// The payload bytes.
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Message::Hello {
                min_version,
                max_version,
                token,
                client_name,
            } => {
                out.extend_from_slice(&HELLO_MAGIC);
                put_u16(&mut out, *min_version);
                put_u16(&mut out, *max_version);
                put_str(&mut out, token);
                put_str(&mut out, client_name);
            }
            Message::Query {
                progress,
                max_rows,
                sql,
            } => {
                put_u32(&mut out, u32::from(*progress));
                put_u64(&mut out, *max_rows);
                put_str(&mut out, sql);
            }
            Message::Cancel | Message::JobList | Message::Ping | Message::Ok | Message::Pong => {}
            Message::Submit { sql } => put_str(&mut out, sql),
            Message::JobStatus { job_id }
            | Message::Fetch { job_id }
            | Message::JobCancel { job_id }
            | Message::JobDelete { job_id }
            | Message::Submitted { job_id } => put_u64(&mut out, *job_id),
            Message::Welcome {
                version,
                max_frame_bytes,
                max_queries,
                server_name,
                user,
            } => {
                put_u16(&mut out, *version);
                put_u16(&mut out, 0);
                put_u32(&mut out, *max_frame_bytes);
                put_u32(&mut out, *max_queries);
                put_str(&mut out, server_name);
                put_str(&mut out, user);
            }
            Message::Error {
                raw_code,
                line,
                column,
                message,
                ..
            } => {
                put_u16(&mut out, *raw_code);
                put_u16(&mut out, 0);
                put_u32(&mut out, *line);
                put_u32(&mut out, *column);
                put_str(&mut out, message);
            }
            Message::Schema(bytes) | Message::Batch(bytes) => out.extend_from_slice(bytes),
            Message::Progress {
                chunks_done,
                chunks_total,
                rows,
            } => {
                put_u64(&mut out, *chunks_done);
                put_u64(&mut out, *chunks_total);
                put_u64(&mut out, *rows);
            }
            Message::End(stats) => {
                put_u64(&mut out, stats.rows);
                put_u64(&mut out, stats.chunks);
                put_u64(&mut out, stats.chunks_total);
                put_u64(&mut out, stats.bytes_read);
                put_u64(&mut out, stats.elapsed_us);
            }
            Message::ApdbSchema { table } => {
                out.extend_from_slice(&[*table as u8, 0, 0, 0]);
            }
            Message::ApdbGetObjects { region } => put_region(&mut out, region),
            Message::ApdbGetSources {
                table,
                months,
                visit_time,
                region,
                object_ids,
            } => {
                out.extend_from_slice(&[*table as u8, 0, 0, 0]);
                put_u32(&mut out, *months);
                out.extend_from_slice(&visit_time.to_le_bytes());
                put_region(&mut out, region);
                put_u32(&mut out, len_u32(object_ids.len()));
                for id in object_ids {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
            Message::ApdbStorePart(bytes)
            | Message::ApdbStore(bytes)
            | Message::ApdbLogBytes(bytes) => out.extend_from_slice(bytes),
            Message::ApdbReassign { time, pairs } => {
                out.extend_from_slice(&time.to_le_bytes());
                put_u32(&mut out, len_u32(pairs.len()));
                for (source, ss_object) in pairs {
                    out.extend_from_slice(&source.to_le_bytes());
                    out.extend_from_slice(&ss_object.to_le_bytes());
                }
            }
            Message::ApdbCountUnassociated | Message::ApdbStatus => {}
            Message::ApdbContainsVisitDetector { visit, detector } => {
                out.extend_from_slice(&visit.to_le_bytes());
                out.extend_from_slice(&detector.to_le_bytes());
                out.extend_from_slice(&[0; 6]);
            }
            Message::ApdbShipLog {
                from_seq,
                max_bytes,
                wait_ms,
            } => {
                put_u64(&mut out, *from_seq);
                put_u32(&mut out, *max_bytes);
                put_u32(&mut out, *wait_ms);
            }
            Message::ApdbStored { seq } => put_u64(&mut out, *seq),
            Message::ApdbValue { value } => put_u64(&mut out, *value),
            Message::ApdbLogEnd {
                durable_seq,
                last_seq,
            } => {
                put_u64(&mut out, *durable_seq);
                put_u64(&mut out, *last_seq);
            }
            Message::ApdbStatusInfo(info) => {
                out.extend_from_slice(&[
                    u8::from(info.replica),
                    u8::from(info.upstream_connected),
                    0,
                    0,
                ]);
                put_u32(&mut out, 0);
                put_u64(&mut out, info.seq);
                put_u64(&mut out, info.primary_seq);
                put_u64(&mut out, info.lag_records);
                out.extend_from_slice(&info.last_visit_time.to_le_bytes());
                put_u64(&mut out, info.last_contact_ms);
                put_str(&mut out, &info.upstream);
                put_str(&mut out, &info.last_error);
            }
            Message::Job(job) => put_job(&mut out, job),
            Message::Jobs(jobs) => {
                put_u32(&mut out, u32::try_from(jobs.len()).unwrap_or(u32::MAX));
                for job in jobs {
                    put_job(&mut out, job);
                }
            }
        }
        out
    }

    /// The frame's bytes for `request_id`.
    pub fn to_frame_bytes(&self, request_id: u32) -> Vec<u8> {
        encode_frame(self.message_type(), request_id, &self.encode_payload())
    }

    /// Decodes the payload of a frame of `message_type`.
    pub fn decode(message_type: MessageType, payload: &[u8]) -> Result<Message, ProtoError> {
        let mut r = Reader::new(payload);
        let message = match message_type {
            MessageType::Hello => {
                let magic = r.bytes(8)?;
                if magic != HELLO_MAGIC {
                    return Err(ProtoError::Malformed(
                        "HELLO does not start with the magic \"SKYSCANP\" (not a skyscan client?)"
                            .to_string(),
                    ));
                }
                let min_version = r.u16()?;
                let max_version = r.u16()?;
                let token = r.string()?;
                let client_name = r.string()?;
                Message::Hello {
                    min_version,
                    max_version,
                    token,
                    client_name,
                }
            }
            MessageType::Query => {
                let flags = r.u32()?;
                if flags & !1 != 0 {
                    return Err(ProtoError::Reserved(format!("QUERY flags 0x{flags:08x}")));
                }
                let max_rows = r.u64()?;
                let sql = r.string()?;
                Message::Query {
                    progress: flags & 1 == 1,
                    max_rows,
                    sql,
                }
            }
            MessageType::Cancel => Message::Cancel,
            MessageType::Submit => Message::Submit { sql: r.string()? },
            MessageType::JobStatus => Message::JobStatus { job_id: r.u64()? },
            MessageType::JobList => Message::JobList,
            MessageType::Fetch => Message::Fetch { job_id: r.u64()? },
            MessageType::JobCancel => Message::JobCancel { job_id: r.u64()? },
            MessageType::JobDelete => Message::JobDelete { job_id: r.u64()? },
            MessageType::Ping => Message::Ping,
            MessageType::ApdbSchema => Message::ApdbSchema {
                table: r.table_id(false)?,
            },
            MessageType::ApdbGetObjects => Message::ApdbGetObjects {
                region: r.region()?,
            },
            MessageType::ApdbGetSources => {
                let table = r.table_id(true)?;
                let months = r.u32()?;
                let visit_time = r.f64()?;
                let region = r.region()?;
                let object_ids = r.ids("object ids")?;
                Message::ApdbGetSources {
                    table,
                    months,
                    visit_time,
                    region,
                    object_ids,
                }
            }
            MessageType::ApdbStorePart => return Ok(Message::ApdbStorePart(payload.to_vec())),
            MessageType::ApdbStore => return Ok(Message::ApdbStore(payload.to_vec())),
            MessageType::ApdbLogBytes => return Ok(Message::ApdbLogBytes(payload.to_vec())),
            MessageType::ApdbReassign => {
                let time = r.f64()?;
                let count = r.u32()?;
                if count > MAX_APDB_IDS {
                    return Err(ProtoError::Malformed(format!(
                        "{count} re-associations (at most {MAX_APDB_IDS})"
                    )));
                }
                r.check_count(count, 16, "re-associations")?;
                let mut pairs = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    pairs.push((r.u64()? as i64, r.u64()? as i64));
                }
                Message::ApdbReassign { time, pairs }
            }
            MessageType::ApdbCountUnassociated => Message::ApdbCountUnassociated,
            MessageType::ApdbContainsVisitDetector => {
                let visit = r.u64()? as i64;
                let detector = r.u16()? as i16;
                if r.bytes(6)? != [0; 6] {
                    return Err(ProtoError::Reserved(
                        "APDB_CONTAINS_VISIT_DETECTOR padding".to_string(),
                    ));
                }
                Message::ApdbContainsVisitDetector { visit, detector }
            }
            MessageType::ApdbShipLog => Message::ApdbShipLog {
                from_seq: r.u64()?,
                max_bytes: r.u32()?,
                wait_ms: r.u32()?,
            },
            MessageType::ApdbStatus => Message::ApdbStatus,
            MessageType::ApdbStored => Message::ApdbStored { seq: r.u64()? },
            MessageType::ApdbValue => Message::ApdbValue { value: r.u64()? },
            MessageType::ApdbLogEnd => Message::ApdbLogEnd {
                durable_seq: r.u64()?,
                last_seq: r.u64()?,
            },
            MessageType::ApdbStatusInfo => {
                let flags = r.bytes(4)?;
                if flags[0] > 1 || flags[1] > 1 || flags[2] != 0 || flags[3] != 0 {
                    return Err(ProtoError::Reserved("APDB_STATUS_INFO flags".to_string()));
                }
                let (replica, upstream_connected) = (flags[0] == 1, flags[1] == 1);
                if r.u32()? != 0 {
                    return Err(ProtoError::Reserved(
                        "APDB_STATUS_INFO bytes 4..8".to_string(),
                    ));
                }
                Message::ApdbStatusInfo(ApdbStatusInfo {
                    replica,
                    upstream_connected,
                    seq: r.u64()?,
                    primary_seq: r.u64()?,
                    lag_records: r.u64()?,
                    last_visit_time: r.f64()?,
                    last_contact_ms: r.u64()?,
                    upstream: r.string()?,
                    last_error: r.string()?,
                })
            }
            MessageType::Welcome => {
                let version = r.u16()?;
                r.zero_u16("WELCOME reserved")?;
                let max_frame_bytes = r.u32()?;
                let max_queries = r.u32()?;
                let server_name = r.string()?;
                let user = r.string()?;
                Message::Welcome {
                    version,
                    max_frame_bytes,
                    max_queries,
                    server_name,
                    user,
                }
            }
            MessageType::Error => {
                let raw_code = r.u16()?;
                r.zero_u16("ERROR reserved")?;
                let line = r.u32()?;
                let column = r.u32()?;
                let message = r.string()?;
                Message::Error {
                    code: ErrorCode::from_u16(raw_code),
                    raw_code,
                    line,
                    column,
                    message,
                }
            }
            MessageType::Schema => return Ok(Message::Schema(payload.to_vec())),
            MessageType::Batch => return Ok(Message::Batch(payload.to_vec())),
            MessageType::Progress => Message::Progress {
                chunks_done: r.u64()?,
                chunks_total: r.u64()?,
                rows: r.u64()?,
            },
            MessageType::End => Message::End(EndStats {
                rows: r.u64()?,
                chunks: r.u64()?,
                chunks_total: r.u64()?,
                bytes_read: r.u64()?,
                elapsed_us: r.u64()?,
            }),
            MessageType::Submitted => Message::Submitted { job_id: r.u64()? },
            MessageType::Job => Message::Job(r.job()?),
            MessageType::Jobs => {
                let count = r.u32()?;
                if count > MAX_JOBS_PER_LIST {
                    return Err(ProtoError::Malformed(format!(
                        "JOBS lists {count} jobs (at most {MAX_JOBS_PER_LIST})"
                    )));
                }
                // Each record is at least JOB_FIXED_BYTES + 8: refuse counts
                // the payload cannot hold before reserving anything.
                if (count as usize).saturating_mul(JOB_FIXED_BYTES + 8) > r.remaining() {
                    return Err(ProtoError::Malformed(format!(
                        "JOBS announces {count} jobs in {} bytes",
                        r.remaining()
                    )));
                }
                let mut jobs = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    jobs.push(r.job()?);
                }
                Message::Jobs(jobs)
            }
            MessageType::Ok => Message::Ok,
            MessageType::Pong => Message::Pong,
        };
        r.finish(message_type)?;
        Ok(message)
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A string: u32 byte length, then UTF-8 (truncated at a character boundary
/// to [`MAX_STRING_BYTES`]).
fn put_str(out: &mut Vec<u8>, value: &str) {
    let mut end = value.len().min(MAX_STRING_BYTES as usize);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    put_u32(out, end as u32);
    out.extend_from_slice(&value.as_bytes()[..end]);
}

fn put_region(out: &mut Vec<u8>, region: &ApdbRegion) {
    match region {
        ApdbRegion::Circle {
            ra_deg,
            dec_deg,
            radius_deg,
        } => {
            out.extend_from_slice(&[1, 0, 0, 0]);
            for v in [ra_deg, dec_deg, radius_deg] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        ApdbRegion::Polygon(vertices) => {
            out.extend_from_slice(&[2, 0, 0, 0]);
            put_u32(out, len_u32(vertices.len()));
            for (ra, dec) in vertices {
                out.extend_from_slice(&ra.to_le_bytes());
                out.extend_from_slice(&dec.to_le_bytes());
            }
        }
    }
}

fn put_job(out: &mut Vec<u8>, job: &JobInfo) {
    put_u64(out, job.id);
    out.push(job.state as u8);
    out.extend_from_slice(&[0, 0, 0]);
    put_u16(out, job.error_code);
    put_u16(out, 0);
    for value in [
        job.submitted_ms,
        job.started_ms,
        job.finished_ms,
        job.expires_ms,
        job.chunks_done,
        job.chunks_total,
        job.rows,
        job.result_bytes,
        0,
    ] {
        put_u64(out, value);
    }
    put_str(out, &job.error_message);
    put_str(out, &job.sql);
}

/// A bounds-checked little-endian reader over a payload.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], ProtoError> {
        if self.remaining() < len {
            return Err(ProtoError::Malformed(format!(
                "truncated: {len} bytes needed at offset {}, {} left",
                self.at,
                self.remaining()
            )));
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, ProtoError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// Refuses a count of `width`-byte items the payload cannot hold,
    /// before anything is allocated for them.
    fn check_count(&self, count: u32, width: usize, what: &str) -> Result<(), ProtoError> {
        if (count as usize).saturating_mul(width) > self.remaining() {
            return Err(ProtoError::Malformed(format!(
                "{count} {what} announced in {} bytes",
                self.remaining()
            )));
        }
        Ok(())
    }

    /// A u32 count, then that many i64s.
    fn ids(&mut self, what: &str) -> Result<Vec<i64>, ProtoError> {
        let count = self.u32()?;
        if count > MAX_APDB_IDS {
            return Err(ProtoError::Malformed(format!(
                "{count} {what} (at most {MAX_APDB_IDS})"
            )));
        }
        self.check_count(count, 8, what)?;
        let mut ids = Vec::with_capacity(count as usize);
        for _ in 0..count {
            ids.push(self.u64()? as i64);
        }
        Ok(ids)
    }

    /// A table id byte and 3 reserved bytes; `sources_only` refuses DiaObject.
    fn table_id(&mut self, sources_only: bool) -> Result<ApdbTableId, ProtoError> {
        let bytes = self.bytes(4)?;
        if bytes[1..] != [0, 0, 0] {
            return Err(ProtoError::Reserved("APDB table id padding".to_string()));
        }
        match ApdbTableId::from_u8(bytes[0]) {
            Some(ApdbTableId::DiaObject) if sources_only => Err(ProtoError::Malformed(
                "sources are read from DiaSource (2) or DiaForcedSource (3)".to_string(),
            )),
            Some(table) => Ok(table),
            None => Err(ProtoError::Malformed(format!(
                "APDB table id {} (1 DiaObject, 2 DiaSource, 3 DiaForcedSource)",
                bytes[0]
            ))),
        }
    }

    fn region(&mut self) -> Result<ApdbRegion, ProtoError> {
        let head = self.bytes(4)?;
        if head[1..] != [0, 0, 0] {
            return Err(ProtoError::Reserved("APDB region padding".to_string()));
        }
        match head[0] {
            1 => Ok(ApdbRegion::Circle {
                ra_deg: self.f64()?,
                dec_deg: self.f64()?,
                radius_deg: self.f64()?,
            }),
            2 => {
                let count = self.u32()?;
                if count > MAX_REGION_VERTICES {
                    return Err(ProtoError::Malformed(format!(
                        "a polygon of {count} vertices (at most {MAX_REGION_VERTICES})"
                    )));
                }
                self.check_count(count, 16, "polygon vertices")?;
                let mut vertices = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    vertices.push((self.f64()?, self.f64()?));
                }
                Ok(ApdbRegion::Polygon(vertices))
            }
            kind => Err(ProtoError::Malformed(format!(
                "APDB region kind {kind} (1 circle, 2 polygon)"
            ))),
        }
    }

    fn zero_u16(&mut self, what: &str) -> Result<(), ProtoError> {
        match self.u16()? {
            0 => Ok(()),
            _ => Err(ProtoError::Reserved(what.to_string())),
        }
    }

    fn string(&mut self) -> Result<String, ProtoError> {
        let len = self.u32()?;
        if len > MAX_STRING_BYTES {
            return Err(ProtoError::Malformed(format!(
                "string of {len} bytes (at most {MAX_STRING_BYTES})"
            )));
        }
        let bytes = self.bytes(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ProtoError::Malformed("string is not valid UTF-8".to_string()))
    }

    fn job(&mut self) -> Result<JobInfo, ProtoError> {
        let id = self.u64()?;
        let state_id = self.u8()?;
        let state = JobState::from_u8(state_id)
            .ok_or_else(|| ProtoError::Malformed(format!("job state {state_id}")))?;
        if self.bytes(3)? != [0, 0, 0] {
            return Err(ProtoError::Reserved("job record bytes 9..12".to_string()));
        }
        let error_code = self.u16()?;
        self.zero_u16("job record bytes 14..16")?;
        let submitted_ms = self.u64()?;
        let started_ms = self.u64()?;
        let finished_ms = self.u64()?;
        let expires_ms = self.u64()?;
        let chunks_done = self.u64()?;
        let chunks_total = self.u64()?;
        let rows = self.u64()?;
        let result_bytes = self.u64()?;
        if self.u64()? != 0 {
            return Err(ProtoError::Reserved("job record bytes 80..88".to_string()));
        }
        let error_message = self.string()?;
        let sql = self.string()?;
        Ok(JobInfo {
            id,
            state,
            error_code,
            submitted_ms,
            started_ms,
            finished_ms,
            expires_ms,
            chunks_done,
            chunks_total,
            rows,
            result_bytes,
            error_message,
            sql,
        })
    }

    fn finish(&self, message_type: MessageType) -> Result<(), ProtoError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ProtoError::Malformed(format!(
                "{extra} bytes after the end of a {message_type:?} message"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn sample_job() -> JobInfo {
        JobInfo {
            id: 7,
            state: JobState::Failed,
            error_code: ErrorCode::Syntax as u16,
            submitted_ms: 1,
            started_ms: 2,
            finished_ms: 3,
            expires_ms: 4,
            chunks_done: 5,
            chunks_total: 6,
            rows: 8,
            result_bytes: 9,
            error_message: "bad".to_string(),
            sql: "SELECT é".to_string(),
        }
    }

    fn every_message() -> Vec<Message> {
        vec![
            Message::Hello {
                min_version: 1,
                max_version: 3,
                token: "secret".to_string(),
                client_name: "test".to_string(),
            },
            Message::Query {
                progress: true,
                max_rows: 10,
                sql: "SELECT 1".to_string(),
            },
            Message::Cancel,
            Message::Submit {
                sql: "SELECT 2".to_string(),
            },
            Message::JobStatus { job_id: 3 },
            Message::JobList,
            Message::Fetch { job_id: 4 },
            Message::JobCancel { job_id: 5 },
            Message::JobDelete { job_id: 6 },
            Message::Ping,
            Message::Welcome {
                version: 1,
                max_frame_bytes: 1 << 20,
                max_queries: 8,
                server_name: "skyscan".to_string(),
                user: "alice".to_string(),
            },
            Message::Error {
                code: ErrorCode::Syntax,
                raw_code: 100,
                line: 2,
                column: 5,
                message: "syntax error".to_string(),
            },
            Message::Schema(vec![1, 2, 3]),
            Message::Batch(vec![4, 5]),
            Message::Progress {
                chunks_done: 1,
                chunks_total: 2,
                rows: 3,
            },
            Message::End(EndStats {
                rows: 1,
                chunks: 2,
                chunks_total: 3,
                bytes_read: 4,
                elapsed_us: 5,
            }),
            Message::Submitted { job_id: 9 },
            Message::Job(sample_job()),
            Message::Jobs(vec![sample_job(), sample_job()]),
            Message::Ok,
            Message::Pong,
            Message::ApdbSchema {
                table: ApdbTableId::DiaSource,
            },
            Message::ApdbGetObjects {
                region: ApdbRegion::Circle {
                    ra_deg: 1.0,
                    dec_deg: -2.0,
                    radius_deg: 0.5,
                },
            },
            Message::ApdbGetSources {
                table: ApdbTableId::DiaForcedSource,
                months: 12,
                visit_time: 60000.5,
                region: ApdbRegion::Polygon(vec![(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]),
                object_ids: vec![1, -2, i64::MAX],
            },
            Message::ApdbStorePart(vec![1, 2]),
            Message::ApdbStore(vec![3]),
            Message::ApdbReassign {
                time: 60001.0,
                pairs: vec![(5, 6), (7, 8)],
            },
            Message::ApdbCountUnassociated,
            Message::ApdbContainsVisitDetector {
                visit: 9,
                detector: -3,
            },
            Message::ApdbShipLog {
                from_seq: 10,
                max_bytes: 1 << 20,
                wait_ms: 500,
            },
            Message::ApdbStatus,
            Message::ApdbStored { seq: 11 },
            Message::ApdbValue { value: 12 },
            Message::ApdbLogBytes(vec![0xAA; 5]),
            Message::ApdbLogEnd {
                durable_seq: 13,
                last_seq: 14,
            },
            Message::ApdbStatusInfo(ApdbStatusInfo {
                replica: true,
                upstream_connected: true,
                seq: 1,
                primary_seq: 2,
                lag_records: 1,
                last_visit_time: 60000.25,
                last_contact_ms: 7,
                upstream: "127.0.0.1:1".to_string(),
                last_error: "gone".to_string(),
            }),
        ]
    }

    #[test]
    fn every_message_round_trips_through_frames() {
        let mut decoder = FrameDecoder::new(1 << 20);
        let messages = every_message();
        let mut stream = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            stream.extend_from_slice(&message.to_frame_bytes(index as u32));
        }
        // Feed one byte at a time: frames must come out whole and in order.
        let mut decoded = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded.len(), messages.len());
        for (index, (frame, message)) in decoded.iter().zip(&messages).enumerate() {
            assert_eq!(frame.request_id, index as u32);
            assert_eq!(frame.message_type, message.message_type());
            let back = Message::decode(frame.message_type, &frame.payload).unwrap();
            assert_eq!(&back, message);
        }
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn type_ids_and_error_codes_are_pinned() {
        // Stable forever (SPEC.md part 4, §4 and §6): a change here is a
        // change to the protocol.
        let ids: Vec<u8> = every_message()
            .iter()
            .map(|m| m.message_type() as u8)
            .collect();
        assert_eq!(
            ids,
            [
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x41, 0x42, 0x43, 0x44,
                0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x4B, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
                0x17, 0x18, 0x19, 0x4C, 0x4D, 0x4E, 0x4F, 0x50
            ]
        );
        for id in 0..=255u8 {
            if let Some(t) = MessageType::from_id(id) {
                assert_eq!(t as u8, id);
            }
        }
        assert_eq!(ErrorCode::Malformed as u16, 1);
        assert_eq!(ErrorCode::SlowReader as u16, 15);
        assert_eq!(ErrorCode::Syntax as u16, 100);
        assert_eq!(ErrorCode::Timeout as u16, 110);
        assert_eq!(ErrorCode::ReadOnly as u16, 16);
        for code in [1u16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] {
            assert_eq!(ErrorCode::from_u16(code) as u16, code);
        }
        for code in 100u16..=110 {
            assert_eq!(ErrorCode::from_u16(code) as u16, code);
        }
        assert_eq!(ErrorCode::from_u16(4242), ErrorCode::Internal);
    }

    #[test]
    fn hello_bytes_are_exact() {
        let bytes = Message::Hello {
            min_version: 1,
            max_version: 1,
            token: "ab".to_string(),
            client_name: String::new(),
        }
        .to_frame_bytes(0);
        let expected: Vec<u8> = [
            &[22, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0][..],
            b"SKYSCANP",
            &[1, 0, 1, 0, 2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn oversized_frames_fail_before_allocation() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&frame_header(MessageType::Query, 1, 101));
        assert_eq!(
            decoder.next_frame(),
            Err(ProtoError::FrameTooLarge { len: 101, max: 100 })
        );
        let mut decoder = FrameDecoder::new(u32::MAX);
        decoder.push(&[0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decoder.next_frame(),
            Err(ProtoError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn bad_headers_and_payloads_are_errors() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&[0, 0, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Err(ProtoError::UnknownType(0x99)));
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&[0, 0, 0, 0, 0x0A, 1, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(decoder.next_frame(), Err(ProtoError::Reserved(_))));
        // Truncated, trailing bytes, bad magic, bad UTF-8, huge string length.
        assert!(Message::decode(MessageType::JobStatus, &[1, 2, 3]).is_err());
        assert!(Message::decode(MessageType::Ping, &[0]).is_err());
        assert!(Message::decode(MessageType::Hello, b"HTTP/1.1 200 OK....").is_err());
        assert!(Message::decode(MessageType::Submit, &[1, 0, 0, 0, 0xff]).is_err());
        assert!(Message::decode(MessageType::Submit, &[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Message::decode(MessageType::Jobs, &[0xff, 0xff, 0, 0]).is_err());
        assert!(
            Message::decode(
                MessageType::Query,
                &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            )
            .is_err()
        );
    }

    #[test]
    fn apdb_store_bodies_round_trip_and_bad_ones_are_errors() {
        let body = ApdbStoreBody {
            visit_time: 60000.5,
            visit_detectors: vec![(1, 2), (1, -3)],
            close_object_ids: vec![4, 5],
            tables: [vec![1, 2, 3], Vec::new(), vec![9]],
        };
        let bytes = body.encode();
        assert_eq!(ApdbStoreBody::decode(&bytes).unwrap(), body);
        // Every strict prefix is truncated, one more byte is trailing.
        for cut in 0..bytes.len() {
            assert!(ApdbStoreBody::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ApdbStoreBody::decode(&longer).is_err());
        // A huge pair count fails before allocating.
        let mut huge = 1.0f64.to_le_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(ApdbStoreBody::decode(&huge).is_err());
        let mut huge = 1.0f64.to_le_bytes().to_vec();
        huge.extend_from_slice(&9_000u32.to_le_bytes());
        assert!(ApdbStoreBody::decode(&huge).is_err());
        // Bad regions and table ids.
        assert!(Message::decode(MessageType::ApdbGetObjects, &[3, 0, 0, 0]).is_err());
        assert!(
            Message::decode(
                MessageType::ApdbGetObjects,
                &[2, 0, 0, 0, 255, 255, 255, 255]
            )
            .is_err()
        );
        assert!(Message::decode(MessageType::ApdbSchema, &[4, 0, 0, 0]).is_err());
        assert!(Message::decode(MessageType::ApdbSchema, &[1, 1, 0, 0]).is_err());
        let mut sources = vec![1u8, 0, 0, 0];
        sources.extend_from_slice(&[0; 12]);
        assert!(Message::decode(MessageType::ApdbGetSources, &sources).is_err());
    }

    #[test]
    fn a_partial_frame_waits_for_more_bytes() {
        let bytes = Message::Submit {
            sql: "SELECT 1".to_string(),
        }
        .to_frame_bytes(5);
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&bytes[..bytes.len() - 1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(&bytes[bytes.len() - 1..]);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.request_id, 5);
    }
}
