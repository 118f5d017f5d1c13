//! `scisql_angSep(lon1, lat1, lon2, lat2)` over columns, and the cone
//! predicate `scisql_angSep(lon, lat, cLon, cLat) < r` (or `<= r`) with a
//! constant center and radius.

use super::exact::{self, sc_angsep, valid_position};
use super::regions::{CHORD2_MARGIN_ABS, CHORD2_MARGIN_PER_CHORD, CapWindow, chord2, eval_rows};
use super::vectors::{RELIABLE_LON_DEG, Vectors};
use super::{F64Arg, SpatialError, check_args, check_bitmap, check_len, word_mask};

/// `scisql_angSep` for `n` rows: the angular separation in degrees by
/// sciSQL's haversine, bit for bit. Rows where either position is invalid
/// (non-finite coordinate, latitude outside [-90, 90]) are NULL: their
/// validity bit is cleared and `out` is 0.
///
/// One haversine per row (three libm calls and an asin): ~40 M rows/s. A
/// filter `angSep(...) < r` with a constant position should use
/// [`ang_sep_within`] instead, which skips the trigonometry of rows far away.
pub fn ang_sep(
    lon1: F64Arg<'_>,
    lat1: F64Arg<'_>,
    lon2: F64Arg<'_>,
    lat2: F64Arg<'_>,
    out: &mut [f64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    let n = out.len();
    check_args(n, &[lon1, lat1, lon2, lat2])?;
    check_bitmap(n, validity)?;
    for (word_index, out_chunk) in out.chunks_mut(64).enumerate() {
        let start = word_index * 64;
        let mut null = 0u64;
        for (bit, slot) in out_chunk.iter_mut().enumerate() {
            let row = start + bit;
            match exact::ang_sep(lon1.get(row), lat1.get(row), lon2.get(row), lat2.get(row)) {
                Some(degrees) => *slot = degrees,
                None => {
                    *slot = 0.0;
                    null |= 1u64 << bit;
                }
            }
        }
        validity[word_index] &= !null;
    }
    Ok(())
}

/// The comparison of [`ang_sep_within`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Within {
    /// `angSep(...) < r`.
    Less,
    /// `angSep(...) <= r`.
    LessOrEqual,
}

impl Within {
    #[inline(always)]
    pub(crate) fn holds(self, ang_sep_deg: f64, radius_deg: f64) -> bool {
        match self {
            Within::Less => ang_sep_deg < radius_deg,
            Within::LessOrEqual => ang_sep_deg <= radius_deg,
        }
    }
}

/// `scisql_angSep(lon, lat, center_lon, center_lat) < radius_deg` (or
/// `<=`) as a predicate over `n` positions, with the result of the SQL
/// comparison: NULL where `angSep` is NULL (invalid position; every row for
/// an invalid center), else whether the comparison holds (so a NaN radius
/// gives 0). The decisions are those of sciSQL's `angSep` followed by the
/// comparison, evaluated in f64, for every row.
///
/// Rows outside a latitude band and longitude window around the cone are
/// decided without trigonometry; `vectors` (unit vectors of the same
/// positions), if given, decide the rest with a chord test and leave only
/// rows within ~1e-12 relative of the boundary to the haversine.
#[allow(clippy::too_many_arguments)]
pub fn ang_sep_within(
    lon: &[f64],
    lat: &[f64],
    vectors: Option<&Vectors<'_>>,
    center_lon: f64,
    center_lat: f64,
    radius_deg: f64,
    comparison: Within,
    out: &mut [u64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    let n = lon.len();
    check_len(n, lat.len())?;
    check_bitmap(n, out)?;
    check_bitmap(n, validity)?;
    if let Some(vectors) = vectors {
        check_len(n, vectors.len())?;
    }
    if !valid_position(center_lon, center_lat) {
        return eval_rows(n, out, validity, |_| None);
    }
    // angSep lies in [0, 180]: a radius outside that range decides every
    // valid row (and NaN none).
    let always = match comparison {
        Within::Less => radius_deg > 180.0,
        Within::LessOrEqual => radius_deg >= 180.0,
    };
    if radius_deg.is_nan() || radius_deg < 0.0 || always {
        let value = always;
        return eval_rows(n, out, validity, |row| {
            valid_position(lon[row], lat[row]).then_some(value)
        });
    }
    let window = CapWindow::new(center_lon, center_lat, radius_deg);
    let center = exact::sctov3(center_lon, center_lat);
    let half = (radius_deg * 0.5 * exact::RAD_PER_DEG).sin();
    let radius_chord2 = 4.0 * half * half;
    let margin = CHORD2_MARGIN_PER_CHORD * radius_chord2.sqrt() + CHORD2_MARGIN_ABS;
    // The chord shortcut is trusted below 90° (chord² is monotone in the
    // angle on [0, 180], but keep the margins' analysis simple).
    let use_vectors = vectors.filter(|_| radius_deg <= 90.0);
    let decide_exact = |row: usize| {
        comparison.holds(
            sc_angsep(lon[row], lat[row], center_lon, center_lat),
            radius_deg,
        )
    };
    for (word_index, (lon_chunk, lat_chunk)) in lon.chunks(64).zip(lat.chunks(64)).enumerate() {
        let mut valid_bits = 0u64;
        let mut candidate_bits = 0u64;
        for (bit, (&lon, &lat)) in lon_chunk.iter().zip(lat_chunk).enumerate() {
            let valid = valid_position(lon, lat);
            valid_bits |= u64::from(valid) << bit;
            candidate_bits |= u64::from(valid & window.passes(lon, lat)) << bit;
        }
        let mask = word_mask(n, word_index);
        validity[word_index] &= valid_bits | !mask;
        let mut result = 0u64;
        let mut rest = candidate_bits;
        while rest != 0 {
            let bit = rest.trailing_zeros();
            let row = word_index * 64 + bit as usize;
            let inside = match use_vectors {
                Some(vectors) if lon[row].abs() <= RELIABLE_LON_DEG => {
                    let d2 = chord2(vectors.get(row), center);
                    if d2 < radius_chord2 - margin {
                        true
                    } else if d2 > radius_chord2 + margin {
                        false
                    } else {
                        decide_exact(row)
                    }
                }
                _ => decide_exact(row),
            };
            result |= u64::from(inside) << bit;
            rest &= rest - 1;
        }
        out[word_index] = result;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ang_sep_nulls_and_constants() {
        let lat = [0.0, 91.0, f64::NAN, 45.0];
        let mut out = [9.0; 4];
        let mut validity = [u64::MAX];
        ang_sep(
            F64Arg::Scalar(0.0),
            F64Arg::Column(&lat),
            F64Arg::Scalar(90.0),
            F64Arg::Scalar(0.0),
            &mut out,
            &mut validity,
        )
        .unwrap();
        assert!((out[0] - 90.0).abs() < 1e-12);
        assert_eq!((out[1], out[2]), (0.0, 0.0));
        assert_eq!(validity[0] & 0b1111, 0b1001);
        assert!((out[3] - 90.0).abs() < 1e-12);
        assert!(
            ang_sep(
                F64Arg::Column(&[0.0]),
                F64Arg::Scalar(0.0),
                F64Arg::Scalar(0.0),
                F64Arg::Scalar(0.0),
                &mut out,
                &mut validity
            )
            .is_err()
        );
    }

    #[test]
    fn within_special_radii() {
        let lon = [0.0, 180.0, 0.0];
        let lat = [0.0, 0.0, 95.0];
        let mut out = [0u64];
        let mut validity = [u64::MAX];
        ang_sep_within(
            &lon,
            &lat,
            None,
            0.0,
            0.0,
            180.0,
            Within::Less,
            &mut out,
            &mut validity,
        )
        .unwrap();
        assert_eq!((out[0], validity[0] & 0b111), (0b01, 0b011));
        ang_sep_within(
            &lon,
            &lat,
            None,
            0.0,
            0.0,
            180.0,
            Within::LessOrEqual,
            &mut out,
            &mut validity,
        )
        .unwrap();
        assert_eq!(out[0], 0b11);
        ang_sep_within(
            &lon,
            &lat,
            None,
            0.0,
            0.0,
            f64::NAN,
            Within::LessOrEqual,
            &mut out,
            &mut validity,
        )
        .unwrap();
        assert_eq!(out[0], 0);
        let mut validity = [u64::MAX];
        ang_sep_within(
            &lon,
            &lat,
            None,
            0.0,
            99.0,
            1.0,
            Within::Less,
            &mut out,
            &mut validity,
        )
        .unwrap();
        assert_eq!((out[0], validity[0] & 0b111), (0, 0));
    }
}
