//! sciSQL's scalar geometry, operation for operation (`smonkewitz/scisql`,
//! `src/geometry.[ch]` and `src/udfs/s2PtIn*.c`, read for their semantics).
//!
//! These are the decisions every vectorized path must reproduce: a fast
//! path classifies a row as surely in, surely out or uncertain, and the
//! uncertain rows are decided here. Using the same expressions in the same
//! order with the same libm (Rust's `f64::sin` etc. call the platform libm,
//! as sciSQL's C does) gives bit-identical results. No FMA contraction
//! happens in Rust, nor in sciSQL built for baseline x86-64.

/// π/180 with sciSQL's literal (`SCISQL_RAD_PER_DEG`), so conversions round
/// as sciSQL's do.
#[allow(clippy::excessive_precision)]
pub const RAD_PER_DEG: f64 = 0.0174532925199432957692369076849;

/// 180/π with sciSQL's literal (`SCISQL_DEG_PER_RAD`).
#[allow(clippy::excessive_precision)]
pub const DEG_PER_RAD: f64 = 57.2957795130823208767981548141;

/// Arcseconds per degree (`SCISQL_ARCSEC_PER_DEG`).
pub const ARCSEC_PER_DEG: f64 = 3600.0;

/// Most polygon vertices sciSQL accepts (`SCISQL_MAX_VERTS`).
pub const MAX_POLYGON_VERTICES: usize = 20;

/// A 3-vector.
pub type V3 = [f64; 3];

/// `scisql_sc_init`: a position is valid when both coordinates are finite
/// and the latitude is within [-90, 90].
#[inline(always)]
pub fn valid_position(lon_deg: f64, lat_deg: f64) -> bool {
    // `abs() < INFINITY` is false for NaN and ±inf; the range test is
    // false for NaN. Written without branches so that loops vectorize.
    (lon_deg.abs() < f64::INFINITY) & (-90.0..=90.0).contains(&lat_deg)
}

/// `scisql_angred`: a longitude range-reduced into [0, 360).
#[inline]
pub fn angred(lon_deg: f64) -> f64 {
    if (0.0..360.0).contains(&lon_deg) {
        // fmod is the identity here; skip the libm call.
        return lon_deg;
    }
    let mut angle = lon_deg % 360.0;
    if angle < 0.0 {
        angle += 360.0;
        if angle == 360.0 {
            angle = 0.0;
        }
    }
    angle
}

/// `scisql_sc_dist2`: squared chord length between two positions by the
/// haversine formula, clamped to [0, 4].
#[inline]
pub fn sc_dist2(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let mut x = ((lon1 - lon2) * RAD_PER_DEG * 0.5).sin();
    x *= x;
    let mut y = ((lat1 - lat2) * RAD_PER_DEG * 0.5).sin();
    y *= y;
    let mut z = ((lat1 + lat2) * RAD_PER_DEG * 0.5).cos();
    z *= z;
    let d2 = 4.0 * (x * (z - y) + y);
    // `d2 < 0 ? 0 : (d2 > 4 ? 4 : d2)`; NaN stays NaN either way.
    d2.clamp(0.0, 4.0)
}

/// `scisql_sc_angsep`: angular separation in degrees of two valid
/// positions, at most 180.
#[inline]
pub fn sc_angsep(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let x = sc_dist2(lon1, lat1, lon2, lat2) * 0.25;
    let angsep = 2.0 * DEG_PER_RAD * x.sqrt().asin();
    if angsep > 180.0 { 180.0 } else { angsep }
}

/// `scisql_angSep(lon1, lat1, lon2, lat2)`: `None` (NULL) if either
/// position is invalid.
#[inline]
pub fn ang_sep(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> Option<f64> {
    if !valid_position(lon1, lat1) || !valid_position(lon2, lat2) {
        return None;
    }
    Some(sc_angsep(lon1, lat1, lon2, lat2))
}

/// `scisql_sctov3`: the unit vector of a position in degrees.
#[inline]
pub fn sctov3(lon_deg: f64, lat_deg: f64) -> V3 {
    let lon = lon_deg * RAD_PER_DEG;
    let lat = lat_deg * RAD_PER_DEG;
    let cos_lat = lat.cos();
    [lon.cos() * cos_lat, lon.sin() * cos_lat, lat.sin()]
}

/// `scisql_v3_dot`, evaluated left to right as C does.
#[inline(always)]
pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `scisql_v3_rcross`: twice `v1 × v2`, computed as `(v2 + v1) × (v2 − v1)`.
#[inline]
pub fn rcross(v1: V3, v2: V3) -> V3 {
    let x1 = v2[0] + v1[0];
    let x2 = v2[0] - v1[0];
    let y1 = v2[1] + v1[1];
    let y2 = v2[1] - v1[1];
    let z1 = v2[2] + v1[2];
    let z2 = v2[2] - v1[2];
    [y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2]
}

/// `scisql_s2PtInBox` on one row; `None` is NULL.
pub fn s2_pt_in_box(
    lon: f64,
    lat: f64,
    lon_min: f64,
    lat_min: f64,
    lon_max: f64,
    lat_max: f64,
) -> Option<bool> {
    if !valid_position(lon, lat)
        || !valid_position(lon_min, lat_min)
        || !valid_position(lon_max, lat_max)
    {
        return None;
    }
    if lon_max < lon_min && (lon_max < 0.0 || lon_min > 360.0) {
        return None;
    }
    if lat_min > lat_max || lat < lat_min || lat > lat_max {
        return Some(false);
    }
    if lon_max - lon_min >= 360.0 {
        return Some(true);
    }
    let lon = angred(lon);
    let lon_min = angred(lon_min);
    let lon_max = angred(lon_max);
    Some(if lon_min <= lon_max {
        lon >= lon_min && lon <= lon_max
    } else {
        lon >= lon_min || lon <= lon_max
    })
}

/// sciSQL's validity rule for a circle radius: within [0, 180], not NaN.
#[inline]
pub fn valid_circle_radius(radius_deg: f64) -> bool {
    (0.0..=180.0).contains(&radius_deg)
}

/// Squared chord length of a circle radius as `s2PtInCircle` caches it for
/// a constant radius: `4 sin²(r/2)`.
#[inline]
pub fn circle_radius_dist2(radius_deg: f64) -> f64 {
    let d = (radius_deg * 0.5 * RAD_PER_DEG).sin();
    4.0 * d * d
}

/// `scisql_s2PtInCircle` on one row; `None` is NULL.
///
/// `constant_radius` selects sciSQL's two code paths: with a constant
/// radius it compares the haversine squared chord with `4 sin²(r/2)`,
/// otherwise the angular separation with `r` itself. Both are preceded by
/// the same latitude fail-fast.
pub fn s2_pt_in_circle(
    lon: f64,
    lat: f64,
    center_lon: f64,
    center_lat: f64,
    radius_deg: f64,
    constant_radius: bool,
) -> Option<bool> {
    if !valid_position(lon, lat) || !valid_position(center_lon, center_lat) {
        return None;
    }
    if !valid_circle_radius(radius_deg) {
        return None;
    }
    if (lat - center_lat).abs() > radius_deg {
        return Some(false);
    }
    Some(if constant_radius {
        sc_dist2(lon, lat, center_lon, center_lat) <= circle_radius_dist2(radius_deg)
    } else {
        sc_angsep(lon, lat, center_lon, center_lat) <= radius_deg
    })
}

/// The derived quantities of a sciSQL ellipse (`_scisql_s2ellipse`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EllipseParams {
    /// sin of the center longitude.
    pub sin_lon: f64,
    /// cos of the center longitude.
    pub cos_lon: f64,
    /// sin of the center latitude.
    pub sin_lat: f64,
    /// cos of the center latitude.
    pub cos_lat: f64,
    /// sin of the position angle.
    pub sin_pos_ang: f64,
    /// cos of the position angle.
    pub cos_pos_ang: f64,
    /// 1/m², m the semi-minor axis in radians (may be +inf).
    pub inv_minor2: f64,
    /// 1/M², M the semi-major axis in radians (may be +inf).
    pub inv_major2: f64,
}

impl EllipseParams {
    /// sciSQL's ellipse set-up: `None` (every row NULL) if an argument is
    /// NaN, the position angle is infinite, `0 <= m <= M <= 36000″` fails
    /// or the center is invalid. Checks in sciSQL's order.
    pub fn new(
        center_lon: f64,
        center_lat: f64,
        semi_major_arcsec: f64,
        semi_minor_arcsec: f64,
        position_angle_deg: f64,
    ) -> Option<EllipseParams> {
        let major = semi_major_arcsec;
        let minor = semi_minor_arcsec;
        let posang = position_angle_deg * RAD_PER_DEG;
        if !posang.is_finite() || major.is_nan() || minor.is_nan() {
            return None;
        }
        if minor < 0.0 || minor > major || major > 10.0 * ARCSEC_PER_DEG {
            return None;
        }
        if !valid_position(center_lon, center_lat) {
            return None;
        }
        let minor = minor * RAD_PER_DEG / ARCSEC_PER_DEG;
        let major = major * RAD_PER_DEG / ARCSEC_PER_DEG;
        Some(EllipseParams {
            sin_lon: (center_lon * RAD_PER_DEG).sin(),
            cos_lon: (center_lon * RAD_PER_DEG).cos(),
            sin_lat: (center_lat * RAD_PER_DEG).sin(),
            cos_lat: (center_lat * RAD_PER_DEG).cos(),
            sin_pos_ang: posang.sin(),
            cos_pos_ang: posang.cos(),
            inv_minor2: 1.0 / (minor * minor),
            inv_major2: 1.0 / (major * major),
        })
    }

    /// The ellipse's quadratic form at unit vector `v`: the point is inside
    /// when this is `<= 1`. NaN for a degenerate (zero-axis) ellipse at
    /// points on an axis, which then compare false, as in sciSQL.
    #[inline(always)]
    pub fn quadratic(&self, v: V3) -> f64 {
        let xne = self.cos_lat * v[2] - self.sin_lat * (self.sin_lon * v[1] + self.cos_lon * v[0]);
        let yne = self.cos_lon * v[1] - self.sin_lon * v[0];
        let x = self.sin_pos_ang * yne + self.cos_pos_ang * xne;
        let y = self.cos_pos_ang * yne - self.sin_pos_ang * xne;
        x * x * self.inv_major2 + y * y * self.inv_minor2
    }

    /// The sciSQL decision for a valid position.
    #[inline]
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        self.quadratic(sctov3(lon, lat)) <= 1.0
    }
}

/// `scisql_s2PtInEllipse` on one row; `None` is NULL.
///
/// Like sciSQL, this also accepts the mirror image of the ellipse around
/// the antipode of its center (the test is on the projection onto the
/// tangent plane). Qserv never returns those rows for a restrictor because
/// chunk selection cannot reach them; the function itself does.
pub fn s2_pt_in_ellipse(
    lon: f64,
    lat: f64,
    center_lon: f64,
    center_lat: f64,
    semi_major_arcsec: f64,
    semi_minor_arcsec: f64,
    position_angle_deg: f64,
) -> Option<bool> {
    if !valid_position(lon, lat) {
        return None;
    }
    let params = EllipseParams::new(
        center_lon,
        center_lat,
        semi_major_arcsec,
        semi_minor_arcsec,
        position_angle_deg,
    )?;
    Some(params.contains(lon, lat))
}

/// sciSQL's convex polygon (`scisql_s2cpoly`): the edge planes of the
/// vertices, oriented so that inside means `v · edge >= 0` for every edge.
#[derive(Clone, Debug, PartialEq)]
pub struct PolygonEdges {
    /// One plane per edge: `rcross(v_i, v_i+1)`, negated for clockwise input.
    pub edges: Vec<V3>,
}

impl PolygonEdges {
    /// `scisql_s2cpoly_init` from (lon, lat) vertices in degrees: `None`
    /// (every row NULL) if a vertex is an invalid position. The vertex
    /// count must be 3..=20 (checked by the caller: sciSQL refuses the
    /// call). No convexity check, as in sciSQL.
    pub fn new(vertices_deg: &[(f64, f64)]) -> Option<PolygonEdges> {
        let n = vertices_deg.len();
        if !(3..=MAX_POLYGON_VERTICES).contains(&n) {
            return None;
        }
        if vertices_deg
            .iter()
            .any(|&(lon, lat)| !valid_position(lon, lat))
        {
            return None;
        }
        let verts: Vec<V3> = vertices_deg
            .iter()
            .map(|&(lon, lat)| sctov3(lon, lat))
            .collect();
        let mut vsum = verts[n - 1];
        let mut edges = Vec::with_capacity(n);
        for i in 0..n - 1 {
            edges.push(rcross(verts[i], verts[i + 1]));
            vsum = [
                vsum[0] + verts[i][0],
                vsum[1] + verts[i][1],
                vsum[2] + verts[i][2],
            ];
        }
        edges.push(rcross(verts[n - 1], verts[0]));
        // Clockwise vertices: vsum lies on the negative side of every plane.
        if dot(vsum, edges[0]) < 0.0 {
            for edge in &mut edges {
                *edge = [-edge[0], -edge[1], -edge[2]];
            }
        }
        Some(PolygonEdges { edges })
    }

    /// `scisql_s2cpoly_cv3`: inside (or on) every edge plane.
    #[inline]
    pub fn contains_vector(&self, v: V3) -> bool {
        self.edges.iter().all(|&edge| dot(v, edge) >= 0.0)
    }
}

/// `scisql_s2PtInCPoly` on one row; `None` is NULL.
pub fn s2_pt_in_cpoly(lon: f64, lat: f64, vertices_deg: &[(f64, f64)]) -> Option<bool> {
    if !valid_position(lon, lat) {
        return None;
    }
    let poly = PolygonEdges::new(vertices_deg)?;
    Some(poly.contains_vector(sctov3(lon, lat)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angred_matches_scisql() {
        assert_eq!(angred(360.0), 0.0);
        assert_eq!(angred(-10.0), 350.0);
        assert_eq!(angred(-360.0), 0.0);
        assert_eq!(angred(-1.0e-20), 0.0);
        assert_eq!(angred(725.0), 5.0);
        assert_eq!(angred(359.5), 359.5);
    }

    #[test]
    fn valid_positions() {
        assert!(valid_position(0.0, 90.0));
        assert!(valid_position(-1.0e300, -90.0));
        assert!(!valid_position(0.0, 90.000001));
        assert!(!valid_position(f64::NAN, 0.0));
        assert!(!valid_position(0.0, f64::NAN));
        assert!(!valid_position(f64::INFINITY, 0.0));
        assert!(!valid_position(f64::NEG_INFINITY, 0.0));
    }

    #[test]
    fn polygon_winding() {
        let ccw = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
        let cw = [(0.0, 10.0), (10.0, 0.0), (0.0, 0.0)];
        for poly in [&ccw[..], &cw[..]] {
            assert_eq!(s2_pt_in_cpoly(2.0, 2.0, poly), Some(true));
            assert_eq!(s2_pt_in_cpoly(8.0, 8.0, poly), Some(false));
            assert_eq!(s2_pt_in_cpoly(0.0, 0.0, poly), Some(true));
        }
        assert_eq!(s2_pt_in_cpoly(2.0, 91.0, &ccw), None);
        assert_eq!(
            s2_pt_in_cpoly(2.0, 2.0, &[(0.0, 0.0), (1.0, 95.0), (1.0, 1.0)]),
            None
        );
    }

    #[test]
    fn circle_paths() {
        assert_eq!(s2_pt_in_circle(0.0, 0.0, 0.0, 0.0, 0.0, true), Some(true));
        assert_eq!(s2_pt_in_circle(0.0, 0.0, 0.0, 0.0, -1.0, true), None);
        assert_eq!(s2_pt_in_circle(0.0, 0.0, 0.0, 0.0, f64::NAN, false), None);
        assert_eq!(s2_pt_in_circle(0.0, 0.5, 0.0, 0.0, 0.4, true), Some(false));
        assert_eq!(
            s2_pt_in_circle(359.9, 0.0, 0.05, 0.0, 0.2, false),
            Some(true)
        );
    }
}
