//! The delimited-text reader on hand-made inputs: escapes, quoting, NULLs,
//! character sets, strict numbers, batch limits, bad rows, gzip damage, and
//! mutated inputs (errors, never panics).

// Test code: unwrap/expect/panic are how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Cursor, Write};

use skyscan_engine::ingest::IngestError;
use skyscan_engine::ingest::schema::{SqlTable, parse_schema_sql};
use skyscan_engine::ingest::text::TextEncoding;
use skyscan_engine::ingest::tsv::{
    Batch, DelimitedReader, ReaderOptions, TextFormat, open_table_file,
};
use skyscan_format::ColumnData;

fn table(sql: &str) -> SqlTable {
    parse_schema_sql(sql, "test.sql").unwrap().remove(0)
}

fn read(table: &SqlTable, input: &[u8], options: ReaderOptions) -> Result<Vec<Batch>, IngestError> {
    let reader = DelimitedReader::new(Cursor::new(input.to_vec()), "input.tsv", table, options)?;
    reader.collect()
}

fn read_one(table: &SqlTable, input: &[u8], options: ReaderOptions) -> Result<Batch, IngestError> {
    let mut batches = read(table, input, options)?;
    assert_eq!(batches.len(), 1);
    Ok(batches.remove(0))
}

fn err(table: &SqlTable, input: &[u8], options: ReaderOptions) -> String {
    match read(table, input, options) {
        Ok(batches) => panic!("expected an error, got {} batches", batches.len()),
        Err(error) => error.to_string(),
    }
}

fn var(column: &ColumnData) -> Vec<Option<Vec<u8>>> {
    match column {
        ColumnData::Utf8(c) | ColumnData::Binary(c) => (0..c.len())
            .map(|row| c.get(row).map(<[u8]>::to_vec))
            .collect(),
        other => panic!("{:?}", other.column_type()),
    }
}

fn i64s(column: &ColumnData) -> Vec<Option<i64>> {
    match column {
        ColumnData::I8(c) => (0..c.values.len())
            .map(|r| c.get(r).map(i64::from))
            .collect(),
        ColumnData::I16(c) => (0..c.values.len())
            .map(|r| c.get(r).map(i64::from))
            .collect(),
        ColumnData::I32(c) => (0..c.values.len())
            .map(|r| c.get(r).map(i64::from))
            .collect(),
        ColumnData::I64(c) => (0..c.values.len()).map(|r| c.get(r)).collect(),
        other => panic!("{:?}", other.column_type()),
    }
}

/// Escapes a value the way `SELECT … INTO OUTFILE` does (escape, tab, line
/// feed and NUL escaped; `\N` for NULL).
fn mysql_escape(value: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &byte in value {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\\t"),
            b'\n' => out.extend_from_slice(b"\\\n"),
            0 => out.extend_from_slice(b"\\0"),
            other => out.push(other),
        }
    }
}

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn escapes_round_trip_for_random_binary_values() {
    let t = table(
        "CREATE TABLE t (id BIGINT NOT NULL, b VARBINARY(200), s VARCHAR(10) CHARACTER SET latin1)",
    );
    let mut rng = SplitMix(7);
    let interesting = [
        b'\\', b'\t', b'\n', b'\r', 0, b'N', b'0', b'n', b't', 0xff, 0x80, b'"',
    ];
    let mut expected_b = Vec::new();
    let mut expected_s = Vec::new();
    let mut text = Vec::new();
    for id in 0..2_000i64 {
        let mut value = || -> Option<Vec<u8>> {
            if rng.below(8) == 0 {
                return None;
            }
            let len = rng.below(12) as usize;
            Some(
                (0..len)
                    .map(|_| {
                        if rng.below(2) == 0 {
                            interesting[rng.below(12) as usize]
                        } else {
                            rng.below(256) as u8
                        }
                    })
                    .collect(),
            )
        };
        let b = value();
        let s = value();
        text.extend_from_slice(id.to_string().as_bytes());
        text.push(b'\t');
        mysql_escape(b.as_deref(), &mut text);
        text.push(b'\t');
        mysql_escape(s.as_deref(), &mut text);
        text.push(b'\n');
        expected_b.push(b);
        expected_s.push(s.map(|s| s.iter().map(|&c| char::from(c)).collect::<String>()));
    }
    let options = ReaderOptions {
        batch_rows: 333,
        ..ReaderOptions::default()
    };
    let batches = read(&t, &text, options).unwrap();
    let mut got_b = Vec::new();
    let mut got_s = Vec::new();
    let mut ids = Vec::new();
    for batch in &batches {
        assert!(batch.rows <= 333);
        ids.extend(i64s(&batch.columns[0]));
        got_b.extend(var(&batch.columns[1]));
        got_s.extend(var(&batch.columns[2]));
    }
    assert_eq!(ids, (0..2_000).map(Some).collect::<Vec<_>>());
    assert_eq!(got_b, expected_b);
    for (got, expected) in got_s.iter().zip(&expected_s) {
        match (got, expected) {
            (None, None) => {}
            (Some(got), Some(expected)) => {
                // Latin-1 converts byte by byte: one char per input byte, equal
                // to the byte outside 0x80..=0x9F (where MySQL's latin1 is cp1252).
                let got = String::from_utf8(got.clone()).unwrap();
                assert_eq!(got.chars().count(), expected.chars().count());
                for (g, e) in got.chars().zip(expected.chars()) {
                    if ('\u{80}'..='\u{9f}').contains(&e) {
                        assert!(!g.is_ascii());
                    } else {
                        assert_eq!(g, e);
                    }
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn null_and_escape_rules() {
    let t = table("CREATE TABLE t (a VARCHAR(10), b VARCHAR(10))");
    // \N alone is NULL; \N inside a value, \\N, and N are text.
    let batch = read_one(
        &t,
        b"\\N\t\\Nx\nN\t\\\\N\n\\0\\b\\Z\\r\\n\\t\t\\q\\\t\\\n\n",
        ReaderOptions::default(),
    )
    .unwrap();
    assert_eq!(
        var(&batch.columns[0]),
        vec![
            None,
            Some(b"N".to_vec()),
            Some(b"\0\x08\x1a\r\n\t".to_vec())
        ]
    );
    assert_eq!(
        var(&batch.columns[1]),
        vec![
            Some(b"Nx".to_vec()),
            Some(b"\\N".to_vec()),
            Some(b"q\t\n".to_vec())
        ]
    );
    // No trailing newline: the last record still counts. Empty input: no batch.
    assert_eq!(
        read_one(&t, b"x\ty", ReaderOptions::default())
            .unwrap()
            .rows,
        1
    );
    assert!(read(&t, b"", ReaderOptions::default()).unwrap().is_empty());
}

#[test]
fn csv_dialects() {
    let t = table("CREATE TABLE t (id INT NOT NULL, s TEXT, d DOUBLE)");
    let options = ReaderOptions {
        format: TextFormat::mysql_csv(b','),
        ..ReaderOptions::default()
    };
    let batch = read_one(
        &t,
        b"1,\"a,b\",1.5\n2,\"say \"\"hi\"\"\nthere\",NULL\n3,\\N,\"2\"\n4,\"NULL\",-0\n",
        options,
    )
    .unwrap();
    assert_eq!(
        i64s(&batch.columns[0]),
        vec![Some(1), Some(2), Some(3), Some(4)]
    );
    assert_eq!(
        var(&batch.columns[1]),
        vec![
            Some(b"a,b".to_vec()),
            Some(b"say \"hi\"\nthere".to_vec()),
            None,
            Some(b"NULL".to_vec())
        ]
    );
    match &batch.columns[2] {
        ColumnData::F64(c) => assert_eq!(
            (0..4).map(|r| c.get(r)).collect::<Vec<_>>(),
            vec![Some(1.5), None, Some(2.0), Some(-0.0)]
        ),
        other => panic!("{:?}", other.column_type()),
    }

    let options = ReaderOptions {
        format: TextFormat::rfc4180(b';'),
        ..ReaderOptions::default()
    };
    let batch = read_one(&t, b"1;\"x\\y\";\r\n2;;3\r\n3;\"\";4\r\n", options).unwrap();
    assert_eq!(
        var(&batch.columns[1]),
        vec![Some(b"x\\y".to_vec()), None, Some(Vec::new())]
    );
    match &batch.columns[2] {
        ColumnData::F64(c) => assert_eq!(
            (0..3).map(|r| c.get(r)).collect::<Vec<_>>(),
            vec![None, Some(3.0), Some(4.0)]
        ),
        other => panic!("{:?}", other.column_type()),
    }
}

#[test]
fn text_encodings() {
    let latin = table("CREATE TABLE t (s VARCHAR(10), b VARBINARY(10)) DEFAULT CHARSET=latin1");
    let batch = read_one(&latin, b"caf\xe9 \x80\tcaf\xe9\n", ReaderOptions::default()).unwrap();
    assert_eq!(
        var(&batch.columns[0]),
        vec![Some("café €".as_bytes().to_vec())]
    );
    assert_eq!(var(&batch.columns[1]), vec![Some(b"caf\xe9".to_vec())]);

    let utf8 = table("CREATE TABLE t (s VARCHAR(10)) DEFAULT CHARSET=utf8mb4");
    let batch = read_one(&utf8, "café\n".as_bytes(), ReaderOptions::default()).unwrap();
    assert_eq!(
        var(&batch.columns[0]),
        vec![Some("café".as_bytes().to_vec())]
    );
    let message = err(&utf8, b"caf\xe9\n", ReaderOptions::default());
    assert!(
        message.contains("invalid UTF-8") && message.contains("column 1 `s`"),
        "{message}"
    );
    // The override reads the same bytes as latin-1.
    let options = ReaderOptions {
        text_encoding: Some(TextEncoding::Latin1),
        ..ReaderOptions::default()
    };
    let batch = read_one(&utf8, b"caf\xe9\n", options).unwrap();
    assert_eq!(
        var(&batch.columns[0]),
        vec![Some("café".as_bytes().to_vec())]
    );
}

#[test]
fn integer_ranges_and_types() {
    let t = table(
        "CREATE TABLE t (a TINYINT UNSIGNED, b BIGINT UNSIGNED, c MEDIUMINT, d BIT(1), e BOOL, \
         f DECIMAL(10,3), g DATE, h DATETIME(6), i TIME, j YEAR)",
    );
    let row = b"255\t9223372036854775807\t-8388608\t\x01\t0\t-12.345\t2024-02-29\t2024-02-29 23:59:59.5\t-12:00:00\t2024\n";
    let batch = read_one(&t, row, ReaderOptions::default()).unwrap();
    assert_eq!(i64s(&batch.columns[0]), vec![Some(255)]);
    assert_eq!(i64s(&batch.columns[1]), vec![Some(i64::MAX)]);
    assert_eq!(i64s(&batch.columns[2]), vec![Some(-8388608)]);
    match (&batch.columns[3], &batch.columns[4], &batch.columns[5]) {
        (ColumnData::Bool(d), ColumnData::Bool(e), ColumnData::F64(f)) => {
            assert!(d.values.get(0));
            assert!(!e.values.get(0));
            assert_eq!(f.values[0], -12.345);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(i64s(&batch.columns[9]), vec![Some(2024)]);

    let cases: [(&[u8], &str); 10] = [
        (b"256\t0\t0\t0\t0\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`a`"),
        (b"-1\t0\t0\t0\t0\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`a`"),
        (b"0\t9223372036854775808\t0\t0\t0\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`b`"),
        (b"0\t0\t8388608\t0\t0\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`c`"),
        (b"0\t0\t0\t2\t0\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`d`"),
        (b"0\t0\t0\t0\ttrue\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`e`"),
        (b"0\t0\t0\t0\t0\t1,5\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`f`"),
        (b"0\t0\t0\t0\t0\t0\t2024-1-01\t2024-01-01 00:00:00\t00:00:00\t2024\n", "`g`"),
        (b"0\t0\t0\t0\t0\t0\t2024-01-01\t2024-01-01T00:00:00\t00:00:00\t2024\n", "`h`"),
        (b"0\t0\t0\t0\t0\t0\t2024-01-01\t2024-01-01 00:00:00\t00:00:00\t1800\n", "`j`"),
    ];
    for (input, column) in cases {
        let message = err(&t, input, ReaderOptions::default());
        assert!(
            message.contains(column) && message.contains("input.tsv:1: record 1"),
            "{column}: {message}"
        );
    }
}

#[test]
fn malformed_records_name_line_and_column() {
    let t = table("CREATE TABLE t (id INT NOT NULL, x FLOAT NOT NULL, s BLOB)");
    // Line 3 holds record 2 (record 1 spans two lines through an escaped line feed).
    let message = err(&t, b"1\t2\ta\\\nb\n2\t2.5\n", ReaderOptions::default());
    assert!(
        message.contains("input.tsv:3: record 2")
            && message.contains("2 fields; the table has 3 columns"),
        "{message}"
    );
    let message = err(&t, b"1\t2\tx\n2\t2.5e\tx\n", ReaderOptions::default());
    assert!(
        message.contains("input.tsv:2: record 2, column 2 `x`") && message.contains("2.5e"),
        "{message}"
    );
    let message = err(&t, b"\\N\t2\tx\n", ReaderOptions::default());
    assert!(
        message.contains("column 1 `id`: NULL in a NOT NULL column"),
        "{message}"
    );
    let message = err(&t, b"1\t2\tx\\", ReaderOptions::default());
    assert!(message.contains("escape"), "{message}");
    let message = err(&t, b"1\tnan\tx\n", ReaderOptions::default());
    assert!(message.contains("`nan`"), "{message}");
    let message = err(&t, b"1\t1e39\tx\n", ReaderOptions::default());
    assert!(message.contains("FLOAT"), "{message}");
    let message = err(&t, b"1\t2\t3\t4\t5\n", ReaderOptions::default());
    assert!(message.contains("5 fields"), "{message}");

    let csv = ReaderOptions {
        format: TextFormat::mysql_csv(b','),
        ..ReaderOptions::default()
    };
    let message = err(&t, b"1,2,\"abc", csv.clone());
    assert!(message.contains("inside a quoted field"), "{message}");
    let message = err(&t, b"1,2,\"abc\"d\n", csv);
    assert!(message.contains("after the closing quote"), "{message}");

    let small = ReaderOptions {
        max_record_bytes: 16,
        ..ReaderOptions::default()
    };
    let message = err(
        &t,
        b"1\t2\txxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        small,
    );
    assert!(message.contains("max_record_bytes"), "{message}");
}

#[test]
fn bad_rows_are_skipped_up_to_the_allowance() {
    let t = table("CREATE TABLE t (id INT NOT NULL, x DOUBLE)");
    let input = b"1\t1\nbad\t1\n3\t3\n4\n5\t5\n";
    let options = ReaderOptions {
        max_bad_rows: 2,
        ..ReaderOptions::default()
    };
    let mut reader = DelimitedReader::new(
        Cursor::new(input.to_vec()),
        "input.tsv",
        &t,
        options.clone(),
    )
    .unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    assert!(reader.next_batch().unwrap().is_none());
    assert_eq!(i64s(&batch.columns[0]), vec![Some(1), Some(3), Some(5)]);
    assert_eq!(reader.bad_row_count(), 2);
    let lines: Vec<u64> = reader.bad_rows().iter().map(|bad| bad.line).collect();
    assert_eq!(lines, vec![2, 4]);
    assert_eq!(reader.rows_read(), 3);
    assert_eq!(reader.records_read(), 5);

    let options = ReaderOptions {
        max_bad_rows: 1,
        ..ReaderOptions::default()
    };
    let message = err(&t, input, options);
    assert!(
        message.contains("more than 1 bad records") && message.contains("input.tsv:4"),
        "{message}"
    );
}

#[test]
fn batches_are_bounded_by_rows_and_bytes() {
    let t = table("CREATE TABLE t (id BIGINT NOT NULL, s VARCHAR(100))");
    let mut input = Vec::new();
    for id in 0..1_000 {
        writeln!(input, "{id}\t{}", "x".repeat(id % 50)).unwrap();
    }
    let by_rows = read(
        &t,
        &input,
        ReaderOptions {
            batch_rows: 64,
            ..ReaderOptions::default()
        },
    )
    .unwrap();
    assert_eq!(by_rows.len(), 16);
    assert!(by_rows.iter().all(|b| b.rows <= 64));
    assert_eq!(by_rows[1].first_record, 65);
    assert_eq!(by_rows[1].first_line, 65);
    // ~12 bytes of fixed data per row plus the text.
    let by_bytes = read(
        &t,
        &input,
        ReaderOptions {
            batch_bytes: 1_000,
            ..ReaderOptions::default()
        },
    )
    .unwrap();
    assert!(by_bytes.len() > 20);
    let mut next_id = 0;
    for batch in &by_bytes {
        let text_bytes: usize = var(&batch.columns[1])
            .iter()
            .map(|v| v.as_ref().map_or(0, Vec::len))
            .sum();
        assert!(batch.rows == 1 || batch.rows * 12 + text_bytes <= 1_000);
        for id in i64s(&batch.columns[0]) {
            assert_eq!(id, Some(next_id));
            next_id += 1;
        }
    }
    assert_eq!(next_id, 1_000);
    for bad in [
        ReaderOptions {
            batch_rows: 0,
            ..ReaderOptions::default()
        },
        ReaderOptions {
            batch_bytes: 0,
            ..ReaderOptions::default()
        },
    ] {
        assert!(matches!(
            DelimitedReader::new(Cursor::new(Vec::new()), "x", &t, bad),
            Err(IngestError::InvalidOptions(_))
        ));
    }
    let same = ReaderOptions {
        format: TextFormat {
            quote: Some(b'\t'),
            ..TextFormat::mysql_tsv()
        },
        ..ReaderOptions::default()
    };
    assert!(DelimitedReader::new(Cursor::new(Vec::new()), "x", &t, same).is_err());
}

#[test]
fn gzip_input_plain_concatenated_truncated_and_corrupt() {
    let t = table("CREATE TABLE t (id INT NOT NULL, s TEXT)");
    let dir = tempfile::tempdir().unwrap();
    let gz = |text: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    };
    let count = |path: &std::path::Path| -> Result<usize, IngestError> {
        let reader = open_table_file(path, &t, ReaderOptions::default())?;
        let mut rows = 0;
        for batch in reader {
            rows += batch?.rows;
        }
        Ok(rows)
    };
    let mut text = Vec::new();
    for id in 0..5_000 {
        writeln!(text, "{id}\tvalue {id}").unwrap();
    }
    let plain = dir.path().join("plain.tsv");
    std::fs::write(&plain, &text).unwrap();
    assert_eq!(count(&plain).unwrap(), 5_000);

    let mut two_members = gz(&text[..text.len() / 2 + 3]);
    two_members.extend(gz(&text[text.len() / 2 + 3..]));
    let concatenated = dir.path().join("two.tsv.gz");
    std::fs::write(&concatenated, &two_members).unwrap();
    assert_eq!(count(&concatenated).unwrap(), 5_000);

    let whole = gz(&text);
    let truncated = dir.path().join("truncated.tsv.gz");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    assert!(
        matches!(count(&truncated), Err(IngestError::Corrupt { .. })),
        "{:?}",
        count(&truncated)
    );

    let mut damaged = whole.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    damaged[middle + 1] ^= 0x55;
    let corrupt = dir.path().join("corrupt.tsv.gz");
    std::fs::write(&corrupt, &damaged).unwrap();
    // A flipped deflate byte is either invalid deflate data, or yields other
    // bytes that fail the gzip CRC, or damages the text; never a panic.
    match count(&corrupt) {
        Err(IngestError::Corrupt { .. } | IngestError::Parse(_)) => {}
        other => panic!("{other:?}"),
    }
    let missing = dir.path().join("missing.tsv.gz");
    assert!(matches!(count(&missing), Err(IngestError::Io { .. })));
}

#[test]
fn mutated_inputs_give_errors_not_panics() {
    let t = table(
        "CREATE TABLE t (id BIGINT NOT NULL, a TINYINT, f FLOAT, d DOUBLE, s VARCHAR(9), b BLOB, \
         x BIT(1), dt DATETIME) DEFAULT CHARSET=latin1",
    );
    let valid = b"1\t-5\t1.5\t2.5e10\tab\\tc\tz\\0\\\n\\\\\t1\t2020-01-01 00:00:00\n2\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n";
    let alphabet = [
        b'\t', b'\n', b'\\', b'N', b'"', b'0', b'9', b'-', b'.', b'e', b'\r', 0xe9, b',', b' ',
    ];
    let formats = [
        TextFormat::mysql_tsv(),
        TextFormat::mysql_csv(b'\t'),
        TextFormat::rfc4180(b','),
    ];
    let mut rng = SplitMix(42);
    let mut outcomes = [0usize; 2];
    for iteration in 0..20_000 {
        let mut input = valid.to_vec();
        for _ in 0..1 + rng.below(4) {
            let position = rng.below(input.len() as u64 + 1) as usize;
            let byte = alphabet[rng.below(alphabet.len() as u64) as usize];
            match rng.below(3) {
                0 if position < input.len() => input[position] = byte,
                1 if position < input.len() => {
                    input.remove(position);
                }
                _ => input.insert(position, byte),
            }
        }
        let options = ReaderOptions {
            format: formats[iteration % 3].clone(),
            batch_rows: 1 + (iteration % 2),
            max_bad_rows: (iteration % 3) as u64,
            max_record_bytes: 64,
            ..ReaderOptions::default()
        };
        match read(&t, &input, options) {
            Ok(batches) => {
                outcomes[0] += 1;
                for batch in batches {
                    for column in &batch.columns {
                        assert_eq!(column.len(), batch.rows);
                        if let ColumnData::Utf8(c) = column {
                            assert!(std::str::from_utf8(&c.data).is_ok());
                        }
                    }
                }
            }
            Err(_) => outcomes[1] += 1,
        }
    }
    assert!(outcomes[0] > 1_000 && outcomes[1] > 1_000, "{outcomes:?}");
}
