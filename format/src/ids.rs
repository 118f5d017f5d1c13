//! Numeric identifiers stored on disk. They are stable forever: a changed
//! meaning gets a new id, and `tests/constants.rs` pins every value.

/// Logical type of a column; stored as one byte in the footer.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Boolean, stored as a bitmap.
    Bool = 1,
    /// Signed 8-bit integer.
    I8 = 2,
    /// Signed 16-bit integer.
    I16 = 3,
    /// Signed 32-bit integer.
    I32 = 4,
    /// Signed 64-bit integer.
    I64 = 5,
    /// IEEE 754 binary32.
    F32 = 6,
    /// IEEE 754 binary64.
    F64 = 7,
    /// Variable-length UTF-8 text.
    Utf8 = 8,
    /// Variable-length bytes.
    Binary = 9,
}

impl ColumnType {
    /// Every column type, in id order.
    pub const ALL: [ColumnType; 9] = [
        ColumnType::Bool,
        ColumnType::I8,
        ColumnType::I16,
        ColumnType::I32,
        ColumnType::I64,
        ColumnType::F32,
        ColumnType::F64,
        ColumnType::Utf8,
        ColumnType::Binary,
    ];

    /// The on-disk id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk id; `None` for 0 and unknown ids.
    pub const fn from_id(id: u8) -> Option<ColumnType> {
        match id {
            1 => Some(ColumnType::Bool),
            2 => Some(ColumnType::I8),
            3 => Some(ColumnType::I16),
            4 => Some(ColumnType::I32),
            5 => Some(ColumnType::I64),
            6 => Some(ColumnType::F32),
            7 => Some(ColumnType::F64),
            8 => Some(ColumnType::Utf8),
            9 => Some(ColumnType::Binary),
            _ => None,
        }
    }

    /// Width in bytes of one value for fixed-width types (`None` for bool,
    /// utf8 and binary).
    pub const fn fixed_width(self) -> Option<usize> {
        match self {
            ColumnType::I8 => Some(1),
            ColumnType::I16 => Some(2),
            ColumnType::I32 | ColumnType::F32 => Some(4),
            ColumnType::I64 | ColumnType::F64 => Some(8),
            ColumnType::Bool | ColumnType::Utf8 | ColumnType::Binary => None,
        }
    }

    /// True for the variable-length types (utf8, binary).
    pub const fn is_var_len(self) -> bool {
        matches!(self, ColumnType::Utf8 | ColumnType::Binary)
    }

    /// True for the integer types.
    pub const fn is_int(self) -> bool {
        matches!(
            self,
            ColumnType::I8 | ColumnType::I16 | ColumnType::I32 | ColumnType::I64
        )
    }

    /// True for the float types.
    pub const fn is_float(self) -> bool {
        matches!(self, ColumnType::F32 | ColumnType::F64)
    }

    /// Whether `encoding` is defined for this type (spec table "encodings").
    pub const fn supports(self, encoding: Encoding) -> bool {
        match encoding {
            Encoding::Plain => true,
            Encoding::ForBitpack | Encoding::DeltaBitpack | Encoding::Sparse => self.is_int(),
            Encoding::Dictionary => !matches!(self, ColumnType::Bool),
            Encoding::ByteShuffle | Encoding::Alp | Encoding::FloatFor => self.is_float(),
        }
    }
}

/// How the values section of a block is encoded; stored as one byte per block.
/// The byte layout of each encoding is in `SPEC.md`, part 1.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Raw little-endian values (bool: a bitmap; utf8/binary: bit-packed
    /// lengths followed by the bytes).
    Plain = 1,
    /// Frame of reference: `value - base` bit-packed at a fixed width (ints).
    ForBitpack = 2,
    /// First value, then `delta - min_delta` bit-packed (sorted ints, ids).
    DeltaBitpack = 3,
    /// Dictionary of distinct values plus bit-packed codes.
    Dictionary = 4,
    /// Byte planes of floats (byte `b` of every value together); pays with lz4.
    ByteShuffle = 5,
    /// Decimal floats as integers `round(v * 10^e)`, FOR bit-packed, plus
    /// exceptions stored raw (ALP-like).
    Alp = 6,
    /// Floats mapped to order-preserving unsigned integers, FOR bit-packed.
    FloatFor = 7,
    /// One fill value plus the positions (bit-packed gaps) and values (FOR or
    /// dictionary codes) of the rows that differ from it (ints; flags, ids of
    /// parents, counts that are mostly 0).
    Sparse = 8,
}

impl Encoding {
    /// Every encoding, in id order.
    pub const ALL: [Encoding; 8] = [
        Encoding::Plain,
        Encoding::ForBitpack,
        Encoding::DeltaBitpack,
        Encoding::Dictionary,
        Encoding::ByteShuffle,
        Encoding::Alp,
        Encoding::FloatFor,
        Encoding::Sparse,
    ];

    /// The on-disk id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk id; `None` for 0 (reserved) and unknown ids.
    pub const fn from_id(id: u8) -> Option<Encoding> {
        match id {
            1 => Some(Encoding::Plain),
            2 => Some(Encoding::ForBitpack),
            3 => Some(Encoding::DeltaBitpack),
            4 => Some(Encoding::Dictionary),
            5 => Some(Encoding::ByteShuffle),
            6 => Some(Encoding::Alp),
            7 => Some(Encoding::FloatFor),
            8 => Some(Encoding::Sparse),
            _ => None,
        }
    }
}

/// General-purpose compression applied to a whole values section after the
/// encoding; stored as one byte per block.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as encoded.
    None = 1,
    /// LZ4 block format (no frame), as produced by `lz4_flex::block`.
    Lz4 = 2,
}

impl Compression {
    /// The on-disk id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk id; `None` for 0 (reserved) and unknown ids.
    pub const fn from_id(id: u8) -> Option<Compression> {
        match id {
            1 => Some(Compression::None),
            2 => Some(Compression::Lz4),
            _ => None,
        }
    }
}
