//! Property tests of the chunker and the regions.

// Test code: helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use skyscan_sky::{Chunker, Circle, ConvexPolygon, Ellipse, Location, Region, SkyBox};

const OVERLAP_DEG: f64 = 0.01667;

fn chunker() -> &'static Chunker {
    use std::sync::OnceLock;
    static CHUNKER: OnceLock<Chunker> = OnceLock::new();
    CHUNKER.get_or_init(|| Chunker::new(85, 12, OVERLAP_DEG).unwrap())
}

/// Points all over the sky, with RA outside [0, 360) too, and with extra
/// weight on the poles, the equator and RA 0.
fn position() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        (-720.0..720.0f64, -90.0..=90.0f64),
        (
            0.0..360.0f64,
            prop_oneof![Just(90.0), Just(-90.0), Just(0.0), 89.0..=90.0f64]
        ),
        (
            prop_oneof![Just(0.0), Just(360.0), -1e-9..1e-9f64, 359.999..360.0f64],
            -90.0..=90.0f64
        ),
    ]
}

/// BRIEF §2 maxAlpha, degrees.
fn max_alpha(r: f64, lat: f64) -> f64 {
    if r == 0.0 {
        return 0.0;
    }
    if lat.abs() + r > 90.0 - 1.0 / 3600.0 {
        return 180.0;
    }
    let (r, lat) = (r.to_radians(), lat.to_radians());
    (r.sin() / ((lat - r).cos() * (lat + r).cos()).abs().sqrt())
        .atan()
        .to_degrees()
}

/// Whether longitude `lon` is within `[lo - slack, hi + slack]` of a box's
/// longitude range (wrapping).
fn lon_within(b: &SkyBox, lon: f64, slack: f64) -> bool {
    if b.is_full_lon() || slack >= 180.0 {
        return true;
    }
    let offset = (lon - (b.lon_min() - slack)).rem_euclid(360.0);
    offset <= b.lon_extent() + 2.0 * slack
}

fn all_sub_chunks(region: &Region) -> Vec<Location> {
    chunker()
        .sub_chunks_intersecting(region)
        .into_iter()
        .flat_map(|(chunk_id, subs)| {
            subs.into_iter().map(move |sub_chunk_id| Location {
                chunk_id,
                sub_chunk_id,
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The box of the sub-chunk a point is located in holds the point (up to
    /// 1e-9 deg: a division that rounds up can put a point a few ulps west of
    /// its sub-chunk's western edge, exactly as in Qserv).
    #[test]
    fn located_sub_chunk_holds_point((ra, dec) in position()) {
        let c = chunker();
        let loc = c.locate(ra, dec).unwrap();
        prop_assert!(c.is_valid_sub_chunk(loc.chunk_id, loc.sub_chunk_id));
        let b = c.sub_chunk_bounds(loc.chunk_id, loc.sub_chunk_id).unwrap();
        prop_assert!(dec >= b.lat_min() && dec <= b.lat_max(), "{loc:?} {b:?}");
        prop_assert!(lon_within(&b, ra, 1e-9), "{loc:?} {b:?}");
        let chunk_box = c.chunk_bounds(loc.chunk_id).unwrap();
        prop_assert!(dec >= chunk_box.lat_min() && dec <= chunk_box.lat_max());
        prop_assert!(lon_within(&chunk_box, ra, 1e-9));
    }

    /// Overlap copies: never the own location, no duplicates, each in a
    /// sub-chunk whose box grown by R in latitude and by that sub-stripe's
    /// α in longitude holds the point (Qserv's overlap region), and every
    /// sub-chunk whose box comes within R of the point gets one.
    #[test]
    fn overlap_locations_are_the_overlap_region((ra, dec) in position()) {
        let c = chunker();
        let own = c.locate(ra, dec).unwrap();
        let mut overlaps = Vec::new();
        c.overlap_locations(ra, dec, &mut overlaps).unwrap();
        for (index, loc) in overlaps.iter().enumerate() {
            prop_assert_ne!(*loc, own);
            prop_assert!(!overlaps[..index].contains(loc), "duplicate {loc:?}");
            let b = c.sub_chunk_bounds(loc.chunk_id, loc.sub_chunk_id).unwrap();
            let eps = 1e-9;
            prop_assert!(dec >= b.lat_min() - OVERLAP_DEG - eps
                && dec <= b.lat_max() + OVERLAP_DEG + eps, "{loc:?} {b:?}");
            let alpha = max_alpha(OVERLAP_DEG, b.lat_min().abs().max(b.lat_max().abs()));
            prop_assert!(lon_within(&b, ra, alpha + eps), "{loc:?} {b:?} alpha {alpha}");
        }
        // Completeness: the sub-chunks a cone of radius just under R touches.
        let cone: Region = Circle::new(ra, dec, OVERLAP_DEG * (1.0 - 1e-6)).unwrap().into();
        for loc in all_sub_chunks(&cone) {
            prop_assert!(loc == own || overlaps.contains(&loc),
                "{loc:?} is within R of ({ra}, {dec}) but gets no copy; own {own:?}, \
                 copies {overlaps:?}");
        }
    }
}

/// A random region somewhere on the sky, not too large.
fn region() -> impl Strategy<Value = Region> {
    let center =
        (0.0..360.0f64, -1.0..=1.0f64).prop_map(|(ra, z): (f64, f64)| (ra, z.asin().to_degrees()));
    let polar_center = (0.0..360.0f64, prop_oneof![85.0..=90.0f64, -90.0..=-85.0f64]);
    let any_center = prop_oneof![3 => center, 1 => polar_center];
    prop_oneof![
        (any_center.clone(), -4.0..0.5f64).prop_map(|((ra, dec), log_r)| {
            Region::from(Circle::new(ra, dec, 10f64.powf(log_r)).unwrap())
        }),
        (any_center.clone(), -3.0..0.5f64, -3.0..0.5f64).prop_map(|((ra, dec), lw, lh)| {
            let (w, h) = (10f64.powf(lw), 10f64.powf(lh));
            let lat_max = (dec + h).min(90.0);
            Region::from(SkyBox::new(ra, dec, ra + w, lat_max).unwrap())
        }),
        (any_center.clone(), 0.0..4.5f64, 0.05..1.0f64, 0.0..360.0f64).prop_map(
            |((ra, dec), log_a, ratio, pa)| {
                let a = 10f64.powf(log_a);
                Region::from(Ellipse::new(ra, dec, a, a * ratio, pa).unwrap())
            }
        ),
        (
            any_center,
            -3.0..0.5f64,
            3usize..9,
            0.0..360.0f64,
            any::<bool>()
        )
            .prop_map(|((ra, dec), log_r, n, phase, reverse)| {
                let r = 10f64.powf(log_r);
                let mut vertices: Vec<(f64, f64)> = (0..n)
                    .map(|k| offset(ra, dec, r, phase + 360.0 * k as f64 / n as f64))
                    .collect();
                if reverse {
                    vertices.reverse();
                }
                Region::from(ConvexPolygon::new(&vertices).unwrap())
            }),
    ]
}

/// The point `distance` deg from (ra, dec) at `bearing` deg east of north.
fn offset(ra: f64, dec: f64, distance: f64, bearing: f64) -> (f64, f64) {
    let (d, b) = (distance.to_radians(), bearing.to_radians());
    let (lat0, lon0) = (dec.to_radians(), ra.to_radians());
    let lat = (lat0.sin() * d.cos() + lat0.cos() * d.sin() * b.cos())
        .clamp(-1.0, 1.0)
        .asin();
    let lon = lon0 + (b.sin() * d.sin() * lat0.cos()).atan2(d.cos() - lat0.sin() * lat.sin());
    (lon.to_degrees().rem_euclid(360.0), lat.to_degrees())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// region.contains(p) implies that p's chunk is selected for the region
    /// and p's sub-chunk is among the selected sub-chunks.
    #[test]
    fn contained_points_are_in_selected_chunks(
        region in region(),
        samples in proptest::collection::vec((0.0..1.0f64, 0.0..1.0f64), 200),
    ) {
        let c = chunker();
        let chunks = c.chunks_intersecting(&region);
        let subs = all_sub_chunks(&region);
        let bbox = region.bounding_box();
        for (u, v) in samples {
            // Points spread over the bounding box, plus its edges.
            let lat = bbox.lat_min() + (bbox.lat_max() - bbox.lat_min()) * u;
            let ra = bbox.lon_min() + bbox.lon_extent() * v;
            for (ra, dec) in [(ra, lat), (ra, bbox.lat_min()), (bbox.lon_min(), lat)] {
                if !region.contains(ra, dec) {
                    continue;
                }
                let loc = c.locate(ra, dec).unwrap();
                prop_assert!(chunks.binary_search(&loc.chunk_id).is_ok(),
                    "{region:?} contains ({ra}, {dec}) in chunk {} not selected", loc.chunk_id);
                prop_assert!(subs.contains(&loc),
                    "{region:?} contains ({ra}, {dec}) in {loc:?} not selected");
                prop_assert!(bbox.contains(ra, dec));
            }
        }
        // The region's own definition points: centers and vertices.
        let probes: Vec<(f64, f64)> = match &region {
            Region::Circle(circle) => vec![(circle.center_ra_deg(), circle.center_dec_deg())],
            Region::Ellipse(e) => vec![(e.center_ra_deg(), e.center_dec_deg())],
            Region::Polygon(p) => p.vertices_deg().to_vec(),
            Region::Box(b) => vec![(b.lon_min(), b.lat_min()), (b.lon_max(), b.lat_max())],
        };
        for (ra, dec) in probes {
            if region.contains(ra, dec) {
                let loc = c.locate(ra, dec).unwrap();
                prop_assert!(subs.contains(&loc), "{region:?}: ({ra}, {dec}) {loc:?}");
            }
        }
        prop_assert!(chunks.windows(2).all(|w| w[0] < w[1]), "chunks not ascending");
    }

    /// Arbitrary floats never panic: every entry point returns a value or an
    /// error.
    #[test]
    fn arbitrary_input_never_panics(
        a in any::<f64>(), b in any::<f64>(), r in any::<f64>(), d in any::<f64>(),
        e in any::<f64>(), id in any::<i32>(), sub in any::<i32>(),
    ) {
        let c = chunker();
        let _ = c.locate(a, b);
        let mut out = Vec::new();
        let _ = c.overlap_locations(a, b, &mut out);
        let _ = c.chunk_bounds(id);
        let _ = c.sub_chunk_bounds(id, sub);
        let _ = c.stripe(id);
        let _ = c.sub_chunks_of(id);
        let _ = skyscan_sky::ang_sep_deg(a, b, r, d);
        let _ = Chunker::new(id as u32 % 2000, sub as u32 % 2000, r);
        let regions = [
            SkyBox::new(a, b, r, d).map(Region::from),
            Circle::new(a, b, r).map(Region::from),
            Ellipse::new(a, b, r, d, e).map(Region::from),
            ConvexPolygon::new(&[(a, b), (r, d), (e, b)]).map(Region::from),
        ];
        for region in regions.into_iter().flatten() {
            let _ = region.contains(a, d);
            let _ = region.bounding_box();
            // Region covers can be the whole sky; keep this cheap.
            if region.bounding_box().lat_max() - region.bounding_box().lat_min() < 5.0 {
                let _ = c.chunks_intersecting(&region);
            }
        }
    }
}
