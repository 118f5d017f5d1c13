//! Synthetic LSST-like catalogs for demos, tests and benchmarks.
//!
//! The Object table imitates the Rubin DP0/DP1 `Object` table in the column
//! kinds that matter for storage and scans: 64-bit ids clustered on the sky,
//! full-precision ra/decl, f32 fluxes with realistic noise (negative values
//! for faint objects, NULLs in the shallow u band), their errors, flag
//! bit-fields, small counts, band names and booleans. Objects follow galaxy
//! number counts (dN/dm ∝ 10^(0.35 m)) and plausible colours.
//!
//! Generation is deterministic for a given (seed, row count, footprint) and
//! independent of the number of threads: block `b` of rows always draws from
//! random stream `b`.

pub mod export;
mod rng;

pub use rng::Rng;

use skyscan_format::{
    Bitmap, BoolColumn, ColumnData, ColumnSchema, ColumnType, PrimitiveColumn, TableSchema,
    VarColumn,
};

use crate::table::{Table, append_column};

/// Rows generated per random stream (and per unit of parallel work).
pub const ROWS_PER_BLOCK: u64 = 1 << 16;

/// The six LSST bands, in wavelength order.
pub const BANDS: [&str; 6] = ["u", "g", "r", "i", "z", "y"];

/// A rectangle of sky the synthetic objects are spread over, uniformly per
/// unit area unless `structure` says otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Footprint {
    /// Western edge, degrees in [0, 360).
    pub ra_min_deg: f64,
    /// Eastern edge, degrees, > ra_min_deg (may exceed 360: wraps).
    pub ra_max_deg: f64,
    /// Southern edge, degrees.
    pub dec_min_deg: f64,
    /// Northern edge, degrees.
    pub dec_max_deg: f64,
    /// How the density varies over the rectangle.
    pub structure: SkyStructure,
}

/// How the density of synthetic objects varies over a footprint.
///
/// Coordinates below are the footprint's unit square: `u` along ra from the
/// western edge, `v` along sin(dec) from the southern edge (equal areas).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum SkyStructure {
    /// The same density everywhere (what every benchmark measured so far).
    #[default]
    Uniform,
    /// A galactic-plane-like dense band and empty regions: the density is
    /// `1 + (BAND_CONTRAST - 1) exp(-(d / BAND_WIDTH)^2)` times the
    /// background, `d` the distance in the unit square from the tilted line
    /// `v = 0.5 + 0.3 (u - 0.5)`, and zero inside [`EMPTY_REGIONS`] (holes
    /// like masked bright stars or unobserved fields). The mean density over
    /// the footprint is the same as `Uniform`'s (same rows, same area), so a
    /// chunk in the band holds about 5x the uniform patch's rows.
    GalacticBand,
}

/// Peak density of [`SkyStructure::GalacticBand`] over its background.
pub const BAND_CONTRAST: f64 = 10.0;
/// Width (1/e half width) of the band, in units of the footprint's side.
pub const BAND_WIDTH: f64 = 0.06;
/// Empty regions of [`SkyStructure::GalacticBand`]: `(u, v, radius)` in the
/// footprint's unit square.
pub const EMPTY_REGIONS: [(f64, f64, f64); 3] =
    [(0.2, 0.8, 0.08), (0.75, 0.2, 0.1), (0.85, 0.8, 0.06)];

impl SkyStructure {
    /// Relative density at `(u, v)` of the unit square, in `[0, max_weight]`.
    fn weight(self, u: f64, v: f64) -> f64 {
        match self {
            SkyStructure::Uniform => 1.0,
            SkyStructure::GalacticBand => {
                if EMPTY_REGIONS
                    .iter()
                    .any(|&(cu, cv, r)| (u - cu).powi(2) + (v - cv).powi(2) < r * r)
                {
                    return 0.0;
                }
                // Distance to the line v = 0.5 + 0.3 (u - 0.5).
                let d = (v - 0.5 - 0.3 * (u - 0.5)) / (1.0f64 + 0.09).sqrt();
                1.0 + (BAND_CONTRAST - 1.0) * (-(d / BAND_WIDTH).powi(2)).exp()
            }
        }
    }

    /// The largest value of [`SkyStructure::weight`] (rejection sampling).
    fn max_weight(self) -> f64 {
        match self {
            SkyStructure::Uniform => 1.0,
            SkyStructure::GalacticBand => BAND_CONTRAST,
        }
    }
}

impl Footprint {
    /// A roughly square patch centred on (ra, dec) covering `area_deg2`.
    pub fn square(ra_center_deg: f64, dec_center_deg: f64, area_deg2: f64) -> Footprint {
        let side = area_deg2.max(1e-6).sqrt();
        let dec_min = (dec_center_deg - side / 2.0).max(-90.0);
        let dec_max = (dec_center_deg + side / 2.0).min(90.0);
        let cos_dec = dec_center_deg.to_radians().cos().max(0.05);
        let width = (side / cos_dec).min(360.0);
        let ra_min = (ra_center_deg - width / 2.0).rem_euclid(360.0);
        Footprint {
            ra_min_deg: ra_min,
            ra_max_deg: ra_min + width,
            dec_min_deg: dec_min,
            dec_max_deg: dec_max,
            structure: SkyStructure::Uniform,
        }
    }

    /// The same rectangle with density `structure`.
    pub fn with_structure(self, structure: SkyStructure) -> Footprint {
        Footprint { structure, ..self }
    }

    /// The whole sky.
    pub fn whole_sky() -> Footprint {
        Footprint {
            ra_min_deg: 0.0,
            ra_max_deg: 360.0,
            dec_min_deg: -90.0,
            dec_max_deg: 90.0,
            structure: SkyStructure::Uniform,
        }
    }

    /// Area in square degrees.
    pub fn area_deg2(&self) -> f64 {
        let dz = self.dec_max_deg.to_radians().sin() - self.dec_min_deg.to_radians().sin();
        (self.ra_max_deg - self.ra_min_deg).to_radians()
            * dz
            * (180.0 / std::f64::consts::PI).powi(2)
    }

    /// A position drawn with the footprint's density per unit solid angle.
    /// `Uniform` takes one draw per position (the streams of every
    /// benchmark so far); a structure rejects uniform draws with
    /// probability `1 - weight / max_weight` (about 5 draws per position
    /// for the band).
    fn sample(&self, rng: &mut Rng) -> (f64, f64) {
        let (z_min, z_max) = (
            self.dec_min_deg.to_radians().sin(),
            self.dec_max_deg.to_radians().sin(),
        );
        let (ra, z) = match self.structure {
            SkyStructure::Uniform => (
                rng.range(self.ra_min_deg, self.ra_max_deg),
                rng.range(z_min, z_max),
            ),
            structure => {
                let max = structure.max_weight();
                loop {
                    let (u, v) = (rng.uniform(), rng.uniform());
                    if rng.uniform() * max < structure.weight(u, v) {
                        break (
                            self.ra_min_deg + u * (self.ra_max_deg - self.ra_min_deg),
                            z_min + v * (z_max - z_min),
                        );
                    }
                }
            }
        };
        let dec = z.clamp(-1.0, 1.0).asin().to_degrees();
        (ra.rem_euclid(360.0), dec)
    }
}

/// Parameters of a synthetic Object catalog.
#[derive(Clone, Copy, Debug)]
pub struct ObjectSpec {
    /// Number of objects.
    pub rows: u64,
    /// Seed of all random streams.
    pub seed: u64,
    /// Where the objects lie.
    pub footprint: Footprint,
}

impl ObjectSpec {
    /// `rows` objects at a density of `per_deg2` per square degree in a square
    /// patch centred on (60°, −30°), inside the LSST footprint.
    pub fn with_density(rows: u64, per_deg2: f64, seed: u64) -> ObjectSpec {
        let area = rows as f64 / per_deg2.max(1.0);
        ObjectSpec {
            rows,
            seed,
            footprint: Footprint::square(60.0, -30.0, area),
        }
    }

    /// The same spec with density `structure` over its footprint.
    pub fn with_structure(self, structure: SkyStructure) -> ObjectSpec {
        ObjectSpec {
            footprint: self.footprint.with_structure(structure),
            ..self
        }
    }
}

/// A synthetic Object table, column by column (struct of arrays).
///
/// Nullable columns carry `None` as a validity of `false` in `*_valid`.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Unique id; high bits encode a 1°×1° sky cell, so ids cluster on the sky.
    pub object_id: Vec<i64>,
    /// Right ascension, degrees, [0, 360).
    pub ra: Vec<f64>,
    /// Declination, degrees.
    pub decl: Vec<f64>,
    /// Uncertainty of ra, degrees.
    pub ra_err: Vec<f32>,
    /// Uncertainty of decl, degrees.
    pub decl_err: Vec<f32>,
    /// Deblend parent's id, 0 for isolated objects.
    pub parent_object_id: Vec<i64>,
    /// Number of deblended children.
    pub n_child: Vec<i16>,
    /// 0 = point source, 1 = extended; NULL when not measured.
    pub extendedness: Vec<f32>,
    /// Validity of `extendedness`.
    pub extendedness_valid: Vec<bool>,
    /// PSF fluxes per band (u g r i z y), nJy; may be negative for faint objects.
    pub psf_flux: [Vec<f32>; 6],
    /// Validity of `psf_flux` per band (the shallow u band has NULLs).
    pub psf_flux_valid: [Vec<bool>; 6],
    /// PSF flux errors per band, nJy.
    pub psf_flux_err: [Vec<f32>; 6],
    /// Second moments of the shape, arcsec².
    pub shape_xx: Vec<f32>,
    /// Second moment yy, arcsec².
    pub shape_yy: Vec<f32>,
    /// Second moment xy, arcsec².
    pub shape_xy: Vec<f32>,
    /// Processing flag bits (a few rare bits set).
    pub flags: Vec<i64>,
    /// Number of visits the object was measured on.
    pub n_visits: Vec<i32>,
    /// The reference band's name.
    pub ref_band: Vec<&'static str>,
    /// Whether this is a primary (not duplicate) detection.
    pub is_primary: Vec<bool>,
}

impl Objects {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.object_id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.object_id.is_empty()
    }

    fn with_capacity(rows: usize) -> Objects {
        Objects {
            object_id: Vec::with_capacity(rows),
            ra: Vec::with_capacity(rows),
            decl: Vec::with_capacity(rows),
            ra_err: Vec::with_capacity(rows),
            decl_err: Vec::with_capacity(rows),
            parent_object_id: Vec::with_capacity(rows),
            n_child: Vec::with_capacity(rows),
            extendedness: Vec::with_capacity(rows),
            extendedness_valid: Vec::with_capacity(rows),
            psf_flux: std::array::from_fn(|_| Vec::with_capacity(rows)),
            psf_flux_valid: std::array::from_fn(|_| Vec::with_capacity(rows)),
            psf_flux_err: std::array::from_fn(|_| Vec::with_capacity(rows)),
            shape_xx: Vec::with_capacity(rows),
            shape_yy: Vec::with_capacity(rows),
            shape_xy: Vec::with_capacity(rows),
            flags: Vec::with_capacity(rows),
            n_visits: Vec::with_capacity(rows),
            ref_band: Vec::with_capacity(rows),
            is_primary: Vec::with_capacity(rows),
        }
    }

    fn append(&mut self, mut other: Objects) {
        self.object_id.append(&mut other.object_id);
        self.ra.append(&mut other.ra);
        self.decl.append(&mut other.decl);
        self.ra_err.append(&mut other.ra_err);
        self.decl_err.append(&mut other.decl_err);
        self.parent_object_id.append(&mut other.parent_object_id);
        self.n_child.append(&mut other.n_child);
        self.extendedness.append(&mut other.extendedness);
        self.extendedness_valid
            .append(&mut other.extendedness_valid);
        for band in 0..6 {
            self.psf_flux[band].append(&mut other.psf_flux[band]);
            self.psf_flux_valid[band].append(&mut other.psf_flux_valid[band]);
            self.psf_flux_err[band].append(&mut other.psf_flux_err[band]);
        }
        self.shape_xx.append(&mut other.shape_xx);
        self.shape_yy.append(&mut other.shape_yy);
        self.shape_xy.append(&mut other.shape_xy);
        self.flags.append(&mut other.flags);
        self.n_visits.append(&mut other.n_visits);
        self.ref_band.append(&mut other.ref_band);
        self.is_primary.append(&mut other.is_primary);
    }
}

/// Generates the Object table of `spec` using up to `threads` threads.
pub fn generate_objects(spec: &ObjectSpec, threads: usize) -> Objects {
    let blocks = spec.rows.div_ceil(ROWS_PER_BLOCK);
    let threads = threads.clamp(1, 64).min(blocks.max(1) as usize);
    let mut parts: Vec<(u64, Objects)> = Vec::with_capacity(blocks as usize);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut block = worker as u64;
                    while block < blocks {
                        mine.push((block, generate_block(spec, block)));
                        block += threads as u64;
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(mine) => parts.extend(mine),
                // A worker can only panic on a bug; re-raise it on this thread.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    parts.sort_by_key(|(block, _)| *block);
    let mut all = Objects::with_capacity(spec.rows as usize);
    for (_, part) in parts {
        all.append(part);
    }
    all
}

/// Faint limit and bright limit of the r-band magnitudes drawn.
const MAG_BRIGHT: f64 = 16.0;
const MAG_FAINT: f64 = 26.5;
/// Slope of the galaxy number counts, d log10 N / dm.
const COUNT_SLOPE: f64 = 0.35;
/// 1σ sky noise per band in nJy (from LSST single-visit 5σ depths ≈ 23.9/25.0/24.7/24.0/23.3/22.1, coadded).
const SKY_SIGMA_NJY: [f64; 6] = [180.0, 60.0, 55.0, 75.0, 140.0, 300.0];
/// Mean and spread of the colours u−g, g−r, r−i, i−z, z−y.
const COLOURS: [(f64, f64); 5] = [(1.2, 0.4), (0.6, 0.3), (0.3, 0.2), (0.15, 0.1), (0.1, 0.1)];

fn generate_block(spec: &ObjectSpec, block: u64) -> Objects {
    let first = block * ROWS_PER_BLOCK;
    let rows = (spec.rows - first).min(ROWS_PER_BLOCK) as usize;
    let mut rng = Rng::new(spec.seed, block);
    let mut out = Objects::with_capacity(rows);
    let a_lo = 10f64.powf(COUNT_SLOPE * MAG_BRIGHT);
    let a_hi = 10f64.powf(COUNT_SLOPE * MAG_FAINT);
    for row in 0..rows {
        let global = first + row as u64;
        let (ra, dec) = spec.footprint.sample(&mut rng);
        let cell =
            ((dec + 90.0).floor() as i64).clamp(0, 179) * 360 + (ra.floor() as i64).clamp(0, 359);
        let object_id = (cell << 32) | global as i64;
        out.object_id.push(object_id);
        out.ra.push(ra);
        out.decl.push(dec);

        let mag_r = (a_lo + rng.uniform() * (a_hi - a_lo)).log10() / COUNT_SLOPE;
        // Magnitudes per band from r and the colours.
        let mut mags = [0.0f64; 6];
        mags[2] = mag_r;
        let colour = |rng: &mut Rng, k: usize| COLOURS[k].0 + COLOURS[k].1 * rng.normal();
        mags[1] = mags[2] + colour(&mut rng, 1);
        mags[0] = mags[1] + colour(&mut rng, 0);
        mags[3] = mags[2] - colour(&mut rng, 2);
        mags[4] = mags[3] - colour(&mut rng, 3);
        mags[5] = mags[4] - colour(&mut rng, 4);
        let mut snr_r = 0.0;
        for band in 0..6 {
            let true_flux = 10f64.powf((31.4 - mags[band]) / 2.5);
            let sigma = (SKY_SIGMA_NJY[band].powi(2) + 0.5 * true_flux).sqrt()
                * (1.0 + 0.1 * rng.normal().abs());
            let measured = true_flux + sigma * rng.normal();
            let valid = !(band == 0 && rng.chance(0.05));
            out.psf_flux[band].push(if valid { measured as f32 } else { 0.0 });
            out.psf_flux_err[band].push(sigma as f32);
            out.psf_flux_valid[band].push(valid);
            if band == 2 {
                snr_r = (true_flux / sigma).max(0.1);
            }
        }
        let pos_err_deg = (0.7 / snr_r).min(1.0) / 3600.0;
        out.ra_err
            .push((pos_err_deg * (1.0 + 0.05 * rng.normal())).abs() as f32);
        out.decl_err
            .push((pos_err_deg * (1.0 + 0.05 * rng.normal())).abs() as f32);

        let extended = rng.chance(if mag_r > 22.0 { 0.8 } else { 0.3 });
        let ext_valid = !rng.chance(0.02);
        out.extendedness
            .push(if ext_valid && extended { 1.0 } else { 0.0 });
        out.extendedness_valid.push(ext_valid);
        let size = if extended {
            0.3 + 0.6 * rng.uniform()
        } else {
            0.25
        };
        let ellip = if extended {
            0.3 * rng.uniform()
        } else {
            0.02 * rng.uniform()
        };
        let angle = rng.range(0.0, std::f64::consts::PI);
        out.shape_xx
            .push((size * size * (1.0 + ellip * (2.0 * angle).cos())) as f32);
        out.shape_yy
            .push((size * size * (1.0 - ellip * (2.0 * angle).cos())) as f32);
        out.shape_xy
            .push((size * size * ellip * (2.0 * angle).sin()) as f32);

        let is_child = rng.chance(0.12);
        out.parent_object_id.push(if is_child {
            (cell << 32) | (global.saturating_sub(1 + rng.below(8))) as i64
        } else {
            0
        });
        out.n_child.push(if !is_child && rng.chance(0.08) {
            2 + rng.below(6) as i16
        } else {
            0
        });
        let mut flags = 0i64;
        for bit in 0..12 {
            if rng.chance(0.004 * (bit as f64 + 1.0)) {
                flags |= 1 << (bit * 3);
            }
        }
        out.flags.push(flags);
        out.n_visits
            .push((180.0 + 25.0 * rng.normal()).clamp(0.0, 1000.0) as i32);
        out.ref_band.push(match rng.below(100) {
            0..=54 => "i",
            55..=84 => "r",
            85..=94 => "g",
            95..=97 => "z",
            98 => "u",
            _ => "y",
        });
        out.is_primary.push(!rng.chance(0.1));
    }
    out
}

/// The schema of the synthetic Object table (Rubin DP0-style names, Qserv's `ra`/`decl`).
pub fn object_schema() -> TableSchema {
    use ColumnType::*;
    let mut columns = vec![
        ColumnSchema::new("objectId", I64, false),
        ColumnSchema::new("ra", F64, false),
        ColumnSchema::new("decl", F64, false),
        ColumnSchema::new("raErr", F32, false),
        ColumnSchema::new("declErr", F32, false),
        ColumnSchema::new("parentObjectId", I64, false),
        ColumnSchema::new("nChild", I16, false),
        ColumnSchema::new("extendedness", F32, true),
    ];
    for band in BANDS {
        columns.push(ColumnSchema::new(format!("{band}_psfFlux"), F32, true));
        columns.push(ColumnSchema::new(format!("{band}_psfFluxErr"), F32, false));
    }
    columns.extend([
        ColumnSchema::new("shape_xx", F32, false),
        ColumnSchema::new("shape_yy", F32, false),
        ColumnSchema::new("shape_xy", F32, false),
        ColumnSchema::new("flags", I64, false),
        ColumnSchema::new("nVisits", I32, false),
        ColumnSchema::new("refBand", Utf8, false),
        ColumnSchema::new("detect_isPrimary", Bool, false),
    ]);
    TableSchema::new("Object", columns)
}

impl Objects {
    /// The columns as a [`Table`] with [`object_schema`].
    pub fn into_table(self) -> Result<Table, String> {
        fn plain<T>(values: Vec<T>) -> PrimitiveColumn<T> {
            PrimitiveColumn {
                values,
                validity: None,
            }
        }
        fn nullable<T>(values: Vec<T>, valid: &[bool]) -> PrimitiveColumn<T> {
            let validity = valid.iter().any(|v| !v).then(|| Bitmap::from_bools(valid));
            PrimitiveColumn { values, validity }
        }
        let Objects {
            object_id,
            ra,
            decl,
            ra_err,
            decl_err,
            parent_object_id,
            n_child,
            extendedness,
            extendedness_valid,
            psf_flux,
            psf_flux_valid,
            psf_flux_err,
            shape_xx,
            shape_yy,
            shape_xy,
            flags,
            n_visits,
            ref_band,
            is_primary,
        } = self;
        let mut columns = vec![
            ColumnData::I64(plain(object_id)),
            ColumnData::F64(plain(ra)),
            ColumnData::F64(plain(decl)),
            ColumnData::F32(plain(ra_err)),
            ColumnData::F32(plain(decl_err)),
            ColumnData::I64(plain(parent_object_id)),
            ColumnData::I16(plain(n_child)),
            ColumnData::F32(nullable(extendedness, &extendedness_valid)),
        ];
        for ((flux, valid), err) in psf_flux.into_iter().zip(&psf_flux_valid).zip(psf_flux_err) {
            columns.push(ColumnData::F32(nullable(flux, valid)));
            columns.push(ColumnData::F32(plain(err)));
        }
        let mut bands = VarColumn::default();
        for band in &ref_band {
            bands.push(Some(band.as_bytes()));
        }
        columns.extend([
            ColumnData::F32(plain(shape_xx)),
            ColumnData::F32(plain(shape_yy)),
            ColumnData::F32(plain(shape_xy)),
            ColumnData::I64(plain(flags)),
            ColumnData::I32(plain(n_visits)),
            ColumnData::Utf8(bands),
            ColumnData::Bool(BoolColumn {
                values: Bitmap::from_bools(&is_primary),
                validity: None,
            }),
        ]);
        Table::new(object_schema(), columns)
    }
}

/// Parameters of a synthetic Source table (detections of the objects on single visits).
#[derive(Clone, Copy, Debug)]
pub struct SourceSpec {
    /// Mean number of detections per object (Poisson-like spread around it).
    pub mean_per_object: f64,
    /// Seed of the random streams (distinct from the objects' streams).
    pub seed: u64,
    /// First visit time, MJD (TAI).
    pub first_mjd: f64,
    /// Survey length in days.
    pub days: f64,
}

impl SourceSpec {
    /// `mean_per_object` detections per object over ten years starting 2025-01-01.
    pub fn new(mean_per_object: f64, seed: u64) -> SourceSpec {
        SourceSpec {
            mean_per_object,
            seed,
            first_mjd: 60_676.0,
            days: 3_652.5,
        }
    }
}

/// The schema of the synthetic Source table.
pub fn source_schema() -> TableSchema {
    use ColumnType::*;
    TableSchema::new(
        "Source",
        vec![
            ColumnSchema::new("sourceId", I64, false),
            ColumnSchema::new("objectId", I64, false),
            ColumnSchema::new("ccdVisitId", I64, false),
            ColumnSchema::new("band", Utf8, false),
            ColumnSchema::new("midpointMjdTai", F64, false),
            ColumnSchema::new("ra", F64, false),
            ColumnSchema::new("decl", F64, false),
            ColumnSchema::new("psfFlux", F32, true),
            ColumnSchema::new("psfFluxErr", F32, false),
            ColumnSchema::new("flags", I64, false),
        ],
    )
}

/// Maximum detections generated for one object (a bound on the spread).
const MAX_SOURCES_PER_OBJECT: u64 = 1_000;

/// Generates detections of `objects` (a table with [`object_schema`]): each object gets
/// about `spec.mean_per_object` sources on random visits, scattered around its position
/// by its position error, with fluxes drawn around its measured flux in the visit's band.
/// Deterministic for a given spec and object table, independent of `threads`.
pub fn generate_sources(
    objects: &Table,
    spec: &SourceSpec,
    threads: usize,
) -> Result<Table, String> {
    let ids = match objects.column("objectId") {
        Some(ColumnData::I64(c)) => &c.values,
        _ => return Err("generate_sources: the object table has no i64 objectId".to_string()),
    };
    let ra = objects.f64_column("ra")?;
    let decl = objects.f64_column("decl")?;
    let mut fluxes: Vec<&[f32]> = Vec::with_capacity(6);
    for band in BANDS {
        match objects.column(&format!("{band}_psfFlux")) {
            Some(ColumnData::F32(c)) => fluxes.push(&c.values),
            _ => return Err(format!("generate_sources: no f32 column {band}_psfFlux")),
        }
    }
    if !(spec.mean_per_object.is_finite()
        && (0.0..=MAX_SOURCES_PER_OBJECT as f64 / 2.0).contains(&spec.mean_per_object))
    {
        return Err(format!(
            "generate_sources: mean_per_object must be in [0, {}]",
            MAX_SOURCES_PER_OBJECT / 2
        ));
    }
    let rows = ids.len() as u64;
    let blocks = rows.div_ceil(ROWS_PER_BLOCK);
    let threads = threads.clamp(1, 64).min(blocks.max(1) as usize);
    let mut parts: Vec<(u64, [ColumnData; 10])> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|worker| {
                let fluxes = &fluxes;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut block = worker as u64;
                    while block < blocks {
                        let first = (block * ROWS_PER_BLOCK) as usize;
                        let last = ((block + 1) * ROWS_PER_BLOCK).min(rows) as usize;
                        let mut rng = Rng::new(spec.seed ^ 0x5EED_50C5, block);
                        mine.push((
                            block,
                            source_block(spec, &mut rng, first..last, ids, ra, decl, fluxes),
                        ));
                        block += threads as u64;
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(mine) => parts.extend(mine),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    parts.sort_by_key(|(block, _)| *block);
    let mut columns: Vec<ColumnData> = source_schema()
        .columns
        .iter()
        .map(|c| ColumnData::empty(c.column_type))
        .collect();
    for (_, part) in parts {
        for (all, piece) in columns.iter_mut().zip(part) {
            append_column(all, &piece)?;
        }
    }
    Table::new(source_schema(), columns)
}

#[allow(clippy::too_many_arguments)]
fn source_block(
    spec: &SourceSpec,
    rng: &mut Rng,
    objects: std::ops::Range<usize>,
    ids: &[i64],
    ra: &[f64],
    decl: &[f64],
    fluxes: &[&[f32]],
) -> [ColumnData; 10] {
    let mut source_id = Vec::new();
    let mut object_id = Vec::new();
    let mut ccd_visit = Vec::new();
    let mut band_names = VarColumn::default();
    let mut mjd = Vec::new();
    let (mut src_ra, mut src_decl) = (Vec::new(), Vec::new());
    let (mut flux, mut flux_valid, mut flux_err, mut flags) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for object in objects {
        // Binomial(2·mean, 1/2) spread: Poisson-like without a loop over exp draws.
        let trials = (2.0 * spec.mean_per_object).round() as u64;
        let count = (0..trials).filter(|_| rng.chance(0.5)).count() as u64;
        let count = count.min(MAX_SOURCES_PER_OBJECT);
        let mut times: Vec<f64> = (0..count)
            .map(|_| spec.first_mjd + rng.uniform() * spec.days)
            .collect();
        times.sort_by(f64::total_cmp);
        for (k, &t) in times.iter().enumerate() {
            let band = rng.below(6) as usize;
            let visit = ((t - spec.first_mjd) * 1_000.0) as i64; // ~one visit a 86 s
            source_id.push(ids[object].wrapping_mul(1_024).wrapping_add(k as i64));
            object_id.push(ids[object]);
            ccd_visit.push(visit * 200 + rng.below(189) as i64);
            band_names.push(Some(BANDS[band].as_bytes()));
            mjd.push(t);
            let scatter_deg = 0.05 / 3600.0;
            let cos_dec = decl[object].to_radians().cos().max(1e-6);
            src_ra.push((ra[object] + scatter_deg * rng.normal() / cos_dec).rem_euclid(360.0));
            src_decl.push((decl[object] + scatter_deg * rng.normal()).clamp(-90.0, 90.0));
            let base = fluxes[band][object] as f64;
            let sigma = SKY_SIGMA_NJY[band] * 3.0 * (1.0 + 0.2 * rng.normal().abs());
            let valid = !rng.chance(0.01);
            flux.push(if valid {
                (base + sigma * rng.normal()) as f32
            } else {
                0.0
            });
            flux_valid.push(valid);
            flux_err.push(sigma as f32);
            flags.push(if rng.chance(0.05) {
                1i64 << rng.below(20)
            } else {
                0
            });
        }
    }
    let validity = flux_valid
        .iter()
        .any(|v| !v)
        .then(|| Bitmap::from_bools(&flux_valid));
    [
        ColumnData::I64(PrimitiveColumn {
            values: source_id,
            validity: None,
        }),
        ColumnData::I64(PrimitiveColumn {
            values: object_id,
            validity: None,
        }),
        ColumnData::I64(PrimitiveColumn {
            values: ccd_visit,
            validity: None,
        }),
        ColumnData::Utf8(band_names),
        ColumnData::F64(PrimitiveColumn {
            values: mjd,
            validity: None,
        }),
        ColumnData::F64(PrimitiveColumn {
            values: src_ra,
            validity: None,
        }),
        ColumnData::F64(PrimitiveColumn {
            values: src_decl,
            validity: None,
        }),
        ColumnData::F32(PrimitiveColumn {
            values: flux,
            validity,
        }),
        ColumnData::F32(PrimitiveColumn {
            values: flux_err,
            validity: None,
        }),
        ColumnData::I64(PrimitiveColumn {
            values: flags,
            validity: None,
        }),
    ]
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn sources_follow_their_objects() {
        let objects = generate_objects(&ObjectSpec::with_density(20_000, 200_000.0, 3), 2)
            .into_table()
            .unwrap();
        let sources = generate_sources(&objects, &SourceSpec::new(20.0, 9), 2).unwrap();
        let again = generate_sources(&objects, &SourceSpec::new(20.0, 9), 1).unwrap();
        assert_eq!(sources, again, "independent of threads");
        let per_object = sources.rows() as f64 / objects.rows() as f64;
        assert!(
            (per_object - 20.0).abs() < 0.5,
            "{per_object} sources per object"
        );
        let Some(ColumnData::I64(src_obj)) = sources.column("objectId") else {
            panic!()
        };
        let Some(ColumnData::I64(obj_ids)) = objects.column("objectId") else {
            panic!()
        };
        let positions: std::collections::HashMap<i64, usize> = obj_ids
            .values
            .iter()
            .enumerate()
            .map(|(k, id)| (*id, k))
            .collect();
        let (ra, decl) = (
            sources.f64_column("ra").unwrap(),
            sources.f64_column("decl").unwrap(),
        );
        let (ora, odecl) = (
            objects.f64_column("ra").unwrap(),
            objects.f64_column("decl").unwrap(),
        );
        for (k, id) in src_obj.values.iter().enumerate() {
            let object = positions[id];
            let sep = skyscan_sky::ang_sep_deg(ra[k], decl[k], ora[object], odecl[object]).unwrap();
            assert!(sep < 1.0 / 3600.0, "source {k} is {sep}° from its object");
        }
        let Some(ColumnData::I64(source_ids)) = sources.column("sourceId") else {
            panic!()
        };
        let mut unique = source_ids.values.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), sources.rows());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rows: u64) -> ObjectSpec {
        ObjectSpec::with_density(rows, 20_000.0, 42)
    }

    #[test]
    fn deterministic_and_thread_independent() {
        let one = generate_objects(&spec(150_000), 1);
        let two = generate_objects(&spec(150_000), 2);
        assert_eq!(one.len(), 150_000);
        assert_eq!(one.object_id, two.object_id);
        assert_eq!(one.ra, two.ra);
        assert_eq!(one.psf_flux[3], two.psf_flux[3]);
    }

    #[test]
    fn values_are_plausible() {
        let s = spec(100_000);
        let objects = generate_objects(&s, 2);
        let fp = s.footprint;
        assert!(
            (fp.area_deg2() - 5.0).abs() < 0.01,
            "area {}",
            fp.area_deg2()
        );
        for (&ra, &dec) in objects.ra.iter().zip(&objects.decl) {
            assert!((0.0..360.0).contains(&ra));
            assert!(dec >= fp.dec_min_deg && dec <= fp.dec_max_deg);
        }
        let mut ids = objects.object_id.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), objects.len(), "object ids are unique");
        let negative = objects.psf_flux[2].iter().filter(|f| **f < 0.0).count();
        assert!(
            negative > 0 && negative < objects.len() / 5,
            "some faint objects measure negative: {negative}"
        );
        let u_nulls = objects.psf_flux_valid[0].iter().filter(|v| !**v).count();
        assert!(
            u_nulls > 3_000 && u_nulls < 7_000,
            "about 5% u-band NULLs: {u_nulls}"
        );
    }

    #[test]
    fn galactic_band_is_dense_and_holes_are_empty() {
        let uniform = spec(100_000);
        let banded = uniform.with_structure(SkyStructure::GalacticBand);
        let objects = generate_objects(&banded, 2);
        assert_eq!(objects.len(), 100_000);
        assert_eq!(
            objects.ra,
            generate_objects(&banded, 1).ra,
            "deterministic and thread independent"
        );
        let fp = banded.footprint;
        let unit = |ra: f64, dec: f64| {
            let u = (ra - fp.ra_min_deg).rem_euclid(360.0) / (fp.ra_max_deg - fp.ra_min_deg);
            let (z0, z1) = (
                fp.dec_min_deg.to_radians().sin(),
                fp.dec_max_deg.to_radians().sin(),
            );
            (u, (dec.to_radians().sin() - z0) / (z1 - z0))
        };
        let (mut in_band, mut far, mut in_hole) = (0usize, 0usize, 0usize);
        for (&ra, &dec) in objects.ra.iter().zip(&objects.decl) {
            assert!(dec >= fp.dec_min_deg && dec <= fp.dec_max_deg);
            let (u, v) = unit(ra, dec);
            assert!((-1e-9..=1.0 + 1e-9).contains(&u), "u {u}");
            let d = (v - 0.5 - 0.3 * (u - 0.5)).abs() / 1.09f64.sqrt();
            // Equal-area strips: |d| < 0.03 near the line, 0.3 < |d| < 0.33 far.
            in_band += usize::from(d < 0.03);
            far += usize::from((0.3..0.33).contains(&d));
            in_hole += usize::from(
                EMPTY_REGIONS
                    .iter()
                    .any(|&(cu, cv, r)| (u - cu).powi(2) + (v - cv).powi(2) < (r * 0.99).powi(2)),
            );
        }
        assert_eq!(in_hole, 0, "empty regions hold no object");
        // The band's strip is ~9x denser at its core; the far strip, at the
        // background, is also cut by holes.
        assert!(
            in_band > 6 * far.max(1),
            "band strip {in_band} vs far strip {far}"
        );
        assert_ne!(generate_objects(&uniform, 2).ra, objects.ra);
    }

    #[test]
    fn whole_sky_area() {
        assert!((Footprint::whole_sky().area_deg2() - 41_252.96).abs() < 0.1);
    }
}

/// Parameters of a synthetic ForcedSource table: the forced PSF flux of
/// every Object on every visit whose field of view covers it.
#[derive(Clone, Copy, Debug)]
pub struct ForcedSourceSpec {
    /// Number of visits, spread over the objects' bounding box.
    pub visits: u32,
    /// Radius of a visit's field of view, degrees (LSST: ~1.75°).
    pub field_radius_deg: f64,
    /// Seed of the visits and of the measurement noise.
    pub seed: u64,
    /// First visit time, MJD (TAI).
    pub first_mjd: f64,
    /// Survey length in days.
    pub days: f64,
}

impl ForcedSourceSpec {
    /// `visits` LSST-sized visits over ten years starting 2025-01-01.
    pub fn new(visits: u32, seed: u64) -> ForcedSourceSpec {
        ForcedSourceSpec {
            visits,
            field_radius_deg: 1.75,
            seed,
            first_mjd: 60_676.0,
            days: 3_652.5,
        }
    }
}

/// Most visits of a [`ForcedSourceSpec`] (a visit index fits the id's low bits).
pub const MAX_FORCED_VISITS: u32 = 4_096;

/// The schema of the synthetic ForcedSource table.
pub fn forced_source_schema() -> TableSchema {
    use ColumnType::*;
    TableSchema::new(
        "ForcedSource",
        vec![
            ColumnSchema::new("forcedSourceId", I64, false),
            ColumnSchema::new("objectId", I64, false),
            ColumnSchema::new("ccdVisitId", I64, false),
            ColumnSchema::new("band", Utf8, false),
            ColumnSchema::new("midpointMjdTai", F64, false),
            ColumnSchema::new("psfFlux", F32, true),
            ColumnSchema::new("psfFluxErr", F32, false),
            ColumnSchema::new("flags", I64, false),
        ],
    )
}

/// One synthetic visit: where it points, when, in which band.
#[derive(Clone, Copy, Debug)]
struct Visit {
    unit: [f64; 3],
    ra_deg: f64,
    mjd: f64,
    band: usize,
}

fn unit_vector(ra_deg: f64, dec_deg: f64) -> [f64; 3] {
    let (ra, dec) = (ra_deg.to_radians(), dec_deg.to_radians());
    [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
}

/// Generates the forced photometry of `objects` (a table with
/// [`object_schema`]): one row per (object, visit covering it), in object
/// order then visit order; flux drawn around the object's flux in the
/// visit's band with single-visit noise; ~1% NULL fluxes. Deterministic for
/// a given spec and object table, independent of `threads`.
pub fn generate_forced_sources(
    objects: &Table,
    spec: &ForcedSourceSpec,
    threads: usize,
) -> Result<Table, String> {
    if spec.visits == 0 || spec.visits > MAX_FORCED_VISITS {
        return Err(format!(
            "generate_forced_sources: visits must be in 1..={MAX_FORCED_VISITS}"
        ));
    }
    if !(spec.field_radius_deg > 0.0 && spec.field_radius_deg <= 10.0) {
        return Err("generate_forced_sources: field radius must be in (0, 10] degrees".into());
    }
    let ids = match objects.column("objectId") {
        Some(ColumnData::I64(c)) => &c.values,
        _ => return Err("generate_forced_sources: no i64 objectId".to_string()),
    };
    let ra = objects.f64_column("ra")?;
    let decl = objects.f64_column("decl")?;
    let mut fluxes: Vec<&[f32]> = Vec::with_capacity(6);
    for band in BANDS {
        match objects.column(&format!("{band}_psfFlux")) {
            Some(ColumnData::F32(c)) => fluxes.push(&c.values),
            _ => return Err(format!("generate_forced_sources: no f32 {band}_psfFlux")),
        }
    }
    // Visits centred inside the objects' bounding box (ra by its range).
    let (ra_min, ra_max) = ra
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (dec_min, dec_max) = decl
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if ra.is_empty() {
        return Table::new(
            forced_source_schema(),
            forced_source_schema()
                .columns
                .iter()
                .map(|c| ColumnData::empty(c.column_type))
                .collect(),
        );
    }
    let mut rng = Rng::new(spec.seed ^ 0xF0C3_D5C3, u64::MAX);
    let mut visits: Vec<Visit> = (0..spec.visits)
        .map(|_| {
            let ra_deg = rng.range(ra_min, ra_max.max(ra_min + 1e-9));
            let dec_deg = rng.range(dec_min, dec_max.max(dec_min + 1e-9));
            Visit {
                unit: unit_vector(ra_deg, dec_deg),
                ra_deg,
                mjd: spec.first_mjd + rng.uniform() * spec.days,
                band: rng.below(6) as usize,
            }
        })
        .collect();
    visits.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
    let cos_radius = spec.field_radius_deg.to_radians().cos();
    let rows = ids.len() as u64;
    let blocks = rows.div_ceil(ROWS_PER_BLOCK);
    let threads = threads.clamp(1, 64).min(blocks.max(1) as usize);
    let mut parts: Vec<(u64, Vec<ColumnData>)> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|worker| {
                let (fluxes, visits) = (&fluxes, &visits);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut block = worker as u64;
                    while block < blocks {
                        let first = (block * ROWS_PER_BLOCK) as usize;
                        let last = ((block + 1) * ROWS_PER_BLOCK).min(rows) as usize;
                        let mut rng = Rng::new(spec.seed ^ 0xF0C3_D50C, block);
                        let mut forced_id = Vec::new();
                        let mut object_id = Vec::new();
                        let mut ccd_visit = Vec::new();
                        let mut band = VarColumn::default();
                        let mut mjd = Vec::new();
                        let (mut flux, mut flux_valid, mut flux_err, mut flags) =
                            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                        for object in first..last {
                            let here = unit_vector(ra[object], decl[object]);
                            for (number, visit) in visits.iter().enumerate() {
                                let dot = here[0] * visit.unit[0]
                                    + here[1] * visit.unit[1]
                                    + here[2] * visit.unit[2];
                                if dot < cos_radius {
                                    continue;
                                }
                                forced_id.push(
                                    ids[object]
                                        .wrapping_mul(i64::from(MAX_FORCED_VISITS))
                                        .wrapping_add(number as i64),
                                );
                                object_id.push(ids[object]);
                                // 189 science CCDs: which one, from the offset in ra.
                                let ccd = ((ra[object] - visit.ra_deg + 2.0).rem_euclid(4.0) * 47.0)
                                    as i64;
                                ccd_visit.push(number as i64 * 200 + ccd.clamp(0, 188));
                                band.push(Some(BANDS[visit.band].as_bytes()));
                                mjd.push(visit.mjd);
                                let sigma = SKY_SIGMA_NJY[visit.band]
                                    * 3.0
                                    * (1.0 + 0.2 * rng.normal().abs());
                                let valid = !rng.chance(0.01);
                                let base = f64::from(fluxes[visit.band][object]);
                                flux.push(if valid {
                                    (base + sigma * rng.normal()) as f32
                                } else {
                                    0.0
                                });
                                flux_valid.push(valid);
                                flux_err.push(sigma as f32);
                                flags.push(if rng.chance(0.02) {
                                    1i64 << rng.below(8)
                                } else {
                                    0
                                });
                            }
                        }
                        let validity = flux_valid
                            .iter()
                            .any(|v| !v)
                            .then(|| Bitmap::from_bools(&flux_valid));
                        mine.push((
                            block,
                            vec![
                                ColumnData::I64(PrimitiveColumn::new(forced_id)),
                                ColumnData::I64(PrimitiveColumn::new(object_id)),
                                ColumnData::I64(PrimitiveColumn::new(ccd_visit)),
                                ColumnData::Utf8(band),
                                ColumnData::F64(PrimitiveColumn::new(mjd)),
                                ColumnData::F32(PrimitiveColumn {
                                    values: flux,
                                    validity,
                                }),
                                ColumnData::F32(PrimitiveColumn::new(flux_err)),
                                ColumnData::I64(PrimitiveColumn::new(flags)),
                            ],
                        ));
                        block += threads as u64;
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(mine) => parts.extend(mine),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    parts.sort_by_key(|(block, _)| *block);
    let mut columns: Vec<ColumnData> = forced_source_schema()
        .columns
        .iter()
        .map(|c| ColumnData::empty(c.column_type))
        .collect();
    for (_, part) in parts {
        for (all, piece) in columns.iter_mut().zip(&part) {
            append_column(all, piece)?;
        }
    }
    Table::new(forced_source_schema(), columns)
}

#[cfg(test)]
mod forced_tests {
    use super::*;

    #[test]
    fn forced_sources_cover_objects_on_the_visits_that_see_them() {
        let objects = generate_objects(&ObjectSpec::with_density(5_000, 500.0, 3), 2)
            .into_table()
            .unwrap();
        let spec = ForcedSourceSpec::new(30, 4);
        let forced = generate_forced_sources(&objects, &spec, 2).unwrap();
        let again = generate_forced_sources(&objects, &spec, 1).unwrap();
        assert_eq!(forced, again, "independent of threads");
        assert!(forced.rows() > objects.rows(), "{} rows", forced.rows());
        let Some(ColumnData::I64(ids)) = forced.column("forcedSourceId") else {
            panic!()
        };
        let mut unique = ids.values.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), forced.rows(), "ids are unique");
        // Every row's object lies within the field radius of its visit: the
        // same object is never measured twice on one visit.
        let Some(ColumnData::I64(visits)) = forced.column("ccdVisitId") else {
            panic!()
        };
        let Some(ColumnData::I64(object_ids)) = forced.column("objectId") else {
            panic!()
        };
        let mut pairs: Vec<(i64, i64)> = object_ids
            .values
            .iter()
            .zip(&visits.values)
            .map(|(&o, &v)| (o, v / 200))
            .collect();
        pairs.sort_unstable();
        let before = pairs.len();
        pairs.dedup();
        assert_eq!(pairs.len(), before);
        assert!(generate_forced_sources(&objects, &ForcedSourceSpec::new(0, 1), 1).is_err());
    }
}

/// Columns [`wide_object_table`] adds to the 27 of [`object_schema`]: model
/// fluxes and their errors in the six bands, and a shape-failure flag
/// (40 columns in all, the size the issue asks for).
pub fn object_schema_wide() -> TableSchema {
    let mut schema = object_schema();
    for band in BANDS {
        schema.columns.push(ColumnSchema::new(
            format!("{band}_modelFlux"),
            ColumnType::F32,
            true,
        ));
        schema.columns.push(ColumnSchema::new(
            format!("{band}_modelFluxErr"),
            ColumnType::F32,
            false,
        ));
    }
    schema
        .columns
        .push(ColumnSchema::new("shape_flag", ColumnType::Bool, false));
    schema
}

/// The 40-column Object table of `spec`: the 27 columns of
/// [`generate_objects`] (the same values) followed by the columns of
/// [`object_schema_wide`], drawn from their own random streams (one per
/// block of [`ROWS_PER_BLOCK`] rows), so that the table is deterministic and
/// its first 27 columns equal the narrow table's.
pub fn wide_object_table(spec: &ObjectSpec, threads: usize) -> Result<Table, String> {
    let narrow = generate_objects(spec, threads).into_table()?;
    let rows = narrow.rows();
    let extended = match narrow.column("extendedness") {
        Some(ColumnData::F32(c)) => c.values.clone(),
        _ => return Err("wide_object_table: no f32 extendedness".to_string()),
    };
    let mut extra: Vec<ColumnData> = Vec::with_capacity(13);
    let mut rngs: Vec<Rng> = (0..rows.div_ceil(ROWS_PER_BLOCK as usize))
        .map(|block| Rng::new(spec.seed ^ 0x3D_E1F1, block as u64))
        .collect();
    for band in BANDS {
        let Some(ColumnData::F32(psf)) = narrow.column(&format!("{band}_psfFlux")) else {
            return Err(format!("wide_object_table: no f32 {band}_psfFlux"));
        };
        let Some(ColumnData::F32(psf_err)) = narrow.column(&format!("{band}_psfFluxErr")) else {
            return Err(format!("wide_object_table: no f32 {band}_psfFluxErr"));
        };
        let mut flux = Vec::with_capacity(rows);
        let mut err = Vec::with_capacity(rows);
        for row in 0..rows {
            let rng = &mut rngs[row / ROWS_PER_BLOCK as usize];
            // Extended objects: the model captures more light than the PSF.
            let gain = if extended[row] > 0.5 {
                1.1 + 0.4 * rng.uniform()
            } else {
                1.0 + 0.02 * rng.normal()
            };
            let sigma = f64::from(psf_err.values[row]) * (1.05 + 0.1 * rng.uniform());
            flux.push((f64::from(psf.values[row]) * gain + 0.3 * sigma * rng.normal()) as f32);
            err.push(sigma as f32);
        }
        extra.push(ColumnData::F32(PrimitiveColumn {
            values: flux,
            validity: psf.validity.clone(),
        }));
        extra.push(ColumnData::F32(PrimitiveColumn::new(err)));
    }
    let flags: Vec<bool> = (0..rows)
        .map(|row| rngs[row / ROWS_PER_BLOCK as usize].chance(0.03))
        .collect();
    extra.push(ColumnData::Bool(BoolColumn {
        values: Bitmap::from_bools(&flags),
        validity: None,
    }));
    let mut columns = narrow.columns;
    columns.extend(extra);
    Table::new(object_schema_wide(), columns)
}

#[cfg(test)]
mod wide_tests {
    use super::*;

    #[test]
    fn wide_table_extends_the_narrow_one() {
        let spec = ObjectSpec::with_density(70_000, 20_000.0, 8);
        let wide = wide_object_table(&spec, 2).unwrap();
        assert_eq!(wide.schema.columns.len(), 40);
        assert_eq!(wide, wide_object_table(&spec, 1).unwrap());
        let narrow = generate_objects(&spec, 2).into_table().unwrap();
        assert_eq!(&wide.columns[..27], &narrow.columns[..]);
        assert_eq!(
            wide.column("u_modelFlux").unwrap().null_count(),
            narrow.column("u_psfFlux").unwrap().null_count()
        );
    }
}
