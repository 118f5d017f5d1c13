//! Limits on everything that grows. Writers refuse inputs beyond them;
//! readers reject files claiming more, before allocating.

/// Rows in one row group (one sub-chunk): 16 Mi.
pub const MAX_ROWS_PER_ROW_GROUP: u32 = 1 << 24;
/// Columns in a table.
pub const MAX_COLUMNS: usize = 4096;
/// Row groups (own + overlap) in one chunk file.
pub const MAX_ROW_GROUPS: usize = 1 << 16;
/// Footer length: 64 MiB (checked against the tail before allocating).
pub const MAX_FOOTER_LEN: usize = 64 << 20;
/// Table and column names, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Entries of a dictionary.
pub const MAX_DICT_LEN: usize = 1 << 16;
/// Length of each variable-length min/max statistic; longer values are
/// truncated to bounds.
pub const MAX_STAT_BYTES: usize = 64;
/// Bytes of variable-length data in one decoded block: 1 GiB.
pub const MAX_VAR_DATA_LEN: usize = 1 << 30;
/// Largest expansion of the LZ4 block format (each 255 matched bytes cost at
/// least one byte), used to bound the decompressed length before allocating.
pub(crate) const LZ4_MAX_RATIO: u64 = 255;
