//! Vectorized evaluation over decoded column batches: the compute layer of
//! skyscan. No I/O and no file bytes here; batches come from `engine`.

pub mod scisql;
pub mod spatial;
pub mod take;
