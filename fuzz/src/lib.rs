//! Shared fuzz harness: decode arbitrary bytes as a chunk file, the way a
//! reader would (tail, footer, every block), and never panic.
//!
//! Used by the libFuzzer target `fuzz_targets/decode_chunk.rs` (cargo fuzz,
//! nightly or `RUSTC_BOOTSTRAP=1`) and by the stable smoke driver
//! `src/bin/smoke.rs` that CI runs.

use skyscan_format::{BlockDecoder, ChunkFile, ColumnData, FileTail, Footer, TAIL_LEN, testing};

/// Decodes `data` as a chunk file, twice: as given (checksums will reject most
/// mutations) and after repairing every checksum with
/// [`testing::reseal`] (so mutations reach the structural validation and the
/// decoders). Errors are expected; a panic is a bug.
pub fn decode_chunk(data: &[u8]) {
    decode_all(data);
    let mut resealed = data.to_vec();
    if testing::reseal(&mut resealed).is_ok() {
        decode_all(&resealed);
    }
}

/// Decodes every block through the sans-IO API (as the engine does) and
/// through [`ChunkFile`], and checks that both agree.
fn decode_all(data: &[u8]) {
    let via_file = ChunkFile::from_bytes(data).and_then(|file| file.read_all());
    let via_push = decode_push(data);
    if let (Ok(a), Ok(b)) = (&via_file, &via_push) {
        assert_eq!(a.len(), b.len(), "both readers see the same row groups");
        for (x, y) in a.iter().zip(b) {
            for (p, q) in x.iter().zip(y) {
                assert!(p.logical_eq(q), "both readers decode the same values");
            }
        }
    }
}

/// The push-style read: tail → footer → blocks, reusing one decoder and one
/// output buffer per column as a scan does.
fn decode_push(data: &[u8]) -> skyscan_format::Result<Vec<Vec<ColumnData>>> {
    if data.len() < TAIL_LEN {
        return Err(skyscan_format::FormatError::InvalidInput {
            what: "short".into(),
        });
    }
    let tail = FileTail::parse(&data[data.len() - TAIL_LEN..], data.len() as u64)?;
    let footer_bytes = &data[tail.footer_range().to_usize_range()?];
    let footer = Footer::decode(footer_bytes, &tail)?;
    let mut decoder = BlockDecoder::new();
    let columns = footer.schema().columns.len();
    let mut buffers: Vec<ColumnData> = footer
        .schema()
        .columns
        .iter()
        .map(|column| ColumnData::empty(column.column_type))
        .collect();
    let mut out = Vec::new();
    for row_group in 0..footer.row_groups().len() {
        let mut decoded = Vec::with_capacity(columns);
        for (column, buffer) in buffers.iter_mut().enumerate() {
            let block = footer.block(row_group, column)?;
            let bytes = &data[block.range().to_usize_range()?];
            decoder.decode_into(&block, bytes, buffer)?;
            assert_eq!(
                buffer.len(),
                footer.row_groups()[row_group].row_count as usize
            );
            decoded.push(buffer.clone());
        }
        out.push(decoded);
    }
    Ok(out)
}

/// The committed v1 golden files: seeds for the smoke driver and the corpus.
pub const GOLDEN: [&[u8]; 10] = [
    include_bytes!("../../format/tests/golden/v1_auto.skychunk"),
    include_bytes!("../../format/tests/golden/v1_auto_lz4.skychunk"),
    include_bytes!("../../format/tests/golden/v1_plain.skychunk"),
    include_bytes!("../../format/tests/golden/v1_for_bitpack.skychunk"),
    include_bytes!("../../format/tests/golden/v1_delta_bitpack.skychunk"),
    include_bytes!("../../format/tests/golden/v1_dictionary.skychunk"),
    include_bytes!("../../format/tests/golden/v1_byte_shuffle.skychunk"),
    include_bytes!("../../format/tests/golden/v1_alp.skychunk"),
    include_bytes!("../../format/tests/golden/v1_float_for.skychunk"),
    include_bytes!("../../format/tests/golden/v1_sparse.skychunk"),
];
