//! The near-neighbour join of one chunk: every pair (a, b) of a point of A
//! (the chunk's own rows, after filters) and a point of B (own plus overlap
//! rows, after filters) with `scisql_angSep(a, b) < r` (or `<= r`).
//!
//! # Algorithm (zones, sorted sweep, chord test, exact recheck)
//!
//! 1. Unit vectors of both sets ([`super::vectors::unit_vectors_fast`],
//!    vectorized, no libm).
//! 2. The declination range is cut into *zones* of height h ≥ r (at most
//!    one per input row, so memory stays O(n)): a pair within r lies in the
//!    same or adjacent zones. Each point gets the key (zone, RA quantized to
//!    2^-20 degree); both sets are radix-sorted by key (O(n)).
//! 3. For a zone of A, the RA half-width α of an r-cap at the zone's largest
//!    |dec| (`atan(sin r / √|cos(φ−r) cos(φ+r)|)`, Qserv's `maxAlpha`, with
//!    slack) bounds the RA distance of any partner. B points within α of
//!    RA 0/360 are copied to RA ± 360, so windows never wrap. Zones within
//!    ~r of a pole use their whole width (the RA window would exceed 180°).
//! 4. A's points are swept in RA order; for each of the ≤ 3 neighbouring B
//!    zones two monotone pointers delimit the window [RA − α, RA + α]. Every
//!    B point in the window gets the squared-chord test against
//!    `4 sin²(r/2)`; the loop is branch-free (candidates are compacted).
//! 5. Chords within a relative ~1e-12 of the threshold (where the vectors'
//!    rounding could flip the answer) are re-decided with sciSQL's haversine
//!    and the SQL comparison, so the result equals `scisql_angSep(a, b) < r`
//!    evaluated in f64 on every pair.
//!
//! Work is O(n log n)-free: O(n) sorting plus O(candidates), about 2× the
//! number of pairs (the window is 3h × 2α around a disc of area πr²).
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

/// RA quantization of the sort keys: 2^20 steps per degree (~3.4 mas).
const RA_STEPS_PER_DEG: f64 = 1_048_576.0;
/// Flag on a B row index: this entry is an RA ± 360 copy.
const COPY_FLAG: u32 = 1 << 31;
/// Chord tests per compaction block.
const BLOCK: usize = 512;
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
    key: Vec<u64>,
    row: Vec<u32>,
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    /// `zone_start[z]..zone_start[z + 1]` are the entries of zone z.
    zone_start: Vec<usize>,
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
    tmp_key: Vec<u64>,
    tmp_row: Vec<u32>,
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

#[inline(always)]
fn ra_key(ra_deg: f64) -> u64 {
    ((ra_deg + 180.0) * RA_STEPS_PER_DEG) as u32 as u64
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
        for (lon, lat, x, y, z) in [
            (a_lon, a_lat, &mut self.ax, &mut self.ay, &mut self.az),
            (b_lon, b_lat, &mut self.bx, &mut self.by, &mut self.bz),
        ] {
            x.resize(lon.len(), 0.0);
            y.resize(lon.len(), 0.0);
            z.resize(lon.len(), 0.0);
            unit_vectors_fast(lon, lat, x, y, z)?;
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

        // A: reliable valid rows, keyed.
        self.tmp_key.clear();
        self.tmp_row.clear();
        for (row, (&lon, &lat)) in a_lon.iter().zip(a_lat).enumerate() {
            if valid_position(lon, lat) && lon.abs() <= RELIABLE_LON_DEG {
                let zone = zones.zone_of(lat) as u64;
                self.a_key_push(zone, angred(lon), row as u32);
            }
        }
        sort_side(
            &mut self.a,
            &mut self.tmp_key,
            &mut self.tmp_row,
            &mut self.counts,
            (&self.ax, &self.ay, &self.az),
            zones.count,
        );

        // B: reliable valid rows plus RA copies.
        self.tmp_key.clear();
        self.tmp_row.clear();
        for (row, (&lon, &lat)) in b_lon.iter().zip(b_lat).enumerate() {
            if !(valid_position(lon, lat) && lon.abs() <= RELIABLE_LON_DEG) {
                continue;
            }
            let zone = zones.zone_of(lat);
            let ra = angred(lon);
            let z = (zone as u64) << 32;
            self.tmp_key.push(z | ra_key(ra));
            self.tmp_row.push(row as u32);
            let width = copy_width[zone];
            if ra < width {
                self.tmp_key.push(z | ra_key(ra + 360.0));
                self.tmp_row.push(row as u32 | COPY_FLAG);
            } else if ra > 360.0 - width {
                self.tmp_key.push(z | ra_key(ra - 360.0));
                self.tmp_row.push(row as u32 | COPY_FLAG);
            }
        }
        sort_side(
            &mut self.b,
            &mut self.tmp_key,
            &mut self.tmp_row,
            &mut self.counts,
            (&self.bx, &self.by, &self.bz),
            zones.count,
        );
        Ok(())
    }

    fn a_key_push(&mut self, zone: u64, ra: f64, row: u32) {
        self.tmp_key.push((zone << 32) | ra_key(ra));
        self.tmp_row.push(row);
    }

    /// The main pass over reliable points.
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
        let thresholds = Thresholds {
            keep_max: chord2 + margin,
            sure_below: chord2 - margin,
        };
        let a = &self.a;
        let b = &self.b;
        let zone_count = self.zone_alpha.len();
        let mut buf = [0u32; BLOCK];
        for za in 0..zone_count {
            let a_range = a.zone_start[za]..a.zone_start[za + 1];
            if a_range.is_empty() {
                continue;
            }
            let first = za.saturating_sub(1);
            let last = (za + 1).min(zone_count - 1);
            // Neighbouring B zones with entries, and their window pointers.
            let mut neighbours: [(usize, usize, usize, usize); 3] = [(0, 0, 0, 0); 3];
            let mut neighbour_count = 0;
            for zb in first..=last {
                let (start, end) = (b.zone_start[zb], b.zone_start[zb + 1]);
                if start < end {
                    neighbours[neighbour_count] = (start, end, start, start);
                    neighbour_count += 1;
                }
            }
            if neighbour_count == 0 {
                continue;
            }
            let window_steps =
                self.zone_alpha[za].map(|alpha| (alpha * RA_STEPS_PER_DEG).ceil() as u64 + 2);
            for ia in a_range {
                let a_row = a.row[ia];
                let av = [a.x[ia], a.y[ia], a.z[ia]];
                let qa = a.key[ia] & 0xFFFF_FFFF;
                let skip = same_row.map_or(NO_ROW, |same| same[a_row as usize]);
                for neighbour in neighbours.iter_mut().take(neighbour_count) {
                    let (start, end, lo, hi) = neighbour;
                    let window = match window_steps {
                        None => *start..*end,
                        Some(steps) => {
                            let lo_key = qa.saturating_sub(steps);
                            let hi_key = qa + steps;
                            while *lo < *end && (b.key[*lo] & 0xFFFF_FFFF) < lo_key {
                                *lo += 1;
                            }
                            if *hi < *lo {
                                *hi = *lo;
                            }
                            while *hi < *end && (b.key[*hi] & 0xFFFF_FFFF) <= hi_key {
                                *hi += 1;
                            }
                            *lo..*hi
                        }
                    };
                    let skip_copies = window_steps.is_none();
                    let mut j = window.start;
                    while j < window.end {
                        let block_end = (j + BLOCK).min(window.end);
                        stats.candidates += (block_end - j) as u64;
                        let (count, uncertain) = if skip_copies {
                            chord_block::<true>(b, av, j, block_end, &thresholds, &mut buf)
                        } else {
                            chord_block::<false>(b, av, j, block_end, &thresholds, &mut buf)
                        };
                        j = block_end;
                        if count == 0 {
                            continue;
                        }
                        let mut kept = 0;
                        for index in 0..count {
                            let entry = buf[index] as usize;
                            let b_row = b.row[entry] & !COPY_FLAG;
                            if b_row == skip {
                                continue;
                            }
                            if uncertain {
                                let d2 = chord2_of(av, b, entry);
                                if d2 >= thresholds.sure_below {
                                    stats.rechecked += 1;
                                    let (ar, br) = (a_row as usize, b_row as usize);
                                    let sep = sc_angsep(a_lon[ar], a_lat[ar], b_lon[br], b_lat[br]);
                                    if !params.comparison.holds(sep, r) {
                                        continue;
                                    }
                                }
                            }
                            buf[kept] = b_row;
                            kept += 1;
                        }
                        sink.push(a_row, &buf[..kept])?;
                    }
                }
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

/// Chord² thresholds: keep `d2 <= keep_max`; `d2 < sure_below` needs no
/// recheck.
struct Thresholds {
    keep_max: f64,
    sure_below: f64,
}

/// Output with the pair limit.
struct PairSink<'a> {
    out_a: &'a mut Vec<u32>,
    out_b: &'a mut Vec<u32>,
    produced: usize,
    limit: usize,
}

impl PairSink<'_> {
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

#[inline(always)]
fn chord2_of(av: [f64; 3], b: &SortedSide, entry: usize) -> f64 {
    let dx = av[0] - b.x[entry];
    let dy = av[1] - b.y[entry];
    let dz = av[2] - b.z[entry];
    dx * dx + dy * dy + dz * dz
}

/// Chord tests of entries `start..end` (at most [`BLOCK`]) of `b` against
/// `av`: the entries kept go to `buf[..count]`; `uncertain` says whether
/// any of them is close enough to the threshold to need a recheck.
#[inline(always)]
fn chord_block<const SKIP_COPIES: bool>(
    b: &SortedSide,
    av: [f64; 3],
    start: usize,
    end: usize,
    thresholds: &Thresholds,
    buf: &mut [u32; BLOCK],
) -> (usize, bool) {
    let bx = &b.x[start..end];
    let by = &b.y[start..end];
    let bz = &b.z[start..end];
    let rows = &b.row[start..end];
    let mut count = 0usize;
    let mut uncertain = false;
    for (offset, ((&x, &y), (&z, &row))) in bx.iter().zip(by).zip(bz.iter().zip(rows)).enumerate() {
        let dx = av[0] - x;
        let dy = av[1] - y;
        let dz = av[2] - z;
        let d2 = dx * dx + dy * dy + dz * dz;
        let mut keep = d2 <= thresholds.keep_max;
        if SKIP_COPIES {
            keep &= row & COPY_FLAG == 0;
        }
        // `count <= offset < BLOCK`: the slot exists.
        buf[count & (BLOCK - 1)] = (start + offset) as u32;
        count += usize::from(keep);
        uncertain |= keep & (d2 >= thresholds.sure_below);
    }
    (count, uncertain)
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

/// Radix-sorts `(tmp_key, tmp_row)` by key into `side`, gathers the vectors
/// of each entry's row and records zone starts.
fn sort_side(
    side: &mut SortedSide,
    tmp_key: &mut Vec<u64>,
    tmp_row: &mut Vec<u32>,
    counts: &mut Vec<usize>,
    vectors: (&[f64], &[f64], &[f64]),
    zone_count: usize,
) {
    let n = tmp_key.len();
    side.key.clear();
    side.key.resize(n, 0);
    side.row.clear();
    side.row.resize(n, 0);
    radix_sort(tmp_key, tmp_row, &mut side.key, &mut side.row, counts);
    // The sorted data is in (tmp_key, tmp_row); move it into the side.
    std::mem::swap(tmp_key, &mut side.key);
    std::mem::swap(tmp_row, &mut side.row);
    let (vx, vy, vz) = vectors;
    side.x.clear();
    side.y.clear();
    side.z.clear();
    for &row in &side.row {
        let row = (row & !COPY_FLAG) as usize;
        side.x.push(vx[row]);
        side.y.push(vy[row]);
        side.z.push(vz[row]);
    }
    side.zone_start.clear();
    side.zone_start.resize(zone_count + 1, n);
    let mut zone = 0usize;
    for (index, &key) in side.key.iter().enumerate() {
        let entry_zone = (key >> 32) as usize;
        while zone <= entry_zone {
            side.zone_start[zone] = index;
            zone += 1;
        }
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
        for (&key, &row) in keys.iter().zip(rows.iter()) {
            let bucket = ((key >> shift) as usize) & (BUCKETS - 1);
            let at = counts[bucket];
            spare_keys[at] = key;
            spare_rows[at] = row;
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
