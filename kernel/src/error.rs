//! The kernel's error: what evaluation of a well-formed plan can still hit
//! at run time.

use std::fmt;

/// An evaluation error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KernelError {
    /// An integer result outside the BIGINT range (MySQL raises an error too).
    Overflow(String),
    /// A value or argument a function cannot take.
    InvalidArgument(String),
    /// A limit was reached (result rows or bytes, pairs of a join, groups).
    Limit(String),
    /// A type the operation does not support (normally caught by the planner).
    Type(String),
    /// A bug: an invariant the planner should have guaranteed does not hold.
    Internal(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Overflow(m) => write!(f, "out of range: {m}"),
            KernelError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            KernelError::Limit(m) => write!(f, "limit exceeded: {m}"),
            KernelError::Type(m) => write!(f, "type error: {m}"),
            KernelError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// Result of kernel operations.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
