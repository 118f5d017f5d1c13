//! Shared helpers of the APDB tests: the schema, a small workload, and a
//! brute-force model of what the APDB must answer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use skyscan_engine::apdb::rows::{append_rows, empty_table, take_rows};
use skyscan_engine::apdb::workload::{Visit, Workload, WorkloadConfig};
use skyscan_engine::apdb::{
    ApdbConfig, ApdbLayout, ApdbTable, FelisSchema, PARTITION_DAYS, ResultSet,
};
use skyscan_engine::table::Table;
use skyscan_format::ColumnData;
use skyscan_sky::Region;

pub fn schema_path() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../shared/testdata/apdb/apdb.yaml")
}

pub fn felis() -> FelisSchema {
    FelisSchema::from_file(&schema_path()).unwrap()
}

pub fn layout() -> ApdbLayout {
    ApdbLayout::new(felis()).unwrap()
}

/// A small workload: a few hundred objects per field, visits 5 days apart,
/// so that a few dozen visits span several partitions.
pub fn small_workload(seed: u64) -> WorkloadConfig {
    WorkloadConfig {
        seed,
        patch_radius_deg: 2.0,
        fov_radius_deg: 1.75,
        variables_per_field: 200,
        noise_per_visit: 40,
        days_per_visit: 5.0,
        ..WorkloadConfig::default()
    }
}

pub fn test_config() -> ApdbConfig {
    ApdbConfig {
        background_compaction: false,
        flush_rows: 2_000,
        ..ApdbConfig::default()
    }
}

/// Everything stored, as the model sees it.
pub struct Model {
    pub layout: ApdbLayout,
    pub tables: [Table; 3],
    /// Store seq of each row of each table.
    pub seqs: [Vec<u64>; 3],
    pub last_visit_time: Vec<(u64, f64)>,
    pub closes: Vec<(i64, f64, u64)>,
    pub reassigned: HashMap<i64, (i64, f64, u64)>,
}

impl Model {
    pub fn new(layout: ApdbLayout) -> Model {
        let tables = [0, 1, 2].map(|t| empty_table(&layout.tables[t].schema));
        Model {
            layout,
            tables,
            seqs: [Vec::new(), Vec::new(), Vec::new()],
            last_visit_time: Vec::new(),
            closes: Vec::new(),
            reassigned: HashMap::new(),
        }
    }

    pub fn add_visit(&mut self, visit: &Visit, seq: u64) {
        for (t, rows) in [&visit.objects, &visit.sources, &visit.forced_sources]
            .into_iter()
            .enumerate()
        {
            append_rows(&mut self.tables[t], rows).unwrap();
            self.seqs[t].extend(std::iter::repeat_n(seq, rows.rows()));
        }
        self.last_visit_time.push((seq, visit.time));
    }

    fn col_i64(&self, t: usize, c: usize) -> &[i64] {
        match &self.tables[t].columns[c] {
            ColumnData::I64(x) => &x.values,
            _ => panic!(),
        }
    }

    fn col_f64(&self, t: usize, c: usize) -> &[f64] {
        match &self.tables[t].columns[c] {
            ColumnData::F64(x) => &x.values,
            _ => panic!(),
        }
    }

    fn last_time(&self, seq: u64) -> f64 {
        self.last_visit_time
            .iter()
            .filter(|x| x.0 <= seq)
            .map(|x| x.1)
            .fold(0.0, f64::max)
    }

    /// (id, start) of every version visible at `seq`, and each version's end.
    fn versions(&self, seq: u64) -> HashMap<i64, Vec<f64>> {
        let o = self.layout.table(ApdbTable::DiaObject);
        let ids = self.col_i64(0, o.id);
        let starts = self.col_f64(0, o.time);
        let mut map: HashMap<i64, Vec<f64>> = HashMap::new();
        for r in 0..ids.len() {
            if self.seqs[0][r] <= seq {
                map.entry(ids[r]).or_default().push(starts[r]);
            }
        }
        for v in map.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        map
    }

    fn end_of(
        &self,
        versions: &HashMap<i64, Vec<f64>>,
        id: i64,
        start: f64,
        seq: u64,
    ) -> Option<f64> {
        let v = &versions[&id];
        let k = v.iter().position(|&s| s == start).unwrap();
        if let Some(next) = v.get(k + 1) {
            return Some(*next);
        }
        self.closes
            .iter()
            .filter(|c| c.0 == id && c.2 <= seq && c.1 > start)
            .map(|c| c.1)
            .next()
    }

    /// Expected `get_dia_objects(region)` at snapshot `seq`: sorted (id, start).
    pub fn latest_objects(
        &self,
        region: &Region,
        seq: u64,
        window_days: Option<f64>,
    ) -> Vec<(i64, u64)> {
        let o = self.layout.table(ApdbTable::DiaObject);
        let versions = self.versions(seq);
        let ids = self.col_i64(0, o.id);
        let starts = self.col_f64(0, o.time);
        let ra = self.col_f64(0, o.ra);
        let dec = self.col_f64(0, o.dec);
        let cutoff = window_days.map_or(f64::NEG_INFINITY, |d| self.last_time(seq) - d);
        let mut out = Vec::new();
        for r in 0..ids.len() {
            if self.seqs[0][r] > seq || starts[r] < cutoff || !region.contains(ra[r], dec[r]) {
                continue;
            }
            if self.end_of(&versions, ids[r], starts[r], seq).is_none() {
                out.push((ids[r], starts[r].to_bits()));
            }
        }
        out.sort();
        out
    }

    /// Expected as-of(t) objects: sorted (id, start, end bits or MAX).
    pub fn objects_as_of(&self, region: &Region, t: f64, seq: u64) -> Vec<(i64, u64, u64)> {
        let o = self.layout.table(ApdbTable::DiaObject);
        let versions = self.versions(seq);
        let ids = self.col_i64(0, o.id);
        let starts = self.col_f64(0, o.time);
        let ra = self.col_f64(0, o.ra);
        let dec = self.col_f64(0, o.dec);
        let mut out = Vec::new();
        for r in 0..ids.len() {
            if self.seqs[0][r] > seq || starts[r] > t || !region.contains(ra[r], dec[r]) {
                continue;
            }
            let end = self.end_of(&versions, ids[r], starts[r], seq);
            if end.is_none_or(|e| t < e) {
                out.push((
                    ids[r],
                    starts[r].to_bits(),
                    end.map_or(u64::MAX, f64::to_bits),
                ));
            }
        }
        out.sort();
        out
    }

    /// Expected source ids for `get_dia_sources` / forced (table 1 or 2).
    pub fn sources(
        &self,
        table: usize,
        region: &Region,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
        seq: u64,
    ) -> Vec<i64> {
        let t = &self.layout.tables[table];
        let after = visit_time - f64::from(months) * PARTITION_DAYS;
        let wanted: std::collections::HashSet<i64> = object_ids.iter().copied().collect();
        let ids = self.col_i64(table, t.id);
        let objs = self.col_i64(table, t.object_id);
        let time = self.col_f64(table, t.time);
        let ra = self.col_f64(table, t.ra);
        let dec = self.col_f64(table, t.dec);
        let mut out = Vec::new();
        for r in 0..ids.len() {
            if self.seqs[table][r] > seq
                || time[r] <= after
                || time[r] >= visit_time
                || !wanted.contains(&objs[r])
                || !region.contains(ra[r], dec[r])
            {
                continue;
            }
            if table == 1
                && let Some(re) = self.reassigned.get(&ids[r])
                && re.2 <= seq
                && re.1 <= visit_time
            {
                continue;
            }
            out.push(ids[r]);
        }
        out.sort();
        out
    }
}

/// (id, start bits) of a DiaObject result, sorted.
pub fn object_keys(layout: &ApdbLayout, set: &ResultSet) -> Vec<(i64, u64)> {
    let o = layout.table(ApdbTable::DiaObject);
    let mut out = Vec::new();
    for b in &set.batches {
        let (ColumnData::I64(ids), ColumnData::F64(st)) = (&b.columns[o.id], &b.columns[o.time])
        else {
            panic!()
        };
        for r in 0..b.rows() {
            out.push((ids.values[r], st.values[r].to_bits()));
        }
    }
    out.sort();
    out
}

/// (id, start, end) of an as-of result, sorted.
pub fn object_keys_with_end(layout: &ApdbLayout, set: &ResultSet) -> Vec<(i64, u64, u64)> {
    let o = layout.table(ApdbTable::DiaObject);
    let mut out = Vec::new();
    for b in &set.batches {
        let (ColumnData::I64(ids), ColumnData::F64(st), ColumnData::F64(end)) = (
            &b.columns[o.id],
            &b.columns[o.time],
            &b.columns[layout.validity_end],
        ) else {
            panic!()
        };
        for r in 0..b.rows() {
            out.push((
                ids.values[r],
                st.values[r].to_bits(),
                end.get(r).map_or(u64::MAX, f64::to_bits),
            ));
        }
    }
    out.sort();
    out
}

/// Ids of a source result, sorted.
pub fn ids(layout: &ApdbLayout, table: ApdbTable, set: &ResultSet) -> Vec<i64> {
    let t = layout.table(table);
    let mut out = Vec::new();
    for b in &set.batches {
        let ColumnData::I64(ids) = &b.columns[t.id] else {
            panic!()
        };
        out.extend(&ids.values);
    }
    out.sort();
    out
}

/// Checks that every row of a result equals the stored row of the same id
/// (every column, bit for bit), except the columns the APDB fills itself.
pub fn rows_match(model: &Model, table: ApdbTable, set: &ResultSet, skip: &[usize]) {
    let t = model.layout.table(table);
    let index: HashMap<(i64, u64), usize> = {
        let ids = model.col_i64(table as usize, t.id);
        let time = model.col_f64(table as usize, t.time);
        (0..ids.len())
            .map(|r| ((ids[r], time[r].to_bits()), r))
            .collect()
    };
    for b in &set.batches {
        let (ColumnData::I64(ids), ColumnData::F64(time)) = (&b.columns[t.id], &b.columns[t.time])
        else {
            panic!()
        };
        // A sample of rows (every column of each is compared).
        for r in (0..b.rows()).step_by(b.rows().div_ceil(8).max(1)) {
            let m = index[&(ids.values[r], time.values[r].to_bits())];
            let got = take_rows(b, &[r as u32]);
            let want = take_rows(&model.tables[table as usize], &[m as u32]);
            for c in 0..got.columns.len() {
                if skip.contains(&c) {
                    continue;
                }
                assert!(
                    got.columns[c].logical_eq(&want.columns[c]),
                    "{} column {} of id {} differs",
                    table.name(),
                    t.schema.columns[c].name,
                    ids.values[r]
                );
            }
        }
    }
}

/// Workload visits.
pub fn visits(config: WorkloadConfig, count: usize) -> Vec<Visit> {
    let mut w = Workload::new(config, layout());
    (0..count).map(|_| w.next_visit()).collect()
}
