//! Unit vectors of (lon, lat) columns, computed once per batch and reused by
//! the predicates and the near-neighbour join.
//!
//! Two flavours:
//!
//! * [`unit_vectors_exact`]: sciSQL's `scisql_sctov3` with libm, bit for bit
//!   (four libm calls per row, ~25 M rows/s).
//! * [`unit_vectors_fast`]: a branch-free sin/cos of degrees that the
//!   compiler vectorizes: the angle is reduced *exactly* in degrees (by a
//!   multiple of 90°), then a Taylor polynomial on [-45°, 45°]. Each
//!   component is within [`FAST_VECTOR_MAX_ERROR`] of sciSQL's vector for
//!   every valid position with |lon| <= [`RELIABLE_LON_DEG`]; the fast paths
//!   of the predicates and the join widen their thresholds by that bound
//!   and decide the few rows inside the margin with [`super::exact`].

use super::exact::{RAD_PER_DEG, sctov3};
use super::{SpatialError, check_len};

/// Largest |longitude| (degrees) for which vector-based decisions are
/// trusted. Beyond it the radian conversion inside sciSQL's own formulas
/// loses absolute accuracy (its error grows with |lon|), so such rows are
/// always decided by the exact scalar code. Real catalogs hold [0, 360).
pub const RELIABLE_LON_DEG: f64 = 1080.0;

/// Bound on |fast component − sciSQL component| for a valid position with
/// |lon| <= [`RELIABLE_LON_DEG`]. The fast vector is within a few 1e-16 of
/// the true vector (exact reduction in degrees, then |x| <= π/4); sciSQL's
/// radian argument `lon · π/180`, up to 18.9 rad, is rounded by up to
/// 1.8e-15, which moves its vector as much. The test
/// `fast_vectors_are_close` measures the worst case on 200,000 positions.
pub const FAST_VECTOR_MAX_ERROR: f64 = 4.0e-15;

/// 1.5 · 2^52: adding and subtracting it rounds a double of magnitude
/// below 2^51 to the nearest integer (ties to even), without `round()`
/// (which needs SSE4.1 to vectorize).
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

// Minimax coefficients of sin and cos on [-π/4, π/4] from fdlibm
// (`k_sin.c`, `k_cos.c`, Sun Microsystems, freely distributable): sin is
// x + x³·S(x²) with error below 2^-58, cos is 1 − x²/2 + x⁴·C(x²). The
// literals are fdlibm's, digit for digit.
#[allow(clippy::excessive_precision)]
mod fdlibm {
    pub(super) const S1: f64 = -1.666_666_666_666_663_243_48e-01;
    pub(super) const S2: f64 = 8.333_333_333_322_489_461_24e-03;
    pub(super) const S3: f64 = -1.984_126_982_985_794_931_34e-04;
    pub(super) const S4: f64 = 2.755_731_370_707_006_767_89e-06;
    pub(super) const S5: f64 = -2.505_076_025_340_686_341_95e-08;
    pub(super) const S6: f64 = 1.589_690_995_211_550_102_21e-10;
    pub(super) const C1: f64 = 4.166_666_666_666_660_190_37e-02;
    pub(super) const C2: f64 = -1.388_888_888_887_410_957_49e-03;
    pub(super) const C3: f64 = 2.480_158_728_947_672_941_78e-05;
    pub(super) const C4: f64 = -2.755_731_435_139_066_330_35e-07;
    pub(super) const C5: f64 = 2.087_572_321_298_174_827_90e-09;
    pub(super) const C6: f64 = -1.135_964_755_778_819_482_65e-11;
}
use fdlibm::{C1, C2, C3, C4, C5, C6, S1, S2, S3, S4, S5, S6};

/// (sin, cos) of an angle in degrees, branch-free, for |angle| < 2^40.
///
/// `angle − 90·q` is exact: 90·q is an integer, |angle| < 2^53 makes it a
/// multiple of ulp(angle), and the result (at most ~45) is representable.
#[inline(always)]
pub fn sin_cos_deg(angle_deg: f64) -> (f64, f64) {
    let quadrant = (angle_deg * (1.0 / 90.0) + ROUND_MAGIC) - ROUND_MAGIC;
    let reduced = angle_deg - quadrant * 90.0;
    let x = reduced * RAD_PER_DEG;
    let x2 = x * x;
    let x4 = x2 * x2;
    // Estrin-style split of the Horner chains: shorter dependency chains.
    let sin_poly = (S1 + x2 * S2) + x4 * ((S3 + x2 * S4) + x4 * (S5 + x2 * S6));
    let sin_r = x + x * x2 * sin_poly;
    let cos_poly = (C1 + x2 * C2) + x4 * ((C3 + x2 * C4) + x4 * (C5 + x2 * C6));
    let cos_r = 1.0 - 0.5 * x2 + x4 * cos_poly;
    // quadrant mod 4, as a value in {-2, -1, 0, 1, 2}.
    let quarter = (quadrant * 0.25 + ROUND_MAGIC) - ROUND_MAGIC;
    let k = quadrant - 4.0 * quarter;
    let odd = k * k == 1.0;
    let sin_base = if odd { cos_r } else { sin_r };
    let cos_base = if odd { sin_r } else { cos_r };
    let sin = if k <= -1.0 || k >= 2.0 {
        -sin_base
    } else {
        sin_base
    };
    let cos = if k >= 1.0 || k <= -2.0 {
        -cos_base
    } else {
        cos_base
    };
    (sin, cos)
}

/// Fast unit vectors of `n` positions (see the module documentation).
/// Rows with an invalid position get meaningless (possibly NaN) vectors;
/// callers test validity on (lon, lat) themselves.
pub fn unit_vectors_fast(
    lon_deg: &[f64],
    lat_deg: &[f64],
    x: &mut [f64],
    y: &mut [f64],
    z: &mut [f64],
) -> Result<(), SpatialError> {
    let n = lon_deg.len();
    for len in [lat_deg.len(), x.len(), y.len(), z.len()] {
        check_len(n, len)?;
    }
    for ((((&lon, &lat), x), y), z) in lon_deg
        .iter()
        .zip(lat_deg)
        .zip(x.iter_mut())
        .zip(y.iter_mut())
        .zip(z.iter_mut())
    {
        let (sin_lon, cos_lon) = sin_cos_deg(lon);
        let (sin_lat, cos_lat) = sin_cos_deg(lat);
        *x = cos_lon * cos_lat;
        *y = sin_lon * cos_lat;
        *z = sin_lat;
    }
    Ok(())
}

/// sciSQL's unit vectors (`scisql_sctov3`, libm), bit-identical.
pub fn unit_vectors_exact(
    lon_deg: &[f64],
    lat_deg: &[f64],
    x: &mut [f64],
    y: &mut [f64],
    z: &mut [f64],
) -> Result<(), SpatialError> {
    let n = lon_deg.len();
    for len in [lat_deg.len(), x.len(), y.len(), z.len()] {
        check_len(n, len)?;
    }
    for row in 0..n {
        let v = sctov3(lon_deg[row], lat_deg[row]);
        x[row] = v[0];
        y[row] = v[1];
        z[row] = v[2];
    }
    Ok(())
}

/// Borrowed unit vectors of a batch of positions, structure of arrays.
#[derive(Clone, Copy, Debug)]
pub struct Vectors<'a> {
    x: &'a [f64],
    y: &'a [f64],
    z: &'a [f64],
}

impl<'a> Vectors<'a> {
    /// Vectors from three equally long slices, as computed by
    /// [`unit_vectors_fast`] or [`unit_vectors_exact`] from the positions
    /// they will be used with.
    pub fn new(x: &'a [f64], y: &'a [f64], z: &'a [f64]) -> Result<Vectors<'a>, SpatialError> {
        check_len(x.len(), y.len())?;
        check_len(x.len(), z.len())?;
        Ok(Vectors { x, y, z })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// The vector of row `row`.
    #[inline(always)]
    pub fn get(&self, row: usize) -> [f64; 3] {
        [self.x[row], self.y[row], self.z[row]]
    }

    /// The x components.
    pub fn x(&self) -> &'a [f64] {
        self.x
    }

    /// The y components.
    pub fn y(&self) -> &'a [f64] {
        self.y
    }

    /// The z components.
    pub fn z(&self) -> &'a [f64] {
        self.z
    }
}

/// Owned, reusable unit-vector buffers for one batch: compute once, hand
/// [`UnitVectors::view`] to every predicate of the batch.
#[derive(Clone, Debug, Default)]
pub struct UnitVectors {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
}

impl UnitVectors {
    /// Empty buffers.
    pub fn new() -> UnitVectors {
        UnitVectors::default()
    }

    /// Fills the buffers with the fast vectors of `(lon, lat)`, reusing
    /// their capacity.
    pub fn compute(&mut self, lon_deg: &[f64], lat_deg: &[f64]) -> Result<(), SpatialError> {
        check_len(lon_deg.len(), lat_deg.len())?;
        let n = lon_deg.len();
        self.x.resize(n, 0.0);
        self.y.resize(n, 0.0);
        self.z.resize(n, 0.0);
        unit_vectors_fast(lon_deg, lat_deg, &mut self.x, &mut self.y, &mut self.z)
    }

    /// The vectors last computed.
    pub fn view(&self) -> Vectors<'_> {
        Vectors {
            x: &self.x,
            y: &self.y,
            z: &self.z,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64) for reproducible tests.
    fn splitmix(state: &mut u64) -> f64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn sin_cos_special_angles() {
        for (angle, sin, cos) in [
            (0.0f64, 0.0f64, 1.0f64),
            (90.0, 1.0, 0.0),
            (180.0, 0.0, -1.0),
            (270.0, -1.0, 0.0),
            (-90.0, -1.0, 0.0),
            (360.0, 0.0, 1.0),
            (-180.0, 0.0, -1.0),
            (450.0, 1.0, 0.0),
        ] {
            let (s, c) = sin_cos_deg(angle);
            assert!(s == sin && c == cos, "{angle}: {s} {c}");
        }
        let (s, c) = sin_cos_deg(30.0);
        assert!((s - 0.5).abs() < 1e-16 && (c - 0.75f64.sqrt()).abs() < 2e-16);
    }

    #[test]
    fn fast_vectors_are_close() {
        let mut state = 7;
        // Worst error for lon in [0, 360) and over the whole reliable range.
        let mut worst = [0.0f64; 2];
        for index in 0..200_000 {
            // Mostly [0, 360), some in the whole reliable range, and the
            // awkward spots: multiples of 45 and 90, the poles.
            let lon = match index % 4 {
                0 => splitmix(&mut state) * 360.0,
                1 => (splitmix(&mut state) * 2.0 - 1.0) * RELIABLE_LON_DEG,
                2 => (splitmix(&mut state) * 48.0).round() * 45.0 - 1080.0,
                _ => 360.0 - splitmix(&mut state) * 1e-9,
            };
            let lat = match index % 3 {
                0 => splitmix(&mut state) * 180.0 - 90.0,
                1 => 90.0 - splitmix(&mut state) * 1e-6,
                _ => (splitmix(&mut state) * 4.0).round() * 45.0 - 90.0,
            };
            let mut fx = [0.0];
            let mut fy = [0.0];
            let mut fz = [0.0];
            unit_vectors_fast(&[lon], &[lat], &mut fx, &mut fy, &mut fz).unwrap();
            let exact = sctov3(lon, lat);
            let range = usize::from(!(0.0..360.0).contains(&lon));
            for (fast, exact) in [fx[0], fy[0], fz[0]].into_iter().zip(exact) {
                worst[range] = worst[range].max((fast - exact).abs());
            }
        }
        assert!(
            worst[0] <= 1.0e-15,
            "worst error in [0, 360): {:e}",
            worst[0]
        );
        assert!(
            worst[1] <= 0.75 * FAST_VECTOR_MAX_ERROR,
            "worst error: {:e}",
            worst[1]
        );
    }

    #[test]
    fn buffers_reuse_and_check_lengths() {
        let mut vectors = UnitVectors::new();
        vectors.compute(&[0.0, 90.0], &[0.0, 0.0]).unwrap();
        let view = vectors.view();
        assert_eq!(view.len(), 2);
        let v = view.get(1);
        assert!(v[0].abs() < 1e-16 && (v[1] - 1.0).abs() < 1e-16 && v[2] == 0.0);
        assert!(vectors.compute(&[0.0], &[0.0, 1.0]).is_err());
        let mut x = [0.0; 2];
        assert!(unit_vectors_exact(&[0.0], &[0.0], &mut x, &mut [0.0], &mut [0.0]).is_err());
        assert!(Vectors::new(&[0.0], &[0.0, 1.0], &[0.0]).is_err());
    }
}
