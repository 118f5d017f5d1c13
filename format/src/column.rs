//! In-memory columns: what the writer takes and the decoder produces.
//!
//! Plain typed vectors, no per-row boxing, so the vectorized kernel consumes
//! them directly. Validity is a separate bitmap (`None` = no nulls). Values in
//! null slots are not part of the data: a reader must not rely on them (the v1
//! writer stores the previous non-null value there, which keeps
//! frame-of-reference and delta ranges tight).

use crate::error::{FormatError, Result};
use crate::ids::ColumnType;

/// A bitmap of `len` bits stored in little-endian `u64` words: bit `i` is
/// `(words[i / 64] >> (i % 64)) & 1`. Bits at positions `>= len` are zero.
/// Its little-endian byte image is the on-disk bitmap format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    /// A bitmap of `len` zero bits.
    pub fn new_unset(len: usize) -> Bitmap {
        Bitmap {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// A bitmap of `len` one bits.
    pub fn new_set(len: usize) -> Bitmap {
        let mut bitmap = Bitmap {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        bitmap.clear_tail();
        bitmap
    }

    /// A bitmap from booleans.
    pub fn from_bools(bits: &[bool]) -> Bitmap {
        let mut bitmap = Bitmap::new_unset(bits.len());
        for (word, chunk) in bitmap.words.iter_mut().zip(bits.chunks(64)) {
            for (bit_index, &bit) in chunk.iter().enumerate() {
                *word |= u64::from(bit) << bit_index;
            }
        }
        bitmap
    }

    /// A bitmap from words; bits at positions `>= len` are cleared.
    /// `words.len()` must be `len.div_ceil(64)`.
    pub fn from_words(words: Vec<u64>, len: usize) -> Bitmap {
        assert_eq!(
            words.len(),
            len.div_ceil(64),
            "word count does not match bit count"
        );
        let mut bitmap = Bitmap { words, len };
        bitmap.clear_tail();
        bitmap
    }

    fn clear_tail(&mut self) {
        let tail_bits = self.len % 64;
        if tail_bits != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << tail_bits) - 1;
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the bitmap has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `index`. Panics when `index >= len` (a programming error).
    pub fn get(&self, index: usize) -> bool {
        assert!(index < self.len, "bit index out of range");
        (self.words[index / 64] >> (index % 64)) & 1 == 1
    }

    /// Sets bit `index` to `value`. Panics when `index >= len`.
    pub fn set(&mut self, index: usize, value: bool) {
        assert!(index < self.len, "bit index out of range");
        let mask = 1u64 << (index % 64);
        if value {
            self.words[index / 64] |= mask;
        } else {
            self.words[index / 64] &= !mask;
        }
    }

    /// Appends one bit.
    pub fn push(&mut self, value: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        let index = self.len;
        self.len += 1;
        self.set(index, value);
    }

    /// Number of one bits.
    pub fn count_ones(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    /// The words (`len.div_ceil(64)` of them; bits past `len` are zero).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Iterates over the bits.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).map(move |index| (self.words[index / 64] >> (index % 64)) & 1 == 1)
    }

    /// Resizes to `len` bits and hands out the words to be overwritten
    /// (reusing the allocation). The caller must keep bits past `len` zero.
    /// Appends the bits of `other`, a word at a time.
    pub fn extend_from(&mut self, other: &Bitmap) {
        let shift = self.len % 64;
        if shift == 0 {
            self.words.extend_from_slice(&other.words);
        } else {
            for &word in &other.words {
                if let Some(last) = self.words.last_mut() {
                    *last |= word << shift;
                }
                self.words.push(word >> (64 - shift));
            }
        }
        self.len += other.len;
        self.words.truncate(self.len.div_ceil(64));
    }

    /// Appends `count` set bits.
    pub fn extend_set(&mut self, count: usize) {
        self.extend_from(&Bitmap::new_set(count));
    }

    pub(crate) fn reset_words(&mut self, len: usize) -> &mut Vec<u64> {
        self.len = len;
        self.words.clear();
        self.words.resize(len.div_ceil(64), 0);
        &mut self.words
    }
}

/// A column of fixed-width values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrimitiveColumn<T> {
    /// One value per row (null slots hold an unspecified value).
    pub values: Vec<T>,
    /// Validity (bit set = value present); `None` when no value is null.
    pub validity: Option<Bitmap>,
}

impl<T: Copy + Default> PrimitiveColumn<T> {
    /// A column without nulls.
    pub fn new(values: Vec<T>) -> Self {
        PrimitiveColumn {
            values,
            validity: None,
        }
    }

    /// A column from optional values (`None` = null; null slots hold
    /// `T::default()`).
    pub fn from_options(values: &[Option<T>]) -> Self {
        let validity = values
            .iter()
            .any(Option::is_none)
            .then(|| Bitmap::from_bools(&values.iter().map(Option::is_some).collect::<Vec<_>>()));
        PrimitiveColumn {
            values: values.iter().map(|v| v.unwrap_or_default()).collect(),
            validity,
        }
    }

    /// Value of row `index` (`None` when null). Panics when out of range.
    pub fn get(&self, index: usize) -> Option<T> {
        match &self.validity {
            Some(validity) if !validity.get(index) => None,
            _ => Some(self.values[index]),
        }
    }
}

/// A column of booleans, stored as a bitmap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoolColumn {
    /// One bit per row (null slots hold an unspecified bit).
    pub values: Bitmap,
    /// Validity; `None` when no value is null.
    pub validity: Option<Bitmap>,
}

impl BoolColumn {
    /// A column from optional booleans.
    pub fn from_options(values: &[Option<bool>]) -> Self {
        let validity = values
            .iter()
            .any(Option::is_none)
            .then(|| Bitmap::from_bools(&values.iter().map(Option::is_some).collect::<Vec<_>>()));
        let bits: Vec<bool> = values.iter().map(|v| v.unwrap_or(false)).collect();
        BoolColumn {
            values: Bitmap::from_bools(&bits),
            validity,
        }
    }
}

/// A column of variable-length values (utf8 or binary): value `i` is
/// `data[offsets[i]..offsets[i + 1]]`. `offsets` has `len + 1` entries, starts
/// at 0, never decreases and ends at `data.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarColumn {
    /// `len + 1` offsets into `data`.
    pub offsets: Vec<u32>,
    /// Concatenated values.
    pub data: Vec<u8>,
    /// Validity; `None` when no value is null. Null slots may hold any bytes.
    pub validity: Option<Bitmap>,
}

impl Default for VarColumn {
    fn default() -> Self {
        VarColumn {
            offsets: vec![0],
            data: Vec::new(),
            validity: None,
        }
    }
}

impl VarColumn {
    /// A column from optional byte strings (`None` = null, stored empty).
    /// Panics when the total exceeds `u32::MAX` bytes.
    pub fn from_options<B: AsRef<[u8]>>(values: &[Option<B>]) -> Self {
        let mut column = VarColumn::default();
        for value in values {
            column.push(value.as_ref().map(AsRef::as_ref));
        }
        column
    }

    /// Appends one value (`None` = null). Panics when the total exceeds
    /// `u32::MAX` bytes.
    pub fn push(&mut self, value: Option<&[u8]>) {
        let row = self.len();
        if value.is_none() && self.validity.is_none() {
            self.validity = Some(Bitmap::new_set(row));
        }
        if let Some(validity) = &mut self.validity {
            validity.push(value.is_some());
        }
        self.data.extend_from_slice(value.unwrap_or_default());
        let end = u32::try_from(self.data.len()).ok();
        self.offsets
            .push(end.unwrap_or_else(|| unreachable!("VarColumn over 4 GiB")));
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of row `index` (`None` when null). Panics when out of range.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        match &self.validity {
            Some(validity) if !validity.get(index) => None,
            _ => Some(self.value(index)),
        }
    }

    /// Bytes of row `index`, ignoring validity. Panics when out of range.
    pub fn value(&self, index: usize) -> &[u8] {
        &self.data[self.offsets[index] as usize..self.offsets[index + 1] as usize]
    }
}

/// One column of one row group in memory, tagged by type.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// [`ColumnType::Bool`].
    Bool(BoolColumn),
    /// [`ColumnType::I8`].
    I8(PrimitiveColumn<i8>),
    /// [`ColumnType::I16`].
    I16(PrimitiveColumn<i16>),
    /// [`ColumnType::I32`].
    I32(PrimitiveColumn<i32>),
    /// [`ColumnType::I64`].
    I64(PrimitiveColumn<i64>),
    /// [`ColumnType::F32`].
    F32(PrimitiveColumn<f32>),
    /// [`ColumnType::F64`].
    F64(PrimitiveColumn<f64>),
    /// [`ColumnType::Utf8`]; the data is valid UTF-8 and every offset is on a
    /// character boundary.
    Utf8(VarColumn),
    /// [`ColumnType::Binary`].
    Binary(VarColumn),
}

impl ColumnData {
    /// An empty column of type `column_type`.
    pub fn empty(column_type: ColumnType) -> ColumnData {
        match column_type {
            ColumnType::Bool => ColumnData::Bool(BoolColumn::default()),
            ColumnType::I8 => ColumnData::I8(PrimitiveColumn::default()),
            ColumnType::I16 => ColumnData::I16(PrimitiveColumn::default()),
            ColumnType::I32 => ColumnData::I32(PrimitiveColumn::default()),
            ColumnType::I64 => ColumnData::I64(PrimitiveColumn::default()),
            ColumnType::F32 => ColumnData::F32(PrimitiveColumn::default()),
            ColumnType::F64 => ColumnData::F64(PrimitiveColumn::default()),
            ColumnType::Utf8 => ColumnData::Utf8(VarColumn::default()),
            ColumnType::Binary => ColumnData::Binary(VarColumn::default()),
        }
    }

    /// The column type.
    pub fn column_type(&self) -> ColumnType {
        match self {
            ColumnData::Bool(_) => ColumnType::Bool,
            ColumnData::I8(_) => ColumnType::I8,
            ColumnData::I16(_) => ColumnType::I16,
            ColumnData::I32(_) => ColumnType::I32,
            ColumnData::I64(_) => ColumnType::I64,
            ColumnData::F32(_) => ColumnType::F32,
            ColumnData::F64(_) => ColumnType::F64,
            ColumnData::Utf8(_) => ColumnType::Utf8,
            ColumnData::Binary(_) => ColumnType::Binary,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Bool(c) => c.values.len(),
            ColumnData::I8(c) => c.values.len(),
            ColumnData::I16(c) => c.values.len(),
            ColumnData::I32(c) => c.values.len(),
            ColumnData::I64(c) => c.values.len(),
            ColumnData::F32(c) => c.values.len(),
            ColumnData::F64(c) => c.values.len(),
            ColumnData::Utf8(c) | ColumnData::Binary(c) => c.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The validity bitmap (`None` = no nulls).
    pub fn validity(&self) -> Option<&Bitmap> {
        match self {
            ColumnData::Bool(c) => c.validity.as_ref(),
            ColumnData::I8(c) => c.validity.as_ref(),
            ColumnData::I16(c) => c.validity.as_ref(),
            ColumnData::I32(c) => c.validity.as_ref(),
            ColumnData::I64(c) => c.validity.as_ref(),
            ColumnData::F32(c) => c.validity.as_ref(),
            ColumnData::F64(c) => c.validity.as_ref(),
            ColumnData::Utf8(c) | ColumnData::Binary(c) => c.validity.as_ref(),
        }
    }

    pub(crate) fn validity_mut(&mut self) -> &mut Option<Bitmap> {
        match self {
            ColumnData::Bool(c) => &mut c.validity,
            ColumnData::I8(c) => &mut c.validity,
            ColumnData::I16(c) => &mut c.validity,
            ColumnData::I32(c) => &mut c.validity,
            ColumnData::I64(c) => &mut c.validity,
            ColumnData::F32(c) => &mut c.validity,
            ColumnData::F64(c) => &mut c.validity,
            ColumnData::Utf8(c) | ColumnData::Binary(c) => &mut c.validity,
        }
    }

    /// Appends the rows of `other` (same type): values copied whole,
    /// validity a word at a time. The scan layer uses it to decode several
    /// row groups into one batch.
    pub fn append(&mut self, other: &ColumnData) -> Result<()> {
        if self.column_type() != other.column_type() {
            return Err(FormatError::invalid(format!(
                "cannot append a {:?} column to a {:?} column",
                other.column_type(),
                self.column_type()
            )));
        }
        if let (
            ColumnData::Utf8(d) | ColumnData::Binary(d),
            ColumnData::Utf8(s) | ColumnData::Binary(s),
        ) = (&*self, other)
        {
            let total = d.data.len() as u64 + s.data.len() as u64;
            if total > u64::from(u32::MAX) {
                return Err(FormatError::invalid(format!(
                    "appended strings would hold {total} bytes (the limit is 4 GiB)"
                )));
            }
        }
        let (rows, added) = (self.len(), other.len());
        // Validity first: it depends on the row counts only.
        let validity = match (self.validity_mut().take(), other.validity()) {
            (None, None) => None,
            (mine, theirs) => {
                let mut bits = mine.unwrap_or_else(|| Bitmap::new_set(rows));
                match theirs {
                    Some(theirs) => bits.extend_from(theirs),
                    None => bits.extend_set(added),
                }
                Some(bits)
            }
        };
        match (&mut *self, other) {
            (ColumnData::Bool(d), ColumnData::Bool(s)) => d.values.extend_from(&s.values),
            (ColumnData::I8(d), ColumnData::I8(s)) => d.values.extend_from_slice(&s.values),
            (ColumnData::I16(d), ColumnData::I16(s)) => d.values.extend_from_slice(&s.values),
            (ColumnData::I32(d), ColumnData::I32(s)) => d.values.extend_from_slice(&s.values),
            (ColumnData::I64(d), ColumnData::I64(s)) => d.values.extend_from_slice(&s.values),
            (ColumnData::F32(d), ColumnData::F32(s)) => d.values.extend_from_slice(&s.values),
            (ColumnData::F64(d), ColumnData::F64(s)) => d.values.extend_from_slice(&s.values),
            (ColumnData::Utf8(d), ColumnData::Utf8(s))
            | (ColumnData::Binary(d), ColumnData::Binary(s)) => {
                // Checked above: every offset fits in u32.
                let base = d.data.len() as u32;
                d.data.extend_from_slice(&s.data);
                d.offsets
                    .extend(s.offsets.iter().skip(1).map(|&o| o + base));
            }
            _ => {}
        }
        *self.validity_mut() = validity;
        Ok(())
    }

    /// Number of null rows.
    pub fn null_count(&self) -> usize {
        self.validity()
            .map_or(0, |validity| validity.len() - validity.count_ones())
    }

    /// Whether row `index` holds a value. Panics when out of range.
    pub fn is_valid(&self, index: usize) -> bool {
        assert!(index < self.len(), "row index out of range");
        self.validity().is_none_or(|validity| validity.get(index))
    }

    /// Logical equality: same type, same length, same nulls, and the same
    /// non-null values, floats compared bit for bit (so NaN == NaN and
    /// -0.0 != 0.0). Values in null slots are ignored.
    pub fn logical_eq(&self, other: &ColumnData) -> bool {
        if self.column_type() != other.column_type() || self.len() != other.len() {
            return false;
        }
        let rows = self.len();
        if (0..rows).any(|row| self.is_valid(row) != other.is_valid(row)) {
            return false;
        }
        let valid = |row: &usize| self.is_valid(*row);
        match (self, other) {
            (ColumnData::Bool(a), ColumnData::Bool(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values.get(row) == b.values.get(row)),
            (ColumnData::I8(a), ColumnData::I8(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values[row] == b.values[row]),
            (ColumnData::I16(a), ColumnData::I16(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values[row] == b.values[row]),
            (ColumnData::I32(a), ColumnData::I32(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values[row] == b.values[row]),
            (ColumnData::I64(a), ColumnData::I64(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values[row] == b.values[row]),
            (ColumnData::F32(a), ColumnData::F32(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values[row].to_bits() == b.values[row].to_bits()),
            (ColumnData::F64(a), ColumnData::F64(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.values[row].to_bits() == b.values[row].to_bits()),
            (ColumnData::Utf8(a), ColumnData::Utf8(b))
            | (ColumnData::Binary(a), ColumnData::Binary(b)) => (0..rows)
                .filter(valid)
                .all(|row| a.value(row) == b.value(row)),
            _ => false,
        }
    }
}
