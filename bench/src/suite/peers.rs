//! Calls into `bench/peers/suite_peers.py` (one JSON spec in, one JSON
//! object out) and keeps the PostgreSQL server it starts alive for exactly
//! the run: stopped when [`PgServer`] drops, also on an error path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `bench/peers/<name>`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}

/// Runs `suite_peers.py MODE` on `spec` (written to `work/MODE.json`).
pub fn call(
    work: &Path,
    mode: &str,
    spec: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let spec_path = work.join(format!("{mode}.json"));
    std::fs::write(&spec_path, spec.to_string())
        .map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let output = Command::new("python3")
        .arg(script("suite_peers.py"))
        .arg(mode)
        .arg(&spec_path)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "suite_peers.py {mode} failed: {}{}",
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("suite_peers.py {mode}: {e}: {last}"))
}

/// The PostgreSQL server of the run, on loopback at a free port, its data
/// directory under the run's scratch directory.
#[derive(Debug)]
pub struct PgServer {
    work: PathBuf,
    dir: PathBuf,
    /// The port it listens on.
    pub port: u16,
    /// `server_version + q3c version`.
    pub version: String,
}

impl PgServer {
    /// Starts it; `Err(reason)` when PostgreSQL or Q3C is not installed or
    /// does not start (the peer is then skipped with that reason).
    pub fn start(work: &Path) -> Result<PgServer, String> {
        let dir = work.join("pg");
        let out = call(work, "pg-start", &serde_json::json!({ "dir": dir }))?;
        if let Some(reason) = out["skip"].as_str() {
            return Err(reason.to_string());
        }
        let port = out["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("pg-start printed no port")?;
        Ok(PgServer {
            work: work.to_path_buf(),
            dir,
            port,
            version: out["version"].as_str().unwrap_or("?").to_string(),
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        match call(
            &self.work,
            "pg-stop",
            &serde_json::json!({ "dir": self.dir }),
        ) {
            Ok(out) if out["stopped"].as_bool() == Some(true) => {}
            Ok(out) => eprintln!("suite: PostgreSQL did not stop cleanly: {out}"),
            Err(e) => eprintln!("suite: stopping PostgreSQL: {e}"),
        }
    }
}
