//! Columns of APDB rows: conforming caller tables to the schema, gathering
//! rows, and the plain column encoding of log records (SPEC.md part 4 §3).

use skyscan_format::{
    Bitmap, BoolColumn, ColumnData, ColumnType, PrimitiveColumn, TableSchema, VarColumn,
};

use super::error::{ApdbError, Result};
use crate::table::{Table, append_column};

/// A column of `rows` nulls (values zero / empty).
pub fn null_column(column_type: ColumnType, rows: usize) -> ColumnData {
    let validity = Some(Bitmap::new_unset(rows));
    match column_type {
        ColumnType::Bool => ColumnData::Bool(BoolColumn {
            values: Bitmap::new_unset(rows),
            validity,
        }),
        ColumnType::I8 => ColumnData::I8(PrimitiveColumn {
            values: vec![0; rows],
            validity,
        }),
        ColumnType::I16 => ColumnData::I16(PrimitiveColumn {
            values: vec![0; rows],
            validity,
        }),
        ColumnType::I32 => ColumnData::I32(PrimitiveColumn {
            values: vec![0; rows],
            validity,
        }),
        ColumnType::I64 => ColumnData::I64(PrimitiveColumn {
            values: vec![0; rows],
            validity,
        }),
        ColumnType::F32 => ColumnData::F32(PrimitiveColumn {
            values: vec![0.0; rows],
            validity,
        }),
        ColumnType::F64 => ColumnData::F64(PrimitiveColumn {
            values: vec![0.0; rows],
            validity,
        }),
        ColumnType::Utf8 | ColumnType::Binary => {
            let var = VarColumn {
                offsets: vec![0; rows + 1],
                data: Vec::new(),
                validity,
            };
            if column_type == ColumnType::Utf8 {
                ColumnData::Utf8(var)
            } else {
                ColumnData::Binary(var)
            }
        }
    }
}

/// An empty table of `schema`.
pub fn empty_table(schema: &TableSchema) -> Table {
    Table {
        schema: schema.clone(),
        columns: schema
            .columns
            .iter()
            .map(|c| ColumnData::empty(c.column_type))
            .collect(),
    }
}

/// Checks a caller's table against the APDB table `target` and returns it in
/// the target's column order: every column must be a column of the target
/// with the same type; columns left out must be nullable and become nulls; a
/// NOT NULL column may hold no null. The error names the table and column.
pub fn conform(input: &Table, target: &TableSchema) -> Result<Table> {
    let table = &target.name;
    let rows = input.rows();
    for (def, data) in input.schema.columns.iter().zip(&input.columns) {
        let Some(index) = target.column_index(&def.name) else {
            return Err(ApdbError::Rejected(format!(
                "{table}: no column `{}` in the schema",
                def.name
            )));
        };
        let want = target.columns[index].column_type;
        if data.column_type() != want {
            return Err(ApdbError::Rejected(format!(
                "{table}.{}: values of type {:?}, the schema says {:?}",
                def.name,
                data.column_type(),
                want
            )));
        }
        if data.len() != rows {
            return Err(ApdbError::Rejected(format!(
                "{table}.{}: {} rows, the first column has {rows}",
                def.name,
                data.len()
            )));
        }
    }
    if input.schema.columns.len() != input.columns.len() {
        return Err(ApdbError::Rejected(format!(
            "{table}: {} column definitions for {} columns",
            input.schema.columns.len(),
            input.columns.len()
        )));
    }
    let mut columns = Vec::with_capacity(target.columns.len());
    for def in &target.columns {
        let found = input
            .schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name == def.name)
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        match found.as_slice() {
            [] if def.nullable => columns.push(null_column(def.column_type, rows)),
            [] => {
                return Err(ApdbError::Rejected(format!(
                    "{table}: NOT NULL column `{}` is missing",
                    def.name
                )));
            }
            [index] => {
                let data = &input.columns[*index];
                if !def.nullable && data.null_count() > 0 {
                    let row = (0..rows).find(|&r| !data.is_valid(r)).unwrap_or(0);
                    return Err(ApdbError::Rejected(format!(
                        "{table}.{}: NOT NULL column has {} nulls (first at row {row})",
                        def.name,
                        data.null_count()
                    )));
                }
                columns.push(data.clone());
            }
            _ => {
                return Err(ApdbError::Rejected(format!(
                    "{table}: column `{}` given twice",
                    def.name
                )));
            }
        }
    }
    if let ColumnCheck::Bad(message) = check_floats(target, &columns) {
        return Err(ApdbError::Rejected(message));
    }
    Ok(Table {
        schema: target.clone(),
        columns,
    })
}

enum ColumnCheck {
    Ok,
    Bad(String),
}

/// utf8 columns must be valid UTF-8 (the chunk format relies on it).
fn check_floats(target: &TableSchema, columns: &[ColumnData]) -> ColumnCheck {
    for (def, data) in target.columns.iter().zip(columns) {
        if let ColumnData::Utf8(var) = data
            && std::str::from_utf8(&var.data).is_err()
        {
            return ColumnCheck::Bad(format!("{}.{}: not valid UTF-8", target.name, def.name));
        }
    }
    ColumnCheck::Ok
}

/// The values of a gathered slice: `values[index]` for each index.
#[inline]
fn gather<T: Copy>(values: &[T], indices: &[u32]) -> Vec<T> {
    indices.iter().map(|&i| values[i as usize]).collect()
}

fn gather_bits(bits: &Bitmap, indices: &[u32]) -> Bitmap {
    let mut words = vec![0u64; indices.len().div_ceil(64)];
    let source = bits.words();
    for (out, &index) in indices.iter().enumerate() {
        let index = index as usize;
        let bit = (source[index / 64] >> (index % 64)) & 1;
        words[out / 64] |= bit << (out % 64);
    }
    Bitmap::from_words(words, indices.len())
}

fn gather_validity(validity: &Option<Bitmap>, indices: &[u32]) -> Option<Bitmap> {
    validity
        .as_ref()
        .map(|v| gather_bits(v, indices))
        .filter(|v| v.count_ones() != v.len())
}

/// The rows `indices` (each `< column.len()`) of a column, in that order.
pub fn take(column: &ColumnData, indices: &[u32]) -> ColumnData {
    macro_rules! prim {
        ($variant:ident, $c:expr) => {
            ColumnData::$variant(PrimitiveColumn {
                values: gather(&$c.values, indices),
                validity: gather_validity(&$c.validity, indices),
            })
        };
    }
    match column {
        ColumnData::Bool(c) => ColumnData::Bool(BoolColumn {
            values: gather_bits(&c.values, indices),
            validity: gather_validity(&c.validity, indices),
        }),
        ColumnData::I8(c) => prim!(I8, c),
        ColumnData::I16(c) => prim!(I16, c),
        ColumnData::I32(c) => prim!(I32, c),
        ColumnData::I64(c) => prim!(I64, c),
        ColumnData::F32(c) => prim!(F32, c),
        ColumnData::F64(c) => prim!(F64, c),
        ColumnData::Utf8(c) => ColumnData::Utf8(take_var(c, indices)),
        ColumnData::Binary(c) => ColumnData::Binary(take_var(c, indices)),
    }
}

fn take_var(c: &VarColumn, indices: &[u32]) -> VarColumn {
    let mut offsets = Vec::with_capacity(indices.len() + 1);
    let mut data = Vec::new();
    offsets.push(0u32);
    for &index in indices {
        data.extend_from_slice(c.value(index as usize));
        // Every gathered value comes from a column under 4 GiB and a
        // selection never repeats more rows than the caller's limits allow.
        offsets.push(u32::try_from(data.len()).unwrap_or(u32::MAX));
    }
    VarColumn {
        offsets,
        data,
        validity: gather_validity(&c.validity, indices),
    }
}

/// The rows `indices` of a table.
pub fn take_rows(table: &Table, indices: &[u32]) -> Table {
    Table {
        schema: table.schema.clone(),
        columns: table.columns.iter().map(|c| take(c, indices)).collect(),
    }
}

/// Appends the rows of `src` (same schema) to `dst`.
pub fn append_rows(dst: &mut Table, src: &Table) -> Result<()> {
    for (d, s) in dst.columns.iter_mut().zip(&src.columns) {
        append_column(d, s).map_err(ApdbError::Limit)?;
    }
    Ok(())
}

/// The i64 values of column `index` (the caller knows its type).
pub fn i64_values(table: &Table, index: usize) -> &[i64] {
    match &table.columns[index] {
        ColumnData::I64(c) => &c.values,
        _ => &[],
    }
}

/// The f64 values of column `index`.
pub fn f64_values(table: &Table, index: usize) -> &[f64] {
    match &table.columns[index] {
        ColumnData::F64(c) => &c.values,
        _ => &[],
    }
}

/// The i16 values of column `index`.
pub fn i16_values(table: &Table, index: usize) -> &[i16] {
    match &table.columns[index] {
        ColumnData::I16(c) => &c.values,
        _ => &[],
    }
}

/// Validity of column `index` (`None`: no nulls).
pub fn validity(table: &Table, index: usize) -> Option<&Bitmap> {
    table.columns[index].validity()
}

// ---------------------------------------------------------------------------
// Plain column encoding (SPEC.md part 4 §3)

/// Appends the plain encoding of a column.
pub fn encode_column(column: &ColumnData, out: &mut Vec<u8>) {
    let rows = column.len();
    let validity = column.validity();
    out.push(column.column_type().id());
    out.push(u8::from(validity.is_some()));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    if let Some(v) = validity {
        put_bitmap(v, out);
    }
    match column {
        ColumnData::Bool(c) => put_bitmap(&c.values, out),
        ColumnData::I8(c) => out.extend(c.values.iter().map(|&v| v as u8)),
        ColumnData::I16(c) => c.values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        ColumnData::I32(c) => c.values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        ColumnData::I64(c) => out.extend_from_slice(bytemuck::cast_slice(&c.values)),
        ColumnData::F32(c) => c.values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        ColumnData::F64(c) => out.extend_from_slice(bytemuck::cast_slice(&c.values)),
        ColumnData::Utf8(c) | ColumnData::Binary(c) => {
            out.extend_from_slice(&(c.data.len() as u32).to_le_bytes());
            out.extend_from_slice(bytemuck::cast_slice(&c.offsets[1..]));
            out.extend_from_slice(&c.data);
        }
    }
}

fn put_bitmap(bits: &Bitmap, out: &mut Vec<u8>) {
    out.extend_from_slice(bytemuck::cast_slice(bits.words()));
}

/// A cursor over bytes that fails with `Corrupt` instead of panicking.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`; `what` names them in errors.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor {
            bytes,
            position: 0,
            what,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.remaining() {
            return Err(ApdbError::Corrupt(format!(
                "{}: {len} bytes needed at offset {}, {} left",
                self.what,
                self.position,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    /// A little-endian u8.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A little-endian i64.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }

    /// A little-endian binary64.
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A corrupt-data error at the current position.
    pub fn corrupt(&self, message: impl std::fmt::Display) -> ApdbError {
        ApdbError::Corrupt(format!(
            "{} at offset {}: {message}",
            self.what, self.position
        ))
    }
}

fn get_bitmap(cursor: &mut Cursor<'_>, rows: usize) -> Result<Bitmap> {
    let words = rows.div_ceil(64);
    let bytes = cursor.take(words * 8)?;
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        .collect();
    let tail = rows % 64;
    if tail != 0 && words.last().is_some_and(|w| w >> tail != 0) {
        return Err(cursor.corrupt("bits set past the end of a bitmap"));
    }
    Ok(Bitmap::from_words(words, rows))
}

fn fixed<const N: usize>(cursor: &mut Cursor<'_>, rows: usize) -> Result<Vec<[u8; N]>> {
    let len = rows
        .checked_mul(N)
        .ok_or_else(|| cursor.corrupt("row count overflows"))?;
    let bytes = cursor.take(len)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

/// Decodes one plain column of type `want` and at most `max_rows` rows.
pub fn decode_column(
    cursor: &mut Cursor<'_>,
    want: ColumnType,
    max_rows: usize,
) -> Result<ColumnData> {
    let type_id = cursor.u8()?;
    let flags = cursor.u8()?;
    let reserved = cursor.u16()?;
    let rows = cursor.u32()? as usize;
    if ColumnType::from_id(type_id) != Some(want) {
        return Err(cursor.corrupt(format!("column type id {type_id}, expected {want:?}")));
    }
    if flags > 1 || reserved != 0 {
        return Err(cursor.corrupt("reserved column bits set"));
    }
    if rows > max_rows {
        return Err(cursor.corrupt(format!("{rows} rows, expected {max_rows}")));
    }
    let validity = if flags == 1 {
        Some(get_bitmap(cursor, rows)?)
    } else {
        None
    };
    Ok(match want {
        ColumnType::Bool => ColumnData::Bool(BoolColumn {
            values: get_bitmap(cursor, rows)?,
            validity,
        }),
        ColumnType::I8 => ColumnData::I8(PrimitiveColumn {
            values: fixed::<1>(cursor, rows)?
                .into_iter()
                .map(|b| b[0] as i8)
                .collect(),
            validity,
        }),
        ColumnType::I16 => ColumnData::I16(PrimitiveColumn {
            values: fixed::<2>(cursor, rows)?
                .into_iter()
                .map(i16::from_le_bytes)
                .collect(),
            validity,
        }),
        ColumnType::I32 => ColumnData::I32(PrimitiveColumn {
            values: fixed::<4>(cursor, rows)?
                .into_iter()
                .map(i32::from_le_bytes)
                .collect(),
            validity,
        }),
        ColumnType::I64 => ColumnData::I64(PrimitiveColumn {
            values: fixed::<8>(cursor, rows)?
                .into_iter()
                .map(i64::from_le_bytes)
                .collect(),
            validity,
        }),
        ColumnType::F32 => ColumnData::F32(PrimitiveColumn {
            values: fixed::<4>(cursor, rows)?
                .into_iter()
                .map(f32::from_le_bytes)
                .collect(),
            validity,
        }),
        ColumnType::F64 => ColumnData::F64(PrimitiveColumn {
            values: fixed::<8>(cursor, rows)?
                .into_iter()
                .map(f64::from_le_bytes)
                .collect(),
            validity,
        }),
        ColumnType::Utf8 | ColumnType::Binary => {
            let data_len = cursor.u32()? as usize;
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0u32);
            let mut previous = 0u32;
            for raw in fixed::<4>(cursor, rows)? {
                let offset = u32::from_le_bytes(raw);
                if offset < previous || offset as usize > data_len {
                    return Err(cursor.corrupt("offsets decrease or pass the data"));
                }
                previous = offset;
                offsets.push(offset);
            }
            if previous as usize != data_len {
                return Err(cursor.corrupt("last offset is not the data length"));
            }
            let data = cursor.take(data_len)?.to_vec();
            let var = VarColumn {
                offsets,
                data,
                validity,
            };
            if want == ColumnType::Utf8 {
                let valid = std::str::from_utf8(&var.data).is_ok()
                    && var.offsets.iter().all(|&o| {
                        let o = o as usize;
                        o == var.data.len() || (var.data[o] as i8) >= -0x40
                    });
                if !valid {
                    return Err(cursor.corrupt("utf8 column is not valid UTF-8"));
                }
                ColumnData::Utf8(var)
            } else {
                ColumnData::Binary(var)
            }
        }
    })
}

/// Encodes a table's columns (schema implied by the reader).
pub fn encode_table(table: &Table, out: &mut Vec<u8>) {
    out.extend_from_slice(&(table.rows() as u32).to_le_bytes());
    out.extend_from_slice(&(table.columns.len() as u32).to_le_bytes());
    for column in &table.columns {
        encode_column(column, out);
    }
}

/// Decodes a table written by [`encode_table`] under `schema`, at most
/// `max_rows` rows.
pub fn decode_table(
    cursor: &mut Cursor<'_>,
    schema: &TableSchema,
    max_rows: usize,
) -> Result<Table> {
    let rows = cursor.u32()? as usize;
    let columns = cursor.u32()? as usize;
    if rows > max_rows {
        return Err(cursor.corrupt(format!("{rows} rows over the limit {max_rows}")));
    }
    if columns != schema.columns.len() {
        return Err(cursor.corrupt(format!(
            "{columns} columns, table {} has {}",
            schema.name,
            schema.columns.len()
        )));
    }
    let mut data = Vec::with_capacity(columns);
    for def in &schema.columns {
        let column = decode_column(cursor, def.column_type, rows)?;
        if column.len() != rows {
            return Err(cursor.corrupt(format!("column {} has the wrong row count", def.name)));
        }
        if !def.nullable && column.null_count() > 0 {
            return Err(cursor.corrupt(format!("NOT NULL column {} holds nulls", def.name)));
        }
        data.push(column);
    }
    Ok(Table {
        schema: schema.clone(),
        columns: data,
    })
}
