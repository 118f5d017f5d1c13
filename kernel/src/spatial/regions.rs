//! `scisql_s2PtInBox`, `scisql_s2PtInCircle`, `scisql_s2PtInEllipse` and
//! `scisql_s2PtInCPoly` over columns of positions.
//!
//! The common case, a column of points against a constant region, has a
//! prepared form ([`BoxPredicate`], [`CirclePredicate`], [`EllipsePredicate`],
//! [`PolygonPredicate`]): the region's constants are derived once, and each
//! batch goes through two passes:
//!
//! 1. a branch-free pass over all rows, 64 at a time, with comparisons only
//!    (no trigonometry): position validity, and a conservative latitude band
//!    plus longitude window around the region. Rows outside the window are
//!    decided (0) there; for a box every row with lon in [0, 360) is decided.
//! 2. the few remaining candidates are decided one by one: with the batch's
//!    unit vectors if the caller has them (a dot product or chord against a
//!    threshold widened by the vectors' error bound), and with sciSQL's exact
//!    scalar code ([`super::exact`]) for the rest, so every decision equals
//!    sciSQL's, boundary rows included.
//!
//! The SQL-level functions ([`s2_pt_in_box`], …) take [`F64Arg`]s; with
//! constant region arguments they use the prepared form, otherwise they
//! evaluate sciSQL's scalar code row by row.
//!
//! Results follow the module's NULL convention ([`super`]): value bits in
//! `out`, validity bits cleared where sciSQL returns NULL.

use super::exact::{
    self, DEG_PER_RAD, EllipseParams, MAX_POLYGON_VERTICES, PolygonEdges, RAD_PER_DEG, V3, angred,
    sc_dist2, valid_position,
};
use super::vectors::{FAST_VECTOR_MAX_ERROR, RELIABLE_LON_DEG, Vectors};
use super::{F64Arg, SpatialError, check_args, check_bitmap, check_len, word_mask};

/// Relative and absolute slack added to window radii (degrees), far above
/// the rounding of sciSQL's distance computations (~1e-14 rad) so that the
/// windows never drop a row sciSQL keeps.
const WINDOW_REL_SLACK: f64 = 1.0e-9;
const WINDOW_ABS_SLACK_DEG: f64 = 1.0e-9;

/// Above this |latitude| + radius (degrees) a window spans all longitudes.
const WINDOW_POLAR_LAT_DEG: f64 = 89.9;

/// Margin on squared chord lengths for vector decisions, relative to the
/// chord: the vectors' error moves a chord² by at most 2·|d|·√3·ε + 3ε²
/// (ε = [`FAST_VECTOR_MAX_ERROR`]) and sciSQL's haversine carries a similar
/// error, far below `CHORD2_MARGIN_PER_CHORD · chord`.
pub(crate) const CHORD2_MARGIN_PER_CHORD: f64 = 1.0e-12;
pub(crate) const CHORD2_MARGIN_ABS: f64 = 1.0e-26;

/// A conservative window around a spherical cap: a latitude band and a
/// longitude range (for longitudes in [0, 360); others always pass).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CapWindow {
    lat_lo: f64,
    lat_hi: f64,
    lon: LonWindow,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LonWindow {
    All,
    /// `lo <= lon <= hi`.
    Range {
        lo: f64,
        hi: f64,
    },
    /// `lon >= lo || lon <= hi`.
    Wrap {
        lo: f64,
        hi: f64,
    },
}

impl CapWindow {
    /// A window holding every point within `radius_deg` (plus slack) of the
    /// valid position (`center_lon`, `center_lat`).
    pub(crate) fn new(center_lon: f64, center_lat: f64, radius_deg: f64) -> CapWindow {
        let radius = radius_deg * (1.0 + WINDOW_REL_SLACK) + WINDOW_ABS_SLACK_DEG;
        let lat_lo = center_lat - radius;
        let lat_hi = center_lat + radius;
        let lon = if center_lat.abs() + radius >= WINDOW_POLAR_LAT_DEG || radius >= 80.0 {
            LonWindow::All
        } else {
            // RA half-width of a cap: asin(sin r / cos δ).
            let s = (radius * RAD_PER_DEG).sin() / (center_lat * RAD_PER_DEG).cos();
            if s >= 1.0 {
                LonWindow::All
            } else {
                let half = s.asin() * DEG_PER_RAD * (1.0 + WINDOW_REL_SLACK) + WINDOW_ABS_SLACK_DEG;
                let center = angred(center_lon);
                let lo = center - half;
                let hi = center + half;
                if half >= 180.0 {
                    LonWindow::All
                } else if lo < 0.0 {
                    LonWindow::Wrap { lo: lo + 360.0, hi }
                } else if hi >= 360.0 {
                    LonWindow::Wrap { lo, hi: hi - 360.0 }
                } else {
                    LonWindow::Range { lo, hi }
                }
            }
        };
        CapWindow {
            lat_lo,
            lat_hi,
            lon,
        }
    }

    /// Whether the longitude window passes `lon` (any finite value).
    #[inline(always)]
    fn lon_passes(&self, lon: f64) -> bool {
        let outside_canonical = !(0.0..360.0).contains(&lon);
        match self.lon {
            LonWindow::All => true,
            LonWindow::Range { lo, hi } => ((lon >= lo) & (lon <= hi)) | outside_canonical,
            LonWindow::Wrap { lo, hi } => (lon >= lo) | (lon <= hi) | outside_canonical,
        }
    }

    /// Whether the window passes the position.
    #[inline(always)]
    pub(crate) fn passes(&self, lon: f64, lat: f64) -> bool {
        (lat >= self.lat_lo) & (lat <= self.lat_hi) & self.lon_passes(lon)
    }

    /// Whether only the longitude part passes (for a band tested apart).
    #[inline(always)]
    pub(crate) fn passes_lon(&self, lon: f64) -> bool {
        self.lon_passes(lon)
    }
}

/// Outcome of the first pass for one row.
#[derive(Clone, Copy)]
struct RowClass {
    valid: bool,
    sure_in: bool,
    uncertain: bool,
}

/// The two-pass evaluation shared by every prepared predicate: `classify`
/// runs on every row (branch-free), `decide` on the uncertain valid rows.
#[inline(always)]
fn eval_two_pass<C, D>(
    lon: &[f64],
    lat: &[f64],
    out: &mut [u64],
    validity: &mut [u64],
    classify: C,
    mut decide: D,
) -> Result<(), SpatialError>
where
    C: Fn(f64, f64) -> RowClass,
    D: FnMut(usize) -> bool,
{
    let n = lon.len();
    check_len(n, lat.len())?;
    check_bitmap(n, out)?;
    check_bitmap(n, validity)?;
    for (word_index, (lon_chunk, lat_chunk)) in lon.chunks(64).zip(lat.chunks(64)).enumerate() {
        let mut valid_bits = 0u64;
        let mut in_bits = 0u64;
        let mut uncertain_bits = 0u64;
        for (bit, (&lon, &lat)) in lon_chunk.iter().zip(lat_chunk).enumerate() {
            let class = classify(lon, lat);
            valid_bits |= u64::from(class.valid) << bit;
            in_bits |= u64::from(class.valid & class.sure_in) << bit;
            uncertain_bits |= u64::from(class.valid & class.uncertain) << bit;
        }
        let mask = word_mask(n, word_index);
        validity[word_index] &= valid_bits | !mask;
        let mut result = in_bits;
        let mut rest = uncertain_bits & !in_bits;
        while rest != 0 {
            let bit = rest.trailing_zeros();
            if decide(word_index * 64 + bit as usize) {
                result |= 1u64 << bit;
            }
            rest &= rest - 1;
        }
        out[word_index] = result;
    }
    Ok(())
}

/// Every row NULL (an invalid constant region): value bits and validity
/// bits of rows `0..n` cleared.
fn fill_null(n: usize, out: &mut [u64], validity: &mut [u64]) -> Result<(), SpatialError> {
    check_bitmap(n, out)?;
    check_bitmap(n, validity)?;
    for word_index in 0..n.div_ceil(64) {
        out[word_index] = 0;
        validity[word_index] &= !word_mask(n, word_index);
    }
    Ok(())
}

/// Every row the same result (constant point and region).
fn fill_constant(
    n: usize,
    result: Option<bool>,
    out: &mut [u64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    match result {
        None => fill_null(n, out, validity),
        Some(value) => {
            check_bitmap(n, out)?;
            check_bitmap(n, validity)?;
            for (word_index, word) in out[..n.div_ceil(64)].iter_mut().enumerate() {
                *word = if value { word_mask(n, word_index) } else { 0 };
            }
            Ok(())
        }
    }
}

/// Row-by-row evaluation of a scalar predicate (column region arguments).
pub(crate) fn eval_rows<F>(
    n: usize,
    out: &mut [u64],
    validity: &mut [u64],
    mut row_result: F,
) -> Result<(), SpatialError>
where
    F: FnMut(usize) -> Option<bool>,
{
    check_bitmap(n, out)?;
    check_bitmap(n, validity)?;
    for word_index in 0..n.div_ceil(64) {
        let start = word_index * 64;
        let end = (start + 64).min(n);
        let mut value = 0u64;
        let mut null = 0u64;
        for row in start..end {
            let bit = row - start;
            match row_result(row) {
                Some(true) => value |= 1u64 << bit,
                Some(false) => {}
                None => null |= 1u64 << bit,
            }
        }
        out[word_index] = value;
        validity[word_index] &= !null;
    }
    Ok(())
}

fn check_vectors(n: usize, vectors: Option<&Vectors<'_>>) -> Result<(), SpatialError> {
    match vectors {
        Some(v) => check_len(n, v.len()),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Box

/// `scisql_s2PtInBox` against a constant box.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxPredicate {
    state: BoxState,
}

#[derive(Clone, Debug, PartialEq)]
enum BoxState {
    /// Invalid box arguments: every row NULL.
    Null,
    Valid {
        lat_min: f64,
        lat_max: f64,
        /// Spans 360 degrees or more.
        full: bool,
        lon_min: f64,
        lon_max: f64,
        raw: [f64; 4],
    },
}

impl BoxPredicate {
    /// The box `(lon_min, lat_min, lon_max, lat_max)` with sciSQL's rules:
    /// a corner that is not a valid position, or `lon_max < lon_min` with
    /// either outside [0, 360], makes every row NULL; `lat_min > lat_max`
    /// is an empty box; ends 360° or more apart cover all longitudes.
    pub fn new(lon_min: f64, lat_min: f64, lon_max: f64, lat_max: f64) -> BoxPredicate {
        let state = if !valid_position(lon_min, lat_min)
            || !valid_position(lon_max, lat_max)
            || (lon_max < lon_min && (lon_max < 0.0 || lon_min > 360.0))
        {
            BoxState::Null
        } else {
            BoxState::Valid {
                lat_min,
                lat_max,
                full: lon_max - lon_min >= 360.0,
                lon_min: angred(lon_min),
                lon_max: angred(lon_max),
                raw: [lon_min, lat_min, lon_max, lat_max],
            }
        };
        BoxPredicate { state }
    }

    /// Evaluates the box on `n` positions (see the module documentation).
    /// Needs no vectors: the test is comparisons only.
    pub fn eval(
        &self,
        lon: &[f64],
        lat: &[f64],
        out: &mut [u64],
        validity: &mut [u64],
    ) -> Result<(), SpatialError> {
        let (lat_min, lat_max, full, lon_min, lon_max, raw) = match self.state {
            BoxState::Null => {
                check_len(lon.len(), lat.len())?;
                return fill_null(lon.len(), out, validity);
            }
            BoxState::Valid {
                lat_min,
                lat_max,
                full,
                lon_min,
                lon_max,
                raw,
            } => (lat_min, lat_max, full, lon_min, lon_max, raw),
        };
        let wraps = lon_min > lon_max;
        eval_two_pass(
            lon,
            lat,
            out,
            validity,
            |lon, lat| {
                let in_lat = (lat >= lat_min) & (lat <= lat_max);
                let canonical = (0.0..360.0).contains(&lon);
                let lon_in = if wraps {
                    (lon >= lon_min) | (lon <= lon_max)
                } else {
                    (lon >= lon_min) & (lon <= lon_max)
                };
                RowClass {
                    valid: valid_position(lon, lat),
                    sure_in: in_lat & (full | (canonical & lon_in)),
                    uncertain: in_lat & !full & !canonical,
                }
            },
            |row| {
                exact::s2_pt_in_box(lon[row], lat[row], raw[0], raw[1], raw[2], raw[3])
                    == Some(true)
            },
        )
    }
}

/// `scisql_s2PtInBox(lon, lat, lonMin, latMin, lonMax, latMax)` for `n` rows.
#[allow(clippy::too_many_arguments)]
pub fn s2_pt_in_box(
    n: usize,
    lon: F64Arg<'_>,
    lat: F64Arg<'_>,
    lon_min: F64Arg<'_>,
    lat_min: F64Arg<'_>,
    lon_max: F64Arg<'_>,
    lat_max: F64Arg<'_>,
    out: &mut [u64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    check_args(n, &[lon, lat, lon_min, lat_min, lon_max, lat_max])?;
    if let (
        F64Arg::Scalar(lon_min),
        F64Arg::Scalar(lat_min),
        F64Arg::Scalar(lon_max),
        F64Arg::Scalar(lat_max),
    ) = (lon_min, lat_min, lon_max, lat_max)
    {
        match (lon, lat) {
            (F64Arg::Column(lon), F64Arg::Column(lat)) => {
                return BoxPredicate::new(lon_min, lat_min, lon_max, lat_max)
                    .eval(lon, lat, out, validity);
            }
            (F64Arg::Scalar(lon), F64Arg::Scalar(lat)) => {
                let result = exact::s2_pt_in_box(lon, lat, lon_min, lat_min, lon_max, lat_max);
                return fill_constant(n, result, out, validity);
            }
            _ => {}
        }
    }
    eval_rows(n, out, validity, |row| {
        exact::s2_pt_in_box(
            lon.get(row),
            lat.get(row),
            lon_min.get(row),
            lat_min.get(row),
            lon_max.get(row),
            lat_max.get(row),
        )
    })
}

// ---------------------------------------------------------------------------
// Circle

/// `scisql_s2PtInCircle` against a constant circle (constant radius path:
/// haversine squared chord against `4 sin²(r/2)`).
#[derive(Clone, Debug, PartialEq)]
pub struct CirclePredicate {
    state: CircleState,
}

#[derive(Clone, Debug, PartialEq)]
enum CircleState {
    Null,
    Valid {
        center_lon: f64,
        center_lat: f64,
        radius_deg: f64,
        radius_dist2: f64,
        center: V3,
        window: CapWindow,
        chord2_margin: f64,
    },
}

impl CirclePredicate {
    /// The circle of `radius_deg` around (`center_lon`, `center_lat`); an
    /// invalid center or a radius outside [0, 180] makes every row NULL.
    pub fn new(center_lon: f64, center_lat: f64, radius_deg: f64) -> CirclePredicate {
        let state = if !valid_position(center_lon, center_lat)
            || !exact::valid_circle_radius(radius_deg)
        {
            CircleState::Null
        } else {
            let radius_dist2 = exact::circle_radius_dist2(radius_deg);
            CircleState::Valid {
                center_lon,
                center_lat,
                radius_deg,
                radius_dist2,
                center: exact::sctov3(center_lon, center_lat),
                window: CapWindow::new(center_lon, center_lat, radius_deg),
                chord2_margin: CHORD2_MARGIN_PER_CHORD * radius_dist2.sqrt() + CHORD2_MARGIN_ABS,
            }
        };
        CirclePredicate { state }
    }

    /// Evaluates the circle on `n` positions; `vectors`, if given, are the
    /// unit vectors of the same positions and spare the trigonometry of the
    /// candidates. Pass them only when the batch has them anyway (shared
    /// with other predicates or the join) and they are hot in cache: the
    /// window pass leaves few candidates, and computing vectors for one
    /// predicate costs more than the haversines it saves.
    pub fn eval(
        &self,
        lon: &[f64],
        lat: &[f64],
        vectors: Option<&Vectors<'_>>,
        out: &mut [u64],
        validity: &mut [u64],
    ) -> Result<(), SpatialError> {
        let CircleState::Valid {
            center_lon,
            center_lat,
            radius_deg,
            radius_dist2,
            center,
            window,
            chord2_margin,
        } = self.state
        else {
            check_len(lon.len(), lat.len())?;
            return fill_null(lon.len(), out, validity);
        };
        check_vectors(lon.len(), vectors)?;
        let exact_in =
            |row: usize| sc_dist2(lon[row], lat[row], center_lon, center_lat) <= radius_dist2;
        eval_two_pass(
            lon,
            lat,
            out,
            validity,
            |lon, lat| RowClass {
                valid: valid_position(lon, lat),
                sure_in: false,
                // sciSQL's fail-fast, exactly; then the longitude window.
                uncertain: ((lat - center_lat).abs() <= radius_deg) & window.passes_lon(lon),
            },
            |row| match vectors {
                Some(vectors) if lon[row].abs() <= RELIABLE_LON_DEG => {
                    let v = vectors.get(row);
                    let d2 = chord2(v, center);
                    if d2 < radius_dist2 - chord2_margin {
                        true
                    } else if d2 > radius_dist2 + chord2_margin {
                        false
                    } else {
                        exact_in(row)
                    }
                }
                _ => exact_in(row),
            },
        )
    }
}

/// Squared distance between two vectors.
#[inline(always)]
pub(crate) fn chord2(a: V3, b: V3) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    let dz = a[2] - b[2];
    dx * dx + dy * dy + dz * dz
}

/// `scisql_s2PtInCircle(lon, lat, centerLon, centerLat, radius)` for `n`
/// rows. A constant radius takes sciSQL's cached path (squared chord
/// against `4 sin²(r/2)`), a column radius its other path (`angSep <= r`),
/// so boundary rows round exactly as in sciSQL either way.
#[allow(clippy::too_many_arguments)]
pub fn s2_pt_in_circle(
    n: usize,
    lon: F64Arg<'_>,
    lat: F64Arg<'_>,
    center_lon: F64Arg<'_>,
    center_lat: F64Arg<'_>,
    radius_deg: F64Arg<'_>,
    out: &mut [u64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    check_args(n, &[lon, lat, center_lon, center_lat, radius_deg])?;
    if let (F64Arg::Scalar(center_lon), F64Arg::Scalar(center_lat), F64Arg::Scalar(radius)) =
        (center_lon, center_lat, radius_deg)
    {
        match (lon, lat) {
            (F64Arg::Column(lon), F64Arg::Column(lat)) => {
                return CirclePredicate::new(center_lon, center_lat, radius)
                    .eval(lon, lat, None, out, validity);
            }
            (F64Arg::Scalar(lon), F64Arg::Scalar(lat)) => {
                let result = exact::s2_pt_in_circle(lon, lat, center_lon, center_lat, radius, true);
                return fill_constant(n, result, out, validity);
            }
            _ => {}
        }
    }
    let constant_radius = radius_deg.is_scalar();
    eval_rows(n, out, validity, |row| {
        exact::s2_pt_in_circle(
            lon.get(row),
            lat.get(row),
            center_lon.get(row),
            center_lat.get(row),
            radius_deg.get(row),
            constant_radius,
        )
    })
}

// ---------------------------------------------------------------------------
// Ellipse

/// `scisql_s2PtInEllipse` against a constant ellipse.
///
/// As in sciSQL, the mirror image of the ellipse around the antipode of its
/// center is inside too (see [`exact::s2_pt_in_ellipse`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EllipsePredicate {
    state: EllipseState,
}

#[derive(Clone, Debug, PartialEq)]
enum EllipseState {
    Null,
    Valid {
        params: EllipseParams,
        near: CapWindow,
        far: CapWindow,
    },
}

/// Bound on the error of the tangent-plane coordinates (x, y) computed from
/// fast vectors instead of sciSQL's: each is a combination of the vector's
/// components with coefficients of total magnitude below 3.
const ELLIPSE_XY_ERROR: f64 = 3.0 * FAST_VECTOR_MAX_ERROR + 1.0e-15;

impl EllipsePredicate {
    /// The ellipse with center (`center_lon`, `center_lat`), semi-axes in
    /// arcseconds and position angle in degrees east of north; invalid
    /// arguments (sciSQL's rules, [`EllipseParams::new`]) make every row NULL.
    pub fn new(
        center_lon: f64,
        center_lat: f64,
        semi_major_arcsec: f64,
        semi_minor_arcsec: f64,
        position_angle_deg: f64,
    ) -> EllipsePredicate {
        let state = match EllipseParams::new(
            center_lon,
            center_lat,
            semi_major_arcsec,
            semi_minor_arcsec,
            position_angle_deg,
        ) {
            None => EllipseState::Null,
            Some(params) => {
                // Inside implies sin(distance to the center) <= semi-major:
                // a cap around the center and one around its antipode.
                let major_rad = semi_major_arcsec * RAD_PER_DEG / exact::ARCSEC_PER_DEG;
                let sin_bound = (major_rad * (1.0 + 1.0e-9) + 1.0e-14).min(1.0);
                let radius = sin_bound.asin() * DEG_PER_RAD;
                EllipseState::Valid {
                    params,
                    near: CapWindow::new(center_lon, center_lat, radius),
                    far: CapWindow::new(center_lon + 180.0, -center_lat, radius),
                }
            }
        };
        EllipsePredicate { state }
    }

    /// Evaluates the ellipse on `n` positions; `vectors` as for
    /// [`CirclePredicate::eval`].
    pub fn eval(
        &self,
        lon: &[f64],
        lat: &[f64],
        vectors: Option<&Vectors<'_>>,
        out: &mut [u64],
        validity: &mut [u64],
    ) -> Result<(), SpatialError> {
        let EllipseState::Valid { params, near, far } = &self.state else {
            check_len(lon.len(), lat.len())?;
            return fill_null(lon.len(), out, validity);
        };
        check_vectors(lon.len(), vectors)?;
        eval_two_pass(
            lon,
            lat,
            out,
            validity,
            |lon, lat| RowClass {
                valid: valid_position(lon, lat),
                sure_in: false,
                uncertain: near.passes(lon, lat) | far.passes(lon, lat),
            },
            |row| match vectors {
                Some(vectors) if lon[row].abs() <= RELIABLE_LON_DEG => {
                    ellipse_decide_with_vector(params, vectors.get(row))
                        .unwrap_or_else(|| params.contains(lon[row], lat[row]))
                }
                _ => params.contains(lon[row], lat[row]),
            },
        )
    }
}

/// The ellipse decision from an approximate unit vector, or `None` when the
/// point is too close to the boundary for the vector's error.
#[inline]
fn ellipse_decide_with_vector(params: &EllipseParams, v: V3) -> Option<bool> {
    let xne =
        params.cos_lat * v[2] - params.sin_lat * (params.sin_lon * v[1] + params.cos_lon * v[0]);
    let yne = params.cos_lon * v[1] - params.sin_lon * v[0];
    let x = params.sin_pos_ang * yne + params.cos_pos_ang * xne;
    let y = params.cos_pos_ang * yne - params.sin_pos_ang * xne;
    let q = x * x * params.inv_major2 + y * y * params.inv_minor2;
    let e = ELLIPSE_XY_ERROR;
    let margin = (2.0 * x.abs() * e + e * e) * params.inv_major2
        + (2.0 * y.abs() * e + e * e) * params.inv_minor2
        + 1.0e-14 * q.abs()
        + 1.0e-14;
    // NaN (degenerate axes) or within the margin: undecided.
    if (q - 1.0).abs() > margin {
        Some(q < 1.0)
    } else {
        None
    }
}

/// `scisql_s2PtInEllipse(lon, lat, centerLon, centerLat, semiMajor″,
/// semiMinor″, positionAngle°)` for `n` rows.
#[allow(clippy::too_many_arguments)]
pub fn s2_pt_in_ellipse(
    n: usize,
    lon: F64Arg<'_>,
    lat: F64Arg<'_>,
    center_lon: F64Arg<'_>,
    center_lat: F64Arg<'_>,
    semi_major_arcsec: F64Arg<'_>,
    semi_minor_arcsec: F64Arg<'_>,
    position_angle_deg: F64Arg<'_>,
    out: &mut [u64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    let region = [
        center_lon,
        center_lat,
        semi_major_arcsec,
        semi_minor_arcsec,
        position_angle_deg,
    ];
    check_args(n, &[lon, lat])?;
    check_args(n, &region)?;
    if region.iter().all(F64Arg::is_scalar) {
        let [cl, ca, major, minor, pa] = region.map(|arg| arg.get(0));
        match (lon, lat) {
            (F64Arg::Column(lon), F64Arg::Column(lat)) => {
                return EllipsePredicate::new(cl, ca, major, minor, pa)
                    .eval(lon, lat, None, out, validity);
            }
            (F64Arg::Scalar(lon), F64Arg::Scalar(lat)) => {
                let result = exact::s2_pt_in_ellipse(lon, lat, cl, ca, major, minor, pa);
                return fill_constant(n, result, out, validity);
            }
            _ => {}
        }
    }
    eval_rows(n, out, validity, |row| {
        exact::s2_pt_in_ellipse(
            lon.get(row),
            lat.get(row),
            center_lon.get(row),
            center_lat.get(row),
            semi_major_arcsec.get(row),
            semi_minor_arcsec.get(row),
            position_angle_deg.get(row),
        )
    })
}

// ---------------------------------------------------------------------------
// Convex polygon

/// `scisql_s2PtInCPoly` against a constant polygon.
#[derive(Clone, Debug, PartialEq)]
pub struct PolygonPredicate {
    state: PolygonState,
}

#[derive(Clone, Debug, PartialEq)]
enum PolygonState {
    Null,
    Valid {
        poly: PolygonEdges,
        /// Per edge: margin on `v · edge` for vector decisions.
        margins: Vec<f64>,
        /// A window around the polygon, when it is provably convex.
        window: Option<CapWindow>,
    },
}

impl PolygonPredicate {
    /// The polygon with (lon, lat) vertices in degrees, in either winding.
    ///
    /// 3 to 20 vertices, else [`SpatialError::PolygonVertexCount`] (sciSQL
    /// refuses such a call). A vertex that is not a valid position makes
    /// every row NULL. Like sciSQL, no convexity check: a non-convex
    /// vertex list gives whatever its edge planes say (the restrictor
    /// `qserv_areaspec_poly` refuses such polygons, in `skyscan-sky`).
    pub fn new(vertices_deg: &[(f64, f64)]) -> Result<PolygonPredicate, SpatialError> {
        if !(3..=MAX_POLYGON_VERTICES).contains(&vertices_deg.len()) {
            return Err(SpatialError::PolygonVertexCount(vertices_deg.len()));
        }
        let state = match PolygonEdges::new(vertices_deg) {
            None => PolygonState::Null,
            Some(poly) => {
                let margins = poly
                    .edges
                    .iter()
                    .map(|e| {
                        (2.0 * FAST_VECTOR_MAX_ERROR + 1.0e-15)
                            * (e[0].abs() + e[1].abs() + e[2].abs())
                            + 1.0e-300
                    })
                    .collect();
                PolygonState::Valid {
                    window: polygon_window(vertices_deg),
                    poly,
                    margins,
                }
            }
        };
        Ok(PolygonPredicate { state })
    }

    /// Evaluates the polygon on `n` positions; `vectors` as for
    /// [`CirclePredicate::eval`].
    pub fn eval(
        &self,
        lon: &[f64],
        lat: &[f64],
        vectors: Option<&Vectors<'_>>,
        out: &mut [u64],
        validity: &mut [u64],
    ) -> Result<(), SpatialError> {
        let PolygonState::Valid {
            poly,
            margins,
            window,
        } = &self.state
        else {
            check_len(lon.len(), lat.len())?;
            return fill_null(lon.len(), out, validity);
        };
        check_vectors(lon.len(), vectors)?;
        let window = *window;
        let exact_in = |row: usize| poly.contains_vector(exact::sctov3(lon[row], lat[row]));
        eval_two_pass(
            lon,
            lat,
            out,
            validity,
            |lon, lat| RowClass {
                valid: valid_position(lon, lat),
                sure_in: false,
                uncertain: match &window {
                    Some(window) => window.passes(lon, lat),
                    None => true,
                },
            },
            |row| match vectors {
                Some(vectors) if lon[row].abs() <= RELIABLE_LON_DEG => {
                    let v = vectors.get(row);
                    let mut sure_in = true;
                    for (edge, &margin) in poly.edges.iter().zip(margins) {
                        let d = exact::dot(v, *edge);
                        if d < -margin {
                            return false;
                        }
                        sure_in &= d >= margin;
                    }
                    sure_in || exact_in(row)
                }
                _ => exact_in(row),
            },
        )
    }
}

/// A window around a polygon that `skyscan-sky` accepts as convex (so the
/// region inside its edge planes is the spherical hull of its vertices,
/// within a cap around the vertices' mean): `None` otherwise, or when that
/// cap is wider than 80°.
fn polygon_window(vertices_deg: &[(f64, f64)]) -> Option<CapWindow> {
    skyscan_sky::ConvexPolygon::new(vertices_deg).ok()?;
    let verts: Vec<V3> = vertices_deg
        .iter()
        .map(|&(lon, lat)| exact::sctov3(lon, lat))
        .collect();
    let sum = verts
        .iter()
        .fold([0.0; 3], |s, v| [s[0] + v[0], s[1] + v[1], s[2] + v[2]]);
    let norm = exact::dot(sum, sum).sqrt();
    if norm.is_nan() || norm < 1.0e-6 {
        return None;
    }
    let center = [sum[0] / norm, sum[1] / norm, sum[2] / norm];
    let radius_deg = verts
        .iter()
        .map(|&v| 2.0 * (0.5 * chord2(v, center).sqrt()).min(1.0).asin() * DEG_PER_RAD)
        .fold(0.0, f64::max);
    if radius_deg > 80.0 {
        return None;
    }
    let center_lat = center[2].clamp(-1.0, 1.0).asin() * DEG_PER_RAD;
    let center_lon = center[1].atan2(center[0]) * DEG_PER_RAD;
    // The center's (lon, lat) carries rounding: widen by a microdegree.
    Some(CapWindow::new(center_lon, center_lat, radius_deg + 1.0e-6))
}

/// `scisql_s2PtInCPoly(lon, lat, v1Lon, v1Lat, …)` for `n` rows: 3 to 20
/// vertices, each a (lon, lat) pair of arguments.
pub fn s2_pt_in_cpoly(
    n: usize,
    lon: F64Arg<'_>,
    lat: F64Arg<'_>,
    vertices: &[(F64Arg<'_>, F64Arg<'_>)],
    out: &mut [u64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    if !(3..=MAX_POLYGON_VERTICES).contains(&vertices.len()) {
        return Err(SpatialError::PolygonVertexCount(vertices.len()));
    }
    check_args(n, &[lon, lat])?;
    for &(vlon, vlat) in vertices {
        check_args(n, &[vlon, vlat])?;
    }
    if vertices
        .iter()
        .all(|(vlon, vlat)| vlon.is_scalar() && vlat.is_scalar())
    {
        let constant: Vec<(f64, f64)> =
            vertices.iter().map(|(a, b)| (a.get(0), b.get(0))).collect();
        match (lon, lat) {
            (F64Arg::Column(lon), F64Arg::Column(lat)) => {
                return PolygonPredicate::new(&constant)?.eval(lon, lat, None, out, validity);
            }
            (F64Arg::Scalar(lon), F64Arg::Scalar(lat)) => {
                let result = exact::s2_pt_in_cpoly(lon, lat, &constant);
                return fill_constant(n, result, out, validity);
            }
            _ => {}
        }
    }
    let mut row_vertices = Vec::with_capacity(vertices.len());
    eval_rows(n, out, validity, |row| {
        row_vertices.clear();
        row_vertices.extend(vertices.iter().map(|(a, b)| (a.get(row), b.get(row))));
        exact::s2_pt_in_cpoly(lon.get(row), lat.get(row), &row_vertices)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(out: &[u64], n: usize) -> Vec<bool> {
        (0..n).map(|i| out[i / 64] >> (i % 64) & 1 == 1).collect()
    }

    #[test]
    fn window_wraps_and_poles() {
        let w = CapWindow::new(359.0, 0.0, 2.0);
        assert!(matches!(w.lon, LonWindow::Wrap { .. }));
        assert!(w.passes(0.5, 0.0) && w.passes(357.5, 1.0) && !w.passes(10.0, 0.0));
        assert!(w.passes(-1.0, 0.0), "non-canonical longitudes always pass");
        let w = CapWindow::new(10.0, 89.0, 2.0);
        assert_eq!(w.lon, LonWindow::All);
        let w = CapWindow::new(-1.0, 10.0, 0.5);
        assert!(matches!(w.lon, LonWindow::Range { .. }) && w.passes(359.0, 10.0));
    }

    #[test]
    fn box_with_odd_longitudes() {
        let lon = [5.0, -355.0, 725.0, 360.0, 350.0, f64::NAN, 5.0];
        let lat = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 91.0];
        let mut out = [0u64];
        let mut validity = [u64::MAX];
        BoxPredicate::new(0.0, 0.0, 10.0, 1.0)
            .eval(&lon, &lat, &mut out, &mut validity)
            .unwrap();
        assert_eq!(bits(&out, 7), [true, true, true, true, false, false, false]);
        assert_eq!(validity[0], !0b110_0000u64);
    }

    #[test]
    fn invalid_constants_give_null_rows() {
        let lon = [1.0; 3];
        let lat = [1.0; 3];
        let mut out = [u64::MAX];
        let mut validity = [u64::MAX];
        CirclePredicate::new(0.0, 0.0, -1.0)
            .eval(&lon, &lat, None, &mut out, &mut validity)
            .unwrap();
        assert_eq!((out[0], validity[0]), (0, !0b111));
        assert!(PolygonPredicate::new(&[(0.0, 0.0), (1.0, 1.0)]).is_err());
    }
}
