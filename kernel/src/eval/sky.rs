//! The sciSQL functions (BRIEF §3): sky geometry and photometry.
//!
//! Sky predicates take their region from constant arguments (the usual
//! case: the region is built once per batch) or, when an argument is a
//! column, row by row.

use skyscan_format::{Bitmap, BoolColumn, ColumnData, PrimitiveColumn};
use skyscan_sky::{Circle, ConvexPolygon, Ellipse, Region, SkyBox};

use crate::batch::{and_validity, bitmap_from_fn};
use crate::build::f64_values;
use crate::error::{KernelError, Result};
use crate::expr::Func;

fn all_validity(args: &[ColumnData]) -> Option<Bitmap> {
    args.iter()
        .fold(None, |acc, c| and_validity(acc.as_ref(), c.validity()))
}

fn valid(validity: Option<&Bitmap>, row: usize) -> bool {
    validity.is_none_or(|v| v.get(row))
}

/// Whether every row of `column` holds the same value as row 0 (a constant
/// argument repeated by the caller).
fn constant(column: &[f64]) -> bool {
    column
        .first()
        .is_some_and(|first| column.iter().all(|v| v.to_bits() == first.to_bits()))
}

/// The region of a predicate's arguments after the point, at `row`.
fn region_at(func: Func, values: &[std::borrow::Cow<'_, [f64]>], row: usize) -> Result<Region> {
    let v: Vec<f64> = values.iter().map(|c| c[row]).collect();
    let invalid =
        |e: skyscan_sky::SkyError| KernelError::InvalidArgument(format!("{}: {e}", func.name()));
    Ok(match func {
        Func::PtInBox => Region::Box(SkyBox::new(v[0], v[1], v[2], v[3]).map_err(invalid)?),
        Func::PtInCircle => Region::Circle(Circle::new(v[0], v[1], v[2]).map_err(invalid)?),
        Func::PtInEllipse => {
            Region::Ellipse(Ellipse::new(v[0], v[1], v[2], v[3], v[4]).map_err(invalid)?)
        }
        _ => {
            let vertices: Vec<(f64, f64)> = v.chunks(2).map(|p| (p[0], p[1])).collect();
            Region::Polygon(ConvexPolygon::new(&vertices).map_err(invalid)?)
        }
    })
}

/// `scisql_s2PtIn*(lon, lat, region…)`: 1 inside, 0 outside or for a NULL
/// argument (sciSQL never returns NULL here).
fn point_in(func: Func, args: &[ColumnData], rows: usize) -> Result<ColumnData> {
    let lon = f64_values(&args[0]);
    let lat = f64_values(&args[1]);
    let region_values: Vec<std::borrow::Cow<'_, [f64]>> =
        args[2..].iter().map(f64_values).collect();
    let validity = all_validity(args);
    let constant_region = region_values.iter().all(|c| constant(c))
        && args[2..].iter().all(|c| c.validity().is_none());
    let values = if rows == 0 {
        Bitmap::new_unset(0)
    } else if constant_region {
        let region = region_at(func, &region_values, 0)?;
        let inside: Vec<bool> = (0..rows)
            .map(|row| valid(validity.as_ref(), row) && region.contains(lon[row], lat[row]))
            .collect();
        Bitmap::from_bools(&inside)
    } else {
        let mut inside = Vec::with_capacity(rows);
        for row in 0..rows {
            inside.push(
                valid(validity.as_ref(), row)
                    && region_at(func, &region_values, row)?.contains(lon[row], lat[row]),
            );
        }
        Bitmap::from_bools(&inside)
    };
    Ok(ColumnData::Bool(BoolColumn {
        values,
        validity: None,
    }))
}

fn doubles(values: Vec<f64>, validity: Option<Bitmap>) -> ColumnData {
    ColumnData::F64(PrimitiveColumn { values, validity })
}

/// Evaluates a sciSQL function over argument columns of `rows` rows.
pub fn call(func: Func, args: &[ColumnData], rows: usize) -> Result<ColumnData> {
    let arg = |i: usize| f64_values(&args[i]);
    let validity = all_validity(args);
    Ok(match func {
        Func::PtInBox | Func::PtInCircle | Func::PtInEllipse | Func::PtInCPoly => {
            point_in(func, args, rows)?
        }
        Func::AngSep => {
            let (lon1, lat1, lon2, lat2) = (arg(0), arg(1), arg(2), arg(3));
            let mut ok = Vec::with_capacity(rows);
            let values = (0..rows)
                .map(|row| {
                    let d = skyscan_sky::ang_sep_deg(lon1[row], lat1[row], lon2[row], lat2[row]);
                    ok.push(d.is_some());
                    d.unwrap_or(0.0)
                })
                .collect();
            doubles(
                values,
                and_validity(validity.as_ref(), Some(&Bitmap::from_bools(&ok))),
            )
        }
        Func::FluxToAbMag | Func::NanojanskyToAbMag => {
            let f = arg(0);
            let zero_point = if func == Func::FluxToAbMag {
                -48.6
            } else {
                31.4
            };
            let values = f.iter().map(|&v| -2.5 * v.log10() + zero_point).collect();
            let positive = bitmap_from_fn(&f, |v| v > 0.0);
            doubles(values, and_validity(validity.as_ref(), Some(&positive)))
        }
        Func::FluxToAbMagSigma | Func::NanojanskyToAbMagSigma => {
            let (f, sigma) = (arg(0), arg(1));
            let values = f
                .iter()
                .zip(sigma.iter())
                .map(|(&f, &s)| 1.085_736_2 * s / f)
                .collect();
            let nonzero = bitmap_from_fn(&f, |v| v != 0.0);
            doubles(values, and_validity(validity.as_ref(), Some(&nonzero)))
        }
        Func::AbMagToFlux => doubles(
            arg(0)
                .iter()
                .map(|&m| 10f64.powf(-0.4 * (m + 48.6)))
                .collect(),
            validity,
        ),
        Func::AbMagToNanojansky => doubles(
            arg(0)
                .iter()
                .map(|&m| 10f64.powf(-0.4 * (m - 31.4)))
                .collect(),
            validity,
        ),
        Func::DnToFlux => {
            let (dn, zero) = (arg(0), arg(1));
            let values = dn
                .iter()
                .zip(zero.iter())
                .map(|(&d, &z)| 3.630_780_547_701_013e-20 * d / z)
                .collect();
            let nonzero = bitmap_from_fn(&zero, |v| v != 0.0);
            doubles(values, and_validity(validity.as_ref(), Some(&nonzero)))
        }
        other => {
            return Err(KernelError::Type(format!(
                "function {} is not available",
                other.name()
            )));
        }
    })
}
