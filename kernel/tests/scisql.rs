//! sciSQL's photometry functions against BRIEF §3's formulas and sciSQL's
//! NULL rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// sciSQL's constants are written with its digits.
#![allow(clippy::excessive_precision)]

use skyscan_kernel::scisql::{
    AB_FLUX_SCALE, Photometry, ab_mag_to_flux, dn_to_flux, flux_to_ab_mag, nanojansky_to_ab_mag,
};
use skyscan_kernel::spatial::F64Arg;

/// Evaluates a function over rows given as argument tuples; `None` = NULL.
fn eval(f: Photometry, rows: &[[f64; 4]]) -> Vec<Option<f64>> {
    let columns: Vec<Vec<f64>> = (0..f.arity())
        .map(|arg| rows.iter().map(|row| row[arg]).collect())
        .collect();
    let args: Vec<F64Arg> = columns.iter().map(|c| F64Arg::Column(c)).collect();
    let mut out = vec![f64::NAN; rows.len()];
    let mut validity = vec![u64::MAX; rows.len().div_ceil(64)];
    f.eval(&args, &mut out, &mut validity).unwrap();
    (0..rows.len())
        .map(|i| (validity[i / 64] >> (i % 64) & 1 == 1).then_some(out[i]))
        .collect()
}

const SPECIALS: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

#[test]
fn magnitudes_from_fluxes() {
    let fluxes = [1e-30, 3.63e-20, 1e-25, 2.5, 1e300];
    let rows: Vec<[f64; 4]> = fluxes.iter().map(|&f| [f, 0.0, 0.0, 0.0]).collect();
    for (got, &f) in eval(Photometry::FluxToAbMag, &rows)
        .into_iter()
        .zip(&fluxes)
    {
        assert_eq!(got, Some(-2.5 * f.log10() - 48.6));
    }
    for (got, &f) in eval(Photometry::NanojanskyToAbMag, &rows)
        .into_iter()
        .zip(&fluxes)
    {
        assert_eq!(got, Some(-2.5 * f.log10() + 31.4));
    }
    // 3631 Jy is AB magnitude 0, in both units.
    let zero = eval(Photometry::NanojanskyToAbMag, &[[3631.0e9, 0.0, 0.0, 0.0]])[0].unwrap();
    assert!(zero.abs() < 1e-3, "{zero}");
    let zero = eval(Photometry::FluxToAbMag, &[[AB_FLUX_SCALE, 0.0, 0.0, 0.0]])[0].unwrap();
    assert!(zero.abs() < 1e-12, "{zero}");
    // NULL for f <= 0 and for specials.
    for f in [0.0, -0.0, -1.0, SPECIALS[0], SPECIALS[1], SPECIALS[2]] {
        for func in [Photometry::FluxToAbMag, Photometry::NanojanskyToAbMag] {
            assert_eq!(eval(func, &[[f, 0.0, 0.0, 0.0]]), [None], "{func:?}({f})");
        }
    }
}

#[test]
fn magnitude_sigmas() {
    for func in [
        Photometry::FluxToAbMagSigma,
        Photometry::NanojanskyToAbMagSigma,
    ] {
        let got = eval(func, &[[2.0, 0.1, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]);
        assert_eq!(got[0], Some(1.085736204758129569 * 0.1 / 2.0));
        assert!((got[0].unwrap() - 1.0857362 * 0.1 / 2.0).abs() < 1e-8);
        assert_eq!(got[1], Some(0.0));
        for bad in [
            [0.0, 0.1],
            [-1.0, 0.1],
            [1.0, -0.1],
            [f64::NAN, 0.1],
            [1.0, f64::INFINITY],
        ] {
            assert_eq!(
                eval(func, &[[bad[0], bad[1], 0.0, 0.0]]),
                [None],
                "{func:?}{bad:?}"
            );
        }
    }
    // flux <-> magnitude sigma round trip.
    let mag_sigma = eval(
        Photometry::AbMagToNanojanskySigma,
        &[[20.0, 0.01, 0.0, 0.0]],
    )[0]
    .unwrap();
    let flux = eval(Photometry::AbMagToNanojansky, &[[20.0, 0.0, 0.0, 0.0]])[0].unwrap();
    let back = eval(
        Photometry::NanojanskyToAbMagSigma,
        &[[flux, mag_sigma, 0.0, 0.0]],
    )[0]
    .unwrap();
    assert!((back - 0.01).abs() < 1e-15, "{back}");
    assert_eq!(
        eval(Photometry::AbMagToFluxSigma, &[[20.0, -1.0, 0.0, 0.0]]),
        [None]
    );
}

#[test]
fn fluxes_from_magnitudes() {
    let mags = [-10.0, 0.0, 20.5, 31.4, 100.0];
    let rows: Vec<[f64; 4]> = mags.iter().map(|&m| [m, 0.0, 0.0, 0.0]).collect();
    for (got, &m) in eval(Photometry::AbMagToFlux, &rows).into_iter().zip(&mags) {
        assert_eq!(got, Some(10.0f64.powf(-0.4 * (m + 48.6))));
    }
    for (got, &m) in eval(Photometry::AbMagToNanojansky, &rows)
        .into_iter()
        .zip(&mags)
    {
        assert_eq!(got, Some(10.0f64.powf(-0.4 * (m - 31.4))));
    }
    // Round trips.
    for &m in &mags {
        let f = eval(Photometry::AbMagToFlux, &[[m, 0.0, 0.0, 0.0]])[0].unwrap();
        let back = eval(Photometry::FluxToAbMag, &[[f, 0.0, 0.0, 0.0]])[0].unwrap();
        assert!((back - m).abs() < 1e-12, "{m} -> {f} -> {back}");
    }
    // Overflow to inf is NULL (MySQL has no inf), underflow to 0 is a value.
    assert_eq!(
        eval(Photometry::AbMagToFlux, &[[-1000.0, 0.0, 0.0, 0.0]]),
        [None]
    );
    assert_eq!(
        eval(Photometry::AbMagToFlux, &[[1000.0, 0.0, 0.0, 0.0]]),
        [Some(0.0)]
    );
    for m in SPECIALS {
        assert_eq!(
            eval(Photometry::AbMagToNanojansky, &[[m, 0.0, 0.0, 0.0]]),
            [None]
        );
    }
}

#[test]
fn raw_counts() {
    let got = eval(Photometry::DnToFlux, &[[1000.0, 3.0e12, 0.0, 0.0]])[0].unwrap();
    assert_eq!(got, AB_FLUX_SCALE * 1000.0 / 3.0e12);
    // BRIEF's shorter literal is within an ulp of sciSQL's constant.
    assert!((AB_FLUX_SCALE - 3.630780547701013e-20).abs() <= f64::EPSILON * AB_FLUX_SCALE);
    assert!((AB_FLUX_SCALE / 10.0f64.powf(-48.6 / 2.5) - 1.0).abs() < 1e-13);
    for fm0 in [0.0, -1.0, f64::NAN] {
        assert_eq!(
            eval(Photometry::DnToFlux, &[[1000.0, fm0, 0.0, 0.0]]),
            [None]
        );
        assert_eq!(
            eval(Photometry::FluxToDn, &[[1e-29, fm0, 0.0, 0.0]]),
            [None]
        );
        assert_eq!(
            eval(Photometry::AbMagToDn, &[[20.0, fm0, 0.0, 0.0]]),
            [None]
        );
        assert_eq!(
            eval(Photometry::DnToAbMag, &[[1000.0, fm0, 0.0, 0.0]]),
            [None]
        );
    }
    // dn <= 0 has no magnitude: NULL (log of a non-positive flux).
    assert_eq!(
        eval(Photometry::DnToAbMag, &[[0.0, 3.0e12, 0.0, 0.0]]),
        [None]
    );
    assert_eq!(
        eval(Photometry::DnToAbMag, &[[-5.0, 3.0e12, 0.0, 0.0]]),
        [None]
    );
    // dn -> flux -> dn and mag -> dn -> mag.
    let flux = eval(Photometry::DnToFlux, &[[1234.5, 3.0e12, 0.0, 0.0]])[0].unwrap();
    let dn = eval(Photometry::FluxToDn, &[[flux, 3.0e12, 0.0, 0.0]])[0].unwrap();
    assert!((dn - 1234.5).abs() < 1e-9);
    let dn = eval(Photometry::AbMagToDn, &[[20.0, 3.0e12, 0.0, 0.0]])[0].unwrap();
    let mag = eval(Photometry::DnToAbMag, &[[dn, 3.0e12, 0.0, 0.0]])[0].unwrap();
    assert!((mag - 20.0).abs() < 1e-12);
    // Sigmas: sciSQL's hypot of the two error terms.
    let sigma = eval(Photometry::DnToFluxSigma, &[[1000.0, 30.0, 3.0e12, 4.0e10]])[0].unwrap();
    let expected = AB_FLUX_SCALE * (1000.0f64 * 4.0e10).hypot(30.0 * 3.0e12) / (3.0e12f64 * 3.0e12);
    assert!((sigma - expected).abs() <= 1e-15 * expected);
    let sigma = eval(Photometry::FluxToDnSigma, &[[1e-29, 1e-31, 3.0e12, 4.0e10]])[0].unwrap();
    let expected = (1e-29f64 * 4.0e10).hypot(3.0e12 * 1e-31) / AB_FLUX_SCALE;
    assert!((sigma - expected).abs() <= 1e-15 * expected);
    let mag_sigma = eval(Photometry::DnToAbMagSigma, &[[1000.0, 30.0, 3.0e12, 0.0]])[0].unwrap();
    assert!((mag_sigma - 1.085736204758129569 * 30.0 / 1000.0).abs() < 1e-15);
    let dn_sigma = eval(Photometry::AbMagToDnSigma, &[[20.0, 0.01, 3.0e12, 0.0]])[0].unwrap();
    let dn = eval(Photometry::AbMagToDn, &[[20.0, 3.0e12, 0.0, 0.0]])[0].unwrap();
    assert!((dn_sigma - 0.01 * dn * 0.9210340371976182736).abs() < 1e-9 * dn_sigma);
    for func in [
        Photometry::DnToFluxSigma,
        Photometry::DnToAbMagSigma,
        Photometry::FluxToDnSigma,
        Photometry::AbMagToDnSigma,
    ] {
        for bad in [
            [1.0, -1.0, 1.0, 0.0],
            [1.0, 1.0, 0.0, 0.0],
            [1.0, 1.0, 1.0, -1.0],
        ] {
            assert_eq!(eval(func, &[bad]), [None], "{func:?}{bad:?}");
        }
        assert_eq!(eval(func, &[[f64::NAN, 1.0, 1.0, 1.0]]), [None]);
    }
}

#[test]
fn column_and_scalar_arguments_and_the_null_convention() {
    let flux = [1.0e-29, -1.0, 2.0e-29];
    let mut out = [7.0; 3];
    // Row 2 is already NULL (a NULL input): it must stay NULL.
    let mut validity = [0b011u64];
    flux_to_ab_mag(F64Arg::Column(&flux), &mut out, &mut validity).unwrap();
    assert_eq!(validity[0], 0b001);
    assert_eq!(out[0], -2.5 * 1.0e-29f64.log10() - 48.6);
    assert_eq!(out[1], 0.0);
    let mut validity = [u64::MAX];
    nanojansky_to_ab_mag(F64Arg::Scalar(1.0), &mut out, &mut validity).unwrap();
    assert_eq!(out, [31.4; 3]);
    ab_mag_to_flux(F64Arg::Scalar(0.0), &mut out, &mut validity).unwrap();
    assert_eq!(out[0], 10.0f64.powf(-0.4 * 48.6));
    let dn = [1.0, 2.0, 3.0];
    dn_to_flux(
        F64Arg::Column(&dn),
        F64Arg::Scalar(2.0),
        &mut out,
        &mut validity,
    )
    .unwrap();
    assert_eq!(out[2], AB_FLUX_SCALE * 3.0 / 2.0);
    assert!(flux_to_ab_mag(F64Arg::Column(&[1.0]), &mut out, &mut validity).is_err());
    assert!(flux_to_ab_mag(F64Arg::Scalar(1.0), &mut out, &mut []).is_err());
}
