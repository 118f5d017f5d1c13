//! The skyscan server as a library: the TCP server over the embedded
//! engine ([`server`]), asynchronous queries ([`jobs`]), results as Arrow
//! ([`arrow_conv`]). The `skyscan` binary (`main.rs`) puts a command line
//! in front of it; tests and benchmarks start servers in-process.
//!
//! The wire protocol itself (frames, messages) lives in `skyscan-client`
//! (`skyscan_client::proto`), which both ends use; SPEC.md part 4 is its
//! normative description.

pub mod apdb_service;
pub mod arrow_conv;
pub mod jobs;
pub mod outbox;
pub mod server;

pub use server::{Auth, ServerConfig, ServerHandle, start};

/// Writes one line to the server's log (stderr), with a UTC timestamp.
pub fn log(message: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!(
        "{h:02}:{m:02}:{s:02}.{:03} skyscan: {message}",
        now.subsec_millis()
    );
}
