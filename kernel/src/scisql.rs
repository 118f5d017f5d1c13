//! sciSQL's photometry functions (`scisql_fluxToAbMag` and the rest), over
//! columns, with sciSQL's NULL rules; and a name table for the planner.
//!
//! The formulas are sciSQL's (`src/photometry.h`, constants included); the
//! NULL rules those of its current UDFs (`src/udfs/*.c`, which check every
//! argument and the result since the nanojansky functions were added):
//!
//! * NULL if any argument is NULL, NaN or ±inf;
//! * NULL if a flux argument of a magnitude conversion is <= 0, a sigma is
//!   < 0, or a `fluxMag0` is <= 0 (per function, below);
//! * NULL if the result is not finite (log10 of 0, overflow of pow, …).
//!
//! Where the stored sciSQL sources predate these checks (`fluxToAbMag`,
//! `abMagToFluxSigma`, `dnToAbMag(Sigma)`, `abMagToDnSigma`, which only test
//! for NULL), the same rules are applied: they are what their documentation
//! states ("If any argument is NULL, NaN, or +/-Inf, NULL is returned") and
//! what BRIEF §3 asks (`fluxToAbMag` NULL for f <= 0); MySQL itself cannot
//! hold NaN or ±inf, so a non-finite result has no other representation.
//!
//! NULL convention: see [`crate::spatial`] — `out` is written for every row
//! (0.0 where NULL) and validity bits are only cleared.

use crate::spatial::{F64Arg, SpatialError, check_args, check_bitmap};

/// 2.5 / ln(10) (`SCISQL_5_OVER_2LOG10`).
#[allow(clippy::excessive_precision)]
pub const FIVE_OVER_2LOG10: f64 = 1.085736204758129569;
/// ln(10) / 2.5 (`SCISQL_2LOG10_OVER_5`).
#[allow(clippy::excessive_precision)]
pub const TWO_LOG10_OVER_5: f64 = 0.9210340371976182736;
/// 10^(−48.6/2.5), the AB flux of magnitude 0 in erg/cm²/s/Hz
/// (`SCISQL_AB_FLUX_SCALE`).
#[allow(clippy::excessive_precision)]
pub const AB_FLUX_SCALE: f64 = 3.630780547701013425e-20;

/// `scisql_hypot`: sciSQL's own hypotenuse (not libm's), reproduced for
/// bit-identical sigmas.
#[inline]
pub fn scisql_hypot(a: f64, b: f64) -> f64 {
    let (a, b) = if a.abs() < b.abs() { (b, a) } else { (a, b) };
    if a == 0.0 {
        return 0.0;
    }
    let q = b / a;
    a.abs() * (1.0 + q * q).sqrt()
}

#[inline]
fn flux2ab(flux: f64) -> f64 {
    -2.5 * flux.log10() - 48.6
}

#[inline]
fn nanojansky2ab(flux: f64) -> f64 {
    -2.5 * flux.log10() + 31.4
}

#[inline]
fn flux2absigma(flux: f64, sigma: f64) -> f64 {
    FIVE_OVER_2LOG10 * sigma / flux
}

#[inline]
fn dn2flux(dn: f64, fluxmag0: f64) -> f64 {
    AB_FLUX_SCALE * dn / fluxmag0
}

#[inline]
fn dn2fluxsigma(dn: f64, dnsigma: f64, fluxmag0: f64, fluxmag0sigma: f64) -> f64 {
    AB_FLUX_SCALE * scisql_hypot(dn * fluxmag0sigma, dnsigma * fluxmag0) / (fluxmag0 * fluxmag0)
}

#[inline]
fn flux2dn(flux: f64, fluxmag0: f64) -> f64 {
    flux * fluxmag0 / AB_FLUX_SCALE
}

#[inline]
fn flux2dnsigma(flux: f64, fluxsigma: f64, fluxmag0: f64, fluxmag0sigma: f64) -> f64 {
    scisql_hypot(flux * fluxmag0sigma, fluxmag0 * fluxsigma) / AB_FLUX_SCALE
}

#[inline]
fn ab2flux(mag: f64) -> f64 {
    10.0f64.powf(-0.4 * (mag + 48.6))
}

#[inline]
fn ab2nanojansky(mag: f64) -> f64 {
    10.0f64.powf(-0.4 * (mag - 31.4))
}

/// The photometry functions of sciSQL, by SQL name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Photometry {
    /// `scisql_fluxToAbMag(flux)`: −2.5·log10(flux) − 48.6; NULL if flux <= 0.
    FluxToAbMag,
    /// `scisql_fluxToAbMagSigma(flux, fluxSigma)`: 1.0857·σ/flux; NULL if
    /// flux <= 0 or σ < 0.
    FluxToAbMagSigma,
    /// `scisql_nanojanskyToAbMag(flux)`: −2.5·log10(flux) + 31.4; NULL if
    /// flux <= 0.
    NanojanskyToAbMag,
    /// `scisql_nanojanskyToAbMagSigma(flux, fluxSigma)`: 1.0857·σ/flux;
    /// NULL if flux <= 0 or σ < 0.
    NanojanskyToAbMagSigma,
    /// `scisql_abMagToFlux(mag)`: 10^(−0.4(mag + 48.6)).
    AbMagToFlux,
    /// `scisql_abMagToFluxSigma(mag, magSigma)`: σ·flux(mag)·ln(10)/2.5;
    /// NULL if σ < 0.
    AbMagToFluxSigma,
    /// `scisql_abMagToNanojansky(mag)`: 10^(−0.4(mag − 31.4)).
    AbMagToNanojansky,
    /// `scisql_abMagToNanojanskySigma(mag, magSigma)`; NULL if σ < 0.
    AbMagToNanojanskySigma,
    /// `scisql_dnToFlux(dn, fluxMag0)`: 3.6308e-20·dn/fluxMag0; NULL if
    /// fluxMag0 <= 0.
    DnToFlux,
    /// `scisql_dnToFluxSigma(dn, dnSigma, fluxMag0, fluxMag0Sigma)`; NULL
    /// if a sigma < 0 or fluxMag0 <= 0.
    DnToFluxSigma,
    /// `scisql_dnToAbMag(dn, fluxMag0)`: fluxToAbMag(dnToFlux(…)); NULL if
    /// fluxMag0 <= 0 (and, the result being non-finite, if dn <= 0).
    DnToAbMag,
    /// `scisql_dnToAbMagSigma(dn, dnSigma, fluxMag0, fluxMag0Sigma)`; NULL
    /// if a sigma < 0 or fluxMag0 <= 0.
    DnToAbMagSigma,
    /// `scisql_fluxToDn(flux, fluxMag0)`: flux·fluxMag0/3.6308e-20; NULL if
    /// fluxMag0 <= 0.
    FluxToDn,
    /// `scisql_fluxToDnSigma(flux, fluxSigma, fluxMag0, fluxMag0Sigma)`;
    /// NULL if a sigma < 0 or fluxMag0 <= 0.
    FluxToDnSigma,
    /// `scisql_abMagToDn(mag, fluxMag0)`; NULL if fluxMag0 <= 0.
    AbMagToDn,
    /// `scisql_abMagToDnSigma(mag, magSigma, fluxMag0, fluxMag0Sigma)`;
    /// NULL if a sigma < 0 or fluxMag0 <= 0.
    AbMagToDnSigma,
}

impl Photometry {
    /// Every function, in sciSQL's documentation order.
    pub const ALL: [Photometry; 16] = [
        Photometry::FluxToAbMag,
        Photometry::FluxToAbMagSigma,
        Photometry::NanojanskyToAbMag,
        Photometry::NanojanskyToAbMagSigma,
        Photometry::AbMagToFlux,
        Photometry::AbMagToFluxSigma,
        Photometry::AbMagToNanojansky,
        Photometry::AbMagToNanojanskySigma,
        Photometry::DnToFlux,
        Photometry::DnToFluxSigma,
        Photometry::DnToAbMag,
        Photometry::DnToAbMagSigma,
        Photometry::FluxToDn,
        Photometry::FluxToDnSigma,
        Photometry::AbMagToDn,
        Photometry::AbMagToDnSigma,
    ];

    /// The SQL name, with sciSQL's `scisql_` prefix.
    pub fn sql_name(self) -> &'static str {
        match self {
            Photometry::FluxToAbMag => "scisql_fluxToAbMag",
            Photometry::FluxToAbMagSigma => "scisql_fluxToAbMagSigma",
            Photometry::NanojanskyToAbMag => "scisql_nanojanskyToAbMag",
            Photometry::NanojanskyToAbMagSigma => "scisql_nanojanskyToAbMagSigma",
            Photometry::AbMagToFlux => "scisql_abMagToFlux",
            Photometry::AbMagToFluxSigma => "scisql_abMagToFluxSigma",
            Photometry::AbMagToNanojansky => "scisql_abMagToNanojansky",
            Photometry::AbMagToNanojanskySigma => "scisql_abMagToNanojanskySigma",
            Photometry::DnToFlux => "scisql_dnToFlux",
            Photometry::DnToFluxSigma => "scisql_dnToFluxSigma",
            Photometry::DnToAbMag => "scisql_dnToAbMag",
            Photometry::DnToAbMagSigma => "scisql_dnToAbMagSigma",
            Photometry::FluxToDn => "scisql_fluxToDn",
            Photometry::FluxToDnSigma => "scisql_fluxToDnSigma",
            Photometry::AbMagToDn => "scisql_abMagToDn",
            Photometry::AbMagToDnSigma => "scisql_abMagToDnSigma",
        }
    }

    /// The function of an SQL name (case-insensitive, as MySQL function
    /// names are), or `None`.
    pub fn from_sql_name(name: &str) -> Option<Photometry> {
        Photometry::ALL
            .into_iter()
            .find(|f| f.sql_name().eq_ignore_ascii_case(name))
    }

    /// Number of arguments.
    pub fn arity(self) -> usize {
        match self {
            Photometry::FluxToAbMag
            | Photometry::NanojanskyToAbMag
            | Photometry::AbMagToFlux
            | Photometry::AbMagToNanojansky => 1,
            Photometry::FluxToAbMagSigma
            | Photometry::NanojanskyToAbMagSigma
            | Photometry::AbMagToFluxSigma
            | Photometry::AbMagToNanojanskySigma
            | Photometry::DnToFlux
            | Photometry::DnToAbMag
            | Photometry::FluxToDn
            | Photometry::AbMagToDn => 2,
            Photometry::DnToFluxSigma
            | Photometry::DnToAbMagSigma
            | Photometry::FluxToDnSigma
            | Photometry::AbMagToDnSigma => 4,
        }
    }

    /// The function on one row of finite, non-NULL arguments (`args` has
    /// [`Photometry::arity`] values): `None` is NULL.
    #[inline]
    pub fn eval_row(self, args: &[f64; 4]) -> Option<f64> {
        let [a, b, c, d] = *args;
        let value = match self {
            Photometry::FluxToAbMag => (a > 0.0).then(|| flux2ab(a)),
            Photometry::FluxToAbMagSigma => (a > 0.0 && b >= 0.0).then(|| flux2absigma(a, b)),
            Photometry::NanojanskyToAbMag => (a > 0.0).then(|| nanojansky2ab(a)),
            Photometry::NanojanskyToAbMagSigma => (a > 0.0 && b >= 0.0).then(|| flux2absigma(a, b)),
            Photometry::AbMagToFlux => Some(ab2flux(a)),
            Photometry::AbMagToFluxSigma => (b >= 0.0).then(|| b * ab2flux(a) * TWO_LOG10_OVER_5),
            Photometry::AbMagToNanojansky => Some(ab2nanojansky(a)),
            Photometry::AbMagToNanojanskySigma => {
                (b >= 0.0).then(|| b * ab2nanojansky(a) * TWO_LOG10_OVER_5)
            }
            Photometry::DnToFlux => (b > 0.0).then(|| dn2flux(a, b)),
            Photometry::DnToFluxSigma => {
                (b >= 0.0 && c > 0.0 && d >= 0.0).then(|| dn2fluxsigma(a, b, c, d))
            }
            Photometry::DnToAbMag => (b > 0.0).then(|| flux2ab(dn2flux(a, b))),
            Photometry::DnToAbMagSigma => (b >= 0.0 && c > 0.0 && d >= 0.0)
                .then(|| flux2absigma(dn2flux(a, c), dn2fluxsigma(a, b, c, d))),
            Photometry::FluxToDn => (b > 0.0).then(|| flux2dn(a, b)),
            Photometry::FluxToDnSigma => {
                (b >= 0.0 && c > 0.0 && d >= 0.0).then(|| flux2dnsigma(a, b, c, d))
            }
            Photometry::AbMagToDn => (b > 0.0).then(|| flux2dn(ab2flux(a), b)),
            Photometry::AbMagToDnSigma => (b >= 0.0 && c > 0.0 && d >= 0.0).then(|| {
                let flux = ab2flux(a);
                flux2dnsigma(flux, b * flux * TWO_LOG10_OVER_5, c, d)
            }),
        }?;
        value.is_finite().then_some(value)
    }

    /// The function over `n = out.len()` rows (NULL convention of
    /// [`crate::spatial`]). `args` must have [`Photometry::arity`] entries,
    /// else [`SpatialError::LengthMismatch`] (expected = arity).
    pub fn eval(
        self,
        args: &[F64Arg<'_>],
        out: &mut [f64],
        validity: &mut [u64],
    ) -> Result<(), SpatialError> {
        let arity = self.arity();
        if args.len() != arity {
            return Err(SpatialError::LengthMismatch {
                expected: arity,
                found: args.len(),
            });
        }
        let n = out.len();
        check_args(n, args)?;
        check_bitmap(n, validity)?;
        let mut padded = [F64Arg::Scalar(1.0); 4];
        padded[..arity].copy_from_slice(args);
        for (word_index, out_chunk) in out.chunks_mut(64).enumerate() {
            let start = word_index * 64;
            let mut null = 0u64;
            for (bit, slot) in out_chunk.iter_mut().enumerate() {
                let row = start + bit;
                let values = [
                    padded[0].get(row),
                    padded[1].get(row),
                    padded[2].get(row),
                    padded[3].get(row),
                ];
                let result = if values.iter().all(|v| v.is_finite()) {
                    self.eval_row(&values)
                } else {
                    None
                };
                match result {
                    Some(value) => *slot = value,
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
}

/// `scisql_fluxToAbMag` over a column (see [`Photometry::FluxToAbMag`]).
pub fn flux_to_ab_mag(
    flux: F64Arg<'_>,
    out: &mut [f64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    Photometry::FluxToAbMag.eval(&[flux], out, validity)
}

/// `scisql_nanojanskyToAbMag` over a column (see
/// [`Photometry::NanojanskyToAbMag`]).
pub fn nanojansky_to_ab_mag(
    flux: F64Arg<'_>,
    out: &mut [f64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    Photometry::NanojanskyToAbMag.eval(&[flux], out, validity)
}

/// `scisql_abMagToFlux` over a column (see [`Photometry::AbMagToFlux`]).
pub fn ab_mag_to_flux(
    mag: F64Arg<'_>,
    out: &mut [f64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    Photometry::AbMagToFlux.eval(&[mag], out, validity)
}

/// `scisql_dnToFlux` over columns (see [`Photometry::DnToFlux`]).
pub fn dn_to_flux(
    dn: F64Arg<'_>,
    flux_mag0: F64Arg<'_>,
    out: &mut [f64],
    validity: &mut [u64],
) -> Result<(), SpatialError> {
    Photometry::DnToFlux.eval(&[dn, flux_mag0], out, validity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arity() {
        for f in Photometry::ALL {
            assert_eq!(Photometry::from_sql_name(f.sql_name()), Some(f));
            assert_eq!(
                Photometry::from_sql_name(&f.sql_name().to_uppercase()),
                Some(f)
            );
        }
        assert_eq!(Photometry::from_sql_name("scisql_angSep"), None);
        let mut out = [0.0];
        let mut validity = [u64::MAX];
        assert!(
            Photometry::DnToFlux
                .eval(&[F64Arg::Scalar(1.0)], &mut out, &mut validity)
                .is_err()
        );
    }

    #[test]
    fn hypot_is_scisqls() {
        assert_eq!(scisql_hypot(0.0, 0.0), 0.0);
        assert_eq!(scisql_hypot(3.0, 4.0), 5.0);
        assert_eq!(scisql_hypot(-4.0, 3.0), 5.0);
    }
}
