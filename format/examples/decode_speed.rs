//! Ad-hoc decode throughput and size per encoding on LSST-like columns.
//!
//! `cargo run --release -p skyscan-format --example decode_speed [rows_per_block] [blocks] [dump_dir]`
//!
//! Prints, per column and encoding: encoded size / raw size and decode speed
//! in GB/s of output bytes (best of several passes, one core). With a dump
//! directory it also writes each column's raw values (little-endian) so a
//! script can compare with Parquet. `SKYSCAN_COLUMN=name` runs one column.

use std::error::Error;
use std::time::Instant;

use skyscan_format::{
    BlockDecoder, BlockRef, ColumnData, ColumnSchema, ColumnType, CompressionChoice, EncodeOptions,
    EncodedBlock, Encoding, PrimitiveColumn, VarColumn, encode_block,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        // Box-Muller.
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// One block's worth of a column for block `block` (a sub-chunk).
fn column(name: &str, block: usize, rows: usize, rng: &mut Rng) -> ColumnData {
    let sub_ra = (block % 12) as f64 * 0.25 + 30.0;
    let sub_decl = (block / 12) as f64 * 0.25 - 10.0;
    match name {
        "objectId" => {
            let mut id = ((block as i64) << 32) | 0x1_0000_0000_0000;
            ColumnData::I64(PrimitiveColumn::new(
                (0..rows)
                    .map(|_| {
                        id += 1 + (rng.next() % 3) as i64;
                        id
                    })
                    .collect(),
            ))
        }
        "ra_full" => ColumnData::F64(PrimitiveColumn::new(
            (0..rows).map(|_| sub_ra + rng.unit() * 0.25).collect(),
        )),
        "decl_full" => ColumnData::F64(PrimitiveColumn::new(
            (0..rows).map(|_| sub_decl + rng.unit() * 0.25).collect(),
        )),
        "ra_6dp" => ColumnData::F64(PrimitiveColumn::new(
            (0..rows)
                .map(|_| ((sub_ra + rng.unit() * 0.25) * 1e6).round() / 1e6)
                .collect(),
        )),
        "decl_7dp" => ColumnData::F64(PrimitiveColumn::new(
            (0..rows)
                .map(|_| ((sub_decl + rng.unit() * 0.25) * 1e7).round() / 1e7)
                .collect(),
        )),
        "psFlux" => ColumnData::F32(PrimitiveColumn::new(
            (0..rows)
                .map(|_| (1000.0 * (rng.normal() * 1.5).exp() + 20.0 * rng.normal()) as f32)
                .collect(),
        )),
        "psFluxErr" => ColumnData::F32(PrimitiveColumn::new(
            (0..rows)
                .map(|_| (20.0 + 3.0 * rng.normal().abs()) as f32)
                .collect(),
        )),
        "flags" => ColumnData::I64(PrimitiveColumn::new(
            (0..rows)
                .map(|_| {
                    let r = rng.next();
                    let mut flags = 0i64;
                    if r.is_multiple_of(10) {
                        flags |= 1 << ((r >> 8) % 40);
                    }
                    if r % 50 == 1 {
                        flags |= 1 << 45;
                    }
                    flags
                })
                .collect(),
        )),
        "nDet" => ColumnData::I32(PrimitiveColumn::new(
            (0..rows).map(|_| (rng.next() % 60) as i32).collect(),
        )),
        "band" => {
            let bands: [&[u8]; 6] = [b"u", b"g", b"r", b"i", b"z", b"y"];
            let values: Vec<Option<&[u8]>> = (0..rows)
                .map(|_| Some(bands[(rng.next() % 6) as usize]))
                .collect();
            ColumnData::Utf8(VarColumn::from_options(&values))
        }
        _ => ColumnData::I8(PrimitiveColumn::new(vec![0; rows])),
    }
}

fn output_bytes(data: &ColumnData) -> usize {
    match data {
        ColumnData::Bool(c) => c.values.len().div_ceil(8),
        ColumnData::I8(c) => c.values.len(),
        ColumnData::I16(c) => c.values.len() * 2,
        ColumnData::I32(c) => c.values.len() * 4,
        ColumnData::I64(c) => c.values.len() * 8,
        ColumnData::F32(c) => c.values.len() * 4,
        ColumnData::F64(c) => c.values.len() * 8,
        ColumnData::Utf8(c) | ColumnData::Binary(c) => c.offsets.len() * 4 + c.data.len(),
    }
}

fn raw_le(data: &ColumnData) -> Vec<u8> {
    match data {
        ColumnData::I64(c) => c.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ColumnData::I32(c) => c.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ColumnData::F64(c) => c.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ColumnData::F32(c) => c.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ColumnData::Utf8(c) => (0..c.len()).map(|row| c.value(row)[0]).collect(),
        _ => Vec::new(),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).map_or(Ok(65536), |arg| arg.parse())?;
    let blocks: usize = args.get(2).map_or(Ok(16), |arg| arg.parse())?;
    let dump = args.get(3);
    let columns: [(&str, ColumnType); 10] = [
        ("objectId", ColumnType::I64),
        ("ra_full", ColumnType::F64),
        ("decl_full", ColumnType::F64),
        ("ra_6dp", ColumnType::F64),
        ("decl_7dp", ColumnType::F64),
        ("psFlux", ColumnType::F32),
        ("psFluxErr", ColumnType::F32),
        ("flags", ColumnType::I64),
        ("nDet", ColumnType::I32),
        ("band", ColumnType::Utf8),
    ];
    println!("{rows} rows per block, {blocks} blocks per column");
    println!(
        "{:<10} {:<14} {:>5} {:>8} {:>9}",
        "column", "encoding", "lz4", "size", "GB/s"
    );
    // SKYSCAN_COLUMN=name restricts the run to one column (for profiling).
    let only = std::env::var("SKYSCAN_COLUMN").ok();
    for (name, column_type) in columns {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let mut rng = Rng(42);
        let data: Vec<ColumnData> = (0..blocks)
            .map(|block| column(name, block, rows, &mut rng))
            .collect();
        if let Some(dir) = dump {
            let bytes: Vec<u8> = data.iter().flat_map(raw_le).collect();
            std::fs::write(format!("{dir}/{name}.bin"), bytes)?;
        }
        let schema = ColumnSchema::new(name, column_type, false);
        let raw_bytes: usize = data.iter().map(output_bytes).sum();
        let mut choices: Vec<Option<Encoding>> = vec![None];
        choices.extend(
            Encoding::ALL
                .iter()
                .filter(|e| column_type.supports(**e))
                .map(|e| Some(*e)),
        );
        for choice in choices {
            let compressions: &[CompressionChoice] = if choice.is_none() {
                &[CompressionChoice::Auto]
            } else {
                &[CompressionChoice::Never, CompressionChoice::Always]
            };
            for &compression in compressions {
                let options = EncodeOptions {
                    encoding: choice,
                    compression,
                };
                let encoded: Vec<EncodedBlock> = match data
                    .iter()
                    .map(|block| encode_block(&schema, block, &options))
                    .collect::<Result<_, _>>()
                {
                    Ok(encoded) => encoded,
                    Err(_) => continue,
                };
                let size: usize = encoded.iter().map(|block| block.bytes.len()).sum();
                let mut decoder = BlockDecoder::new();
                let mut out = ColumnData::empty(column_type);
                let mut best = f64::INFINITY;
                for _ in 0..7 {
                    let start = Instant::now();
                    for block in &encoded {
                        let block_ref = BlockRef {
                            row_group: 0,
                            column_index: 0,
                            column: &schema,
                            meta: &block.meta,
                        };
                        decoder.decode_into(&block_ref, &block.bytes, &mut out)?;
                    }
                    best = best.min(start.elapsed().as_secs_f64());
                }
                let label = match choice {
                    None => format!("auto:{:?}", encoded[0].meta.encoding),
                    Some(encoding) => format!("{encoding:?}"),
                };
                let lz4 = encoded
                    .iter()
                    .filter(|b| b.meta.compression == skyscan_format::Compression::Lz4)
                    .count();
                println!(
                    "{:<10} {:<14} {:>2}/{:<2} {:>7.3} {:>9.2}",
                    name,
                    label,
                    lz4,
                    encoded.len(),
                    size as f64 / raw_bytes as f64,
                    raw_bytes as f64 / best / 1e9
                );
            }
        }
    }
    Ok(())
}
