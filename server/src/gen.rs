//! `skyscan gen`: writes a synthetic LSST-like table (deterministic for a
//! seed) as mysqldump TSV or Parquet, with the `CREATE TABLE` schema file
//! `skyscan load` reads (docs/loading.md).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use skyscan_engine::synth::export::{schema_sql, write_parquet, write_tsv};
use skyscan_engine::synth::{
    ForcedSourceSpec, ObjectSpec, SkyStructure, SourceSpec, generate_forced_sources,
    generate_objects, generate_sources, wide_object_table,
};
use skyscan_engine::table::Table;

/// Largest table `gen` builds (it generates in memory: ~120 bytes per Object row).
pub const MAX_GEN_ROWS: u64 = 100_000_000;

/// Which synthetic table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenTable {
    /// The Object table (27 columns; director).
    Object,
    /// The Source table: detections of the Objects of the same `--rows` and `--seed`.
    Source,
    /// The ForcedSource table: forced photometry of the Objects of the same
    /// `--rows` and `--seed` on every one of `--visits` visits covering them.
    ForcedSource,
}

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenFormat {
    /// mysqldump `-T` text: tab-separated, `\N` NULL, backslash escapes.
    Tsv,
    /// Parquet, snappy-compressed.
    Parquet,
}

/// Sky density of the generated Objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenSky {
    /// The same density everywhere.
    Uniform,
    /// A galactic-plane-like dense band (10x the background at its centre)
    /// and empty regions, same mean density (`synth::SkyStructure::GalacticBand`).
    Band,
}

/// Options of `skyscan gen`.
#[derive(Args, Debug)]
pub struct GenArgs {
    /// Which table.
    #[arg(long, value_enum)]
    table: GenTable,
    /// Number of Objects (for `--table source`: the Objects whose detections are written).
    #[arg(long)]
    rows: u64,
    /// Mean Sources per Object (`--table source`).
    #[arg(long, default_value_t = 5.0)]
    sources_per_object: f64,
    /// Visits (`--table forced-source`), 1..=4096, each covering a 1.75° radius.
    #[arg(long, default_value_t = 20)]
    visits: u32,
    /// Objects per square degree (sets the sky area covered).
    #[arg(long, default_value_t = 200_000.0)]
    density: f64,
    /// Sky density structure of the Objects (and so of their Sources).
    #[arg(long, value_enum, default_value = "uniform")]
    sky: GenSky,
    /// Output format.
    #[arg(long, value_enum)]
    format: GenFormat,
    /// Output data file; the schema goes next to it with the extension `.sql`.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The 40-column Object table (27 columns plus model fluxes and errors in
    /// six bands and a shape flag); `--table object` only.
    #[arg(long)]
    wide: bool,
    /// Generator threads (default 2).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// The schema file written next to `out`: `out` with the extension `.sql`.
pub fn schema_path(out: &Path) -> PathBuf {
    out.with_extension("sql")
}

/// Generates the table `args` asks for.
fn generate(args: &GenArgs) -> Result<Table, String> {
    let structure = match args.sky {
        GenSky::Uniform => SkyStructure::Uniform,
        GenSky::Band => SkyStructure::GalacticBand,
    };
    let spec =
        ObjectSpec::with_density(args.rows, args.density, args.seed).with_structure(structure);
    if args.wide {
        if args.table != GenTable::Object {
            return Err("gen: --wide applies to --table object".to_string());
        }
        return wide_object_table(&spec, args.threads).map_err(|e| format!("gen: {e}"));
    }
    let objects = generate_objects(&spec, args.threads)
        .into_table()
        .map_err(|e| format!("gen: {e}"))?;
    match args.table {
        GenTable::Object => Ok(objects),
        GenTable::Source => generate_sources(
            &objects,
            &SourceSpec::new(args.sources_per_object, args.seed),
            args.threads,
        )
        .map_err(|e| format!("gen: {e}")),
        GenTable::ForcedSource => generate_forced_sources(
            &objects,
            &ForcedSourceSpec::new(args.visits, args.seed),
            args.threads,
        )
        .map_err(|e| format!("gen: {e}")),
    }
}

/// Runs `skyscan gen`.
pub fn run(args: &GenArgs) -> Result<(), String> {
    if args.rows == 0 || args.rows > MAX_GEN_ROWS {
        return Err(format!(
            "gen: --rows must be in 1..={MAX_GEN_ROWS} (gen builds the table in memory)"
        ));
    }
    if !(args.density.is_finite() && args.density >= 1.0) {
        return Err("gen: --density must be a number >= 1".to_string());
    }
    if !(1..=64).contains(&args.threads) {
        return Err("gen: --threads must be in 1..=64".to_string());
    }
    if args.table == GenTable::Source
        && !(args.sources_per_object.is_finite()
            && (0.0..=100.0).contains(&args.sources_per_object)
            && args.rows as f64 * args.sources_per_object <= MAX_GEN_ROWS as f64)
    {
        return Err(format!(
            "gen: --sources-per-object must be in 0..=100 and rows × sources-per-object at most \
             {MAX_GEN_ROWS}"
        ));
    }
    let schema_file = schema_path(&args.out);
    if schema_file == args.out {
        return Err(format!(
            "gen: --out {} must have an extension other than .sql",
            args.out.display()
        ));
    }
    if args.table == GenTable::ForcedSource
        && !(1..=skyscan_engine::synth::MAX_FORCED_VISITS).contains(&args.visits)
    {
        return Err(format!(
            "gen: --visits must be in 1..={}",
            skyscan_engine::synth::MAX_FORCED_VISITS
        ));
    }
    let started = Instant::now();
    let table = generate(args)?;
    if table.rows() as u64 > MAX_GEN_ROWS {
        return Err(format!(
            "gen: {} rows over the limit {MAX_GEN_ROWS}; use fewer --rows or --visits",
            table.rows()
        ));
    }
    let rows = table.rows() as u64;
    eprintln!(
        "gen: generated {} {} rows in {:.1} s",
        rows,
        table.schema.name,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&schema_file, schema_sql(&table.schema))
        .map_err(|e| format!("gen: {}: {e}", schema_file.display()))?;
    let file = File::create(&args.out).map_err(|e| format!("gen: {}: {e}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let write_started = Instant::now();
    let mut last_report = Instant::now();
    let mut progress = |written: u64| {
        if last_report.elapsed().as_secs_f64() >= 1.0 {
            last_report = Instant::now();
            let seconds = write_started.elapsed().as_secs_f64();
            eprintln!(
                "gen: wrote {written} of {rows} rows ({:.0} rows/s)",
                written as f64 / seconds.max(1e-9)
            );
        }
    };
    let written = match args.format {
        GenFormat::Tsv => write_tsv(&table, &mut out, &mut progress),
        GenFormat::Parquet => write_parquet(&table, &mut out, &mut progress),
    };
    written.map_err(|e| format!("gen: {}: {e}", args.out.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| format!("gen: {}: {}", args.out.display(), e.error()))?;
    file.sync_all()
        .map_err(|e| format!("gen: {}: {e}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {rows} rows of {} to {} ({bytes} bytes, {:.1} s); schema: {}",
        table.schema.name,
        args.out.display(),
        write_started.elapsed().as_secs_f64(),
        schema_file.display()
    );
    Ok(())
}
