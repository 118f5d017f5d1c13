//! The sciSQL functions (BRIEF §3): sky geometry and photometry.

use skyscan_format::ColumnData;

use crate::error::{KernelError, Result};
use crate::expr::Func;

/// Evaluates a sciSQL function over argument columns of `rows` rows.
pub fn call(func: Func, args: &[ColumnData], rows: usize) -> Result<ColumnData> {
    let _ = (args, rows);
    Err(KernelError::Type(format!(
        "function {} is not available yet",
        func.name()
    )))
}
