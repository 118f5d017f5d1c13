//! The sciSQL functions (BRIEF §3) over datums: constants stay constants
//! (so a cone's center and radius prepare one predicate per batch), columns
//! go to the vectorized kernels of [`crate::spatial`] and [`crate::scisql`].

use std::borrow::Cow;

use skyscan_format::{Bitmap, BoolColumn, ColumnData, PrimitiveColumn};

use crate::batch::and_validity;
use crate::build::f64_values;
use crate::error::{KernelError, Result};
use crate::expr::Func;
use crate::spatial::ang_sep::{Within, ang_sep, ang_sep_within};
use crate::spatial::regions::{s2_pt_in_box, s2_pt_in_circle, s2_pt_in_cpoly, s2_pt_in_ellipse};
use crate::spatial::{F64Arg, SpatialError, mask_null_inputs};
use crate::value::Datum;

/// One argument prepared for the kernels.
enum Prepared<'a> {
    /// A constant (`None`: NULL).
    Scalar(Option<f64>),
    /// Values of a column (NULL slots arbitrary).
    Column(Cow<'a, [f64]>),
}

impl Prepared<'_> {
    fn arg(&self) -> F64Arg<'_> {
        match self {
            Prepared::Scalar(v) => F64Arg::Scalar(v.unwrap_or(0.0)),
            Prepared::Column(values) => F64Arg::Column(values),
        }
    }
}

fn spatial_error(func: Func, err: SpatialError) -> KernelError {
    KernelError::InvalidArgument(format!("{}: {err:?}", func.name()))
}

/// The words of a validity bitmap for `rows` rows (`None` = all valid).
fn validity_words(validity: Option<&Bitmap>, rows: usize) -> Vec<u64> {
    match validity {
        Some(v) => v.words().to_vec(),
        None => Bitmap::new_set(rows).words().to_vec(),
    }
}

fn into_validity(words: Vec<u64>, rows: usize) -> Option<Bitmap> {
    let bitmap = Bitmap::from_words(words, rows);
    (bitmap.count_ones() != rows).then_some(bitmap)
}

/// Evaluates a sciSQL function over its argument datums for `rows` rows.
pub fn call(func: Func, values: &[Datum<'_>], rows: usize) -> Result<ColumnData> {
    let prepared: Vec<Prepared<'_>> = values
        .iter()
        .map(|value| match value {
            Datum::Scalar(s) => Prepared::Scalar(s.to_f64()),
            Datum::Column(c) => Prepared::Column(f64_values(c)),
        })
        .collect();
    let input_validity = values
        .iter()
        .fold(None, |acc: Option<Bitmap>, value| match value {
            Datum::Column(c) => and_validity(acc.as_ref(), c.validity()),
            Datum::Scalar(_) => acc,
        });
    let null_constant = prepared.iter().any(|p| matches!(p, Prepared::Scalar(None)));
    let args: Vec<F64Arg<'_>> = prepared.iter().map(Prepared::arg).collect();
    match func {
        Func::PtInBox | Func::PtInCircle | Func::PtInEllipse | Func::PtInCPoly => {
            let words = rows.div_ceil(64);
            if null_constant {
                // sciSQL: a NULL argument gives 0.
                return Ok(ColumnData::Bool(BoolColumn {
                    values: Bitmap::new_unset(rows),
                    validity: None,
                }));
            }
            let mut out = vec![0u64; words];
            let mut validity = validity_words(None, rows);
            let outcome = match func {
                Func::PtInBox => s2_pt_in_box(
                    rows,
                    args[0],
                    args[1],
                    args[2],
                    args[3],
                    args[4],
                    args[5],
                    &mut out,
                    &mut validity,
                ),
                Func::PtInCircle => s2_pt_in_circle(
                    rows,
                    args[0],
                    args[1],
                    args[2],
                    args[3],
                    args[4],
                    &mut out,
                    &mut validity,
                ),
                Func::PtInEllipse => s2_pt_in_ellipse(
                    rows,
                    args[0],
                    args[1],
                    args[2],
                    args[3],
                    args[4],
                    args[5],
                    args[6],
                    &mut out,
                    &mut validity,
                ),
                _ => {
                    let vertices: Vec<(F64Arg<'_>, F64Arg<'_>)> =
                        args[2..].chunks(2).map(|p| (p[0], p[1])).collect();
                    s2_pt_in_cpoly(rows, args[0], args[1], &vertices, &mut out, &mut validity)
                }
            };
            outcome.map_err(|e| spatial_error(func, e))?;
            if let Some(input) = &input_validity {
                mask_null_inputs(rows, &mut out, &mut validity, input.words())
                    .map_err(|e| spatial_error(func, e))?;
            }
            Ok(ColumnData::Bool(BoolColumn {
                values: Bitmap::from_words(out, rows),
                validity: into_validity(validity, rows),
            }))
        }
        Func::AngSep | Func::Photometry(_) => {
            if null_constant {
                return Ok(ColumnData::F64(PrimitiveColumn {
                    values: vec![0.0; rows],
                    validity: Some(Bitmap::new_unset(rows)),
                }));
            }
            let mut out = vec![0.0; rows];
            let mut validity = validity_words(input_validity.as_ref(), rows);
            let outcome = match func {
                Func::AngSep => {
                    ang_sep(args[0], args[1], args[2], args[3], &mut out, &mut validity)
                }
                Func::Photometry(p) => p.eval(&args, &mut out, &mut validity),
                _ => Ok(()),
            };
            outcome.map_err(|e| spatial_error(func, e))?;
            Ok(ColumnData::F64(PrimitiveColumn {
                values: out,
                validity: into_validity(validity, rows),
            }))
        }
        other => Err(KernelError::Internal(format!(
            "{} is not a sciSQL function",
            other.name()
        ))),
    }
}

/// `scisql_angSep(lon, lat, c1, c2) < r` (or `<=`) with a constant center
/// and radius: the cone filter, decided mostly without trigonometry.
/// Returns `None` when the shape does not apply.
pub fn ang_sep_cone(
    lon: &Datum<'_>,
    lat: &Datum<'_>,
    center_lon: f64,
    center_lat: f64,
    radius_deg: f64,
    inclusive: bool,
    rows: usize,
) -> Result<Option<ColumnData>> {
    let (Datum::Column(lon), Datum::Column(lat)) = (lon, lat) else {
        return Ok(None);
    };
    let (lon_values, lat_values) = (f64_values(lon), f64_values(lat));
    let words = rows.div_ceil(64);
    let mut out = vec![0u64; words];
    let input = and_validity(lon.validity(), lat.validity());
    let mut validity = validity_words(input.as_ref(), rows);
    let comparison = if inclusive {
        Within::LessOrEqual
    } else {
        Within::Less
    };
    ang_sep_within(
        &lon_values,
        &lat_values,
        None,
        center_lon,
        center_lat,
        radius_deg,
        comparison,
        &mut out,
        &mut validity,
    )
    .map_err(|e| spatial_error(Func::AngSep, e))?;
    // NULL input rows stay NULL (the comparison of a NULL angSep).
    if let Some(input) = &input {
        for (word, valid) in out.iter_mut().zip(input.words()) {
            *word &= valid;
        }
    }
    Ok(Some(ColumnData::Bool(BoolColumn {
        values: Bitmap::from_words(out, rows),
        validity: into_validity(validity, rows),
    })))
}
