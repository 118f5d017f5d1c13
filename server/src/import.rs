//! `skyscan import-qserv DIR DB`: loads a Qserv test-case or ingest
//! directory into a skyscan database (docs/import-qserv.md).

use std::path::Path;

use skyscan_engine::ingest::qserv::{ImportEvent, ImportOptions, TableReport, import_qserv};

/// Runs the import, printing progress on stderr and a summary on stdout.
pub fn import_qserv_command(dir: &Path, db: &Path) -> Result<(), String> {
    let options = ImportOptions::default();
    let mut progress = |event: &ImportEvent| match event {
        ImportEvent::Read {
            table,
            rows,
            seconds,
        } => eprintln!(
            "import-qserv: read {table}: {rows} rows in {seconds:.2} s ({})",
            rate(*rows, *seconds)
        ),
        ImportEvent::Published(report) => eprintln!(
            "import-qserv: published {} ({}): {} rows, {} overlap, {} chunks in {:.2} s ({})",
            report.table,
            report.kind,
            report.rows,
            report.overlap_rows,
            report.chunks,
            report.write_seconds,
            rate(report.rows, report.write_seconds)
        ),
    };
    let report =
        import_qserv(dir, db, &options, &mut progress).map_err(|e| format!("import-qserv: {e}"))?;
    println!(
        "imported {} tables into database `{}` at {}{}",
        report.tables.len(),
        report.database,
        db.display(),
        if report.created { " (created)" } else { "" }
    );
    println!(
        "{:<24} {:<10} {:>10} {:>9} {:>7} {:>12} {:>10}",
        "table", "kind", "rows", "overlap", "chunks", "bytes", "index"
    );
    for table in &report.tables {
        println!("{}", summary_line(table));
    }
    for table in &report.tables {
        if let Some(orphans) = &table.orphans {
            if orphans.rows > 0 {
                println!(
                    "{}: {} rows have no director row; placed by their own position columns. First ones:",
                    table.table, orphans.rows
                );
                for (place, key) in &orphans.listed {
                    let key = key.map_or("NULL".to_string(), |k| k.to_string());
                    println!("  {place} (key {key})");
                }
            }
            if orphans.sub_chunk_mismatches > 0 {
                println!(
                    "{}: {} rows' position columns locate to another sub-chunk than their \
                     director row; placed at the director's",
                    table.table, orphans.sub_chunk_mismatches
                );
            }
        }
    }
    Ok(())
}

fn summary_line(table: &TableReport) -> String {
    format!(
        "{:<24} {:<10} {:>10} {:>9} {:>7} {:>12} {:>10}",
        table.table,
        table.kind,
        table.rows,
        table.overlap_rows,
        table.chunks,
        table.bytes,
        table
            .director_index_entries
            .map_or("-".to_string(), |n| n.to_string())
    )
}

fn rate(rows: u64, seconds: f64) -> String {
    if seconds > 0.0 {
        format!("{:.0} rows/s", rows as f64 / seconds)
    } else {
        "- rows/s".to_string()
    }
}
