//! Unit-vector geometry shared by the chunker and the regions.
//!
//! Everything here works on `[f64; 3]` unit vectors and on [`Rect`], a
//! longitude/latitude rectangle in degrees. The functions are exact up to
//! floating-point rounding and err on the side of "may intersect" where a
//! tolerance is needed; callers add their own dilation on top.

/// A 3-vector.
pub(crate) type V3 = [f64; 3];

/// π/180 with the exact literal of Qserv (`src/partition/Constants.h`) and
/// sciSQL (`src/geometry.h`), so that conversions round identically.
#[allow(clippy::excessive_precision)]
pub(crate) const RAD_PER_DEG: f64 = 0.0174532925199432957692369076849;
/// 180/π, literal of Qserv and sciSQL (see [`RAD_PER_DEG`]).
#[allow(clippy::excessive_precision)]
pub(crate) const DEG_PER_RAD: f64 = 57.2957795130823208767981548141;

/// Slack on dot products against planes through the origin: a point this
/// close to a clipping plane counts as on its inner side.
pub(crate) const PLANE_TOLERANCE: f64 = 1.0e-15;
/// Slack on latitude comparisons, radians.
const LAT_TOLERANCE_RAD: f64 = 1.0e-15;

#[inline]
pub(crate) fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub(crate) fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline]
pub(crate) fn neg(a: V3) -> V3 {
    [-a[0], -a[1], -a[2]]
}

#[inline]
pub(crate) fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// `a` scaled to unit length; `a` must not be zero.
#[inline]
pub(crate) fn normalized(a: V3) -> V3 {
    let n = norm(a);
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Squared Euclidean distance (squared chord length for unit vectors).
#[inline]
pub(crate) fn dist2(a: V3, b: V3) -> f64 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    dot(d, d)
}

/// Twice the cross product `v1 × v2`, computed as `(v2 + v1) × (v2 − v1)`,
/// which is more accurate for nearly parallel inputs. This is sciSQL's
/// `scisql_v3_rcross` (`src/geometry.h`), kept bit-identical because polygon
/// edge planes must match sciSQL's.
#[inline]
pub(crate) fn rcross(v1: V3, v2: V3) -> V3 {
    let x1 = v2[0] + v1[0];
    let x2 = v2[0] - v1[0];
    let y1 = v2[1] + v1[1];
    let y2 = v2[1] - v1[1];
    let z1 = v2[2] + v1[2];
    let z2 = v2[2] - v1[2];
    [y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2]
}

/// The unit vector of a position in degrees, exactly as sciSQL's
/// `scisql_sctov3` (`src/geometry.c`) computes it.
#[inline]
pub(crate) fn unit_from_deg(lon_deg: f64, lat_deg: f64) -> V3 {
    let lon = lon_deg * RAD_PER_DEG;
    let lat = lat_deg * RAD_PER_DEG;
    let cos_lat = lat.cos();
    [lon.cos() * cos_lat, lon.sin() * cos_lat, lat.sin()]
}

/// Latitude of a (not necessarily unit) vector, degrees.
#[inline]
pub(crate) fn lat_deg_of(v: V3) -> f64 {
    v[2].atan2(v[0].hypot(v[1])) * DEG_PER_RAD
}

/// Range-reduce a longitude into [0, 360): Qserv's `reduceLon`
/// (`src/partition/Geometry.cc`), identical to sciSQL's `scisql_angred`.
/// `fmod` keeps the sign of its first argument, as Rust's `%` does.
#[inline]
pub(crate) fn reduce_lon(lon_deg: f64) -> f64 {
    // Fast path, same result: fmod is the identity on [0, 360) and a libm
    // call costs more than the rest of `Chunker::locate`.
    if (0.0..360.0).contains(&lon_deg) {
        return lon_deg;
    }
    let mut lon = lon_deg % 360.0;
    if lon < 0.0 {
        lon += 360.0;
        if lon == 360.0 {
            lon = 0.0;
        }
    }
    lon
}

/// Qserv's `clampLat` (`src/partition/Geometry.h`).
#[inline]
pub(crate) fn clamp_lat(lat_deg: f64) -> f64 {
    lat_deg.clamp(-90.0, 90.0)
}

/// A closed longitude/latitude rectangle, degrees: longitudes
/// `lon_start + t` for `t` in `[0, lon_width]` (mod 360), latitudes
/// `[lat_min, lat_max]`. `lon_width >= 360` means every longitude.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rect {
    pub lon_start: f64,
    pub lon_width: f64,
    pub lat_min: f64,
    pub lat_max: f64,
}

impl Rect {
    #[inline]
    pub(crate) fn full_lon(&self) -> bool {
        self.lon_width >= 360.0
    }

    /// Whether longitude `lon_deg` (any range) is within the rectangle's
    /// longitude interval.
    #[inline]
    pub(crate) fn lon_contains(&self, lon_deg: f64) -> bool {
        if self.full_lon() {
            return true;
        }
        let offset = (lon_deg - self.lon_start).rem_euclid(360.0);
        offset <= self.lon_width
    }

    /// The point of the rectangle that maximises `v · u`, i.e. the point
    /// closest to the direction `u` (which need not be a unit vector).
    ///
    /// With v = (cos φ cos λ, cos φ sin λ, sin φ) and (ρ, λu) the polar
    /// coordinates of (u_x, u_y), v·u is cos φ · ρ cos(λ − λu) plus
    /// u_z sin φ. As cos φ ≥ 0, the best λ does not depend on φ: λu itself
    /// if inside the longitude interval, else the nearer end. With
    /// a = ρ cos(λ − λu), the function a cos φ + u_z sin φ is then maximised
    /// at φ = atan2(u_z, a) if that is inside the latitude interval (only
    /// possible when a > 0), else at an end of the interval.
    pub(crate) fn closest_point(&self, u: V3) -> V3 {
        let rho = u[0].hypot(u[1]);
        let lon_u = u[1].atan2(u[0]) * DEG_PER_RAD;
        let lon = if rho == 0.0 {
            self.lon_start
        } else if self.lon_contains(lon_u) {
            lon_u
        } else {
            let lon_a = self.lon_start;
            let lon_b = self.lon_start + self.lon_width;
            if ((lon_a - lon_u) * RAD_PER_DEG).cos() >= ((lon_b - lon_u) * RAD_PER_DEG).cos() {
                lon_a
            } else {
                lon_b
            }
        };
        let a = rho * ((lon - lon_u) * RAD_PER_DEG).cos();
        let value = |lat_deg: f64| {
            let lat = lat_deg * RAD_PER_DEG;
            a * lat.cos() + u[2] * lat.sin()
        };
        let mut lat = if value(self.lat_min) >= value(self.lat_max) {
            self.lat_min
        } else {
            self.lat_max
        };
        if a > 0.0 {
            let psi = u[2].atan2(a) * DEG_PER_RAD;
            if psi >= self.lat_min && psi <= self.lat_max {
                lat = psi;
            }
        }
        unit_from_deg(lon, lat)
    }

    /// Squared chord distance from unit vector `c` to the nearest point of
    /// the rectangle (0 when `c` is inside).
    #[inline]
    pub(crate) fn min_dist2(&self, c: V3) -> f64 {
        dist2(self.closest_point(c), c)
    }

    /// Squared chord distance from unit vector `c` to the farthest point of
    /// the rectangle.
    #[inline]
    pub(crate) fn max_dist2(&self, c: V3) -> f64 {
        dist2(self.closest_point(neg(c)), c)
    }

    /// Minimum of `v · u` over the rectangle.
    #[inline]
    pub(crate) fn min_dot(&self, u: V3) -> f64 {
        dot(self.closest_point(neg(u)), u)
    }
}

/// Maximum number of vertices a clipped polygon may reach: sciSQL's limit of
/// 20 plus one per clipping plane, rounded up.
const CLIP_CAPACITY: usize = 32;

/// Clip a convex spherical polygon (vertices in counter-clockwise order)
/// against the half-space `v · plane >= 0` (Sutherland–Hodgman on the sphere;
/// the same scheme as Qserv's `intersect` in `src/partition/Geometry.cc`).
/// Writes the result into `out` and returns its vertex count (0 if empty).
fn clip(input: &[V3], plane: V3, out: &mut [V3; CLIP_CAPACITY]) -> usize {
    let mut count = 0;
    let n = input.len();
    for (index, &a) in input.iter().enumerate() {
        let b = input[(index + 1) % n];
        let da = dot(a, plane);
        let db = dot(b, plane);
        let a_in = da >= -PLANE_TOLERANCE;
        let b_in = db >= -PLANE_TOLERANCE;
        if a_in && count < CLIP_CAPACITY {
            out[count] = a;
            count += 1;
        }
        if a_in != b_in && count < CLIP_CAPACITY {
            // |db|·a + |da|·b is a positive combination of a and b (so on the
            // short arc between them) whose dot product with the plane is 0.
            let (wa, wb) = (db.abs(), da.abs());
            let p = [
                wa * a[0] + wb * b[0],
                wa * a[1] + wb * b[1],
                wa * a[2] + wb * b[2],
            ];
            if norm(p) > 0.0 {
                out[count] = normalized(p);
                count += 1;
            }
        }
    }
    count
}

/// Latitude range (degrees) of a convex spherical polygon given by its
/// vertices in order: the vertices plus, for every edge, the extreme-latitude
/// points of its great circle when they lie inside the edge (as in sphgeom's
/// `detail::boundingBox`). Poles inside the polygon are the caller's business.
pub(crate) fn lat_range_of(vertices: &[V3]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let n = vertices.len();
    for (index, &a) in vertices.iter().enumerate() {
        let lat = lat_deg_of(a);
        lo = lo.min(lat);
        hi = hi.max(lat);
        if n < 2 {
            continue;
        }
        let b = vertices[(index + 1) % n];
        let normal = cross(a, b);
        let horizontal = normal[0].hypot(normal[1]);
        if horizontal == 0.0 || norm(normal) == 0.0 {
            continue;
        }
        // Highest point of the great circle with this normal.
        let w = [
            -normal[0] * normal[2],
            -normal[1] * normal[2],
            normal[0] * normal[0] + normal[1] * normal[1],
        ];
        let extreme = horizontal.atan2(normal[2].abs()) * DEG_PER_RAD;
        if dot(cross(a, w), normal) >= 0.0 && dot(cross(w, b), normal) >= 0.0 {
            hi = hi.max(extreme);
        }
        let w_low = neg(w);
        if dot(cross(a, w_low), normal) >= 0.0 && dot(cross(w_low, b), normal) >= 0.0 {
            lo = lo.min(-extreme);
        }
    }
    (lo, hi)
}

/// Whether a convex spherical polygon intersects a rectangle.
///
/// The polygon is clipped to the lune of the rectangle's longitudes (split
/// in two if wider than 180°); the clipped piece is connected, so it meets
/// the rectangle exactly when its latitude range meets the rectangle's.
/// `north_inside` / `south_inside` say whether the polygon contains a pole
/// (a pole is on the boundary of every lune).
pub(crate) fn polygon_intersects_rect(
    vertices: &[V3],
    north_inside: bool,
    south_inside: bool,
    rect: &Rect,
) -> bool {
    let lat_overlaps = |piece: &[V3]| {
        if piece.is_empty() {
            return false;
        }
        let (mut lo, mut hi) = lat_range_of(piece);
        if north_inside {
            hi = 90.0;
        }
        if south_inside {
            lo = -90.0;
        }
        let tol = LAT_TOLERANCE_RAD * DEG_PER_RAD;
        hi >= rect.lat_min - tol && lo <= rect.lat_max + tol
    };
    if rect.full_lon() {
        return lat_overlaps(vertices);
    }
    let in_lune = |lon_a: f64, lon_b: f64| {
        let (sa, ca) = (lon_a * RAD_PER_DEG).sin_cos();
        let (sb, cb) = (lon_b * RAD_PER_DEG).sin_cos();
        // East of meridian lon_a, and west of meridian lon_b.
        let east_of_a = [-sa, ca, 0.0];
        let west_of_b = [sb, -cb, 0.0];
        let mut first = [[0.0; 3]; CLIP_CAPACITY];
        let mut second = [[0.0; 3]; CLIP_CAPACITY];
        let n1 = clip(vertices, east_of_a, &mut first);
        if n1 == 0 {
            return false;
        }
        let n2 = clip(&first[..n1], west_of_b, &mut second);
        lat_overlaps(&second[..n2])
    };
    let start = rect.lon_start;
    let width = rect.lon_width;
    if width <= 180.0 {
        in_lune(start, start + width)
    } else {
        let mid = start + 0.5 * width;
        in_lune(start, mid) || in_lune(mid, start + width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(lon_start: f64, lon_width: f64, lat_min: f64, lat_max: f64) -> Rect {
        Rect {
            lon_start,
            lon_width,
            lat_min,
            lat_max,
        }
    }

    #[test]
    fn reduce_lon_matches_qserv() {
        assert_eq!(reduce_lon(360.0), 0.0);
        assert_eq!(reduce_lon(-10.0), 350.0);
        assert_eq!(reduce_lon(-360.0), 0.0);
        assert_eq!(reduce_lon(-1.0e-20), 0.0);
        assert_eq!(reduce_lon(725.0), 5.0);
    }

    #[test]
    fn closest_point_inside_is_the_point() {
        let r = rect(10.0, 10.0, -5.0, 5.0);
        let c = unit_from_deg(15.0, 1.0);
        assert!(r.min_dist2(c) < 1e-30);
    }

    #[test]
    fn closest_point_across_pole() {
        // Box near the north pole, point on the other side of the pole.
        let r = rect(0.0, 10.0, 80.0, 89.0);
        let c = unit_from_deg(180.0, 80.0);
        let d = r.min_dist2(c).sqrt();
        let angle = 2.0 * (0.5 * d).asin() * DEG_PER_RAD;
        // Nearest is corner (10, 89): separation over the pole.
        let corner = unit_from_deg(10.0, 89.0);
        let expected = 2.0 * (0.5 * dist2(corner, c).sqrt()).asin() * DEG_PER_RAD;
        assert!((angle - expected).abs() < 1e-9, "{angle} vs {expected}");
    }

    #[test]
    fn polygon_rect_corner_case() {
        // Triangle (10,10) (20,10) (10,20): the rectangle beyond its
        // hypotenuse is disjoint, the one at its corner is not.
        let v = [
            unit_from_deg(10.0, 10.0),
            unit_from_deg(20.0, 10.0),
            unit_from_deg(10.0, 20.0),
        ];
        assert!(!polygon_intersects_rect(
            &v,
            false,
            false,
            &rect(18.0, 2.0, 18.0, 20.0)
        ));
        assert!(polygon_intersects_rect(
            &v,
            false,
            false,
            &rect(9.0, 2.0, 9.0, 11.0)
        ));
        assert!(polygon_intersects_rect(
            &v,
            false,
            false,
            &rect(0.0, 360.0, 19.0, 30.0)
        ));
        assert!(!polygon_intersects_rect(
            &v,
            false,
            false,
            &rect(0.0, 360.0, 21.0, 30.0)
        ));
    }
}
