//! `skyscan demo`: what skyscan can do so far, on a synthetic catalog sized
//! for this machine. Generates an LSST-like Object table, partitions it with
//! Qserv's default partitioning into chunk files, reads every file back and
//! checks it row for row, reports size, compression and decode speed per
//! column, and shows region pruning with a cone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use skyscan_engine::chunk_stats::measure_columns;
use skyscan_engine::partition::{Placement, assign_rows, chunk_file_name, write_table_chunks};
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::Table;
use skyscan_format::{ChunkFile, ColumnData, WriterOptions};
use skyscan_kernel::take::take;
use skyscan_sky::{Chunker, Circle, Region};

/// Options of `skyscan demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of synthetic objects.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Objects per square degree (sets the sky area covered).
    #[arg(long, default_value_t = 200_000.0)]
    density: f64,
    /// Where to put the database (created; an existing demo database there is replaced).
    #[arg(long, default_value_os_t = crate::default_demo_dir())]
    dir: PathBuf,
    /// Seed of the synthetic catalog.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Marks a directory as made by `demo`, so a later run may replace it.
const DEMO_MARKER: &str = "SKYSCAN_DEMO";

/// Rows above which the demo refuses to run in memory.
const MAX_DEMO_ROWS: u64 = 200_000_000;

pub fn run(args: &DemoArgs) -> Result<(), String> {
    if args.rows == 0 || args.rows > MAX_DEMO_ROWS {
        return Err(format!(
            "demo: --rows must be in 1..={MAX_DEMO_ROWS} (the demo works in memory)"
        ));
    }
    if !(args.density.is_finite() && args.density >= 1.0) {
        return Err("demo: --density must be a number >= 1".to_string());
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 64);
    let table_dir = prepare_dir(&args.dir)?;
    let total = Instant::now();

    println!(
        "skyscan demo: {} synthetic LSST-like Objects, {threads} threads\n",
        args.rows
    );

    // 1. Generate.
    let spec = ObjectSpec::with_density(args.rows, args.density, args.seed);
    let started = Instant::now();
    let table = generate_objects(&spec, threads).into_table()?;
    let fp = spec.footprint;
    println!(
        "1. generated {} rows x {} columns ({}) over {:.1} deg² (ra {:.2}..{:.2}, decl {:.2}..{:.2}) in {}",
        table.rows(),
        table.schema.columns.len(),
        mib(table.raw_bytes()),
        fp.area_deg2(),
        fp.ra_min_deg,
        fp.ra_max_deg,
        fp.dec_min_deg,
        fp.dec_max_deg,
        secs(started.elapsed())
    );

    // 2. Partition and write.
    let chunker = Chunker::new(85, 12, 0.01667).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let summary = write_table_chunks(
        &table,
        &Placement {
            chunker: &chunker,
            ra_column: "ra",
            dec_column: "decl",
            with_overlap: true,
        },
        &table_dir,
        &WriterOptions::default(),
        threads,
    )?;
    let elapsed = started.elapsed();
    println!(
        "2. partitioned (85 stripes, 12 sub-stripes, overlap 1') into {} chunk files, {} row groups: \
         {} own rows + {} overlap copies, in {} ({:.2} M rows/s)",
        summary.chunk_ids.len(),
        summary.row_groups,
        summary.own_rows,
        summary.overlap_rows,
        secs(elapsed),
        summary.own_rows as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "   files: {} = blocks {} + footers {} + alignment padding {}",
        mib(summary.file_bytes),
        mib(summary.block_bytes),
        mib(summary.footer_bytes),
        mib(summary.padding_bytes)
    );

    // 3. Read back and verify every row.
    let started = Instant::now();
    let files = read_files(&table_dir, &summary.chunk_ids)?;
    let verified = verify(&table, &chunker, &summary.chunk_ids, &files)?;
    println!(
        "3. read back {} files and checked all {} rows (own + overlap) against the generated table: \
         identical, in {}",
        files.len(),
        verified,
        secs(started.elapsed())
    );

    // 4. Per-column compression and decode speed.
    let stats = measure_columns(&files, Duration::from_millis(60))?;
    println!("4. per column: size on disk and decode speed (one core, output bytes)\n");
    println!(
        "   {:<18} {:<6} {:>10} {:>10} {:>7}  {:<13} {:>9}",
        "column", "type", "raw", "encoded", "ratio", "encoding", "decode"
    );
    let (mut raw, mut encoded, mut time) = (0u64, 0u64, 0f64);
    for column in &stats {
        raw += column.raw_bytes;
        encoded += column.encoded_bytes;
        time += column.decode_time.as_secs_f64();
        println!(
            "   {:<18} {:<6} {:>10} {:>10} {:>7.3}  {:<13} {:>6.1} GB/s",
            column.name,
            format!("{:?}", column.column_type).to_lowercase(),
            mib(column.raw_bytes),
            mib(column.encoded_bytes),
            column.ratio(),
            column.main_encoding(),
            column.decode_bytes_per_s() / 1e9
        );
    }
    println!(
        "   {:<18} {:<6} {:>10} {:>10} {:>7.3}  {:<13} {:>6.1} GB/s\n",
        "all columns",
        "",
        mib(raw),
        mib(encoded),
        encoded as f64 / raw.max(1) as f64,
        "",
        raw as f64 / time.max(1e-9) / 1e9
    );

    // 5. A cone search, pruned to the sub-chunks it touches.
    cone_demo(&table, &chunker, &files, &summary.chunk_ids, spec.footprint)?;

    println!(
        "\ndone in {}. The chunk files are in {} (format: SPEC.md).\n\
         Try: echo '60.0,-30.0' | skyscan locate --overlap 0.01667\n\
         The format benchmark against Parquet: cargo run --release -p skyscan-bench -- format",
        secs(total.elapsed()),
        table_dir.display()
    );
    Ok(())
}

/// Creates `dir` (or empties a previous demo's), returning the Object table's directory.
fn prepare_dir(dir: &Path) -> Result<PathBuf, String> {
    let marker = dir.join(DEMO_MARKER);
    if dir.exists() {
        if !marker.exists() {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .next()
                .is_none();
            if !empty {
                return Err(format!(
                    "demo: {} exists and was not made by `skyscan demo`; choose another --dir",
                    dir.display()
                ));
            }
        }
        let table_dir = dir.join("Object");
        if table_dir.exists() {
            std::fs::remove_dir_all(&table_dir)
                .map_err(|e| format!("{}: {e}", table_dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(&marker, "made by `skyscan demo`; safe to delete\n")
        .map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(dir.join("Object"))
}

fn read_files(table_dir: &Path, chunk_ids: &[i32]) -> Result<Vec<Vec<u8>>, String> {
    chunk_ids
        .iter()
        .map(|&chunk_id| {
            let path = table_dir.join(chunk_file_name(chunk_id));
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

/// Decodes every block of every file and compares it with the generated rows
/// the partitioner put there. Returns the number of rows checked.
fn verify(
    table: &Table,
    chunker: &Chunker,
    chunk_ids: &[i32],
    files: &[Vec<u8>],
) -> Result<u64, String> {
    let assignment = assign_rows(
        chunker,
        table.f64_column("ra")?,
        table.f64_column("decl")?,
        true,
    )?;
    let mut rows_checked = 0u64;
    for (&chunk_id, bytes) in chunk_ids.iter().zip(files) {
        let name = chunk_file_name(chunk_id);
        let file = ChunkFile::from_bytes(bytes).map_err(|e| format!("{name}: {e}"))?;
        let expected = assignment
            .get(&chunk_id)
            .ok_or_else(|| format!("{name}: chunk not expected"))?;
        let groups = file.footer().row_groups();
        if groups.len() != expected.groups.len() {
            return Err(format!(
                "{name}: {} row groups, expected {}",
                groups.len(),
                expected.groups.len()
            ));
        }
        for (index, (meta, want)) in groups.iter().zip(&expected.groups).enumerate() {
            if meta.sub_chunk_id as i64 != want.sub_chunk_id as i64 || meta.overlap != want.overlap
            {
                return Err(format!(
                    "{name}: row group {index} is not sub-chunk {}",
                    want.sub_chunk_id
                ));
            }
            for (column_index, column) in table.columns.iter().enumerate() {
                let got = file
                    .read_block(index, column_index)
                    .map_err(|e| format!("{name}: {e}"))?;
                let want_column: ColumnData =
                    take(column, &want.rows).map_err(|e| e.to_string())?;
                if !got.logical_eq(&want_column) {
                    return Err(format!(
                        "{name}: row group {index} column {} differs from the generated rows",
                        table.schema.columns[column_index].name
                    ));
                }
            }
            rows_checked += want.rows.len() as u64;
        }
    }
    Ok(rows_checked)
}

/// Counts the objects in a cone two ways: by brute force over the generated
/// table, and by reading only the sub-chunks the cone's cover names.
fn cone_demo(
    table: &Table,
    chunker: &Chunker,
    files: &[Vec<u8>],
    chunk_ids: &[i32],
    footprint: skyscan_engine::synth::Footprint,
) -> Result<(), String> {
    let center_ra = (footprint.ra_min_deg + footprint.ra_max_deg) / 2.0 % 360.0;
    let center_dec = (footprint.dec_min_deg + footprint.dec_max_deg) / 2.0;
    let radius = 0.1;
    let cone = Circle::new(center_ra, center_dec, radius).map_err(|e| e.to_string())?;
    let region = Region::Circle(cone.clone());
    let (ra, dec) = (table.f64_column("ra")?, table.f64_column("decl")?);
    let brute = ra
        .iter()
        .zip(dec)
        .filter(|&(&r, &d)| cone.contains(r, d))
        .count();

    let started = Instant::now();
    let cover = chunker.sub_chunks_intersecting(&region);
    let (mut found, mut groups_read, mut groups_total) = (0usize, 0usize, 0usize);
    for (&chunk_id, bytes) in chunk_ids.iter().zip(files) {
        let file = ChunkFile::from_bytes(bytes).map_err(|e| e.to_string())?;
        let metas = file.footer().row_groups();
        groups_total += metas.iter().filter(|g| !g.overlap).count();
        let Some((_, sub_chunks)) = cover.iter().find(|(c, _)| *c == chunk_id) else {
            continue;
        };
        for (index, meta) in metas.iter().enumerate() {
            if meta.overlap || !sub_chunks.contains(&(meta.sub_chunk_id as i32)) {
                continue;
            }
            groups_read += 1;
            let (ColumnData::F64(r), ColumnData::F64(d)) = (
                file.read_block(index, 1).map_err(|e| e.to_string())?,
                file.read_block(index, 2).map_err(|e| e.to_string())?,
            ) else {
                return Err("ra/decl are not f64".to_string());
            };
            found += r
                .values
                .iter()
                .zip(&d.values)
                .filter(|&(&r, &d)| cone.contains(r, d))
                .count();
        }
    }
    let elapsed = started.elapsed();
    if found != brute {
        return Err(format!(
            "cone search found {found} objects, brute force {brute}"
        ));
    }
    println!(
        "5. cone of {radius}° at ({center_ra:.3}, {center_dec:.3}): {} chunks / {} sub-chunks in its cover; \
         read {groups_read} of {groups_total} row groups, found {found} objects (brute force over all rows: {brute}) in {}",
        cover.len(),
        cover.iter().map(|(_, s)| s.len()).sum::<usize>(),
        secs(elapsed)
    );
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}
