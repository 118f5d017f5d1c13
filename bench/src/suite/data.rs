//! The suite's data: a synthetic Object table and its Sources, written once
//! as Parquet (what every engine loads), then loaded into skyscan from those
//! files through the loader `skyscan load` uses (timed: the load rate).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use skyscan_engine::catalog::{Database, LoadOptions, Partitioning, TableDef, TableKind};
use skyscan_engine::ingest::schema::parse_schema_sql;
use skyscan_engine::loader::{FileSource, load_source};
use skyscan_engine::synth::export::{schema_sql, write_parquet};
use skyscan_engine::synth::{
    Footprint, ObjectSpec, Rng, SourceSpec, generate_objects, generate_sources,
};
use skyscan_engine::table::{Table, column_raw_bytes};
use skyscan_format::ColumnData;

/// The skyscan database the suite's tables live in.
pub const DATABASE: &str = "suite";

/// Most objects whose ids and positions are sampled for the LV queries.
const MAX_SAMPLES: usize = 10_000;

/// What the queries are parameterized with, drawn from the generated rows.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The Object Parquet file every peer loads.
    pub object_parquet: PathBuf,
    /// The Source Parquet file.
    pub source_parquet: PathBuf,
    /// Object rows.
    pub objects: u64,
    /// Source rows.
    pub sources: u64,
    /// Raw bytes of both tables (the columns' values, no overlap).
    pub raw_bytes: u64,
    /// Bytes of both Parquet files.
    pub parquet_bytes: u64,
    /// Where the objects lie.
    pub footprint: Footprint,
    /// Object ids drawn at random (LV1, LV2, LV4).
    pub sample_ids: Vec<i64>,
    /// Positions of other random objects (LV3 cone centres).
    pub sample_positions: Vec<(f64, f64)>,
    /// HV5's HAVING threshold: few objects have this many sources.
    pub min_sources: u64,
    /// Seconds to generate the rows and write the Parquet files.
    pub generate_seconds: f64,
    /// `Table.column` → its decoded bytes (values and validity): what a
    /// hot scan must at least touch, for the per-class floor.
    pub column_bytes: BTreeMap<String, u64>,
}

/// skyscan's load of the two Parquet files.
#[derive(Debug, Clone)]
pub struct SkyscanLoad {
    /// The database root.
    pub root: PathBuf,
    /// Wall seconds of both loads (read Parquet, place, encode, write, index, commit).
    pub seconds: f64,
    /// Overlap copies written for the director.
    pub overlap_rows: u64,
    /// Chunks of the Object table.
    pub chunks: u64,
    /// Bytes of the database directory.
    pub bytes: u64,
}

fn i64_column<'a>(table: &'a Table, name: &str) -> Result<&'a [i64], String> {
    match table.column(name) {
        Some(ColumnData::I64(c)) => Ok(&c.values),
        _ => Err(format!("{}: no i64 column {name}", table.schema.name)),
    }
}

fn write_parquet_file(table: &Table, path: &Path) -> Result<u64, String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write_parquet(table, &mut out, &mut |_| {})?;
    out.flush()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    drop(out);
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Generates `objects` Objects at `density` per deg² with about
/// `sources_per_object` Sources each, writes both as Parquet into `dir`, and
/// draws the query parameters (`samples` ids and positions).
pub fn generate(
    dir: &Path,
    objects: u64,
    sources_per_object: f64,
    density: f64,
    samples: usize,
    threads: usize,
) -> Result<Dataset, String> {
    let started = Instant::now();
    let spec = ObjectSpec::with_density(objects, density, 42);
    let object_table = generate_objects(&spec, threads).into_table()?;
    let source_table = generate_sources(
        &object_table,
        &SourceSpec::new(sources_per_object, 43),
        threads,
    )?;
    let object_parquet = dir.join("Object.parquet");
    let source_parquet = dir.join("Source.parquet");
    let parquet_bytes = write_parquet_file(&object_table, &object_parquet)?
        + write_parquet_file(&source_table, &source_parquet)?;
    std::fs::write(dir.join("Object.sql"), schema_sql(&object_table.schema))
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("Source.sql"), schema_sql(&source_table.schema))
        .map_err(|e| e.to_string())?;

    let ids = i64_column(&object_table, "objectId")?;
    let ra = object_table.f64_column("ra")?;
    let decl = object_table.f64_column("decl")?;
    if ids.is_empty() {
        return Err("no objects generated".to_string());
    }
    let mut rng = Rng::new(7, 1);
    let samples = samples.clamp(1, MAX_SAMPLES);
    let mut sample_ids = Vec::with_capacity(samples);
    let mut sample_positions = Vec::with_capacity(samples);
    for _ in 0..samples {
        sample_ids.push(ids[rng.below(ids.len() as u64) as usize]);
        let other = rng.below(ids.len() as u64) as usize;
        sample_positions.push((ra[other], decl[other]));
    }

    // HV5's threshold: the smallest source count at most ~0.1% of the
    // objects reach, so the answer stays small at any size.
    let mut per_object: Vec<i64> = i64_column(&source_table, "objectId")?.to_vec();
    per_object.sort_unstable();
    let mut histogram: Vec<u64> = Vec::new();
    let mut run = 0usize;
    for (index, id) in per_object.iter().enumerate() {
        run += 1;
        if per_object.get(index + 1) != Some(id) {
            if histogram.len() <= run {
                histogram.resize(run + 1, 0);
            }
            histogram[run] += 1;
            run = 0;
        }
    }
    let target = (objects / 1000).max(5);
    let mut at_least = 0u64;
    let mut min_sources = histogram.len() as u64;
    for count in (1..histogram.len()).rev() {
        if at_least + histogram[count] > target {
            break;
        }
        at_least += histogram[count];
        min_sources = count as u64;
    }

    let mut column_bytes = BTreeMap::new();
    for table in [&object_table, &source_table] {
        for (def, column) in table.schema.columns.iter().zip(&table.columns) {
            column_bytes.insert(
                format!("{}.{}", table.schema.name, def.name),
                column_raw_bytes(column),
            );
        }
    }

    Ok(Dataset {
        column_bytes,
        object_parquet,
        source_parquet,
        objects: object_table.rows() as u64,
        sources: source_table.rows() as u64,
        raw_bytes: object_table.raw_bytes() + source_table.raw_bytes(),
        parquet_bytes,
        footprint: spec.footprint,
        sample_ids,
        sample_positions,
        min_sources,
        generate_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Bytes of every file under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Loads both Parquet files into a new skyscan database at `root` (Object
/// as the director, Source as its child by objectId), as `skyscan load`
/// does: `threads` threads, O_DIRECT chunk writes.
pub fn load_skyscan(data: &Dataset, dir: &Path, threads: usize) -> Result<SkyscanLoad, String> {
    let root = dir.join("skyscan-db");
    let db = Database::create(&root, &[]).map_err(|e| e.to_string())?;
    let partitioning = Partitioning::qserv_default();
    let options = LoadOptions {
        threads,
        direct_writes: true,
        ..LoadOptions::default()
    };
    let started = Instant::now();
    let mut rows = 0;
    let mut overlap_rows = 0;
    let mut chunks = 0;
    for (name, parquet) in [
        ("Object", &data.object_parquet),
        ("Source", &data.source_parquet),
    ] {
        let sql_path = dir.join(format!("{name}.sql"));
        let text = std::fs::read_to_string(&sql_path).map_err(|e| e.to_string())?;
        let sql = parse_schema_sql(&text, &sql_path.display().to_string())
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("no table in the generated schema")?;
        let def = if name == "Object" {
            TableDef::director(&sql.schema, "objectId", "ra", "decl", partitioning, 20)
        } else {
            TableDef {
                name: name.to_string(),
                kind: TableKind::Child {
                    director_table: "Object".to_string(),
                    foreign_key_column: "objectId".to_string(),
                    ra_column: None,
                    decl_column: None,
                },
                columns: TableDef::columns_of(&sql.schema),
                partitioning: Some(Partitioning {
                    overlap_deg: 0.0,
                    ..partitioning
                }),
                scan_rating: 25,
            }
        };
        let source = FileSource::new(std::slice::from_ref(parquet), &sql, b',')
            .map_err(|e| e.to_string())?;
        let mut load = db.begin_load(DATABASE, def).map_err(|e| e.to_string())?;
        let summary = load_source(&mut load, &source, &options, None)
            .map_err(|e| format!("loading {name}: {e}"))?;
        load.commit().map_err(|e| e.to_string())?;
        rows += summary.rows;
        if name == "Object" {
            overlap_rows = summary.overlap_rows;
            chunks = summary.chunks;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if rows != data.objects + data.sources {
        return Err(format!(
            "skyscan loaded {rows} rows, expected {}",
            data.objects + data.sources
        ));
    }
    Ok(SkyscanLoad {
        bytes: dir_bytes(&root),
        root,
        seconds,
        overlap_rows,
        chunks,
    })
}
