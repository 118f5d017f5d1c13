//! Writing results on the command line: `table`, `csv`, `tsv`, `json`
//! (one object per row, JSON Lines) and `parquet`, batch by batch.

use std::io::Write;

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType as ArrowType, SchemaRef};
use clap::ValueEnum;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with a header, for people.
    Table,
    /// Comma-separated, RFC 4180 quoting, header line.
    Csv,
    /// Tab-separated, header line (tabs and newlines in values escaped).
    Tsv,
    /// One JSON object per row (JSON Lines).
    Json,
    /// Apache Parquet (snappy).
    Parquet,
}

/// Rows of a table whose widths are taken from the first rows.
const TABLE_WIDTH_ROWS: usize = 1000;

/// Writes batches in one format.
pub struct ResultWriter<W: Write + Send> {
    format: Format,
    schema: SchemaRef,
    out: Option<W>,
    parquet: Option<parquet::arrow::ArrowWriter<W>>,
    widths: Option<Vec<usize>>,
    rows: u64,
}

impl<W: Write + Send> std::fmt::Debug for ResultWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWriter")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

fn io(err: std::io::Error) -> String {
    format!("writing the result: {err}")
}

/// Every value of `batch` as text, row by row.
pub(crate) fn cells(
    batch: &RecordBatch,
    options: &FormatOptions<'_>,
) -> Result<Vec<Vec<String>>, String> {
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect()
        })
        .collect())
}

fn csv_quote(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn tsv_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl<W: Write + Send> ResultWriter<W> {
    /// A writer of `format` for results of `schema`.
    pub fn new(format: Format, schema: SchemaRef, out: W) -> Result<ResultWriter<W>, String> {
        let (out, parquet) = if format == Format::Parquet {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            let writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
                .map_err(|e| format!("parquet: {e}"))?;
            (None, Some(writer))
        } else {
            (Some(out), None)
        };
        let mut writer = ResultWriter {
            format,
            schema,
            out,
            parquet,
            widths: None,
            rows: 0,
        };
        writer.header()?;
        Ok(writer)
    }

    fn header(&mut self) -> Result<(), String> {
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match self.format {
            Format::Csv => {
                let line: Vec<String> = names.iter().map(|n| csv_quote(n)).collect();
                writeln!(out, "{}", line.join(",")).map_err(io)
            }
            Format::Tsv => {
                let line: Vec<String> = names.iter().map(|n| tsv_escape(n)).collect();
                writeln!(out, "{}", line.join("\t")).map_err(io)
            }
            _ => Ok(()),
        }
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        self.rows += batch.num_rows() as u64;
        if let Some(writer) = self.parquet.as_mut() {
            return writer.write(batch).map_err(|e| format!("parquet: {e}"));
        }
        match self.format {
            Format::Table => self.write_table(batch),
            Format::Csv | Format::Tsv => {
                let options = FormatOptions::default().with_null("");
                let rows = cells(batch, &options)?;
                let Some(out) = self.out.as_mut() else {
                    return Ok(());
                };
                for row in rows {
                    let line: Vec<String> = if self.format == Format::Csv {
                        row.iter().map(|c| csv_quote(c)).collect()
                    } else {
                        row.iter().map(|c| tsv_escape(c)).collect()
                    };
                    let sep = if self.format == Format::Csv {
                        ","
                    } else {
                        "\t"
                    };
                    writeln!(out, "{}", line.join(sep)).map_err(io)?;
                }
                Ok(())
            }
            Format::Json => self.write_json(batch),
            Format::Parquet => Ok(()),
        }
    }

    fn write_table(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let options = FormatOptions::default().with_null("NULL");
        let rows = cells(batch, &options)?;
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let numeric: Vec<bool> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().is_numeric())
            .collect();
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        if self.widths.is_none() {
            let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
            for row in rows.iter().take(TABLE_WIDTH_ROWS) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
            let rule = format!("+{}+", rule.join("+"));
            let header: Vec<String> = names
                .iter()
                .zip(&widths)
                .map(|(n, w)| format!(" {n:<w$} "))
                .collect();
            writeln!(out, "{rule}\n|{}|\n{rule}", header.join("|")).map_err(io)?;
            self.widths = Some(widths);
        }
        let widths = self.widths.as_deref().unwrap_or_default();
        for row in rows {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .zip(&numeric)
                .map(|((cell, w), &right)| {
                    if right {
                        format!(" {cell:>w$} ")
                    } else {
                        format!(" {cell:<w$} ")
                    }
                })
                .collect();
            writeln!(out, "|{}|", line.join("|")).map_err(io)?;
        }
        Ok(())
    }

    fn write_json(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let options = FormatOptions::default().with_null("null");
        let rows = cells(batch, &options)?;
        let kinds: Vec<ArrowType> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| json_string(f.name()))
            .collect();
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        for (row_index, row) in rows.iter().enumerate() {
            let fields: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(col, cell)| {
                    let value = if batch.column(col).is_null(row_index) {
                        "null".to_string()
                    } else {
                        match &kinds[col] {
                            ArrowType::Boolean => cell.clone(),
                            t if t.is_integer() => cell.clone(),
                            t if t.is_floating() => {
                                // JSON has no NaN or infinity.
                                match cell.parse::<f64>() {
                                    Ok(v) if v.is_finite() => cell.clone(),
                                    _ => "null".to_string(),
                                }
                            }
                            _ => json_string(cell),
                        }
                    };
                    format!("{}:{value}", names[col])
                })
                .collect();
            writeln!(out, "{{{}}}", fields.join(",")).map_err(io)?;
        }
        Ok(())
    }

    /// Ends the output (a table's closing rule, Parquet's footer).
    pub fn finish(mut self) -> Result<u64, String> {
        if let Some(writer) = self.parquet.take() {
            writer.close().map_err(|e| format!("parquet: {e}"))?;
            return Ok(self.rows);
        }
        if self.format == Format::Table {
            if self.widths.is_none() {
                // No rows: still show the header.
                let empty = RecordBatch::new_empty(self.schema.clone());
                self.write_table(&empty)?;
            }
            if let (Some(out), Some(widths)) = (self.out.as_mut(), self.widths.as_ref()) {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
                writeln!(out, "+{}+", rule.join("+")).map_err(io)?;
            }
        }
        if let Some(out) = self.out.as_mut() {
            out.flush().map_err(io)?;
        }
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", ArrowType::Int64, true),
            Field::new("name", ArrowType::Utf8, true),
            Field::new("x", ArrowType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a,\"b\""), Some("tab\there")])),
                Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN)])),
            ],
        )
        .unwrap()
    }

    fn render(format: Format) -> String {
        let b = batch();
        let mut out = Vec::new();
        let mut writer = ResultWriter::new(format, b.schema(), &mut out).unwrap();
        writer.write(&b).unwrap();
        assert_eq!(writer.finish().unwrap(), 2);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(
            render(Format::Csv),
            "id,name,x\n1,\"a,\"\"b\"\"\",0.5\n,tab\there,NaN\n"
        );
        assert_eq!(
            render(Format::Tsv),
            "id\tname\tx\n1\ta,\"b\"\t0.5\n\ttab\\there\tNaN\n"
        );
        assert_eq!(
            render(Format::Json),
            "{\"id\":1,\"name\":\"a,\\\"b\\\"\",\"x\":0.5}\n{\"id\":null,\"name\":\"tab\\there\",\"x\":null}\n"
        );
        let table = render(Format::Table);
        assert!(table.contains("| id   | name     | x   |"), "{table}");
        assert!(table.contains("| NULL | tab\there | NaN |"), "{table}");
    }

    #[test]
    fn parquet_round_trips() {
        let b = batch();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = ResultWriter::new(Format::Parquet, b.schema(), file).unwrap();
        writer.write(&b).unwrap();
        writer.finish().unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|r| r.unwrap()).collect();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    }
}
