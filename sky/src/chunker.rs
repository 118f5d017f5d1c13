//! The chunk/sub-chunk layout of Qserv (BRIEF §2).
//!
//! Formulas, and the order in which their floating-point expressions are
//! evaluated, follow Qserv's partitioner (`lsst/qserv`,
//! `src/partition/Chunker.cc` and `Geometry.cc`): points exactly on a
//! boundary land where Qserv puts them only if every division and product
//! rounds the same way. lsst-sphgeom's `Chunker` (`src/Chunker.cc`) computes
//! the same layout in radians.

use crate::error::SkyError;
use crate::geom::{DEG_PER_RAD, RAD_PER_DEG, clamp_lat, reduce_lon};
use crate::region::SkyBox;

/// Upper bound on the total number of sub-stripes, `stripes * sub_stripes`:
/// sub-stripes must be at least one arcsecond high (lsst-sphgeom refuses
/// more than 180·3600 too; Qserv's `segments` misbehaves below 1″).
pub const MAX_SUB_STRIPES: u32 = 180 * 3600;

/// Qserv's `EPSILON_DEG` (`src/partition/Constants.h`): 1 milliarcsecond.
const EPSILON_DEG: f64 = 0.001 / 3600.0;

/// Largest overlap radius Qserv accepts, degrees.
const MAX_OVERLAP_DEG: f64 = 10.0;

/// Where a row goes: its chunk and its sub-chunk inside that chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// `2·S·stripe + chunk-in-stripe`.
    pub chunk_id: i32,
    /// `sub-stripe-in-stripe · M + sub-chunk-in-chunk` (M = max sub-chunks
    /// per chunk and sub-stripe).
    pub sub_chunk_id: i32,
}

/// Per-sub-stripe constants, precomputed so that locating a point costs two
/// divisions, two truncations and a few integer operations.
#[derive(Clone, Debug)]
struct SubStripe {
    /// Index of the stripe this sub-stripe belongs to.
    stripe: i32,
    /// Chunks in that stripe (`nc`).
    num_chunks: i32,
    /// Sub-chunks per chunk in this sub-stripe (`nsc`).
    num_sub_chunks_per_chunk: i32,
    /// `nc · nsc`: sub-chunks across the whole sub-stripe.
    num_sub_chunks: i32,
    /// `360 / (nsc · nc)`, degrees.
    sub_chunk_width: f64,
    /// `1 / nsc`, to divide sub-chunk indices by `nsc` without an integer
    /// division (see [`quotient`]).
    inv_num_sub_chunks_per_chunk: f64,
    /// `2·S·stripe`: the chunk id of the stripe's first chunk.
    chunk_id_base: i32,
    /// `(ss − stripe·s)·M`: the sub-chunk id of the sub-stripe's first
    /// sub-chunk in each chunk.
    sub_chunk_id_base: i32,
    /// Longitude half-width of the overlap band at this sub-stripe, degrees.
    alpha: f64,
    /// `clampLat(ss·h − 90)`.
    lat_min: f64,
    /// `clampLat((ss + 1)·h − 90)`.
    lat_max: f64,
}

/// The sky partitioning: stripes, chunks, sub-stripes, sub-chunks and the
/// overlap radius, with Qserv's exact layout.
///
/// ```
/// use skyscan_sky::Chunker;
/// let chunker = Chunker::new(85, 12, 0.01667)?;
/// let loc = chunker.locate(0.0, 0.0)?;
/// assert_eq!((loc.chunk_id, loc.sub_chunk_id), (7140, 345)); // sub-stripe 509
/// # Ok::<(), skyscan_sky::SkyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Chunker {
    num_stripes: i32,
    num_sub_stripes_per_stripe: i32,
    num_sub_stripes: i32,
    overlap_deg: f64,
    sub_stripe_height: f64,
    /// `M`: the largest `nsc` over all sub-stripes.
    max_sub_chunks_per_chunk: i32,
    /// `nc` per stripe.
    num_chunks_per_stripe: Vec<i32>,
    sub_stripes: Vec<SubStripe>,
}

/// Qserv's `segments` (`src/partition/Chunker.cc`, BRIEF §2): how many
/// pieces at least `width` degrees wide (in angular separation) fit around
/// the latitude band `[lat_min, lat_max]`.
///
/// Qserv also clamps `width < 1″` to `1 / 3600`, an integer division that
/// yields 0 and then divides by zero; [`MAX_SUB_STRIPES`] keeps widths at or
/// above 1″ so that branch is never reached.
fn segments(lat_min: f64, lat_max: f64, width: f64) -> i32 {
    let lat = lat_min.abs().max(lat_max.abs());
    if lat > 90.0 - 1.0 / 3600.0 {
        return 1;
    }
    if width >= 180.0 {
        return 1;
    }
    let lat = lat * RAD_PER_DEG;
    let cw = (width * RAD_PER_DEG).cos();
    let sl = lat.sin();
    let cl = lat.cos();
    let x = cw - sl * sl;
    let u = cl * cl;
    let y = (u * u - x * x).abs().sqrt();
    (360.0 / (DEG_PER_RAD * y.atan2(x)).abs()).floor() as i32
}

/// Qserv's `maxAlpha` (`src/partition/Geometry.cc`, BRIEF §2): the
/// longitude half-width of a circle of radius `r` centred at latitude
/// `center_lat`, or 180 when the circle comes within 1″ of a pole.
/// `r` must be in [0, 90].
fn max_alpha(r: f64, center_lat: f64) -> f64 {
    debug_assert!((0.0..=90.0).contains(&r));
    if r == 0.0 {
        return 0.0;
    }
    let lat = clamp_lat(center_lat);
    if lat.abs() + r > 90.0 - 1.0 / 3600.0 {
        return 180.0;
    }
    let r = r * RAD_PER_DEG;
    let lat = lat * RAD_PER_DEG;
    let y = r.sin();
    let x = ((lat - r).cos() * (lat + r).cos()).abs().sqrt();
    DEG_PER_RAD * (y / x).atan().abs()
}

/// Qserv's `clampLon` (`src/partition/Geometry.h`): longitudes within 1 mas
/// of 360 become exactly 360 (products `k · width` need not hit 360).
#[inline]
fn clamp_lon(lon: f64) -> f64 {
    if lon > 360.0 - EPSILON_DEG {
        360.0
    } else {
        lon
    }
}

impl Chunker {
    /// Build the layout for `stripes` stripes of `sub_stripes` sub-stripes
    /// each, with overlap radius `overlap_deg` (BRIEF §2; Qserv's usual
    /// setting is `Chunker::new(85, 12, 0.01667)`).
    ///
    /// Refused, as by Qserv's `Chunker::_initialize`: zero stripes or
    /// sub-stripes, sub-stripes lower than 1″ (more than
    /// [`MAX_SUB_STRIPES`] in all), an overlap outside [0, 10] degrees or
    /// NaN, an overlap greater than the sub-stripe height, and an overlap
    /// whose longitude half-width α exceeds a sub-chunk's width. Layouts
    /// whose chunk or sub-chunk ids would overflow `i32` are refused too.
    pub fn new(stripes: u32, sub_stripes: u32, overlap_deg: f64) -> Result<Chunker, SkyError> {
        if stripes == 0 || sub_stripes == 0 {
            return Err(SkyError::InvalidChunker(format!(
                "stripes ({stripes}) and sub-stripes per stripe ({sub_stripes}) must be positive"
            )));
        }
        let total = u64::from(stripes) * u64::from(sub_stripes);
        if total > u64::from(MAX_SUB_STRIPES) {
            return Err(SkyError::InvalidChunker(format!(
                "{stripes} stripes x {sub_stripes} sub-stripes = {total} sub-stripes; at most \
                 {MAX_SUB_STRIPES} (sub-stripes of at least 1 arcsecond) are supported"
            )));
        }
        if overlap_deg.is_nan() || !(0.0..=MAX_OVERLAP_DEG).contains(&overlap_deg) {
            return Err(SkyError::InvalidChunker(format!(
                "overlap radius {overlap_deg} deg must be in [0, {MAX_OVERLAP_DEG}] deg"
            )));
        }
        // Both fit in i32: total <= 648000.
        let num_stripes = stripes as i32;
        let num_sub_stripes_per_stripe = sub_stripes as i32;
        let num_sub_stripes = num_stripes * num_sub_stripes_per_stripe;
        let stripe_height = 180.0 / f64::from(num_stripes);
        let sub_stripe_height = 180.0 / f64::from(num_sub_stripes);
        if sub_stripe_height < overlap_deg {
            return Err(SkyError::InvalidChunker(format!(
                "overlap radius {overlap_deg} deg is greater than the sub-stripe height \
                 {sub_stripe_height} deg"
            )));
        }
        let mut num_chunks_per_stripe = Vec::with_capacity(num_stripes as usize);
        let mut sub_stripe_table = Vec::with_capacity(num_sub_stripes as usize);
        let mut max_sub_chunks_per_chunk = 0;
        for stripe in 0..num_stripes {
            let nc = segments(
                f64::from(stripe) * stripe_height - 90.0,
                f64::from(stripe + 1) * stripe_height - 90.0,
                stripe_height,
            );
            if nc < 1 {
                return Err(SkyError::InvalidChunker(format!(
                    "stripe {stripe} would have {nc} chunks"
                )));
            }
            num_chunks_per_stripe.push(nc);
            for sub in 0..num_sub_stripes_per_stripe {
                let ss = stripe * num_sub_stripes_per_stripe + sub;
                let lat_min = f64::from(ss) * sub_stripe_height - 90.0;
                let lat_max = f64::from(ss + 1) * sub_stripe_height - 90.0;
                let nsc = segments(lat_min, lat_max, sub_stripe_height) / nc;
                if nsc < 1 {
                    return Err(SkyError::InvalidChunker(format!(
                        "sub-stripe {ss} would have {nsc} sub-chunks per chunk"
                    )));
                }
                max_sub_chunks_per_chunk = max_sub_chunks_per_chunk.max(nsc);
                let num_sub_chunks = i64::from(nsc) * i64::from(nc);
                if num_sub_chunks > i64::from(i32::MAX) {
                    return Err(SkyError::InvalidChunker(format!(
                        "sub-stripe {ss} would have {num_sub_chunks} sub-chunks"
                    )));
                }
                let num_sub_chunks = num_sub_chunks as i32;
                let sub_chunk_width = 360.0 / f64::from(num_sub_chunks);
                let alpha = max_alpha(overlap_deg, lat_min.abs().max(lat_max.abs()));
                if alpha > sub_chunk_width {
                    return Err(SkyError::InvalidChunker(format!(
                        "overlap radius {overlap_deg} deg is greater than the sub-chunk width: \
                         alpha {alpha} deg > {sub_chunk_width} deg in sub-stripe {ss}"
                    )));
                }
                sub_stripe_table.push(SubStripe {
                    stripe,
                    num_chunks: nc,
                    num_sub_chunks_per_chunk: nsc,
                    num_sub_chunks,
                    sub_chunk_width,
                    inv_num_sub_chunks_per_chunk: 1.0 / f64::from(nsc),
                    chunk_id_base: 0,
                    sub_chunk_id_base: 0,
                    alpha,
                    lat_min: clamp_lat(f64::from(ss) * sub_stripe_height - 90.0),
                    lat_max: clamp_lat(f64::from(ss + 1) * sub_stripe_height - 90.0),
                });
            }
        }
        // Ids must fit i32: chunk ids < 2·S·S + max(nc), sub-chunk ids < s·M.
        let max_nc = num_chunks_per_stripe.iter().copied().max().unwrap_or(1);
        let max_chunk_id =
            2 * i64::from(num_stripes) * i64::from(num_stripes - 1) + i64::from(max_nc);
        let max_sub_chunk_id =
            i64::from(num_sub_stripes_per_stripe) * i64::from(max_sub_chunks_per_chunk);
        if max_nc > 2 * num_stripes
            || max_chunk_id > i64::from(i32::MAX)
            || max_sub_chunk_id > i64::from(i32::MAX)
        {
            return Err(SkyError::InvalidChunker(format!(
                "{stripes} stripes x {sub_stripes} sub-stripes give chunk or sub-chunk ids \
                 that do not fit 32 bits"
            )));
        }
        for (ss, table) in (0..).zip(sub_stripe_table.iter_mut()) {
            table.chunk_id_base = 2 * num_stripes * table.stripe;
            table.sub_chunk_id_base =
                (ss - table.stripe * num_sub_stripes_per_stripe) * max_sub_chunks_per_chunk;
        }
        Ok(Chunker {
            num_stripes,
            num_sub_stripes_per_stripe,
            num_sub_stripes,
            overlap_deg,
            sub_stripe_height,
            max_sub_chunks_per_chunk,
            num_chunks_per_stripe,
            sub_stripes: sub_stripe_table,
        })
    }

    /// Number of latitude stripes `S`.
    pub fn stripes(&self) -> u32 {
        self.num_stripes as u32
    }

    /// Number of sub-stripes per stripe `s`.
    pub fn sub_stripes(&self) -> u32 {
        self.num_sub_stripes_per_stripe as u32
    }

    /// Overlap radius `R`, degrees.
    pub fn overlap_deg(&self) -> f64 {
        self.overlap_deg
    }

    /// Height of a sub-stripe `h = 180 / (S·s)`, degrees.
    pub fn sub_stripe_height_deg(&self) -> f64 {
        self.sub_stripe_height
    }

    /// `M`, the largest number of sub-chunks per chunk in any sub-stripe;
    /// sub-chunk ids are `sub-stripe-in-stripe · M + sub-chunk-in-chunk`.
    pub fn max_sub_chunks_per_chunk(&self) -> i32 {
        self.max_sub_chunks_per_chunk
    }

    /// Number of chunks in `stripe` (`nc`), or `None` for a stripe that
    /// does not exist.
    pub fn chunks_in_stripe(&self, stripe: i32) -> Option<i32> {
        usize::try_from(stripe)
            .ok()
            .and_then(|index| self.num_chunks_per_stripe.get(index).copied())
    }

    /// Range-reduce `ra_deg` into [0, 360) as Qserv's `reduceLon` does
    /// (360 → 0, −10 → 350), and check that both coordinates are finite
    /// and `dec_deg` is in [-90, 90].
    #[inline]
    fn normalize(ra_deg: f64, dec_deg: f64) -> Result<(f64, f64), SkyError> {
        if !ra_deg.is_finite() || !dec_deg.is_finite() || !(-90.0..=90.0).contains(&dec_deg) {
            return Err(SkyError::InvalidPosition { ra_deg, dec_deg });
        }
        Ok((reduce_lon(ra_deg), dec_deg))
    }

    /// Sub-stripe and sub-chunk-in-sub-stripe of a normalised position:
    /// BRIEF §2 / Qserv `Chunker::locate`, same expression order.
    #[inline]
    fn sub_stripe_and_sub_chunk(&self, ra: f64, dec: f64) -> (i32, i32) {
        debug_assert!((0.0..360.0).contains(&ra) || ra == 0.0);
        debug_assert!((-90.0..=90.0).contains(&dec));
        // Both quotients are >= 0 here, where truncation equals floor; the
        // cast avoids a libm `floor` call on targets without SSE4.1.
        let mut ss = ((dec + 90.0) / self.sub_stripe_height) as i32;
        if ss >= self.num_sub_stripes {
            ss = self.num_sub_stripes - 1;
        }
        let table = &self.sub_stripes[ss as usize];
        let mut sc = (ra / table.sub_chunk_width) as i32;
        if sc >= table.num_sub_chunks {
            sc = table.num_sub_chunks - 1;
        }
        (ss, sc)
    }

    /// The location of sub-chunk `sc` (index across its sub-stripe) of
    /// sub-stripe `ss`.
    #[inline]
    fn location_of(&self, ss: i32, sc: i32) -> Location {
        let table = &self.sub_stripes[ss as usize];
        let nsc = table.num_sub_chunks_per_chunk;
        let chunk = quotient(sc, nsc, table.inv_num_sub_chunks_per_chunk);
        debug_assert_eq!(chunk, sc / nsc);
        Location {
            chunk_id: table.chunk_id_base + chunk,
            sub_chunk_id: table.sub_chunk_id_base + (sc - chunk * nsc),
        }
    }

    /// The chunk and sub-chunk that own the point (ra, dec), in degrees.
    ///
    /// `ra_deg` may be any finite value; it is range-reduced into [0, 360)
    /// first (Qserv's `reduceLon`). Errors if either coordinate is NaN or
    /// infinite or `|dec_deg| > 90`.
    #[inline]
    pub fn locate(&self, ra_deg: f64, dec_deg: f64) -> Result<Location, SkyError> {
        let (ra, dec) = Self::normalize(ra_deg, dec_deg)?;
        let (ss, sc) = self.sub_stripe_and_sub_chunk(ra, dec);
        Ok(self.location_of(ss, sc))
    }

    /// [`Chunker::locate`] over parallel slices: clears `out` and pushes one
    /// location per point, in order. Allocates only to grow `out`.
    ///
    /// Errors if the slices differ in length or on the first invalid point
    /// (then `out` holds the locations of the points before it).
    pub fn locate_batch(
        &self,
        ra_deg: &[f64],
        dec_deg: &[f64],
        out: &mut Vec<Location>,
    ) -> Result<(), SkyError> {
        if ra_deg.len() != dec_deg.len() {
            return Err(SkyError::LengthMismatch {
                ra_len: ra_deg.len(),
                dec_len: dec_deg.len(),
            });
        }
        out.clear();
        out.reserve(ra_deg.len());
        for (&ra, &dec) in ra_deg.iter().zip(dec_deg) {
            out.push(self.locate(ra, dec)?);
        }
        Ok(())
    }

    /// Every (chunk, sub-chunk) that receives an overlap copy of the point:
    /// clears `out` and pushes them, without duplicates and never the
    /// point's own location (BRIEF §2, Qserv's `Chunker::locate` with
    /// `chunkId < 0` minus its non-overlap entry).
    ///
    /// Copies go to the sub-chunks of the sub-stripe below covering
    /// [ra − α', ra + α'] if dec < latMin + R, to those of the sub-stripe
    /// above if dec ≥ latMax − R (α' that sub-stripe's α), and to the left
    /// and right neighbours in the point's own sub-stripe if ra is within α
    /// of the sub-chunk's edges; all wrap at 0/360. Nothing when R = 0.
    ///
    /// Note that this is Qserv's box-shaped overlap: a copy can land in a
    /// diagonal neighbour up to about √2·R away, and every sub-chunk whose
    /// box is within R of the point gets one.
    pub fn overlap_locations(
        &self,
        ra_deg: f64,
        dec_deg: f64,
        out: &mut Vec<Location>,
    ) -> Result<(), SkyError> {
        let (ra, dec) = Self::normalize(ra_deg, dec_deg)?;
        out.clear();
        if self.overlap_deg == 0.0 {
            return Ok(());
        }
        let (ss, sc) = self.sub_stripe_and_sub_chunk(ra, dec);
        let table = &self.sub_stripes[ss as usize];
        let lon_min = f64::from(sc) * table.sub_chunk_width;
        let lon_max = clamp_lon(f64::from(sc + 1) * table.sub_chunk_width);
        if ss > 0 && dec < table.lat_min + self.overlap_deg {
            self.up_down_overlap(ra, ss - 1, out);
        }
        if ss < self.num_sub_stripes - 1 && dec >= table.lat_max - self.overlap_deg {
            self.up_down_overlap(ra, ss + 1, out);
        }
        let n = table.num_sub_chunks;
        if n == 1 {
            return Ok(());
        }
        if ra < lon_min + table.alpha {
            let left = if sc == 0 { n - 1 } else { sc - 1 };
            push_unique(out, self.location_of(ss, left));
        }
        if ra > lon_max - table.alpha {
            let right = if sc == n - 1 { 0 } else { sc + 1 };
            push_unique(out, self.location_of(ss, right));
        }
        Ok(())
    }

    /// Overlap copies into the neighbouring sub-stripe `ss`: the sub-chunks
    /// covering [ra − α, ra + α] with α of `ss` (Qserv `_upDownOverlap`).
    fn up_down_overlap(&self, ra: f64, ss: i32, out: &mut Vec<Location>) {
        let table = &self.sub_stripes[ss as usize];
        let n = table.num_sub_chunks;
        let width = table.sub_chunk_width;
        let mut min_sc = ((ra - table.alpha) / width).floor() as i32;
        let mut max_sc = ((ra + table.alpha) / width).floor() as i32;
        if min_sc < 0 {
            min_sc += n;
        }
        if max_sc >= n {
            max_sc -= n;
        }
        if min_sc > max_sc {
            for sc in min_sc..n {
                push_unique(out, self.location_of(ss, sc));
            }
            min_sc = 0;
        }
        for sc in min_sc..=max_sc {
            push_unique(out, self.location_of(ss, sc));
        }
    }

    /// Decompose a chunk id into (stripe, chunk-in-stripe), if valid.
    #[inline]
    fn split_chunk_id(&self, chunk_id: i32) -> Option<(i32, i32)> {
        if chunk_id < 0 {
            return None;
        }
        let per_stripe = 2 * self.num_stripes;
        let stripe = chunk_id / per_stripe;
        let chunk = chunk_id - stripe * per_stripe;
        let nc = self.chunks_in_stripe(stripe)?;
        (chunk < nc).then_some((stripe, chunk))
    }

    /// Decompose a sub-chunk id of a chunk in `stripe` into (sub-stripe,
    /// sub-chunk-in-chunk), if valid.
    #[inline]
    fn split_sub_chunk_id(&self, stripe: i32, sub_chunk_id: i32) -> Option<(i32, i32)> {
        if sub_chunk_id < 0 {
            return None;
        }
        let sub_in_stripe = sub_chunk_id / self.max_sub_chunks_per_chunk;
        let sub_chunk = sub_chunk_id - sub_in_stripe * self.max_sub_chunks_per_chunk;
        if sub_in_stripe >= self.num_sub_stripes_per_stripe {
            return None;
        }
        let ss = stripe * self.num_sub_stripes_per_stripe + sub_in_stripe;
        let table = &self.sub_stripes[ss as usize];
        (sub_chunk < table.num_sub_chunks_per_chunk).then_some((ss, sub_chunk))
    }

    /// Whether this layout has a chunk with this id.
    pub fn is_valid_chunk(&self, chunk_id: i32) -> bool {
        self.split_chunk_id(chunk_id).is_some()
    }

    /// Whether `sub_chunk_id` is a sub-chunk of the valid chunk `chunk_id`.
    pub fn is_valid_sub_chunk(&self, chunk_id: i32, sub_chunk_id: i32) -> bool {
        self.split_chunk_id(chunk_id)
            .and_then(|(stripe, _)| self.split_sub_chunk_id(stripe, sub_chunk_id))
            .is_some()
    }

    /// The stripe of a chunk: `chunk_id div 2S`.
    pub fn stripe(&self, chunk_id: i32) -> Result<i32, SkyError> {
        self.split_chunk_id(chunk_id)
            .map(|(stripe, _)| stripe)
            .ok_or(SkyError::InvalidChunkId(chunk_id))
    }

    /// Every chunk id of the layout, ascending (8,983 for 85 stripes).
    pub fn all_chunks(&self) -> Vec<i32> {
        let mut ids = Vec::new();
        for (stripe, &nc) in (0..).zip(&self.num_chunks_per_stripe) {
            ids.extend((0..nc).map(|chunk| 2 * self.num_stripes * stripe + chunk));
        }
        ids
    }

    /// Every sub-chunk id of a chunk, ascending (Qserv's `getSubChunks`).
    pub fn sub_chunks_of(&self, chunk_id: i32) -> Result<Vec<i32>, SkyError> {
        let (stripe, _) = self
            .split_chunk_id(chunk_id)
            .ok_or(SkyError::InvalidChunkId(chunk_id))?;
        Ok(self.sub_chunks_of_stripe(stripe))
    }

    /// Every sub-chunk id of a chunk in `stripe` (all chunks of a stripe
    /// have the same sub-chunks), ascending.
    pub(crate) fn sub_chunks_of_stripe(&self, stripe: i32) -> Vec<i32> {
        let first = stripe * self.num_sub_stripes_per_stripe;
        let mut ids = Vec::new();
        for sub_in_stripe in 0..self.num_sub_stripes_per_stripe {
            let nsc = self.sub_stripes[(first + sub_in_stripe) as usize].num_sub_chunks_per_chunk;
            let base = sub_in_stripe * self.max_sub_chunks_per_chunk;
            ids.extend((0..nsc).map(|sub_chunk| base + sub_chunk));
        }
        ids
    }

    /// The lon/lat box of a chunk, as Qserv's `getChunkBounds`: longitudes
    /// `[c·w, clampLon((c+1)·w)]` with `w = 360/nc`, latitudes of its
    /// stripe. A box ending at 360 is range-reduced like any [`SkyBox`], so
    /// it reports `lon_max() == 0` and wraps; a stripe with one chunk gives
    /// the full longitude range `[0, 360]`.
    pub fn chunk_bounds(&self, chunk_id: i32) -> Result<SkyBox, SkyError> {
        let (stripe, chunk) = self
            .split_chunk_id(chunk_id)
            .ok_or(SkyError::InvalidChunkId(chunk_id))?;
        Ok(self.chunk_box(stripe, chunk))
    }

    /// Box of chunk `chunk` (index in the stripe) of `stripe`.
    pub(crate) fn chunk_box(&self, stripe: i32, chunk: i32) -> SkyBox {
        let width = 360.0 / f64::from(self.num_chunks_per_stripe[stripe as usize]);
        let lon_min = f64::from(chunk) * width;
        let lon_max = clamp_lon(f64::from(chunk + 1) * width);
        let lat_min = clamp_lat(
            f64::from(stripe * self.num_sub_stripes_per_stripe) * self.sub_stripe_height - 90.0,
        );
        let lat_max = clamp_lat(
            f64::from((stripe + 1) * self.num_sub_stripes_per_stripe) * self.sub_stripe_height
                - 90.0,
        );
        SkyBox::from_bounds(lon_min, lon_max, lat_min, lat_max)
    }

    /// The lon/lat box of a sub-chunk, as Qserv's `getSubChunkBounds` (see
    /// [`Chunker::chunk_bounds`] for how boxes ending at 360 are reported).
    pub fn sub_chunk_bounds(&self, chunk_id: i32, sub_chunk_id: i32) -> Result<SkyBox, SkyError> {
        let (stripe, chunk) = self
            .split_chunk_id(chunk_id)
            .ok_or(SkyError::InvalidChunkId(chunk_id))?;
        let (ss, sub_chunk) =
            self.split_sub_chunk_id(stripe, sub_chunk_id)
                .ok_or(SkyError::InvalidSubChunkId {
                    chunk_id,
                    sub_chunk_id,
                })?;
        Ok(self.sub_chunk_box(
            ss,
            chunk * self.sub_stripes[ss as usize].num_sub_chunks_per_chunk + sub_chunk,
        ))
    }

    /// Box of sub-chunk `sc` (index across the sub-stripe) of sub-stripe `ss`.
    pub(crate) fn sub_chunk_box(&self, ss: i32, sc: i32) -> SkyBox {
        let table = &self.sub_stripes[ss as usize];
        let lon_min = f64::from(sc) * table.sub_chunk_width;
        let lon_max = clamp_lon(f64::from(sc + 1) * table.sub_chunk_width);
        SkyBox::from_bounds(lon_min, lon_max, table.lat_min, table.lat_max)
    }

    // ---- accessors for the region cover (cover.rs) ----

    pub(crate) fn num_stripes_i32(&self) -> i32 {
        self.num_stripes
    }

    pub(crate) fn num_sub_stripes_per_stripe_i32(&self) -> i32 {
        self.num_sub_stripes_per_stripe
    }

    pub(crate) fn num_sub_stripes_i32(&self) -> i32 {
        self.num_sub_stripes
    }

    /// (nsc, nc·nsc, sub-chunk width) of sub-stripe `ss`.
    pub(crate) fn sub_stripe_layout(&self, ss: i32) -> (i32, i32, f64) {
        let table = &self.sub_stripes[ss as usize];
        debug_assert!(table.num_chunks * table.num_sub_chunks_per_chunk == table.num_sub_chunks);
        (
            table.num_sub_chunks_per_chunk,
            table.num_sub_chunks,
            table.sub_chunk_width,
        )
    }

    /// The sub-chunk id of sub-chunk `sc` (index across the sub-stripe) of
    /// sub-stripe `ss` whose chunk is `chunk` (index in the stripe).
    pub(crate) fn sub_chunk_id_of(&self, ss: i32, chunk: i32, sc: i32) -> i32 {
        let table = &self.sub_stripes[ss as usize];
        (ss - table.stripe * self.num_sub_stripes_per_stripe) * self.max_sub_chunks_per_chunk
            + (sc - chunk * table.num_sub_chunks_per_chunk)
    }
}

/// `numerator / denominator` for `0 <= numerator < 2^31` and
/// `denominator >= 1`, from the reciprocal `inverse = 1 / denominator`:
/// the floating-point estimate is off by at most one and then corrected, so
/// the result is exact. An integer division costs several times more and
/// sits on the critical path of [`Chunker::locate`].
#[inline]
fn quotient(numerator: i32, denominator: i32, inverse: f64) -> i32 {
    let mut q = (f64::from(numerator) * inverse) as i32;
    if q * denominator > numerator {
        q -= 1;
    } else if (q + 1) * denominator <= numerator {
        q += 1;
    }
    q
}

#[inline]
fn push_unique(out: &mut Vec<Location>, loc: Location) {
    if !out.contains(&loc) {
        out.push(loc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qserv_default_layout() {
        let c = Chunker::new(85, 12, 0.01667).unwrap();
        assert_eq!(c.all_chunks().len(), 8983);
        // (0, 0) lands in sub-stripe 509, not 510 (BRIEF §2).
        let (ss, _) = c.sub_stripe_and_sub_chunk(0.0, 0.0);
        assert_eq!(ss, 509);
        assert_eq!(c.num_chunks_per_stripe[0], 1);
        assert_eq!(c.num_chunks_per_stripe[84], 1);
    }

    #[test]
    fn ra_normalisation() {
        let c = Chunker::new(85, 12, 0.01667).unwrap();
        assert_eq!(c.locate(360.0, 10.0).unwrap(), c.locate(0.0, 10.0).unwrap());
        assert_eq!(
            c.locate(-10.0, 10.0).unwrap(),
            c.locate(350.0, 10.0).unwrap()
        );
        assert_eq!(
            c.locate(-720.0, 10.0).unwrap(),
            c.locate(0.0, 10.0).unwrap()
        );
    }
}
