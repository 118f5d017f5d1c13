//! Ad-hoc speed of the block encoder (`encode_block` with the automatic
//! choice) on LSST-like columns of one row group, in ns per value, with the
//! encoding chosen and the bytes written. `skyscan-bench format` measures the
//! same on the generated Object table; this one builds in seconds.
//!
//! `cargo run --release -p skyscan-format --example encode_speed [NAME FILTER]`

use std::hint::black_box;
use std::time::Instant;

use skyscan_format::{
    ColumnData, ColumnSchema, EncodeOptions, PrimitiveColumn, VarColumn, encode_block,
};

/// SplitMix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn main() {
    let rows = 6000;
    let mut rng = Rng(42);
    let columns: Vec<(&str, ColumnData)> = vec![
        (
            "f32 flux (noise: plain)",
            ColumnData::F32(PrimitiveColumn::new(
                (0..rows).map(|_| (300.0 * rng.normal()) as f32).collect(),
            )),
        ),
        (
            "f32 flux error (float-for)",
            ColumnData::F32(PrimitiveColumn::new(
                (0..rows)
                    .map(|_| (60.0 * (1.0 + 0.1 * rng.normal().abs())) as f32)
                    .collect(),
            )),
        ),
        (
            "f64 ra of a sub-chunk (float-for)",
            ColumnData::F64(PrimitiveColumn::new(
                (0..rows).map(|_| 60.0 + 0.2 * rng.uniform()).collect(),
            )),
        ),
        (
            "f32 extendedness (dictionary)",
            ColumnData::F32(PrimitiveColumn::new(
                (0..rows)
                    .map(|_| if rng.uniform() < 0.7 { 1.0 } else { 0.0 })
                    .collect(),
            )),
        ),
        (
            "i64 objectId (for)",
            ColumnData::I64(PrimitiveColumn::new(
                (0..rows)
                    .map(|_| (7 << 32) | (rng.next() % 4_000_000) as i64)
                    .collect(),
            )),
        ),
        (
            "i64 parentObjectId (sparse)",
            ColumnData::I64(PrimitiveColumn::new(
                (0..rows)
                    .map(|_| {
                        if rng.uniform() < 0.12 {
                            (7 << 32) | (rng.next() % 4_000_000) as i64
                        } else {
                            0
                        }
                    })
                    .collect(),
            )),
        ),
        (
            "i32 nVisits (for)",
            ColumnData::I32(PrimitiveColumn::new(
                (0..rows)
                    .map(|_| (180.0 + 25.0 * rng.normal()) as i32)
                    .collect(),
            )),
        ),
        (
            "utf8 band (dictionary)",
            ColumnData::Utf8(VarColumn::from_options(
                &(0..rows)
                    .map(|_| Some(["u", "g", "r", "i", "z", "y"][(rng.next() % 6) as usize]))
                    .collect::<Vec<_>>(),
            )),
        ),
    ];
    let options = EncodeOptions::default();
    // An argument keeps only the columns whose name contains it (for perf).
    let filter = std::env::args().nth(1).unwrap_or_default();
    let repeats = if filter.is_empty() { 200 } else { 20_000 };
    for (name, data) in columns.iter().filter(|(name, _)| name.contains(&filter)) {
        let schema = ColumnSchema::new("c", data.column_type(), false);
        let Ok(first) = encode_block(&schema, data, &options) else {
            println!("{name}: encoding failed");
            continue;
        };
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..repeats {
                let encoded = encode_block(&schema, black_box(data), &options);
                black_box(encoded.map(|block| block.bytes.len()).unwrap_or(0));
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{name:<36} {:>6.2} ns/value  {:?}, {} bytes",
            best * 1e9 / (repeats * rows) as f64,
            first.meta.encoding,
            first.bytes.len()
        );
    }
}
