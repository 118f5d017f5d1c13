//! Stable-toolchain fuzz smoke test for CI: runs the `decode_chunk` target
//! function over mutated golden files and random bytes, then the
//! `decode_frames` target over mutated frame streams, and exits non-zero on
//! a panic (printing the input as hex and saving it to `artifacts/`).
//!
//! `cargo run --release --bin smoke -- [--iterations N] [--seconds S] [--seed X]`

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use skyscan_fuzz::{GOLDEN, decode_chunk, decode_frames, frame_seed};

/// SplitMix64 (deterministic per seed, so a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One mutation of a golden file (or pure random bytes).
fn mutate(rng: &mut Rng) -> Vec<u8> {
    let golden = GOLDEN[rng.below(GOLDEN.len())].to_vec();
    mutate_bytes(rng, golden)
}

/// One mutation of `data`.
fn mutate_bytes(rng: &mut Rng, mut data: Vec<u8>) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            // Random bytes of random length, sometimes with a valid-looking tail.
            let len = rng.below(8192);
            data = (0..len).map(|_| rng.next() as u8).collect();
        }
        1 => {
            let len = rng.below(data.len() + 1);
            data.truncate(len);
        }
        _ => {}
    }
    let flips = 1 + rng.below(8);
    for _ in 0..flips {
        if data.is_empty() {
            break;
        }
        let position = rng.below(data.len());
        match rng.below(4) {
            0 => data[position] ^= 1 << rng.below(8),
            1 => data[position] = rng.next() as u8,
            // Interesting values for length and count fields.
            2 => data[position] = [0, 1, 0x7F, 0x80, 0xFF][rng.below(5)],
            _ => {
                let len = (1 + rng.below(8)).min(data.len() - position);
                for byte in &mut data[position..position + len] {
                    *byte = 0xFF;
                }
            }
        }
    }
    data
}

fn main() -> ExitCode {
    let mut iterations: u64 = 5_000;
    let mut seconds: Option<f64> = None;
    let mut seed: u64 = 0x5EED;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut index = 0;
    while index < args.len() {
        let value = args.get(index + 1).map(String::as_str).unwrap_or("");
        match args[index].as_str() {
            "--iterations" => iterations = value.parse().unwrap_or(iterations),
            "--seconds" => seconds = value.parse().ok(),
            "--seed" => seed = value.parse().unwrap_or(seed),
            other => {
                eprintln!("unknown argument {other}; use --iterations N, --seconds S, --seed X");
                return ExitCode::from(2);
            }
        }
        index += 2;
    }
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut rng = Rng(seed);
    // The unmutated golden files first.
    for golden in GOLDEN {
        decode_chunk(golden);
    }
    let started = Instant::now();
    let frames = frame_seed();
    decode_frames(&frames);
    let mut done = 0u64;
    loop {
        let finished = match deadline {
            Some(deadline) => Instant::now() >= deadline,
            None => done >= iterations,
        };
        if finished {
            break;
        }
        // Alternate the targets: chunk files, then frame streams.
        let (input, target, extension) = if done % 2 == 0 {
            (mutate(&mut rng), decode_chunk as fn(&[u8]), "skychunk")
        } else {
            (mutate_bytes(&mut rng, frames.clone()), decode_frames as fn(&[u8]), "frames")
        };
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let hex: String = input
                .iter()
                .take(256)
                .map(|byte| format!("{byte:02x}"))
                .collect();
            let _ = std::fs::create_dir_all("artifacts");
            let path = format!("artifacts/smoke-seed{seed}-iter{done}.{extension}");
            let _ = std::fs::write(&path, &input);
            eprintln!("PANIC on iteration {done} (seed {seed}); input saved to {path}");
            eprintln!("input ({} bytes), first 256: {hex}", input.len());
            return ExitCode::FAILURE;
        }
        done += 1;
    }
    println!(
        "smoke: {done} mutated inputs (chunk files and frame streams) decoded without a panic in {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
