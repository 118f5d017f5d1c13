//! Running queries over chunk files.
//!
//! * [`run_plain`]: the plain path, chunks in parallel with positional reads
//!   (interactive queries, and the reference the convoys are tested against).
//! * [`ScanEngine`]: shared scans. One convoy (elevator) per data directory
//!   and lane; each chunk's blocks read and decoded once for every attached
//!   query; classes by scan rating with admission limits; interactive
//!   queries on the plain path ahead of the convoys; cancel, limits, status.
//!
//! `docs/scan-engine.md` describes the design.

mod control;
mod convoy;
mod engine;
mod plain;
mod priority;
mod query;

pub use control::CancelToken;
pub use convoy::{ConvoyStatus, Lane};
pub use engine::{EngineConfig, EngineStatus, ScanEngine};
pub use plain::{PlainOptions, ScanReport, run_plain};
pub use priority::Lowered;
pub(crate) use priority::lower_this_thread;
pub use query::{QueryHandle, QueryOptions, QueryPhase, QueryStatus, ScanClass};
