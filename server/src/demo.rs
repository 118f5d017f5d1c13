//! `skyscan demo`: what skyscan does, on a synthetic catalog sized for this
//! machine. Generates LSST-like Object and Source tables, loads them with
//! Qserv's default partitioning into chunk files, reads every file back and
//! checks it row for row, reports size, compression and decode speed per
//! column, shows region pruning with a cone, runs LSST's query classes
//! through the query engine, and sixteen full scans at once on one convoy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use skyscan_engine::catalog::inspect::verify_database;
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, TableKind, load_table_in_memory,
};
use skyscan_engine::chunk_stats::measure_columns;
use skyscan_engine::partition::assign_rows;
use skyscan_engine::query::{CollectSink, EngineOptions, ExecOptions, Progress, QueryEngine};
use skyscan_engine::synth::{ObjectSpec, SourceSpec, generate_objects, generate_sources};
use skyscan_engine::table::Table;
use skyscan_format::{ChunkFile, ColumnData};
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
    /// Mean number of Sources (detections) per Object.
    #[arg(long, default_value_t = 5.0)]
    sources_per_object: f64,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Marks a database made by `demo`, so a later run may replace it (and no other directory).
const DEMO_MARKER: &str = "SKYSCAN_DEMO";

/// The database (namespace) the demo's tables live in.
const DEMO_DATABASE: &str = "demo";

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
    if !(args.sources_per_object.is_finite() && (0.0..=100.0).contains(&args.sources_per_object)) {
        return Err("demo: --sources-per-object must be in [0, 100]".to_string());
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 64);
    prepare_dir(&args.dir)?;
    let total = Instant::now();

    println!(
        "skyscan demo: {} synthetic LSST-like Objects, {threads} threads\n",
        args.rows
    );

    // 1. Generate.
    let spec = ObjectSpec::with_density(args.rows, args.density, args.seed);
    let started = Instant::now();
    let objects = generate_objects(&spec, threads).into_table()?;
    let sources = generate_sources(
        &objects,
        &SourceSpec::new(args.sources_per_object, args.seed),
        threads,
    )?;
    let fp = spec.footprint;
    println!(
        "1. generated {} Objects x {} columns ({}) over {:.1} deg² (ra {:.2}..{:.2}, decl {:.2}..{:.2}) \
         and {} Sources x {} columns ({}) in {}",
        objects.rows(),
        objects.schema.columns.len(),
        mib(objects.raw_bytes()),
        fp.area_deg2(),
        fp.ra_min_deg,
        fp.ra_max_deg,
        fp.dec_min_deg,
        fp.dec_max_deg,
        sources.rows(),
        sources.schema.columns.len(),
        mib(sources.raw_bytes()),
        secs(started.elapsed())
    );

    // 2. Load both tables into a database: Object as the director (overlap copies and the
    //    director index), Source as its child (placed by objectId through the index).
    let db = Database::create(&args.dir, &[]).map_err(|e| e.to_string())?;
    let marker = args.dir.join(DEMO_MARKER);
    std::fs::write(
        &marker,
        "made by `skyscan demo`; a later demo run replaces this database\n",
    )
    .map_err(|e| format!("{}: {e}", marker.display()))?;
    let options = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    let partitioning = Partitioning::qserv_default();
    let object_def =
        TableDef::director(&objects.schema, "objectId", "ra", "decl", partitioning, 15);
    let started = Instant::now();
    let loaded = load_table_in_memory(&db, DEMO_DATABASE, object_def, &objects, &options)
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    println!(
        "2. loaded Object (85 stripes, 12 sub-stripes, overlap 1'): {} chunk files, {} rows + {} overlap \
         copies, director index of {} keys, {} on disk, in {} ({:.2} M rows/s)",
        loaded.chunks,
        loaded.rows,
        loaded.overlap_rows,
        loaded.director_index_entries.unwrap_or(0),
        mib(loaded.chunk_bytes),
        secs(elapsed),
        loaded.rows as f64 / elapsed.as_secs_f64() / 1e6
    );
    let source_def = TableDef {
        name: "Source".to_string(),
        kind: TableKind::Child {
            director_table: "Object".to_string(),
            foreign_key_column: "objectId".to_string(),
            ra_column: None,
            decl_column: None,
        },
        columns: TableDef::columns_of(&sources.schema),
        partitioning: Some(Partitioning {
            overlap_deg: 0.0,
            ..partitioning
        }),
        scan_rating: 25,
    };
    let started = Instant::now();
    let loaded = load_table_in_memory(&db, DEMO_DATABASE, source_def, &sources, &options)
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    println!(
        "   loaded Source as Object's child: {} chunk files, {} rows, {} on disk, in {} ({:.2} M rows/s)",
        loaded.chunks,
        loaded.rows,
        mib(loaded.chunk_bytes),
        secs(elapsed),
        loaded.rows as f64 / elapsed.as_secs_f64() / 1e6
    );

    // 3. Read back and verify every row; then every checksum, as `skyscan verify` does.
    let started = Instant::now();
    let chunker = Chunker::new(85, 12, 0.01667).map_err(|e| e.to_string())?;
    let chunk_ids: Vec<i32> = db
        .catalog()
        .table(DEMO_DATABASE, "Object")
        .map(|t| t.chunks.iter().map(|c| c.chunk_id).collect())
        .unwrap_or_default();
    let files = read_files(&db, "Object", &chunk_ids)?;
    let verified = verify(&objects, &chunker, &chunk_ids, &files)?;
    let report = verify_database(&db, &db.catalog(), &mut |_| {}).map_err(|e| e.to_string())?;
    if !report.is_clean() {
        return Err(format!(
            "demo: verify found problems: {:?}",
            report.problems
        ));
    }
    println!(
        "3. read back {} Object chunk files and checked all {} rows (own + overlap) against the generated \
         table: identical; every checksum of both tables and the director index verified; in {}",
        files.len(),
        verified,
        secs(started.elapsed())
    );

    // 4. Per-column compression and decode speed.
    let stats = measure_columns(&files, Duration::from_millis(60))?;
    println!("4. Object per column: size on disk and decode speed (one core, output bytes)\n");
    print_column_stats(&stats);

    // 5. A cone search, pruned to the sub-chunks it touches.
    cone_demo(&objects, &chunker, &files, &chunk_ids, spec.footprint)?;
    drop(files);

    // 6. The query mix of Qserv's performance tests, through an embedded
    //    server (loopback, a free port) and the Rust client, as a user
    //    would ask it.
    let engine = std::sync::Arc::new(QueryEngine::new(
        Database::open(&args.dir).map_err(|e| e.to_string())?,
        EngineOptions {
            default_database: Some(DEMO_DATABASE.to_string()),
            ..EngineOptions::default()
        },
    ));
    let server = skyscan_server::start(
        engine,
        skyscan_server::ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..skyscan_server::ServerConfig::default()
        },
    )?;
    let mix = query_mix(server.local_addr(), &objects, spec.footprint);
    server.shutdown();
    mix?;

    // 7. Many scans at once, riding one convoy. The demo's catalog has few
    //    chunks, and queries touching fewer than 10 bypass the convoys, so
    //    this engine sends every scan of more than one chunk to them.
    let convoy_engine = QueryEngine::new(
        Database::open(&args.dir).map_err(|e| e.to_string())?,
        EngineOptions {
            default_database: Some(DEMO_DATABASE.to_string()),
            scan: skyscan_engine::scan::EngineConfig {
                interactive_max_chunks: 2,
                ..skyscan_engine::scan::EngineConfig::default()
            },
            ..EngineOptions::default()
        },
    );
    shared_scans(&convoy_engine)?;

    println!(
        "\n8. the database, as `skyscan info {}` shows it:\n",
        args.dir.display()
    );
    crate::admin::info(&args.dir)?;

    println!(
        "\ndone in {}. The database is in {dir} (layout and bytes: SPEC.md).\n\
         Try: skyscan info {dir}   |   skyscan verify {dir}   |   echo '60.0,-30.0' | skyscan locate --overlap 0.01667\n\
         Benchmarks against DuckDB: cargo run --release -p skyscan-bench -- query   (and: format, load, shared, spatial)",
        secs(total.elapsed()),
        dir = args.dir.display()
    );
    Ok(())
}

/// One query of the mix: a label, the SQL, and how many rows to show.
struct MixQuery {
    label: &'static str,
    sql: String,
    show: usize,
}

/// Runs LSST's query classes (LDM-552: LV low-volume, HV high-volume) and
/// prints each query, the first rows of its answer and its time.
fn query_mix(
    server: std::net::SocketAddr,
    objects: &Table,
    footprint: skyscan_engine::synth::Footprint,
) -> Result<(), String> {
    let ids = match objects.column("objectId") {
        Some(ColumnData::I64(c)) => &c.values,
        _ => return Err("no objectId column".to_string()),
    };
    let id = ids[ids.len() / 3];
    let ra = ((footprint.ra_min_deg + footprint.ra_max_deg) / 2.0) % 360.0;
    let dec = (footprint.dec_min_deg + footprint.dec_max_deg) / 2.0;
    let mag = |band: &str| format!("scisql_nanojanskyToAbMag({band}_psfFlux)");
    let mix = vec![
        MixQuery { label: "LV1 one object by id", sql: format!("SELECT objectId, ra, decl, r_psfFlux FROM Object WHERE objectId = {id}"), show: 1 },
        MixQuery {
            label: "LV2 its light curve",
            sql: format!("SELECT midpointMjdTai, band, psfFlux FROM Source WHERE objectId = {id} ORDER BY midpointMjdTai"),
            show: 3,
        },
        MixQuery {
            label: "LV3 cone of 10 arcmin",
            sql: format!("SELECT COUNT(*), AVG(r_psfFlux) FROM Object WHERE qserv_areaspec_circle({ra:.4}, {dec:.4}, 0.1667)"),
            show: 1,
        },
        MixQuery {
            label: "LV4 object with its sources",
            sql: format!(
                "SELECT o.objectId, COUNT(s.sourceId), MIN(s.midpointMjdTai) FROM Object o JOIN Source s USING (objectId) \
                 WHERE o.objectId = {id} GROUP BY o.objectId"
            ),
            show: 1,
        },
        MixQuery {
            label: "HV1 full scan, colour cuts",
            sql: format!("SELECT COUNT(*) FROM Object WHERE {g} - {r} > 0.7 AND {r} < 24 AND extendedness > 0.5", g = mag("g"), r = mag("r")),
            show: 1,
        },
        MixQuery {
            label: "HV2 full scan, magnitude histogram",
            sql: format!("SELECT FLOOR({r}) AS r_mag, COUNT(*) FROM Object WHERE {r} < 30 GROUP BY r_mag ORDER BY r_mag", r = mag("r")),
            show: 4,
        },
        MixQuery {
            label: "HV3 near neighbours within 30 arcsec in 0.1 deg²",
            sql: format!(
                "SELECT COUNT(*) FROM Object o1, Object o2 WHERE qserv_areaspec_box({:.4}, {:.4}, {:.4}, {:.4}) \
                 AND scisql_angSep(o1.ra, o1.decl, o2.ra, o2.decl) < 0.00833 AND o1.objectId < o2.objectId",
                ra - 0.16,
                dec - 0.16,
                ra + 0.16,
                dec + 0.16
            ),
            show: 1,
        },
        MixQuery {
            label: "HV4 Object ⋈ Source with a cut",
            sql: "SELECT COUNT(*), AVG(s.psfFlux) FROM Object o JOIN Source s ON o.objectId = s.objectId WHERE o.extendedness < 0.5 AND s.psfFlux > 2000".to_string(),
            show: 1,
        },
        MixQuery {
            label: "HV5 GROUP BY over Source",
            sql: "SELECT band, COUNT(*), AVG(psfFlux) FROM Source GROUP BY band ORDER BY band".to_string(),
            show: 6,
        },
    ];
    println!(
        "\n6. LSST's query classes (LDM-552), through a skyscan server on {server} and the Rust client:\n"
    );
    let mut client =
        skyscan_client::Client::connect(server, &skyscan_client::ConnectOptions::default())
            .map_err(|e| format!("connecting to the demo's server: {e}"))?;
    let options = arrow_cast::display::FormatOptions::default().with_null("NULL");
    for q in &mix {
        let started = Instant::now();
        let result = client
            .query_all(&q.sql)
            .map_err(|e| format!("{}: {e}", q.label))?;
        let elapsed = started.elapsed();
        println!(
            "   {} — {} rows in {:.1} ms, {} of {} chunks",
            q.label,
            result.rows(),
            elapsed.as_secs_f64() * 1e3,
            result.stats.chunks,
            result.stats.chunks_total
        );
        println!("     {}", q.sql);
        let names: Vec<&str> = result
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        println!("     | {}", names.join(" | "));
        let rows = result
            .batches
            .iter()
            .map(|batch| crate::output::cells(batch, &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in rows.iter().flatten().take(q.show) {
            println!("     | {}", row.join(" | "));
        }
    }
    println!(
        "\n   The same from Python: pip install ./clients/python; then\n   \
         import skyscan; skyscan.connect('127.0.0.1', 7077).query('SELECT ...').to_pandas()\n   \
         (after `skyscan serve DB`; or `skyscan shell`)."
    );
    Ok(())
}

/// Sixteen different full scans at once: they ride one convoy, so they cost
/// about as much as the slowest of them alone. Progress is shown live.
fn shared_scans(engine: &QueryEngine) -> Result<(), String> {
    let bands = ["u", "g", "r", "i", "z", "y"];
    let queries: Vec<String> = (0..16)
        .map(|i| {
            let band = bands[i % 6];
            format!(
                "SELECT COUNT(*), AVG({band}_psfFlux) FROM Object WHERE {band}_psfFlux > {}",
                500 * (i + 1)
            )
        })
        .collect();
    let alone = {
        let started = Instant::now();
        engine.query(&queries[0]).map_err(|e| e.to_string())?;
        started.elapsed()
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total_chunks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let outcome: Result<Vec<()>, String> = std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .iter()
            .map(|sql| {
                let done = std::sync::Arc::clone(&done);
                let total_chunks = std::sync::Arc::clone(&total_chunks);
                scope.spawn(move || {
                    let counted = std::sync::atomic::AtomicBool::new(false);
                    let options = ExecOptions {
                        progress: Some(std::sync::Arc::new(move |p: Progress| {
                            if !counted.swap(true, std::sync::atomic::Ordering::Relaxed) {
                                total_chunks.fetch_add(
                                    p.chunks_total,
                                    std::sync::atomic::Ordering::Relaxed,
                                );
                            }
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        })),
                        ..ExecOptions::default()
                    };
                    let mut sink = CollectSink::new(1 << 30);
                    engine
                        .query_with(sql, &options, &mut sink)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        // Live progress while they run.
        while !handles.iter().all(|h| h.is_finished()) {
            let (d, t) = (
                done.load(std::sync::atomic::Ordering::Relaxed),
                total_chunks.load(std::sync::atomic::Ordering::Relaxed),
            );
            eprint!("\r   16 scans: {d}/{} chunk tasks done", t.max(d));
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a scan panicked".to_string()))
            })
            .collect()
    });
    outcome?;
    let together = started.elapsed();
    println!(
        "\n7. 16 different full scans at once on the convoys: {:.1} ms, against {:.1} ms for one alone \
         ({:.1}x the time of one; each chunk is read and decoded once for all of them, the per-query \
         filtering and aggregation remain)",
        together.as_secs_f64() * 1e3,
        alone.as_secs_f64() * 1e3,
        together.as_secs_f64() / alone.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn print_column_stats(stats: &[skyscan_engine::chunk_stats::ColumnStats]) {
    println!(
        "   {:<18} {:<6} {:>10} {:>10} {:>7}  {:<13} {:>9}",
        "column", "type", "raw", "encoded", "ratio", "encoding", "decode"
    );
    let (mut raw, mut encoded, mut time) = (0u64, 0u64, 0f64);
    for column in stats {
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
        "   {:<18} {:<6} {:>10} {:>10} {:>7.3}  {:<13} {:>6.1} GB/s",
        "all columns",
        "",
        mib(raw),
        mib(encoded),
        encoded as f64 / raw.max(1) as f64,
        "",
        raw as f64 / time.max(1e-9) / 1e9
    );
}

/// Makes sure `dir` is free for a new demo database: absent, empty, or a previous demo's.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let marker = dir.join(DEMO_MARKER);
    let empty = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .next()
        .is_none();
    if !marker.exists() && !empty {
        return Err(format!(
            "demo: {} exists and was not made by `skyscan demo`; choose another --dir",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn read_files(db: &Database, table: &str, chunk_ids: &[i32]) -> Result<Vec<Vec<u8>>, String> {
    chunk_ids
        .iter()
        .map(|&chunk_id| {
            let path = db
                .chunk_file(DEMO_DATABASE, table, chunk_id)
                .map_err(|e| e.to_string())?;
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
        let name = format!("Object chunk {chunk_id}");
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
