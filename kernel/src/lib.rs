//! Vectorized evaluation over decoded column batches: the compute layer of
//! skyscan. No I/O and no file bytes here; batches come from `engine`.
//!
//! * [`value`]: types, constants and evaluation results, MySQL semantics.
//! * [`expr`]: bound expressions (what the planner produces).
//! * [`eval`]: evaluation of expressions over a [`batch::Batch`].
//! * [`agg`]: grouped aggregation with mergeable partial states.
//! * [`sort`]: ORDER BY and top-k.
//! * [`build`]: building, converting and appending columns.
//! * [`take`]: gathering rows by index.
//! * [`spatial`], [`scisql`]: sciSQL's sky predicates, angular distance,
//!   photometry, and the near-neighbour join kernel.

pub mod agg;
pub mod batch;
pub mod build;
pub mod error;
pub mod eval;
pub mod expr;
pub mod hash;
pub mod like;
pub mod scisql;
pub mod sort;
pub mod spatial;
pub mod take;
pub mod value;

pub use error::{KernelError, Result};
