//! What a set of chunk files costs and how fast it decodes, column by column.
//!
//! Used by `skyscan demo` and by the format benchmark, so both report the
//! same numbers in the same way. Decode speed is measured on one thread,
//! over files already in memory, and counts OUTPUT bytes (the size of the
//! decoded values as plain arrays: see [`column_raw_bytes`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skyscan_format::{BlockDecoder, ChunkFile, ColumnData, ColumnType, Compression, Encoding};

use crate::table::column_raw_bytes;

/// Size and decode speed of one column over a set of chunk files.
#[derive(Debug, Clone)]
pub struct ColumnStats {
    /// Column name.
    pub name: String,
    /// Column type.
    pub column_type: ColumnType,
    /// Rows decoded per pass (own and overlap row groups).
    pub rows: u64,
    /// Bytes of the decoded values as plain arrays (the decoder's output).
    pub raw_bytes: u64,
    /// Bytes of the encoded blocks on disk.
    pub encoded_bytes: u64,
    /// Encoded bytes per (encoding, compression) pair, to show what the writer chose.
    pub encodings: BTreeMap<(u8, u8), u64>,
    /// Blocks of this column.
    pub blocks: u64,
    /// Time of one decode pass over all blocks (the best of the passes run).
    pub decode_time: Duration,
}

impl ColumnStats {
    /// Encoded bytes / raw bytes.
    pub fn ratio(&self) -> f64 {
        self.encoded_bytes as f64 / self.raw_bytes.max(1) as f64
    }

    /// Decoded output bytes per second on one core.
    pub fn decode_bytes_per_s(&self) -> f64 {
        self.raw_bytes as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }

    /// The encoding that holds most of the column's bytes, as "encoding+compression".
    pub fn main_encoding(&self) -> String {
        self.encodings
            .iter()
            .max_by_key(|(_, bytes)| **bytes)
            .map(|(&(encoding, compression), _)| encoding_label(encoding, compression))
            .unwrap_or_else(|| "-".to_string())
    }
}

/// A short label such as `delta` or `shuffle+lz4` for an encoding id pair.
pub fn encoding_label(encoding: u8, compression: u8) -> String {
    let name = match Encoding::from_id(encoding) {
        Some(Encoding::Plain) => "plain".to_string(),
        Some(Encoding::ForBitpack) => "for".to_string(),
        Some(Encoding::DeltaBitpack) => "delta".to_string(),
        Some(Encoding::Dictionary) => "dict".to_string(),
        Some(Encoding::ByteShuffle) => "shuffle".to_string(),
        Some(Encoding::Alp) => "alp".to_string(),
        Some(Encoding::FloatFor) => "float-for".to_string(),
        Some(other) => format!("{other:?}").to_lowercase(),
        None => format!("id {encoding}"),
    };
    match Compression::from_id(compression) {
        Some(Compression::Lz4) => format!("{name}+lz4"),
        _ => name.to_string(),
    }
}

/// Measures every column of `files` (all of one table): sizes from the
/// footers, and decode time as the best of passes repeated until each column
/// has been decoded for at least `min_time` in total (at least one pass).
pub fn measure_columns(files: &[Vec<u8>], min_time: Duration) -> Result<Vec<ColumnStats>, String> {
    let parsed: Vec<ChunkFile<'_>> = files
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            ChunkFile::from_bytes(bytes).map_err(|e| format!("file {index}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let Some(first) = parsed.first() else {
        return Ok(Vec::new());
    };
    let schema = first.footer().schema().clone();
    let mut stats: Vec<ColumnStats> = Vec::with_capacity(schema.columns.len());
    let mut decoder = BlockDecoder::new();
    for (column_index, column) in schema.columns.iter().enumerate() {
        let mut entry = ColumnStats {
            name: column.name.clone(),
            column_type: column.column_type,
            rows: 0,
            raw_bytes: 0,
            encoded_bytes: 0,
            encodings: BTreeMap::new(),
            blocks: 0,
            decode_time: Duration::MAX,
        };
        for file in &parsed {
            if file.footer().schema() != &schema {
                return Err("files of different schemas in one measurement".to_string());
            }
            for row_group in 0..file.footer().row_groups().len() {
                let block = file
                    .footer()
                    .block(row_group, column_index)
                    .map_err(|e| e.to_string())?;
                entry.encoded_bytes += block.meta.len as u64;
                entry.blocks += 1;
                entry.rows += block.meta.row_count as u64;
                *entry
                    .encodings
                    .entry((block.meta.encoding.id(), block.meta.compression.id()))
                    .or_default() += block.meta.len as u64;
            }
        }
        let mut out = ColumnData::empty(column.column_type);
        let mut spent = Duration::ZERO;
        while spent < min_time || entry.decode_time == Duration::MAX {
            let start = Instant::now();
            let mut raw = 0u64;
            for file in &parsed {
                for row_group in 0..file.footer().row_groups().len() {
                    let block = file
                        .footer()
                        .block(row_group, column_index)
                        .map_err(|e| e.to_string())?;
                    let bytes = file
                        .block_bytes(row_group, column_index)
                        .map_err(|e| e.to_string())?;
                    decoder
                        .decode_into(&block, bytes, &mut out)
                        .map_err(|e| e.to_string())?;
                    raw += column_raw_bytes(&out);
                }
            }
            let pass = start.elapsed();
            spent += pass;
            entry.decode_time = entry.decode_time.min(pass);
            entry.raw_bytes = raw;
        }
        stats.push(entry);
    }
    Ok(stats)
}
