//! Asynchronous queries (Qserv's `SUBMIT`): accepted at once, run by a few
//! runner threads, their results spooled to disk and fetched later, from
//! any connection of the same user, until they expire.
//!
//! On disk (SPEC.md part 4, §9), in the results directory:
//!
//! * `jobs.json` — the index: every job's record, rewritten atomically
//!   (`jobs.json.tmp`, fsync, rename, fsync of the directory) on every
//!   change, so a restart finds finished results and re-queues the jobs
//!   that were queued or running;
//! * `<id>.result` — a finished job's result: the frames a `FETCH` sends
//!   (`SCHEMA`, `BATCH`…, `END`, request id 0), written as
//!   `<id>.result.tmp` and renamed when complete; the index records its
//!   length and CRC-32C, checked while it is sent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use skyscan_client::proto::{
    EndStats, ErrorCode, FRAME_HEADER_BYTES, FrameHeader, JobInfo, JobState,
    MAX_FRAME_PAYLOAD_LIMIT, Message, MessageType, frame_header,
};
use skyscan_engine::query::{
    ErrorKind, ExecOptions, Progress, QueryEngine, QueryError, ResultColumn, ResultSink,
};
use skyscan_engine::scan::CancelToken;
use skyscan_format::ColumnData;

use crate::arrow_conv::{IpcEncoder, arrow_schema, batch_bytes, to_record_batch};
use crate::log;

/// The index file's name in the results directory.
pub const INDEX_FILE: &str = "jobs.json";
/// The index's `format` field.
const INDEX_FORMAT: &str = "skyscan-jobs";
/// The index's version.
const INDEX_VERSION: u32 = 1;
/// A job interrupted this many times by restarts fails instead of running again.
const MAX_ATTEMPTS: u32 = 3;
/// SQL text kept in a job record (bytes).
const MAX_SQL_IN_RECORD: usize = 4096;

/// Limits and places of the asynchronous queries.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Where results and the index live.
    pub dir: PathBuf,
    /// How long a finished result is kept.
    pub expiry: Duration,
    /// Jobs running at once.
    pub runners: usize,
    /// Jobs waiting at most (all users).
    pub max_queued: usize,
    /// Jobs one user may have (any state) at most.
    pub max_jobs_per_user: usize,
    /// Most bytes of one spooled result.
    pub max_result_bytes: u64,
    /// Scan threads of each job.
    pub query_threads: usize,
    /// Longest run of one job.
    pub query_timeout: Duration,
    /// Target payload of a `BATCH` frame (bytes).
    pub frame_bytes: usize,
    /// Log each job's end to stderr.
    pub log: bool,
}

impl JobConfig {
    /// Defaults with results in `dir`.
    pub fn in_dir(dir: PathBuf) -> JobConfig {
        JobConfig {
            dir,
            expiry: Duration::from_secs(24 * 3600),
            runners: 2,
            max_queued: 1000,
            max_jobs_per_user: 100,
            max_result_bytes: 16 << 30,
            query_threads: 2,
            query_timeout: Duration::from_secs(12 * 3600),
            frame_bytes: 1 << 20,
            log: true,
        }
    }
}

/// One job as the index stores it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct JobRecord {
    id: u64,
    user: String,
    sql: String,
    state: String,
    #[serde(default)]
    error_code: u16,
    #[serde(default)]
    error_message: String,
    submitted_ms: u64,
    #[serde(default)]
    started_ms: u64,
    #[serde(default)]
    finished_ms: u64,
    #[serde(default)]
    expires_ms: u64,
    #[serde(default)]
    chunks_total: u64,
    #[serde(default)]
    rows: u64,
    #[serde(default)]
    result_bytes: u64,
    #[serde(default)]
    result_crc32c: u32,
    #[serde(default)]
    attempts: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    format: String,
    version: u32,
    next_id: u64,
    jobs: Vec<JobRecord>,
}

fn state_name(state: JobState) -> String {
    state.name().to_string()
}

fn parse_state(name: &str) -> Option<JobState> {
    [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ]
    .into_iter()
    .find(|s| s.name() == name)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Live state of a running job.
#[derive(Debug)]
struct Running {
    cancel: CancelToken,
    /// Set when the owner cancelled (or deleted) it, as opposed to a shutdown.
    by_owner: AtomicBool,
    chunks_done: AtomicU64,
    chunks_total: AtomicU64,
    rows: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    jobs: BTreeMap<u64, JobRecord>,
    queue: VecDeque<u64>,
    running: HashMap<u64, Arc<Running>>,
    /// Jobs deleted while running: their files go when they stop.
    deleted_running: Vec<u64>,
    stopping: bool,
}

/// Why a job request failed: a protocol error code and a message.
pub type JobError = (ErrorCode, String);

/// The asynchronous-query manager of one server.
pub struct JobManager {
    engine: Arc<QueryEngine>,
    config: JobConfig,
    state: Mutex<State>,
    wake: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn result_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.result"))
}

fn tmp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.result.tmp"))
}

fn io_err(what: &str, path: &Path, err: io::Error) -> String {
    format!("{what} {}: {err}", path.display())
}

impl JobManager {
    /// Opens (or creates) the results directory, reads the index, re-queues
    /// interrupted jobs, removes files no job refers to and expired results,
    /// and starts the runners.
    pub fn open(engine: Arc<QueryEngine>, config: JobConfig) -> Result<Arc<JobManager>, String> {
        fs::create_dir_all(&config.dir)
            .map_err(|e| io_err("creating the results directory", &config.dir, e))?;
        let mut state = State {
            next_id: 1,
            ..State::default()
        };
        let index_path = config.dir.join(INDEX_FILE);
        match fs::read(&index_path) {
            Ok(bytes) => match serde_json::from_slice::<IndexFile>(&bytes) {
                Ok(index) if index.format == INDEX_FORMAT && index.version == INDEX_VERSION => {
                    state.next_id = index.next_id.max(1);
                    for job in index.jobs {
                        state.next_id = state.next_id.max(job.id + 1);
                        state.jobs.insert(job.id, job);
                    }
                }
                Ok(index) => {
                    return Err(format!(
                        "{}: format {:?} version {} is not this server's ({INDEX_FORMAT} {INDEX_VERSION})",
                        index_path.display(),
                        index.format,
                        index.version
                    ));
                }
                Err(err) => {
                    // Keep the damaged file for a person to look at; start empty.
                    let aside = config
                        .dir
                        .join(format!("{INDEX_FILE}.damaged-{}", now_ms()));
                    let _ = fs::rename(&index_path, &aside);
                    log(&format!(
                        "jobs: {} is damaged ({err}); moved to {} and starting with no jobs",
                        index_path.display(),
                        aside.display()
                    ));
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err("reading", &index_path, err)),
        }
        let now = now_ms();
        let mut requeue = Vec::new();
        let mut expired = Vec::new();
        for job in state.jobs.values_mut() {
            match parse_state(&job.state) {
                Some(JobState::Queued) | Some(JobState::Running) => {
                    job.attempts += u32::from(job.state == "running");
                    if job.attempts >= MAX_ATTEMPTS {
                        job.state = state_name(JobState::Failed);
                        job.error_code = ErrorCode::Internal as u16;
                        job.error_message = format!(
                            "interrupted by {} server restarts; not run again",
                            job.attempts
                        );
                        job.finished_ms = now;
                        job.expires_ms = now + config.expiry.as_millis() as u64;
                    } else {
                        job.state = state_name(JobState::Queued);
                        job.started_ms = 0;
                        requeue.push(job.id);
                    }
                }
                Some(JobState::Done) => {
                    let path = result_path(&config.dir, job.id);
                    let len = fs::metadata(&path).map(|m| m.len()).ok();
                    if len != Some(job.result_bytes) {
                        job.state = state_name(JobState::Failed);
                        job.error_code = ErrorCode::Io as u16;
                        job.error_message = format!(
                            "the spooled result {} is missing or truncated",
                            path.display()
                        );
                    }
                }
                Some(JobState::Failed) | Some(JobState::Cancelled) => {}
                None => {
                    job.state = state_name(JobState::Failed);
                    job.error_message = format!("unknown state {:?} in the index", job.state);
                }
            }
            if job.expires_ms != 0 && job.expires_ms <= now {
                expired.push(job.id);
            }
        }
        for id in expired {
            state.jobs.remove(&id);
        }
        requeue.sort_unstable();
        state.queue.extend(requeue);
        // Files no job refers to: results of deleted or expired jobs, temporaries.
        if let Ok(entries) = fs::read_dir(&config.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let keep = match name.strip_suffix(".result") {
                    Some(id) => id.parse::<u64>().is_ok_and(|id| {
                        state
                            .jobs
                            .get(&id)
                            .is_some_and(|j| j.state == JobState::Done.name())
                    }),
                    None => !name.ends_with(".result.tmp"),
                };
                if !keep {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let manager = Arc::new(JobManager {
            engine,
            config,
            state: Mutex::new(state),
            wake: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        {
            let state = manager.lock();
            manager.persist(&state)?;
        }
        let mut threads = Vec::new();
        for runner in 0..manager.config.runners.max(1) {
            let m = Arc::clone(&manager);
            let handle = std::thread::Builder::new()
                .name(format!("skyscan-job-{runner}"))
                .spawn(move || m.runner_loop())
                .map_err(|e| format!("starting a job runner: {e}"))?;
            threads.push(handle);
        }
        let m = Arc::clone(&manager);
        threads.push(
            std::thread::Builder::new()
                .name("skyscan-job-reaper".to_string())
                .spawn(move || m.reaper_loop())
                .map_err(|e| format!("starting the job reaper: {e}"))?,
        );
        *manager.threads_lock() = threads;
        Ok(manager)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn threads_lock(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        match self.threads.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The results directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Writes the index atomically.
    fn persist(&self, state: &State) -> Result<(), String> {
        let index = IndexFile {
            format: INDEX_FORMAT.to_string(),
            version: INDEX_VERSION,
            next_id: state.next_id,
            jobs: state.jobs.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| e.to_string())?;
        let path = self.config.dir.join(INDEX_FILE);
        let tmp = self.config.dir.join(format!("{INDEX_FILE}.tmp"));
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.config.dir)?.sync_all()
        };
        write().map_err(|e| io_err("writing", &path, e))
    }

    fn persist_logged(&self, state: &State) {
        if let Err(err) = self.persist(state) {
            log(&format!("jobs: {err}"));
        }
    }

    /// Accepts `sql` for `user`; returns the new job's id.
    pub fn submit(&self, user: &str, sql: &str) -> Result<u64, JobError> {
        let sql = sql.trim();
        if sql.is_empty() {
            return Err((ErrorCode::Syntax, "SUBMIT of an empty query".to_string()));
        }
        if sql.len() > skyscan_engine::query::MAX_SQL_BYTES {
            return Err((ErrorCode::Limit, "the query text is too long".to_string()));
        }
        // Parse now so that a syntax error is reported at once.
        if let Err(err) = skyscan_engine::query::parse_one(sql) {
            return Err((error_code(&err), err.to_string()));
        }
        let mut state = self.lock();
        if state.stopping {
            return Err((
                ErrorCode::ShuttingDown,
                "the server is shutting down".to_string(),
            ));
        }
        if state.queue.len() >= self.config.max_queued {
            return Err((
                ErrorCode::Busy,
                format!(
                    "{} asynchronous queries are waiting already; try later",
                    state.queue.len()
                ),
            ));
        }
        let mine = state.jobs.values().filter(|j| j.user == user).count();
        if mine >= self.config.max_jobs_per_user {
            return Err((
                ErrorCode::Limit,
                format!(
                    "you have {mine} asynchronous queries (at most {}); delete some",
                    self.config.max_jobs_per_user
                ),
            ));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.jobs.insert(
            id,
            JobRecord {
                id,
                user: user.to_string(),
                sql: sql.to_string(),
                state: state_name(JobState::Queued),
                error_code: 0,
                error_message: String::new(),
                submitted_ms: now_ms(),
                started_ms: 0,
                finished_ms: 0,
                expires_ms: 0,
                chunks_total: 0,
                rows: 0,
                result_bytes: 0,
                result_crc32c: 0,
                attempts: 0,
            },
        );
        state.queue.push_back(id);
        if let Err(err) = self.persist(&state) {
            state.jobs.remove(&id);
            state.queue.retain(|&q| q != id);
            return Err((ErrorCode::Io, err));
        }
        drop(state);
        self.wake.notify_all();
        Ok(id)
    }

    fn info(state: &State, job: &JobRecord) -> JobInfo {
        let live = state.running.get(&job.id);
        let load = |a: Option<&AtomicU64>, fallback: u64| {
            a.map_or(fallback, |v| v.load(Ordering::Relaxed))
        };
        let mut sql = job.sql.clone();
        if sql.len() > MAX_SQL_IN_RECORD {
            let mut end = MAX_SQL_IN_RECORD;
            while !sql.is_char_boundary(end) {
                end -= 1;
            }
            sql.truncate(end);
        }
        let state_value = parse_state(&job.state).unwrap_or(JobState::Failed);
        JobInfo {
            id: job.id,
            state: state_value,
            error_code: job.error_code,
            submitted_ms: job.submitted_ms,
            started_ms: job.started_ms,
            finished_ms: job.finished_ms,
            expires_ms: job.expires_ms,
            chunks_done: match state_value {
                JobState::Done => job.chunks_total,
                _ => load(live.map(|r| &r.chunks_done), 0),
            },
            chunks_total: load(live.map(|r| &r.chunks_total), job.chunks_total),
            rows: load(live.map(|r| &r.rows), job.rows),
            result_bytes: job.result_bytes,
            error_message: job.error_message.clone(),
            sql,
        }
    }

    /// The status of `user`'s job `id`.
    pub fn status(&self, user: &str, id: u64) -> Result<JobInfo, JobError> {
        let state = self.lock();
        match state.jobs.get(&id) {
            Some(job) if job.user == user => Ok(Self::info(&state, job)),
            _ => Err(no_such_job(id)),
        }
    }

    /// `user`'s jobs, oldest first.
    pub fn list(&self, user: &str) -> Vec<JobInfo> {
        let state = self.lock();
        state
            .jobs
            .values()
            .filter(|j| j.user == user)
            .map(|j| Self::info(&state, j))
            .collect()
    }

    /// Cancels `user`'s job `id` (queued or running); a finished job is left as is.
    pub fn cancel(&self, user: &str, id: u64) -> Result<(), JobError> {
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(&id).filter(|j| j.user == user) else {
            return Err(no_such_job(id));
        };
        match parse_state(&job.state) {
            Some(JobState::Queued) => {
                job.state = state_name(JobState::Cancelled);
                job.finished_ms = now_ms();
                job.expires_ms = job.finished_ms + self.config.expiry.as_millis() as u64;
                state.queue.retain(|&q| q != id);
                self.persist_logged(&state);
            }
            Some(JobState::Running) => {
                if let Some(running) = state.running.get(&id) {
                    running.by_owner.store(true, Ordering::Release);
                    running.cancel.cancel();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Deletes `user`'s job `id` and its result (cancelling it if it runs).
    pub fn delete(&self, user: &str, id: u64) -> Result<(), JobError> {
        let mut state = self.lock();
        if state.jobs.get(&id).is_none_or(|j| j.user != user) {
            return Err(no_such_job(id));
        }
        state.jobs.remove(&id);
        state.queue.retain(|&q| q != id);
        if let Some(running) = state.running.get(&id) {
            running.by_owner.store(true, Ordering::Release);
            running.cancel.cancel();
            state.deleted_running.push(id);
        }
        let _ = fs::remove_file(result_path(&self.config.dir, id));
        self.persist_logged(&state);
        Ok(())
    }

    /// Opens `user`'s finished result `id` for sending: the file, its length
    /// and CRC-32C.
    pub fn open_result(&self, user: &str, id: u64) -> Result<(File, u64, u32), JobError> {
        let state = self.lock();
        let Some(job) = state.jobs.get(&id).filter(|j| j.user == user) else {
            return Err(no_such_job(id));
        };
        match parse_state(&job.state) {
            Some(JobState::Done) => {}
            Some(JobState::Queued) | Some(JobState::Running) => {
                return Err((
                    ErrorCode::JobNotReady,
                    format!("query {id} is {}; fetch it when it is done", job.state),
                ));
            }
            _ => {
                let code = match job.error_code {
                    0 => ErrorCode::Cancelled,
                    c => ErrorCode::from_u16(c),
                };
                let message = match job.error_message.as_str() {
                    "" => format!("query {id} was {}", job.state),
                    m => format!("query {id} failed: {m}"),
                };
                return Err((code, message));
            }
        }
        let path = result_path(&self.config.dir, id);
        let file = File::open(&path).map_err(|e| (ErrorCode::Io, io_err("opening", &path, e)))?;
        Ok((file, job.result_bytes, job.result_crc32c))
    }

    /// Stops: no new job starts; running ones are cancelled after `grace`
    /// and go back to the queue in the index (they run again after a restart).
    pub fn shutdown(&self, grace: Duration) {
        {
            let mut state = self.lock();
            state.stopping = true;
        }
        self.wake.notify_all();
        let deadline = std::time::Instant::now() + grace;
        loop {
            let state = self.lock();
            if state.running.is_empty() || std::time::Instant::now() >= deadline {
                for running in state.running.values() {
                    running.cancel.cancel();
                }
                break;
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(20));
        }
        let threads: Vec<JoinHandle<()>> = self.threads_lock().drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
        let state = self.lock();
        self.persist_logged(&state);
    }

    fn reaper_loop(&self) {
        let mut state = self.lock();
        while !state.stopping {
            let now = now_ms();
            let expired: Vec<u64> = state
                .jobs
                .values()
                .filter(|j| j.expires_ms != 0 && j.expires_ms <= now)
                .map(|j| j.id)
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    state.jobs.remove(id);
                    let _ = fs::remove_file(result_path(&self.config.dir, *id));
                }
                if self.config.log {
                    log(&format!("jobs: {} expired results deleted", expired.len()));
                }
                self.persist_logged(&state);
            }
            state = match self.wake.wait_timeout(state, Duration::from_millis(500)) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn runner_loop(&self) {
        loop {
            let mut state = self.lock();
            let id = loop {
                if state.stopping {
                    return;
                }
                if let Some(id) = state.queue.pop_front() {
                    break id;
                }
                state = match self.wake.wait_timeout(state, Duration::from_millis(500)) {
                    Ok((g, _)) => g,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            };
            let Some(job) = state.jobs.get_mut(&id) else {
                continue;
            };
            job.state = state_name(JobState::Running);
            job.started_ms = now_ms();
            let sql = job.sql.clone();
            let running = Arc::new(Running {
                cancel: CancelToken::new(),
                by_owner: AtomicBool::new(false),
                chunks_done: AtomicU64::new(0),
                chunks_total: AtomicU64::new(0),
                rows: AtomicU64::new(0),
            });
            state.running.insert(id, Arc::clone(&running));
            self.persist_logged(&state);
            drop(state);

            let outcome = self.run_job(id, &sql, &running);

            let mut state = self.lock();
            state.running.remove(&id);
            let deleted = state.deleted_running.contains(&id);
            state.deleted_running.retain(|&d| d != id);
            let stopping = state.stopping;
            let expiry_ms = self.config.expiry.as_millis() as u64;
            let tmp = tmp_path(&self.config.dir, id);
            if deleted {
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(result_path(&self.config.dir, id));
                continue;
            }
            let Some(job) = state.jobs.get_mut(&id) else {
                let _ = fs::remove_file(&tmp);
                continue;
            };
            let now = now_ms();
            match outcome {
                Ok(done) => {
                    job.state = state_name(JobState::Done);
                    job.rows = done.rows;
                    job.chunks_total = done.chunks_total;
                    job.result_bytes = done.bytes;
                    job.result_crc32c = done.crc32c;
                    job.finished_ms = now;
                    job.expires_ms = now + expiry_ms;
                }
                Err(err) => {
                    let _ = fs::remove_file(&tmp);
                    if err.kind == ErrorKind::Cancelled && !running.by_owner.load(Ordering::Acquire)
                    {
                        if stopping {
                            // A shutdown: back to the queue, run after the restart.
                            job.state = state_name(JobState::Queued);
                            job.started_ms = 0;
                        } else {
                            job.state = state_name(JobState::Failed);
                            job.error_code = ErrorCode::Cancelled as u16;
                            job.error_message = err.message.clone();
                        }
                    } else if err.kind == ErrorKind::Cancelled {
                        job.state = state_name(JobState::Cancelled);
                        job.finished_ms = now;
                        job.expires_ms = now + expiry_ms;
                    } else {
                        job.state = state_name(JobState::Failed);
                        job.error_code = error_code(&err) as u16;
                        job.error_message = err.to_string();
                        job.finished_ms = now;
                        job.expires_ms = now + expiry_ms;
                    }
                    job.rows = running.rows.load(Ordering::Relaxed);
                }
            }
            log(&format!(
                "jobs: query {id} of {} is {}",
                job.user, job.state
            ));
            self.persist_logged(&state);
        }
    }

    fn run_job(&self, id: u64, sql: &str, running: &Arc<Running>) -> Result<SpoolDone, QueryError> {
        let tmp = tmp_path(&self.config.dir, id);
        let file = File::create(&tmp)
            .map_err(|e| QueryError::new(ErrorKind::Io, io_err("creating", &tmp, e)))?;
        let mut sink = SpoolSink {
            out: BufWriter::with_capacity(1 << 20, file),
            crc: 0,
            bytes: 0,
            max_bytes: self.config.max_result_bytes,
            frame_bytes: self.config.frame_bytes,
            encoder: IpcEncoder::new(),
            schema: None,
            rows: 0,
            running: Arc::clone(running),
        };
        let progress_target = Arc::clone(running);
        let mut options: ExecOptions = self.engine.options().exec.clone();
        options.threads = self.config.query_threads.max(1);
        options.cancel = running.cancel.clone();
        options.deadline = Some(std::time::Instant::now() + self.config.query_timeout);
        options.progress = Some(Arc::new(move |p: Progress| {
            progress_target
                .chunks_done
                .store(p.chunks_done, Ordering::Relaxed);
            progress_target
                .chunks_total
                .store(p.chunks_total, Ordering::Relaxed);
        }));
        let started = std::time::Instant::now();
        let stats = self.engine.query_with(sql, &options, &mut sink)?;
        let end = Message::End(EndStats {
            rows: sink.rows,
            chunks: stats.chunks,
            chunks_total: stats.chunks_total,
            bytes_read: stats.bytes_read,
            elapsed_us: started.elapsed().as_micros() as u64,
        });
        sink.write_frame(MessageType::End, &end.encode_payload())?;
        let SpoolSink {
            out,
            crc,
            bytes,
            rows,
            ..
        } = sink;
        let file = out
            .into_inner()
            .map_err(|e| QueryError::new(ErrorKind::Io, io_err("writing", &tmp, e.into_error())))?;
        file.sync_all()
            .map_err(|e| QueryError::new(ErrorKind::Io, io_err("syncing", &tmp, e)))?;
        let path = result_path(&self.config.dir, id);
        fs::rename(&tmp, &path)
            .map_err(|e| QueryError::new(ErrorKind::Io, io_err("renaming", &tmp, e)))?;
        Ok(SpoolDone {
            rows,
            chunks_total: stats.chunks_total,
            bytes,
            crc32c: crc,
        })
    }
}

fn no_such_job(id: u64) -> JobError {
    (
        ErrorCode::NoSuchJob,
        format!(
            "no asynchronous query {id} (never submitted, deleted, expired, or another user's)"
        ),
    )
}

/// The protocol code of a query error.
pub fn error_code(err: &QueryError) -> ErrorCode {
    match err.kind {
        ErrorKind::Syntax => ErrorCode::Syntax,
        ErrorKind::Unsupported => ErrorCode::Unsupported,
        ErrorKind::Name => ErrorCode::Name,
        ErrorKind::Type => ErrorCode::Type,
        ErrorKind::InvalidArgument => ErrorCode::InvalidArgument,
        ErrorKind::Limit => {
            if err.message.contains("deadline") || err.message.contains("time limit") {
                ErrorCode::Timeout
            } else {
                ErrorCode::Limit
            }
        }
        ErrorKind::Cancelled => ErrorCode::Cancelled,
        ErrorKind::Corrupt => ErrorCode::Corrupt,
        ErrorKind::Io => ErrorCode::Io,
        _ => ErrorCode::Internal,
    }
}

struct SpoolDone {
    rows: u64,
    chunks_total: u64,
    bytes: u64,
    crc32c: u32,
}

/// Writes a job's result as frames into its spool file.
struct SpoolSink {
    out: BufWriter<File>,
    crc: u32,
    bytes: u64,
    max_bytes: u64,
    frame_bytes: usize,
    encoder: IpcEncoder,
    schema: Option<arrow_schema::SchemaRef>,
    rows: u64,
    running: Arc<Running>,
}

impl SpoolSink {
    fn write_frame(&mut self, message_type: MessageType, payload: &[u8]) -> Result<(), QueryError> {
        let header = frame_header(message_type, 0, payload.len());
        self.write_bytes(&header)?;
        self.write_bytes(payload)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), QueryError> {
        self.bytes += bytes.len() as u64;
        if self.bytes > self.max_bytes {
            return Err(QueryError::limit(format!(
                "the result exceeds {} bytes, the limit of an asynchronous result",
                self.max_bytes
            )));
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| QueryError::new(ErrorKind::Io, format!("writing a spooled result: {e}")))
    }
}

impl ResultSink for SpoolSink {
    fn begin(&mut self, columns: &[ResultColumn]) -> Result<(), QueryError> {
        let schema = arrow_schema(columns);
        let bytes = self
            .encoder
            .schema_message(&schema)
            .map_err(QueryError::internal)?;
        self.schema = Some(schema);
        self.write_frame(MessageType::Schema, &bytes)
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
                0,
                payload_len,
            ));
            self.write_bytes(&head)?;
            self.write_bytes(&body)?;
            self.rows += part.num_rows() as u64;
        }
        self.running.rows.store(self.rows, Ordering::Relaxed);
        Ok(())
    }
}

/// Slices `batch` into parts of about `target_bytes` each (at least one
/// row per part).
pub fn split_batch(
    batch: &arrow_array::RecordBatch,
    target_bytes: usize,
) -> Vec<arrow_array::RecordBatch> {
    let rows = batch.num_rows();
    let bytes = batch_bytes(batch).max(1);
    if bytes <= target_bytes || rows <= 1 {
        return vec![batch.clone()];
    }
    let rows_per_part = (rows * target_bytes / bytes).max(1);
    (0..rows)
        .step_by(rows_per_part)
        .map(|start| batch.slice(start, rows_per_part.min(rows - start)))
        .collect()
}

/// Reads the frames of a spooled result one at a time, checking the
/// length and CRC-32C the index recorded.
#[derive(Debug)]
pub struct SpoolReader {
    file: io::BufReader<File>,
    remaining: u64,
    crc: u32,
    expected_crc: u32,
}

impl SpoolReader {
    /// A reader of `len` bytes of `file` whose CRC-32C must be `crc32c`.
    pub fn new(file: File, len: u64, crc32c: u32) -> SpoolReader {
        SpoolReader {
            file: io::BufReader::with_capacity(1 << 20, file),
            remaining: len,
            crc: 0,
            expected_crc: crc32c,
        }
    }

    /// The next frame (header with request id 0, then payload) as bytes,
    /// `None` at the end of a file whose checksum matched.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.remaining == 0 {
            if self.crc != self.expected_crc {
                return Err("the spooled result's CRC-32C does not match the index".to_string());
            }
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.file
            .read_exact(&mut header)
            .map_err(|e| format!("reading a spooled result: {e}"))?;
        let parsed = FrameHeader::decode(&header, MAX_FRAME_PAYLOAD_LIMIT)
            .map_err(|e| format!("spooled result: {e}"))?;
        let total = FRAME_HEADER_BYTES as u64 + u64::from(parsed.payload_len);
        if total > self.remaining {
            return Err("the spooled result is truncated".to_string());
        }
        let mut frame = vec![0u8; total as usize];
        frame[..FRAME_HEADER_BYTES].copy_from_slice(&header);
        self.file
            .read_exact(&mut frame[FRAME_HEADER_BYTES..])
            .map_err(|e| format!("reading a spooled result: {e}"))?;
        self.crc = crc32c::crc32c_append(self.crc, &frame);
        self.remaining -= total;
        // Check before the last frame (END) is handed out, so a damaged
        // result never ends like a good one.
        if self.remaining == 0 && self.crc != self.expected_crc {
            return Err("the spooled result's CRC-32C does not match the index".to_string());
        }
        Ok(Some(frame))
    }
}
