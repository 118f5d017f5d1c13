//! The TCP server: connections, handshake, authentication, limits, queries
//! streamed as Arrow IPC frames, asynchronous queries, graceful shutdown.
//!
//! Threads: one accepts; each connection has a reader (handshake, then
//! requests) and a writer (drains the connection's [`Outbox`] into the
//! socket); each query runs on its own thread and pushes its frames into
//! the outbox, waiting when it is full (backpressure on slow readers).
//! Every resource has a limit in [`ServerConfig`].

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use skyscan_client::proto::{
    EndStats, ErrorCode, FRAME_HEADER_BYTES, FrameHeader, MAX_FRAME_PAYLOAD_LIMIT,
    MAX_HELLO_PAYLOAD, Message, MessageType, PROTOCOL_VERSION, ProtoError, frame_header,
};
use skyscan_engine::query::{
    ExecOptions, Progress, QueryEngine, QueryError, ResultColumn, ResultSink,
};
use skyscan_engine::scan::CancelToken;
use skyscan_format::{ColumnData, PrimitiveColumn};
use skyscan_kernel::value::DataType;

use crate::arrow_conv::{IpcEncoder, arrow_schema, to_record_batch};
use crate::jobs::{JobConfig, JobManager, SpoolReader, error_code, split_batch};
use crate::log;
use crate::outbox::{Outbox, PushError};

/// Who may connect.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Anyone who can reach the port (the default listens on loopback only).
    #[default]
    Open,
    /// A `HELLO` must carry one of these tokens; the value is its user name.
    Tokens(HashMap<String, String>),
}

impl Auth {
    /// One shared token for user `user`.
    pub fn token(token: &str, user: &str) -> Auth {
        Auth::Tokens(HashMap::from([(token.to_string(), user.to_string())]))
    }

    /// Reads a tokens file: one `user token` pair per line (whitespace
    /// separated), `#` comments and blank lines ignored.
    pub fn from_file(path: &std::path::Path) -> Result<Auth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("tokens file {}: {e}", path.display()))?;
        let mut tokens = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(user), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!(
                    "tokens file {} line {}: expected `user token`",
                    path.display(),
                    index + 1
                ));
            };
            if token.len() < 8 {
                return Err(format!(
                    "tokens file {} line {}: tokens must have at least 8 characters",
                    path.display(),
                    index + 1
                ));
            }
            if tokens.insert(token.to_string(), user.to_string()).is_some() {
                return Err(format!(
                    "tokens file {} line {}: a token appears twice",
                    path.display(),
                    index + 1
                ));
            }
        }
        if tokens.is_empty() {
            return Err(format!("tokens file {} holds no token", path.display()));
        }
        Ok(Auth::Tokens(tokens))
    }

    /// The user of `token`, `None` when it is refused.
    fn user_of(&self, token: &str) -> Option<String> {
        match self {
            Auth::Open => Some("anonymous".to_string()),
            Auth::Tokens(tokens) => {
                // Compare against every token in constant time per token, so
                // the time taken does not tell how much of a guess matched.
                let mut found = None;
                for (candidate, user) in tokens {
                    if constant_time_eq(candidate.as_bytes(), token.as_bytes()) {
                        found = Some(user.clone());
                    }
                }
                found
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Limits and settings of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Who may connect.
    pub auth: Auth,
    /// Connections at once; more are answered `TOO_MANY_CONNECTIONS`.
    pub max_connections: usize,
    /// Largest frame payload accepted from a client after the handshake.
    pub max_frame_bytes: u32,
    /// Queries (and fetches) at once on one connection.
    pub max_queries_per_connection: usize,
    /// Queries running at once in the server; more wait their turn.
    pub max_running_queries: usize,
    /// Time allowed for `HELLO` after the connection opens.
    pub handshake_timeout: Duration,
    /// A connection with no request and no running query for this long is closed.
    pub idle_timeout: Duration,
    /// Longest run of an interactive query.
    pub query_timeout: Duration,
    /// A client that reads nothing of its result for this long is dropped.
    pub slow_reader_timeout: Duration,
    /// Bytes of frames queued per connection before producers wait.
    pub connection_buffer_bytes: usize,
    /// Target payload of a `BATCH` frame.
    pub frame_bytes: usize,
    /// Scan threads of each interactive query.
    pub query_threads: usize,
    /// Asynchronous queries (`None`: `SUBMIT` is refused).
    pub jobs: Option<JobConfig>,
    /// How long a shutdown lets running queries finish before cancelling.
    pub grace: Duration,
    /// Log connections and errors to stderr.
    pub log: bool,
    /// The APDB served by the `APDB_*` messages (`None`: they are answered
    /// `UNSUPPORTED`). See `apdb_service`.
    pub apdb: Option<Arc<crate::apdb_service::ApdbService>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7077)),
            auth: Auth::Open,
            max_connections: 1024,
            max_frame_bytes: 17 << 20,
            max_queries_per_connection: 8,
            max_running_queries: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            query_timeout: Duration::from_secs(3600),
            slow_reader_timeout: Duration::from_secs(120),
            connection_buffer_bytes: 8 << 20,
            frame_bytes: 1 << 20,
            query_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            jobs: None,
            grace: Duration::from_secs(30),
            log: true,
            apdb: None,
        }
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted (handshake or not).
    pub connections_accepted: AtomicU64,
    /// Connections refused at the limit.
    pub connections_refused: AtomicU64,
    /// Connections closed for a protocol error, a bad token or a timeout.
    pub connections_dropped: AtomicU64,
    /// Queries that completed.
    pub queries_ok: AtomicU64,
    /// Queries that failed (any error, cancel included).
    pub queries_failed: AtomicU64,
}

/// A global limit on running queries: a counting semaphore.
#[derive(Debug)]
pub(crate) struct Admission {
    running: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Admission {
    pub(crate) fn acquire(&self, cancel: &CancelToken, deadline: Instant) -> bool {
        let mut running = lock(&self.running);
        while *running >= self.max {
            if cancel.is_cancelled() || Instant::now() >= deadline {
                return false;
            }
            running = match self.freed.wait_timeout(running, Duration::from_millis(50)) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *running += 1;
        true
    }

    pub(crate) fn release(&self) {
        let mut running = lock(&self.running);
        *running = running.saturating_sub(1);
        drop(running);
        self.freed.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub(crate) struct Shared {
    engine: Arc<QueryEngine>,
    pub(crate) config: ServerConfig,
    jobs: Option<Arc<JobManager>>,
    stats: ServerStats,
    pub(crate) shutting_down: AtomicBool,
    connections: AtomicUsize,
    next_connection: AtomicU64,
    /// Running queries (all connections) by a server-wide id.
    queries: Mutex<HashMap<u64, CancelToken>>,
    queries_done: Condvar,
    next_query: AtomicU64,
    /// Sockets of open connections, to close them at shutdown.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    pub(crate) admission: Admission,
}

/// A running server; [`ServerHandle::shutdown`] stops it.
pub struct ServerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Starts a server over `engine`.
pub fn start(engine: Arc<QueryEngine>, config: ServerConfig) -> Result<ServerHandle, String> {
    if config.max_frame_bytes > MAX_FRAME_PAYLOAD_LIMIT {
        return Err(format!(
            "the maximum frame size is at most {MAX_FRAME_PAYLOAD_LIMIT} bytes"
        ));
    }
    let jobs = match &config.jobs {
        Some(job_config) => Some(JobManager::open(Arc::clone(&engine), job_config.clone())?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| format!("listening on {}: {e}", config.listen))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| format!("listening on {}: {e}", config.listen))?;
    let shared = Arc::new(Shared {
        engine,
        admission: Admission {
            running: Mutex::new(0),
            freed: Condvar::new(),
            max: config.max_running_queries.max(1),
        },
        config,
        jobs,
        stats: ServerStats::default(),
        shutting_down: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        next_connection: AtomicU64::new(1),
        queries: Mutex::new(HashMap::new()),
        queries_done: Condvar::new(),
        next_query: AtomicU64::new(1),
        sockets: Mutex::new(HashMap::new()),
    });
    let accept_shared = Arc::clone(&shared);
    let acceptor = std::thread::Builder::new()
        .name("skyscan-accept".to_string())
        .spawn(move || accept_loop(&accept_shared, &listener))
        .map_err(|e| format!("starting the acceptor: {e}"))?;
    Ok(ServerHandle {
        shared,
        local_addr,
        acceptor: Some(acceptor),
    })
}

impl ServerHandle {
    /// The address the server listens on (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Queries running now.
    pub fn running_queries(&self) -> usize {
        lock(&self.shared.queries).len()
    }

    /// Stops accepting, lets running queries finish for `config.grace`,
    /// cancels the rest, closes every connection and stops the job runners
    /// (their jobs go back to the queue for the next start).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let shared = &self.shared;
        if shared.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the acceptor, blocked in accept().
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + shared.config.grace;
        let mut queries = lock(&shared.queries);
        while !queries.is_empty() && Instant::now() < deadline {
            queries = match shared
                .queries_done
                .wait_timeout(queries, Duration::from_millis(20))
            {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if !queries.is_empty() {
            log(&format!(
                "shutdown: cancelling {} queries still running after the grace period",
                queries.len()
            ));
        }
        for cancel in queries.values() {
            cancel.cancel();
        }
        drop(queries);
        if let Some(apdb) = &shared.config.apdb {
            apdb.stop();
        }
        if let Some(jobs) = &shared.jobs {
            jobs.shutdown(Duration::ZERO.max(deadline.saturating_duration_since(Instant::now())));
        }
        // Let cancelled queries send their error, then close every socket.
        let wait_until = Instant::now() + Duration::from_secs(5);
        while !lock(&shared.queries).is_empty() && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(10));
        }
        for socket in lock(&shared.sockets).values() {
            let _ = socket.shutdown(Shutdown::Read);
        }
        while shared.connections.load(Ordering::Acquire) > 0 && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.shutting_down.load(Ordering::Acquire) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                log(&format!("accept: {err}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        shared
            .stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let open = shared.connections.fetch_add(1, Ordering::AcqRel);
        if open >= shared.config.max_connections {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            refuse(
                stream,
                ErrorCode::TooManyConnections,
                &format!(
                    "the server has {} connections (its limit); try later",
                    shared.config.max_connections
                ),
            );
            continue;
        }
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.sockets).insert(id, clone);
        }
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("skyscan-conn-{id}"))
            .stack_size(256 << 10)
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .map_or_else(|_| "?".to_string(), |a| a.to_string());
                if let Err(reason) = serve_connection(&conn_shared, id, stream) {
                    conn_shared
                        .stats
                        .connections_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    if conn_shared.config.log {
                        log(&format!("connection {id} from {peer} closed: {reason}"));
                    }
                }
                lock(&conn_shared.sockets).remove(&id);
                conn_shared.connections.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(err) = spawned {
            log(&format!("starting a connection thread: {err}"));
            lock(&shared.sockets).remove(&id);
            shared.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Answers a connection that will not be served with one `ERROR` and closes it.
fn refuse(mut stream: TcpStream, code: ErrorCode, message: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(&Message::error(code, message).to_frame_bytes(0));
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads one frame with a blocking socket (the handshake).
fn read_frame_blocking(
    stream: &mut TcpStream,
    max_payload: u32,
) -> Result<(FrameHeader, Vec<u8>), FrameReadError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut header).map_err(FrameReadError::Io)?;
    let header = FrameHeader::decode(&header, max_payload).map_err(FrameReadError::Proto)?;
    let mut payload = vec![0u8; header.payload_len as usize];
    stream
        .read_exact(&mut payload)
        .map_err(FrameReadError::Io)?;
    Ok((header, payload))
}

enum FrameReadError {
    Io(io::Error),
    Proto(ProtoError),
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One connection: the handshake, then requests until it closes.
fn serve_connection(shared: &Arc<Shared>, id: u64, mut stream: TcpStream) -> Result<(), String> {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(config.handshake_timeout.max(Duration::from_millis(1))))
        .map_err(|e| e.to_string())?;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let (header, payload) = match read_frame_blocking(&mut stream, MAX_HELLO_PAYLOAD) {
        Ok(frame) => frame,
        Err(FrameReadError::Io(err)) if is_timeout(&err) => {
            refuse(
                stream,
                ErrorCode::HandshakeTimeout,
                "no HELLO within the handshake timeout",
            );
            return Err("handshake timeout".to_string());
        }
        Err(FrameReadError::Io(err)) => return Err(format!("during the handshake: {err}")),
        Err(FrameReadError::Proto(err)) => {
            refuse(stream, err.code(), &format!("handshake: {err}"));
            return Err(format!("handshake: {err}"));
        }
    };
    if header.message_type != MessageType::Hello {
        let message = format!(
            "the first frame must be HELLO, not {:?}",
            header.message_type
        );
        refuse(stream, ErrorCode::UnknownMessage, &message);
        return Err(message);
    }
    let (min_version, max_version, token, client_name) =
        match Message::decode(MessageType::Hello, &payload) {
            Ok(Message::Hello {
                min_version,
                max_version,
                token,
                client_name,
            }) => (min_version, max_version, token, client_name),
            Ok(_) | Err(_) => {
                let message = "HELLO is malformed (not a skyscan client?)".to_string();
                refuse(stream, ErrorCode::Malformed, &message);
                return Err(message);
            }
        };
    if !(min_version..=max_version).contains(&PROTOCOL_VERSION) {
        let message = format!(
            "the client speaks protocol versions {min_version}..={max_version}; this server speaks {PROTOCOL_VERSION}"
        );
        refuse(stream, ErrorCode::Version, &message);
        return Err(message);
    }
    let Some(user) = config.auth.user_of(&token) else {
        // A pause makes guessing slow; it holds only this connection's thread.
        std::thread::sleep(Duration::from_millis(200));
        refuse(stream, ErrorCode::Auth, "the token is missing or wrong");
        return Err(format!("bad token from client {client_name:?}"));
    };
    if shared.shutting_down.load(Ordering::Acquire) {
        refuse(
            stream,
            ErrorCode::ShuttingDown,
            "the server is shutting down",
        );
        return Ok(());
    }
    let welcome = Message::Welcome {
        version: PROTOCOL_VERSION,
        max_frame_bytes: config.max_frame_bytes,
        max_queries: config.max_queries_per_connection as u32,
        server_name: format!("skyscan/{}", env!("CARGO_PKG_VERSION")),
        user: user.clone(),
    };
    stream
        .write_all(&welcome.to_frame_bytes(0))
        .map_err(|e| format!("sending WELCOME: {e}"))?;

    let outbox = Arc::new(Outbox::new(config.connection_buffer_bytes));
    let writer_stream = stream.try_clone().map_err(|e| e.to_string())?;
    let _ = writer_stream.set_write_timeout(Some(config.slow_reader_timeout));
    let in_flight: Arc<Mutex<HashMap<u32, CancelToken>>> = Arc::new(Mutex::new(HashMap::new()));
    let writer = {
        let outbox = Arc::clone(&outbox);
        let in_flight = Arc::clone(&in_flight);
        std::thread::Builder::new()
            .name(format!("skyscan-write-{id}"))
            .stack_size(256 << 10)
            .spawn(move || writer_loop(writer_stream, &outbox, &in_flight))
            .map_err(|e| format!("starting a writer: {e}"))?
    };
    let mut conn = Connection {
        shared: Arc::clone(shared),
        user,
        outbox: Arc::clone(&outbox),
        in_flight: Arc::clone(&in_flight),
        threads: Vec::new(),
        apdb_parts: Default::default(),
    };
    let result = conn.request_loop(&mut stream);
    // Whatever ended the connection, its queries stop.
    for cancel in lock(&in_flight).values() {
        cancel.cancel();
    }
    for thread in conn.threads.drain(..) {
        let _ = thread.join();
    }
    outbox.close();
    let writer_result = writer.join().unwrap_or(Ok(()));
    let _ = stream.shutdown(Shutdown::Both);
    result.and(writer_result)
}

/// Drains the outbox into the socket; on a write failure (client gone, or
/// not reading for `slow_reader_timeout`) closes everything.
fn writer_loop(
    stream: TcpStream,
    outbox: &Outbox,
    in_flight: &Mutex<HashMap<u32, CancelToken>>,
) -> Result<(), String> {
    let shutdown_handle = stream.try_clone().ok();
    let mut out = BufWriter::with_capacity(64 << 10, stream);
    let fail = |reason: String| {
        outbox.close();
        for cancel in lock(in_flight).values() {
            cancel.cancel();
        }
        if let Some(s) = &shutdown_handle {
            let _ = s.shutdown(Shutdown::Both);
        }
        Err(reason)
    };
    while let Some(frames) = outbox.pop_all(Duration::from_millis(500)) {
        for frame in &frames {
            if let Err(err) = out.write_all(frame) {
                let reason = if is_timeout(&err) {
                    "slow reader: the client read nothing within the write timeout".to_string()
                } else {
                    format!("writing: {err}")
                };
                return fail(reason);
            }
        }
        if let Err(err) = out.flush() {
            return fail(format!("writing: {err}"));
        }
    }
    let _ = out.flush();
    Ok(())
}

pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    user: String,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) in_flight: Arc<Mutex<HashMap<u32, CancelToken>>>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// Pieces of APDB stores still arriving.
    pub(crate) apdb_parts: crate::apdb_service::StoreParts,
}

/// How often a waiting reader checks for shutdown and idleness.
const TICK: Duration = Duration::from_millis(250);

impl Connection {
    pub(crate) fn send(&self, request_id: u32, message: &Message) {
        let _ = self.outbox.push_control(message.to_frame_bytes(request_id));
    }

    fn request_loop(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let config = self.shared.config.clone();
        stream
            .set_read_timeout(Some(TICK))
            .map_err(|e| e.to_string())?;
        let mut decoder = skyscan_client::proto::FrameDecoder::new(config.max_frame_bytes);
        let mut buf = vec![0u8; 64 << 10];
        let mut last_request = Instant::now();
        loop {
            self.threads.retain(|t| !t.is_finished());
            // Frames already buffered first.
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        last_request = Instant::now();
                        self.handle(frame.message_type, frame.request_id, &frame.payload)?;
                    }
                    Ok(None) => break,
                    Err(err) => {
                        self.send(0, &Message::error(err.code(), err.to_string()));
                        return Err(format!("protocol: {err}"));
                    }
                }
            }
            if self.outbox.is_closed() {
                return Err("the writer stopped".to_string());
            }
            let busy = !lock(&self.in_flight).is_empty();
            if self.shared.shutting_down.load(Ordering::Acquire) && !busy {
                self.send(
                    0,
                    &Message::error(ErrorCode::ShuttingDown, "the server is shutting down"),
                );
                return Ok(());
            }
            if !busy && last_request.elapsed() >= config.idle_timeout {
                self.send(
                    0,
                    &Message::error(
                        ErrorCode::IdleTimeout,
                        format!(
                            "no request for {} s: connection closed",
                            config.idle_timeout.as_secs()
                        ),
                    ),
                );
                return Err("idle timeout".to_string());
            }
            match stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => decoder.push(&buf[..n]),
                Err(err) if is_timeout(&err) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(format!("reading: {err}")),
            }
        }
    }

    fn handle(
        &mut self,
        message_type: MessageType,
        request_id: u32,
        payload: &[u8],
    ) -> Result<(), String> {
        if !message_type.is_client_message() || message_type == MessageType::Hello {
            let message = format!("a client may not send {message_type:?} here");
            self.send(
                request_id,
                &Message::error(ErrorCode::UnknownMessage, &message),
            );
            return Err(message);
        }
        let message = match Message::decode(message_type, payload) {
            Ok(m) => m,
            Err(err) => {
                // The frame boundary is intact: answer and keep serving.
                self.send(request_id, &Message::error(err.code(), err.to_string()));
                return Ok(());
            }
        };
        if message_type.is_apdb_request() {
            crate::apdb_service::handle(self, request_id, message);
            return Ok(());
        }
        let shutting_down = self.shared.shutting_down.load(Ordering::Acquire);
        match message {
            Message::Query {
                progress,
                max_rows,
                sql,
            } => {
                if shutting_down {
                    self.send(
                        request_id,
                        &Message::error(ErrorCode::ShuttingDown, "the server is shutting down"),
                    );
                } else if let Some(inner) = strip_submit(&sql) {
                    self.submit_as_result(request_id, inner);
                } else {
                    self.start_query(request_id, sql, progress, max_rows);
                }
            }
            Message::Cancel => {
                if let Some(cancel) = lock(&self.in_flight).get(&request_id) {
                    cancel.cancel();
                }
            }
            Message::Submit { sql } => {
                let reply = match self.jobs() {
                    Ok(jobs) => match jobs.submit(&self.user, &sql) {
                        Ok(job_id) => Message::Submitted { job_id },
                        Err((code, message)) => Message::error(code, message),
                    },
                    Err(e) => *e,
                };
                self.send(request_id, &reply);
            }
            Message::JobStatus { job_id } => {
                let reply = match self.jobs() {
                    Ok(jobs) => match jobs.status(&self.user, job_id) {
                        Ok(info) => Message::Job(info),
                        Err((code, message)) => Message::error(code, message),
                    },
                    Err(e) => *e,
                };
                self.send(request_id, &reply);
            }
            Message::JobList => {
                let reply = match self.jobs() {
                    Ok(jobs) => Message::Jobs(jobs.list(&self.user)),
                    Err(e) => *e,
                };
                self.send(request_id, &reply);
            }
            Message::JobCancel { job_id } => {
                let reply = match self.jobs() {
                    Ok(jobs) => match jobs.cancel(&self.user, job_id) {
                        Ok(()) => Message::Ok,
                        Err((code, message)) => Message::error(code, message),
                    },
                    Err(e) => *e,
                };
                self.send(request_id, &reply);
            }
            Message::JobDelete { job_id } => {
                let reply = match self.jobs() {
                    Ok(jobs) => match jobs.delete(&self.user, job_id) {
                        Ok(()) => Message::Ok,
                        Err((code, message)) => Message::error(code, message),
                    },
                    Err(e) => *e,
                };
                self.send(request_id, &reply);
            }
            Message::Fetch { job_id } => self.start_fetch(request_id, job_id),
            Message::Ping => self.send(request_id, &Message::Pong),
            other => {
                // Unreachable by the check above; answered rather than asserted.
                self.send(
                    request_id,
                    &Message::error(
                        ErrorCode::UnknownMessage,
                        format!("unexpected {:?}", other.message_type()),
                    ),
                );
            }
        }
        Ok(())
    }

    fn jobs(&self) -> Result<Arc<JobManager>, Box<Message>> {
        self.shared.jobs.clone().ok_or_else(|| {
            Box::new(Message::error(
                ErrorCode::Unsupported,
                "this server runs without asynchronous queries (no results directory)",
            ))
        })
    }

    /// `SUBMIT <sql>` sent as a query: a one-row result holding the id.
    fn submit_as_result(&self, request_id: u32, sql: &str) {
        let jobs = match self.jobs() {
            Ok(j) => j,
            Err(e) => return self.send(request_id, &e),
        };
        match jobs.submit(&self.user, sql) {
            Ok(job_id) => {
                let columns = [ResultColumn {
                    name: "queryId".to_string(),
                    data_type: DataType::I64,
                    nullable: false,
                }];
                let schema = arrow_schema(&columns);
                let mut encoder = IpcEncoder::new();
                let frames = encoder.schema_message(&schema).and_then(|s| {
                    let batch = to_record_batch(
                        &schema,
                        vec![ColumnData::I64(PrimitiveColumn::new(vec![job_id as i64]))],
                    )?;
                    Ok((s, encoder.batch_message(&batch, 0)?))
                });
                match frames {
                    Ok((schema_bytes, batch_bytes)) => {
                        self.send(request_id, &Message::Schema(schema_bytes));
                        self.send(request_id, &Message::Batch(batch_bytes));
                        self.send(
                            request_id,
                            &Message::End(EndStats {
                                rows: 1,
                                ..EndStats::default()
                            }),
                        );
                    }
                    Err(e) => self.send(request_id, &Message::error(ErrorCode::Internal, e)),
                }
            }
            Err((code, message)) => self.send(request_id, &Message::error(code, message)),
        }
    }

    /// Registers request `request_id` as in flight; answers and returns
    /// `None` when the per-connection limit or a duplicate id refuses it.
    pub(crate) fn register(&self, request_id: u32) -> Option<CancelToken> {
        let mut in_flight = lock(&self.in_flight);
        if in_flight.contains_key(&request_id) {
            drop(in_flight);
            self.send(
                request_id,
                &Message::error(
                    ErrorCode::DuplicateRequest,
                    format!("request id {request_id} is in use by a running query"),
                ),
            );
            return None;
        }
        let max = self.shared.config.max_queries_per_connection;
        if in_flight.len() >= max {
            drop(in_flight);
            self.send(
                request_id,
                &Message::error(
                    ErrorCode::TooManyQueries,
                    format!("this connection runs {max} queries already (its limit)"),
                ),
            );
            return None;
        }
        let cancel = CancelToken::new();
        in_flight.insert(request_id, cancel.clone());
        Some(cancel)
    }

    fn start_query(&mut self, request_id: u32, sql: String, progress: bool, max_rows: u64) {
        let Some(cancel) = self.register(request_id) else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let outbox = Arc::clone(&self.outbox);
        let in_flight = Arc::clone(&self.in_flight);
        let spawned = std::thread::Builder::new()
            .name("skyscan-query".to_string())
            .stack_size(8 << 20)
            .spawn(move || {
                run_query(
                    &shared, &outbox, request_id, &sql, progress, max_rows, &cancel,
                );
                lock(&in_flight).remove(&request_id);
            });
        match spawned {
            Ok(handle) => self.threads.push(handle),
            Err(err) => {
                lock(&self.in_flight).remove(&request_id);
                self.send(
                    request_id,
                    &Message::error(ErrorCode::Busy, format!("starting a query thread: {err}")),
                );
            }
        }
    }

    fn start_fetch(&mut self, request_id: u32, job_id: u64) {
        let jobs = match self.jobs() {
            Ok(j) => j,
            Err(e) => return self.send(request_id, &e),
        };
        let (file, len, crc) = match jobs.open_result(&self.user, job_id) {
            Ok(opened) => opened,
            Err((code, message)) => return self.send(request_id, &Message::error(code, message)),
        };
        let Some(cancel) = self.register(request_id) else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let outbox = Arc::clone(&self.outbox);
        let in_flight = Arc::clone(&self.in_flight);
        let spawned = std::thread::Builder::new()
            .name("skyscan-fetch".to_string())
            .stack_size(256 << 10)
            .spawn(move || {
                let query_id = shared.register_query(&cancel);
                let mut reader = SpoolReader::new(file, len, crc);
                let timeout = shared.config.slow_reader_timeout;
                loop {
                    if cancel.is_cancelled() {
                        let _ = outbox.push_control(
                            Message::error(ErrorCode::Cancelled, "fetch cancelled")
                                .to_frame_bytes(request_id),
                        );
                        break;
                    }
                    match reader.next_frame() {
                        Ok(Some(mut frame)) => {
                            frame[8..12].copy_from_slice(&request_id.to_le_bytes());
                            if outbox.push(frame, timeout, &cancel).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(message) => {
                            let _ = outbox.push_control(
                                Message::error(ErrorCode::Corrupt, message)
                                    .to_frame_bytes(request_id),
                            );
                            break;
                        }
                    }
                }
                shared.deregister_query(query_id);
                lock(&in_flight).remove(&request_id);
            });
        match spawned {
            Ok(handle) => self.threads.push(handle),
            Err(err) => {
                lock(&self.in_flight).remove(&request_id);
                self.send(
                    request_id,
                    &Message::error(ErrorCode::Busy, format!("starting a fetch thread: {err}")),
                );
            }
        }
    }
}

impl Shared {
    pub(crate) fn register_query(&self, cancel: &CancelToken) -> u64 {
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        lock(&self.queries).insert(id, cancel.clone());
        if self.shutting_down.load(Ordering::Acquire) && self.config.grace.is_zero() {
            cancel.cancel();
        }
        id
    }

    pub(crate) fn deregister_query(&self, id: u64) {
        lock(&self.queries).remove(&id);
        self.queries_done.notify_all();
    }
}

/// `SUBMIT <sql>` (any case, after leading whitespace): the inner SQL.
fn strip_submit(sql: &str) -> Option<&str> {
    let trimmed = sql.trim_start();
    let head = trimmed.get(..6)?;
    if !head.eq_ignore_ascii_case("submit") {
        return None;
    }
    let rest = &trimmed[6..];
    rest.starts_with(|c: char| c.is_whitespace())
        .then(|| rest.trim())
}

/// Runs one interactive query, streaming its frames into `outbox`.
fn run_query(
    shared: &Arc<Shared>,
    outbox: &Arc<Outbox>,
    request_id: u32,
    sql: &str,
    progress: bool,
    max_rows: u64,
    cancel: &CancelToken,
) {
    let config = &shared.config;
    let started = Instant::now();
    let deadline = started + config.query_timeout;
    let query_id = shared.register_query(cancel);
    if !shared.admission.acquire(cancel, deadline) {
        let (code, message) = if cancel.is_cancelled() {
            (ErrorCode::Cancelled, "cancelled while waiting to run")
        } else {
            (
                ErrorCode::Timeout,
                "the query waited its whole time limit for a turn to run",
            )
        };
        let _ = outbox.push_control(Message::error(code, message).to_frame_bytes(request_id));
        shared.stats.queries_failed.fetch_add(1, Ordering::Relaxed);
        shared.deregister_query(query_id);
        return;
    }
    let rows_sent = Arc::new(AtomicU64::new(0));
    let mut options: ExecOptions = shared.engine.options().exec.clone();
    options.threads = config.query_threads.max(1);
    options.cancel = cancel.clone();
    options.deadline = Some(deadline);
    if max_rows > 0 {
        options.max_result_rows = options.max_result_rows.min(max_rows);
    }
    if progress {
        let outbox = Arc::clone(outbox);
        let rows_sent = Arc::clone(&rows_sent);
        let last = Mutex::new(None::<Instant>);
        options.progress = Some(Arc::new(move |p: Progress| {
            let mut last = lock(&last);
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
                || p.chunks_done == p.chunks_total;
            if due {
                *last = Some(Instant::now());
                let message = Message::Progress {
                    chunks_done: p.chunks_done,
                    chunks_total: p.chunks_total,
                    rows: rows_sent.load(Ordering::Relaxed),
                };
                outbox.try_push(message.to_frame_bytes(request_id));
            }
        }));
    }
    let mut sink = FrameSink {
        outbox: Arc::clone(outbox),
        request_id,
        encoder: IpcEncoder::new(),
        schema: None,
        rows: rows_sent,
        frame_bytes: config.frame_bytes,
        slow_reader_timeout: config.slow_reader_timeout,
        cancel: cancel.clone(),
        push_error: None,
    };
    let outcome = shared.engine.query_with(sql, &options, &mut sink);
    shared.admission.release();
    let frame = match outcome {
        Ok(stats) => {
            shared.stats.queries_ok.fetch_add(1, Ordering::Relaxed);
            Message::End(EndStats {
                rows: sink.rows.load(Ordering::Relaxed),
                chunks: stats.chunks,
                chunks_total: stats.chunks_total,
                bytes_read: stats.bytes_read,
                elapsed_us: started.elapsed().as_micros() as u64,
            })
        }
        Err(err) => {
            shared.stats.queries_failed.fetch_add(1, Ordering::Relaxed);
            match sink.push_error {
                Some(PushError::SlowReader) => Message::error(
                    ErrorCode::SlowReader,
                    format!(
                        "the client read none of its result for {} s",
                        config.slow_reader_timeout.as_secs()
                    ),
                ),
                _ => query_error_message(&err),
            }
        }
    };
    let _ = outbox.push_control(frame.to_frame_bytes(request_id));
    if sink.push_error == Some(PushError::SlowReader) {
        // SPEC part 4 §2.6: a client that does not read is disconnected.
        // The writer sends what is queued (the error last) and stops; the
        // reader then closes the connection.
        if config.log {
            log(&format!(
                "request {request_id}: the client read nothing for {} s; disconnecting it",
                config.slow_reader_timeout.as_secs_f64()
            ));
        }
        outbox.close();
    }
    shared.deregister_query(query_id);
}

/// A query error as an `ERROR` message.
pub fn query_error_message(err: &QueryError) -> Message {
    let (line, column) = err.position.map_or((0, 0), |p| {
        (
            u32::try_from(p.line).unwrap_or(u32::MAX),
            u32::try_from(p.column).unwrap_or(u32::MAX),
        )
    });
    let code = error_code(err);
    Message::Error {
        code,
        raw_code: code as u16,
        line,
        column,
        message: err.message.clone(),
    }
}

/// Streams a result into a connection's outbox as `SCHEMA` and `BATCH` frames.
struct FrameSink {
    outbox: Arc<Outbox>,
    request_id: u32,
    encoder: IpcEncoder,
    schema: Option<arrow_schema::SchemaRef>,
    rows: Arc<AtomicU64>,
    frame_bytes: usize,
    slow_reader_timeout: Duration,
    cancel: CancelToken,
    push_error: Option<PushError>,
}

impl FrameSink {
    fn push(&mut self, frame: Vec<u8>) -> Result<(), QueryError> {
        self.push_parts(vec![frame])
    }

    fn push_parts(&mut self, parts: Vec<Vec<u8>>) -> Result<(), QueryError> {
        match self
            .outbox
            .push_parts(parts, self.slow_reader_timeout, &self.cancel)
        {
            Ok(()) => Ok(()),
            Err(err) => {
                self.push_error = Some(err);
                self.cancel.cancel();
                Err(match err {
                    PushError::SlowReader => {
                        QueryError::limit("the client does not read its result")
                    }
                    PushError::Closed | PushError::Cancelled => QueryError::new(
                        skyscan_engine::query::ErrorKind::Cancelled,
                        "the client closed the connection",
                    ),
                })
            }
        }
    }
}

impl ResultSink for FrameSink {
    fn begin(&mut self, columns: &[ResultColumn]) -> Result<(), QueryError> {
        let schema = arrow_schema(columns);
        let bytes = self
            .encoder
            .schema_message(&schema)
            .map_err(QueryError::internal)?;
        self.schema = Some(schema);
        let frame = Message::Schema(bytes).to_frame_bytes(self.request_id);
        self.push(frame)
    }

    fn batch(&mut self, columns: Vec<ColumnData>) -> Result<(), QueryError> {
        let Some(schema) = self.schema.clone() else {
            return Err(QueryError::internal("a result batch before its schema"));
        };
        let batch = to_record_batch(&schema, columns).map_err(QueryError::internal)?;
        for part in split_batch(&batch, self.frame_bytes) {
            let (mut head, body) = self
                .encoder
                .batch_message_parts(&part, FRAME_HEADER_BYTES)
                .map_err(QueryError::internal)?;
            let payload_len = head.len() - FRAME_HEADER_BYTES + body.len();
            head[..FRAME_HEADER_BYTES].copy_from_slice(&frame_header(
                MessageType::Batch,
                self.request_id,
                payload_len,
            ));
            self.push_parts(vec![head, body])?;
            self.rows
                .fetch_add(part.num_rows() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn submit_prefix() {
        assert_eq!(strip_submit("SUBMIT SELECT 1"), Some("SELECT 1"));
        assert_eq!(strip_submit("  submit\n SELECT 1 "), Some("SELECT 1"));
        assert_eq!(strip_submit("SUBMITTED"), None);
        assert_eq!(strip_submit("SELECT 1"), None);
        assert_eq!(strip_submit("süb"), None);
    }

    #[test]
    fn tokens_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# users\nalice aaaaaaaaaa\n\nbob bbbbbbbbbb\n").unwrap();
        let auth = Auth::from_file(&path).unwrap();
        assert_eq!(auth.user_of("aaaaaaaaaa").as_deref(), Some("alice"));
        assert_eq!(auth.user_of("bbbbbbbbbb").as_deref(), Some("bob"));
        assert_eq!(auth.user_of("aaaaaaaaab"), None);
        assert_eq!(auth.user_of(""), None);
        std::fs::write(&path, "alice short\n").unwrap();
        assert!(Auth::from_file(&path).is_err());
        std::fs::write(&path, "alice a b\n").unwrap();
        assert!(Auth::from_file(&path).is_err());
    }
}
