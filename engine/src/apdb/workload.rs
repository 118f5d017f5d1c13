//! An ap_proto-like workload (LSST's APDB prototype, `ap_proto`): visits of
//! 1.75° radius at random pointings in a patch, so that visits overlap;
//! a fixed population of variable DiaObjects (~10,000 per field) detected at
//! every visit that covers them, ~5,000 noise detections per visit that each
//! make a new DiaObject, and forced photometry of every object in the field
//! detected within the previous 30 days. Every column of the schema is
//! filled (with random values where the APDB does not care).
//!
//! Used by the APDB tests and by `skyscan-bench apdb`.

use std::collections::{HashMap, VecDeque};

use skyscan_format::{
    Bitmap, BoolColumn, ColumnData, ColumnType, PrimitiveColumn, TableSchema, VarColumn,
};
use skyscan_sky::{Circle, Region};

use super::rows::{null_column, take_rows};
use super::store::StoreRequest;
use super::{ApdbLayout, ApdbTable};
use crate::synth::Rng;
use crate::table::Table;

/// Detectors of the LSST camera.
pub const DETECTORS: i16 = 189;

/// Parameters of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Random seed.
    pub seed: u64,
    /// Center of the patch, degrees.
    pub patch_ra_deg: f64,
    /// Center of the patch, degrees.
    pub patch_dec_deg: f64,
    /// Pointings are uniform within this radius of the center, degrees.
    pub patch_radius_deg: f64,
    /// Radius of a visit, degrees (LSST: 1.75).
    pub fov_radius_deg: f64,
    /// Variable objects per field.
    pub variables_per_field: usize,
    /// Noise detections per visit.
    pub noise_per_visit: usize,
    /// MJD of the first visit.
    pub start_mjd: f64,
    /// Days between visits.
    pub days_per_visit: f64,
    /// Forced photometry for objects detected within this many days.
    pub forced_window_days: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 7,
            patch_ra_deg: 45.0,
            patch_dec_deg: -30.0,
            patch_radius_deg: 10.0,
            fov_radius_deg: 1.75,
            variables_per_field: 10_000,
            noise_per_visit: 5_000,
            start_mjd: 60_000.0,
            // ~100 visits of one patch per year: after visit ~100 the
            // 12-month history window is full and the per-visit work stays
            // the same while the database keeps growing.
            days_per_visit: 3.65,
            forced_window_days: 30.0,
        }
    }
}

/// One visit: its pointing, time and the rows the pipeline stores for it.
#[derive(Debug, Clone)]
pub struct Visit {
    /// Visit id (1, 2, …).
    pub visit: i64,
    /// MJD TAI.
    pub time: f64,
    /// Pointing, degrees.
    pub ra_deg: f64,
    /// Pointing, degrees.
    pub dec_deg: f64,
    /// The visit's region.
    pub region: Region,
    /// New DiaObject versions.
    pub objects: Table,
    /// New DiaSources.
    pub sources: Table,
    /// New DiaForcedSources.
    pub forced_sources: Table,
    /// Detector of each object row (its CCD, by position angle).
    pub object_detectors: Vec<i16>,
}

impl Visit {
    /// The whole visit as one store.
    pub fn store_request(&self) -> StoreRequest {
        StoreRequest {
            visit_time: self.time,
            visit_detectors: (0..DETECTORS).map(|d| (self.visit, d)).collect(),
            objects: self.objects.clone(),
            sources: self.sources.clone(),
            forced_sources: self.forced_sources.clone(),
            close_object_ids: Vec::new(),
        }
    }

    /// One store per detector (a CCD-level writer each).
    pub fn ccd_requests(&self, layout: &ApdbLayout) -> Vec<StoreRequest> {
        let source_det = detectors_of(&self.sources, layout, ApdbTable::DiaSource);
        let forced_det = detectors_of(&self.forced_sources, layout, ApdbTable::DiaForcedSource);
        (0..DETECTORS)
            .map(|d| {
                let pick = |dets: &[i16]| -> Vec<u32> {
                    dets.iter()
                        .enumerate()
                        .filter(|(_, x)| **x == d)
                        .map(|(i, _)| i as u32)
                        .collect()
                };
                StoreRequest {
                    visit_time: self.time,
                    visit_detectors: vec![(self.visit, d)],
                    objects: take_rows(&self.objects, &pick(&self.object_detectors)),
                    sources: take_rows(&self.sources, &pick(&source_det)),
                    forced_sources: take_rows(&self.forced_sources, &pick(&forced_det)),
                    close_object_ids: Vec::new(),
                }
            })
            .collect()
    }
}

fn detectors_of(table: &Table, layout: &ApdbLayout, which: ApdbTable) -> Vec<i16> {
    let t = layout.table(which);
    match t.detector.map(|d| &table.columns[d]) {
        Some(ColumnData::I16(c)) => c.values.clone(),
        _ => Vec::new(),
    }
}

fn unit(ra_deg: f64, dec_deg: f64) -> [f64; 3] {
    let (ra, dec) = (ra_deg.to_radians(), dec_deg.to_radians());
    [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
}

fn radec(v: [f64; 3]) -> (f64, f64) {
    let ra = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
    let dec = v[2].clamp(-1.0, 1.0).asin().to_degrees();
    (if ra >= 360.0 { 0.0 } else { ra }, dec)
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// A uniform random point within `radius_deg` of (ra, dec).
fn point_in_cap(rng: &mut Rng, ra_deg: f64, dec_deg: f64, radius_deg: f64) -> (f64, f64) {
    let cos_r = radius_deg.to_radians().cos();
    let z = rng.range(cos_r, 1.0);
    let phi = rng.range(0.0, std::f64::consts::TAU);
    let s = (1.0 - z * z).max(0.0).sqrt();
    // Local frame: pole at the center.
    let local = [s * phi.cos(), s * phi.sin(), z];
    let (ra, dec) = (ra_deg.to_radians(), dec_deg.to_radians());
    let east = [-ra.sin(), ra.cos(), 0.0];
    let north = [-dec.sin() * ra.cos(), -dec.sin() * ra.sin(), dec.cos()];
    let center = unit(ra_deg, dec_deg);
    let v = [
        local[0] * east[0] + local[1] * north[0] + local[2] * center[0],
        local[0] * east[1] + local[1] * north[1] + local[2] * center[1],
        local[0] * east[2] + local[1] * north[2] + local[2] * center[2],
    ];
    radec(v)
}

fn cap_area_deg2(radius_deg: f64) -> f64 {
    let sr = std::f64::consts::TAU * (1.0 - radius_deg.to_radians().cos());
    sr * (180.0 / std::f64::consts::PI).powi(2)
}

/// Detector (0..189) of a position in a visit: by position angle around the
/// pointing, so every CCD's share is a wedge of the field.
fn detector_of(center: [f64; 3], center_ra: f64, center_dec: f64, v: [f64; 3]) -> i16 {
    let (ra, dec) = (center_ra.to_radians(), center_dec.to_radians());
    let east = [-ra.sin(), ra.cos(), 0.0];
    let north = [-dec.sin() * ra.cos(), -dec.sin() * ra.sin(), dec.cos()];
    let _ = center;
    let angle = dot(v, north)
        .atan2(dot(v, east))
        .rem_euclid(std::f64::consts::TAU);
    ((angle / std::f64::consts::TAU * f64::from(DETECTORS)) as i16).clamp(0, DETECTORS - 1)
}

struct Recent {
    time: f64,
    id: i64,
    ra: f64,
    dec: f64,
    v: [f64; 3],
}

/// The generator: keeps the object population and what it stored.
pub struct Workload {
    config: WorkloadConfig,
    layout: ApdbLayout,
    rng: Rng,
    variables: Vec<(f64, f64, [f64; 3])>,
    n_sources: Vec<i32>,
    last_detected: Vec<f64>,
    recent_noise: VecDeque<Recent>,
    next_noise_id: i64,
    next_source_id: i64,
    next_forced_id: i64,
    visit: i64,
}

impl Workload {
    /// A workload over `layout`'s schema.
    pub fn new(config: WorkloadConfig, layout: ApdbLayout) -> Workload {
        let mut rng = Rng::new(config.seed, 1);
        let density = config.variables_per_field as f64 / cap_area_deg2(config.fov_radius_deg);
        let radius = config.patch_radius_deg + config.fov_radius_deg;
        let count = (density * cap_area_deg2(radius)).round() as usize;
        let variables: Vec<(f64, f64, [f64; 3])> = (0..count)
            .map(|_| {
                let (ra, dec) =
                    point_in_cap(&mut rng, config.patch_ra_deg, config.patch_dec_deg, radius);
                (ra, dec, unit(ra, dec))
            })
            .collect();
        Workload {
            n_sources: vec![0; count],
            last_detected: vec![f64::NEG_INFINITY; count],
            next_noise_id: count as i64 + 1,
            variables,
            config,
            layout,
            rng,
            recent_noise: VecDeque::new(),
            next_source_id: 1,
            next_forced_id: 1,
            visit: 0,
        }
    }

    /// Number of variable objects in the patch.
    pub fn variable_count(&self) -> usize {
        self.variables.len()
    }

    /// The next visit.
    pub fn next_visit(&mut self) -> Visit {
        self.visit += 1;
        let cfg = self.config.clone();
        let time = cfg.start_mjd + (self.visit - 1) as f64 * cfg.days_per_visit;
        let (ra0, dec0) = point_in_cap(
            &mut self.rng,
            cfg.patch_ra_deg,
            cfg.patch_dec_deg,
            cfg.patch_radius_deg,
        );
        let center = unit(ra0, dec0);
        let cos_fov = cfg.fov_radius_deg.to_radians().cos();
        // Detections: every variable in the field, then the noise.
        let mut obj_ids = Vec::new();
        let mut obj_pos = Vec::new();
        let mut obj_n = Vec::new();
        let mut forced: Vec<(i64, f64, f64, [f64; 3])> = Vec::new();
        for (index, &(ra, dec, v)) in self.variables.iter().enumerate() {
            // A margin keeps rounding from putting a detection outside the
            // visit's region.
            if dot(v, center) < cos_fov + 1e-12 {
                continue;
            }
            if time - self.last_detected[index] <= cfg.forced_window_days {
                forced.push((index as i64 + 1, ra, dec, v));
            }
            self.n_sources[index] += 1;
            self.last_detected[index] = time;
            obj_ids.push(index as i64 + 1);
            obj_pos.push((ra, dec, v));
            obj_n.push(self.n_sources[index]);
        }
        while self
            .recent_noise
            .front()
            .is_some_and(|r| time - r.time > cfg.forced_window_days)
        {
            self.recent_noise.pop_front();
        }
        for r in &self.recent_noise {
            if dot(r.v, center) >= cos_fov + 1e-12 {
                forced.push((r.id, r.ra, r.dec, r.v));
            }
        }
        for _ in 0..cfg.noise_per_visit {
            let (ra, dec) = point_in_cap(&mut self.rng, ra0, dec0, cfg.fov_radius_deg * 0.999);
            let v = unit(ra, dec);
            let id = self.next_noise_id;
            self.next_noise_id += 1;
            obj_ids.push(id);
            obj_pos.push((ra, dec, v));
            obj_n.push(1);
            self.recent_noise.push_back(Recent {
                time,
                id,
                ra,
                dec,
                v,
            });
        }
        let n = obj_ids.len();
        let detectors: Vec<i16> = obj_pos
            .iter()
            .map(|p| detector_of(center, ra0, dec0, p.2))
            .collect();
        // DiaObject versions.
        let o = self.layout.table(ApdbTable::DiaObject).clone();
        let mut objects = random_table(&o.schema, n, &mut self.rng);
        set_i64(&mut objects, o.id, obj_ids.clone());
        set_f64(&mut objects, o.ra, obj_pos.iter().map(|p| p.0).collect());
        set_f64(&mut objects, o.dec, obj_pos.iter().map(|p| p.1).collect());
        set_f64(&mut objects, o.time, vec![time; n]);
        objects.columns[self.layout.validity_end] = null_column(ColumnType::F64, n);
        objects.columns[self.layout.n_dia_sources] = ColumnData::I32(PrimitiveColumn::new(obj_n));
        // DiaSources: one per detection, a little off the object.
        let s = self.layout.table(ApdbTable::DiaSource).clone();
        let mut sources = random_table(&s.schema, n, &mut self.rng);
        let source_ids: Vec<i64> = (0..n as i64).map(|i| self.next_source_id + i).collect();
        self.next_source_id += n as i64;
        set_i64(&mut sources, s.id, source_ids);
        set_i64(&mut sources, s.object_id, obj_ids);
        set_i64(&mut sources, s.visit.unwrap_or(0), vec![self.visit; n]);
        set_i16(&mut sources, s.detector.unwrap_or(0), detectors.clone());
        set_f64(&mut sources, s.ra, obj_pos.iter().map(|p| p.0).collect());
        set_f64(&mut sources, s.dec, obj_pos.iter().map(|p| p.1).collect());
        set_f64(&mut sources, s.time, vec![time; n]);
        sources.columns[self.layout.ss_object_id] = null_column(ColumnType::I64, n);
        sources.columns[self.layout.ss_reassoc_time] = null_column(ColumnType::F64, n);
        null_if_present(&mut sources, "timeWithdrawnMjdTai");
        set_band(&mut sources, &mut self.rng);
        // Forced photometry.
        let f = self.layout.table(ApdbTable::DiaForcedSource).clone();
        let m = forced.len();
        let mut forced_table = random_table(&f.schema, m, &mut self.rng);
        let forced_ids: Vec<i64> = (0..m as i64).map(|i| self.next_forced_id + i).collect();
        self.next_forced_id += m as i64;
        set_i64(&mut forced_table, f.id, forced_ids);
        set_i64(
            &mut forced_table,
            f.object_id,
            forced.iter().map(|x| x.0).collect(),
        );
        set_f64(
            &mut forced_table,
            f.ra,
            forced.iter().map(|x| x.1).collect(),
        );
        set_f64(
            &mut forced_table,
            f.dec,
            forced.iter().map(|x| x.2).collect(),
        );
        set_i64(&mut forced_table, f.visit.unwrap_or(0), vec![self.visit; m]);
        set_i16(
            &mut forced_table,
            f.detector.unwrap_or(0),
            forced
                .iter()
                .map(|x| detector_of(center, ra0, dec0, x.3))
                .collect(),
        );
        set_f64(&mut forced_table, f.time, vec![time; m]);
        null_if_present(&mut forced_table, "timeWithdrawnMjdTai");
        set_band(&mut forced_table, &mut self.rng);
        let region = Region::Circle(
            Circle::new(ra0, dec0, cfg.fov_radius_deg)
                .unwrap_or_else(|_| unreachable!("pointing inside the sky")),
        );
        Visit {
            visit: self.visit,
            time,
            ra_deg: ra0,
            dec_deg: dec0,
            region,
            objects,
            sources,
            forced_sources: forced_table,
            object_detectors: detectors,
        }
    }
}

fn set_i64(t: &mut Table, column: usize, values: Vec<i64>) {
    t.columns[column] = ColumnData::I64(PrimitiveColumn::new(values));
}

fn set_i16(t: &mut Table, column: usize, values: Vec<i16>) {
    t.columns[column] = ColumnData::I16(PrimitiveColumn::new(values));
}

fn set_f64(t: &mut Table, column: usize, values: Vec<f64>) {
    t.columns[column] = ColumnData::F64(PrimitiveColumn::new(values));
}

fn null_if_present(t: &mut Table, name: &str) {
    if let Some(index) = t.schema.column_index(name)
        && t.schema.columns[index].nullable
    {
        let n = t.rows();
        t.columns[index] = null_column(t.schema.columns[index].column_type, n);
    }
}

fn set_band(t: &mut Table, rng: &mut Rng) {
    if let Some(index) = t.schema.column_index("band")
        && t.schema.columns[index].column_type == ColumnType::Utf8
    {
        let n = t.rows();
        let mut var = VarColumn::default();
        for _ in 0..n {
            let b = [b"u", b"g", b"r", b"i", b"z", b"y"][rng.below(6) as usize];
            var.push(Some(b));
        }
        t.columns[index] = ColumnData::Utf8(var);
    }
}

/// A table of `rows` random non-null values for every column.
pub fn random_table(schema: &TableSchema, rows: usize, rng: &mut Rng) -> Table {
    let columns = schema
        .columns
        .iter()
        .map(|c| random_column(c.column_type, rows, rng))
        .collect();
    Table {
        schema: schema.clone(),
        columns,
    }
}

fn random_column(column_type: ColumnType, rows: usize, rng: &mut Rng) -> ColumnData {
    match column_type {
        ColumnType::Bool => ColumnData::Bool(BoolColumn {
            values: Bitmap::from_bools(&(0..rows).map(|_| rng.chance(0.1)).collect::<Vec<_>>()),
            validity: None,
        }),
        ColumnType::I8 => ColumnData::I8(PrimitiveColumn::new(
            (0..rows).map(|_| rng.below(100) as i8).collect(),
        )),
        ColumnType::I16 => ColumnData::I16(PrimitiveColumn::new(
            (0..rows).map(|_| rng.below(1000) as i16).collect(),
        )),
        ColumnType::I32 => ColumnData::I32(PrimitiveColumn::new(
            (0..rows).map(|_| rng.below(1000) as i32).collect(),
        )),
        ColumnType::I64 => ColumnData::I64(PrimitiveColumn::new(
            (0..rows).map(|_| rng.below(1 << 40) as i64).collect(),
        )),
        ColumnType::F32 => ColumnData::F32(PrimitiveColumn::new(
            (0..rows).map(|_| rng.normal() as f32 * 100.0).collect(),
        )),
        ColumnType::F64 => ColumnData::F64(PrimitiveColumn::new(
            (0..rows).map(|_| rng.normal() * 100.0).collect(),
        )),
        ColumnType::Utf8 | ColumnType::Binary => {
            let mut var = VarColumn::default();
            for _ in 0..rows {
                var.push(Some(b"x"));
            }
            if column_type == ColumnType::Utf8 {
                ColumnData::Utf8(var)
            } else {
                ColumnData::Binary(var)
            }
        }
    }
}

/// Counts rows per object id (tests).
pub fn count_by_object(table: &Table, column: usize) -> HashMap<i64, usize> {
    let mut map = HashMap::new();
    if let ColumnData::I64(c) = &table.columns[column] {
        for id in &c.values {
            *map.entry(*id).or_insert(0) += 1;
        }
    }
    map
}
