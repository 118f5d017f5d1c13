//! Criterion micro-benchmarks of the sky kernels:
//!
//! * `distance`: squared-chord pairs/s of the bare distance test (a fold over
//!   unit vectors) against sciSQL's haversine `angSep` (rows/s);
//! * `vectors`: unit-vector conversion, fast (vectorized) and exact (libm);
//! * `circle`: `s2PtInCircle` on 10^6 points for radii 1′, 10′, 1°;
//! * `join`: the near-neighbour join at r = 1′ on 50,000 objects in 1 deg²
//!   and on 2× and 4× the rows at the same density (linearity).
//!
//! `cargo bench -p skyscan-kernel --bench spatial`. `skyscan-bench spatial`
//! runs the join next to DuckDB on the same points.

// Benchmark code: a failed setup step should stop with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skyscan_kernel::spatial::F64Arg;
use skyscan_kernel::spatial::ang_sep::{Within, ang_sep};
use skyscan_kernel::spatial::join::{JoinParams, NeighbourJoin};
use skyscan_kernel::spatial::regions::CirclePredicate;
use skyscan_kernel::spatial::vectors::{UnitVectors, unit_vectors_exact, unit_vectors_fast};

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` points uniform on the sphere inside ra ∈ [ra0, ra0 + width],
/// dec ∈ [dec0, dec0 + height].
fn patch(
    n: usize,
    ra0: f64,
    width: f64,
    dec0: f64,
    height: f64,
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let (s0, s1) = (dec0.to_radians().sin(), (dec0 + height).to_radians().sin());
    let ra = (0..n).map(|_| ra0 + width * rng.unit()).collect();
    let dec = (0..n)
        .map(|_| (s0 + (s1 - s0) * rng.unit()).asin().to_degrees())
        .collect();
    (ra, dec)
}

fn bench_distance(c: &mut Criterion) {
    let n = 4096;
    let (ra, dec) = patch(n, 10.0, 1.0, -0.5, 1.0, 1);
    let mut vectors = UnitVectors::new();
    vectors.compute(&ra, &dec).unwrap();
    let v = vectors.view();
    let (x, y, z) = (v.x(), v.y(), v.z());
    let threshold = {
        let half = (0.5f64 / 60.0).to_radians().sin();
        4.0 * half * half
    };
    let mut group = c.benchmark_group("distance");
    group.throughput(Throughput::Elements((n * 64) as u64));
    group.bench_function("chord2_pairs", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for probe in 0..64 {
                let (px, py, pz) = (x[probe], y[probe], z[probe]);
                total += x
                    .iter()
                    .zip(y)
                    .zip(z)
                    .map(|((&bx, &by), &bz)| {
                        let (dx, dy, dz) = (px - bx, py - by, pz - bz);
                        usize::from(dx * dx + dy * dy + dz * dz < threshold)
                    })
                    .sum::<usize>();
            }
            black_box(total)
        })
    });
    let (ra2, dec2) = patch(n, 10.0, 1.0, -0.5, 1.0, 2);
    let mut out = vec![0.0; n];
    let mut validity = vec![u64::MAX; n.div_ceil(64)];
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("haversine_ang_sep", |b| {
        b.iter(|| {
            ang_sep(
                F64Arg::Column(&ra),
                F64Arg::Column(&dec),
                F64Arg::Column(&ra2),
                F64Arg::Column(&dec2),
                &mut out,
                &mut validity,
            )
            .unwrap();
            black_box(out[0])
        })
    });
    group.finish();
}

fn bench_vectors(c: &mut Criterion) {
    let n = 1 << 16;
    let (ra, dec) = patch(n, 0.0, 360.0, -90.0, 180.0, 3);
    let (mut x, mut y, mut z) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut group = c.benchmark_group("vectors");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("fast", |b| {
        b.iter(|| unit_vectors_fast(&ra, &dec, &mut x, &mut y, &mut z).unwrap())
    });
    group.bench_function("exact_libm", |b| {
        b.iter(|| unit_vectors_exact(&ra, &dec, &mut x, &mut y, &mut z).unwrap())
    });
    group.finish();
}

fn bench_circle(c: &mut Criterion) {
    // 10^6 points in a 10° × 10° field, in batches of 16 Ki rows (a
    // sub-chunk); cones at its center. `vectors_per_batch` computes the
    // batch's unit vectors first (cost included), as a caller that shares
    // them with other predicates or the join would.
    let n = 1_000_000;
    let batch = 16 * 1024;
    let (ra, dec) = patch(n, 5.0, 10.0, -5.0, 10.0, 4);
    let mut vectors = UnitVectors::new();
    let mut out = vec![0u64; batch / 64];
    let mut validity = vec![u64::MAX; batch / 64];
    let mut group = c.benchmark_group("circle_1e6_points");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    for (label, radius) in [
        ("1arcmin", 1.0 / 60.0),
        ("10arcmin", 10.0 / 60.0),
        ("1deg", 1.0),
    ] {
        let circle = CirclePredicate::new(10.0, 0.0, radius);
        for with_vectors in [false, true] {
            let name = if with_vectors {
                "vectors_per_batch"
            } else {
                "no_vectors"
            };
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| {
                    let mut inside = 0;
                    for (lon, lat) in ra.chunks(batch).zip(dec.chunks(batch)) {
                        if with_vectors {
                            vectors.compute(lon, lat).unwrap();
                            let view = vectors.view();
                            circle
                                .eval(lon, lat, Some(&view), &mut out, &mut validity)
                                .unwrap();
                        } else {
                            circle
                                .eval(lon, lat, None, &mut out, &mut validity)
                                .unwrap();
                        }
                        inside += out.iter().map(|w| w.count_ones()).sum::<u32>();
                    }
                    black_box(inside)
                })
            });
        }
    }
    group.finish();
}

fn bench_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("near_neighbour_1arcmin");
    group.sample_size(20);
    let params = JoinParams {
        radius_deg: 1.0 / 60.0,
        comparison: Within::Less,
        max_pairs: 100_000_000,
    };
    for scale in [1usize, 2, 4] {
        // 50,000 objects per square degree, on `scale` square degrees.
        let n = 50_000 * scale;
        let (ra, dec) = patch(n, 10.0, scale as f64, -0.5, 1.0, 5);
        let mut join = NeighbourJoin::new();
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("rows", n), |b| {
            b.iter(|| {
                out_a.clear();
                out_b.clear();
                let stats = join
                    .run(&ra, &dec, &ra, &dec, &params, None, &mut out_a, &mut out_b)
                    .unwrap();
                black_box(stats.pairs)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_distance,
    bench_vectors,
    bench_circle,
    bench_join
);
criterion_main!(benches);
