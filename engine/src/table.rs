//! A table held in memory as whole columns: what the synthetic generators
//! produce and what the partitioner cuts into chunk files.

use skyscan_format::{Bitmap, ColumnData, TableSchema, VarColumn};

/// Columns of equal length under a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Names and types of the columns.
    pub schema: TableSchema,
    /// One entry per schema column, all of `rows` rows.
    pub columns: Vec<ColumnData>,
}

impl Table {
    /// A table, checking that the columns match the schema in count, type and length.
    pub fn new(schema: TableSchema, columns: Vec<ColumnData>) -> Result<Table, String> {
        if schema.columns.len() != columns.len() {
            return Err(format!(
                "table {}: schema has {} columns, data has {}",
                schema.name,
                schema.columns.len(),
                columns.len()
            ));
        }
        let rows = columns.first().map_or(0, ColumnData::len);
        for (def, data) in schema.columns.iter().zip(&columns) {
            if def.column_type != data.column_type() {
                return Err(format!(
                    "table {}: column {} is declared {:?} but holds {:?}",
                    schema.name,
                    def.name,
                    def.column_type,
                    data.column_type()
                ));
            }
            if data.len() != rows {
                return Err(format!(
                    "table {}: column {} has {} rows, the first column {}",
                    schema.name,
                    def.name,
                    data.len(),
                    rows
                ));
            }
        }
        Ok(Table { schema, columns })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, ColumnData::len)
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.schema
            .column_index(name)
            .and_then(|index| self.columns.get(index))
    }

    /// The f64 values of column `name`, or an error saying why not.
    pub fn f64_column(&self, name: &str) -> Result<&[f64], String> {
        match self.column(name) {
            Some(ColumnData::F64(c)) => Ok(&c.values),
            Some(other) => Err(format!(
                "table {}: column {name} is {:?}, not f64",
                self.schema.name,
                other.column_type()
            )),
            None => Err(format!("table {}: no column {name}", self.schema.name)),
        }
    }

    /// Bytes the values occupy uncompressed (fixed width, or offsets + data, plus validity bitmaps).
    pub fn raw_bytes(&self) -> u64 {
        self.columns.iter().map(column_raw_bytes).sum()
    }
}

/// Uncompressed bytes of one column: what a plain array in memory costs.
pub fn column_raw_bytes(column: &ColumnData) -> u64 {
    let rows = column.len() as u64;
    let values = match column {
        ColumnData::Bool(_) => rows.div_ceil(8),
        ColumnData::I8(_) => rows,
        ColumnData::I16(_) => rows * 2,
        ColumnData::I32(_) | ColumnData::F32(_) => rows * 4,
        ColumnData::I64(_) | ColumnData::F64(_) => rows * 8,
        ColumnData::Utf8(c) | ColumnData::Binary(c) => 4 * (rows + 1) + c.data.len() as u64,
    };
    let validity = if column.validity().is_some() {
        rows.div_ceil(8)
    } else {
        0
    };
    values + validity
}

/// Appends `src` to `dst` (same type), keeping validity.
pub fn append_column(dst: &mut ColumnData, src: &ColumnData) -> std::result::Result<(), String> {
    fn merge_validity(
        dst: &mut Option<Bitmap>,
        dst_len: usize,
        src: Option<&Bitmap>,
        src_len: usize,
    ) {
        if dst.is_none() && src.is_none() {
            return;
        }
        let bits = dst.get_or_insert_with(|| Bitmap::new_set(dst_len));
        for row in 0..src_len {
            bits.push(src.is_none_or(|s| s.get(row)));
        }
    }
    fn var(dst: &mut VarColumn, src: &VarColumn) -> std::result::Result<(), String> {
        let total = dst.data.len() + src.data.len();
        let base = u32::try_from(dst.data.len()).map_err(|_| "column over 4 GiB".to_string())?;
        if u32::try_from(total).is_err() {
            return Err("a variable-length column over 4 GiB".to_string());
        }
        let dst_len = dst.len();
        merge_validity(&mut dst.validity, dst_len, src.validity.as_ref(), src.len());
        dst.data.extend_from_slice(&src.data);
        dst.offsets
            .extend(src.offsets.iter().skip(1).map(|offset| base + offset));
        Ok(())
    }
    macro_rules! prim {
        ($d:expr, $s:expr) => {{
            let dst_len = $d.values.len();
            merge_validity(
                &mut $d.validity,
                dst_len,
                $s.validity.as_ref(),
                $s.values.len(),
            );
            $d.values.extend_from_slice(&$s.values);
            Ok(())
        }};
    }
    match (dst, src) {
        (ColumnData::Bool(d), ColumnData::Bool(s)) => {
            let dst_len = d.values.len();
            merge_validity(
                &mut d.validity,
                dst_len,
                s.validity.as_ref(),
                s.values.len(),
            );
            for row in 0..s.values.len() {
                d.values.push(s.values.get(row));
            }
            Ok(())
        }
        (ColumnData::I8(d), ColumnData::I8(s)) => prim!(d, s),
        (ColumnData::I16(d), ColumnData::I16(s)) => prim!(d, s),
        (ColumnData::I32(d), ColumnData::I32(s)) => prim!(d, s),
        (ColumnData::I64(d), ColumnData::I64(s)) => prim!(d, s),
        (ColumnData::F32(d), ColumnData::F32(s)) => prim!(d, s),
        (ColumnData::F64(d), ColumnData::F64(s)) => prim!(d, s),
        (ColumnData::Utf8(d), ColumnData::Utf8(s))
        | (ColumnData::Binary(d), ColumnData::Binary(s)) => var(d, s),
        (d, s) => Err(format!(
            "cannot append {:?} to {:?}",
            s.column_type(),
            d.column_type()
        )),
    }
}
