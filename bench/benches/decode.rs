//! Criterion micro-benchmarks of block decoding, per encoding, on realistic
//! LSST-like columns (one sub-chunk-sized block of each). Throughput is in
//! decoded output bytes. `skyscan-bench format` gives the whole-table view.

// Test and benchmark code: a failed setup step should stop with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::column_raw_bytes;
use skyscan_format::{
    BlockDecoder, ChunkFile, ChunkWriter, ColumnData, CompressionChoice, EncodeOptions, Encoding,
    TableSchema, WriterOptions,
};

/// Rows of one block: a sub-chunk at LSST density (~2·10^6 objects/deg², 0.031 deg²) is larger;
/// 16 Ki rows keeps the working set in L2 like the scan engine's batches.
const ROWS: u64 = 16 * 1024;

fn bench_decode(c: &mut Criterion) {
    let mut table =
        match generate_objects(&ObjectSpec::with_density(ROWS, 500_000.0, 7), 1).into_table() {
            Ok(table) => table,
            Err(e) => panic!("synthetic table: {e}"),
        };
    // Rows in declination order, as inside a sub-chunk.
    let mut order: Vec<u32> = (0..ROWS as u32).collect();
    if let Ok(decl) = table.f64_column("decl") {
        order.sort_by(|&a, &b| decl[a as usize].total_cmp(&decl[b as usize]));
    }
    table.columns = table
        .columns
        .iter()
        .map(|col| skyscan_kernel::take::take(col, &order).unwrap())
        .collect();

    let cases: &[(&str, Option<Encoding>, CompressionChoice)] = &[
        ("objectId", None, CompressionChoice::Auto),
        ("objectId", Some(Encoding::Plain), CompressionChoice::Never),
        (
            "objectId",
            Some(Encoding::DeltaBitpack),
            CompressionChoice::Never,
        ),
        ("ra", None, CompressionChoice::Auto),
        ("decl", None, CompressionChoice::Auto),
        (
            "decl",
            Some(Encoding::ByteShuffle),
            CompressionChoice::Always,
        ),
        ("r_psfFlux", None, CompressionChoice::Auto),
        ("r_psfFluxErr", None, CompressionChoice::Auto),
        ("flags", None, CompressionChoice::Auto),
        (
            "flags",
            Some(Encoding::Dictionary),
            CompressionChoice::Never,
        ),
        ("nChild", None, CompressionChoice::Auto),
        (
            "nVisits",
            Some(Encoding::ForBitpack),
            CompressionChoice::Never,
        ),
        ("refBand", None, CompressionChoice::Auto),
        ("detect_isPrimary", None, CompressionChoice::Auto),
    ];
    let mut group = c.benchmark_group("decode");
    let mut seen = std::collections::HashSet::new();
    for &(name, encoding, compression) in cases {
        let Some(index) = table.schema.column_index(name) else {
            panic!("no column {name}")
        };
        let column: &ColumnData = &table.columns[index];
        let schema = TableSchema::new("bench", vec![table.schema.columns[index].clone()]);
        let options = WriterOptions {
            encode: EncodeOptions {
                encoding,
                compression,
            },
        };
        let mut writer = ChunkWriter::new(schema, 0, options).unwrap();
        writer
            .add_row_group(0, false, std::slice::from_ref(column))
            .unwrap();
        let (bytes, _) = writer.finish_to_vec().unwrap();
        let file = ChunkFile::from_bytes(&bytes).unwrap();
        let block = file.footer().block(0, 0).unwrap();
        let block_bytes = file.block_bytes(0, 0).unwrap();
        let label = format!(
            "{name}/{:?}{}",
            block.meta.encoding,
            if block.meta.compression.id() > 1 {
                "+lz4"
            } else {
                ""
            }
        );
        if !seen.insert(label.clone()) {
            continue; // the automatic choice was the same as a forced case
        }
        group.throughput(Throughput::Bytes(column_raw_bytes(column)));
        let mut decoder = BlockDecoder::new();
        let mut out = ColumnData::empty(column.column_type());
        group.bench_function(label, |b| {
            b.iter(|| {
                decoder
                    .decode_into(&block, black_box(block_bytes), &mut out)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_millis(800));
    targets = bench_decode
}
criterion_main!(benches);
