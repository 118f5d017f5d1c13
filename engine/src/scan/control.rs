//! Cancellation tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared cancel flag. Cloning shares it; [`CancelToken::joined`] makes a
/// token that is cancelled when either of two is.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flags: Vec<Arc<AtomicBool>>,
}

impl CancelToken {
    /// A fresh token.
    pub fn new() -> CancelToken {
        CancelToken {
            flags: vec![Arc::new(AtomicBool::new(false))],
        }
    }

    /// Cancels (every holder of this token sees it).
    pub fn cancel(&self) {
        if let Some(flag) = self.flags.first() {
            flag.store(true, Ordering::Release);
        }
    }

    /// Whether this token or one it was joined with is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.flags.iter().any(|flag| flag.load(Ordering::Acquire))
    }

    /// A token cancelled by `self` or `other`; cancelling it cancels `self`'s flag only.
    pub fn joined(&self, other: &CancelToken) -> CancelToken {
        let mut flags = self.flags.clone();
        flags.extend(other.flags.iter().cloned());
        CancelToken { flags }
    }
}
