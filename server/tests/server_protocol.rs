//! The server end to end over loopback: results equal to the embedded
//! engine's, errors with codes and positions, progress, cancel, tokens,
//! asynchronous queries (also across connections and a restart), graceful
//! shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skyscan_client::{Client, ClientError, ConnectOptions, ErrorCode, JobState, QueryOptions};
use skyscan_server::jobs::JobConfig;
use skyscan_server::{Auth, ServerConfig};
use support::{config, engine, engine_rows, rows_of, server, sorted};

fn connect(server: &skyscan_server::ServerHandle) -> Client {
    Client::connect(server.local_addr(), &ConnectOptions::default()).unwrap()
}

const QUERIES: &[&str] = &[
    "SELECT * FROM Object",
    "SELECT objectId, ra, decl, refBand, detect_isPrimary, g_psfFlux FROM Object WHERE r_psfFlux > 1000",
    "SELECT COUNT(*), AVG(ra), MIN(decl), MAX(nVisits) FROM Object",
    "SELECT refBand, COUNT(*) AS n FROM Object GROUP BY refBand",
    "SELECT objectId, i_psfFlux FROM Object ORDER BY i_psfFlux DESC, objectId LIMIT 17",
    "SELECT objectId FROM Object WHERE qserv_areaspec_circle(60, -30, 0.5)",
    "SELECT objectId FROM Object WHERE objectId < 0",
];

#[test]
fn results_equal_the_embedded_engine() {
    let server = server(ServerConfig {
        // Small frames: every result spans many BATCH frames.
        frame_bytes: 16 << 10,
        ..config()
    });
    let engine = engine();
    let mut client = connect(&server);
    assert_eq!(client.server_info().user, "anonymous");
    for sql in QUERIES {
        let expected = engine.query(sql).unwrap();
        let outcome = client.query_all(sql).unwrap();
        assert_eq!(outcome.rows(), expected.rows(), "{sql}");
        assert_eq!(outcome.stats.rows as usize, expected.rows(), "{sql}");
        let names: Vec<&str> = outcome
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let expected_names: Vec<&str> = expected.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, expected_names, "{sql}");
        let ours = rows_of(&outcome.batches);
        let theirs = engine_rows(&expected);
        if sql.contains("ORDER BY") {
            assert_eq!(ours, theirs, "{sql}");
        } else {
            assert_eq!(sorted(ours), sorted(theirs), "{sql}");
        }
    }
    assert!(client.ping().unwrap() < Duration::from_secs(5));
}

#[test]
fn errors_carry_a_code_and_the_position() {
    let server = server(config());
    let mut client = connect(&server);
    let err = client
        .query_all("SELECT objectId\nFROM Object WHERE ra > AND decl < 3")
        .unwrap_err();
    match err {
        ClientError::Server { code, position, .. } => {
            assert_eq!(code, ErrorCode::Syntax);
            let (line, _) = position.expect("a syntax error has a position");
            assert_eq!(line, 2);
        }
        other => panic!("{other}"),
    }
    let err = client.query_all("SELECT nope FROM Object").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Name), "{err}");
    let err = client.query_all("DELETE FROM Object").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unsupported), "{err}");
    // The connection is still good.
    assert_eq!(client.query_all("SELECT 1").unwrap().rows(), 1);
}

#[test]
fn progress_is_reported_and_cancel_stops_a_query() {
    let server = server(ServerConfig {
        frame_bytes: 4 << 10,
        connection_buffer_bytes: 16 << 10,
        ..config()
    });
    let mut client = connect(&server);
    let calls = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new((0, 0)));
    let options = QueryOptions {
        on_progress: Some(Box::new({
            let calls = Arc::clone(&calls);
            let last = Arc::clone(&last);
            move |p| {
                calls.fetch_add(1, Ordering::Relaxed);
                *last.lock().unwrap() = (p.chunks_done, p.chunks_total);
            }
        })),
        max_rows: 0,
    };
    let outcome = client
        .query_with("SELECT COUNT(*) FROM Object WHERE g_psfFlux > 0", options)
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(outcome.rows(), 1);
    assert!(calls.load(Ordering::Relaxed) >= 1);
    let (done, total) = *last.lock().unwrap();
    assert!(total > 1, "the table spans several chunks");
    assert_eq!(done, total);

    // Cancel after the first batch: the stream ends with CANCELLED (or
    // normally, if the server was done already) and the connection works.
    let mut stream = client.query("SELECT * FROM Object").unwrap();
    let first = stream.next_batch().unwrap().unwrap();
    assert!(first.num_rows() > 0);
    stream.cancel().unwrap();
    let mut rows = first.num_rows();
    let end = loop {
        match stream.next_batch() {
            Ok(Some(batch)) => rows += batch.num_rows(),
            Ok(None) => break None,
            Err(err) => break Some(err),
        }
    };
    if let Some(err) = end {
        assert_eq!(err.code(), Some(ErrorCode::Cancelled), "{err}");
        assert!(rows < support::OBJECT_ROWS as usize);
    }
    drop(stream);
    // Dropping a stream half-read cancels and drains it.
    let mut stream = client.query("SELECT * FROM Object").unwrap();
    stream.next_batch().unwrap().unwrap();
    drop(stream);
    assert_eq!(client.query_all("SELECT 2").unwrap().rows(), 1);
    // max_rows is a limit: more rows are an error.
    let limited = client.query_with(
        "SELECT objectId FROM Object",
        QueryOptions {
            on_progress: None,
            max_rows: 10,
        },
    );
    let err = limited.and_then(|s| s.collect_all()).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Limit), "{err}");
}

#[test]
fn tokens_name_users_and_bad_tokens_are_refused() {
    let jobs_dir = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        auth: Auth::Tokens(
            [
                ("alice-secret-1".to_string(), "alice".to_string()),
                ("bob-secret-22".to_string(), "bob".to_string()),
            ]
            .into_iter()
            .collect(),
        ),
        jobs: Some(JobConfig::in_dir(jobs_dir.path().to_path_buf())),
        ..config()
    });
    let options = |token: Option<&str>| ConnectOptions {
        token: token.map(str::to_string),
        ..ConnectOptions::default()
    };
    for bad in [None, Some("alice-secret-2"), Some("")] {
        let err = Client::connect(server.local_addr(), &options(bad)).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Auth), "{err}");
    }
    let mut alice = Client::connect(server.local_addr(), &options(Some("alice-secret-1"))).unwrap();
    let mut bob = Client::connect(server.local_addr(), &options(Some("bob-secret-22"))).unwrap();
    assert_eq!(alice.server_info().user, "alice");
    assert_eq!(bob.server_info().user, "bob");
    let id = alice.submit("SELECT COUNT(*) FROM Object").unwrap();
    // Bob sees none of Alice's queries.
    assert_eq!(
        bob.status(id).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
    assert!(bob.list_jobs().unwrap().is_empty());
    assert_eq!(
        bob.delete_job(id).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
    assert_eq!(alice.list_jobs().unwrap().len(), 1);
}

#[test]
fn asynchronous_queries_from_submit_to_delete() {
    let jobs_dir = tempfile::tempdir().unwrap();
    let server = server(ServerConfig {
        jobs: Some(JobConfig::in_dir(jobs_dir.path().to_path_buf())),
        ..config()
    });
    let engine = engine();
    let sql = "SELECT objectId, ra, decl, refBand FROM Object WHERE r_psfFlux > 500";
    let mut submitter = connect(&server);
    let id = submitter.submit(sql).unwrap();
    let info = submitter.wait(id, Duration::from_secs(60)).unwrap();
    assert_eq!(info.state, JobState::Done, "{info:?}");
    assert_eq!(info.sql, sql);
    assert!(info.result_bytes > 0);
    assert!(info.expires_ms > info.finished_ms);
    let expected = engine.query(sql).unwrap();
    assert_eq!(info.rows as usize, expected.rows());
    drop(submitter);

    // Fetch from another connection, twice.
    let mut fetcher = connect(&server);
    for _ in 0..2 {
        let outcome = fetcher.fetch(id).unwrap().collect_all().unwrap();
        assert_eq!(
            sorted(rows_of(&outcome.batches)),
            sorted(engine_rows(&expected))
        );
    }
    // `SUBMIT <sql>` through the query path answers with the id.
    let outcome = fetcher
        .query_all("submit SELECT COUNT(*) FROM Object")
        .unwrap();
    assert_eq!(rows_of(&outcome.batches).len(), 1);
    assert_eq!(outcome.schema.field(0).name(), "queryId");
    let second: u64 = rows_of(&outcome.batches)[0].parse().unwrap();
    assert!(second > id);
    let jobs = fetcher.list_jobs().unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [id, second]);
    let done = fetcher.wait(second, Duration::from_secs(60)).unwrap();
    assert_eq!(done.state, JobState::Done);
    let count = fetcher.fetch(second).unwrap().collect_all().unwrap();
    assert_eq!(rows_of(&count.batches), [support::OBJECT_ROWS.to_string()]);

    // Errors: a bad query fails at submit; a failing one is `failed` with its error.
    let err = fetcher.submit("SELEC 1").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Syntax));
    let failing = fetcher.submit("SELECT nope FROM Object").unwrap();
    let info = fetcher.wait(failing, Duration::from_secs(60)).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.error_code, ErrorCode::Name as u16);
    assert!(!info.error_message.is_empty());
    let err = fetcher.fetch(failing).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Name), "{err}");

    // Delete: gone from the list, the status and the disk.
    fetcher.delete_job(id).unwrap();
    assert_eq!(
        fetcher.status(id).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
    assert_eq!(
        fetcher.fetch(id).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
    assert!(!jobs_dir.path().join(format!("{id}.result")).exists());
    assert!(jobs_dir.path().join(format!("{second}.result")).exists());
    assert_eq!(
        fetcher.status(12345).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
}

#[test]
fn results_expire() {
    let jobs_dir = tempfile::tempdir().unwrap();
    let mut jobs = JobConfig::in_dir(jobs_dir.path().to_path_buf());
    jobs.expiry = Duration::from_millis(300);
    let server = server(ServerConfig {
        jobs: Some(jobs),
        ..config()
    });
    let mut client = connect(&server);
    let id = client.submit("SELECT COUNT(*) FROM Object").unwrap();
    let info = client.wait(id, Duration::from_secs(60)).unwrap();
    assert_eq!(info.state, JobState::Done);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        client.status(id).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
    assert!(!jobs_dir.path().join(format!("{id}.result")).exists());
}

#[test]
fn finished_results_survive_a_restart() {
    let jobs_dir = tempfile::tempdir().unwrap();
    let make = || ServerConfig {
        jobs: Some(JobConfig::in_dir(jobs_dir.path().to_path_buf())),
        ..config()
    };
    let sql = "SELECT objectId, g_psfFlux FROM Object WHERE decl < -30";
    let (id, rows_before) = {
        let server = server(make());
        let mut client = connect(&server);
        let id = client.submit(sql).unwrap();
        assert_eq!(
            client.wait(id, Duration::from_secs(60)).unwrap().state,
            JobState::Done
        );
        let rows = sorted(rows_of(
            &client.fetch(id).unwrap().collect_all().unwrap().batches,
        ));
        server.shutdown();
        (id, rows)
    };
    let server = server(make());
    let mut client = connect(&server);
    let info = client.status(id).unwrap();
    assert_eq!(info.state, JobState::Done);
    let rows_after = sorted(rows_of(
        &client.fetch(id).unwrap().collect_all().unwrap().batches,
    ));
    assert_eq!(rows_after, rows_before);
    // New ids continue after the old ones.
    let next = client.submit("SELECT 1").unwrap();
    assert!(next > id);
    // A damaged result is reported, not sent as data.
    let path = jobs_dir.path().join(format!("{id}.result"));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let err = client.fetch(id).and_then(|s| s.collect_all()).unwrap_err();
    assert!(
        matches!(err.code(), Some(ErrorCode::Corrupt)) || matches!(err, ClientError::Arrow(_)),
        "{err}"
    );
}

#[test]
fn graceful_shutdown_lets_running_queries_finish() {
    let server = server(ServerConfig {
        frame_bytes: 4 << 10,
        connection_buffer_bytes: 8 << 10,
        ..config()
    });
    let addr = server.local_addr();
    let mut client = Client::connect(addr, &ConnectOptions::default()).unwrap();
    let reader = std::thread::spawn(move || {
        let mut stream = client.query("SELECT * FROM Object").unwrap();
        let mut rows = 0;
        // Read slowly, so the query is still running when shutdown begins.
        while let Some(batch) = stream.next_batch().unwrap() {
            rows += batch.num_rows();
            std::thread::sleep(Duration::from_millis(1));
        }
        rows
    });
    std::thread::sleep(Duration::from_millis(100));
    server.shutdown();
    assert_eq!(reader.join().unwrap(), support::OBJECT_ROWS as usize);
    assert!(Client::connect(addr, &ConnectOptions::default()).is_err());
}

#[test]
fn interrupted_jobs_run_again_after_a_restart() {
    // An index as a server that died would leave it: a running job, one
    // interrupted twice already, an orphaned result and a temporary.
    let jobs_dir = tempfile::tempdir().unwrap();
    let record = |id: u64, state: &str, attempts: u32| {
        serde_json::json!({
            "id": id, "user": "anonymous", "sql": "SELECT COUNT(*) FROM Object",
            "state": state, "submitted_ms": 1, "attempts": attempts
        })
    };
    let index = serde_json::json!({
        "format": "skyscan-jobs", "version": 1, "next_id": 10,
        "jobs": [record(3, "running", 0), record(4, "running", 2), record(5, "queued", 0)]
    });
    std::fs::write(jobs_dir.path().join("jobs.json"), index.to_string()).unwrap();
    std::fs::write(jobs_dir.path().join("99.result"), b"orphan").unwrap();
    std::fs::write(jobs_dir.path().join("3.result.tmp"), b"partial").unwrap();
    let server = server(ServerConfig {
        jobs: Some(JobConfig::in_dir(jobs_dir.path().to_path_buf())),
        ..config()
    });
    let mut client = connect(&server);
    for id in [3, 5] {
        let info = client.wait(id, Duration::from_secs(60)).unwrap();
        assert_eq!(info.state, JobState::Done, "{info:?}");
        let outcome = client.fetch(id).unwrap().collect_all().unwrap();
        assert_eq!(
            rows_of(&outcome.batches),
            [support::OBJECT_ROWS.to_string()]
        );
    }
    let info = client.status(4).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert!(
        info.error_message.contains("restarts"),
        "{}",
        info.error_message
    );
    assert!(!jobs_dir.path().join("99.result").exists());
    assert!(!jobs_dir.path().join("3.result.tmp").exists());
    assert_eq!(client.submit("SELECT 1").unwrap(), 10);
}

#[test]
fn a_damaged_index_is_set_aside() {
    let jobs_dir = tempfile::tempdir().unwrap();
    std::fs::write(jobs_dir.path().join("jobs.json"), b"{ not json").unwrap();
    let server = server(ServerConfig {
        jobs: Some(JobConfig::in_dir(jobs_dir.path().to_path_buf())),
        ..config()
    });
    let mut client = connect(&server);
    assert!(client.list_jobs().unwrap().is_empty());
    let aside = std::fs::read_dir(jobs_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("jobs.json.damaged-")
        });
    assert!(aside, "the damaged index is kept for a person to look at");
}

#[test]
fn cancelling_queued_and_running_jobs() {
    let jobs_dir = tempfile::tempdir().unwrap();
    let mut jobs = JobConfig::in_dir(jobs_dir.path().to_path_buf());
    jobs.runners = 1;
    jobs.query_threads = 1;
    let server = server(ServerConfig {
        jobs: Some(jobs),
        ..config()
    });
    let mut client = connect(&server);
    let ids: Vec<u64> = (0..6)
        .map(|_| client.submit("SELECT * FROM Object").unwrap())
        .collect();
    // The first is running (or about to), the last waits behind four more.
    for &id in [ids[0], ids[5]].iter() {
        client.cancel_job(id).unwrap();
    }
    for &id in [ids[0], ids[5]].iter() {
        let info = client.wait(id, Duration::from_secs(60)).unwrap();
        assert_eq!(info.state, JobState::Cancelled, "{info:?}");
        let err = client.fetch(id).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Cancelled), "{err}");
    }
    for &id in &ids[1..5] {
        assert_eq!(
            client.wait(id, Duration::from_secs(120)).unwrap().state,
            JobState::Done
        );
    }
    // Deleting a job that runs cancels it and leaves no file behind.
    let id = client.submit("SELECT * FROM Object").unwrap();
    client.delete_job(id).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!jobs_dir.path().join(format!("{id}.result")).exists());
    assert!(
        !jobs_dir.path().join(format!("{id}.result.tmp")).exists() || {
            std::thread::sleep(Duration::from_secs(3));
            !jobs_dir.path().join(format!("{id}.result.tmp")).exists()
        }
    );
    assert_eq!(
        client.status(id).unwrap_err().code(),
        Some(ErrorCode::NoSuchJob)
    );
}
