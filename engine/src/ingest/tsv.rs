//! A streaming reader of delimited text: mysqldump `-T` / `SELECT … INTO
//! OUTFILE` files (tab-separated, `\N` for NULL, backslash escapes) and CSV
//! with a configurable delimiter and quote, plain or gzip-compressed, into
//! batches of [`ColumnData`].
//!
//! Reading is two-phase per record, so a bad record never leaves half a row
//! behind: the record is split and unescaped into one reused buffer, every
//! field is parsed and checked into a reused staging row, and only then is
//! the row appended to the column builders. Nothing is allocated per value;
//! buffers grow to the largest record and are reused.
//!
//! The rules (escapes, NULL, quoting, character sets, the strictness of
//! number parsing) are in `docs/ingest.md`.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use skyscan_format::{Bitmap, ColumnData, PrimitiveColumn, TableSchema, VarColumn};

use super::schema::{SqlTable, ValueKind};
use super::text::{
    IntError, TextEncoding, excerpt, is_date, is_datetime, is_time, latin1_to_utf8, parse_f32,
    parse_f64, parse_i64, parse_year,
};
use super::{IngestError, ParseError, Result};
use crate::table::Table;

/// Largest number of rows in one batch (a batch becomes at most one row group).
pub const MAX_BATCH_ROWS: usize = 1 << 20;
/// Largest value of [`ReaderOptions::batch_bytes`] and
/// [`ReaderOptions::max_record_bytes`]: keeps every variable-length column of
/// a batch under the u32 offsets of [`VarColumn`].
pub const MAX_BATCH_BYTES: usize = 1 << 30;
/// Bad records whose details are kept (more are counted, not kept).
pub const MAX_BAD_ROWS_KEPT: usize = 10_000;
/// Read buffer for files and for decompressed gzip output.
const READ_BUFFER_BYTES: usize = 256 << 10;
/// Bytes of a value quoted in an error message.
const EXCERPT_BYTES: usize = 48;

/// The dialect of a delimited text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFormat {
    /// Field separator.
    pub delimiter: u8,
    /// Escape character (`\` for MySQL); `None` disables escapes.
    pub escape: Option<u8>,
    /// Quote character enclosing fields (`"` for CSV); `None` disables quoting.
    /// A quote only opens a quoted field at the start of a field; inside one,
    /// a doubled quote stands for itself.
    pub quote: Option<u8>,
    /// An unquoted, unescaped field equal to these bytes is NULL (e.g. `NULL`,
    /// or the empty string in RFC 4180 files). Independently, an unquoted
    /// field that is exactly escape + `N` is always NULL when escapes are on.
    pub null_literal: Option<Vec<u8>>,
    /// Accept `\r\n` line ends: a raw (unescaped) `\r` just before a record's
    /// line feed is dropped. Off for mysqldump files, whose binary values may
    /// end in a raw `\r`.
    pub strip_cr: bool,
}

impl TextFormat {
    /// mysqldump `-T` / `SELECT … INTO OUTFILE` defaults (what Qserv's
    /// partitioner reads): tab, escape `\`, no quoting, `\N` is NULL.
    pub fn mysql_tsv() -> TextFormat {
        TextFormat {
            delimiter: b'\t',
            escape: Some(b'\\'),
            quote: None,
            null_literal: None,
            strip_cr: false,
        }
    }

    /// MySQL CSV (`FIELDS TERMINATED BY ',' ENCLOSED BY '"' ESCAPED BY '\\'`):
    /// `\N` and unquoted `NULL` are NULL.
    pub fn mysql_csv(delimiter: u8) -> TextFormat {
        TextFormat {
            delimiter,
            escape: Some(b'\\'),
            quote: Some(b'"'),
            null_literal: Some(b"NULL".to_vec()),
            strip_cr: false,
        }
    }

    /// RFC 4180 CSV: quotes, no escapes, an empty unquoted field is NULL,
    /// `\r\n` line ends accepted.
    pub fn rfc4180(delimiter: u8) -> TextFormat {
        TextFormat {
            delimiter,
            escape: None,
            quote: Some(b'"'),
            null_literal: Some(Vec::new()),
            strip_cr: true,
        }
    }

    fn check(&self) -> Result<(), String> {
        let specials = [Some(self.delimiter), self.escape, self.quote];
        for (index, special) in specials.iter().enumerate() {
            let Some(byte) = special else { continue };
            if *byte == b'\n' || (self.strip_cr && *byte == b'\r') {
                return Err(format!(
                    "{:?} cannot be a delimiter, escape or quote",
                    char::from(*byte)
                ));
            }
            if specials[index + 1..].contains(special) {
                return Err(format!(
                    "{:?} is used for two of delimiter, escape, quote",
                    char::from(*byte)
                ));
            }
        }
        Ok(())
    }
}

impl Default for TextFormat {
    fn default() -> Self {
        TextFormat::mysql_tsv()
    }
}

/// Options of a [`DelimitedReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// The text dialect.
    pub format: TextFormat,
    /// Rows per batch at most (1..=[`MAX_BATCH_ROWS`]).
    pub batch_rows: usize,
    /// Approximate bytes of column data per batch at most (fixed-width values
    /// plus variable-length bytes; 1..=[`MAX_BATCH_BYTES`]). A single larger
    /// record still forms a batch of its own.
    pub batch_bytes: usize,
    /// Largest record, in bytes after unescaping (1..=[`MAX_BATCH_BYTES`]);
    /// a longer one stops the read (the file is probably not in this format).
    pub max_record_bytes: usize,
    /// Bad records (wrong field count, unparsable or out-of-range value, NULL
    /// in a NOT NULL column) to skip and report before failing; 0 fails on the
    /// first. Structural damage (an unterminated quote, a dangling escape at
    /// the end of input, an oversized record) always fails.
    pub max_bad_rows: u64,
    /// Overrides the character set the schema declares for text columns.
    pub text_encoding: Option<TextEncoding>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            format: TextFormat::mysql_tsv(),
            batch_rows: 64 * 1024,
            batch_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
            max_bad_rows: 0,
            text_encoding: None,
        }
    }
}

/// Rows read from a file: one [`ColumnData`] per schema column.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The columns, in schema order, all of `rows` rows.
    pub columns: Vec<ColumnData>,
    /// Number of rows.
    pub rows: usize,
    /// Record number (1-based) of the first row.
    pub first_record: u64,
    /// Physical line (1-based) of the first row.
    pub first_line: u64,
}

impl Batch {
    /// The batch as a [`Table`] under `schema` (checks types and lengths).
    pub fn into_table(self, schema: TableSchema) -> Result<Table, String> {
        Table::new(schema, self.columns)
    }
}

/// Opens a data file for reading, decompressing it when it starts with the
/// gzip magic (0x1f 0x8b); concatenated gzip members are read as one stream.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let source_name = path.display().to_string();
    let file = File::open(path).map_err(|source| IngestError::Io {
        source_name: source_name.clone(),
        source,
    })?;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let head = reader.fill_buf().map_err(|source| IngestError::Io {
        source_name,
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Opens `path` (plain or gzip) as a reader of rows of `table`.
pub fn open_table_file(
    path: &Path,
    table: &SqlTable,
    options: ReaderOptions,
) -> Result<DelimitedReader<Box<dyn BufRead + Send>>> {
    let input = open_input(path)?;
    DelimitedReader::new(input, path.display().to_string(), table, options)
}

/// How one column is read.
#[derive(Debug, Clone)]
struct ColumnPlan {
    name: String,
    kind: ValueKind,
    nullable: bool,
}

/// One field of the current record: `record[start..end]` after unescaping.
#[derive(Debug, Clone, Copy, Default)]
struct Field {
    start: usize,
    end: usize,
    null: bool,
}

/// One parsed value of the current record, waiting to be appended.
#[derive(Debug, Clone, Copy)]
enum Staged {
    Null,
    Int(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// Bytes of `record[start..end]`.
    Record {
        start: usize,
        end: usize,
    },
    /// Bytes of `converted[start..end]` (latin-1 text turned into UTF-8).
    Converted {
        start: usize,
        end: usize,
    },
}

/// Splitter states between bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In an unquoted field (or at the start of any field).
    Unquoted,
    /// After an escape character; `quoted` says where to return.
    Escape { quoted: bool },
    /// Inside a quoted field.
    Quoted,
    /// After a quote inside a quoted field: a doubled quote or the end.
    QuoteInQuoted,
    /// After the closing quote and a `\r` (with `strip_cr`): a line feed must follow.
    QuoteCr,
}

/// Per-field bookkeeping of the splitter.
#[derive(Debug, Clone, Copy, Default)]
struct FieldScan {
    start: usize,
    /// No byte of the field consumed yet (a quote here opens a quoted field).
    fresh: bool,
    quoted: bool,
    escapes: u32,
    /// The field began with escape + `N`.
    escaped_n: bool,
    /// End of the last byte produced by an escape (a `\r` before it is data).
    escaped_end: usize,
}

/// Streams rows of one table from delimited text; see the module docs.
pub struct DelimitedReader<R> {
    input: R,
    source_name: String,
    options: ReaderOptions,
    plans: Vec<ColumnPlan>,
    /// `special[b]`: byte `b` ends a run of plain bytes in an unquoted field.
    special: [bool; 256],
    /// The same inside a quoted field.
    special_quoted: [bool; 256],

    // Splitter state.
    record: Vec<u8>,
    fields: Vec<Field>,
    field_count: usize,
    /// Line feeds consumed so far.
    lines: u64,
    records: u64,
    record_line: u64,
    finished: bool,

    // Staging.
    staged: Vec<Staged>,
    converted: Vec<u8>,
    staged_var_bytes: usize,
    pending: bool,

    // The batch being built.
    builders: Vec<ColumnData>,
    batch_rows: usize,
    batch_var_bytes: usize,
    fixed_row_bytes: usize,
    batch_first: (u64, u64),

    rows_total: u64,
    bad_rows: Vec<ParseError>,
    bad_row_count: u64,
}

impl<R: BufRead> DelimitedReader<R> {
    /// A reader of `input` (named `source_name` in errors) holding rows of
    /// `table`, one field per column in schema order.
    pub fn new(
        input: R,
        source_name: impl Into<String>,
        table: &SqlTable,
        options: ReaderOptions,
    ) -> Result<DelimitedReader<R>> {
        options
            .format
            .check()
            .map_err(IngestError::InvalidOptions)?;
        if !(1..=MAX_BATCH_ROWS).contains(&options.batch_rows) {
            return Err(IngestError::InvalidOptions(format!(
                "batch_rows {} outside 1..={MAX_BATCH_ROWS}",
                options.batch_rows
            )));
        }
        for (what, value) in [
            ("batch_bytes", options.batch_bytes),
            ("max_record_bytes", options.max_record_bytes),
        ] {
            if !(1..=MAX_BATCH_BYTES).contains(&value) {
                return Err(IngestError::InvalidOptions(format!(
                    "{what} {value} outside 1..={MAX_BATCH_BYTES}"
                )));
            }
        }
        if table.columns.is_empty() {
            return Err(IngestError::InvalidOptions(format!(
                "table `{}` has no columns",
                table.name()
            )));
        }
        let plans: Vec<ColumnPlan> = table
            .columns
            .iter()
            .map(|column| ColumnPlan {
                name: column.name.clone(),
                kind: match (column.kind, options.text_encoding) {
                    (ValueKind::Text { .. }, Some(encoding)) => ValueKind::Text { encoding },
                    (kind, _) => kind,
                },
                nullable: column.nullable,
            })
            .collect();
        let fixed_row_bytes = plans
            .iter()
            .map(|plan| {
                let column_type = plan.kind.column_type();
                // Var-length columns cost a 4-byte offset per row; bools ~1 bit.
                column_type
                    .fixed_width()
                    .unwrap_or(if column_type.is_var_len() { 4 } else { 1 })
            })
            .sum();
        let mut special = [false; 256];
        special[usize::from(b'\n')] = true;
        special[usize::from(options.format.delimiter)] = true;
        let mut special_quoted = [false; 256];
        if let Some(escape) = options.format.escape {
            special[usize::from(escape)] = true;
            special_quoted[usize::from(escape)] = true;
        }
        if let Some(quote) = options.format.quote {
            special_quoted[usize::from(quote)] = true;
        }
        let builders = plans
            .iter()
            .map(|plan| ColumnData::empty(plan.kind.column_type()))
            .collect();
        Ok(DelimitedReader {
            input,
            source_name: source_name.into(),
            staged: vec![Staged::Null; plans.len()],
            plans,
            special,
            special_quoted,
            record: Vec::new(),
            fields: Vec::new(),
            field_count: 0,
            lines: 0,
            records: 0,
            record_line: 0,
            finished: false,
            converted: Vec::new(),
            staged_var_bytes: 0,
            pending: false,
            builders,
            batch_rows: 0,
            batch_var_bytes: 0,
            fixed_row_bytes,
            batch_first: (0, 0),
            options,
            rows_total: 0,
            bad_rows: Vec::new(),
            bad_row_count: 0,
        })
    }

    /// The next batch of rows, or `None` at the end of the input. After an
    /// error the reader is finished.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        let result = self.fill_batch();
        if result.is_err() {
            self.finished = true;
            self.pending = false;
        }
        result
    }

    /// Rows returned so far.
    pub fn rows_read(&self) -> u64 {
        self.rows_total
    }

    /// Records read so far, good and bad.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Physical lines consumed so far.
    pub fn lines_read(&self) -> u64 {
        self.lines
    }

    /// Bad records skipped so far (with [`ReaderOptions::max_bad_rows`] > 0).
    pub fn bad_row_count(&self) -> u64 {
        self.bad_row_count
    }

    /// Details of the first [`MAX_BAD_ROWS_KEPT`] skipped records.
    pub fn bad_rows(&self) -> &[ParseError] {
        &self.bad_rows
    }

    fn fill_batch(&mut self) -> Result<Option<Batch>> {
        if self.pending {
            self.pending = false;
            self.commit();
        }
        while self.batch_rows < self.options.batch_rows {
            if self.finished || !self.read_record()? {
                self.finished = true;
                break;
            }
            if let Err(error) = self.stage() {
                self.bad_row(error)?;
                continue;
            }
            let batch_bytes = self.batch_rows * self.fixed_row_bytes + self.batch_var_bytes;
            let record_bytes = self.fixed_row_bytes + self.staged_var_bytes;
            if self.batch_rows > 0 && batch_bytes + record_bytes > self.options.batch_bytes {
                self.pending = true;
                break;
            }
            self.commit();
        }
        Ok((self.batch_rows > 0).then(|| self.take_batch()))
    }

    fn take_batch(&mut self) -> Batch {
        let fresh = self
            .plans
            .iter()
            .map(|plan| ColumnData::empty(plan.kind.column_type()))
            .collect();
        let columns = std::mem::replace(&mut self.builders, fresh);
        let batch = Batch {
            columns,
            rows: self.batch_rows,
            first_record: self.batch_first.1,
            first_line: self.batch_first.0,
        };
        self.rows_total += self.batch_rows as u64;
        self.batch_rows = 0;
        self.batch_var_bytes = 0;
        batch
    }

    fn bad_row(&mut self, error: ParseError) -> Result<()> {
        self.bad_row_count += 1;
        if self.bad_row_count > self.options.max_bad_rows {
            return Err(if self.options.max_bad_rows == 0 {
                IngestError::Parse(Box::new(error))
            } else {
                IngestError::TooManyBadRows {
                    limit: self.options.max_bad_rows,
                    last: Box::new(error),
                }
            });
        }
        if self.bad_rows.len() < MAX_BAD_ROWS_KEPT {
            self.bad_rows.push(error);
        }
        Ok(())
    }

    fn parse_error(&self, column: Option<usize>, message: String) -> ParseError {
        ParseError {
            source_name: self.source_name.clone(),
            line: self.record_line,
            record: self.records,
            column: column.map(|index| {
                (
                    index,
                    self.plans
                        .get(index)
                        .map(|plan| plan.name.clone())
                        .unwrap_or_default(),
                )
            }),
            message,
        }
    }

    fn fatal(&self, message: String) -> IngestError {
        IngestError::Parse(Box::new(self.parse_error(None, message)))
    }

    /// Reads the next record into `record`/`fields`; false at the end of input.
    fn read_record(&mut self) -> Result<bool> {
        self.record.clear();
        self.fields.clear();
        self.field_count = 0;
        self.record_line = self.lines + 1;
        let format_quote = self.options.format.quote;
        let delimiter = self.options.format.delimiter;
        let strip_cr = self.options.format.strip_cr;
        let mut state = State::Unquoted;
        let mut field = FieldScan {
            fresh: true,
            ..FieldScan::default()
        };
        let mut started = false;
        loop {
            let buffer = match self.input.fill_buf() {
                Ok(buffer) => buffer,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(IngestError::from_read(&self.source_name, error)),
            };
            if buffer.is_empty() {
                if !started {
                    return Ok(false);
                }
                match state {
                    State::Unquoted | State::QuoteInQuoted => {
                        self.records += 1;
                        end_field(
                            &mut self.fields,
                            &mut self.field_count,
                            &self.record,
                            &field,
                            &self.options.format,
                            self.plans.len(),
                        );
                        return Ok(true);
                    }
                    State::Escape { .. } => {
                        self.records += 1;
                        return Err(self.fatal("the input ends inside an escape sequence".into()));
                    }
                    State::Quoted | State::QuoteCr => {
                        self.records += 1;
                        return Err(self.fatal("the input ends inside a quoted field".into()));
                    }
                }
            }
            started = true;
            let mut position = 0;
            let mut record_done = false;
            let mut bad_quote = None;
            while position < buffer.len() {
                match state {
                    State::Unquoted => {
                        if field.fresh && Some(buffer[position]) == format_quote {
                            field.fresh = false;
                            field.quoted = true;
                            state = State::Quoted;
                            position += 1;
                            continue;
                        }
                        // A run of plain bytes, copied at once.
                        let run = buffer[position..]
                            .iter()
                            .position(|&byte| self.special[usize::from(byte)])
                            .unwrap_or(buffer.len() - position);
                        if run > 0 {
                            self.record
                                .extend_from_slice(&buffer[position..position + run]);
                            field.fresh = false;
                            position += run;
                            continue;
                        }
                        let byte = buffer[position];
                        position += 1;
                        if byte == delimiter {
                            end_field(
                                &mut self.fields,
                                &mut self.field_count,
                                &self.record,
                                &field,
                                &self.options.format,
                                self.plans.len(),
                            );
                            field = FieldScan {
                                start: self.record.len(),
                                fresh: true,
                                escaped_end: self.record.len(),
                                ..FieldScan::default()
                            };
                        } else if byte == b'\n' {
                            self.lines += 1;
                            if strip_cr
                                && !field.quoted
                                && self.record.len() > field.escaped_end.max(field.start)
                                && self.record.last() == Some(&b'\r')
                            {
                                self.record.pop();
                            }
                            end_field(
                                &mut self.fields,
                                &mut self.field_count,
                                &self.record,
                                &field,
                                &self.options.format,
                                self.plans.len(),
                            );
                            record_done = true;
                            break;
                        } else {
                            // The escape character.
                            field.fresh = false;
                            state = State::Escape { quoted: false };
                        }
                    }
                    State::Escape { quoted } => {
                        let byte = buffer[position];
                        position += 1;
                        if byte == b'\n' {
                            self.lines += 1;
                        }
                        if byte == b'N'
                            && !quoted
                            && field.escapes == 0
                            && self.record.len() == field.start
                        {
                            field.escaped_n = true;
                        }
                        field.escapes += 1;
                        self.record.push(unescape(byte));
                        field.escaped_end = self.record.len();
                        state = if quoted {
                            State::Quoted
                        } else {
                            State::Unquoted
                        };
                    }
                    State::Quoted => {
                        let run = buffer[position..]
                            .iter()
                            .position(|&byte| self.special_quoted[usize::from(byte)])
                            .unwrap_or(buffer.len() - position);
                        if run > 0 {
                            let bytes = &buffer[position..position + run];
                            self.lines +=
                                bytes.iter().filter(|&&byte| byte == b'\n').count() as u64;
                            self.record.extend_from_slice(bytes);
                            position += run;
                            continue;
                        }
                        let byte = buffer[position];
                        position += 1;
                        state = if Some(byte) == format_quote {
                            State::QuoteInQuoted
                        } else {
                            State::Escape { quoted: true }
                        };
                    }
                    State::QuoteInQuoted => {
                        let byte = buffer[position];
                        position += 1;
                        if Some(byte) == format_quote {
                            self.record.push(byte);
                            state = State::Quoted;
                        } else if byte == delimiter {
                            end_field(
                                &mut self.fields,
                                &mut self.field_count,
                                &self.record,
                                &field,
                                &self.options.format,
                                self.plans.len(),
                            );
                            field = FieldScan {
                                start: self.record.len(),
                                fresh: true,
                                escaped_end: self.record.len(),
                                ..FieldScan::default()
                            };
                            state = State::Unquoted;
                        } else if byte == b'\n' {
                            self.lines += 1;
                            end_field(
                                &mut self.fields,
                                &mut self.field_count,
                                &self.record,
                                &field,
                                &self.options.format,
                                self.plans.len(),
                            );
                            record_done = true;
                            break;
                        } else if byte == b'\r' && strip_cr {
                            state = State::QuoteCr;
                        } else {
                            bad_quote = Some(byte);
                            break;
                        }
                    }
                    State::QuoteCr => {
                        let byte = buffer[position];
                        position += 1;
                        if byte == b'\n' {
                            self.lines += 1;
                            end_field(
                                &mut self.fields,
                                &mut self.field_count,
                                &self.record,
                                &field,
                                &self.options.format,
                                self.plans.len(),
                            );
                            record_done = true;
                            break;
                        }
                        bad_quote = Some(byte);
                        break;
                    }
                }
            }
            self.input.consume(position);
            if let Some(byte) = bad_quote {
                self.records += 1;
                return Err(self.fatal(format!(
                    "{:?} after the closing quote of field {} (expected a delimiter or a line end)",
                    char::from(byte),
                    self.field_count + 1
                )));
            }
            if self.record.len() > self.options.max_record_bytes {
                self.records += 1;
                return Err(IngestError::Limit {
                    source_name: self.source_name.clone(),
                    line: self.record_line,
                    message: format!(
                        "record longer than {} bytes (max_record_bytes); is the format right?",
                        self.options.max_record_bytes
                    ),
                });
            }
            if record_done {
                self.records += 1;
                return Ok(true);
            }
        }
    }

    /// Parses every field of the current record into `staged`.
    fn stage(&mut self) -> Result<(), ParseError> {
        if self.field_count != self.plans.len() {
            return Err(self.parse_error(
                None,
                format!(
                    "{} fields; the table has {} columns",
                    self.field_count,
                    self.plans.len()
                ),
            ));
        }
        self.converted.clear();
        self.staged_var_bytes = 0;
        for index in 0..self.plans.len() {
            let field = self.fields[index];
            let staged = if field.null {
                if !self.plans[index].nullable {
                    return Err(self.parse_error(Some(index), "NULL in a NOT NULL column".into()));
                }
                Staged::Null
            } else {
                self.stage_value(index, field)
                    .map_err(|message| self.parse_error(Some(index), message))?
            };
            self.staged[index] = staged;
        }
        Ok(())
    }

    fn stage_value(&mut self, index: usize, field: Field) -> Result<Staged, String> {
        let bytes = &self.record[field.start..field.end];
        let kind = self.plans[index].kind;
        let value = match kind {
            ValueKind::Int {
                column_type,
                min,
                max,
            } => {
                let value = parse_i64(bytes).map_err(|error| match error {
                    IntError::Syntax => {
                        format!("`{}` is not an integer", excerpt(bytes, EXCERPT_BYTES))
                    }
                    IntError::Overflow => {
                        format!(
                            "`{}` is out of range for {column_type:?} ({min}..={max})",
                            excerpt(bytes, EXCERPT_BYTES)
                        )
                    }
                })?;
                if value < min || value > max {
                    return Err(format!(
                        "{value} is out of range for the column's type ({min}..={max})"
                    ));
                }
                Staged::Int(value)
            }
            ValueKind::Year => Staged::Int(i64::from(parse_year(bytes).ok_or_else(|| {
                format!(
                    "`{}` is not a YEAR (0 or 1901..=2155)",
                    excerpt(bytes, EXCERPT_BYTES)
                )
            })?)),
            ValueKind::Float32 => Staged::F32(parse_f32(bytes).ok_or_else(|| {
                format!(
                    "`{}` is not a FLOAT (a finite decimal number)",
                    excerpt(bytes, EXCERPT_BYTES)
                )
            })?),
            ValueKind::Float64 | ValueKind::Decimal { .. } => {
                Staged::F64(parse_f64(bytes).ok_or_else(|| {
                    format!(
                        "`{}` is not a finite decimal number",
                        excerpt(bytes, EXCERPT_BYTES)
                    )
                })?)
            }
            ValueKind::Bool => Staged::Bool(match bytes {
                b"0" | b"\0" => false,
                b"1" | b"\x01" => true,
                _ => {
                    return Err(format!(
                        "`{}` is not a boolean (0 or 1)",
                        excerpt(bytes, EXCERPT_BYTES)
                    ));
                }
            }),
            ValueKind::Text { encoding } => {
                self.staged_var_bytes += bytes.len();
                if bytes.is_ascii() {
                    Staged::Record {
                        start: field.start,
                        end: field.end,
                    }
                } else {
                    match encoding {
                        TextEncoding::Utf8 => {
                            if let Err(error) = std::str::from_utf8(bytes) {
                                return Err(format!(
                                    "invalid UTF-8 at byte {} of `{}` (set the text encoding to latin1 if the file is latin-1)",
                                    error.valid_up_to(),
                                    excerpt(bytes, EXCERPT_BYTES)
                                ));
                            }
                            Staged::Record {
                                start: field.start,
                                end: field.end,
                            }
                        }
                        TextEncoding::Latin1 => {
                            let start = self.converted.len();
                            latin1_to_utf8(bytes, &mut self.converted);
                            self.staged_var_bytes += self.converted.len() - start - bytes.len();
                            Staged::Converted {
                                start,
                                end: self.converted.len(),
                            }
                        }
                    }
                }
            }
            ValueKind::Binary => {
                self.staged_var_bytes += bytes.len();
                Staged::Record {
                    start: field.start,
                    end: field.end,
                }
            }
            ValueKind::Date | ValueKind::DateTime | ValueKind::Time => {
                let (valid, form) = match kind {
                    ValueKind::Date => (is_date(bytes), "YYYY-MM-DD"),
                    ValueKind::DateTime => (is_datetime(bytes), "YYYY-MM-DD HH:MM:SS[.ffffff]"),
                    _ => (is_time(bytes), "[-]HH:MM:SS[.ffffff]"),
                };
                if !valid {
                    return Err(format!(
                        "`{}` is not of the form {form}",
                        excerpt(bytes, EXCERPT_BYTES)
                    ));
                }
                self.staged_var_bytes += bytes.len();
                Staged::Record {
                    start: field.start,
                    end: field.end,
                }
            }
        };
        Ok(value)
    }

    /// Appends the staged record to the builders.
    fn commit(&mut self) {
        if self.batch_rows == 0 {
            self.batch_first = (self.record_line, self.records);
        }
        let row = self.batch_rows;
        for (builder, staged) in self.builders.iter_mut().zip(&self.staged) {
            match *staged {
                Staged::Null => push_null(builder, row),
                Staged::Int(value) => push_int(builder, value),
                Staged::F32(value) => {
                    if let ColumnData::F32(column) = builder {
                        push_primitive(column, value);
                    }
                }
                Staged::F64(value) => {
                    if let ColumnData::F64(column) = builder {
                        push_primitive(column, value);
                    }
                }
                Staged::Bool(value) => {
                    if let ColumnData::Bool(column) = builder {
                        column.values.push(value);
                        if let Some(validity) = &mut column.validity {
                            validity.push(true);
                        }
                    }
                }
                Staged::Record { start, end } => push_bytes(builder, &self.record[start..end]),
                Staged::Converted { start, end } => {
                    push_bytes(builder, &self.converted[start..end]);
                }
            }
        }
        self.batch_rows += 1;
        self.batch_var_bytes += self.staged_var_bytes;
        debug_assert!(
            self.builders
                .iter()
                .all(|builder| builder.len() == self.batch_rows)
        );
    }
}

impl<R: BufRead> Iterator for DelimitedReader<R> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished && !self.pending && self.batch_rows == 0 {
            return None;
        }
        self.next_batch().transpose()
    }
}

/// The byte an escape sequence stands for (MySQL `LOAD DATA`: `\0 \b \n \r
/// \t \Z`; any other escaped byte, including the escape itself, a tab, a line
/// feed or `N` inside a value, stands for itself).
fn unescape(byte: u8) -> u8 {
    match byte {
        b'0' => 0,
        b'b' => 0x08,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'Z' => 0x1a,
        other => other,
    }
}

/// Closes the field described by `scan` (its bytes end at `record.len()`).
/// At most `keep + 1` fields are stored; more are only counted, so a record
/// of stray delimiters cannot grow the field list without bound.
#[inline]
fn end_field(
    fields: &mut Vec<Field>,
    field_count: &mut usize,
    record: &[u8],
    scan: &FieldScan,
    format: &TextFormat,
    keep: usize,
) {
    let end = record.len();
    let bytes = &record[scan.start..end];
    let escaped_null = scan.escaped_n && scan.escapes == 1 && !scan.quoted && bytes.len() == 1;
    let literal_null = !scan.quoted
        && scan.escapes == 0
        && format
            .null_literal
            .as_deref()
            .is_some_and(|literal| literal == bytes);
    *field_count += 1;
    if fields.len() <= keep {
        fields.push(Field {
            start: scan.start,
            end,
            null: escaped_null || literal_null,
        });
    }
}

fn push_primitive<T: Copy + Default>(column: &mut PrimitiveColumn<T>, value: T) {
    column.values.push(value);
    if let Some(validity) = &mut column.validity {
        validity.push(true);
    }
}

fn push_int(builder: &mut ColumnData, value: i64) {
    // Values were range-checked against the column's type when staged.
    match builder {
        ColumnData::I8(column) => push_primitive(column, i8::try_from(value).unwrap_or_default()),
        ColumnData::I16(column) => push_primitive(column, i16::try_from(value).unwrap_or_default()),
        ColumnData::I32(column) => push_primitive(column, i32::try_from(value).unwrap_or_default()),
        ColumnData::I64(column) => push_primitive(column, value),
        _ => debug_assert!(false, "integer staged for a non-integer column"),
    }
}

fn push_bytes(builder: &mut ColumnData, bytes: &[u8]) {
    match builder {
        ColumnData::Utf8(column) | ColumnData::Binary(column) => column.push(Some(bytes)),
        _ => debug_assert!(false, "bytes staged for a fixed-width column"),
    }
}

fn first_null(validity: &mut Option<Bitmap>, row: usize) -> &mut Bitmap {
    validity.get_or_insert_with(|| Bitmap::new_set(row))
}

fn push_null(builder: &mut ColumnData, row: usize) {
    fn primitive<T: Copy + Default>(column: &mut PrimitiveColumn<T>, row: usize) {
        first_null(&mut column.validity, row).push(false);
        column.values.push(T::default());
    }
    match builder {
        ColumnData::Bool(column) => {
            first_null(&mut column.validity, row).push(false);
            column.values.push(false);
        }
        ColumnData::I8(column) => primitive(column, row),
        ColumnData::I16(column) => primitive(column, row),
        ColumnData::I32(column) => primitive(column, row),
        ColumnData::I64(column) => primitive(column, row),
        ColumnData::F32(column) => primitive(column, row),
        ColumnData::F64(column) => primitive(column, row),
        ColumnData::Utf8(column) | ColumnData::Binary(column) => push_var_null(column),
    }
}

fn push_var_null(column: &mut VarColumn) {
    column.push(None);
}
