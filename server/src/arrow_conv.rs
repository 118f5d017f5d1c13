//! Results as Arrow: engine columns ([`ColumnData`]) to Arrow arrays and
//! Arrow IPC messages (SPEC.md part 4, §7).
//!
//! The engine's columns are Arrow-shaped already (little-endian values,
//! LSB-first bitmaps, `len + 1` offsets), so value buffers move into Arrow
//! without a copy; only validity words are copied (one bit per row).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, RecordBatch, RecordBatchOptions,
    StringArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_ipc::writer::{
    CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions, write_message,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};

use skyscan_engine::query::ResultColumn;
use skyscan_format::{Bitmap, ColumnData, VarColumn};
use skyscan_kernel::value::DataType;

/// The Arrow type results of `data_type` travel as.
pub fn arrow_type(data_type: DataType) -> ArrowType {
    match data_type {
        DataType::Null | DataType::I64 => ArrowType::Int64,
        DataType::Bool => ArrowType::Boolean,
        DataType::I8 => ArrowType::Int8,
        DataType::I16 => ArrowType::Int16,
        DataType::I32 => ArrowType::Int32,
        DataType::F32 => ArrowType::Float32,
        DataType::F64 => ArrowType::Float64,
        DataType::Utf8 => ArrowType::Utf8,
        DataType::Binary => ArrowType::Binary,
    }
}

/// The Arrow schema of a result. Every field is nullable: the engine's
/// nullability is a hint, and a batch must never be refused for it.
pub fn arrow_schema(columns: &[ResultColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.data_type), true))
            .collect::<Vec<_>>(),
    ))
}

fn null_buffer(validity: Option<&Bitmap>) -> Option<NullBuffer> {
    validity.map(|bitmap| {
        let buffer = Buffer::from_slice_ref(bitmap.words());
        NullBuffer::new(BooleanBuffer::new(buffer, 0, bitmap.len()))
    })
}

fn var_arrays(column: VarColumn, utf8: bool) -> Result<ArrayRef, String> {
    let VarColumn {
        offsets,
        data,
        validity,
    } = column;
    let nulls = null_buffer(validity.as_ref());
    let well_formed = offsets.first() == Some(&0)
        && offsets.last().map(|&end| end as usize) == Some(data.len())
        && offsets.windows(2).all(|pair| pair[0] <= pair[1]);
    if !well_formed {
        return Err("a variable-length result column has malformed offsets".to_string());
    }
    let values = Buffer::from_vec(data);
    if i32::try_from(values.len()).is_ok() {
        // Same width and alignment: the u32 offsets become i32 without a
        // copy (all are at most data.len() <= i32::MAX, checked above).
        let count = offsets.len();
        let offsets = OffsetBuffer::new(ScalarBuffer::<i32>::new(
            Buffer::from_vec(offsets),
            0,
            count,
        ));
        if utf8 {
            Ok(Arc::new(
                StringArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?,
            ))
        } else {
            Ok(Arc::new(
                BinaryArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?,
            ))
        }
    } else {
        let wide: Vec<i64> = offsets.iter().map(|&o| i64::from(o)).collect();
        let offsets = OffsetBuffer::new(ScalarBuffer::from(wide));
        if utf8 {
            Ok(Arc::new(
                LargeStringArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?,
            ))
        } else {
            Ok(Arc::new(
                LargeBinaryArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?,
            ))
        }
    }
}

/// One engine column as an Arrow array (value buffers are moved, not copied).
pub fn to_arrow_array(column: ColumnData) -> Result<ArrayRef, String> {
    Ok(match column {
        ColumnData::Bool(c) => {
            let values =
                BooleanBuffer::new(Buffer::from_slice_ref(c.values.words()), 0, c.values.len());
            Arc::new(BooleanArray::new(values, null_buffer(c.validity.as_ref())))
        }
        ColumnData::I8(c) => Arc::new(Int8Array::new(
            ScalarBuffer::from(c.values),
            null_buffer(c.validity.as_ref()),
        )),
        ColumnData::I16(c) => Arc::new(Int16Array::new(
            ScalarBuffer::from(c.values),
            null_buffer(c.validity.as_ref()),
        )),
        ColumnData::I32(c) => Arc::new(Int32Array::new(
            ScalarBuffer::from(c.values),
            null_buffer(c.validity.as_ref()),
        )),
        ColumnData::I64(c) => Arc::new(Int64Array::new(
            ScalarBuffer::from(c.values),
            null_buffer(c.validity.as_ref()),
        )),
        ColumnData::F32(c) => Arc::new(Float32Array::new(
            ScalarBuffer::from(c.values),
            null_buffer(c.validity.as_ref()),
        )),
        ColumnData::F64(c) => Arc::new(Float64Array::new(
            ScalarBuffer::from(c.values),
            null_buffer(c.validity.as_ref()),
        )),
        ColumnData::Utf8(c) => var_arrays(c, true)?,
        ColumnData::Binary(c) => var_arrays(c, false)?,
    })
}

/// One result batch as an Arrow record batch of `schema`.
pub fn to_record_batch(
    schema: &SchemaRef,
    columns: Vec<ColumnData>,
) -> Result<RecordBatch, String> {
    let rows = columns.first().map_or(0, ColumnData::len);
    let arrays = columns
        .into_iter()
        .map(to_arrow_array)
        .collect::<Result<Vec<_>, _>>()?;
    // Utf8 columns above 2 GiB travel as LargeUtf8: adjust the schema of
    // this batch to the arrays it holds.
    let schema = if arrays
        .iter()
        .zip(schema.fields())
        .all(|(a, f)| a.data_type() == f.data_type())
    {
        Arc::clone(schema)
    } else {
        Arc::new(Schema::new(
            arrays
                .iter()
                .zip(schema.fields())
                .map(|(a, f)| Field::new(f.name(), a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ))
    };
    RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| format!("result batch: {e}"))
}

/// Bytes of a record batch's buffers (what its IPC body roughly weighs).
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|a| a.get_buffer_memory_size())
        .sum()
}

/// Encodes Arrow IPC messages: the schema once, then record batches.
pub struct IpcEncoder {
    generator: IpcDataGenerator,
    tracker: DictionaryTracker,
    options: IpcWriteOptions,
    compression: CompressionContext,
}

impl std::fmt::Debug for IpcEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcEncoder").finish_non_exhaustive()
    }
}

impl Default for IpcEncoder {
    fn default() -> Self {
        IpcEncoder::new()
    }
}

impl IpcEncoder {
    /// An encoder writing Arrow IPC format version 5, 8-byte aligned
    /// buffers, no compression (loopback and LAN links are faster than
    /// lz4 on two cores).
    pub fn new() -> IpcEncoder {
        let options =
            IpcWriteOptions::try_new(8, false, arrow_ipc::MetadataVersion::V5).unwrap_or_default();
        IpcEncoder {
            generator: IpcDataGenerator::default(),
            tracker: DictionaryTracker::new(false),
            options,
            compression: CompressionContext::default(),
        }
    }

    /// The encapsulated schema message.
    pub fn schema_message(&mut self, schema: &Schema) -> Result<Vec<u8>, String> {
        let encoded = self.generator.schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut self.tracker,
            &self.options,
        );
        let mut out = Vec::new();
        write_message(&mut out, encoded, &self.options).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The encapsulated record batch message as two parts, without copying
    /// the body again: `head` (`prefix` bytes of room for a frame header,
    /// then the continuation marker, metadata length, flatbuffer and
    /// padding) and `body` (the buffers). `head` then `body` are exactly
    /// the bytes of [`IpcEncoder::batch_message`].
    pub fn batch_message_parts(
        &mut self,
        batch: &RecordBatch,
        prefix: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        let (dictionaries, encoded) = self
            .generator
            .encode(
                batch,
                &mut self.tracker,
                &self.options,
                &mut self.compression,
            )
            .map_err(|e| e.to_string())?;
        if !dictionaries.is_empty() {
            return Err("dictionary-encoded results are not supported".to_string());
        }
        let arrow_ipc::writer::EncodedData {
            ipc_message,
            arrow_data,
        } = encoded;
        if arrow_data.len() % 8 != 0 {
            return Err("an Arrow IPC body that is not 8-byte aligned".to_string());
        }
        let mut head = Vec::with_capacity(prefix + ipc_message.len() + 16);
        head.resize(prefix, 0);
        let metadata_only = arrow_ipc::writer::EncodedData {
            ipc_message,
            arrow_data: Vec::new(),
        };
        write_message(&mut head, metadata_only, &self.options).map_err(|e| e.to_string())?;
        Ok((head, arrow_data))
    }

    /// The encapsulated record batch message, written after `prefix` bytes
    /// of room (a frame header) in the returned vector.
    pub fn batch_message(&mut self, batch: &RecordBatch, prefix: usize) -> Result<Vec<u8>, String> {
        let (dictionaries, encoded) = self
            .generator
            .encode(
                batch,
                &mut self.tracker,
                &self.options,
                &mut self.compression,
            )
            .map_err(|e| e.to_string())?;
        if !dictionaries.is_empty() {
            return Err("dictionary-encoded results are not supported".to_string());
        }
        let mut out =
            Vec::with_capacity(prefix + encoded.ipc_message.len() + encoded.arrow_data.len() + 16);
        out.resize(prefix, 0);
        write_message(&mut out, encoded, &self.options).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use arrow_array::Array;
    use arrow_buffer::Buffer as ArrowBuffer;
    use arrow_ipc::reader::StreamDecoder;
    use skyscan_format::{BoolColumn, PrimitiveColumn};

    fn columns() -> (Vec<ResultColumn>, Vec<ColumnData>) {
        let specs = [
            ("b", DataType::Bool),
            ("i8", DataType::I8),
            ("i16", DataType::I16),
            ("i32", DataType::I32),
            ("i64", DataType::I64),
            ("f32", DataType::F32),
            ("f64", DataType::F64),
            ("s", DataType::Utf8),
            ("bin", DataType::Binary),
            ("nothing", DataType::Null),
        ];
        let result_columns = specs
            .iter()
            .map(|(name, t)| ResultColumn {
                name: name.to_string(),
                data_type: *t,
                nullable: true,
            })
            .collect();
        let data = vec![
            ColumnData::Bool(BoolColumn::from_options(&[Some(true), None, Some(false)])),
            ColumnData::I8(PrimitiveColumn::from_options(&[Some(-1), Some(2), None])),
            ColumnData::I16(PrimitiveColumn::new(vec![1, 2, 3])),
            ColumnData::I32(PrimitiveColumn::from_options(&[None, None, Some(7)])),
            ColumnData::I64(PrimitiveColumn::new(vec![i64::MIN, 0, i64::MAX])),
            ColumnData::F32(PrimitiveColumn::new(vec![1.5, f32::NAN, -0.0])),
            ColumnData::F64(PrimitiveColumn::from_options(&[
                Some(0.25),
                None,
                Some(1e300),
            ])),
            ColumnData::Utf8(VarColumn::from_options(&[Some("αβ"), None, Some("")])),
            ColumnData::Binary(VarColumn::from_options(&[
                Some(&b"\x00\xff"[..]),
                Some(b""),
                None,
            ])),
            ColumnData::I64(PrimitiveColumn::from_options(&[None, None, None])),
        ];
        (result_columns, data)
    }

    #[test]
    fn every_type_converts_with_values_and_nulls() {
        let (result_columns, data) = columns();
        let schema = arrow_schema(&result_columns);
        let batch = to_record_batch(&schema, data).unwrap();
        assert_eq!(batch.num_rows(), 3);
        let b = batch
            .column(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert!(b.value(0) && b.is_null(1) && !b.value(2));
        let i8s = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int8Array>()
            .unwrap();
        assert_eq!((i8s.value(0), i8s.value(1), i8s.is_null(2)), (-1, 2, true));
        let i32s = batch
            .column(3)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!(i32s.null_count(), 2);
        assert_eq!(i32s.value(2), 7);
        let i64s = batch
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(i64s.values().as_ref(), &[i64::MIN, 0, i64::MAX]);
        let f32s = batch
            .column(5)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert!(f32s.value(1).is_nan());
        let s = batch
            .column(7)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((s.value(0), s.is_null(1), s.value(2)), ("αβ", true, ""));
        let bin = batch
            .column(8)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        assert_eq!(bin.value(0), b"\x00\xff");
        assert!(bin.is_null(2));
        assert_eq!(batch.column(9).null_count(), 3);
    }

    #[test]
    fn ipc_messages_decode_back_to_the_same_batch() {
        let (result_columns, data) = columns();
        let schema = arrow_schema(&result_columns);
        let batch = to_record_batch(&schema, data).unwrap();
        let mut encoder = IpcEncoder::new();
        let schema_bytes = encoder.schema_message(&schema).unwrap();
        let schema_bytes_copy = schema_bytes.clone();
        let batch_bytes = encoder.batch_message(&batch, 12).unwrap();
        let mut decoder = StreamDecoder::new();
        let mut buffer = ArrowBuffer::from_vec(schema_bytes);
        assert!(decoder.decode(&mut buffer).unwrap().is_none());
        let decoded_schema =
            arrow_ipc::convert::try_schema_from_ipc_buffer(&schema_bytes_copy).unwrap();
        assert_eq!(&decoded_schema, schema.as_ref());
        let mut buffer = ArrowBuffer::from_vec(batch_bytes[12..].to_vec());
        let back = decoder.decode(&mut buffer).unwrap().unwrap();
        assert_eq!(back, batch);
        // The two-part form has the same bytes.
        let (head, body) = encoder.batch_message_parts(&batch, 12).unwrap();
        assert_eq!([head, body].concat(), batch_bytes);
        // A slice encodes only its rows.
        let sliced = batch.slice(1, 2);
        let bytes = encoder.batch_message(&sliced, 0).unwrap();
        let back = decoder
            .decode(&mut ArrowBuffer::from_vec(bytes))
            .unwrap()
            .unwrap();
        assert_eq!(back, sliced);
    }

    #[test]
    fn malformed_offsets_are_an_error() {
        let column = VarColumn {
            offsets: vec![0, 5, 2],
            data: vec![0; 5],
            validity: None,
        };
        assert!(to_arrow_array(ColumnData::Utf8(column)).is_err());
    }
}
