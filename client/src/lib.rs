//! The skyscan client: the wire protocol ([`proto`], SPEC.md part 4) and a
//! blocking client with streaming results.
//!
//! ```no_run
//! # fn main() -> Result<(), skyscan_client::ClientError> {
//! use skyscan_client::{Client, ConnectOptions};
//! let mut client = Client::connect("127.0.0.1:7077", &ConnectOptions::default())?;
//! let mut stream = client.query("SELECT objectId, ra, decl FROM Object LIMIT 10")?;
//! for batch in &mut stream {
//!     let batch = batch?;
//!     println!("{} rows", batch.num_rows());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! One connection runs one streaming query at a time through this API (the
//! protocol allows several; open more connections to run queries in
//! parallel). Dropping a [`QueryStream`] before its end cancels the query
//! and drains it, so the connection stays usable.

pub mod apdb;
pub mod proto;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_schema::{ArrowError, SchemaRef};

pub use apdb::{ApdbStore, LogShipment};
pub use proto::{ApdbRegion, ApdbStatusInfo, ApdbTableId, EndStats, ErrorCode, JobInfo, JobState};
use proto::{
    FRAME_HEADER_BYTES, FrameHeader, MAX_FRAME_PAYLOAD_LIMIT, Message, MessageType,
    PROTOCOL_VERSION, ProtoError,
};

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an `ERROR`.
    Server {
        /// The error code.
        code: ErrorCode,
        /// The message.
        message: String,
        /// For SQL errors, 1-based (line, column).
        position: Option<(u32, u32)>,
    },
    /// The socket failed.
    Io(io::Error),
    /// The server sent bytes that do not follow the protocol.
    Protocol(String),
    /// An Arrow IPC message could not be decoded.
    Arrow(ArrowError),
    /// The caller's handler of shipped log bytes failed (the connection is
    /// out of step afterwards: drop it).
    Apply(String),
}

impl ClientError {
    /// The server's error code, if the server reported the error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Server {
                code,
                message,
                position,
            } => {
                write!(f, "{message} [{code}]")?;
                if let Some((line, column)) = position {
                    write!(f, " at line {line}, column {column}")?;
                }
                Ok(())
            }
            ClientError::Io(err) => write!(f, "connection: {err}"),
            ClientError::Protocol(what) => write!(f, "protocol: {what}"),
            ClientError::Arrow(err) => write!(f, "arrow: {err}"),
            ClientError::Apply(what) => write!(f, "applying shipped log records: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        ClientError::Io(err)
    }
}

impl From<ProtoError> for ClientError {
    fn from(err: ProtoError) -> Self {
        ClientError::Protocol(err.to_string())
    }
}

impl From<ArrowError> for ClientError {
    fn from(err: ArrowError) -> Self {
        ClientError::Arrow(err)
    }
}

/// Result of client calls.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The shared secret, when the server wants one.
    pub token: Option<String>,
    /// Time allowed for the TCP connection and the handshake.
    pub connect_timeout: Duration,
    /// Longest wait for any frame from the server (`None`: forever; long
    /// scans may send nothing for a long time unless progress is asked for).
    pub read_timeout: Option<Duration>,
    /// Sent in `HELLO` for the server's log.
    pub client_name: String,
    /// Largest frame accepted from the server.
    pub max_frame_bytes: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            token: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            client_name: format!("skyscan-client-rust/{}", env!("CARGO_PKG_VERSION")),
            max_frame_bytes: MAX_FRAME_PAYLOAD_LIMIT,
        }
    }
}

/// What the server said in `WELCOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The protocol version in use.
    pub version: u16,
    /// Largest frame payload the server accepts.
    pub max_frame_bytes: u32,
    /// Most queries at once on one connection.
    pub max_queries: u32,
    /// The server's name and version.
    pub server_name: String,
    /// The user the token belongs to.
    pub user: String,
}

/// Progress of a running query, as `PROGRESS` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Chunks completed.
    pub chunks_done: u64,
    /// Chunks the query visits.
    pub chunks_total: u64,
    /// Rows sent so far.
    pub rows: u64,
}

/// Options of one query.
#[derive(Default)]
pub struct QueryOptions {
    /// Called with each `PROGRESS` message (asks the server to send them).
    pub on_progress: Option<Box<dyn FnMut(Progress) + Send>>,
    /// Most rows wanted (0: the server's limit).
    pub max_rows: u64,
}

impl fmt::Debug for QueryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryOptions")
            .field("on_progress", &self.on_progress.is_some())
            .field("max_rows", &self.max_rows)
            .finish()
    }
}

/// The writing half of a connection, shared with [`Canceller`]s.
type SharedWriter = Arc<Mutex<TcpStream>>;

fn write_frame(writer: &SharedWriter, message: &Message, request_id: u32) -> Result<()> {
    let bytes = message.to_frame_bytes(request_id);
    let mut stream = match writer.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    stream.write_all(&bytes)?;
    Ok(())
}

/// Writes one frame of `payload` bytes without copying them into a
/// message first (large APDB store pieces).
fn write_raw_frame(
    writer: &SharedWriter,
    message_type: MessageType,
    request_id: u32,
    payload: &[u8],
) -> Result<()> {
    let header = proto::frame_header(message_type, request_id, payload.len());
    let mut stream = match writer.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    stream.write_all(&header)?;
    stream.write_all(payload)?;
    Ok(())
}

/// A connection to a skyscan server.
#[derive(Debug)]
pub struct Client {
    reader: io::BufReader<TcpStream>,
    writer: SharedWriter,
    info: ServerInfo,
    next_request_id: u32,
    max_frame_bytes: u32,
    bytes_received: u64,
}

/// A result's schema, batches and statistics, all in memory.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// The Arrow schema.
    pub schema: SchemaRef,
    /// The record batches, in order.
    pub batches: Vec<RecordBatch>,
    /// What the server reported at the end.
    pub stats: EndStats,
}

impl QueryOutcome {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl Client {
    /// Connects and performs the handshake.
    pub fn connect(addr: impl ToSocketAddrs, options: &ConnectOptions) -> Result<Client> {
        let mut last_error = None;
        let mut stream = None;
        for address in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&address, options.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last_error = Some(err),
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => {
                return Err(ClientError::Io(last_error.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
                })));
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(options.connect_timeout))?;
        let writer = Arc::new(Mutex::new(stream.try_clone()?));
        let mut client = Client {
            reader: io::BufReader::with_capacity(1 << 16, stream),
            writer,
            info: ServerInfo {
                version: 0,
                max_frame_bytes: 0,
                max_queries: 0,
                server_name: String::new(),
                user: String::new(),
            },
            next_request_id: 1,
            max_frame_bytes: options.max_frame_bytes.min(MAX_FRAME_PAYLOAD_LIMIT),
            bytes_received: 0,
        };
        let hello = Message::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            token: options.token.clone().unwrap_or_default(),
            client_name: options.client_name.clone(),
        };
        write_frame(&client.writer, &hello, 0)?;
        let (_, message) = client.read_message()?;
        match message {
            Message::Welcome {
                version,
                max_frame_bytes,
                max_queries,
                server_name,
                user,
            } => {
                if version != PROTOCOL_VERSION {
                    return Err(ClientError::Protocol(format!(
                        "the server chose protocol version {version}; this client speaks {PROTOCOL_VERSION}"
                    )));
                }
                client.info = ServerInfo {
                    version,
                    max_frame_bytes,
                    max_queries,
                    server_name,
                    user,
                };
            }
            Message::Error {
                code,
                message,
                line,
                column,
                ..
            } => return Err(server_error(code, message, line, column)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected WELCOME, got {:?}",
                    other.message_type()
                )));
            }
        }
        client
            .reader
            .get_ref()
            .set_read_timeout(options.read_timeout)?;
        Ok(client)
    }

    /// What the server said in the handshake.
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// Bytes of frames received on this connection so far (headers and
    /// payloads).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// A handle that cancels this connection's running query from another
    /// thread.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            writer: Arc::clone(&self.writer),
        }
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Reads one frame and decodes it.
    fn read_message(&mut self) -> Result<(u32, Message)> {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.reader.read_exact(&mut header)?;
        let header = FrameHeader::decode(&header, self.max_frame_bytes)?;
        if header.message_type.is_client_message() {
            return Err(ClientError::Protocol(format!(
                "the server sent a client message {:?}",
                header.message_type
            )));
        }
        let mut payload = vec![0u8; header.payload_len as usize];
        self.reader.read_exact(&mut payload)?;
        self.bytes_received += (FRAME_HEADER_BYTES + payload.len()) as u64;
        let message = match header.message_type {
            // Keep the payload's allocation: Arrow arrays point into it.
            MessageType::Schema => Message::Schema(payload),
            MessageType::Batch => Message::Batch(payload),
            other => Message::decode(other, &payload)?,
        };
        // Request id 0 is the connection itself: its errors end every request.
        if header.request_id == 0
            && let Message::Error {
                code,
                message,
                line,
                column,
                ..
            } = message
        {
            return Err(server_error(code, message, line, column));
        }
        Ok((header.request_id, message))
    }

    /// One request answered by one message.
    fn call(&mut self, request: &Message) -> Result<Message> {
        let request_id = self.request_id();
        write_frame(&self.writer, request, request_id)?;
        loop {
            let (id, message) = self.read_message()?;
            if id != request_id {
                // A late frame of an earlier, cancelled request: skip it.
                continue;
            }
            return match message {
                Message::Error {
                    code,
                    message,
                    line,
                    column,
                    ..
                } => Err(server_error(code, message, line, column)),
                other => Ok(other),
            };
        }
    }

    /// Runs `sql` and streams its result.
    pub fn query(&mut self, sql: &str) -> Result<QueryStream<'_>> {
        self.query_with(sql, QueryOptions::default())
    }

    /// Runs `sql` with `options` and streams its result.
    pub fn query_with(&mut self, sql: &str, options: QueryOptions) -> Result<QueryStream<'_>> {
        let request_id = self.request_id();
        let request = Message::Query {
            progress: options.on_progress.is_some(),
            max_rows: options.max_rows,
            sql: sql.to_string(),
        };
        write_frame(&self.writer, &request, request_id)?;
        QueryStream::start(self, request_id, options.on_progress)
    }

    /// Runs `sql` and collects the whole result.
    pub fn query_all(&mut self, sql: &str) -> Result<QueryOutcome> {
        self.query(sql)?.collect_all()
    }

    /// Submits `sql` as an asynchronous query; returns its id at once.
    pub fn submit(&mut self, sql: &str) -> Result<u64> {
        match self.call(&Message::Submit {
            sql: sql.to_string(),
        })? {
            Message::Submitted { job_id } => Ok(job_id),
            other => Err(unexpected("SUBMITTED", &other)),
        }
    }

    /// The status of asynchronous query `job_id`.
    pub fn status(&mut self, job_id: u64) -> Result<JobInfo> {
        match self.call(&Message::JobStatus { job_id })? {
            Message::Job(info) => Ok(info),
            other => Err(unexpected("JOB", &other)),
        }
    }

    /// The user's asynchronous queries.
    pub fn list_jobs(&mut self) -> Result<Vec<JobInfo>> {
        match self.call(&Message::JobList)? {
            Message::Jobs(jobs) => Ok(jobs),
            other => Err(unexpected("JOBS", &other)),
        }
    }

    /// Polls `job_id` until it is final or `timeout` passes.
    pub fn wait(&mut self, job_id: u64, timeout: Duration) -> Result<JobInfo> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let info = self.status(job_id)?;
            if info.state.is_final() || started.elapsed() >= timeout {
                return Ok(info);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Streams the result of finished asynchronous query `job_id`.
    pub fn fetch(&mut self, job_id: u64) -> Result<QueryStream<'_>> {
        let request_id = self.request_id();
        write_frame(&self.writer, &Message::Fetch { job_id }, request_id)?;
        QueryStream::start(self, request_id, None)
    }

    /// Cancels asynchronous query `job_id` (its record stays, as cancelled).
    pub fn cancel_job(&mut self, job_id: u64) -> Result<()> {
        match self.call(&Message::JobCancel { job_id })? {
            Message::Ok => Ok(()),
            other => Err(unexpected("OK", &other)),
        }
    }

    /// Deletes asynchronous query `job_id` and its result (cancels it first
    /// when it runs).
    pub fn delete_job(&mut self, job_id: u64) -> Result<()> {
        match self.call(&Message::JobDelete { job_id })? {
            Message::Ok => Ok(()),
            other => Err(unexpected("OK", &other)),
        }
    }

    /// A round trip; returns its time.
    pub fn ping(&mut self) -> Result<Duration> {
        let started = Instant::now();
        match self.call(&Message::Ping)? {
            Message::Pong => Ok(started.elapsed()),
            other => Err(unexpected("PONG", &other)),
        }
    }

    /// Closes the connection.
    pub fn close(self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
    }
}

/// Cancels the running query of a [`Client`] from another thread.
#[derive(Debug, Clone)]
pub struct Canceller {
    writer: SharedWriter,
}

impl Canceller {
    /// Sends `CANCEL` for request `request_id` (see [`QueryStream::request_id`]).
    pub fn cancel(&self, request_id: u32) -> Result<()> {
        write_frame(&self.writer, &Message::Cancel, request_id)
    }
}

fn server_error(code: ErrorCode, message: String, line: u32, column: u32) -> ClientError {
    ClientError::Server {
        code,
        message,
        position: (line > 0).then_some((line, column)),
    }
}

fn unexpected(wanted: &str, got: &Message) -> ClientError {
    ClientError::Protocol(format!("expected {wanted}, got {:?}", got.message_type()))
}

/// A result arriving batch by batch: iterate for the batches.
pub struct QueryStream<'c> {
    client: &'c mut Client,
    request_id: u32,
    schema: SchemaRef,
    decoder: StreamDecoder,
    on_progress: Option<Box<dyn FnMut(Progress) + Send>>,
    stats: Option<EndStats>,
    failed: bool,
}

impl fmt::Debug for QueryStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryStream")
            .field("request_id", &self.request_id)
            .field("schema", &self.schema)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'c> QueryStream<'c> {
    /// Waits for the schema (or the error).
    fn start(
        client: &'c mut Client,
        request_id: u32,
        mut on_progress: Option<Box<dyn FnMut(Progress) + Send>>,
    ) -> Result<QueryStream<'c>> {
        let mut decoder = StreamDecoder::new();
        loop {
            let (id, message) = client.read_message()?;
            if id != request_id {
                continue;
            }
            match message {
                Message::Schema(payload) => {
                    let schema =
                        Arc::new(arrow_ipc::convert::try_schema_from_ipc_buffer(&payload)?);
                    // The decoder takes the schema message too; it completes
                    // it when the first batch arrives (a message without a
                    // body is finished by the next bytes).
                    let mut buffer = Buffer::from_vec(payload);
                    while !buffer.is_empty() {
                        if decoder.decode(&mut buffer)?.is_some() {
                            return Err(ClientError::Protocol(
                                "SCHEMA carried a record batch".to_string(),
                            ));
                        }
                    }
                    return Ok(QueryStream {
                        client,
                        request_id,
                        schema,
                        decoder,
                        on_progress,
                        stats: None,
                        failed: false,
                    });
                }
                Message::Progress {
                    chunks_done,
                    chunks_total,
                    rows,
                } => {
                    if let Some(callback) = on_progress.as_mut() {
                        callback(Progress {
                            chunks_done,
                            chunks_total,
                            rows,
                        });
                    }
                }
                Message::Error {
                    code,
                    message,
                    line,
                    column,
                    ..
                } => return Err(server_error(code, message, line, column)),
                other => return Err(unexpected("SCHEMA", &other)),
            }
        }
    }

    /// The result's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The request id (for [`Canceller::cancel`]).
    pub fn request_id(&self) -> u32 {
        self.request_id
    }

    /// The server's statistics, once the stream ended.
    pub fn stats(&self) -> Option<EndStats> {
        self.stats
    }

    /// Asks the server to cancel; the stream then ends with a
    /// [`ErrorCode::Cancelled`] error (or normally, if the result was
    /// complete already).
    pub fn cancel(&mut self) -> Result<()> {
        write_frame(&self.client.writer, &Message::Cancel, self.request_id)
    }

    /// The next batch, `Ok(None)` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.stats.is_some() || self.failed {
            return Ok(None);
        }
        loop {
            let (id, message) = match self.client.read_message() {
                Ok(m) => m,
                Err(err) => {
                    self.failed = true;
                    return Err(err);
                }
            };
            if id != self.request_id {
                continue;
            }
            match message {
                Message::Batch(payload) => {
                    let mut buffer = Buffer::from_vec(payload);
                    let mut batch = None;
                    while !buffer.is_empty() {
                        if let Some(b) = self.decoder.decode(&mut buffer)? {
                            batch = Some(b);
                        }
                    }
                    match batch {
                        Some(b) => return Ok(Some(b)),
                        None => {
                            self.failed = true;
                            return Err(ClientError::Protocol(
                                "BATCH did not hold a whole record batch".to_string(),
                            ));
                        }
                    }
                }
                Message::Progress {
                    chunks_done,
                    chunks_total,
                    rows,
                } => {
                    if let Some(callback) = self.on_progress.as_mut() {
                        callback(Progress {
                            chunks_done,
                            chunks_total,
                            rows,
                        });
                    }
                }
                Message::End(stats) => {
                    self.stats = Some(stats);
                    return Ok(None);
                }
                Message::Error {
                    code,
                    message,
                    line,
                    column,
                    ..
                } => {
                    self.failed = true;
                    return Err(server_error(code, message, line, column));
                }
                other => {
                    self.failed = true;
                    return Err(unexpected("BATCH or END", &other));
                }
            }
        }
    }

    /// Reads the rest of the result into memory.
    pub fn collect_all(mut self) -> Result<QueryOutcome> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next_batch()? {
            batches.push(batch);
        }
        Ok(QueryOutcome {
            schema: Arc::clone(&self.schema),
            batches,
            stats: self.stats.unwrap_or_default(),
        })
    }
}

impl Iterator for QueryStream<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

impl Drop for QueryStream<'_> {
    fn drop(&mut self) {
        if self.stats.is_some() || self.failed {
            return;
        }
        // Cancel and drain so that the connection can serve the next
        // request; on any failure the connection is shut down instead.
        if self.cancel().is_err() {
            let _ = self.client.reader.get_ref().shutdown(Shutdown::Both);
            return;
        }
        while !(self.stats.is_some() || self.failed) {
            if self.next_batch().is_err() {
                break;
            }
        }
    }
}
