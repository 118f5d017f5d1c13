//! Strict parsers for the text of one value (integers, floats, dates) and
//! the latin-1 → UTF-8 conversion. Free functions over byte slices, no
//! allocation: they run once per value of every input file.

/// The character set of text values in an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextEncoding {
    /// UTF-8; invalid sequences are an error.
    Utf8,
    /// MySQL's `latin1`, which is Windows-1252 with the five code points
    /// cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) mapped to the
    /// C1 controls of the same value, as MySQL converts them. Every byte
    /// sequence is valid.
    Latin1,
}

/// Unicode scalar values of bytes 0x80..=0x9F in MySQL's latin1 (Windows-1252;
/// MySQL `strings/ctype-latin1.cc`, `cs_to_uni`). Bytes 0xA0..=0xFF map to
/// U+00A0..=U+00FF.
const LATIN1_80_9F: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

/// Appends the UTF-8 form of MySQL-latin1 `input` to `out`.
pub fn latin1_to_utf8(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    for &byte in input {
        if byte < 0x80 {
            out.push(byte);
            continue;
        }
        let scalar = match byte {
            0x80..=0x9F => u32::from(LATIN1_80_9F[usize::from(byte - 0x80)]),
            _ => u32::from(byte),
        };
        // Every table entry and 0xA0..=0xFF is a valid scalar below U+D800.
        let ch = char::from_u32(scalar).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
    }
}

/// Why an integer did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntError {
    /// Not `[+-]?[0-9]+`.
    Syntax,
    /// Outside the i64 range.
    Overflow,
}

/// Parses `[+-]?[0-9]+` into an i64, refusing anything else (no spaces, no
/// fraction, no exponent).
pub fn parse_i64(text: &[u8]) -> Result<i64, IntError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(IntError::Syntax);
    }
    // Accumulate negatively so i64::MIN parses.
    let mut value: i64 = 0;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return Err(IntError::Syntax);
        }
        value = value
            .checked_mul(10)
            .and_then(|value| value.checked_sub(i64::from(digit)))
            .ok_or(IntError::Overflow)?;
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or(IntError::Overflow)
    }
}

/// True when `text` is a decimal floating-point literal:
/// `[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`. Refuses `inf`,
/// `nan`, hex floats and spaces, which Rust's float parser would accept in
/// part and MySQL never writes.
pub fn is_decimal_literal(text: &[u8]) -> bool {
    let mut rest = text;
    if let Some((b'+' | b'-', tail)) = rest.split_first() {
        rest = tail;
    }
    let leading = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    rest = &rest[leading..];
    let mut fraction = 0;
    if let Some((b'.', tail)) = rest.split_first() {
        fraction = tail.iter().take_while(|byte| byte.is_ascii_digit()).count();
        rest = &tail[fraction..];
    }
    if leading + fraction == 0 {
        return false;
    }
    if let Some((b'e' | b'E', tail)) = rest.split_first() {
        rest = tail;
        if let Some((b'+' | b'-', tail)) = rest.split_first() {
            rest = tail;
        }
        let exponent = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if exponent == 0 {
            return false;
        }
        rest = &rest[exponent..];
    }
    rest.is_empty()
}

/// Parses a decimal literal (see [`is_decimal_literal`]) into the nearest
/// f64; `None` when malformed or when its magnitude overflows to infinity.
pub fn parse_f64(text: &[u8]) -> Option<f64> {
    if !is_decimal_literal(text) {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

/// Parses a decimal literal into an f32 the way MySQL stores a FLOAT: the
/// text is converted to the nearest f64, then rounded to f32. `None` when
/// malformed or out of the f32 range.
pub fn parse_f32(text: &[u8]) -> Option<f32> {
    let value = parse_f64(text)?;
    // Rounding to f32 is the intended conversion (MySQL: `(float) strtod(…)`).
    #[allow(clippy::cast_possible_truncation)]
    let single = value as f32;
    single.is_finite().then_some(single)
}

/// `count` ASCII digits at `text[start..]`, as a number.
fn digits(text: &[u8], start: usize, count: usize) -> Option<u32> {
    let slice = text.get(start..start + count)?;
    slice.iter().try_fold(0u32, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

/// `.` followed by 1 to 6 digits, or nothing.
fn is_fraction(text: &[u8]) -> bool {
    match text.split_first() {
        None => true,
        Some((b'.', digits)) => {
            (1..=6).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        }
        Some(_) => false,
    }
}

/// `YYYY-MM-DD`, month 0..=12 and day 0..=31 (MySQL allows zero parts, as in
/// `0000-00-00`).
pub fn is_date(text: &[u8]) -> bool {
    text.len() == 10
        && text[4] == b'-'
        && text[7] == b'-'
        && digits(text, 0, 4).is_some()
        && digits(text, 5, 2).is_some_and(|month| month <= 12)
        && digits(text, 8, 2).is_some_and(|day| day <= 31)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (the form mysqldump writes DATETIME and
/// TIMESTAMP values in).
pub fn is_datetime(text: &[u8]) -> bool {
    text.len() >= 19
        && is_date(&text[..10])
        && text[10] == b' '
        && text[13] == b':'
        && text[16] == b':'
        && digits(text, 11, 2).is_some_and(|hour| hour <= 23)
        && digits(text, 14, 2).is_some_and(|minute| minute <= 59)
        && digits(text, 17, 2).is_some_and(|second| second <= 59)
        && is_fraction(&text[19..])
}

/// `[-]H…:MM:SS[.ffffff]` with 2 or 3 hour digits up to 838 (MySQL TIME range).
pub fn is_time(text: &[u8]) -> bool {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let Some(colon) = text.iter().position(|&byte| byte == b':') else {
        return false;
    };
    (colon == 2 || colon == 3)
        && digits(text, 0, colon).is_some_and(|hour| hour <= 838)
        && text.get(colon + 3) == Some(&b':')
        && digits(text, colon + 1, 2).is_some_and(|minute| minute <= 59)
        && digits(text, colon + 4, 2).is_some_and(|second| second <= 59)
        && text.len() >= colon + 6
        && is_fraction(&text[colon + 6..])
}

/// A YEAR value: 4 digits, 0 or 1901..=2155.
pub fn parse_year(text: &[u8]) -> Option<i16> {
    if text.len() != 4 {
        return None;
    }
    let year = digits(text, 0, 4)?;
    if year == 0 || (1901..=2155).contains(&year) {
        i16::try_from(year).ok()
    } else {
        None
    }
}

/// Up to `max` bytes of `value` for an error message, escaped so that
/// control and non-ASCII bytes are visible.
pub fn excerpt(value: &[u8], max: usize) -> String {
    let shown = &value[..value.len().min(max)];
    let mut text: String = shown.escape_ascii().to_string();
    if value.len() > max {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_i64(b"0"), Ok(0));
        assert_eq!(parse_i64(b"-17"), Ok(-17));
        assert_eq!(parse_i64(b"+17"), Ok(17));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), Err(IntError::Overflow));
        assert_eq!(parse_i64(b"-9223372036854775809"), Err(IntError::Overflow));
        for bad in [
            &b""[..],
            b"-",
            b"+",
            b" 1",
            b"1 ",
            b"1.0",
            b"1e3",
            b"0x10",
            b"--1",
            b"1-",
        ] {
            assert_eq!(
                parse_i64(bad),
                Err(IntError::Syntax),
                "{:?}",
                bad.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn floats_are_strict() {
        assert_eq!(parse_f64(b"1.13454822151113"), Some(1.13454822151113));
        assert_eq!(parse_f64(b"9.75619e-30"), Some(9.75619e-30));
        assert_eq!(parse_f64(b"2.4373e+06"), Some(2.4373e+06));
        assert_eq!(parse_f64(b"-5."), Some(-5.0));
        assert_eq!(parse_f64(b".5"), Some(0.5));
        for bad in [
            &b""[..],
            b".",
            b"inf",
            b"NaN",
            b"1e",
            b"1e+",
            b" 1",
            b"1,5",
            b"0x1p3",
            b"1e400",
        ] {
            assert_eq!(parse_f64(bad), None, "{:?}", bad.escape_ascii().to_string());
        }
        assert_eq!(parse_f32(b"3.5e38"), None);
        assert_eq!(parse_f32(b"0.0000115229"), Some(0.000_011_522_9_f64 as f32));
    }

    #[test]
    fn dates_and_times() {
        assert!(is_date(b"1998-06-20"));
        assert!(is_date(b"0000-00-00"));
        assert!(!is_date(b"1998-13-20"));
        assert!(is_datetime(b"1998-06-20 15:59:33"));
        assert!(is_datetime(b"1998-06-20 15:59:33.123456"));
        assert!(!is_datetime(b"1998-06-20T15:59:33"));
        assert!(!is_datetime(b"1998-06-20 15:59:33."));
        assert!(!is_datetime(b"1998-06-20 24:00:00"));
        assert!(is_time(b"-838:59:59"));
        assert!(is_time(b"12:00:00.5"));
        assert!(!is_time(b"839:00:00"));
        assert!(!is_time(b"1:00:00"));
        assert_eq!(parse_year(b"2024"), Some(2024));
        assert_eq!(parse_year(b"1900"), None);
    }

    #[test]
    fn latin1_maps_like_mysql() {
        let mut out = Vec::new();
        latin1_to_utf8(b"caf\xe9 \x80 \x81 \xff", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "café € \u{81} ÿ");
    }
}
