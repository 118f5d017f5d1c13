//! The near-neighbour join of one chunk: every pair (a, b) of a point of A
//! (the chunk's own rows, after filters) and a point of B (own plus overlap
//! rows, after filters) with `scisql_angSep(a, b) < r` (or `<= r`).
//!
//! # Algorithm (zones, sorted sweep, chord test, exact recheck)
//!
//! 1. Unit vectors of both sets ([`super::vectors::unit_vectors_fast`],
//!    vectorized, no libm; one pass when A and B are the same columns).
//! 2. The declination range is cut into *zones* of height h ≥ r (at most
//!    one per input row, so memory stays O(n)): a pair within r lies in the
//!    same or adjacent zones. Each point gets a compact key (zone, RA
//!    quantized to 2^-16 degree); both sets are radix-sorted by key (O(n),
//!    two 11-bit passes for a chunk).
//! 3. For a zone of A, the RA half-width α of an r-cap at the zone's largest
//!    |dec| (`atan(sin r / √|cos(φ−r) cos(φ+r)|)`, Qserv's `maxAlpha`, with
//!    slack) bounds the RA distance of any partner. B points within α of
//!    RA 0/360 are copied to RA ± 360, so windows never wrap. Zones within
//!    ~r of a pole use their whole width (the RA window would exceed 180°).
//! 4. A's points are swept in RA order, four at a time; for each of the
//!    ≤ 3 neighbouring B zones two monotone pointers delimit the union of
//!    their windows [RA − α, RA + α]. Every B point in it gets the
//!    squared-chord test against `4 sin²(r/2)` for each point of the group
//!    (independent, vectorized); kept pairs are appended branch-free.
//! 5. Chords within a relative ~1e-12 of the threshold (where the vectors'
//!    rounding could flip the answer) are re-decided with sciSQL's haversine
//!    and the SQL comparison, so the result equals `scisql_angSep(a, b) < r`
//!    evaluated in f64 on every pair.
//!
//! Work: O(n) sorting plus the chord tests, about 2.1× the number of pairs
//! (the window is 3h × 2α around a disc of area πr², plus 10% for the
//! groups). Never O(n²) over the chunk, except that every pair within r is
//! output (bounded by [`JoinParams::max_pairs`]).
//!
//! Points that sciSQL calls invalid (NaN, ±inf, |lat| > 90) pair with
//! nothing (`angSep` is NULL). Points with |lon| > 1080° (never in real
//! catalogs) are paired by exact haversine against the other set's points
//! within the declination band r (correct, slower).
//!
//! Self-join semantics (a = b pairs, each pair once) are the caller's; the
//! optional `same_row` map drops the pair of a row with itself cheaply.

use super::ang_sep::Within;
use super::exact::{angred, sc_angsep, valid_position};
use super::regions::{CHORD2_MARGIN_ABS, CHORD2_MARGIN_PER_CHORD};
use super::vectors::{RELIABLE_LON_DEG, unit_vectors_fast};
use super::{SpatialError, check_len};

/// Largest join radius accepted, degrees (Qserv's overlap limit).
pub const MAX_JOIN_RADIUS_DEG: f64 = 10.0;

/// Most rows per input set: the top bit of a row index marks RA copies.
pub const MAX_JOIN_ROWS: usize = (1 << 31) - 1;

/// "No row": the value of `same_row` entries for A rows absent from B.
pub const NO_ROW: u32 = u32::MAX;

/// RA quantization of the sort keys: 2^16 steps per degree (0.055″). The
/// windows are widened by two steps, so this only costs a few candidates.
const RA_STEPS_PER_DEG: f64 = 65_536.0;
/// Flag on a B row index: this entry is an RA ± 360 copy.
const COPY_FLAG: u32 = 1 << 31;
/// Zones within this many degrees (plus r) of a pole scan whole zones.
const POLAR_ZONE_LAT_DEG: f64 = 89.99;

/// Parameters of one join.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JoinParams {
    /// The radius r, degrees: finite, > 0, at most [`MAX_JOIN_RADIUS_DEG`].
    pub radius_deg: f64,
    /// `angSep < r` or `angSep <= r`.
    pub comparison: Within,
    /// Most pairs this call may produce; more is [`SpatialError::TooManyPairs`].
    pub max_pairs: usize,
}

/// What one join did (for tests, benchmarks and EXPLAIN-style output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Pairs appended.
    pub pairs: usize,
    /// Squared-chord tests run.
    pub candidates: u64,
    /// Pairs decided by the exact haversine (near the threshold).
    pub rechecked: u64,
    /// Valid points with |lon| > 1080°, paired by the slow exact path.
    pub unreliable_points: usize,
    /// Declination zones used.
    pub zones: usize,
}

/// One set of points, sorted by (zone, quantized RA), structure of arrays.
#[derive(Debug, Default)]
struct SortedSide {
    /// Quantized RA, relative to the join's origin (see [`ra_step`]).
    q: Vec<u32>,
    /// Row in the input, with [`COPY_FLAG`] on RA copies.
    row: Vec<u32>,
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    /// `zone_start[z]..zone_start[z + 1]` are the entries of zone z.
    zone_start: Vec<usize>,
}

/// Entries of one side before sorting.
#[derive(Debug, Default)]
struct Unsorted {
    zone: Vec<u32>,
    q: Vec<u32>,
    row: Vec<u32>,
}

impl Unsorted {
    fn clear(&mut self) {
        self.zone.clear();
        self.q.clear();
        self.row.clear();
    }

    #[inline]
    fn push(&mut self, zone: usize, q: u32, row: u32) {
        self.zone.push(zone as u32);
        self.q.push(q);
        self.row.push(row);
    }
}

/// Reusable scratch space of the join: keep one per worker and call
/// [`NeighbourJoin::run`] for every chunk, so buffers are not reallocated.
#[derive(Debug, Default)]
pub struct NeighbourJoin {
    a: SortedSide,
    b: SortedSide,
    ax: Vec<f64>,
    ay: Vec<f64>,
    az: Vec<f64>,
    bx: Vec<f64>,
    by: Vec<f64>,
    bz: Vec<f64>,
    unsorted: Unsorted,
    keys: Vec<u64>,
    spare_keys: Vec<u64>,
    rows: Vec<u32>,
    spare_rows: Vec<u32>,
    counts: Vec<usize>,
    zone_alpha: Vec<Option<f64>>,
    unreliable_a: Vec<u32>,
    unreliable_b: Vec<u32>,
}

/// The zone grid over declination.
#[derive(Clone, Copy, Debug)]
struct Zones {
    dec_lo: f64,
    dec_hi: f64,
    height: f64,
    count: usize,
}

impl Zones {
    #[inline(always)]
    fn zone_of(&self, dec: f64) -> usize {
        let z = ((dec - self.dec_lo) / self.height).max(0.0) as usize;
        z.min(self.count - 1)
    }
}

/// Quantized RA of an RA in (−180, 540): monotone, so RA windows map to
/// step windows (widened by two steps for the flooring).
#[inline(always)]
fn ra_step(ra_deg: f64) -> u32 {
    ((ra_deg + 180.0) * RA_STEPS_PER_DEG) as u32
}

impl NeighbourJoin {
    /// Empty scratch space.
    pub fn new() -> NeighbourJoin {
        NeighbourJoin::default()
    }

    /// Appends to (`out_a`, `out_b`) every pair (index into A, index into B)
    /// with `scisql_angSep(a, b) < r` (or `<=`, per `params`); returns what
    /// it did. On error nothing is appended.
    ///
    /// `same_row`, if given, has one entry per A row: the index of the same
    /// row in B (or [`NO_ROW`]); those pairs are left out.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        a_lon: &[f64],
        a_lat: &[f64],
        b_lon: &[f64],
        b_lat: &[f64],
        params: &JoinParams,
        same_row: Option<&[u32]>,
        out_a: &mut Vec<u32>,
        out_b: &mut Vec<u32>,
    ) -> Result<JoinStats, SpatialError> {
        let r = params.radius_deg;
        if !(r.is_finite() && r > 0.0 && r <= MAX_JOIN_RADIUS_DEG) {
            return Err(SpatialError::InvalidJoinRadius(r));
        }
        check_len(a_lon.len(), a_lat.len())?;
        check_len(b_lon.len(), b_lat.len())?;
        for n in [a_lon.len(), b_lon.len()] {
            if n > MAX_JOIN_ROWS {
                return Err(SpatialError::TooManyRows(n));
            }
        }
        if let Some(same) = same_row {
            check_len(a_lon.len(), same.len())?;
        }
        let start_len = (out_a.len(), out_b.len());
        let result = self.run_inner(a_lon, a_lat, b_lon, b_lat, params, same_row, out_a, out_b);
        if result.is_err() {
            out_a.truncate(start_len.0);
            out_b.truncate(start_len.1);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run_inner(
        &mut self,
        a_lon: &[f64],
        a_lat: &[f64],
        b_lon: &[f64],
        b_lat: &[f64],
        params: &JoinParams,
        same_row: Option<&[u32]>,
        out_a: &mut Vec<u32>,
        out_b: &mut Vec<u32>,
    ) -> Result<JoinStats, SpatialError> {
        let r = params.radius_deg;
        let mut stats = JoinStats::default();
        let mut sink = PairSink {
            out_a,
            out_b,
            produced: 0,
            limit: params.max_pairs,
        };

        // Which rows take part, and the declination range of the reliable ones.
        self.unreliable_a.clear();
        self.unreliable_b.clear();
        let mut dec_lo = f64::INFINITY;
        let mut dec_hi = f64::NEG_INFINITY;
        for (lon, lat, unreliable) in [
            (a_lon, a_lat, &mut self.unreliable_a),
            (b_lon, b_lat, &mut self.unreliable_b),
        ] {
            for (row, (&lon, &lat)) in lon.iter().zip(lat).enumerate() {
                if !valid_position(lon, lat) {
                    continue;
                }
                if lon.abs() > RELIABLE_LON_DEG {
                    unreliable.push(row as u32);
                    continue;
                }
                dec_lo = dec_lo.min(lat);
                dec_hi = dec_hi.max(lat);
            }
        }
        stats.unreliable_points = self.unreliable_a.len() + self.unreliable_b.len();

        if dec_lo <= dec_hi {
            let zones = zone_grid(r, dec_lo, dec_hi, a_lon.len() + b_lon.len());
            stats.zones = zones.count;
            self.prepare(a_lon, a_lat, b_lon, b_lat, r, &zones)?;
            self.sweep(
                a_lon, a_lat, b_lon, b_lat, params, same_row, &mut sink, &mut stats,
            )?;
        }
        if stats.unreliable_points > 0 {
            self.pair_unreliable(
                a_lon, a_lat, b_lon, b_lat, params, same_row, &mut sink, &mut stats,
            )?;
        }
        stats.pairs = sink.produced;
        Ok(stats)
    }

    /// Vectors, zone widths, sorted sides.
    fn prepare(
        &mut self,
        a_lon: &[f64],
        a_lat: &[f64],
        b_lon: &[f64],
        b_lat: &[f64],
        r: f64,
        zones: &Zones,
    ) -> Result<(), SpatialError> {
        // A self-join passes the same columns twice: one set of vectors.
        let same_input = std::ptr::eq(a_lon, b_lon) && std::ptr::eq(a_lat, b_lat);
        fill_vectors(b_lon, b_lat, [&mut self.bx, &mut self.by, &mut self.bz])?;
        if !same_input {
            fill_vectors(a_lon, a_lat, [&mut self.ax, &mut self.ay, &mut self.az])?;
        }
        // RA half-width per zone (None: scan whole zones).
        self.zone_alpha.clear();
        for zone in 0..zones.count {
            let lo = zones.dec_lo + zone as f64 * zones.height;
            let mut hi = lo + zones.height;
            if zone + 1 == zones.count {
                // `zone_of` clamps into the last zone.
                hi = hi.max(zones.dec_hi);
            }
            self.zone_alpha.push(zone_alpha(r, lo, hi));
        }
        // Copies of B points near RA 0/360, as wide as the widest window
        // that reaches their zone.
        let copy_width: Vec<f64> = (0..zones.count)
            .map(|zone| {
                let first = zone.saturating_sub(1);
                let last = (zone + 1).min(zones.count - 1);
                self.zone_alpha[first..=last]
                    .iter()
                    .flatten()
                    .fold(f64::NEG_INFINITY, |acc, &alpha| acc.max(alpha))
                    + 1.0e-4
            })
            .collect();

        // B: reliable valid rows plus RA copies.
        let mut q_min = u32::MAX;
        let mut q_max = 0u32;
        let unsorted = &mut self.unsorted;
        unsorted.clear();
        for (row, (&lon, &lat)) in b_lon.iter().zip(b_lat).enumerate() {
            if !(valid_position(lon, lat) && lon.abs() <= RELIABLE_LON_DEG) {
                continue;
            }
            let zone = zones.zone_of(lat);
            let ra = angred(lon);
            unsorted.push(zone, ra_step(ra), row as u32);
            let width = copy_width[zone];
            if ra < width {
                unsorted.push(zone, ra_step(ra + 360.0), row as u32 | COPY_FLAG);
            } else if ra > 360.0 - width {
                unsorted.push(zone, ra_step(ra - 360.0), row as u32 | COPY_FLAG);
            }
        }
        let b_len = unsorted.q.len();
        // A: reliable valid rows (after B's entries, sharing the origin).
        for (row, (&lon, &lat)) in a_lon.iter().zip(a_lat).enumerate() {
            if valid_position(lon, lat) && lon.abs() <= RELIABLE_LON_DEG {
                unsorted.push(zones.zone_of(lat), ra_step(angred(lon)), row as u32);
            }
        }
        for &q in &unsorted.q {
            q_min = q_min.min(q);
            q_max = q_max.max(q);
        }
        let (a_x, a_y, a_z) = if same_input {
            (&self.bx, &self.by, &self.bz)
        } else {
            (&self.ax, &self.ay, &self.az)
        };
        let mut scratch = SortScratch {
            keys: &mut self.keys,
            spare_keys: &mut self.spare_keys,
            rows: &mut self.rows,
            spare_rows: &mut self.spare_rows,
            counts: &mut self.counts,
        };
        let span = u64::from(q_max.saturating_sub(q_min)) + 1;
        sort_side(
            &mut self.b,
            &self.unsorted,
            0..b_len,
            q_min,
            span,
            zones.count,
            (&self.bx, &self.by, &self.bz),
            &mut scratch,
        );
        sort_side(
            &mut self.a,
            &self.unsorted,
            b_len..self.unsorted.q.len(),
            q_min,
            span,
            zones.count,
            (a_x, a_y, a_z),
            &mut scratch,
        );
        Ok(())
    }

    /// The main pass over reliable points: groups of [`GROUP`] consecutive
    /// A points of a zone (sorted by RA) against the union of their windows
    /// in each neighbouring B zone.
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        &self,
        a_lon: &[f64],
        a_lat: &[f64],
        b_lon: &[f64],
        b_lat: &[f64],
        params: &JoinParams,
        same_row: Option<&[u32]>,
        sink: &mut PairSink<'_>,
        stats: &mut JoinStats,
    ) -> Result<(), SpatialError> {
        let r = params.radius_deg;
        let half = (r * 0.5 * super::exact::RAD_PER_DEG).sin();
        let chord2 = 4.0 * half * half;
        let margin = CHORD2_MARGIN_PER_CHORD * chord2.sqrt() + CHORD2_MARGIN_ABS;
        let ctx = SweepContext {
            keep_max: chord2 + margin,
            sure_below: chord2 - margin,
            params,
            a_lon,
            a_lat,
            b_lon,
            b_lat,
        };
        let a = &self.a;
        let b = &self.b;
        let zone_count = self.zone_alpha.len();
        let mut buffer = PairBuffer::new();
        for za in 0..zone_count {
            let a_range = a.zone_start[za]..a.zone_start[za + 1];
            if a_range.is_empty() {
                continue;
            }
            let first = za.saturating_sub(1);
            let last = (za + 1).min(zone_count - 1);
            // Neighbouring B zones with entries, and their window pointers.
            let mut windows = [Window::default(); 3];
            let mut window_count = 0;
            for zb in first..=last {
                let (start, end) = (b.zone_start[zb], b.zone_start[zb + 1]);
                if start < end {
                    windows[window_count] = Window {
                        end,
                        lo: start,
                        hi: start,
                        start,
                    };
                    window_count += 1;
                }
            }
            let windows = &mut windows[..window_count];
            if windows.is_empty() {
                continue;
            }
            let steps =
                self.zone_alpha[za].map(|alpha| (alpha * RA_STEPS_PER_DEG).ceil() as u32 + 2);
            let mut group_start = a_range.start;
            while group_start < a_range.end {
                let group_end = (group_start + GROUP).min(a_range.end);
                let group = Group::new(a, group_start..group_end, same_row);
                match steps {
                    None => {
                        for w in windows.iter_mut() {
                            w.lo = w.start;
                            w.hi = w.end;
                        }
                    }
                    Some(steps) => {
                        // The union of the members' windows (q is sorted).
                        let lo_q = a.q[group_start].saturating_sub(steps);
                        let hi_q = a.q[group_end - 1].saturating_add(steps);
                        for w in windows.iter_mut() {
                            while w.lo < w.end && b.q[w.lo] < lo_q {
                                w.lo += 1;
                            }
                            w.hi = w.hi.max(w.lo);
                            while w.hi < w.end && b.q[w.hi] <= hi_q {
                                w.hi += 1;
                            }
                        }
                    }
                }
                for w in windows.iter() {
                    stats.candidates += ((w.hi - w.lo) * (group_end - group_start)) as u64;
                    if steps.is_none() {
                        pair_window::<true>(b, w.lo..w.hi, &group, &ctx, &mut buffer, sink, stats)?;
                    } else {
                        pair_window::<false>(
                            b,
                            w.lo..w.hi,
                            &group,
                            &ctx,
                            &mut buffer,
                            sink,
                            stats,
                        )?;
                    }
                }
                group_start = group_end;
            }
        }
        Ok(())
    }

    /// Pairs involving points with |lon| > 1080°, by exact haversine over
    /// the declination band of the other set.
    #[allow(clippy::too_many_arguments)]
    fn pair_unreliable(
        &self,
        a_lon: &[f64],
        a_lat: &[f64],
        b_lon: &[f64],
        b_lat: &[f64],
        params: &JoinParams,
        same_row: Option<&[u32]>,
        sink: &mut PairSink<'_>,
        stats: &mut JoinStats,
    ) -> Result<(), SpatialError> {
        let r = params.radius_deg;
        // |Δdec| <= angSep up to rounding far below this slack.
        let band = r * (1.0 + 1.0e-7) + 1.0e-9;
        let by_dec = |lon: &[f64], lat: &[f64]| {
            let mut rows: Vec<u32> = (0..lon.len() as u32)
                .filter(|&row| valid_position(lon[row as usize], lat[row as usize]))
                .collect();
            rows.sort_unstable_by(|&p, &q| lat[p as usize].total_cmp(&lat[q as usize]));
            rows
        };
        let b_sorted = by_dec(b_lon, b_lat);
        let a_sorted = by_dec(a_lon, a_lat);
        let mut partners = Vec::new();
        // Unreliable A rows against every valid B row in the band.
        for &a_row in &self.unreliable_a {
            let ar = a_row as usize;
            let skip = same_row.map_or(NO_ROW, |same| same[ar]);
            partners.clear();
            let from = b_sorted.partition_point(|&q| b_lat[q as usize] < a_lat[ar] - band);
            for &b_row in &b_sorted[from..] {
                let br = b_row as usize;
                if b_lat[br] > a_lat[ar] + band {
                    break;
                }
                stats.rechecked += 1;
                let sep = sc_angsep(a_lon[ar], a_lat[ar], b_lon[br], b_lat[br]);
                if b_row != skip && params.comparison.holds(sep, r) {
                    partners.push(b_row);
                }
            }
            sink.push(a_row, &partners)?;
        }
        // Unreliable B rows against every reliable valid A row in the band
        // (unreliable A rows were paired with all of B above).
        for &b_row in &self.unreliable_b {
            let br = b_row as usize;
            let from = a_sorted.partition_point(|&p| a_lat[p as usize] < b_lat[br] - band);
            for &a_row in &a_sorted[from..] {
                let ar = a_row as usize;
                if a_lat[ar] > b_lat[br] + band {
                    break;
                }
                if a_lon[ar].abs() > RELIABLE_LON_DEG {
                    continue;
                }
                if same_row.is_some_and(|same| same[ar] == b_row) {
                    continue;
                }
                stats.rechecked += 1;
                let sep = sc_angsep(a_lon[ar], a_lat[ar], b_lon[br], b_lat[br]);
                if params.comparison.holds(sep, r) {
                    sink.push(a_row, &[b_row])?;
                }
            }
        }
        Ok(())
    }
}

/// `near_neighbour_join` with fresh scratch space (tests, one-off calls).
#[allow(clippy::too_many_arguments)]
pub fn near_neighbour_join(
    a_lon: &[f64],
    a_lat: &[f64],
    b_lon: &[f64],
    b_lat: &[f64],
    params: &JoinParams,
    same_row: Option<&[u32]>,
    out_a: &mut Vec<u32>,
    out_b: &mut Vec<u32>,
) -> Result<JoinStats, SpatialError> {
    NeighbourJoin::new().run(a_lon, a_lat, b_lon, b_lat, params, same_row, out_a, out_b)
}

/// Output with the pair limit.
struct PairSink<'a> {
    out_a: &'a mut Vec<u32>,
    out_b: &'a mut Vec<u32>,
    produced: usize,
    limit: usize,
}

impl PairSink<'_> {
    /// Appends pairs given as two parallel slices.
    #[inline]
    fn push_pairs(&mut self, a_rows: &[u32], b_rows: &[u32]) -> Result<(), SpatialError> {
        if self.limit - self.produced < a_rows.len() {
            return Err(SpatialError::TooManyPairs { limit: self.limit });
        }
        self.produced += a_rows.len();
        self.out_a.extend_from_slice(a_rows);
        self.out_b.extend_from_slice(b_rows);
        Ok(())
    }

    #[inline]
    fn push(&mut self, a_row: u32, b_rows: &[u32]) -> Result<(), SpatialError> {
        if b_rows.is_empty() {
            return Ok(());
        }
        if self.limit - self.produced < b_rows.len() {
            return Err(SpatialError::TooManyPairs { limit: self.limit });
        }
        self.produced += b_rows.len();
        self.out_a.extend(std::iter::repeat_n(a_row, b_rows.len()));
        self.out_b.extend_from_slice(b_rows);
        Ok(())
    }
}

/// A window into one zone of B: entries `lo..hi` of `start..end`.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    start: usize,
    end: usize,
    lo: usize,
    hi: usize,
}

/// A points processed together: each B entry loaded is tested against all
/// of them (independent chains, vectorized across the group).
const GROUP: usize = 4;

/// B entries per [`pair_window`] block (pairs are buffered per block).
const PAIR_BLOCK: usize = 64;

/// What [`pair_window`] needs besides the data.
struct SweepContext<'a> {
    keep_max: f64,
    sure_below: f64,
    params: &'a JoinParams,
    a_lon: &'a [f64],
    a_lat: &'a [f64],
    b_lon: &'a [f64],
    b_lat: &'a [f64],
}

/// Up to [`GROUP`] A points; unused lanes hold NaN vectors (no partner).
struct Group {
    x: [f64; GROUP],
    y: [f64; GROUP],
    z: [f64; GROUP],
    row: [u32; GROUP],
    /// Per lane: the B row to leave out (`same_row`), or [`NO_ROW`].
    skip: [u32; GROUP],
}

impl Group {
    fn new(a: &SortedSide, range: std::ops::Range<usize>, same_row: Option<&[u32]>) -> Group {
        let mut group = Group {
            x: [f64::NAN; GROUP],
            y: [f64::NAN; GROUP],
            z: [f64::NAN; GROUP],
            row: [0; GROUP],
            skip: [NO_ROW; GROUP],
        };
        for (lane, entry) in range.enumerate() {
            group.x[lane] = a.x[entry];
            group.y[lane] = a.y[entry];
            group.z[lane] = a.z[entry];
            group.row[lane] = a.row[entry];
            if let Some(same) = same_row {
                group.skip[lane] = same[a.row[entry] as usize];
            }
        }
        group
    }
}

/// Pairs found in one block, flushed to the sink per block.
struct PairBuffer {
    a: [u32; GROUP * PAIR_BLOCK],
    b: [u32; GROUP * PAIR_BLOCK],
}

impl PairBuffer {
    fn new() -> PairBuffer {
        PairBuffer {
            a: [0; GROUP * PAIR_BLOCK],
            b: [0; GROUP * PAIR_BLOCK],
        }
    }
}

/// Tests every B entry of `range` against every member of `group` and
/// appends the pairs within the radius to the sink.
///
/// Per entry: four squared chords (one per lane), the keep decisions, and a
/// branch-free append of (a row, b row) to the block buffer. A pair whose
/// chord is within the margin of the threshold is re-decided by sciSQL's
/// haversine (rare, so that branch is well predicted).
// Lanes index several parallel arrays; loops over `0..GROUP` vectorize.
#[allow(clippy::needless_range_loop)]
#[inline(never)]
fn pair_window<const SKIP_COPIES: bool>(
    b: &SortedSide,
    range: std::ops::Range<usize>,
    group: &Group,
    ctx: &SweepContext<'_>,
    buffer: &mut PairBuffer,
    sink: &mut PairSink<'_>,
    stats: &mut JoinStats,
) -> Result<(), SpatialError> {
    let mut start = range.start;
    while start < range.end {
        let end = (start + PAIR_BLOCK).min(range.end);
        let mut count = 0usize;
        for (((&x, &y), &z), &row) in b.x[start..end]
            .iter()
            .zip(&b.y[start..end])
            .zip(&b.z[start..end])
            .zip(&b.row[start..end])
        {
            let b_row = row & !COPY_FLAG;
            let mut d2 = [0.0f64; GROUP];
            for lane in 0..GROUP {
                let dx = group.x[lane] - x;
                let dy = group.y[lane] - y;
                let dz = group.z[lane] - z;
                d2[lane] = dx * dx + dy * dy + dz * dz;
            }
            let mut keep = [false; GROUP];
            let mut uncertain = false;
            for lane in 0..GROUP {
                keep[lane] = (d2[lane] <= ctx.keep_max) & (b_row != group.skip[lane]);
                if SKIP_COPIES {
                    keep[lane] &= row & COPY_FLAG == 0;
                }
                uncertain |= keep[lane] & (d2[lane] >= ctx.sure_below);
            }
            if uncertain {
                for lane in 0..GROUP {
                    if keep[lane] && d2[lane] >= ctx.sure_below {
                        stats.rechecked += 1;
                        let (ar, br) = (group.row[lane] as usize, b_row as usize);
                        let sep =
                            sc_angsep(ctx.a_lon[ar], ctx.a_lat[ar], ctx.b_lon[br], ctx.b_lat[br]);
                        keep[lane] = ctx.params.comparison.holds(sep, ctx.params.radius_deg);
                    }
                }
            }
            for lane in 0..GROUP {
                // `count` < GROUP · PAIR_BLOCK: at most GROUP pairs per entry.
                let slot = count & (GROUP * PAIR_BLOCK - 1);
                buffer.a[slot] = group.row[lane];
                buffer.b[slot] = b_row;
                count += usize::from(keep[lane]);
            }
        }
        sink.push_pairs(&buffer.a[..count], &buffer.b[..count])?;
        start = end;
    }
    Ok(())
}

/// The zone grid: height just above r (so partners are in adjacent zones),
/// at most `max(2, rows)` zones.
fn zone_grid(r: f64, dec_lo: f64, dec_hi: f64, rows: usize) -> Zones {
    let mut height = r * (1.0 + 1.0e-7) + 1.0e-9;
    let span = dec_hi - dec_lo;
    let max_zones = rows.clamp(2, 1 << 22);
    if span / height >= max_zones as f64 {
        height = span / (max_zones - 1) as f64;
    }
    let count = ((span / height) as usize + 1).min(max_zones);
    Zones {
        dec_lo,
        dec_hi,
        height,
        count,
    }
}

/// RA half-width (degrees, with slack) of any r-cap centred in the zone
/// [lo, hi] (the last zone may extend further; `zone_of` clamps, and the
/// bound below uses the largest |dec| the zone can hold, so the top zone
/// is widened to the pole if needed). `None` if the window would not fit
/// (zone near a pole): scan the whole zone.
fn zone_alpha(r: f64, lo: f64, hi: f64) -> Option<f64> {
    let lat = lo.abs().max(hi.abs()) + 1.0e-9;
    let radius = r * (1.0 + 1.0e-9) + 1.0e-12;
    if lat + radius >= POLAR_ZONE_LAT_DEG {
        return None;
    }
    let rad = super::exact::RAD_PER_DEG;
    let denominator = (((lat - radius) * rad).cos() * ((lat + radius) * rad).cos())
        .abs()
        .sqrt();
    let alpha = ((radius * rad).sin() / denominator).atan() * super::exact::DEG_PER_RAD;
    let alpha = alpha * (1.0 + 1.0e-9) + 1.0e-9;
    (alpha.is_finite() && alpha < 170.0).then_some(alpha)
}

/// Fast unit vectors of (lon, lat) into reused buffers.
fn fill_vectors(lon: &[f64], lat: &[f64], xyz: [&mut Vec<f64>; 3]) -> Result<(), SpatialError> {
    let [x, y, z] = xyz;
    for v in [&mut *x, &mut *y, &mut *z] {
        v.resize(lon.len(), 0.0);
    }
    unit_vectors_fast(lon, lat, x, y, z)
}

/// Scratch buffers of the radix sort.
struct SortScratch<'a> {
    keys: &'a mut Vec<u64>,
    spare_keys: &'a mut Vec<u64>,
    rows: &'a mut Vec<u32>,
    spare_rows: &'a mut Vec<u32>,
    counts: &'a mut Vec<usize>,
}

/// Sorts the entries `range` of `unsorted` by (zone, q) into `side`: keys
/// `zone · span + (q − q_min)` (compact, so few radix passes), vectors
/// gathered by row, zone starts from a histogram.
#[allow(clippy::too_many_arguments)]
fn sort_side(
    side: &mut SortedSide,
    unsorted: &Unsorted,
    range: std::ops::Range<usize>,
    q_min: u32,
    span: u64,
    zone_count: usize,
    vectors: (&[f64], &[f64], &[f64]),
    scratch: &mut SortScratch<'_>,
) {
    let n = range.len();
    let zones = &unsorted.zone[range.clone()];
    let qs = &unsorted.q[range.clone()];
    scratch.keys.clear();
    scratch.keys.extend(
        zones
            .iter()
            .zip(qs)
            .map(|(&zone, &q)| u64::from(zone) * span + u64::from(q - q_min)),
    );
    scratch.rows.clear();
    scratch.rows.extend_from_slice(&unsorted.row[range]);
    scratch.spare_keys.resize(n, 0);
    scratch.spare_rows.resize(n, 0);
    radix_sort(
        scratch.keys,
        scratch.rows,
        scratch.spare_keys,
        scratch.spare_rows,
        scratch.counts,
    );
    // Zone starts from a histogram of the zones.
    side.zone_start.clear();
    side.zone_start.resize(zone_count + 1, 0);
    for &zone in zones {
        side.zone_start[zone as usize + 1] += 1;
    }
    for zone in 0..zone_count {
        side.zone_start[zone + 1] += side.zone_start[zone];
    }
    side.q.clear();
    for zone in 0..zone_count {
        let offset = zone as u64 * span;
        let entries = side.zone_start[zone]..side.zone_start[zone + 1];
        side.q.extend(
            scratch.keys[entries]
                .iter()
                .map(|&key| (key - offset) as u32 + q_min),
        );
    }
    std::mem::swap(&mut side.row, scratch.rows);
    let (vx, vy, vz) = vectors;
    side.x.resize(n, 0.0);
    side.y.resize(n, 0.0);
    side.z.resize(n, 0.0);
    for (((&row, x), y), z) in side
        .row
        .iter()
        .zip(side.x.iter_mut())
        .zip(side.y.iter_mut())
        .zip(side.z.iter_mut())
    {
        let row = (row & !COPY_FLAG) as usize;
        *x = vx[row];
        *y = vy[row];
        *z = vz[row];
    }
}

/// LSD radix sort of (keys, rows) by key, 11 bits per pass, skipping digits
/// every key shares. The result is left in (keys, rows); `spare_*` are
/// scratch of the same length.
fn radix_sort(
    keys: &mut Vec<u64>,
    rows: &mut Vec<u32>,
    spare_keys: &mut Vec<u64>,
    spare_rows: &mut Vec<u32>,
    counts: &mut Vec<usize>,
) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    let n = keys.len();
    let max_key = keys.iter().copied().max().unwrap_or(0);
    let significant = 64 - max_key.leading_zeros();
    let mut shift = 0;
    while shift < significant {
        counts.clear();
        counts.resize(BUCKETS, 0);
        for &key in keys.iter() {
            counts[((key >> shift) as usize) & (BUCKETS - 1)] += 1;
        }
        if counts.contains(&n) {
            shift += BITS;
            continue;
        }
        let mut total = 0;
        for count in counts.iter_mut() {
            let c = *count;
            *count = total;
            total += c;
        }
        let (out_keys, out_rows) = (&mut spare_keys[..n], &mut spare_rows[..n]);
        for (&key, &row) in keys.iter().zip(rows.iter()) {
            let bucket = ((key >> shift) as usize) & (BUCKETS - 1);
            let at = counts[bucket];
            out_keys[at] = key;
            out_rows[at] = row;
            counts[bucket] = at + 1;
        }
        std::mem::swap(keys, spare_keys);
        std::mem::swap(rows, spare_rows);
        shift += BITS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_sorts() {
        let mut keys: Vec<u64> = (0..5000u64)
            .map(|i| (i * 7919) % 5003 + ((i % 3) << 32))
            .collect();
        let mut rows: Vec<u32> = (0..5000).collect();
        let expected: Vec<u64> = {
            let mut k = keys.clone();
            k.sort_unstable();
            k
        };
        let original = keys.clone();
        let mut spare_keys = vec![0; 5000];
        let mut spare_rows = vec![0; 5000];
        let mut counts = Vec::new();
        radix_sort(
            &mut keys,
            &mut rows,
            &mut spare_keys,
            &mut spare_rows,
            &mut counts,
        );
        assert_eq!(keys, expected);
        for (key, row) in keys.iter().zip(&rows) {
            assert_eq!(original[*row as usize], *key);
        }
    }

    #[test]
    fn zone_alpha_grows_towards_the_pole() {
        let r = 1.0 / 60.0;
        let equator = zone_alpha(r, 0.0, r).unwrap();
        assert!(equator > r && equator < r * 1.01);
        let sixty = zone_alpha(r, 60.0, 60.0 + r).unwrap();
        assert!(sixty > 2.0 * r && sixty < 2.1 * r);
        assert!(zone_alpha(r, 89.98, 89.99).is_none());
    }

    #[test]
    fn parameters_are_checked() {
        let p = |radius_deg| JoinParams {
            radius_deg,
            comparison: Within::Less,
            max_pairs: 10,
        };
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 10.5] {
            assert!(matches!(
                near_neighbour_join(&[], &[], &[], &[], &p(bad), None, &mut oa, &mut ob),
                Err(SpatialError::InvalidJoinRadius(_))
            ));
        }
        assert!(
            near_neighbour_join(&[0.0], &[], &[], &[], &p(1.0), None, &mut oa, &mut ob).is_err()
        );
        let stats =
            near_neighbour_join(&[], &[], &[], &[], &p(1.0), None, &mut oa, &mut ob).unwrap();
        assert_eq!(stats.pairs, 0);
    }
}
