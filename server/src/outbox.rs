//! A connection's outgoing frames: a queue bounded in bytes between the
//! producers (queries, replies) and the one thread writing the socket.
//!
//! A result producer waits while the queue is full, so a client that reads
//! slowly slows its own query down instead of making the server buffer its
//! result; after `slow_reader_timeout` of no progress the query fails. Small
//! control frames (errors, `END`, replies) are always admitted so a request
//! can always be answered; progress frames are dropped when the queue is
//! full (they are advisory).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use skyscan_engine::scan::CancelToken;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closed (the client left or the writer failed).
    Closed,
    /// The client read nothing for the whole timeout.
    SlowReader,
    /// The producer's query was cancelled while it waited.
    Cancelled,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    closed: bool,
}

/// The bounded queue of one connection.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity_bytes: usize,
}

impl Outbox {
    /// A queue holding at most `capacity_bytes` of result frames.
    pub fn new(capacity_bytes: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity_bytes: capacity_bytes.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues a result frame, waiting while the queue is full (a frame
    /// larger than the capacity is admitted into an empty queue).
    pub fn push(
        &self,
        frame: Vec<u8>,
        slow_reader_timeout: Duration,
        cancel: &CancelToken,
    ) -> Result<(), PushError> {
        self.push_parts(vec![frame], slow_reader_timeout, cancel)
    }

    /// Queues one frame made of several byte vectors (kept together, in
    /// order, so the body of a batch need not be copied behind its head).
    pub fn push_parts(
        &self,
        parts: Vec<Vec<u8>>,
        slow_reader_timeout: Duration,
        cancel: &CancelToken,
    ) -> Result<(), PushError> {
        let len: usize = parts.iter().map(Vec::len).sum();
        let mut state = self.lock();
        let mut last_progress = Instant::now();
        let mut seen_bytes = state.bytes;
        loop {
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.bytes == 0 || state.bytes + len <= self.capacity_bytes {
                break;
            }
            if cancel.is_cancelled() {
                return Err(PushError::Cancelled);
            }
            if state.bytes < seen_bytes {
                // The writer took frames: the reader is alive.
                last_progress = Instant::now();
            }
            seen_bytes = state.bytes;
            if last_progress.elapsed() >= slow_reader_timeout {
                return Err(PushError::SlowReader);
            }
            let wait = Duration::from_millis(100);
            state = match self.not_full.wait_timeout(state, wait) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        state.bytes += len;
        state.frames.extend(parts);
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Queues a control frame without waiting (errors, `END`, replies).
    pub fn push_control(&self, frame: Vec<u8>) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        state.bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Queues an advisory frame if there is room; drops it otherwise.
    pub fn try_push(&self, frame: Vec<u8>) -> bool {
        let mut state = self.lock();
        if state.closed || state.bytes + frame.len() > self.capacity_bytes {
            return false;
        }
        state.bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        self.not_empty.notify_one();
        true
    }

    /// Takes every queued frame, waiting up to `wait` for one. `None` when
    /// the queue is closed and empty.
    pub fn pop_all(&self, wait: Duration) -> Option<Vec<Vec<u8>>> {
        let mut state = self.lock();
        if state.frames.is_empty() && !state.closed {
            state = match self.not_empty.wait_timeout(state, wait) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if state.frames.is_empty() && state.closed {
            return None;
        }
        let frames: Vec<Vec<u8>> = state.frames.drain(..).collect();
        state.bytes = 0;
        drop(state);
        self.not_full.notify_all();
        Some(frames)
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Closes the queue: producers get [`PushError::Closed`], the writer
    /// drains what is queued and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Whether [`Outbox::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_full_queue_makes_the_producer_wait_then_time_out() {
        let outbox = Outbox::new(10);
        let cancel = CancelToken::new();
        outbox
            .push(vec![0; 8], Duration::from_secs(1), &cancel)
            .unwrap();
        let started = Instant::now();
        let err = outbox
            .push(vec![0; 8], Duration::from_millis(300), &cancel)
            .unwrap_err();
        assert_eq!(err, PushError::SlowReader);
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Control frames pass a full queue; advisory ones are dropped.
        outbox.push_control(vec![1; 4]).unwrap();
        assert!(!outbox.try_push(vec![2; 4]));
        assert_eq!(outbox.queued_bytes(), 12);
    }

    #[test]
    fn a_reader_unblocks_the_producer() {
        let outbox = Arc::new(Outbox::new(10));
        let cancel = CancelToken::new();
        outbox
            .push(vec![0; 8], Duration::from_secs(5), &cancel)
            .unwrap();
        let reader = {
            let outbox = Arc::clone(&outbox);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let mut total = 0;
                while total < 16 {
                    total += outbox
                        .pop_all(Duration::from_millis(50))
                        .unwrap()
                        .iter()
                        .map(Vec::len)
                        .sum::<usize>();
                }
                total
            })
        };
        outbox
            .push(vec![0; 8], Duration::from_secs(5), &cancel)
            .unwrap();
        assert_eq!(reader.join().unwrap(), 16);
        outbox.close();
        assert_eq!(
            outbox.push(vec![0; 1], Duration::from_secs(1), &cancel),
            Err(PushError::Closed)
        );
        assert!(outbox.pop_all(Duration::from_millis(1)).is_none());
    }

    #[test]
    fn cancel_releases_a_waiting_producer() {
        let outbox = Outbox::new(4);
        let cancel = CancelToken::new();
        outbox
            .push(vec![0; 4], Duration::from_secs(5), &cancel)
            .unwrap();
        cancel.cancel();
        assert_eq!(
            outbox.push(vec![0; 4], Duration::from_secs(5), &cancel),
            Err(PushError::Cancelled)
        );
    }
}
