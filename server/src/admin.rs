//! `skyscan info DB` and `skyscan verify DB`: what a database holds, and a
//! check of every byte of it.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use skyscan_engine::catalog::Database;
use skyscan_engine::catalog::inspect::{VerifyProgress, table_infos, verify_database};

/// Time between two progress lines of `verify`.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Prints the tables of the database at `root`: kind, rows, chunks, bytes,
/// compression (from the chunk footers) and the spindles.
pub fn info(root: &Path) -> Result<(), String> {
    let db = Database::open(root).map_err(|e| format!("info: {e}"))?;
    let catalog = db.catalog();
    let infos = table_infos(&db, &catalog).map_err(|e| format!("info: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut spindle_bytes = vec![0u64; db.spindle_paths().len()];
    for info in &infos {
        for (total, bytes) in spindle_bytes.iter_mut().zip(&info.bytes_per_spindle) {
            *total += bytes;
        }
    }
    let write = |out: &mut std::io::StdoutLock<'_>, line: String| {
        writeln!(out, "{line}").map_err(|e| format!("info: stdout: {e}"))
    };
    write(
        &mut out,
        format!(
            "database {} (catalog generation {}, format version {}), {} spindle(s):",
            db.root().display(),
            catalog.generation,
            catalog.version,
            spindle_bytes.len()
        ),
    )?;
    for (index, (path, bytes)) in db.spindle_paths().iter().zip(&spindle_bytes).enumerate() {
        write(
            &mut out,
            format!("  spindle {index}: {} ({})", path.display(), size(*bytes)),
        )?;
    }
    write(
        &mut out,
        format!("  {}", skyscan_engine::storage::describe_environment()),
    )?;
    if infos.is_empty() {
        return write(&mut out, "no tables".to_string());
    }
    write(
        &mut out,
        format!(
            "\n{:<28} {:<10} {:>6} {:>13} {:>11} {:>7} {:>11} {:>11} {:>11} {:>6}",
            "table",
            "kind",
            "rating",
            "rows",
            "overlap",
            "chunks",
            "on disk",
            "raw",
            "encoded",
            "ratio"
        ),
    )?;
    for info in &infos {
        write(
            &mut out,
            format!(
                "{:<28} {:<10} {:>6} {:>13} {:>11} {:>7} {:>11} {:>11} {:>11} {:>6.3}",
                format!("{}.{}", info.database, info.table),
                info.kind,
                info.scan_rating,
                info.rows,
                info.overlap_rows,
                info.chunks,
                size(info.bytes),
                size(info.raw_bytes),
                size(info.encoded_bytes),
                info.compression_ratio()
            ),
        )?;
    }
    let (raw, encoded, bytes): (u64, u64, u64) = infos.iter().fold((0, 0, 0), |(r, e, b), i| {
        (r + i.raw_bytes, e + i.encoded_bytes, b + i.bytes)
    });
    write(
        &mut out,
        format!(
            "\n{} table(s), {} on disk; encoded/raw = {:.3} (raw: values as plain arrays; \
             ratio < 1 means smaller)",
            infos.len(),
            size(bytes),
            encoded as f64 / raw.max(1) as f64
        ),
    )
}

/// Checks every chunk file and director index of the database at `root`;
/// an error (non-zero exit) lists each problem with its file and block.
pub fn verify(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let db = Database::open(root).map_err(|e| format!("verify: {e}"))?;
    let catalog = db.catalog();
    let mut stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let mut last = Instant::now();
    let mut printed = false;
    let mut progress = |p: &VerifyProgress<'_>| {
        if last.elapsed() < PROGRESS_EVERY && !(printed && p.files_done == p.files_total) {
            return;
        }
        last = Instant::now();
        printed = true;
        let line = format!(
            "verify: {}/{} files, {} of {}{}",
            p.files_done,
            p.files_total,
            size(p.bytes_done),
            size(p.bytes_total),
            if p.table.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.table)
            }
        );
        // Progress output is best effort: a closed stderr must not fail the check.
        let _ = if terminal {
            write!(stderr, "\r{line:<78}")
        } else {
            writeln!(stderr, "{line}")
        };
    };
    let report =
        verify_database(&db, &catalog, &mut progress).map_err(|e| format!("verify: {e}"))?;
    if printed && terminal {
        let _ = writeln!(std::io::stderr());
    }
    if !report.is_clean() {
        for problem in &report.problems {
            eprintln!("skyscan: verify: {problem}");
        }
        return Err(format!(
            "verify: {}{} problem(s) in {}",
            report.problems.len(),
            if report.truncated { "+" } else { "" },
            db.root().display()
        ));
    }
    println!(
        "verify: OK: {} files, {}, {} blocks, {} rows checked in {:.2} s",
        report.files,
        size(report.bytes),
        report.blocks,
        report.rows,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
