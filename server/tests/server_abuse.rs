//! Bad input on the wire: every case gets a clear error or a closed
//! connection, and the server keeps serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use skyscan_client::proto::{FRAME_HEADER_BYTES, FrameHeader, Message, MessageType, frame_header};
use skyscan_client::{Client, ConnectOptions, ErrorCode};
use skyscan_server::{ServerConfig, ServerHandle};
use support::{config, server};

fn raw(server: &ServerHandle) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn hello() -> Vec<u8> {
    Message::Hello {
        min_version: 1,
        max_version: 1,
        token: String::new(),
        client_name: "abuse".to_string(),
    }
    .to_frame_bytes(0)
}

/// Reads one frame; `None` when the server closed the connection.
fn read_frame(stream: &mut TcpStream) -> Option<(u32, Message)> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut header).ok()?;
    let header = FrameHeader::decode(&header, 1 << 28).unwrap();
    let mut payload = vec![0u8; header.payload_len as usize];
    stream.read_exact(&mut payload).ok()?;
    Some((
        header.request_id,
        Message::decode(header.message_type, &payload).unwrap(),
    ))
}

fn error_code_of(message: &Message) -> ErrorCode {
    match message {
        Message::Error { code, .. } => *code,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

/// The server closes the connection (EOF or reset), within the read timeout.
fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A normal client still gets a correct answer.
fn assert_serving(server: &ServerHandle) {
    let mut client = Client::connect(server.local_addr(), &ConnectOptions::default()).unwrap();
    let outcome = client.query_all("SELECT COUNT(*) FROM Object").unwrap();
    assert_eq!(
        support::rows_of(&outcome.batches),
        [support::OBJECT_ROWS.to_string()]
    );
}

fn expect_error_then_close(server: &ServerHandle, bytes: &[u8], code: ErrorCode) {
    let mut stream = raw(server);
    stream.write_all(bytes).unwrap();
    let (_, message) = read_frame(&mut stream).expect("an ERROR before closing");
    assert_eq!(error_code_of(&message), code, "{message:?}");
    assert_closed(&mut stream);
}

#[test]
fn bad_handshakes_get_an_error_and_a_closed_connection() {
    let server = server(config());
    // Not skyscan at all: an HTTP request reads as a huge frame length.
    expect_error_then_close(
        &server,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ErrorCode::FrameTooLarge,
    );
    // A frame other than HELLO first.
    expect_error_then_close(
        &server,
        &Message::Ping.to_frame_bytes(1),
        ErrorCode::UnknownMessage,
    );
    // HELLO without the magic.
    let mut bad_magic = hello();
    bad_magic[FRAME_HEADER_BYTES] = b'X';
    expect_error_then_close(&server, &bad_magic, ErrorCode::Malformed);
    // A version range without 1.
    let future = Message::Hello {
        min_version: 2,
        max_version: 9,
        token: String::new(),
        client_name: "future".to_string(),
    }
    .to_frame_bytes(0);
    expect_error_then_close(&server, &future, ErrorCode::Version);
    // Unknown type id, non-zero flags.
    expect_error_then_close(
        &server,
        &[0, 0, 0, 0, 0x7E, 0, 0, 0, 0, 0, 0, 0],
        ErrorCode::UnknownMessage,
    );
    expect_error_then_close(
        &server,
        &[0, 0, 0, 0, 0x01, 0x80, 0, 0, 0, 0, 0, 0],
        ErrorCode::Malformed,
    );
    // A truncated frame, then the client leaves.
    let mut stream = raw(&server);
    stream.write_all(&hello()[..10]).unwrap();
    drop(stream);
    assert_serving(&server);
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let server = server(ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..config()
    });
    let mut stream = raw(&server);
    let started = Instant::now();
    let (_, message) = read_frame(&mut stream).unwrap();
    assert_eq!(error_code_of(&message), ErrorCode::HandshakeTimeout);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_closed(&mut stream);
    assert_serving(&server);
}

#[test]
fn bad_frames_after_the_handshake() {
    let server = server(ServerConfig {
        max_frame_bytes: 4096,
        ..config()
    });
    let welcome = |stream: &mut TcpStream| {
        stream.write_all(&hello()).unwrap();
        let (_, message) = read_frame(stream).unwrap();
        assert!(matches!(message, Message::Welcome { .. }), "{message:?}");
    };
    // A malformed payload: answered, and the connection keeps working.
    let mut stream = raw(&server);
    welcome(&mut stream);
    let mut bytes = frame_header(MessageType::JobStatus, 7, 3).to_vec();
    bytes.extend_from_slice(&[1, 2, 3]);
    stream.write_all(&bytes).unwrap();
    let (id, message) = read_frame(&mut stream).unwrap();
    assert_eq!((id, error_code_of(&message)), (7, ErrorCode::Malformed));
    stream.write_all(&Message::Ping.to_frame_bytes(8)).unwrap();
    assert_eq!(read_frame(&mut stream).unwrap(), (8, Message::Pong));
    // A frame above the limit: an error, then the connection closes (the
    // stream is out of step).
    stream
        .write_all(&frame_header(MessageType::Query, 9, 5000))
        .unwrap();
    let (_, message) = read_frame(&mut stream).unwrap();
    assert_eq!(error_code_of(&message), ErrorCode::FrameTooLarge);
    assert_closed(&mut stream);
    // A server message sent by a client; a second HELLO.
    for bytes in [
        Message::Pong.to_frame_bytes(3),
        hello(),
        vec![0, 0, 0, 0, 0x55, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let mut stream = raw(&server);
        welcome(&mut stream);
        stream.write_all(&bytes).unwrap();
        let (_, message) = read_frame(&mut stream).unwrap();
        assert_eq!(error_code_of(&message), ErrorCode::UnknownMessage);
        assert_closed(&mut stream);
    }
    assert_serving(&server);
}

#[test]
fn per_connection_query_limit_and_duplicate_ids() {
    let server = server(ServerConfig {
        max_queries_per_connection: 2,
        // Tiny buffers and frames: the big queries stay running while the
        // test sends more requests.
        frame_bytes: 1024,
        connection_buffer_bytes: 2048,
        ..config()
    });
    let mut stream = raw(&server);
    stream.write_all(&hello()).unwrap();
    read_frame(&mut stream).unwrap();
    let query = |sql: &str| Message::Query {
        progress: false,
        max_rows: 0,
        sql: sql.to_string(),
    };
    let mut bytes = Vec::new();
    bytes.extend(query("SELECT * FROM Object").to_frame_bytes(1));
    bytes.extend(query("SELECT * FROM Object").to_frame_bytes(1));
    bytes.extend(query("SELECT * FROM Object").to_frame_bytes(2));
    bytes.extend(query("SELECT 1").to_frame_bytes(3));
    stream.write_all(&bytes).unwrap();
    let mut errors = Vec::new();
    let started = Instant::now();
    while errors.len() < 2 && started.elapsed() < Duration::from_secs(20) {
        let (id, message) = read_frame(&mut stream).unwrap();
        if let Message::Error { code, .. } = message {
            errors.push((id, code));
        }
    }
    errors.sort_by_key(|e| e.0);
    assert_eq!(
        errors,
        [
            (1, ErrorCode::DuplicateRequest),
            (3, ErrorCode::TooManyQueries)
        ]
    );
    drop(stream);
    assert_serving(&server);
}

#[test]
fn a_client_leaving_mid_result_frees_its_query() {
    let server = server(ServerConfig {
        frame_bytes: 4096,
        connection_buffer_bytes: 8192,
        ..config()
    });
    for _ in 0..3 {
        let mut stream = raw(&server);
        stream.write_all(&hello()).unwrap();
        read_frame(&mut stream).unwrap();
        let query = Message::Query {
            progress: false,
            max_rows: 0,
            sql: "SELECT * FROM Object".to_string(),
        };
        stream.write_all(&query.to_frame_bytes(1)).unwrap();
        // Read the schema and one batch, then leave.
        read_frame(&mut stream).unwrap();
        read_frame(&mut stream).unwrap();
        drop(stream);
    }
    let started = Instant::now();
    while server.running_queries() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "queries of departed clients keep running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_serving(&server);
}

#[test]
fn a_slow_reader_is_dropped_without_buffering_its_result() {
    let server = server(ServerConfig {
        frame_bytes: 16 << 10,
        connection_buffer_bytes: 64 << 10,
        slow_reader_timeout: Duration::from_millis(800),
        ..config()
    });
    // A small receive buffer, so the kernel cannot absorb the result either.
    let mut stream = small_receive_buffer(&server);
    stream.write_all(&hello()).unwrap();
    read_frame(&mut stream).unwrap();
    let query = Message::Query {
        progress: false,
        max_rows: 0,
        sql: "SELECT * FROM Object".to_string(),
    };
    stream.write_all(&query.to_frame_bytes(1)).unwrap();
    // Never read: the server's writer times out (or the producer does) and
    // the connection is closed; other clients are served meanwhile.
    assert_serving(&server);
    let started = Instant::now();
    while server.running_queries() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "slow reader still holds a query"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // What the kernel buffered arrives, then the connection ends.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    // The full result is ~6 MB; far less was ever queued for this client.
    assert!(
        total < 5 << 20,
        "{total} bytes were buffered for a client that did not read"
    );
    assert!(
        server
            .stats()
            .queries_failed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// A connection whose receive buffer is 4 KiB (set before connecting, so
/// the TCP window stays small).
fn small_receive_buffer(server: &ServerHandle) -> TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(addr) = server.local_addr() else {
        panic!("the test server listens on IPv4");
    };
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // sockaddr is a fully initialised sockaddr_in of the size passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0);
        let sockaddr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sockaddr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0);
        let stream = TcpStream::from_raw_fd(fd);
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }
}

fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn thousands_of_idle_connections() {
    // Each connection costs the test process two descriptors (both ends).
    let wanted = 2000usize.min(open_files_limit().saturating_sub(256) / 2);
    let limit = wanted / 4;
    let server = server(ServerConfig {
        max_connections: limit,
        handshake_timeout: Duration::from_secs(5),
        ..config()
    });
    // A client that connected first keeps working through the flood.
    let mut early = Client::connect(server.local_addr(), &ConnectOptions::default()).unwrap();
    let mut idle = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        match TcpStream::connect(server.local_addr()) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(
        idle.len() >= wanted / 2,
        "could open only {} connections",
        idle.len()
    );
    assert_eq!(
        early
            .query_all("SELECT COUNT(*) FROM Object")
            .unwrap()
            .rows(),
        1
    );
    // The ones past the limit are refused with an error.
    let started = Instant::now();
    while server
        .stats()
        .connections_refused
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every flooding connection gets an answer: TOO_MANY_CONNECTIONS past
    // the limit, HANDSHAKE_TIMEOUT for the ones accepted; then it is closed.
    let mut refused = 0;
    let mut timed_out = 0;
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (_, message) = read_frame(stream).expect("an answer before the close");
        match error_code_of(&message) {
            ErrorCode::TooManyConnections => refused += 1,
            ErrorCode::HandshakeTimeout => timed_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        refused > 0 && timed_out > 0,
        "{refused} refused, {timed_out} timed out"
    );
    let started = Instant::now();
    while server.connections() > 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} connections still open",
            server.connections()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(idle);
    assert_serving(&server);
    assert!(early.ping().is_ok());
}
