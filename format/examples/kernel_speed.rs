//! Ad-hoc speed of the hot loops in `skyscan_format::kernels` (values per
//! second and GB/s of output), for checking vectorization/unrolling.
//!
//! `cargo run --release -p skyscan-format --example kernel_speed`

use std::hint::black_box;
use std::time::Instant;

use skyscan_format::kernels;

fn best_of(passes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..passes {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let count = 1 << 16;
    let repeats = 64;
    for width in [1u32, 3, 5, 8, 13, 17, 24, 32, 40, 52, 64] {
        let mask = if width == 0 {
            0
        } else {
            u64::MAX >> (64 - width)
        };
        let values: Vec<u64> = (0..count as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
            .collect();
        let mut packed = Vec::new();
        kernels::pack(&values, width, &mut packed);
        let mut out64 = vec![0u64; count];
        let seconds = best_of(5, || {
            for _ in 0..repeats {
                kernels::unpack(black_box(&packed), width, black_box(&mut out64));
            }
        });
        let mut out32 = vec![0i32; count];
        let seconds_for32 = best_of(5, || {
            for _ in 0..repeats {
                if width <= 32 {
                    kernels::unpack_for(black_box(&packed), width, 7, black_box(&mut out32));
                }
            }
        });
        let total = (count * repeats) as f64;
        println!(
            "unpack w={width:>2}: {:>6.2} G values/s ({:>5.1} GB/s as u64)  FOR->i32 {:>6.2} G values/s",
            total / seconds / 1e9,
            total * 8.0 / seconds / 1e9,
            total / seconds_for32 / 1e9,
        );
    }
    for dict_len in [6usize, 60, 4000] {
        let width = kernels::bits_needed(dict_len as u64 - 1);
        let codes: Vec<u64> = (0..count as u64)
            .map(|i| (i * 7919) % dict_len as u64)
            .collect();
        let mut packed = Vec::new();
        kernels::pack(&codes, width, &mut packed);
        let dict: Vec<i32> = (0..1 << width).map(|i| i * 3).collect();
        let mut out = vec![0i32; count];
        let seconds = best_of(5, || {
            for _ in 0..repeats {
                let _ = kernels::unpack_batches::<()>(
                    black_box(&packed),
                    width,
                    count,
                    |start, batch| {
                        kernels::gather(&dict, dict_len, batch, &mut out[start..]);
                        Ok(())
                    },
                );
                black_box(&mut out);
            }
        });
        println!(
            "dictionary {dict_len:>4} -> i32: {:.1} GB/s",
            (count * repeats * 4) as f64 / seconds / 1e9
        );
    }
    let planes: Vec<u8> = (0..count * 8).map(|i| (i * 7) as u8).collect();
    let mut out = vec![0u64; count];
    let seconds = best_of(5, || {
        for _ in 0..repeats {
            kernels::unshuffle8(black_box(&planes), black_box(&mut out));
        }
    });
    println!(
        "unshuffle8: {:.1} GB/s",
        (count * repeats * 8) as f64 / seconds / 1e9
    );
    let mut out = vec![0u32; count];
    let seconds = best_of(5, || {
        for _ in 0..repeats {
            kernels::unshuffle4(black_box(&planes[..count * 4]), black_box(&mut out));
        }
    });
    println!(
        "unshuffle4: {:.1} GB/s",
        (count * repeats * 4) as f64 / seconds / 1e9
    );
}
