//! Block decoders. No I/O: the caller hands over the block's bytes (the range
//! given by [`BlockRef::range`]).

use crate::column::{Bitmap, ColumnData, VarColumn};
use crate::encode::is_utf8_column;
use crate::error::{BadResult, FormatError, Result, bad, ensure};
use crate::ids::{Compression, Encoding};
use crate::kernels::{self, Lane, Unpacked, bits_needed, packed_len, unpack_batches};
use crate::limits::*;
use crate::meta::{BlockRef, Cursor, validity_section_len};

/// Decodes blocks, keeping scratch buffers (lz4 output, dictionaries) between
/// calls so that a steady-state scan allocates nothing per block.
#[derive(Debug, Default)]
pub struct BlockDecoder {
    lz4: Vec<u8>,
    dict_words: Vec<u64>,
    dict_offsets: Vec<u32>,
    codes: Vec<u32>,
    spare_validity: Option<Bitmap>,
    /// [`BlockDecoder::decode_append`]'s block, before it is appended.
    spare_column: Option<ColumnData>,
}

/// Decodes one block into a new [`ColumnData`] (allocates; see
/// [`BlockDecoder`] for the reusing form).
pub fn decode_block(block: &BlockRef<'_>, bytes: &[u8]) -> Result<ColumnData> {
    BlockDecoder::new().decode(block, bytes)
}

/// Decodes one block into `out`, reusing `out`'s allocations when it already
/// has the right type (allocates scratch; see [`BlockDecoder`]).
pub fn decode_block_into(block: &BlockRef<'_>, bytes: &[u8], out: &mut ColumnData) -> Result<()> {
    BlockDecoder::new().decode_into(block, bytes, out)
}

impl BlockDecoder {
    /// A decoder with empty scratch buffers.
    pub fn new() -> Self {
        BlockDecoder::default()
    }

    /// Decodes one block into a new [`ColumnData`].
    pub fn decode(&mut self, block: &BlockRef<'_>, bytes: &[u8]) -> Result<ColumnData> {
        let mut out = ColumnData::empty(block.column.column_type);
        self.decode_into(block, bytes, &mut out)?;
        Ok(out)
    }

    /// Verifies the checksum of `bytes` (exactly the block's bytes) and
    /// decodes them into `out`, reusing its vectors when `out` already has the
    /// column's type. On error `out` holds unspecified (but valid) contents.
    pub fn decode_into(
        &mut self,
        block: &BlockRef<'_>,
        bytes: &[u8],
        out: &mut ColumnData,
    ) -> Result<()> {
        self.decode_checked(block, bytes, out, true)
    }

    /// [`decode_into`](Self::decode_into), verifying the checksum only when
    /// `verify`: for a reader that verified these same immutable bytes
    /// before (a block of a published file, decoded again from its map; as
    /// a block cache does not re-check a cached block). Lengths and the
    /// encoding's own bounds are always checked: bad bytes still give an
    /// error, never a panic.
    pub fn decode_checked(
        &mut self,
        block: &BlockRef<'_>,
        bytes: &[u8],
        out: &mut ColumnData,
        verify: bool,
    ) -> Result<()> {
        if bytes.len() as u64 != block.len() {
            return Err(FormatError::invalid(format!(
                "{}: expected {} bytes, got {}",
                block.location(),
                block.len(),
                bytes.len()
            )));
        }
        let crc = if verify {
            crate::checksum::crc32c(bytes)
        } else {
            block.meta.crc32c
        };
        if crc != block.meta.crc32c {
            return Err(FormatError::corrupt(
                block.location(),
                format!(
                    "checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                    block.meta.crc32c
                ),
            ));
        }
        self.decode_verified(block, bytes, out)
            .map_err(|bad| bad.at(block.location()))
    }

    /// [`decode_checked`](Self::decode_checked), appending the block's rows
    /// to the rows `out` holds already (several row groups in one batch).
    /// On error `out` holds unspecified (but valid) contents.
    pub fn decode_append(
        &mut self,
        block: &BlockRef<'_>,
        bytes: &[u8],
        out: &mut ColumnData,
        verify: bool,
    ) -> Result<()> {
        if out.is_empty() || out.column_type() != block.column.column_type {
            return self.decode_checked(block, bytes, out, verify);
        }
        let mut spare = self
            .spare_column
            .take()
            .unwrap_or_else(|| ColumnData::empty(block.column.column_type));
        let outcome = self
            .decode_checked(block, bytes, &mut spare, verify)
            .and_then(|()| out.append(&spare));
        self.spare_column = Some(spare);
        outcome
    }

    fn decode_verified(
        &mut self,
        block: &BlockRef<'_>,
        bytes: &[u8],
        out: &mut ColumnData,
    ) -> BadResult<()> {
        let meta = block.meta;
        let column_type = block.column.column_type;
        let rows = meta.row_count as usize;
        // The footer decoder checked all of this; a hand-built BlockRef may not.
        ensure!(
            meta.row_count <= MAX_ROWS_PER_ROW_GROUP,
            "{rows} rows over the limit"
        );
        ensure!(
            meta.null_count <= meta.row_count,
            "null count over the row count"
        );
        ensure!(
            column_type.supports(meta.encoding),
            "encoding {:?} not defined for {column_type:?}",
            meta.encoding
        );
        let validity_len = meta.validity_len as usize;
        let expected_validity_len = if meta.null_count > 0 {
            validity_section_len(meta.row_count) as usize
        } else {
            0
        };
        ensure!(
            validity_len == expected_validity_len,
            "validity section length {validity_len}"
        );
        ensure!(
            validity_len <= bytes.len(),
            "validity section past the block end"
        );
        let (validity_bytes, stored) = bytes.split_at(validity_len);

        if out.column_type() != column_type {
            *out = ColumnData::empty(column_type);
        }
        let BlockDecoder {
            lz4,
            dict_words,
            dict_offsets,
            codes,
            spare_validity,
            ..
        } = self;

        let validity_slot = out.validity_mut();
        if meta.null_count > 0 {
            let mut bitmap = validity_slot
                .take()
                .or_else(|| spare_validity.take())
                .unwrap_or_default();
            decode_bitmap(validity_bytes, rows, &mut bitmap)?;
            ensure!(
                bitmap.count_ones() == rows - meta.null_count as usize,
                "validity bitmap does not match the null count {}",
                meta.null_count
            );
            *validity_slot = Some(bitmap);
        } else if let Some(bitmap) = validity_slot.take() {
            *spare_validity = Some(bitmap);
        }

        let raw_len = meta.values_raw_len as usize;
        let raw: &[u8] = match meta.compression {
            Compression::None => {
                ensure!(
                    raw_len == stored.len(),
                    "values length {raw_len} differs from stored {}",
                    stored.len()
                );
                stored
            }
            Compression::Lz4 => {
                ensure!(
                    raw_len as u64 <= stored.len() as u64 * LZ4_MAX_RATIO + 64,
                    "lz4 values length {raw_len} impossible from {} bytes",
                    stored.len()
                );
                if lz4.len() < raw_len {
                    lz4.resize(raw_len, 0);
                }
                let target = &mut lz4[..raw_len];
                match lz4_flex::block::decompress_into(stored, target) {
                    Ok(written) if written == raw_len => {}
                    Ok(written) => return bad!("lz4 produced {written} bytes, expected {raw_len}"),
                    Err(err) => return bad!("lz4: {err}"),
                }
                &lz4[..raw_len]
            }
        };

        let encoding = meta.encoding;
        match out {
            ColumnData::Bool(column) => {
                ensure!(encoding == Encoding::Plain, "bool encoding {encoding:?}");
                ensure!(
                    raw.len() == validity_section_len(meta.row_count) as usize,
                    "bool bitmap length {}",
                    raw.len()
                );
                decode_bitmap(raw, rows, &mut column.values)
            }
            ColumnData::I8(column) => decode_lanes(
                encoding,
                raw,
                rows,
                &mut column.values,
                Scratch {
                    dict_words,
                    positions: codes,
                },
                i8::order_key,
            ),
            ColumnData::I16(column) => decode_lanes(
                encoding,
                raw,
                rows,
                &mut column.values,
                Scratch {
                    dict_words,
                    positions: codes,
                },
                i16::order_key,
            ),
            ColumnData::I32(column) => decode_lanes(
                encoding,
                raw,
                rows,
                &mut column.values,
                Scratch {
                    dict_words,
                    positions: codes,
                },
                i32::order_key,
            ),
            ColumnData::I64(column) => decode_lanes(
                encoding,
                raw,
                rows,
                &mut column.values,
                Scratch {
                    dict_words,
                    positions: codes,
                },
                i64::order_key,
            ),
            ColumnData::F32(column) => {
                decode_f32(encoding, raw, rows, &mut column.values, dict_words)
            }
            ColumnData::F64(column) => {
                decode_f64(encoding, raw, rows, &mut column.values, dict_words)
            }
            ColumnData::Utf8(column) => {
                decode_var(encoding, raw, rows, column, dict_offsets, codes, true)
            }
            ColumnData::Binary(column) => {
                decode_var(encoding, raw, rows, column, dict_offsets, codes, false)
            }
        }
    }
}

/// Reads a bitmap section (whole little-endian words) of `rows` bits.
fn decode_bitmap(bytes: &[u8], rows: usize, bitmap: &mut Bitmap) -> BadResult<()> {
    ensure!(
        bytes.len() == rows.div_ceil(64) * 8,
        "bitmap of {} bytes for {rows} rows",
        bytes.len()
    );
    let words = bitmap.reset_words(rows);
    kernels::bitmap_from_bytes(bytes, words);
    if !rows.is_multiple_of(64)
        && let Some(last) = words.last()
    {
        ensure!(last >> (rows % 64) == 0, "bitmap padding bits are set");
    }
    Ok(())
}

/// Resizes `out` to `rows` without clearing it first: old values are
/// overwritten, only growth is zero-filled.
fn sized<T: Copy + Default>(out: &mut Vec<T>, rows: usize) -> &mut [T] {
    out.resize(rows, T::default());
    out.as_mut_slice()
}

/// Checks that `value` (64-bit, sign- or zero-extended) is representable in `T`.
fn fits<T: Lane>(value: u64) -> bool {
    T::from_u64(value).to_u64() == value
}

/// Reused buffers of the integer decoders.
struct Scratch<'a> {
    dict_words: &'a mut Vec<u64>,
    positions: &'a mut Vec<u32>,
}

fn decode_lanes<T: Lane>(
    encoding: Encoding,
    raw: &[u8],
    rows: usize,
    out: &mut Vec<T>,
    scratch: Scratch<'_>,
    key: fn(T) -> u64,
) -> BadResult<()> {
    let Scratch {
        dict_words,
        positions,
    } = scratch;
    let out = sized(out, rows);
    match encoding {
        Encoding::Plain => decode_plain(raw, out),
        Encoding::ForBitpack => {
            let mut cursor = Cursor::new(raw);
            let base = cursor.u64()?;
            let width = u32::from(cursor.u8()?);
            cursor.zeros(7, "FOR header")?;
            ensure!(width <= T::BITS, "bit width {width} over {}", T::BITS);
            ensure!(fits::<T>(base), "FOR base {base:#x} out of range");
            let stream = cursor.take(packed_len(rows, width))?;
            ensure!(
                cursor.remaining() == 0,
                "{} trailing bytes",
                cursor.remaining()
            );
            unpack_batches(stream, width, rows, |start, values| {
                kernels::add_base(base, values, &mut out[start..]);
                Ok(())
            })
        }
        Encoding::DeltaBitpack => {
            let mut cursor = Cursor::new(raw);
            let first = cursor.u64()?;
            let min_delta = cursor.u64()?;
            let width = u32::from(cursor.u8()?);
            cursor.zeros(7, "delta header")?;
            ensure!(width <= T::BITS, "bit width {width} over {}", T::BITS);
            ensure!(
                fits::<T>(first) && fits::<T>(min_delta),
                "delta header values out of range"
            );
            let deltas = rows.saturating_sub(1);
            let stream = cursor.take(packed_len(deltas, width))?;
            ensure!(
                cursor.remaining() == 0,
                "{} trailing bytes",
                cursor.remaining()
            );
            let Some((head, tail)) = out.split_first_mut() else {
                return Ok(());
            };
            *head = T::from_u64(first);
            let mut acc = *head;
            let step = T::from_u64(min_delta);
            unpack_batches(stream, width, deltas, |start, values| {
                acc = kernels::prefix_sum(acc, step, values, &mut tail[start..]);
                Ok(())
            })
        }
        Encoding::Dictionary => decode_dict(raw, out, dict_words, key),
        Encoding::Sparse => decode_sparse(raw, out, dict_words, positions, key),
        other => bad!("encoding {other:?} not defined for this type"),
    }
}

fn decode_plain<T: Lane>(raw: &[u8], out: &mut [T]) -> BadResult<()> {
    let out_bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
    ensure!(
        raw.len() == out_bytes.len(),
        "plain values of {} bytes, expected {}",
        raw.len(),
        out_bytes.len()
    );
    out_bytes.copy_from_slice(raw);
    Ok(())
}

fn decode_dict<T: Lane>(
    raw: &[u8],
    out: &mut [T],
    dict_words: &mut Vec<u64>,
    key: fn(T) -> u64,
) -> BadResult<()> {
    let rows = out.len();
    let mut cursor = Cursor::new(raw);
    let dict_len = cursor.u32()? as usize;
    let width = u32::from(cursor.u8()?);
    cursor.zeros(3, "dictionary header")?;
    ensure!(
        dict_len > 0 || rows == 0,
        "empty dictionary for {rows} rows"
    );
    let padded = load_dict(&mut cursor, dict_len, width, dict_words, key)?;
    let stream = cursor.take(packed_len(rows, width))?;
    ensure!(
        cursor.remaining() == 0,
        "{} trailing bytes",
        cursor.remaining()
    );
    unpack_batches(stream, width, rows, |start, codes| {
        if kernels::gather(padded, dict_len, codes, &mut out[start..]) {
            Ok(())
        } else {
            bad!("dictionary code out of range ({dict_len} entries)")
        }
    })
}

/// Reads a dictionary of `dict_len` values (strictly increasing by `key`,
/// zero padding to 8 bytes) for codes of `width` bits, into `dict_words`
/// padded with zeros to `2^width` entries: codes index it without bounds
/// checks (codes of `width` bits are < 2^width); `gather` rejects codes
/// `>= dict_len`.
fn load_dict<'a, T: Lane>(
    cursor: &mut Cursor<'_>,
    dict_len: usize,
    width: u32,
    dict_words: &'a mut Vec<u64>,
    key: fn(T) -> u64,
) -> BadResult<&'a [T]> {
    let value_bytes = std::mem::size_of::<T>();
    ensure!(
        dict_len <= MAX_DICT_LEN,
        "dictionary of {dict_len} entries over the limit"
    );
    ensure!(
        width == bits_needed(dict_len.saturating_sub(1) as u64),
        "code width {width} does not match the dictionary length {dict_len}"
    );
    let dict_bytes = cursor.take(dict_len * value_bytes)?;
    let padding = (dict_len * value_bytes).next_multiple_of(8) - dict_len * value_bytes;
    cursor.zeros(padding, "dictionary padding")?;
    let padded_len = 1usize << width;
    dict_words.clear();
    dict_words.resize((padded_len * value_bytes).div_ceil(8), 0);
    bytemuck::cast_slice_mut::<u64, u8>(dict_words)[..dict_bytes.len()].copy_from_slice(dict_bytes);
    let padded: &[T] = &bytemuck::cast_slice::<u64, T>(dict_words)[..padded_len];
    ensure!(
        padded[..dict_len]
            .windows(2)
            .all(|pair| key(pair[0]) < key(pair[1])),
        "dictionary entries not strictly increasing"
    );
    Ok(padded)
}

/// SPARSE: every row is `fill` except the exception rows, whose positions
/// are bit-packed gaps and whose values are FOR offsets or dictionary codes.
/// Decoding is a fill at memory speed plus a scatter of the exceptions.
fn decode_sparse<T: Lane>(
    raw: &[u8],
    out: &mut [T],
    dict_words: &mut Vec<u64>,
    positions: &mut Vec<u32>,
    key: fn(T) -> u64,
) -> BadResult<()> {
    let rows = out.len();
    let mut cursor = Cursor::new(raw);
    let fill = cursor.u64()?;
    let value_base = cursor.u64()?;
    let exception_count = cursor.u32()? as usize;
    let dict_len = cursor.u32()? as usize;
    let gap_width = u32::from(cursor.u8()?);
    let value_width = u32::from(cursor.u8()?);
    cursor.zeros(6, "sparse header")?;
    ensure!(
        fits::<T>(fill) && fits::<T>(value_base),
        "sparse header values out of range"
    );
    ensure!(
        exception_count <= rows,
        "{exception_count} exceptions for {rows} rows"
    );
    ensure!(gap_width <= 32, "gap bit width {gap_width} over 32");
    ensure!(
        dict_len <= exception_count,
        "dictionary of {dict_len} entries for {exception_count} exceptions"
    );
    let padded = if dict_len > 0 {
        ensure!(value_base == 0, "sparse value base set with a dictionary");
        Some(load_dict(
            &mut cursor,
            dict_len,
            value_width,
            dict_words,
            key,
        )?)
    } else {
        ensure!(
            value_width <= T::BITS,
            "bit width {value_width} over {}",
            T::BITS
        );
        None
    };
    let gap_stream = cursor.take(packed_len(exception_count, gap_width))?;
    let value_stream = cursor.take(packed_len(exception_count, value_width))?;
    ensure!(
        cursor.remaining() == 0,
        "{} trailing bytes",
        cursor.remaining()
    );
    out.fill(T::from_u64(fill));
    positions.clear();
    positions.resize(exception_count, 0);
    let mut next = 0u64;
    unpack_batches(gap_stream, gap_width, exception_count, |start, gaps| {
        let Unpacked::Narrow(gaps) = gaps else {
            return bad!("gaps wider than 32 bits");
        };
        next = kernels::gaps_to_positions(next, gaps, &mut positions[start..]);
        // Gaps < 2^32 and batches of 512: `next` cannot wrap before this check.
        ensure!(
            next <= rows as u64,
            "sparse exception positions past the {rows} rows"
        );
        Ok(())
    })?;
    let positions: &[u32] = positions;
    match padded {
        None => unpack_batches(
            value_stream,
            value_width,
            exception_count,
            |start, values| {
                kernels::scatter_for(value_base, values, &positions[start..], out);
                Ok(())
            },
        ),
        Some(padded) => {
            let mut gathered = [T::default(); kernels::GROUP];
            unpack_batches(
                value_stream,
                value_width,
                exception_count,
                |start, codes| {
                    let gathered = &mut gathered[..codes.len()];
                    if !kernels::gather(padded, dict_len, codes, gathered) {
                        return bad!("dictionary code out of range ({dict_len} entries)");
                    }
                    for (&position, &value) in positions[start..].iter().zip(gathered.iter()) {
                        out[position as usize] = value;
                    }
                    Ok(())
                },
            )
        }
    }
}

fn decode_f64(
    encoding: Encoding,
    raw: &[u8],
    rows: usize,
    out: &mut Vec<f64>,
    dict_words: &mut Vec<u64>,
) -> BadResult<()> {
    let out = sized(out, rows);
    match encoding {
        Encoding::Plain | Encoding::Dictionary => decode_float_lanes(
            encoding,
            raw,
            bytemuck::cast_slice_mut::<f64, u64>(out),
            dict_words,
            kernels::f64_key,
        ),
        Encoding::ByteShuffle => {
            ensure!(
                raw.len() == rows * 8,
                "shuffled values of {} bytes, expected {}",
                raw.len(),
                rows * 8
            );
            kernels::unshuffle8(raw, bytemuck::cast_slice_mut(out));
            Ok(())
        }
        Encoding::FloatFor => {
            let (base, width, stream) = float_for_header(raw, rows, 64)?;
            let bits: &mut [u64] = bytemuck::cast_slice_mut(out);
            unpack_batches(stream, width, rows, |start, values| {
                kernels::f64_from_keys(base, values, &mut bits[start..]);
                Ok(())
            })
        }
        Encoding::Alp => {
            let limits = (-kernels::ALP_F64_LIMIT, kernels::ALP_F64_LIMIT - 1);
            let alp = alp_sections(raw, rows, 8, kernels::POW10_F64.len(), limits)?;
            let divisor = kernels::POW10_F64[alp.exponent];
            unpack_batches(alp.stream, alp.width, rows, |start, values| {
                kernels::alp_decode_f64(alp.base, divisor, values, &mut out[start..]);
                Ok(())
            })?;
            patch_exceptions(&alp, bytemuck::cast_slice_mut::<f64, u64>(out))
        }
        other => bad!("encoding {other:?} not defined for f64"),
    }
}

fn decode_f32(
    encoding: Encoding,
    raw: &[u8],
    rows: usize,
    out: &mut Vec<f32>,
    dict_words: &mut Vec<u64>,
) -> BadResult<()> {
    let out = sized(out, rows);
    match encoding {
        Encoding::Plain | Encoding::Dictionary => decode_float_lanes(
            encoding,
            raw,
            bytemuck::cast_slice_mut::<f32, u32>(out),
            dict_words,
            |bits| u64::from(kernels::f32_key(bits)),
        ),
        Encoding::ByteShuffle => {
            ensure!(
                raw.len() == rows * 4,
                "shuffled values of {} bytes, expected {}",
                raw.len(),
                rows * 4
            );
            kernels::unshuffle4(raw, bytemuck::cast_slice_mut(out));
            Ok(())
        }
        Encoding::FloatFor => {
            let (base, width, stream) = float_for_header(raw, rows, 32)?;
            let bits: &mut [u32] = bytemuck::cast_slice_mut(out);
            unpack_batches(stream, width, rows, |start, values| {
                kernels::f32_from_keys(base as u32, values, &mut bits[start..]);
                Ok(())
            })
        }
        Encoding::Alp => {
            let limits = (-kernels::ALP_F32_LIMIT, kernels::ALP_F32_LIMIT);
            let alp = alp_sections(raw, rows, 4, kernels::POW10_F32.len(), limits)?;
            let divisor = kernels::POW10_F32[alp.exponent];
            unpack_batches(alp.stream, alp.width, rows, |start, values| {
                kernels::alp_decode_f32(alp.base, divisor, values, &mut out[start..]);
                Ok(())
            })?;
            patch_exceptions(&alp, bytemuck::cast_slice_mut::<f32, u32>(out))
        }
        other => bad!("encoding {other:?} not defined for f32"),
    }
}

fn decode_float_lanes<T: Lane>(
    encoding: Encoding,
    raw: &[u8],
    out: &mut [T],
    dict_words: &mut Vec<u64>,
    key: fn(T) -> u64,
) -> BadResult<()> {
    match encoding {
        Encoding::Dictionary => decode_dict(raw, out, dict_words, key),
        _ => decode_plain(raw, out),
    }
}

fn float_for_header(raw: &[u8], rows: usize, max_width: u32) -> BadResult<(u64, u32, &[u8])> {
    let mut cursor = Cursor::new(raw);
    let base = cursor.u64()?;
    let width = u32::from(cursor.u8()?);
    cursor.zeros(7, "float FOR header")?;
    ensure!(width <= max_width, "bit width {width} over {max_width}");
    ensure!(
        max_width == 64 || base >> max_width == 0,
        "float FOR base {base:#x} out of range"
    );
    let stream = cursor.take(packed_len(rows, width))?;
    ensure!(
        cursor.remaining() == 0,
        "{} trailing bytes",
        cursor.remaining()
    );
    Ok((base, width, stream))
}

/// The parsed sections of an ALP values section.
struct AlpSections<'a> {
    exponent: usize,
    width: u32,
    base: u64,
    stream: &'a [u8],
    positions: &'a [u8],
    exceptions: &'a [u8],
    rows: usize,
}

fn alp_sections(
    raw: &[u8],
    rows: usize,
    value_bytes: usize,
    exponents: usize,
    int_range: (i64, i64),
) -> BadResult<AlpSections<'_>> {
    let mut cursor = Cursor::new(raw);
    let exponent = usize::from(cursor.u8()?);
    let width = u32::from(cursor.u8()?);
    cursor.zeros(2, "ALP header")?;
    let exception_count = cursor.u32()? as usize;
    let base = cursor.u64()?;
    cursor.zeros(8, "ALP header")?;
    ensure!(exponent < exponents, "ALP exponent {exponent} out of range");
    ensure!(width <= 64, "bit width {width} over 64");
    ensure!(
        exception_count <= rows,
        "{exception_count} exceptions for {rows} rows"
    );
    let lowest = i128::from(base as i64);
    let highest = lowest + (1i128 << width) - 1;
    ensure!(
        lowest >= i128::from(int_range.0) && highest <= i128::from(int_range.1),
        "ALP integers [{lowest}, {highest}] outside the exact range"
    );
    let stream = cursor.take(packed_len(rows, width))?;
    let positions = cursor.take(exception_count * 4)?;
    cursor.zeros(
        (exception_count * 4).next_multiple_of(8) - exception_count * 4,
        "ALP padding",
    )?;
    let exceptions = cursor.take(exception_count * value_bytes)?;
    ensure!(
        cursor.remaining() == 0,
        "{} trailing bytes",
        cursor.remaining()
    );
    Ok(AlpSections {
        exponent,
        width,
        base,
        stream,
        positions,
        exceptions,
        rows,
    })
}

fn patch_exceptions<T: Lane>(alp: &AlpSections<'_>, out: &mut [T]) -> BadResult<()> {
    let mut next_allowed = 0usize;
    let value_bytes = std::mem::size_of::<T>();
    for (position, value) in alp
        .positions
        .chunks_exact(4)
        .zip(alp.exceptions.chunks_exact(value_bytes))
    {
        let mut position_bytes = [0u8; 4];
        position_bytes.copy_from_slice(position);
        let position = u32::from_le_bytes(position_bytes) as usize;
        ensure!(
            position >= next_allowed && position < alp.rows,
            "ALP exception positions not increasing or out of range"
        );
        next_allowed = position + 1;
        out[position] = bytemuck::pod_read_unaligned(value);
    }
    Ok(())
}

fn decode_var(
    encoding: Encoding,
    raw: &[u8],
    rows: usize,
    out: &mut VarColumn,
    dict_offsets: &mut Vec<u32>,
    codes: &mut Vec<u32>,
    utf8: bool,
) -> BadResult<()> {
    match encoding {
        Encoding::Plain => {
            let mut cursor = Cursor::new(raw);
            let length_base = u64::from(cursor.u32()?);
            let width = u32::from(cursor.u8()?);
            cursor.zeros(3, "lengths header")?;
            ensure!(width <= 32, "length bit width {width} over 32");
            let stream = cursor.take(packed_len(rows, width))?;
            let data = cursor.take(cursor.remaining())?;
            ensure!(
                data.len() <= MAX_VAR_DATA_LEN,
                "{} bytes of data over the limit",
                data.len()
            );
            let total = decode_lengths(stream, width, length_base, rows, &mut out.offsets)?;
            ensure!(
                total == data.len() as u64,
                "lengths add up to {total}, data has {} bytes",
                data.len()
            );
            out.data.clear();
            out.data.extend_from_slice(data);
            ensure!(
                !utf8 || is_utf8_column(&out.offsets, &out.data),
                "invalid UTF-8"
            );
            Ok(())
        }
        Encoding::Dictionary => {
            let mut cursor = Cursor::new(raw);
            let dict_len = cursor.u32()? as usize;
            let code_width = u32::from(cursor.u8()?);
            let entry_width = u32::from(cursor.u8()?);
            cursor.zeros(2, "dictionary header")?;
            let entry_base = u64::from(cursor.u32()?);
            let dict_data_len = cursor.u32()? as usize;
            ensure!(
                dict_len <= MAX_DICT_LEN,
                "dictionary of {dict_len} entries over the limit"
            );
            ensure!(
                dict_len > 0 || rows == 0,
                "empty dictionary for {rows} rows"
            );
            ensure!(
                code_width == bits_needed(dict_len.saturating_sub(1) as u64),
                "code width {code_width} does not match the dictionary length {dict_len}"
            );
            ensure!(
                entry_width <= 32,
                "entry length width {entry_width} over 32"
            );
            let entry_stream = cursor.take(packed_len(dict_len, entry_width))?;
            let dict_data = cursor.take(dict_data_len)?;
            cursor.zeros(
                dict_data_len.next_multiple_of(8) - dict_data_len,
                "dictionary padding",
            )?;
            let code_stream = cursor.take(packed_len(rows, code_width))?;
            ensure!(
                cursor.remaining() == 0,
                "{} trailing bytes",
                cursor.remaining()
            );
            let total = decode_lengths(
                entry_stream,
                entry_width,
                entry_base,
                dict_len,
                dict_offsets,
            )?;
            ensure!(
                total == dict_data_len as u64,
                "entry lengths add up to {total}, not {dict_data_len}"
            );
            let entry = |code: usize| {
                &dict_data[dict_offsets[code] as usize..dict_offsets[code + 1] as usize]
            };
            ensure!(
                (1..dict_len).all(|code| entry(code - 1) < entry(code)),
                "dictionary entries not strictly increasing"
            );
            ensure!(
                !utf8 || is_utf8_column(dict_offsets, dict_data),
                "invalid UTF-8 in the dictionary"
            );
            if entry_width == 0 {
                // All entries have the same length: offsets are arithmetic and
                // the copy is one gather per row (band names, fixed codes).
                let entry_len = entry_base as usize;
                let total = rows as u64 * entry_base;
                ensure!(
                    total <= MAX_VAR_DATA_LEN as u64,
                    "{total} bytes of data over the limit"
                );
                out.offsets.resize(rows + 1, 0);
                // An induction variable (vector adds), not `row * entry_len`
                // (a u32 multiply the SSE2 baseline emulates).
                let mut offset = 0u32;
                for out_offset in out.offsets.iter_mut() {
                    *out_offset = offset;
                    offset = offset.wrapping_add(entry_len as u32);
                }
                out.data.resize(total as usize, 0);
                let data = &mut out.data;
                // One-byte entries (band names): at most 256 of them, so a
                // 256-byte table indexed by the code's low byte needs no
                // bounds check.
                let mut byte_table = [0u8; 256];
                if entry_len == 1 {
                    ensure!(dict_len <= 256, "{dict_len} distinct one-byte entries");
                    byte_table[..dict_len].copy_from_slice(&dict_data[..dict_len]);
                }
                return unpack_batches(code_stream, code_width, rows, |start, batch| {
                    let Unpacked::Narrow(batch) = batch else {
                        return bad!("dictionary codes wider than 32 bits");
                    };
                    if entry_len == 1 && dict_len <= 8 {
                        let mut table = [0u8; 8];
                        table.copy_from_slice(&byte_table[..8]);
                        let out = &mut data[start..start + batch.len()];
                        let table = u64::from_le_bytes(table);
                        ensure!(
                            kernels::lookup_bytes8(table, dict_len as u32, batch, out),
                            "dictionary code out of range ({dict_len} entries)"
                        );
                        return Ok(());
                    }
                    let max_code = batch.iter().fold(0, |max, &code| max.max(code));
                    ensure!(
                        (max_code as usize) < dict_len,
                        "dictionary code out of range ({dict_len} entries)"
                    );
                    let out = &mut data[start * entry_len..(start + batch.len()) * entry_len];
                    if entry_len == 1 {
                        for (out, &code) in out.iter_mut().zip(batch) {
                            *out = byte_table[(code & 0xFF) as usize];
                        }
                    } else if entry_len > 0 {
                        for (out, &code) in out.chunks_exact_mut(entry_len).zip(batch) {
                            let code = code as usize;
                            out.copy_from_slice(
                                &dict_data[code * entry_len..(code + 1) * entry_len],
                            );
                        }
                    }
                    Ok(())
                });
            }
            // Pass 1: codes (range-checked) and output offsets, so the output
            // size is known and checked before it is allocated.
            codes.clear();
            codes.resize(rows, 0);
            out.offsets.resize(rows + 1, 0);
            out.offsets[0] = 0;
            let mut total = 0u64;
            let dict_offsets: &[u32] = dict_offsets;
            unpack_batches(code_stream, code_width, rows, |start, batch| {
                let batch_codes = &mut codes[start..start + batch.len()];
                match batch {
                    Unpacked::Narrow(values) => batch_codes.copy_from_slice(values),
                    Unpacked::Wide(_) => return bad!("dictionary codes wider than 32 bits"),
                }
                let max_code = batch_codes.iter().fold(0, |max, &code| max.max(code));
                ensure!(
                    (max_code as usize) < dict_len,
                    "dictionary code out of range ({dict_len} entries)"
                );
                let batch_offsets = &mut out.offsets[start + 1..start + 1 + batch.len()];
                for (offset, &code) in batch_offsets.iter_mut().zip(batch_codes.iter()) {
                    let code = code as usize;
                    total += u64::from(dict_offsets[code + 1] - dict_offsets[code]);
                    *offset = total as u32;
                }
                Ok(())
            })?;
            ensure!(
                total <= MAX_VAR_DATA_LEN as u64,
                "{total} bytes of data over the limit"
            );
            out.data.resize(total as usize, 0);
            // Pass 2: copy the entries.
            for (row, &code) in codes.iter().enumerate() {
                let code = code as usize;
                let source =
                    &dict_data[dict_offsets[code] as usize..dict_offsets[code + 1] as usize];
                out.data[out.offsets[row] as usize..out.offsets[row + 1] as usize]
                    .copy_from_slice(source);
            }
            Ok(())
        }
        other => bad!("encoding {other:?} not defined for variable-length columns"),
    }
}

/// Unpacks `count` lengths (`base + packed`) into `offsets` (`count + 1`
/// entries from 0). Returns the total, which the caller checks against the
/// data length (the total bounds every partial sum, so none wrapped).
fn decode_lengths(
    stream: &[u8],
    width: u32,
    base: u64,
    count: usize,
    offsets: &mut Vec<u32>,
) -> BadResult<u64> {
    offsets.resize(count + 1, 0);
    offsets[0] = 0;
    let mut total = 0u64;
    let result: BadResult<()> = unpack_batches(stream, width, count, |start, lengths| {
        total = kernels::lengths_to_offsets(total, base, lengths, &mut offsets[start + 1..]);
        Ok(())
    });
    result?;
    if total > u64::from(u32::MAX) {
        return bad!("lengths add up to {total}, over 4 GiB");
    }
    Ok(total)
}
