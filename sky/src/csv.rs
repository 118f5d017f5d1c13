//! The engine of the `skyscan locate` CLI verb: `ra,dec` lines in,
//! `ra,dec,chunkId,subChunkId,overlap` lines out.

use std::io::{BufRead, Read, Write};

use crate::chunker::{Chunker, Location};
use crate::error::SkyError;

/// Longest input line accepted, bytes (Qserv's partitioner allows 64 KiB
/// lines; two coordinates never need more than a few dozen bytes).
pub const MAX_CSV_LINE_BYTES: usize = 64 * 1024;

/// The header line written before any row.
const HEADER: &str = "ra,dec,chunkId,subChunkId,overlap\n";

/// What [`locate_csv`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocateStats {
    /// Input lines read, including blank and header lines.
    pub lines: u64,
    /// Points located (data lines).
    pub points: u64,
    /// Rows written after the header: one per point plus the overlap rows.
    pub rows: u64,
    /// Of those, rows with `overlap = 1`.
    pub overlap_rows: u64,
}

/// Split a data line into its two trimmed fields, or say why not.
fn split_fields(line: &str) -> Result<(&str, &str), String> {
    let mut fields = line.split(',');
    let (Some(ra), Some(dec), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!(
            "expected 2 comma-separated fields (ra,dec), got {}",
            line.split(',').count()
        ));
    };
    Ok((ra.trim(), dec.trim()))
}

/// Read `ra,dec` lines (degrees) from `input`, locate each point with
/// `chunker`, and write to `output` a header `ra,dec,chunkId,subChunkId,overlap`
/// followed by one line per point with `overlap` 0 and, when
/// `with_overlap`, one line with `overlap` 1 per overlap copy (see
/// [`Chunker::overlap_locations`]).
///
/// Blank lines are skipped, fields may carry surrounding whitespace (and
/// lines a trailing `\r`), and the first non-blank line is taken as a header
/// and skipped if its fields are not both numbers. `ra` and `dec` are echoed
/// exactly as their (trimmed) input text. A malformed line, a line longer
/// than [`MAX_CSV_LINE_BYTES`], non-UTF-8 text or an invalid position stops
/// the run with [`SkyError::Csv`] naming the 1-based line number; rows
/// written before it stay written. Wrap `output` in a `BufWriter` for speed.
pub fn locate_csv(
    chunker: &Chunker,
    with_overlap: bool,
    mut input: impl BufRead,
    mut output: impl Write,
) -> Result<LocateStats, SkyError> {
    let mut stats = LocateStats::default();
    let mut raw = Vec::new();
    let mut row = String::new();
    let mut overlaps: Vec<Location> = Vec::new();
    let mut seen_data_or_header = false;
    output.write_all(HEADER.as_bytes())?;
    loop {
        raw.clear();
        let limit = (MAX_CSV_LINE_BYTES + 1) as u64;
        let read = input.by_ref().take(limit).read_until(b'\n', &mut raw)?;
        if read == 0 {
            break;
        }
        stats.lines += 1;
        let line_number = stats.lines;
        let bad = |message: String| SkyError::Csv {
            line: line_number,
            message,
        };
        if raw.last() != Some(&b'\n') && raw.len() > MAX_CSV_LINE_BYTES {
            return Err(bad(format!("line longer than {MAX_CSV_LINE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(&raw).map_err(|_| bad("not valid UTF-8".to_string()))?;
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        let (ra_text, dec_text) = split_fields(line).map_err(&bad)?;
        let parsed = (ra_text.parse::<f64>(), dec_text.parse::<f64>());
        let first = !seen_data_or_header;
        seen_data_or_header = true;
        let (ra, dec) = match parsed {
            (Ok(ra), Ok(dec)) => (ra, dec),
            _ if first => continue, // a header line
            (Err(_), _) => return Err(bad(format!("ra {ra_text:?} is not a number"))),
            (_, Err(_)) => return Err(bad(format!("dec {dec_text:?} is not a number"))),
        };
        let own = chunker
            .locate(ra, dec)
            .map_err(|err| bad(err.to_string()))?;
        stats.points += 1;
        write_row(&mut output, &mut row, ra_text, dec_text, own, false)?;
        stats.rows += 1;
        if with_overlap {
            chunker
                .overlap_locations(ra, dec, &mut overlaps)
                .map_err(|err| bad(err.to_string()))?;
            for &loc in &overlaps {
                write_row(&mut output, &mut row, ra_text, dec_text, loc, true)?;
                stats.rows += 1;
                stats.overlap_rows += 1;
            }
        }
    }
    output.flush()?;
    Ok(stats)
}

/// Format one output row into the reused `row` buffer and write it.
fn write_row(
    output: &mut impl Write,
    row: &mut String,
    ra_text: &str,
    dec_text: &str,
    loc: Location,
    overlap: bool,
) -> Result<(), SkyError> {
    use std::fmt::Write as _;
    row.clear();
    // Writing into a String cannot fail.
    let _ = writeln!(
        row,
        "{ra_text},{dec_text},{},{},{}",
        loc.chunk_id,
        loc.sub_chunk_id,
        u8::from(overlap)
    );
    output.write_all(row.as_bytes())?;
    Ok(())
}
