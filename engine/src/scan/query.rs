//! A submitted query's shared state: control (cancel, limits), progress,
//! result, and the handle its submitter holds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::control::CancelToken;
use super::plain::ScanReport;
use crate::storage::{Result, ScanQuery, StorageError};

/// Scheduling class of a query (BRIEF §4): interactive queries bypass the
/// convoys; scan queries go to a class by their tables' scan rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScanClass {
    /// Fewer chunks than the interactive threshold: the plain path, ahead of scans.
    Interactive,
    /// Scan rating 0–10.
    Fast,
    /// Scan rating 11–20.
    Medium,
    /// Scan rating 21–30.
    Slow,
    /// Scan rating 31–100, and queries booted for running too slowly.
    Snail,
}

impl ScanClass {
    /// The class of a scan over tables whose highest scan rating is `rating`.
    pub fn of_rating(rating: u8) -> ScanClass {
        match rating {
            0..=10 => ScanClass::Fast,
            11..=20 => ScanClass::Medium,
            21..=30 => ScanClass::Slow,
            _ => ScanClass::Snail,
        }
    }

    /// Index into per-class tables (0 = interactive … 4 = snail).
    pub fn index(self) -> usize {
        match self {
            ScanClass::Interactive => 0,
            ScanClass::Fast => 1,
            ScanClass::Medium => 2,
            ScanClass::Slow => 3,
            ScanClass::Snail => 4,
        }
    }

    /// All classes, in index order.
    pub const ALL: [ScanClass; 5] = [
        ScanClass::Interactive,
        ScanClass::Fast,
        ScanClass::Medium,
        ScanClass::Slow,
        ScanClass::Snail,
    ];
}

/// Per-query options of [`super::ScanEngine::submit`].
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Fail with [`StorageError::Limit`] after this long (from submission).
    pub time_limit: Option<Duration>,
    /// Most bytes the scan may read for the query in one chunk plus
    /// [`ScanQuery::memory_bytes`].
    pub max_memory_bytes: Option<u64>,
    /// Force a class instead of classifying by chunk count and scan rating.
    pub class: Option<ScanClass>,
}

/// Where a query is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPhase {
    /// Waiting for admission (its class is at its limit).
    Queued,
    /// Attached to convoys or running on the plain path.
    Running,
    /// Finished, failed or cancelled.
    Done,
}

/// One query in the status view.
#[derive(Debug, Clone)]
pub struct QueryStatus {
    /// Engine-assigned id.
    pub id: u64,
    /// Current class (snail after a boot).
    pub class: ScanClass,
    /// Whether it was booted to the snail convoy.
    pub booted: bool,
    /// Phase.
    pub phase: QueryPhase,
    /// Chunks whose task finished.
    pub chunks_done: u64,
    /// Chunks to visit.
    pub chunks_total: u64,
    /// Since submission.
    pub elapsed: Duration,
    /// The error, once failed.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Outcome {
    error: Option<StorageError>,
    report: ScanReport,
    finished: bool,
}

/// Shared state of one submitted query.
pub(crate) struct QueryState {
    pub(crate) id: u64,
    pub(crate) query: Arc<dyn ScanQuery>,
    class: Mutex<ScanClass>,
    pub(crate) original_class: ScanClass,
    pub(crate) booted: AtomicBool,
    pub(crate) cancel: CancelToken,
    /// Set when the query failed (stops it like a cancel).
    failed: AtomicBool,
    pub(crate) deadline: Option<Instant>,
    pub(crate) max_memory_bytes: Option<u64>,
    pub(crate) submitted: Instant,
    pub(crate) chunks_total: AtomicU64,
    pub(crate) chunks_done: AtomicU64,
    /// Convoys still holding the query.
    pub(crate) outstanding: AtomicUsize,
    /// Task time (row_group and finish calls) and chunks, for booting.
    pub(crate) task_ns: AtomicU64,
    pub(crate) task_chunks: AtomicU64,
    phase: Mutex<QueryPhase>,
    outcome: Mutex<Outcome>,
    done: Condvar,
}

impl std::fmt::Debug for QueryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryState")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl QueryState {
    pub(crate) fn new(
        id: u64,
        query: Arc<dyn ScanQuery>,
        class: ScanClass,
        options: &QueryOptions,
    ) -> QueryState {
        let submitted = Instant::now();
        QueryState {
            id,
            query,
            class: Mutex::new(class),
            original_class: class,
            booted: AtomicBool::new(false),
            cancel: CancelToken::new(),
            failed: AtomicBool::new(false),
            deadline: options.time_limit.map(|limit| submitted + limit),
            max_memory_bytes: options.max_memory_bytes,
            submitted,
            chunks_total: AtomicU64::new(0),
            chunks_done: AtomicU64::new(0),
            outstanding: AtomicUsize::new(0),
            task_ns: AtomicU64::new(0),
            task_chunks: AtomicU64::new(0),
            phase: Mutex::new(QueryPhase::Queued),
            outcome: Mutex::new(Outcome::default()),
            done: Condvar::new(),
        }
    }

    pub(crate) fn class(&self) -> ScanClass {
        *lock(&self.class)
    }

    pub(crate) fn set_class(&self, class: ScanClass) {
        *lock(&self.class) = class;
    }

    pub(crate) fn set_phase(&self, phase: QueryPhase) {
        *lock(&self.phase) = phase;
    }

    /// Cancelled, failed, or past its deadline (then failed with Limit).
    pub(crate) fn is_stopped(&self) -> bool {
        if self.cancel.is_cancelled() || self.failed.load(Ordering::Acquire) {
            return true;
        }
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            self.fail(StorageError::Limit("the query's time limit".to_string()));
            return true;
        }
        false
    }

    /// Records the first error and stops the query.
    pub(crate) fn fail(&self, err: StorageError) {
        let mut outcome = lock(&self.outcome);
        if outcome.error.is_none() {
            outcome.error = Some(err);
        }
        self.failed.store(true, Ordering::Release);
    }

    pub(crate) fn add_report(&self, report: &ScanReport) {
        let mut outcome = lock(&self.outcome);
        outcome.report.chunks_done += report.chunks_done;
        outcome.report.files_read += report.files_read;
        outcome.report.read.add(report.read);
        outcome.report.row_groups += report.row_groups;
    }

    /// A convoy let go of the query; true for the last one (the caller
    /// then releases its admission slot and calls [`QueryState::finish`]).
    pub(crate) fn detach_one(&self) -> bool {
        self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Marks the query done and wakes waiters.
    pub(crate) fn finish(&self) {
        let mut outcome = lock(&self.outcome);
        if self.cancel.is_cancelled() && outcome.error.is_none() {
            let total = self.chunks_total.load(Ordering::Acquire);
            if self.chunks_done.load(Ordering::Acquire) < total {
                outcome.error = Some(StorageError::Cancelled);
            }
        }
        outcome.finished = true;
        drop(outcome);
        self.set_phase(QueryPhase::Done);
        self.done.notify_all();
    }

    pub(crate) fn is_finished(&self) -> bool {
        lock(&self.outcome).finished
    }

    pub(crate) fn status(&self) -> QueryStatus {
        let error = lock(&self.outcome).error.as_ref().map(ToString::to_string);
        QueryStatus {
            id: self.id,
            class: self.class(),
            booted: self.booted.load(Ordering::Acquire),
            phase: *lock(&self.phase),
            chunks_done: self.chunks_done.load(Ordering::Acquire),
            chunks_total: self.chunks_total.load(Ordering::Acquire),
            elapsed: self.submitted.elapsed(),
            error,
        }
    }

    fn take_result(&self, outcome: &mut Outcome) -> Result<ScanReport> {
        match &outcome.error {
            Some(err) => Err(err.duplicate()),
            None => Ok(outcome.report),
        }
    }
}

/// The submitter's handle on a query: progress, cancel, wait.
#[derive(Debug, Clone)]
pub struct QueryHandle {
    pub(crate) state: Arc<QueryState>,
}

impl QueryHandle {
    /// The engine-assigned id.
    pub fn id(&self) -> u64 {
        self.state.id
    }

    /// Cancels the query: it stops at the next row group, its buffers and
    /// pins are released, [`QueryHandle::wait`] returns `Cancelled`.
    pub fn cancel(&self) {
        self.state.cancel.cancel();
    }

    /// Progress and phase.
    pub fn status(&self) -> QueryStatus {
        self.state.status()
    }

    /// (chunks done, chunks total).
    pub fn progress(&self) -> (u64, u64) {
        (
            self.state.chunks_done.load(Ordering::Acquire),
            self.state.chunks_total.load(Ordering::Acquire),
        )
    }

    /// Whether the query is done.
    pub fn is_done(&self) -> bool {
        self.state.is_finished()
    }

    /// Waits for the end: what the scan did, or the query's first error.
    pub fn wait(&self) -> Result<ScanReport> {
        let mut outcome = lock(&self.state.outcome);
        while !outcome.finished {
            outcome = match self.state.done.wait(outcome) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        self.state.take_result(&mut outcome)
    }

    /// Like [`QueryHandle::wait`] with a timeout; `None` when still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<ScanReport>> {
        let end = Instant::now() + timeout;
        let mut outcome = lock(&self.state.outcome);
        while !outcome.finished {
            let now = Instant::now();
            if now >= end {
                return None;
            }
            outcome = match self.state.done.wait_timeout(outcome, end - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        Some(self.state.take_result(&mut outcome))
    }
}
