//! Facts about the machine, measured in the run: cores, memory, the disk's
//! sequential O_DIRECT read rate and the memory read bandwidth, so that a
//! reader can judge the figures (and the physical limits they are held to).

use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

use skyscan_engine::storage::AlignedBuf;

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// CPU model name.
    pub cpu: String,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Sequential `O_DIRECT` read of a fresh file, bytes/s.
    pub disk_read_bytes_per_s: f64,
    /// Bytes of the file read for it.
    pub disk_probe_bytes: u64,
    /// Memory read bandwidth with one thread (sum over a buffer), bytes/s.
    pub memory_read_1_bytes_per_s: f64,
    /// The same with two threads.
    pub memory_read_2_bytes_per_s: f64,
    /// `/proc/loadavg` when the run started.
    pub load_at_start: String,
    /// Kernel release.
    pub kernel: String,
}

/// The 1-minute load average as `/proc/loadavg` shows it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.split_whitespace().take(3).collect();
            (!fields.is_empty()).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn meminfo_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Writes `bytes` to a file in `dir`, fsyncs it, and reads it back with
/// `O_DIRECT` in 4 MiB requests (one in flight): the device's rate, not
/// the page cache's. The file is removed.
fn disk_read_rate(dir: &Path, bytes: u64) -> Result<f64, String> {
    const PIECE: usize = 4 << 20;
    let path = dir.join("disk-probe");
    let pieces = bytes.div_ceil(PIECE as u64).max(1);
    {
        let mut file =
            std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Not zeros (a thin-provisioned device could skip them).
        let mut block = vec![0u8; PIECE];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        for _ in 0..pieces {
            file.write_all(&block).map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .map_err(|e| format!("{} (O_DIRECT): {e}", path.display()))?;
    let mut buf = AlignedBuf::new(PIECE).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut total = 0u64;
    for piece in 0..pieces {
        let n = file
            .read_at(&mut buf.as_mut_slice()[..PIECE], piece * PIECE as u64)
            .map_err(|e| e.to_string())?;
        total += n as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(total as f64 / seconds.max(1e-9))
}

/// Sums `words` with `threads` threads, best of three: read bytes/s.
fn memory_read_rate(words: &[u64], threads: usize) -> f64 {
    let mut best = f64::INFINITY;
    let mut checksum = 0u64;
    for _ in 0..3 {
        let started = Instant::now();
        let part = words.len().div_ceil(threads.max(1));
        let sums: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = words
                .chunks(part.max(1))
                .map(|piece| scope.spawn(move || sum_words(piece)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        checksum = checksum.wrapping_add(sums.iter().fold(0, |a, &b| a.wrapping_add(b)));
        best = best.min(started.elapsed().as_secs_f64());
    }
    std::hint::black_box(checksum);
    (words.len() * 8) as f64 / best.max(1e-9)
}

/// A plain fold (it vectorizes): eight independent lanes.
fn sum_words(words: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut chunks = words.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &w) in lanes.iter_mut().zip(chunk) {
            *lane = lane.wrapping_add(w);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, &b| a.wrapping_add(b));
    lanes.iter().fold(tail, |a, &b| a.wrapping_add(b))
}

/// Measures the machine: a disk probe of `disk_bytes` in `dir`, memory
/// bandwidth over `memory_bytes`.
pub fn measure(dir: &Path, disk_bytes: u64, memory_bytes: u64) -> Result<Machine, String> {
    let load_at_start = load_average();
    let disk_read_bytes_per_s = disk_read_rate(dir, disk_bytes)?;
    let words: Vec<u64> = (0..memory_bytes / 8)
        .map(|i| i.wrapping_mul(0x9e37))
        .collect();
    let memory_read_1_bytes_per_s = memory_read_rate(&words, 1);
    let memory_read_2_bytes_per_s = memory_read_rate(&words, 2);
    drop(words);
    Ok(Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        memory_bytes: meminfo_total(),
        disk_read_bytes_per_s,
        disk_probe_bytes: disk_bytes.div_ceil(4 << 20).max(1) * (4 << 20),
        memory_read_1_bytes_per_s,
        memory_read_2_bytes_per_s,
        load_at_start,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    })
}
