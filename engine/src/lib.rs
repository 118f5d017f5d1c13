//! The skyscan engine: catalogs, storage, scans and planning, embeddable in
//! other services. `server` puts a protocol and a command line in front of it.

pub mod apdb;
pub mod catalog;
pub mod chunk_stats;
pub mod director;
pub mod ingest;
pub mod loader;
pub mod partition;
pub mod query;
pub mod scan;
pub mod storage;
pub mod synth;
pub mod table;
