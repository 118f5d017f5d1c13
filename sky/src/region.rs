//! Spatial regions of the query dialect (BRIEF §3) with sciSQL semantics.
//!
//! * [`SkyBox`]: `qserv_areaspec_box` / `scisql_s2PtInBox`, inclusive on
//!   every edge, wrapping through 0 when `lon_min > lon_max`.
//! * [`Circle`]: `qserv_areaspec_circle` / `scisql_s2PtInCircle`.
//! * [`Ellipse`]: `qserv_areaspec_ellipse` / `scisql_s2PtInEllipse`, axes in
//!   arcseconds, position angle east of north.
//! * [`ConvexPolygon`]: `qserv_areaspec_poly` / `scisql_s2PtInCPoly`.
//!
//! `contains` follows sciSQL's code (`smonkewitz/scisql`, `src/udfs/*.c`
//! and `src/geometry.[ch]`) down to the order of operations, so a row that
//! sciSQL keeps is kept here. `relate` is conservative: it never answers
//! [`Relation::Disjoint`] for a box that shares a point with the region and
//! never answers [`Relation::Contains`] unless the region surely holds the
//! whole box, which is what chunk pruning needs.

use crate::error::SkyError;
use crate::geom::{
    DEG_PER_RAD, PLANE_TOLERANCE, RAD_PER_DEG, Rect, V3, clamp_lat, dist2, dot, lat_range_of, neg,
    normalized, polygon_intersects_rect, rcross, reduce_lon, unit_from_deg,
};

/// Most vertices a polygon may have: sciSQL's `SCISQL_MAX_VERTS`.
pub const MAX_POLYGON_VERTICES: usize = 20;

/// Largest ellipse semi-major axis sciSQL accepts: 10 degrees, in arcsec.
pub const MAX_ELLIPSE_SEMI_MAJOR_ARCSEC: f64 = 36_000.0;

/// Slack on squared chord lengths when comparing a box with a circle, the
/// same order as sphgeom's `MAX_SQUARED_CHORD_LENGTH_ERROR` (1e-15), so that
/// this crate never drops a chunk sphgeom keeps.
const CHORD2_TOLERANCE: f64 = 2.0e-15;

/// Margin added around computed bounding boxes, degrees.
const BOUNDING_MARGIN_DEG: f64 = 1.0e-9;

/// How a region and a lon/lat box relate, conservatively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The region and the box share no point (certain).
    Disjoint,
    /// The region and the box may share points.
    Intersects,
    /// The region contains the whole box (certain).
    Contains,
}

/// Whether (lon, lat) is a position sciSQL accepts (`scisql_sc_init`):
/// finite, latitude in [-90, 90]. Longitudes may be any finite value.
#[inline]
fn valid_position(lon_deg: f64, lat_deg: f64) -> bool {
    lon_deg.is_finite() && lat_deg.is_finite() && (-90.0..=90.0).contains(&lat_deg)
}

/// sciSQL's `scisql_sc_dist2` (`src/geometry.c`): the squared chord length
/// between two positions by the haversine formula, clamped to [0, 4].
#[inline]
fn haversine_dist2(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let mut x = ((lon1 - lon2) * RAD_PER_DEG * 0.5).sin();
    x *= x;
    let mut y = ((lat1 - lat2) * RAD_PER_DEG * 0.5).sin();
    y *= y;
    let mut z = ((lat1 + lat2) * RAD_PER_DEG * 0.5).cos();
    z *= z;
    let d2 = 4.0 * (x * (z - y) + y);
    d2.clamp(0.0, 4.0)
}

/// Angular separation in degrees of two positions, exactly as
/// `scisql_angSep` computes it (BRIEF §3; sciSQL `scisql_sc_angsep`):
/// d² = 4[sin²(Δλ/2)(cos²((φ1+φ2)/2) − sin²(Δφ/2)) + sin²(Δφ/2)] clamped to
/// [0, 4], result 2·asin(√(d²/4)), at most 180.
///
/// `None` (SQL NULL) if a coordinate is NaN or infinite or a latitude is
/// outside [-90, 90].
pub fn ang_sep_deg(lon1_deg: f64, lat1_deg: f64, lon2_deg: f64, lat2_deg: f64) -> Option<f64> {
    if !valid_position(lon1_deg, lat1_deg) || !valid_position(lon2_deg, lat2_deg) {
        return None;
    }
    let x = haversine_dist2(lon1_deg, lat1_deg, lon2_deg, lat2_deg) * 0.25;
    let angsep = 2.0 * DEG_PER_RAD * x.sqrt().asin();
    Some(if angsep > 180.0 { 180.0 } else { angsep })
}

/// Half-width in longitude, degrees, of a band of `radius_deg` around a
/// latitude of `max_abs_lat_deg` (sphgeom `Box::halfWidthForCircle`), or
/// `None` if the band reaches a pole (all longitudes).
fn lon_half_width(radius_deg: f64, max_abs_lat_deg: f64) -> Option<f64> {
    if max_abs_lat_deg + radius_deg >= 90.0 {
        return None;
    }
    let s = ((radius_deg * RAD_PER_DEG).sin() / (max_abs_lat_deg * RAD_PER_DEG).cos()).abs();
    if s >= 1.0 {
        return None;
    }
    Some(s.asin() * DEG_PER_RAD)
}

// ---------------------------------------------------------------------------
// SkyBox

/// A longitude/latitude box, degrees, closed on every edge.
///
/// Longitudes are stored as Qserv's `SphericalBox` and sciSQL's
/// `s2PtInBox` treat them: both ends range-reduced into [0, 360), the box
/// wrapping through 0 when `lon_min > lon_max`; a box spanning 360 degrees
/// or more is stored as `[0, 360]` (all longitudes). A box whose `lat_min`
/// exceeds `lat_max` is empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SkyBox {
    lon_min: f64,
    lon_max: f64,
    lat_min: f64,
    lat_max: f64,
}

impl SkyBox {
    /// The box of `qserv_areaspec_box(lon_min, lat_min, lon_max, lat_max)`,
    /// with `scisql_s2PtInBox`'s rules: coordinates finite, latitudes in
    /// [-90, 90]; `lon_max < lon_min` wraps through 0 but is refused if
    /// either longitude is outside [0, 360]; ends 360 degrees or more apart
    /// give all longitudes; `lat_min > lat_max` gives an empty box.
    pub fn new(
        lon_min_deg: f64,
        lat_min_deg: f64,
        lon_max_deg: f64,
        lat_max_deg: f64,
    ) -> Result<SkyBox, SkyError> {
        if !valid_position(lon_min_deg, lat_min_deg) || !valid_position(lon_max_deg, lat_max_deg) {
            return Err(SkyError::InvalidRegion(format!(
                "box ({lon_min_deg}, {lat_min_deg}, {lon_max_deg}, {lat_max_deg}): coordinates \
                 must be finite and latitudes within [-90, 90]"
            )));
        }
        if lon_max_deg < lon_min_deg && (lon_max_deg < 0.0 || lon_min_deg > 360.0) {
            return Err(SkyError::InvalidRegion(format!(
                "box longitudes {lon_min_deg}..{lon_max_deg}: a box may wrap (lon_min > lon_max) \
                 only with both longitudes in [0, 360]"
            )));
        }
        Ok(SkyBox::from_bounds(
            lon_min_deg,
            lon_max_deg,
            lat_min_deg,
            lat_max_deg,
        ))
    }

    /// The whole sky.
    pub fn full() -> SkyBox {
        SkyBox {
            lon_min: 0.0,
            lon_max: 360.0,
            lat_min: -90.0,
            lat_max: 90.0,
        }
    }

    /// Qserv's `SphericalBox(lonMin, lonMax, latMin, latMax)` normalisation
    /// (`src/partition/Geometry.cc`) without its checks; inputs finite.
    pub(crate) fn from_bounds(lon_min: f64, lon_max: f64, lat_min: f64, lat_max: f64) -> SkyBox {
        let (lon_min, lon_max) = if lon_max - lon_min >= 360.0 {
            (0.0, 360.0)
        } else {
            (reduce_lon(lon_min), reduce_lon(lon_max))
        };
        SkyBox {
            lon_min,
            lon_max,
            lat_min: clamp_lat(lat_min),
            lat_max: clamp_lat(lat_max),
        }
    }

    /// Western edge, degrees in [0, 360).
    pub fn lon_min(&self) -> f64 {
        self.lon_min
    }

    /// Eastern edge, degrees in [0, 360) (360 only for all longitudes).
    pub fn lon_max(&self) -> f64 {
        self.lon_max
    }

    /// Southern edge, degrees.
    pub fn lat_min(&self) -> f64 {
        self.lat_min
    }

    /// Northern edge, degrees.
    pub fn lat_max(&self) -> f64 {
        self.lat_max
    }

    /// Whether the box holds no point (`lat_min > lat_max`).
    pub fn is_empty(&self) -> bool {
        self.lat_min > self.lat_max
    }

    /// Whether the box spans all longitudes.
    pub fn is_full_lon(&self) -> bool {
        self.lon_min == 0.0 && self.lon_max == 360.0
    }

    /// Whether the box wraps through longitude 0 (`lon_min > lon_max`).
    pub fn wraps(&self) -> bool {
        self.lon_max < self.lon_min
    }

    /// Width in longitude, degrees, in [0, 360].
    pub fn lon_extent(&self) -> f64 {
        if self.wraps() {
            360.0 - self.lon_min + self.lon_max
        } else {
            self.lon_max - self.lon_min
        }
    }

    /// `scisql_s2PtInBox`: whether the box holds (ra, dec); `false` for an
    /// invalid position (where sciSQL returns NULL).
    pub fn contains(&self, ra_deg: f64, dec_deg: f64) -> bool {
        if !valid_position(ra_deg, dec_deg) {
            return false;
        }
        if self.is_empty() || dec_deg < self.lat_min || dec_deg > self.lat_max {
            return false;
        }
        if self.is_full_lon() {
            return true;
        }
        let lon = reduce_lon(ra_deg);
        if self.lon_min <= self.lon_max {
            lon >= self.lon_min && lon <= self.lon_max
        } else {
            lon >= self.lon_min || lon <= self.lon_max
        }
    }

    /// The box itself.
    pub fn bounding_box(&self) -> SkyBox {
        *self
    }

    /// How this box relates to `other` (exact interval arithmetic).
    pub fn relate(&self, other: &SkyBox) -> Relation {
        match other.rect(0.0) {
            Some(rect) => self.relate_rect(&rect),
            None => Relation::Disjoint,
        }
    }

    /// Whether this box may share a point with `other`.
    pub fn may_intersect(&self, other: &SkyBox) -> bool {
        self.relate(other) != Relation::Disjoint
    }

    /// The box as a [`Rect`], grown by `dilation_deg` of angular distance
    /// on every side (sphgeom `Box::dilatedBy`); `None` if empty.
    pub(crate) fn rect(&self, dilation_deg: f64) -> Option<Rect> {
        if self.is_empty() {
            return None;
        }
        let lat_min = (self.lat_min - dilation_deg).max(-90.0);
        let lat_max = (self.lat_max + dilation_deg).min(90.0);
        let full = Rect {
            lon_start: 0.0,
            lon_width: 360.0,
            lat_min,
            lat_max,
        };
        if self.is_full_lon() {
            return Some(full);
        }
        let max_abs_lat = self.lat_min.abs().max(self.lat_max.abs());
        let grow = if dilation_deg > 0.0 {
            match lon_half_width(dilation_deg, max_abs_lat) {
                Some(w) => w,
                None => return Some(full),
            }
        } else {
            0.0
        };
        let width = self.lon_extent() + 2.0 * grow;
        if width >= 360.0 {
            return Some(full);
        }
        Some(Rect {
            lon_start: self.lon_min - grow,
            lon_width: width,
            lat_min,
            lat_max,
        })
    }

    pub(crate) fn relate_rect(&self, rect: &Rect) -> Relation {
        if self.is_empty() || self.lat_max < rect.lat_min || self.lat_min > rect.lat_max {
            return Relation::Disjoint;
        }
        let full = self.is_full_lon();
        let extent = self.lon_extent();
        let lon_intersects = full
            || rect.full_lon()
            || (rect.lon_start - self.lon_min).rem_euclid(360.0) <= extent
            || (self.lon_min - rect.lon_start).rem_euclid(360.0) <= rect.lon_width;
        if !lon_intersects {
            return Relation::Disjoint;
        }
        let lat_inside = self.lat_min <= rect.lat_min && rect.lat_max <= self.lat_max;
        let lon_inside = full
            || (!rect.full_lon()
                && (rect.lon_start - self.lon_min).rem_euclid(360.0) + rect.lon_width <= extent);
        if lat_inside && lon_inside {
            Relation::Contains
        } else {
            Relation::Intersects
        }
    }
}

// ---------------------------------------------------------------------------
// Circle

/// A cone: every point within `radius_deg` of a center (closed).
#[derive(Clone, Debug, PartialEq)]
pub struct Circle {
    center_ra: f64,
    center_dec: f64,
    radius_deg: f64,
    center: V3,
    /// `4 sin²(r/2)`, the squared chord length of the radius, computed as
    /// sciSQL's `s2PtInCircle` does for a constant radius.
    radius_chord2: f64,
}

impl Circle {
    /// The cone of `qserv_areaspec_circle(ra, dec, radius)`: center finite
    /// with dec in [-90, 90] (ra any finite value), radius in [0, 180].
    pub fn new(
        center_ra_deg: f64,
        center_dec_deg: f64,
        radius_deg: f64,
    ) -> Result<Circle, SkyError> {
        if !valid_position(center_ra_deg, center_dec_deg) {
            return Err(SkyError::InvalidRegion(format!(
                "circle center ({center_ra_deg}, {center_dec_deg}) must be finite with dec in \
                 [-90, 90]"
            )));
        }
        if radius_deg.is_nan() || !(0.0..=180.0).contains(&radius_deg) {
            return Err(SkyError::InvalidRegion(format!(
                "circle radius {radius_deg} deg must be in [0, 180]"
            )));
        }
        let d = (radius_deg * 0.5 * RAD_PER_DEG).sin();
        Ok(Circle {
            center_ra: center_ra_deg,
            center_dec: center_dec_deg,
            radius_deg,
            center: unit_from_deg(center_ra_deg, center_dec_deg),
            radius_chord2: 4.0 * d * d,
        })
    }

    /// Right ascension of the center, degrees, as given.
    pub fn center_ra_deg(&self) -> f64 {
        self.center_ra
    }

    /// Declination of the center, degrees.
    pub fn center_dec_deg(&self) -> f64 {
        self.center_dec
    }

    /// Radius, degrees.
    pub fn radius_deg(&self) -> f64 {
        self.radius_deg
    }

    /// `scisql_s2PtInCircle` with a constant radius: latitude fail-fast,
    /// then haversine squared distance against `4 sin²(r/2)`. `false` for
    /// an invalid position.
    pub fn contains(&self, ra_deg: f64, dec_deg: f64) -> bool {
        if !valid_position(ra_deg, dec_deg) {
            return false;
        }
        if (dec_deg - self.center_dec).abs() > self.radius_deg {
            return false;
        }
        haversine_dist2(ra_deg, dec_deg, self.center_ra, self.center_dec) <= self.radius_chord2
    }

    /// A lon/lat box holding the whole cone.
    pub fn bounding_box(&self) -> SkyBox {
        let r = self.radius_deg + BOUNDING_MARGIN_DEG;
        let lat_min = self.center_dec - r;
        let lat_max = self.center_dec + r;
        if lat_min <= -90.0 || lat_max >= 90.0 {
            return SkyBox::from_bounds(0.0, 360.0, lat_min, lat_max);
        }
        match lon_half_width(r, self.center_dec.abs()) {
            Some(half) => {
                let half = half * (1.0 + 1.0e-12) + BOUNDING_MARGIN_DEG;
                SkyBox::from_bounds(
                    self.center_ra - half,
                    self.center_ra + half,
                    lat_min,
                    lat_max,
                )
            }
            None => SkyBox::from_bounds(0.0, 360.0, lat_min, lat_max),
        }
    }

    /// How the cone relates to a box (exact nearest/farthest box points).
    pub fn relate(&self, other: &SkyBox) -> Relation {
        match other.rect(0.0) {
            Some(rect) => self.relate_rect(&rect),
            None => Relation::Disjoint,
        }
    }

    /// Whether the cone may share a point with the box.
    pub fn may_intersect(&self, other: &SkyBox) -> bool {
        self.relate(other) != Relation::Disjoint
    }

    pub(crate) fn relate_rect(&self, rect: &Rect) -> Relation {
        if self.radius_chord2 >= 4.0 {
            return Relation::Contains;
        }
        if rect.min_dist2(self.center) > self.radius_chord2 + CHORD2_TOLERANCE {
            return Relation::Disjoint;
        }
        if rect.max_dist2(self.center) < self.radius_chord2 - CHORD2_TOLERANCE {
            return Relation::Contains;
        }
        Relation::Intersects
    }
}

// ---------------------------------------------------------------------------
// Ellipse

/// A sciSQL ellipse: the points whose orthographic projection onto the
/// plane tangent at the center falls inside a planar ellipse with the given
/// semi-axes (arcsec, as angles in radians on the tangent plane) and
/// position angle (degrees east of north of the major axis).
///
/// One deliberate difference from `scisql_s2PtInEllipse`: sciSQL's test
/// also accepts the mirror image of the ellipse on the far hemisphere
/// (around the antipode of the center, where the projection is small too).
/// Qserv never returns those rows (its chunk selection cannot reach them);
/// here `contains` requires the point to be on the center's hemisphere.
///
/// For chunk selection the ellipse is replaced by its bounding cone of
/// radius asin(semi-major), as lsst-sphgeom does (`Ellipse::relate` uses
/// `getBoundingCircle`); sphgeom's radius is the semi-major axis itself,
/// slightly smaller than the true extent of sciSQL's ellipse.
#[derive(Clone, Debug, PartialEq)]
pub struct Ellipse {
    center_ra: f64,
    center_dec: f64,
    semi_major_arcsec: f64,
    semi_minor_arcsec: f64,
    position_angle_deg: f64,
    sin_lon: f64,
    cos_lon: f64,
    sin_lat: f64,
    cos_lat: f64,
    sin_pos_ang: f64,
    cos_pos_ang: f64,
    inv_minor2: f64,
    inv_major2: f64,
    center: V3,
    bound: Circle,
    inner: Option<Circle>,
}

impl Ellipse {
    /// The ellipse of `qserv_areaspec_ellipse(ra, dec, a″, b″, pa°)` with
    /// `scisql_s2PtInEllipse`'s checks: everything finite, center dec in
    /// [-90, 90], 0 ≤ semi-minor ≤ semi-major ≤ 36,000″ (10 degrees).
    pub fn new(
        center_ra_deg: f64,
        center_dec_deg: f64,
        semi_major_arcsec: f64,
        semi_minor_arcsec: f64,
        position_angle_deg: f64,
    ) -> Result<Ellipse, SkyError> {
        if !valid_position(center_ra_deg, center_dec_deg) {
            return Err(SkyError::InvalidRegion(format!(
                "ellipse center ({center_ra_deg}, {center_dec_deg}) must be finite with dec in \
                 [-90, 90]"
            )));
        }
        if !position_angle_deg.is_finite()
            || semi_major_arcsec.is_nan()
            || semi_minor_arcsec.is_nan()
            || semi_minor_arcsec < 0.0
            || semi_minor_arcsec > semi_major_arcsec
            || semi_major_arcsec > MAX_ELLIPSE_SEMI_MAJOR_ARCSEC
        {
            return Err(SkyError::InvalidRegion(format!(
                "ellipse axes {semi_major_arcsec}\"/{semi_minor_arcsec}\" and angle \
                 {position_angle_deg}: need 0 <= semi-minor <= semi-major <= \
                 {MAX_ELLIPSE_SEMI_MAJOR_ARCSEC} arcsec and a finite angle"
            )));
        }
        // Same expressions, same order as sciSQL's s2PtInEllipse.
        let posang = position_angle_deg * RAD_PER_DEG;
        let m = semi_minor_arcsec * RAD_PER_DEG / 3600.0;
        let major = semi_major_arcsec * RAD_PER_DEG / 3600.0;
        let bound_radius =
            major.min(1.0).asin() * DEG_PER_RAD * (1.0 + 1.0e-12) + BOUNDING_MARGIN_DEG;
        let inner_radius = m.min(1.0).asin() * DEG_PER_RAD * (1.0 - 1.0e-9) - BOUNDING_MARGIN_DEG;
        Ok(Ellipse {
            center_ra: center_ra_deg,
            center_dec: center_dec_deg,
            semi_major_arcsec,
            semi_minor_arcsec,
            position_angle_deg,
            sin_lon: (center_ra_deg * RAD_PER_DEG).sin(),
            cos_lon: (center_ra_deg * RAD_PER_DEG).cos(),
            sin_lat: (center_dec_deg * RAD_PER_DEG).sin(),
            cos_lat: (center_dec_deg * RAD_PER_DEG).cos(),
            sin_pos_ang: posang.sin(),
            cos_pos_ang: posang.cos(),
            inv_minor2: 1.0 / (m * m),
            inv_major2: 1.0 / (major * major),
            center: unit_from_deg(center_ra_deg, center_dec_deg),
            bound: Circle::new(center_ra_deg, center_dec_deg, bound_radius.min(180.0))?,
            inner: if inner_radius > 0.0 {
                Some(Circle::new(center_ra_deg, center_dec_deg, inner_radius)?)
            } else {
                None
            },
        })
    }

    /// Right ascension of the center, degrees, as given.
    pub fn center_ra_deg(&self) -> f64 {
        self.center_ra
    }

    /// Declination of the center, degrees.
    pub fn center_dec_deg(&self) -> f64 {
        self.center_dec
    }

    /// Semi-major axis, arcseconds.
    pub fn semi_major_arcsec(&self) -> f64 {
        self.semi_major_arcsec
    }

    /// Semi-minor axis, arcseconds.
    pub fn semi_minor_arcsec(&self) -> f64 {
        self.semi_minor_arcsec
    }

    /// Position angle of the major axis, degrees east of north.
    pub fn position_angle_deg(&self) -> f64 {
        self.position_angle_deg
    }

    /// `scisql_s2PtInEllipse`, restricted to the center's hemisphere (see
    /// the type's documentation). `false` for an invalid position.
    pub fn contains(&self, ra_deg: f64, dec_deg: f64) -> bool {
        if !valid_position(ra_deg, dec_deg) {
            return false;
        }
        let v = unit_from_deg(ra_deg, dec_deg);
        if dot(v, self.center) <= 0.0 {
            return false;
        }
        // Coordinates of v in the (north, east) basis at the center.
        let xne = self.cos_lat * v[2] - self.sin_lat * (self.sin_lon * v[1] + self.cos_lon * v[0]);
        let yne = self.cos_lon * v[1] - self.sin_lon * v[0];
        // Rotate by the negated position angle.
        let x = self.sin_pos_ang * yne + self.cos_pos_ang * xne;
        let y = self.cos_pos_ang * yne - self.sin_pos_ang * xne;
        x * x * self.inv_major2 + y * y * self.inv_minor2 <= 1.0
    }

    /// A lon/lat box holding the whole ellipse (that of its bounding cone).
    pub fn bounding_box(&self) -> SkyBox {
        self.bound.bounding_box()
    }

    /// How the ellipse relates to a box: through its bounding cone (for
    /// [`Relation::Disjoint`]) and its inscribed cone of radius
    /// asin(semi-minor) (for [`Relation::Contains`]).
    pub fn relate(&self, other: &SkyBox) -> Relation {
        match other.rect(0.0) {
            Some(rect) => self.relate_rect(&rect),
            None => Relation::Disjoint,
        }
    }

    /// Whether the ellipse may share a point with the box.
    pub fn may_intersect(&self, other: &SkyBox) -> bool {
        self.relate(other) != Relation::Disjoint
    }

    pub(crate) fn relate_rect(&self, rect: &Rect) -> Relation {
        if self.bound.relate_rect(rect) == Relation::Disjoint {
            return Relation::Disjoint;
        }
        match &self.inner {
            Some(inner) if inner.relate_rect(rect) == Relation::Contains => Relation::Contains,
            _ => Relation::Intersects,
        }
    }
}

// ---------------------------------------------------------------------------
// ConvexPolygon

/// A convex spherical polygon with great-circle edges, 3 to
/// [`MAX_POLYGON_VERTICES`] vertices in either winding (sciSQL
/// `scisql_s2cpoly_init`; lsst-sphgeom takes the convex hull).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvexPolygon {
    vertices_deg: Vec<(f64, f64)>,
    vertices: Vec<V3>,
    /// sciSQL's edge planes: `rcross(v_i, v_i+1)`, negated for clockwise
    /// input, so that inside means `v · edge >= 0` for every edge.
    edges: Vec<V3>,
    /// The same planes, unit length.
    normals: Vec<V3>,
    north_inside: bool,
    south_inside: bool,
    bounding: SkyBox,
}

impl ConvexPolygon {
    /// The polygon of `qserv_areaspec_poly(lon1, lat1, lon2, lat2, …)`.
    ///
    /// Refused: fewer than 3 or more than 20 vertices, a non-finite
    /// coordinate or a latitude outside [-90, 90], two vertices at the same
    /// place, all vertices on one great circle, and a polygon that is not
    /// convex (or is self-intersecting, or larger than a hemisphere). Three
    /// consecutive vertices on one great circle are accepted.
    pub fn new(vertices_deg: &[(f64, f64)]) -> Result<ConvexPolygon, SkyError> {
        let n = vertices_deg.len();
        if !(3..=MAX_POLYGON_VERTICES).contains(&n) {
            return Err(SkyError::InvalidRegion(format!(
                "polygon with {n} vertices: need 3 to {MAX_POLYGON_VERTICES}"
            )));
        }
        if let Some(&(lon, lat)) = vertices_deg
            .iter()
            .find(|&&(lon, lat)| !valid_position(lon, lat))
        {
            return Err(SkyError::InvalidRegion(format!(
                "polygon vertex ({lon}, {lat}) must be finite with lat in [-90, 90]"
            )));
        }
        let vertices: Vec<V3> = vertices_deg
            .iter()
            .map(|&(lon, lat)| unit_from_deg(lon, lat))
            .collect();
        // Distinct vertices (1e-12 chord is ~0.2 microarcseconds).
        for (i, &a) in vertices.iter().enumerate() {
            for &b in &vertices[i + 1..] {
                if dist2(a, b) < 1.0e-24 {
                    return Err(SkyError::InvalidRegion(format!(
                        "polygon has two vertices at the same place ({:?})",
                        vertices_deg[i]
                    )));
                }
            }
        }
        let mut edges: Vec<V3> = (0..n)
            .map(|i| rcross(vertices[i], vertices[(i + 1) % n]))
            .collect();
        let vsum = vertices
            .iter()
            .fold([0.0; 3], |s, v| [s[0] + v[0], s[1] + v[1], s[2] + v[2]]);
        // sciSQL: clockwise vertices make vsum lie outside the first edge.
        if dot(vsum, edges[0]) < 0.0 {
            for edge in &mut edges {
                *edge = neg(*edge);
            }
        }
        let normals: Vec<V3> = edges.iter().map(|&e| normalized(e)).collect();
        for (i, normal) in normals.iter().enumerate() {
            let mut deepest = f64::NEG_INFINITY;
            for (j, &v) in vertices.iter().enumerate() {
                if j == i || j == (i + 1) % n {
                    continue;
                }
                let d = dot(*normal, v);
                if d < -PLANE_TOLERANCE {
                    return Err(SkyError::InvalidRegion(format!(
                        "polygon is not convex: vertex {} lies outside edge {}-{}",
                        j + 1,
                        i + 1,
                        (i + 1) % n + 1
                    )));
                }
                deepest = deepest.max(d);
            }
            if deepest <= PLANE_TOLERANCE {
                return Err(SkyError::InvalidRegion(
                    "polygon is degenerate: all vertices lie on one great circle".to_string(),
                ));
            }
        }
        let north_inside = normals.iter().all(|e| e[2] >= -PLANE_TOLERANCE);
        let south_inside = normals.iter().all(|e| e[2] <= PLANE_TOLERANCE);
        let bounding = polygon_bounding_box(vertices_deg, &vertices, north_inside, south_inside);
        Ok(ConvexPolygon {
            vertices_deg: vertices_deg.to_vec(),
            vertices,
            edges,
            normals,
            north_inside,
            south_inside,
            bounding,
        })
    }

    /// The vertices as given, (lon, lat) degrees.
    pub fn vertices_deg(&self) -> &[(f64, f64)] {
        &self.vertices_deg
    }

    /// `scisql_s2PtInCPoly`: inside (or on) every edge plane. `false` for an
    /// invalid position.
    pub fn contains(&self, ra_deg: f64, dec_deg: f64) -> bool {
        if !valid_position(ra_deg, dec_deg) {
            return false;
        }
        let v = unit_from_deg(ra_deg, dec_deg);
        self.edges.iter().all(|&e| dot(v, e) >= 0.0)
    }

    /// A lon/lat box holding the whole polygon.
    pub fn bounding_box(&self) -> SkyBox {
        self.bounding
    }

    /// How the polygon relates to a box, exactly up to rounding: the
    /// polygon is clipped to the box's longitude lune and the latitude
    /// range of the piece compared with the box's (lsst-sphgeom only
    /// compares bounding boxes here, so this is tighter).
    pub fn relate(&self, other: &SkyBox) -> Relation {
        match other.rect(0.0) {
            Some(rect) => self.relate_rect(&rect),
            None => Relation::Disjoint,
        }
    }

    /// Whether the polygon may share a point with the box.
    pub fn may_intersect(&self, other: &SkyBox) -> bool {
        self.relate(other) != Relation::Disjoint
    }

    pub(crate) fn relate_rect(&self, rect: &Rect) -> Relation {
        if !polygon_intersects_rect(&self.vertices, self.north_inside, self.south_inside, rect) {
            return Relation::Disjoint;
        }
        if self
            .normals
            .iter()
            .all(|&normal| rect.min_dot(normal) >= PLANE_TOLERANCE)
        {
            return Relation::Contains;
        }
        Relation::Intersects
    }
}

/// Conservative lon/lat bounding box of a convex polygon.
fn polygon_bounding_box(
    vertices_deg: &[(f64, f64)],
    vertices: &[V3],
    north_inside: bool,
    south_inside: bool,
) -> SkyBox {
    // Latitudes: vertices and the extreme points of the edges.
    let (mut lat_lo, mut lat_hi) = lat_range_of(vertices);
    if north_inside {
        lat_hi = 90.0;
    }
    if south_inside {
        lat_lo = -90.0;
    }
    lat_lo -= BOUNDING_MARGIN_DEG;
    lat_hi += BOUNDING_MARGIN_DEG;
    // Longitudes: each edge not through a pole sweeps the short way between
    // its ends; near a pole that direction is ill-conditioned, so take all
    // longitudes there.
    let near_pole = lat_hi > 89.0 || lat_lo < -89.0;
    if north_inside || south_inside || near_pole {
        return SkyBox::from_bounds(0.0, 360.0, lat_lo, lat_hi);
    }
    let lons: Vec<f64> = vertices_deg
        .iter()
        .map(|&(lon, _)| reduce_lon(lon))
        .collect();
    let n = lons.len();
    let mut cumulative = 0.0_f64;
    let mut lo = 0.0_f64;
    let mut hi = 0.0_f64;
    for i in 0..n {
        let mut delta = (lons[(i + 1) % n] - lons[i]).rem_euclid(360.0);
        if delta > 180.0 {
            delta -= 360.0;
        }
        if delta.abs() > 179.0 {
            return SkyBox::from_bounds(0.0, 360.0, lat_lo, lat_hi);
        }
        cumulative += delta;
        lo = lo.min(cumulative);
        hi = hi.max(cumulative);
    }
    let margin = BOUNDING_MARGIN_DEG * 100.0;
    SkyBox::from_bounds(lons[0] + lo - margin, lons[0] + hi + margin, lat_lo, lat_hi)
}

// ---------------------------------------------------------------------------
// Region

/// A spatial restrictor: one of the four region kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum Region {
    /// `qserv_areaspec_box`.
    Box(SkyBox),
    /// `qserv_areaspec_circle`.
    Circle(Circle),
    /// `qserv_areaspec_ellipse`.
    Ellipse(Ellipse),
    /// `qserv_areaspec_poly`.
    Polygon(ConvexPolygon),
}

impl Region {
    /// Whether the region holds (ra, dec), with sciSQL's `s2PtIn*`
    /// semantics; `false` for an invalid position.
    pub fn contains(&self, ra_deg: f64, dec_deg: f64) -> bool {
        match self {
            Region::Box(b) => b.contains(ra_deg, dec_deg),
            Region::Circle(c) => c.contains(ra_deg, dec_deg),
            Region::Ellipse(e) => e.contains(ra_deg, dec_deg),
            Region::Polygon(p) => p.contains(ra_deg, dec_deg),
        }
    }

    /// A lon/lat box holding the whole region.
    pub fn bounding_box(&self) -> SkyBox {
        match self {
            Region::Box(b) => b.bounding_box(),
            Region::Circle(c) => c.bounding_box(),
            Region::Ellipse(e) => e.bounding_box(),
            Region::Polygon(p) => p.bounding_box(),
        }
    }

    /// How the region relates to a box, conservatively (see [`Relation`]).
    pub fn relate(&self, other: &SkyBox) -> Relation {
        match other.rect(0.0) {
            Some(rect) => self.relate_rect(&rect),
            None => Relation::Disjoint,
        }
    }

    /// Whether the region may share a point with the box; never `false`
    /// for a box that truly intersects the region.
    pub fn may_intersect(&self, other: &SkyBox) -> bool {
        self.relate(other) != Relation::Disjoint
    }

    pub(crate) fn relate_rect(&self, rect: &Rect) -> Relation {
        match self {
            Region::Box(b) => b.relate_rect(rect),
            Region::Circle(c) => c.relate_rect(rect),
            Region::Ellipse(e) => e.relate_rect(rect),
            Region::Polygon(p) => p.relate_rect(rect),
        }
    }
}

impl From<SkyBox> for Region {
    fn from(b: SkyBox) -> Self {
        Region::Box(b)
    }
}

impl From<Circle> for Region {
    fn from(c: Circle) -> Self {
        Region::Circle(c)
    }
}

impl From<Ellipse> for Region {
    fn from(e: Ellipse) -> Self {
        Region::Ellipse(e)
    }
}

impl From<ConvexPolygon> for Region {
    fn from(p: ConvexPolygon) -> Self {
        Region::Polygon(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ang_sep_basics() {
        assert_eq!(ang_sep_deg(0.0, 0.0, 0.0, 0.0), Some(0.0));
        let d = ang_sep_deg(0.0, 0.0, 90.0, 0.0).unwrap();
        assert!((d - 90.0).abs() < 1e-12);
        let d = ang_sep_deg(0.0, 90.0, 0.0, -90.0).unwrap();
        assert!((d - 180.0).abs() < 1e-12);
        assert_eq!(ang_sep_deg(0.0, 91.0, 0.0, 0.0), None);
        assert_eq!(ang_sep_deg(f64::NAN, 0.0, 0.0, 0.0), None);
    }

    #[test]
    fn box_semantics() {
        let b = SkyBox::new(350.0, -1.0, 10.0, 1.0).unwrap();
        assert!(b.wraps());
        assert!(b.contains(355.0, 0.0));
        assert!(b.contains(5.0, 1.0));
        assert!(b.contains(-5.0, -1.0));
        assert!(!b.contains(20.0, 0.0));
        let b = SkyBox::new(-10.0, 0.0, 10.0, 1.0).unwrap();
        assert!(b.contains(355.0, 0.5));
        assert!(SkyBox::new(10.0, 0.0, -10.0, 1.0).is_err());
        let full = SkyBox::new(10.0, 0.0, 370.0, 1.0).unwrap();
        assert!(full.is_full_lon());
        let empty = SkyBox::new(0.0, 1.0, 10.0, 0.0).unwrap();
        assert!(empty.is_empty());
        assert!(!empty.contains(5.0, 0.5));
    }

    #[test]
    fn polygon_winding_and_validation() {
        let ccw = ConvexPolygon::new(&[(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]).unwrap();
        let cw = ConvexPolygon::new(&[(0.0, 10.0), (10.0, 0.0), (0.0, 0.0)]).unwrap();
        for p in [&ccw, &cw] {
            assert!(p.contains(2.0, 2.0));
            assert!(!p.contains(8.0, 8.0));
            assert!(p.contains(0.0, 0.0));
        }
        assert!(ConvexPolygon::new(&[(0.0, 0.0), (10.0, 0.0)]).is_err());
        assert!(ConvexPolygon::new(&[(0.0, 0.0), (10.0, 0.0), (20.0, 0.0)]).is_err());
        // A bow tie is not convex.
        assert!(ConvexPolygon::new(&[(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)]).is_err());
        // A concave quadrilateral.
        assert!(ConvexPolygon::new(&[(0.0, 0.0), (10.0, 0.0), (5.0, 2.0), (5.0, 10.0)]).is_err());
    }

    #[test]
    fn ellipse_semantics() {
        let e = Ellipse::new(10.0, 20.0, 3600.0, 1800.0, 0.0).unwrap();
        // Major axis points north.
        assert!(e.contains(10.0, 20.9));
        assert!(!e.contains(10.0, 21.1));
        assert!(!e.contains(10.0 + 0.6 / (20.0_f64.to_radians().cos()), 20.0));
        // The mirror image sciSQL would accept is excluded.
        assert!(!e.contains(190.0, -20.0));
        assert!(Ellipse::new(0.0, 0.0, 10.0, 20.0, 0.0).is_err());
        assert!(Ellipse::new(0.0, 0.0, 36001.0, 20.0, 0.0).is_err());
    }
}
