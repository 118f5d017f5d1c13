//! CPU priorities of scan work (Linux nice values, per thread).
//!
//! Interactive queries run at the caller's priority; the convoys' threads
//! run at `EngineConfig::convoy_nice` for their lifetime, and the thread
//! that merges a scan query's chunk results runs there while it merges
//! ([`Lowered`]), so that interactive queries get the cores first.

/// The calling thread's kernel id.
fn this_thread() -> libc::id_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// The calling thread's nice value, if it can be read.
fn nice_of_this_thread() -> Option<i32> {
    // getpriority returns -1 both as a value and as an error: clear errno.
    // SAFETY: errno is thread-local; getpriority on our own thread id.
    unsafe {
        *libc::__errno_location() = 0;
        let value = libc::getpriority(libc::PRIO_PROCESS, this_thread());
        (value != -1 || *libc::__errno_location() == 0).then_some(value)
    }
}

fn set_nice_of_this_thread(nice: i32) -> bool {
    // SAFETY: setpriority on our own thread id; failure is reported.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, this_thread(), nice) == 0 }
}

/// Runs this thread at nice value `nice` for good (convoy threads). Best
/// effort: ignored where not permitted.
pub(crate) fn lower_this_thread(nice: i32) {
    if nice > 0 {
        set_nice_of_this_thread(nice);
    }
}

/// Whether this process may take a thread back from `lowered` to `nice`
/// (a lower nice value): root (CAP_SYS_NICE), or RLIMIT_NICE allowing it.
fn may_raise_to(nice: i32) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut limit) } != 0 {
        return false;
    }
    // RLIMIT_NICE n allows nice values down to 20 - n.
    limit.rlim_cur == libc::RLIM_INFINITY || 20 - nice <= limit.rlim_cur as i32
}

/// The calling thread at a higher nice value until dropped. Made only when
/// the thread can be given its priority back (otherwise a server thread
/// would stay slow for every later query): see [`Lowered::enter`].
#[derive(Debug)]
pub struct Lowered {
    previous: i32,
}

impl Lowered {
    /// Lowers the calling thread to `nice` when that is lower than its
    /// priority now and it can be restored; `None` otherwise.
    pub fn enter(nice: i32) -> Option<Lowered> {
        let previous = nice_of_this_thread()?;
        if nice <= previous || !may_raise_to(previous) {
            return None;
        }
        set_nice_of_this_thread(nice).then_some(Lowered { previous })
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        set_nice_of_this_thread(self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_gets_its_priority_back() {
        // In a thread of its own: the test harness's threads stay as they are.
        std::thread::spawn(|| {
            let before = nice_of_this_thread().expect("nice value");
            match Lowered::enter(before + 5) {
                Some(lowered) => {
                    assert_eq!(nice_of_this_thread(), Some(before + 5));
                    drop(lowered);
                    assert_eq!(nice_of_this_thread(), Some(before));
                }
                // Not permitted here (unprivileged, RLIMIT_NICE 0): untouched.
                None => assert_eq!(nice_of_this_thread(), Some(before)),
            }
            // Never "lowered" to a higher priority.
            assert!(Lowered::enter(before).is_none());
        })
        .join()
        .unwrap();
    }
}
