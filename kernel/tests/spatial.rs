//! The vectorized sky functions against independent scalar references:
//! `skyscan-sky`'s sciSQL ports (written separately, for chunk pruning) and
//! the BRIEF §3 formulas written out here, on random and adversarial inputs
//! (points on region boundaries to the last ulp, poles, RA 0/360, NaN/inf).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skyscan_kernel::spatial::ang_sep::{Within, ang_sep, ang_sep_within};
use skyscan_kernel::spatial::exact;
use skyscan_kernel::spatial::join::{
    JoinParams, JoinStats, NO_ROW, NeighbourJoin, near_neighbour_join,
};
use skyscan_kernel::spatial::regions::{
    BoxPredicate, CirclePredicate, EllipsePredicate, PolygonPredicate, s2_pt_in_box,
    s2_pt_in_circle, s2_pt_in_cpoly, s2_pt_in_ellipse,
};
use skyscan_kernel::spatial::vectors::UnitVectors;
use skyscan_kernel::spatial::{F64Arg, SpatialError};
use skyscan_sky::{Circle, ConvexPolygon, Ellipse, SkyBox};

/// SplitMix64: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Nudges `x` by `steps` ulps.
fn ulps(x: f64, steps: i64) -> f64 {
    let mut value = x;
    for _ in 0..steps.unsigned_abs() {
        value = if steps > 0 {
            value.next_up()
        } else {
            value.next_down()
        };
    }
    value
}

/// The point at angular distance `dist_deg` from (lon, lat) along `bearing_deg`.
fn destination(lon: f64, lat: f64, bearing_deg: f64, dist_deg: f64) -> (f64, f64) {
    let (phi1, lambda1) = (lat.to_radians(), lon.to_radians());
    let (theta, delta) = (bearing_deg.to_radians(), dist_deg.to_radians());
    let phi2 = (phi1.sin() * delta.cos() + phi1.cos() * delta.sin() * theta.cos()).asin();
    let lambda2 = lambda1
        + (theta.sin() * delta.sin() * phi1.cos()).atan2(delta.cos() - phi1.sin() * phi2.sin());
    (
        lambda2.to_degrees().rem_euclid(360.0),
        phi2.to_degrees().clamp(-90.0, 90.0),
    )
}

/// BRIEF §3's haversine, written out independently of the crate.
fn brief_ang_sep(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> Option<f64> {
    let ok = |lon: f64, lat: f64| lon.is_finite() && lat.is_finite() && lat.abs() <= 90.0;
    if !ok(lon1, lat1) || !ok(lon2, lat2) {
        return None;
    }
    let k = exact::RAD_PER_DEG;
    let sdl = ((lon1 - lon2) * k * 0.5).sin().powi(2);
    let sdp = ((lat1 - lat2) * k * 0.5).sin().powi(2);
    let cm = ((lat1 + lat2) * k * 0.5).cos().powi(2);
    let d2 = (4.0 * (sdl * (cm - sdp) + sdp)).clamp(0.0, 4.0);
    Some((2.0 * exact::DEG_PER_RAD * (d2 / 4.0).sqrt().asin()).min(180.0))
}

fn bit(words: &[u64], row: usize) -> bool {
    words[row / 64] >> (row % 64) & 1 == 1
}

/// Runs a predicate producing (value, validity) bitmaps for `n` rows.
fn run_predicate(
    n: usize,
    f: impl FnOnce(&mut [u64], &mut [u64]) -> Result<(), SpatialError>,
) -> (Vec<u64>, Vec<u64>) {
    let mut out = vec![0xAAAA_AAAA_AAAA_AAAAu64; n.div_ceil(64)];
    let mut validity = vec![u64::MAX; n.div_ceil(64)];
    f(&mut out, &mut validity).unwrap();
    if !n.is_multiple_of(64) {
        assert_eq!(out[n / 64] >> (n % 64), 0, "bits past n must be clear");
    }
    (out, validity)
}

/// Checks predicate output against a scalar reference (`None` = NULL) and
/// that the test is not degenerate (some row inside).
fn assert_matches(
    what: &str,
    out: &[u64],
    validity: &[u64],
    reference: impl Fn(usize) -> Option<bool>,
    n: usize,
) {
    let inside = check_matches(what, out, validity, reference, n);
    assert!(
        inside > 0 || n == 0,
        "{what}: degenerate test, nothing inside"
    );
}

/// Checks predicate output against a scalar reference; returns the number
/// of rows inside.
fn check_matches(
    what: &str,
    out: &[u64],
    validity: &[u64],
    reference: impl Fn(usize) -> Option<bool>,
    n: usize,
) -> usize {
    let mut true_count = 0;
    for row in 0..n {
        let got = bit(validity, row).then(|| bit(out, row));
        let expected = reference(row);
        assert_eq!(got, expected, "{what}: row {row}");
        if !bit(validity, row) {
            assert!(!bit(out, row), "{what}: NULL row {row} has value bit set");
        }
        true_count += usize::from(expected == Some(true));
    }
    true_count
}

/// Positions: a uniform part, a cluster near the region, specials.
fn positions(rng: &mut Rng, n: usize, near: (f64, f64), spread: f64) -> (Vec<f64>, Vec<f64>) {
    let mut lon = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    for index in 0..n {
        let (a, b) = match index % 10 {
            0 => (rng.range(0.0, 360.0), rng.range(-90.0, 90.0)),
            1 => match rng.below(8) {
                0 => (f64::NAN, 0.0),
                1 => (0.0, f64::NAN),
                2 => (f64::INFINITY, 10.0),
                3 => (10.0, 90.0 + 1e-9),
                4 => (10.0, -90.0),
                5 => (near.0 + 360.0, near.1),
                6 => (near.0 - 720.0, near.1),
                _ => (1.0e7 + near.0, near.1),
            },
            _ => {
                let (lo, la) = destination(
                    near.0,
                    near.1,
                    rng.range(0.0, 360.0),
                    spread * rng.unit().sqrt(),
                );
                (lo, la)
            }
        };
        lon.push(a);
        lat.push(b);
    }
    (lon, lat)
}

#[test]
fn ang_sep_column_is_bit_identical_to_the_references() {
    let mut rng = Rng(1);
    let n = 20_000;
    let (lon1, lat1) = positions(&mut rng, n, (0.5, 30.0), 5.0);
    let (lon2, lat2) = positions(&mut rng, n, (359.5, 30.0), 5.0);
    let mut out = vec![0.0; n];
    let mut validity = vec![u64::MAX; n.div_ceil(64)];
    ang_sep(
        F64Arg::Column(&lon1),
        F64Arg::Column(&lat1),
        F64Arg::Column(&lon2),
        F64Arg::Column(&lat2),
        &mut out,
        &mut validity,
    )
    .unwrap();
    for row in 0..n {
        let expected = brief_ang_sep(lon1[row], lat1[row], lon2[row], lat2[row]);
        let sky = skyscan_sky::ang_sep_deg(lon1[row], lat1[row], lon2[row], lat2[row]);
        assert_eq!(expected, sky, "references disagree at row {row}");
        let got = bit(&validity, row).then_some(out[row]);
        assert_eq!(
            got.map(f64::to_bits),
            expected.map(f64::to_bits),
            "row {row}"
        );
    }
    // Known values: 90 degrees along the equator, poles, wrap.
    let cases = [
        (0.0, 0.0, 90.0, 0.0, 90.0),
        (0.0, 90.0, 123.0, -90.0, 180.0),
        (359.9, 0.0, 0.1, 0.0, 0.2),
        (10.0, 89.0, 190.0, 89.0, 2.0),
    ];
    for (a, b, c, d, expected) in cases {
        let got = exact::ang_sep(a, b, c, d).unwrap();
        assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    }
}

#[test]
fn circle_matches_scisql_on_boundaries() {
    let mut rng = Rng(2);
    for (center, radius) in [
        ((10.0, 20.0), 0.5),
        ((0.01, -5.0), 1.0),   // window wraps through RA 0
        ((359.99, 45.0), 2.0), // the other side
        ((123.0, 89.5), 1.0),  // cap over the pole
        ((5.0, -90.0), 0.3),   // centered on the pole
        ((200.0, 10.0), 0.0),  // zero radius
        ((200.0, 10.0), 120.0),
        ((-350.0, 10.0), 1.0 / 60.0),
    ] {
        let n = 6_000;
        let (mut lon, mut lat) = positions(&mut rng, n, center, radius * 1.5 + 1e-3);
        // Points on the circle, nudged by a few ulps either way.
        for row in (0..n).step_by(3) {
            let (a, b) = destination(center.0, center.1, rng.range(0.0, 360.0), radius);
            let k = rng.below(9) as i64 - 4;
            lon[row] = ulps(a, k);
            lat[row] = ulps(b, rng.below(9) as i64 - 4);
        }
        lon[1] = center.0;
        lat[1] = center.1;
        let sky = Circle::new(center.0, center.1, radius).unwrap();
        let reference = |row: usize| {
            exact::valid_position(lon[row], lat[row]).then(|| sky.contains(lon[row], lat[row]))
        };
        let predicate = CirclePredicate::new(center.0, center.1, radius);
        let mut vectors = UnitVectors::new();
        vectors.compute(&lon, &lat).unwrap();
        for with_vectors in [false, true] {
            let view = vectors.view();
            let v = with_vectors.then_some(&view);
            let (out, validity) = run_predicate(n, |out, validity| {
                predicate.eval(&lon, &lat, v, out, validity)
            });
            assert_matches(
                &format!("circle {center:?} {radius}"),
                &out,
                &validity,
                reference,
                n,
            );
        }
        // The SQL-level function with constant arguments: same answer.
        let (out, validity) = run_predicate(n, |out, validity| {
            s2_pt_in_circle(
                n,
                F64Arg::Column(&lon),
                F64Arg::Column(&lat),
                F64Arg::Scalar(center.0),
                F64Arg::Scalar(center.1),
                F64Arg::Scalar(radius),
                out,
                validity,
            )
        });
        assert_matches("s2_pt_in_circle", &out, &validity, reference, n);
    }
}

#[test]
fn circle_with_column_arguments_uses_scisqls_two_paths() {
    let mut rng = Rng(3);
    let n = 3_000;
    let (lon, lat) = positions(&mut rng, n, (50.0, 10.0), 2.0);
    let center_lon: Vec<f64> = (0..n).map(|_| 50.0 + rng.range(-0.5, 0.5)).collect();
    let center_lat: Vec<f64> = (0..n).map(|_| 10.0 + rng.range(-0.5, 0.5)).collect();
    let radius: Vec<f64> = (0..n).map(|_| rng.range(-0.1, 2.0)).collect();
    // Column radius: angSep <= r.
    let (out, validity) = run_predicate(n, |out, validity| {
        s2_pt_in_circle(
            n,
            F64Arg::Column(&lon),
            F64Arg::Column(&lat),
            F64Arg::Column(&center_lon),
            F64Arg::Column(&center_lat),
            F64Arg::Column(&radius),
            out,
            validity,
        )
    });
    assert_matches(
        "column radius",
        &out,
        &validity,
        |row| {
            let r = radius[row];
            let sep = brief_ang_sep(lon[row], lat[row], center_lon[row], center_lat[row])?;
            if !(0.0..=180.0).contains(&r) {
                return None;
            }
            Some((lat[row] - center_lat[row]).abs() <= r && sep <= r)
        },
        n,
    );
    // Column center, constant radius: the cached chord path (sky's port).
    let (out, validity) = run_predicate(n, |out, validity| {
        s2_pt_in_circle(
            n,
            F64Arg::Column(&lon),
            F64Arg::Column(&lat),
            F64Arg::Column(&center_lon),
            F64Arg::Column(&center_lat),
            F64Arg::Scalar(1.0),
            out,
            validity,
        )
    });
    assert_matches(
        "column center",
        &out,
        &validity,
        |row| {
            exact::valid_position(lon[row], lat[row]).then(|| {
                Circle::new(center_lon[row], center_lat[row], 1.0)
                    .unwrap()
                    .contains(lon[row], lat[row])
            })
        },
        n,
    );
    // Constant point, constant circle: broadcast.
    let (out, validity) = run_predicate(100, |out, validity| {
        s2_pt_in_circle(
            100,
            F64Arg::Scalar(1.0),
            F64Arg::Scalar(1.0),
            F64Arg::Scalar(1.5),
            F64Arg::Scalar(1.0),
            F64Arg::Scalar(1.0),
            out,
            validity,
        )
    });
    assert_matches("constant", &out, &validity, |_| Some(true), 100);
}

#[test]
fn box_matches_scisql() {
    let mut rng = Rng(4);
    for corners in [
        (10.0, -5.0, 20.0, 5.0),
        (350.0, -1.0, 10.0, 1.0),  // wraps through 0
        (-10.0, -1.0, 10.0, 1.0),  // reduced: wraps
        (350.0, -1.0, 370.0, 1.0), // reduced: wraps
        (0.0, 80.0, 360.0, 90.0),  // all longitudes
        (5.0, -90.0, 5.0, 90.0),   // a meridian
        (10.0, 5.0, 20.0, -5.0),   // empty
    ] {
        let (lo0, la0, lo1, la1) = corners;
        let n = 5_000;
        let center = ((lo0 + lo1) / 2.0, (la0 + la1) / 2.0);
        let (mut lon, mut lat) = positions(&mut rng, n, center, 15.0);
        // Points exactly on and next to the edges.
        for row in (0..n).step_by(4) {
            let edge_lon = [lo0, lo1, lo0 + 360.0, lo1 - 360.0][rng.below(4) as usize];
            let edge_lat = [la0, la1][rng.below(2) as usize];
            if rng.below(2) == 0 {
                lon[row] = ulps(edge_lon, rng.below(5) as i64 - 2);
                lat[row] = rng.range(la0.min(la1), la0.max(la1));
            } else {
                lon[row] = rng.range(lo0, lo1);
                lat[row] = ulps(edge_lat, rng.below(5) as i64 - 2).clamp(-90.0, 90.0);
            }
        }
        let reference = |row: usize| {
            let (a, b) = (lon[row], lat[row]);
            if !exact::valid_position(a, b) {
                return None;
            }
            Some(SkyBox::new(lo0, la0, lo1, la1).unwrap().contains(a, b))
        };
        let (out, validity) = run_predicate(n, |out, validity| {
            BoxPredicate::new(lo0, la0, lo1, la1).eval(&lon, &lat, out, validity)
        });
        let inside = check_matches(&format!("box {corners:?}"), &out, &validity, reference, n);
        assert_eq!(inside == 0, la0 > la1, "only the empty box holds nothing");
        // Column corners (row by row) agree.
        let col = |v: f64| vec![v; n];
        let (c0, c1, c2, c3) = (col(lo0), col(la0), col(lo1), col(la1));
        let (out, validity) = run_predicate(n, |out, validity| {
            s2_pt_in_box(
                n,
                F64Arg::Column(&lon),
                F64Arg::Column(&lat),
                F64Arg::Column(&c0),
                F64Arg::Column(&c1),
                F64Arg::Column(&c2),
                F64Arg::Column(&c3),
                out,
                validity,
            )
        });
        if la0 <= la1 {
            assert_matches("column box", &out, &validity, reference, n);
        }
    }
    // Invalid boxes are NULL for every row (sciSQL), not an error.
    for (lo0, la0, lo1, la1) in [
        (10.0, 0.0, -10.0, 1.0),
        (0.0, f64::NAN, 1.0, 1.0),
        (0.0, 0.0, 1.0, 91.0),
    ] {
        let (out, validity) = run_predicate(3, |out, validity| {
            BoxPredicate::new(lo0, la0, lo1, la1).eval(&[0.5; 3], &[0.5; 3], out, validity)
        });
        assert_eq!((out[0], validity[0] & 0b111), (0, 0));
    }
}

#[test]
fn polygon_matches_scisql_on_edges() {
    let mut rng = Rng(5);
    let polygons: Vec<Vec<(f64, f64)>> = vec![
        vec![(10.0, 10.0), (20.0, 10.0), (15.0, 18.0)],
        vec![(15.0, 18.0), (20.0, 10.0), (10.0, 10.0)], // clockwise
        vec![(359.0, -1.0), (1.0, -1.0), (1.0, 1.0), (359.0, 1.0)], // across RA 0
        vec![(0.0, 85.0), (90.0, 85.0), (180.0, 85.0), (270.0, 85.0)], // holds the pole
        vec![
            (0.0, 0.0),
            (10.0, 0.0),
            (10.0, 10.0),
            (5.0, 2.0),
            (0.0, 10.0),
        ], // concave: no window
    ];
    for vertices in polygons {
        let n = 6_000;
        let mean = (vertices[0].0, vertices[0].1);
        let (mut lon, mut lat) = positions(&mut rng, n, mean, 12.0);
        // Points on the edges (great-circle interpolation), nudged.
        for row in (0..n).step_by(3) {
            let i = rng.below(vertices.len() as u64) as usize;
            let a = exact::sctov3(vertices[i].0, vertices[i].1);
            let b = exact::sctov3(
                vertices[(i + 1) % vertices.len()].0,
                vertices[(i + 1) % vertices.len()].1,
            );
            let t = rng.unit();
            let p = [
                a[0] * (1.0 - t) + b[0] * t,
                a[1] * (1.0 - t) + b[1] * t,
                a[2] * (1.0 - t) + b[2] * t,
            ];
            let norm = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            let plon = p[1].atan2(p[0]).to_degrees().rem_euclid(360.0);
            let plat = (p[2] / norm).asin().to_degrees();
            lon[row] = ulps(plon, rng.below(7) as i64 - 3);
            lat[row] = ulps(plat, rng.below(7) as i64 - 3);
        }
        let sky = ConvexPolygon::new(&vertices).ok();
        let reference = |row: usize| exact::s2_pt_in_cpoly(lon[row], lat[row], &vertices);
        if let Some(sky) = &sky {
            for row in 0..n {
                if exact::valid_position(lon[row], lat[row]) {
                    assert_eq!(reference(row), Some(sky.contains(lon[row], lat[row])));
                }
            }
        }
        let predicate = PolygonPredicate::new(&vertices).unwrap();
        let mut vectors = UnitVectors::new();
        vectors.compute(&lon, &lat).unwrap();
        for with_vectors in [false, true] {
            let view = vectors.view();
            let v = with_vectors.then_some(&view);
            let (out, validity) = run_predicate(n, |out, validity| {
                predicate.eval(&lon, &lat, v, out, validity)
            });
            assert_matches(
                &format!("polygon {vertices:?}"),
                &out,
                &validity,
                reference,
                n,
            );
        }
        let args: Vec<(F64Arg, F64Arg)> = vertices
            .iter()
            .map(|&(a, b)| (F64Arg::Scalar(a), F64Arg::Scalar(b)))
            .collect();
        let (out, validity) = run_predicate(n, |out, validity| {
            s2_pt_in_cpoly(
                n,
                F64Arg::Column(&lon),
                F64Arg::Column(&lat),
                &args,
                out,
                validity,
            )
        });
        assert_matches("s2_pt_in_cpoly", &out, &validity, reference, n);
    }
    let two = [(F64Arg::Scalar(0.0), F64Arg::Scalar(0.0)); 2];
    let mut out = [0u64];
    let mut validity = [0u64];
    assert_eq!(
        s2_pt_in_cpoly(
            1,
            F64Arg::Scalar(0.0),
            F64Arg::Scalar(0.0),
            &two,
            &mut out,
            &mut validity
        ),
        Err(SpatialError::PolygonVertexCount(2))
    );
}

#[test]
fn ellipse_matches_scisql_including_the_mirror() {
    let mut rng = Rng(6);
    for (center, major, minor, angle) in [
        ((10.0, 20.0), 3600.0, 1800.0, 30.0),
        ((0.0, 0.0), 36000.0, 100.0, -75.0),
        ((359.99, -89.9), 720.0, 720.0, 0.0),
        ((100.0, 45.0), 1.0, 0.5, 400.0),
        ((100.0, 45.0), 10.0, 0.0, 0.0), // degenerate: empty
    ] {
        let n = 6_000;
        let (mut lon, mut lat) = positions(&mut rng, n, center, major / 3600.0 * 1.3 + 1e-3);
        // A few mirror-image points near the antipode.
        for row in (2..n).step_by(17) {
            let (a, b) = destination(
                center.0 + 180.0,
                -center.1,
                rng.range(0.0, 360.0),
                rng.unit() * major / 3600.0,
            );
            lon[row] = a;
            lat[row] = b;
        }
        // Points on the boundary: bisection along random bearings on
        // sciSQL's quadratic form, then nudged by a few ulps.
        if let Some(params) = exact::EllipseParams::new(center.0, center.1, major, minor, angle) {
            let q = |(a, b): (f64, f64)| params.quadratic(exact::sctov3(a, b));
            for row in (5..n).step_by(3) {
                let bearing = rng.range(0.0, 360.0);
                let (mut lo, mut hi) = (0.0, major / 3600.0 * 1.01);
                for _ in 0..80 {
                    let mid = 0.5 * (lo + hi);
                    if q(destination(center.0, center.1, bearing, mid)) <= 1.0 {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let (a, b) = destination(center.0, center.1, bearing, lo);
                lon[row] = ulps(a, rng.below(7) as i64 - 3);
                lat[row] = ulps(b, rng.below(7) as i64 - 3);
            }
        }
        let reference = |row: usize| {
            exact::s2_pt_in_ellipse(lon[row], lat[row], center.0, center.1, major, minor, angle)
        };
        // On the near hemisphere, sky's independent port agrees.
        if minor > 0.0 {
            let sky = Ellipse::new(center.0, center.1, major, minor, angle).unwrap();
            let c = exact::sctov3(center.0, center.1);
            for row in 0..n {
                if exact::valid_position(lon[row], lat[row])
                    && exact::dot(exact::sctov3(lon[row], lat[row]), c) > 0.0
                {
                    assert_eq!(reference(row), Some(sky.contains(lon[row], lat[row])));
                }
            }
        }
        let predicate = EllipsePredicate::new(center.0, center.1, major, minor, angle);
        let mut vectors = UnitVectors::new();
        vectors.compute(&lon, &lat).unwrap();
        for with_vectors in [false, true] {
            let view = vectors.view();
            let v = with_vectors.then_some(&view);
            let (out, validity) = run_predicate(n, |out, validity| {
                predicate.eval(&lon, &lat, v, out, validity)
            });
            if minor > 0.0 {
                assert_matches(
                    &format!("ellipse {center:?}"),
                    &out,
                    &validity,
                    reference,
                    n,
                );
            } else {
                assert!(out.iter().all(|&w| w == 0));
            }
        }
        let (out, validity) = run_predicate(n, |out, validity| {
            s2_pt_in_ellipse(
                n,
                F64Arg::Column(&lon),
                F64Arg::Column(&lat),
                F64Arg::Scalar(center.0),
                F64Arg::Scalar(center.1),
                F64Arg::Scalar(major),
                F64Arg::Scalar(minor),
                F64Arg::Scalar(angle),
                out,
                validity,
            )
        });
        if minor > 0.0 {
            assert_matches("s2_pt_in_ellipse", &out, &validity, reference, n);
        }
    }
    // Invalid ellipses: NULL rows.
    for (major, minor) in [(10.0, 20.0), (36001.0, 1.0), (f64::NAN, 1.0), (10.0, -1.0)] {
        let (out, validity) = run_predicate(2, |out, validity| {
            EllipsePredicate::new(0.0, 0.0, major, minor, 0.0)
                .eval(&[0.0; 2], &[0.0; 2], None, out, validity)
        });
        assert_eq!((out[0], validity[0] & 0b11), (0, 0));
    }
}

#[test]
fn ang_sep_within_matches_the_comparison() {
    let mut rng = Rng(7);
    for (center, radius) in [
        ((10.0, 20.0), 0.1),
        ((0.0, 89.95), 0.1),
        ((359.999, 0.0), 1.0 / 60.0),
    ] {
        let n = 6_000;
        let (mut lon, mut lat) = positions(&mut rng, n, center, radius * 2.0);
        for row in (0..n).step_by(2) {
            let (a, b) = destination(center.0, center.1, rng.range(0.0, 360.0), radius);
            lon[row] = ulps(a, rng.below(9) as i64 - 4);
            lat[row] = ulps(b, rng.below(9) as i64 - 4);
        }
        let mut vectors = UnitVectors::new();
        vectors.compute(&lon, &lat).unwrap();
        for comparison in [Within::Less, Within::LessOrEqual] {
            for with_vectors in [false, true] {
                let view = vectors.view();
                let v = with_vectors.then_some(&view);
                let (out, validity) = run_predicate(n, |out, validity| {
                    ang_sep_within(
                        &lon, &lat, v, center.0, center.1, radius, comparison, out, validity,
                    )
                });
                assert_matches(
                    "ang_sep_within",
                    &out,
                    &validity,
                    |row| {
                        let sep = brief_ang_sep(lon[row], lat[row], center.0, center.1)?;
                        Some(match comparison {
                            Within::Less => sep < radius,
                            Within::LessOrEqual => sep <= radius,
                        })
                    },
                    n,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The near-neighbour join against brute force.

/// Every pair with a separation up to `cutoff`, by O(n²) brute force with
/// the BRIEF formula: (index into A, index into B, separation).
fn brute_force_separations(
    a: (&[f64], &[f64]),
    b: (&[f64], &[f64]),
    cutoff: f64,
) -> Vec<(u32, u32, f64)> {
    let mut pairs = Vec::new();
    for i in 0..a.0.len() {
        for j in 0..b.0.len() {
            if let Some(sep) = brief_ang_sep(a.0[i], a.1[i], b.0[j], b.1[j])
                && sep <= cutoff
            {
                pairs.push((i as u32, j as u32, sep));
            }
        }
    }
    pairs
}

/// The pairs of `separations` that satisfy the join condition.
fn expected_pairs(
    separations: &[(u32, u32, f64)],
    radius: f64,
    comparison: Within,
    same_row: Option<&[u32]>,
) -> Vec<(u32, u32)> {
    separations
        .iter()
        .filter(|&&(i, j, sep)| {
            let holds = match comparison {
                Within::Less => sep < radius,
                Within::LessOrEqual => sep <= radius,
            };
            holds && same_row.is_none_or(|s| s[i as usize] != j)
        })
        .map(|&(i, j, _)| (i, j))
        .collect()
}

fn brute_force_pairs(
    a: (&[f64], &[f64]),
    b: (&[f64], &[f64]),
    radius: f64,
    comparison: Within,
) -> Vec<(u32, u32)> {
    expected_pairs(
        &brute_force_separations(a, b, radius),
        radius,
        comparison,
        None,
    )
}

fn join_pairs(
    join: &mut NeighbourJoin,
    a: (&[f64], &[f64]),
    b: (&[f64], &[f64]),
    radius: f64,
    comparison: Within,
    same_row: Option<&[u32]>,
) -> Vec<(u32, u32)> {
    join_pairs_stats(join, a, b, radius, comparison, same_row).0
}

fn join_pairs_stats(
    join: &mut NeighbourJoin,
    a: (&[f64], &[f64]),
    b: (&[f64], &[f64]),
    radius: f64,
    comparison: Within,
    same_row: Option<&[u32]>,
) -> (Vec<(u32, u32)>, JoinStats) {
    let mut out_a = vec![7];
    let mut out_b = vec![9];
    let params = JoinParams {
        radius_deg: radius,
        comparison,
        max_pairs: 10_000_000,
    };
    let stats = join
        .run(
            a.0, a.1, b.0, b.1, &params, same_row, &mut out_a, &mut out_b,
        )
        .unwrap();
    assert_eq!((out_a[0], out_b[0]), (7, 9), "existing content kept");
    assert_eq!(stats.pairs, out_a.len() - 1);
    let mut pairs: Vec<(u32, u32)> = out_a[1..]
        .iter()
        .copied()
        .zip(out_b[1..].iter().copied())
        .collect();
    let count = pairs.len();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), count, "a pair was produced twice");
    (pairs, stats)
}

/// A patch of points plus, for a fraction of them, partners at exactly
/// (to a few ulps) the radius, so the threshold is exercised.
fn patch(
    rng: &mut Rng,
    n: usize,
    center: (f64, f64),
    size_deg: f64,
    radius: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut lon = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    while lon.len() < n {
        let (a, b) = destination(
            center.0,
            center.1,
            rng.range(0.0, 360.0),
            size_deg * rng.unit().sqrt(),
        );
        lon.push(a);
        lat.push(b);
        if lon.len() < n && rng.below(3) == 0 {
            let (c, d) = destination(a, b, rng.range(0.0, 360.0), radius);
            lon.push(ulps(c, rng.below(5) as i64 - 2));
            lat.push(ulps(d, rng.below(5) as i64 - 2));
        }
        if lon.len() < n && rng.below(50) == 0 {
            lon.push(a); // an identical point
            lat.push(b);
        }
    }
    (lon, lat)
}

#[test]
fn join_equals_brute_force() {
    let mut rng = Rng(8);
    let mut join = NeighbourJoin::new();
    let mut rechecked = 0;
    let arcmin = 1.0 / 60.0;
    for (name, center, size, radius) in [
        ("equator", (30.0, 0.0), 0.3, arcmin),
        ("ra wrap", (0.0, 10.0), 0.3, arcmin),
        ("ra wrap, high dec", (359.9, 70.0), 0.2, arcmin),
        ("north pole", (0.0, 90.0), 0.15, arcmin),
        ("near south pole", (45.0, -89.9), 0.2, arcmin),
        ("tiny radius", (200.0, -30.0), 0.001, 1.0e-5),
        ("large radius", (100.0, 40.0), 8.0, 2.0),
        ("maximum radius", (300.0, 60.0), 15.0, 10.0),
    ] {
        let (b_lon, b_lat) = patch(&mut rng, 1000, center, size, radius);
        // A = a subset of B (the chunk's own rows), plus foreign points.
        let mut a_lon = Vec::new();
        let mut a_lat = Vec::new();
        let mut same = Vec::new();
        for row in 0..b_lon.len() {
            if rng.below(3) != 0 {
                a_lon.push(b_lon[row]);
                a_lat.push(b_lat[row]);
                same.push(row as u32);
            }
        }
        let (x_lon, x_lat) = patch(&mut rng, 150, center, size, radius);
        a_lon.extend(&x_lon);
        a_lat.extend(&x_lat);
        same.extend(std::iter::repeat_n(NO_ROW, x_lon.len()));
        let separations = brute_force_separations((&a_lon, &a_lat), (&b_lon, &b_lat), radius);
        for comparison in [Within::Less, Within::LessOrEqual] {
            let expected = expected_pairs(&separations, radius, comparison, None);
            assert!(
                expected.len() > a_lon.len(),
                "{name}: too few pairs to test"
            );
            let (got, stats) = join_pairs_stats(
                &mut join,
                (&a_lon, &a_lat),
                (&b_lon, &b_lat),
                radius,
                comparison,
                None,
            );
            rechecked += stats.rechecked;
            assert!(stats.candidates >= got.len() as u64);
            assert_eq!(
                got.len(),
                expected.len(),
                "{name} {comparison:?}: pair count"
            );
            assert_eq!(got, expected, "{name} {comparison:?}");
            // Without the rows' pairs with themselves.
            let expected = expected_pairs(&separations, radius, comparison, Some(&same));
            let got = join_pairs(
                &mut join,
                (&a_lon, &a_lat),
                (&b_lon, &b_lat),
                radius,
                comparison,
                Some(&same),
            );
            assert_eq!(got, expected, "{name} {comparison:?} without self pairs");
        }
    }
    assert!(
        rechecked > 0,
        "the boundary pairs must reach the exact recheck"
    );
}

#[test]
fn join_exact_threshold_pairs_follow_the_comparison() {
    // r equal to the computed separation of some pairs: `<` drops them,
    // `<=` keeps them.
    let mut rng = Rng(9);
    let (lon, lat) = patch(&mut rng, 400, (150.0, -20.0), 0.05, 0.01);
    let radius = exact::ang_sep(lon[0], lat[0], lon[1], lat[1]).unwrap();
    assert!(radius > 0.0);
    let mut join = NeighbourJoin::new();
    let less = join_pairs(
        &mut join,
        (&lon, &lat),
        (&lon, &lat),
        radius,
        Within::Less,
        None,
    );
    let less_eq = join_pairs(
        &mut join,
        (&lon, &lat),
        (&lon, &lat),
        radius,
        Within::LessOrEqual,
        None,
    );
    assert!(!less.contains(&(0, 1)) && less_eq.contains(&(0, 1)));
    assert_eq!(
        less,
        brute_force_pairs((&lon, &lat), (&lon, &lat), radius, Within::Less)
    );
    assert_eq!(
        less_eq,
        brute_force_pairs((&lon, &lat), (&lon, &lat), radius, Within::LessOrEqual)
    );
}

#[test]
fn join_handles_invalid_and_odd_positions() {
    let mut rng = Rng(10);
    let radius = 0.05;
    let (mut lon, mut lat) = patch(&mut rng, 600, (10.0, 5.0), 0.2, radius);
    // NULL-producing positions pair with nothing; odd but valid longitudes
    // pair like their reduced selves.
    lon[0] = f64::NAN;
    lat[1] = 90.5;
    lon[2] = f64::INFINITY;
    lat[3] = f64::NEG_INFINITY;
    lon[4] += 360.0;
    lon[5] -= 720.0;
    lon[6] += 3600.0; // beyond the reliable range: the exact slow path
    lon[7] += 1.0e6;
    lon[8] = -lon[8] - 1.0e9;
    let mut join = NeighbourJoin::new();
    for comparison in [Within::Less, Within::LessOrEqual] {
        let expected = brute_force_pairs((&lon, &lat), (&lon, &lat), radius, comparison);
        let got = join_pairs(
            &mut join,
            (&lon, &lat),
            (&lon, &lat),
            radius,
            comparison,
            None,
        );
        assert_eq!(got, expected);
        for row in 0..4u32 {
            assert!(!got.iter().any(|&(a, b)| a == row || b == row));
        }
    }
}

#[test]
fn join_limits_and_errors() {
    let mut rng = Rng(11);
    let (lon, lat) = patch(&mut rng, 500, (10.0, 5.0), 0.05, 0.01);
    let mut out_a = vec![1, 2];
    let mut out_b = vec![3, 4];
    let params = JoinParams {
        radius_deg: 0.05,
        comparison: Within::Less,
        max_pairs: 1000,
    };
    let result = near_neighbour_join(
        &lon, &lat, &lon, &lat, &params, None, &mut out_a, &mut out_b,
    );
    assert_eq!(result, Err(SpatialError::TooManyPairs { limit: 1000 }));
    assert_eq!(
        (out_a, out_b),
        (vec![1, 2], vec![3, 4]),
        "nothing appended on error"
    );
    let mut out_a = Vec::new();
    let mut out_b = Vec::new();
    let bad_same = [0u32; 3];
    assert!(
        near_neighbour_join(
            &lon,
            &lat,
            &lon,
            &lat,
            &params,
            Some(&bad_same),
            &mut out_a,
            &mut out_b
        )
        .is_err()
    );
    // Empty sides.
    let stats =
        near_neighbour_join(&[], &[], &lon, &lat, &params, None, &mut out_a, &mut out_b).unwrap();
    assert_eq!(stats.pairs, 0);
    let stats =
        near_neighbour_join(&lon, &lat, &[], &[], &params, None, &mut out_a, &mut out_b).unwrap();
    assert_eq!(stats.pairs, 0);
}

#[test]
fn join_whole_sky_sample() {
    // Sparse points over the whole sky with a large radius: every zone
    // kind at once (polar whole-zone scans, wide windows, RA copies).
    let mut rng = Rng(12);
    let n = 2000;
    let lon: Vec<f64> = (0..n).map(|_| rng.range(0.0, 360.0)).collect();
    let lat: Vec<f64> = (0..n)
        .map(|_| (rng.range(-1.0, 1.0f64)).asin().to_degrees())
        .collect();
    let separations = brute_force_separations((&lon, &lat), (&lon, &lat), 10.0);
    let mut join = NeighbourJoin::new();
    for radius in [3.0, 10.0] {
        let expected = expected_pairs(&separations, radius, Within::Less, None);
        let got = join_pairs(
            &mut join,
            (&lon, &lat),
            (&lon, &lat),
            radius,
            Within::Less,
            None,
        );
        assert_eq!(got, expected, "radius {radius}");
    }
}
