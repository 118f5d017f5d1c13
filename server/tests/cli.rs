//! The `skyscan` command line, run as a user would run it.

// Test and benchmark code: a failed setup step should stop with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn testdata() -> PathBuf {
    let dir = std::env::var_os("SKYSCAN_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared/testdata")
        });
    assert!(
        dir.is_dir(),
        "test data not found at {} (set SKYSCAN_TESTDATA)",
        dir.display()
    );
    dir
}

fn run(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skyscan"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `skyscan locate` on the first 500 points sphgeom located, echoing ra/dec text exactly.
#[test]
fn locate_matches_sphgeom_points() {
    let csv =
        std::fs::read_to_string(testdata().join("partitioner/sphgeom_chunker_85_12_seed42.csv"))
            .unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .take(500)
        .map(|l| l.split(',').collect())
        .collect();
    let input: String = rows
        .iter()
        .map(|r| format!("{},{}\n", r[0], r[1]))
        .collect();
    let (ok, stdout, stderr) = run(
        &["locate", "--stripes", "85", "--sub-stripes", "12"],
        &input,
    );
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "ra,dec,chunkId,subChunkId,overlap");
    assert_eq!(lines.len(), rows.len() + 1);
    for (line, row) in lines[1..].iter().zip(&rows) {
        assert_eq!(
            *line,
            format!("{},{},{},{},0", row[0], row[1], row[2], row[3])
        );
    }
}

/// With --overlap, Qserv's partitioner output for chunk 7480 is reproduced: every
/// own row with overlap 0, and every overlap copy Qserv wrote among the lines with overlap 1.
#[test]
fn locate_with_overlap_matches_qserv_partitioner() {
    let tsv = std::fs::read_to_string(testdata().join("partitioner/qserv_partitioner_vectors.tsv"))
        .unwrap();
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let own: Vec<&Vec<&str>> = rows.iter().filter(|r| !r[0].contains("overlap")).collect();
    let input: String = own.iter().map(|r| format!("{},{}\n", r[2], r[3])).collect();
    let (ok, stdout, stderr) = run(&["locate", "--overlap", "0.01667"], &input);
    assert!(ok, "{stderr}");
    let produced: std::collections::HashSet<&str> = stdout.lines().skip(1).collect();
    for row in &rows {
        let flag = if row[0].contains("overlap") { 1 } else { 0 };
        let line = format!("{},{},{},{},{flag}", row[2], row[3], row[4], row[5]);
        assert!(produced.contains(line.as_str()), "missing {line}");
    }
}

#[test]
fn locate_reports_bad_input_and_parameters() {
    let (ok, _, stderr) = run(&["locate"], "1,2\nfoo,3\n");
    assert!(!ok);
    assert!(stderr.contains("line 2"), "{stderr}");
    let (ok, _, stderr) = run(&["locate", "--stripes", "0"], "");
    assert!(!ok);
    assert!(stderr.contains("stripes"), "{stderr}");
}

#[test]
fn demo_refuses_a_foreign_directory() {
    let dir = std::env::temp_dir().join(format!("skyscan-cli-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), "not ours").unwrap();
    let (ok, _, stderr) = run(
        &["demo", "--rows", "1000", "--dir", dir.to_str().unwrap()],
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("not made by"), "{stderr}");
    assert!(
        dir.join("precious.txt").exists(),
        "nothing of the user's is deleted"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn small_demo_runs_and_verifies() {
    let dir = std::env::temp_dir().join(format!("skyscan-cli-demo-{}", std::process::id()));
    let (ok, stdout, stderr) = run(
        &["demo", "--rows", "20000", "--dir", dir.to_str().unwrap()],
        "",
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("identical"), "{stdout}");
    assert!(stdout.contains("brute force over all rows: "), "{stdout}");
    // A second run replaces the first.
    let (ok, _, stderr) = run(
        &["demo", "--rows", "5000", "--dir", dir.to_str().unwrap()],
        "",
    );
    assert!(ok, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gen_writes_a_banded_sky_on_request() {
    let dir = std::env::temp_dir().join(format!("skyscan-cli-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut texts = Vec::new();
    for sky in ["uniform", "band"] {
        let out = dir.join(format!("object-{sky}.tsv"));
        let (ok, _, stderr) = run(
            &[
                "gen",
                "--table",
                "object",
                "--rows",
                "5000",
                "--density",
                "10000",
                "--format",
                "tsv",
                "--sky",
                sky,
                "--out",
                out.to_str().unwrap(),
            ],
            "",
        );
        assert!(ok, "{stderr}");
        texts.push(std::fs::read_to_string(&out).unwrap());
    }
    assert_eq!(texts[0].lines().count(), 5000);
    assert_eq!(texts[1].lines().count(), 5000);
    assert_ne!(texts[0], texts[1], "the band moves objects");
    let (ok, _, stderr) = run(
        &[
            "gen",
            "--table",
            "object",
            "--rows",
            "10",
            "--format",
            "tsv",
            "--sky",
            "spiral",
            "--out",
            dir.join("x.tsv").to_str().unwrap(),
        ],
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("band"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
