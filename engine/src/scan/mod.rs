//! Running queries over chunk files.
//!
//! * [`run_plain`]: the plain path, chunks in parallel with positional reads
//!   (interactive queries, and the reference the convoys are tested against).
//!
//! `docs/scan-engine.md` describes the design.

mod control;
mod plain;

pub use control::CancelToken;
pub use plain::{PlainOptions, ScanReport, run_plain};
