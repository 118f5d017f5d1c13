//! The format benchmark: our chunk files against Parquet on the same columns.
//!
//! Rows are the synthetic LSST-like Object table, partitioned with Qserv's
//! default 85/12 partitioning (own rows only: overlap copies are a feature of
//! ours that Parquet files would not hold), in file order (chunk, sub-chunk,
//! declination). The same rows in the same order are handed to pyarrow.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use skyscan_engine::catalog::{
    Database, LoadOptions, Partitioning, TableDef, load_table_in_memory,
};
use skyscan_engine::chunk_stats::{ColumnStats, measure_columns};
use skyscan_engine::partition::assign_rows;
use skyscan_engine::synth::{ObjectSpec, generate_objects};
use skyscan_engine::table::Table;
use skyscan_format::{ChunkFile, ColumnData, EncodeOptions, encode_block};
use skyscan_kernel::take::take;
use skyscan_sky::Chunker;

/// Options of `skyscan-bench format`.
#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Objects to generate.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Objects per square degree (sets rows per sub-chunk: ~0.031 deg² each at 85/12).
    #[arg(long, default_value_t = 200_000.0)]
    density: f64,
    /// Seed of the synthetic catalog.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Minimum decode time per column (ms); more gives steadier figures.
    #[arg(long, default_value_t = 100)]
    min_decode_ms: u64,
    /// Skip the Parquet peer (no Python needed).
    #[arg(long)]
    no_peer: bool,
}

struct PeerSizes {
    version: String,
    snappy_file: u64,
    zstd_file: u64,
    snappy: Vec<(String, u64)>,
    zstd: Vec<(String, u64)>,
}

pub fn run(args: &FormatArgs) -> Result<(), String> {
    if args.rows == 0 || args.rows > 100_000_000 {
        return Err("--rows must be in 1..=100000000".to_string());
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spec = ObjectSpec::with_density(args.rows, args.density, args.seed);
    let table = generate_objects(&spec, threads).into_table()?;
    let chunker = Chunker::new(85, 12, 0.01667).map_err(|e| e.to_string())?;
    let dir = crate::scratch_dir("format");
    let result = run_in(args, &table, &chunker, &dir, threads);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    args: &FormatArgs,
    table: &Table,
    chunker: &Chunker,
    dir: &Path,
    threads: usize,
) -> Result<(), String> {
    // Own rows only: a director table with overlap radius 0 gets no overlap copies.
    let db = Database::create(&dir.join("db"), &[]).map_err(|e| e.to_string())?;
    let partitioning = Partitioning {
        overlap_deg: 0.0,
        ..Partitioning::qserv_default()
    };
    let def = TableDef::director(&table.schema, "objectId", "ra", "decl", partitioning, 15);
    let options = LoadOptions {
        threads,
        director_index: false,
        ..LoadOptions::default()
    };
    let started = Instant::now();
    let loaded =
        load_table_in_memory(&db, "bench", def, table, &options).map_err(|e| e.to_string())?;
    let write_time = started.elapsed();
    let entry = db
        .catalog()
        .table("bench", "Object")
        .cloned()
        .ok_or("the loaded table is missing")?;
    let mut files = Vec::with_capacity(entry.chunks.len());
    for chunk in &entry.chunks {
        let path = db
            .chunk_file("bench", "Object", chunk.chunk_id)
            .map_err(|e| e.to_string())?;
        files.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let row_groups: usize = files
        .iter()
        .map(|f| ChunkFile::from_bytes(f).map(|c| c.footer().row_groups().len()))
        .sum::<Result<usize, _>>()
        .map_err(|e| e.to_string())?;
    let stats = measure_columns(&files, Duration::from_millis(args.min_decode_ms))?;
    let encode_times = encode_times(&files, Duration::from_millis(args.min_decode_ms))?;

    let peer = if args.no_peer {
        None
    } else {
        Some(parquet_peer(table, chunker, dir)?)
    };

    println!(
        "format benchmark: {} Objects x {} columns, {} chunk files, {} row groups ({:.0} rows each), \
         loaded in {:.2} s ({:.2} M rows/s, {threads} threads)",
        table.rows(),
        table.schema.columns.len(),
        files.len(),
        row_groups,
        table.rows() as f64 / row_groups.max(1) as f64,
        write_time.as_secs_f64(),
        loaded.rows as f64 / write_time.as_secs_f64() / 1e6
    );
    if let Some(peer) = &peer {
        println!(
            "peer: pyarrow {} Parquet, same rows in the same order, default settings\n",
            peer.version
        );
    }
    println!(
        "{:<18} {:<6} {:>11} {:>11} {:>7} {:<13} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9}",
        "column",
        "type",
        "raw",
        "skyscan",
        "ratio",
        "encoding",
        "decode",
        "encode",
        "pq-snappy",
        "pq-zstd",
        "vs snappy",
        "vs zstd"
    );
    let mut slowest: Option<&ColumnStats> = None;
    for (column, encode_time) in stats.iter().zip(&encode_times) {
        let (snappy, zstd) = peer.as_ref().map_or((0, 0), |p| {
            (
                lookup(&p.snappy, &column.name),
                lookup(&p.zstd, &column.name),
            )
        });
        println!(
            "{:<18} {:<6} {:>11} {:>11} {:>7.3} {:<13} {:>4.1} GB/s {:>4.2} GB/s {:>11} {:>11} {:>9} {:>9}",
            column.name,
            format!("{:?}", column.column_type).to_lowercase(),
            column.raw_bytes,
            column.encoded_bytes,
            column.ratio(),
            column.main_encoding(),
            column.decode_bytes_per_s() / 1e9,
            column.raw_bytes as f64 / encode_time.as_secs_f64().max(1e-9) / 1e9,
            snappy,
            zstd,
            ratio(column.encoded_bytes, snappy),
            ratio(column.encoded_bytes, zstd),
        );
        if slowest.is_none_or(|s| column.decode_bytes_per_s() < s.decode_bytes_per_s()) {
            slowest = Some(column);
        }
    }
    let raw: u64 = stats.iter().map(|c| c.raw_bytes).sum();
    let encoded: u64 = stats.iter().map(|c| c.encoded_bytes).sum();
    let time: f64 = stats.iter().map(|c| c.decode_time.as_secs_f64()).sum();
    let encode_time: f64 = encode_times.iter().map(Duration::as_secs_f64).sum();
    println!(
        "{:<18} {:<6} {:>11} {:>11} {:>7.3} {:<13} {:>4.1} GB/s {:>4.2} GB/s",
        "all columns",
        "",
        raw,
        encoded,
        encoded as f64 / raw.max(1) as f64,
        "",
        raw as f64 / time.max(1e-9) / 1e9,
        raw as f64 / encode_time.max(1e-9) / 1e9
    );
    println!(
        "encode: the writer's automatic choice and encoding of every block on one core ({:.1} ns per value)",
        encode_time * 1e9 / (table.rows() as f64 * table.schema.columns.len() as f64)
    );
    println!();
    let file_bytes: u64 = files.iter().map(|f| f.len() as u64).sum();
    println!(
        "files: skyscan {} bytes in {} files (blocks {}, footers, alignment padding and headers {})",
        file_bytes,
        files.len(),
        encoded,
        file_bytes - encoded
    );
    if let Some(slow) = slowest {
        println!(
            "slowest decode: {} at {:.2} GB/s per core (goal >= 4 GB/s)",
            slow.name,
            slow.decode_bytes_per_s() / 1e9
        );
    }
    if let Some(peer) = &peer {
        println!(
            "total file size: skyscan / Parquet snappy = {:.3} (goal <= 1), skyscan / Parquet zstd = {:.3} (goal <= 1.10)",
            file_bytes as f64 / peer.snappy_file as f64,
            file_bytes as f64 / peer.zstd_file as f64
        );
        println!(
            "   Parquet snappy {} bytes, Parquet zstd {} bytes (one file each)",
            peer.snappy_file, peer.zstd_file
        );
    }
    Ok(())
}

/// Per column, the time of one pass of `encode_block` (automatic choice)
/// over every block of `files`, decoded beforehand: the best of passes
/// repeated for at least `min_time`, on one core.
fn encode_times(files: &[Vec<u8>], min_time: Duration) -> Result<Vec<Duration>, String> {
    let parsed: Vec<ChunkFile<'_>> = files
        .iter()
        .map(|bytes| ChunkFile::from_bytes(bytes).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let Some(first) = parsed.first() else {
        return Ok(Vec::new());
    };
    let schema = first.footer().schema().clone();
    let mut times = Vec::with_capacity(schema.columns.len());
    for (column_index, column) in schema.columns.iter().enumerate() {
        let mut blocks = Vec::new();
        for file in &parsed {
            for row_group in 0..file.footer().row_groups().len() {
                blocks.push(
                    file.read_block(row_group, column_index)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        let options = EncodeOptions::default();
        let mut best = Duration::MAX;
        let mut spent = Duration::ZERO;
        while spent < min_time || best == Duration::MAX {
            let start = Instant::now();
            let mut bytes = 0usize;
            for block in &blocks {
                bytes += encode_block(column, block, &options)
                    .map_err(|e| e.to_string())?
                    .bytes
                    .len();
            }
            std::hint::black_box(bytes);
            let pass = start.elapsed();
            spent += pass;
            best = best.min(pass);
        }
        times.push(best);
    }
    Ok(times)
}

fn lookup(sizes: &[(String, u64)], name: &str) -> u64 {
    sizes
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, size)| *size)
}

fn ratio(ours: u64, theirs: u64) -> String {
    if theirs == 0 {
        "-".to_string()
    } else {
        format!("{:.3}", ours as f64 / theirs as f64)
    }
}

/// Writes the table's own rows in file order as raw column files and runs the
/// pyarrow peer script over them.
fn parquet_peer(table: &Table, chunker: &Chunker, dir: &Path) -> Result<PeerSizes, String> {
    let ra = table.f64_column("ra")?;
    let dec = table.f64_column("decl")?;
    let order: Vec<u32> = assign_rows(chunker, ra, dec, false)?
        .into_values()
        .flat_map(|chunk| chunk.groups.into_iter().flat_map(|group| group.rows))
        .collect();
    let raw_dir = dir.join("raw");
    std::fs::create_dir_all(&raw_dir).map_err(|e| format!("{}: {e}", raw_dir.display()))?;
    let mut manifest = format!("{{\"rows\": {}, \"columns\": [", order.len());
    for (index, (def, column)) in table.schema.columns.iter().zip(&table.columns).enumerate() {
        let ordered = take(column, &order).map_err(|e| e.to_string())?;
        let file = format!("c{index}.bin");
        let type_name = write_raw(&ordered, &raw_dir.join(&file))?;
        let validity = match ordered.validity() {
            Some(bits) => {
                let name = format!("c{index}.valid");
                let bytes: Vec<u8> = bits.iter().map(u8::from).collect();
                std::fs::write(raw_dir.join(&name), bytes).map_err(|e| e.to_string())?;
                format!("\"{name}\"")
            }
            None => "null".to_string(),
        };
        if index > 0 {
            manifest.push(',');
        }
        manifest.push_str(&format!(
            "{{\"name\": \"{}\", \"type\": \"{type_name}\", \"file\": \"{file}\", \"validity\": {validity}}}",
            def.name
        ));
    }
    manifest.push_str("]}");
    std::fs::write(raw_dir.join("manifest.json"), manifest).map_err(|e| e.to_string())?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/parquet_sizes.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&raw_dir)
        .output()
        .map_err(|e| {
            format!(
                "python3 {}: {e} (run scripts/setup-python.sh, or pass --no-peer)",
                script.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "the Parquet peer failed (run scripts/setup-python.sh, or pass --no-peer):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut peer = PeerSizes {
        version: String::new(),
        snappy_file: 0,
        zstd_file: 0,
        snappy: Vec::new(),
        zstd: Vec::new(),
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let number = |k: usize| {
            fields
                .get(k)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match fields.as_slice() {
            ["version", "pyarrow", version] => peer.version = version.to_string(),
            ["file", "snappy", ..] => peer.snappy_file = number(2),
            ["file", "zstd", ..] => peer.zstd_file = number(2),
            ["column", "snappy", name, _] => peer.snappy.push((name.to_string(), number(3))),
            ["column", "zstd", name, _] => peer.zstd.push((name.to_string(), number(3))),
            _ => return Err(format!("unexpected line from the Parquet peer: {line}")),
        }
    }
    if peer.snappy_file == 0 || peer.zstd_file == 0 {
        return Err("the Parquet peer reported no file sizes".to_string());
    }
    Ok(peer)
}

/// Writes a column's values as little-endian bytes (utf8: data + `.offsets`); returns its type name.
fn write_raw(column: &ColumnData, path: &Path) -> Result<&'static str, String> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let name = match column {
        ColumnData::Bool(c) => {
            let bytes: Vec<u8> = c.values.iter().map(u8::from).collect();
            out.write_all(&bytes).map_err(io)?;
            "bool"
        }
        ColumnData::I8(c) => {
            out.write_all(bytemuck_bytes(&c.values)).map_err(io)?;
            "i8"
        }
        ColumnData::I16(c) => {
            out.write_all(bytemuck_bytes(&c.values)).map_err(io)?;
            "i16"
        }
        ColumnData::I32(c) => {
            out.write_all(bytemuck_bytes(&c.values)).map_err(io)?;
            "i32"
        }
        ColumnData::I64(c) => {
            out.write_all(bytemuck_bytes(&c.values)).map_err(io)?;
            "i64"
        }
        ColumnData::F32(c) => {
            out.write_all(bytemuck_bytes(&c.values)).map_err(io)?;
            "f32"
        }
        ColumnData::F64(c) => {
            out.write_all(bytemuck_bytes(&c.values)).map_err(io)?;
            "f64"
        }
        ColumnData::Utf8(c) | ColumnData::Binary(c) => {
            out.write_all(&c.data).map_err(io)?;
            let offsets_path = path.with_extension("bin.offsets");
            std::fs::write(&offsets_path, bytemuck_bytes(&c.offsets)).map_err(|e| e.to_string())?;
            if matches!(column, ColumnData::Utf8(_)) {
                "utf8"
            } else {
                "binary"
            }
        }
    };
    out.flush().map_err(io)?;
    Ok(name)
}

fn bytemuck_bytes<T: bytemuck::Pod>(values: &[T]) -> &[u8] {
    bytemuck::cast_slice(values)
}
