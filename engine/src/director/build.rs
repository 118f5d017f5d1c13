//! Building a director index from unsorted triples with bounded memory.
//!
//! Triples collect in a buffer of `memory_budget_bytes / 16` entries. A full
//! buffer is sorted and spilled as a run file (16-byte entries and a
//! checksummed trailer). `finish` merges the runs (at most
//! [`MAX_MERGE_FAN_IN`] at a time, in several passes if needed) with the
//! sorted in-memory remainder, and streams the sorted entries into blocks of
//! the output file. Duplicate keys are detected in that final sorted stream.
//!
//! Memory: the buffer (the budget), plus [`RUN_READ_BUFFER`] per merged run,
//! plus one block and a [`DIRECTORY_BUFFER`] of directory entries (longer
//! directories spill to a temporary file).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::layout::{
    DEFAULT_BLOCK_ENTRIES, DirEntry, HEADER_LEN, Header, MAX_BLOCK_ENTRIES, MAX_ENTRIES,
    MIN_BLOCK_ENTRIES, Tail, encode_block,
};
use super::{DirectorEntry, DirectorError, Result};

/// Bytes of one entry in memory and in a run file.
const ENTRY_BYTES: usize = 16;
/// Smallest memory budget: 64 entries (tests force spills with it).
pub const MIN_MEMORY_BUDGET: usize = 64 * ENTRY_BYTES;
/// Runs merged at once; more runs are merged in several passes.
pub const MAX_MERGE_FAN_IN: usize = 64;
/// Read buffer per run during a merge.
pub const RUN_READ_BUFFER: usize = 256 << 10;
/// Directory bytes held in memory before spilling to a temporary file.
pub const DIRECTORY_BUFFER: usize = 4 << 20;
/// Write buffer of run and index files.
const WRITE_BUFFER: usize = 1 << 20;

/// Options of a [`DirectorIndexBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Memory for unsorted entries, in bytes (>= [`MIN_MEMORY_BUDGET`]);
    /// 16 bytes per entry.
    pub memory_budget_bytes: usize,
    /// Directory for spilled runs; `None` uses the system temporary
    /// directory. Loads should pass their staging directory, so that runs
    /// land on the database's disk and are cleaned with it.
    pub spill_dir: Option<PathBuf>,
    /// Entries per block (power of two, 16..=65536).
    pub block_entries: u32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            memory_budget_bytes: 1 << 30,
            spill_dir: None,
            block_entries: DEFAULT_BLOCK_ENTRIES,
        }
    }
}

/// What a build did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuildStats {
    /// Entries written.
    pub entries: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Size of the index file.
    pub file_bytes: u64,
    /// Sorted runs spilled to disk.
    pub spilled_runs: u64,
    /// Intermediate merge passes (0 when all runs merged at once).
    pub merge_passes: u64,
}

/// Collects (objectId, chunkId, subChunkId) triples in any order and writes a
/// director index; see the module docs.
#[derive(Debug)]
pub struct DirectorIndexBuilder {
    options: BuildOptions,
    buffer: Vec<DirectorEntry>,
    capacity: usize,
    runs: Vec<TempFile>,
    entries: u64,
    stats: BuildStats,
}

impl DirectorIndexBuilder {
    /// A builder with `options`.
    pub fn new(options: BuildOptions) -> Result<DirectorIndexBuilder> {
        if options.memory_budget_bytes < MIN_MEMORY_BUDGET {
            return Err(DirectorError::InvalidArgument(format!(
                "memory budget {} bytes; the minimum is {MIN_MEMORY_BUDGET}",
                options.memory_budget_bytes
            )));
        }
        let block_entries = options.block_entries;
        if !block_entries.is_power_of_two()
            || !(MIN_BLOCK_ENTRIES..=MAX_BLOCK_ENTRIES).contains(&block_entries)
        {
            return Err(DirectorError::InvalidArgument(format!(
                "block_entries {block_entries} is not a power of two in {MIN_BLOCK_ENTRIES}..={MAX_BLOCK_ENTRIES}"
            )));
        }
        let capacity = options.memory_budget_bytes / ENTRY_BYTES;
        Ok(DirectorIndexBuilder {
            options,
            buffer: Vec::new(),
            capacity,
            runs: Vec::new(),
            entries: 0,
            stats: BuildStats::default(),
        })
    }

    /// Entries added so far.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Adds one director row's placement.
    pub fn add(&mut self, object_id: i64, chunk_id: i32, sub_chunk_id: i32) -> Result<()> {
        if self.entries >= MAX_ENTRIES {
            return Err(DirectorError::Limit(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        if self.buffer.len() >= self.capacity {
            self.spill()?;
        }
        if self.buffer.len() == self.buffer.capacity() {
            // Grow geometrically, but never past the budget (plain doubling
            // could allocate up to twice the budget).
            let additional = self
                .buffer
                .len()
                .max(1024)
                .min(self.capacity - self.buffer.len());
            self.buffer.reserve_exact(additional);
        }
        self.buffer.push(DirectorEntry {
            object_id,
            chunk_id,
            sub_chunk_id,
        });
        self.entries += 1;
        Ok(())
    }

    /// Adds the placements of a batch of rows (three equal-length columns).
    pub fn add_batch(
        &mut self,
        object_ids: &[i64],
        chunk_ids: &[i32],
        sub_chunk_ids: &[i32],
    ) -> Result<()> {
        if object_ids.len() != chunk_ids.len() || object_ids.len() != sub_chunk_ids.len() {
            return Err(DirectorError::InvalidArgument(format!(
                "batch columns of {}, {} and {} values",
                object_ids.len(),
                chunk_ids.len(),
                sub_chunk_ids.len()
            )));
        }
        for ((&object_id, &chunk_id), &sub_chunk_id) in
            object_ids.iter().zip(chunk_ids).zip(sub_chunk_ids)
        {
            self.add(object_id, chunk_id, sub_chunk_id)?;
        }
        Ok(())
    }

    /// Takes over everything `other` collected (its spilled runs and its
    /// buffered entries), so that builders filled by several threads finish
    /// as one index.
    pub fn absorb(&mut self, mut other: DirectorIndexBuilder) -> Result<()> {
        if self.entries + other.entries > MAX_ENTRIES {
            return Err(DirectorError::Limit(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        self.runs.append(&mut other.runs);
        self.stats.spilled_runs += other.stats.spilled_runs;
        self.entries += other.entries - other.buffer.len() as u64;
        for entry in std::mem::take(&mut other.buffer) {
            self.add(entry.object_id, entry.chunk_id, entry.sub_chunk_id)?;
        }
        Ok(())
    }

    fn spill_dir(&self) -> PathBuf {
        self.options
            .spill_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    /// Sorts the buffer and writes it as a run.
    fn spill(&mut self) -> Result<()> {
        self.buffer.sort_unstable_by_key(|entry| entry.object_id);
        let mut run = RunWriter::create(&self.spill_dir())?;
        for entry in &self.buffer {
            run.push(entry)?;
        }
        self.runs.push(run.finish()?);
        self.buffer.clear();
        self.stats.spilled_runs += 1;
        Ok(())
    }

    /// Sorts, merges and writes the index to `path` atomically: a temporary
    /// file in the same directory, fsynced, renamed over `path`, and the
    /// directory fsynced. Spilled runs are removed whatever the outcome.
    pub fn finish(mut self, path: &Path) -> Result<BuildStats> {
        self.buffer.sort_unstable_by_key(|entry| entry.object_id);
        let spill_dir = self.spill_dir();
        // Reduce the number of runs until one merge can take them all.
        while self.runs.len() + 1 > MAX_MERGE_FAN_IN {
            let group: Vec<TempFile> = self.runs.drain(..MAX_MERGE_FAN_IN).collect();
            let mut merged = RunWriter::create(&spill_dir)?;
            merge(group, &[], |entry| merged.push(&entry))?;
            self.runs.push(merged.finish()?);
            self.stats.merge_passes += 1;
        }
        let runs = std::mem::take(&mut self.runs);
        let mut writer = IndexWriter::create(path, self.options.block_entries)?;
        merge(runs, &self.buffer, |entry| writer.push(entry))?;
        let (entries, blocks, file_bytes) = writer.finish()?;
        debug_assert_eq!(entries, self.entries);
        self.stats.entries = entries;
        self.stats.blocks = blocks;
        self.stats.file_bytes = file_bytes;
        Ok(self.stats)
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A file removed when dropped (spilled runs, partial outputs).
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Creates a new, uniquely named file in `dir`.
    fn create(dir: &Path, prefix: &str, suffix: &str) -> Result<(TempFile, File)> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for _ in 0..16 {
            let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}{}-{sequence}-{nanos}{suffix}", std::process::id());
            let path = dir.join(name);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok((TempFile { path }, file)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(DirectorError::io(path, "create", source)),
            }
        }
        Err(DirectorError::io(
            dir,
            "create a temporary file in",
            io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"),
        ))
    }

    /// Renames the file to `target` and forgets it (no removal on drop).
    fn persist(self, target: &Path) -> Result<()> {
        fs::rename(&self.path, target)
            .map_err(|source| DirectorError::io(target, "rename to", source))?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a leftover temporary file is harmless, and the drop may
        // run while an error is already being reported.
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes one sorted run: 16-byte entries, then `count u64` and the CRC-32C
/// of the entry bytes.
struct RunWriter {
    file: TempFile,
    writer: BufWriter<File>,
    count: u64,
    crc: u32,
}

impl RunWriter {
    fn create(dir: &Path) -> Result<RunWriter> {
        let (file, handle) = TempFile::create(dir, ".skyscan-director-", ".run")?;
        Ok(RunWriter {
            file,
            writer: BufWriter::with_capacity(WRITE_BUFFER, handle),
            count: 0,
            crc: 0,
        })
    }

    fn push(&mut self, entry: &DirectorEntry) -> Result<()> {
        let bytes = entry_bytes(entry);
        self.crc = crc32c::crc32c_append(self.crc, &bytes);
        self.writer
            .write_all(&bytes)
            .map_err(|source| DirectorError::io(&self.file.path, "write", source))?;
        self.count += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<TempFile> {
        let mut trailer = [0u8; 12];
        trailer[..8].copy_from_slice(&self.count.to_le_bytes());
        trailer[8..].copy_from_slice(&self.crc.to_le_bytes());
        let path = self.file.path.clone();
        self.writer
            .write_all(&trailer)
            .map_err(|source| DirectorError::io(&path, "write", source))?;
        self.writer
            .flush()
            .map_err(|source| DirectorError::io(&path, "write", source))?;
        Ok(self.file)
    }
}

fn entry_bytes(entry: &DirectorEntry) -> [u8; ENTRY_BYTES] {
    let mut bytes = [0u8; ENTRY_BYTES];
    bytes[..8].copy_from_slice(&entry.object_id.to_le_bytes());
    bytes[8..12].copy_from_slice(&entry.chunk_id.to_le_bytes());
    bytes[12..].copy_from_slice(&entry.sub_chunk_id.to_le_bytes());
    bytes
}

fn entry_from_bytes(bytes: &[u8; ENTRY_BYTES]) -> DirectorEntry {
    let mut key = [0u8; 8];
    key.copy_from_slice(&bytes[..8]);
    let mut chunk = [0u8; 4];
    chunk.copy_from_slice(&bytes[8..12]);
    let mut sub = [0u8; 4];
    sub.copy_from_slice(&bytes[12..]);
    DirectorEntry {
        object_id: i64::from_le_bytes(key),
        chunk_id: i32::from_le_bytes(chunk),
        sub_chunk_id: i32::from_le_bytes(sub),
    }
}

/// Reads a run back, checking its count and checksum at the end.
struct RunReader {
    file: TempFile,
    reader: BufReader<File>,
    remaining: u64,
    count: u64,
    crc: u32,
}

impl RunReader {
    fn open(file: TempFile) -> Result<RunReader> {
        let corrupt = |message: String| {
            DirectorError::corrupt(&file.path.display().to_string(), "run", message)
        };
        let mut handle = File::open(&file.path)
            .map_err(|source| DirectorError::io(&file.path, "open", source))?;
        let len = handle
            .metadata()
            .map_err(|source| DirectorError::io(&file.path, "stat", source))?
            .len();
        if len < 12 || (len - 12) % ENTRY_BYTES as u64 != 0 {
            return Err(corrupt(format!("run file of {len} bytes")));
        }
        let count = (len - 12) / ENTRY_BYTES as u64;
        handle
            .seek(SeekFrom::Start(0))
            .map_err(|source| DirectorError::io(&file.path, "seek", source))?;
        Ok(RunReader {
            reader: BufReader::with_capacity(RUN_READ_BUFFER, handle),
            file,
            remaining: count,
            count,
            crc: 0,
        })
    }

    fn next(&mut self) -> Result<Option<DirectorEntry>> {
        let path = &self.file.path;
        if self.remaining == 0 {
            let mut trailer = [0u8; 12];
            self.reader
                .read_exact(&mut trailer)
                .map_err(|source| DirectorError::io(path, "read", source))?;
            let mut count = [0u8; 8];
            count.copy_from_slice(&trailer[..8]);
            let mut crc = [0u8; 4];
            crc.copy_from_slice(&trailer[8..]);
            if u64::from_le_bytes(count) != self.count || u32::from_le_bytes(crc) != self.crc {
                return Err(DirectorError::corrupt(
                    &path.display().to_string(),
                    "run",
                    "count or checksum mismatch (disk corruption while building?)",
                ));
            }
            return Ok(None);
        }
        let mut bytes = [0u8; ENTRY_BYTES];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|source| DirectorError::io(path, "read", source))?;
        self.crc = crc32c::crc32c_append(self.crc, &bytes);
        self.remaining -= 1;
        Ok(Some(entry_from_bytes(&bytes)))
    }
}

/// Merges sorted runs and a sorted slice into `sink`, in key order (ties by
/// chunk, sub-chunk, then source), consuming and removing the runs.
fn merge(
    runs: Vec<TempFile>,
    memory: &[DirectorEntry],
    mut sink: impl FnMut(DirectorEntry) -> Result<()>,
) -> Result<()> {
    let mut readers = runs
        .into_iter()
        .map(RunReader::open)
        .collect::<Result<Vec<_>>>()?;
    let memory_source = readers.len();
    let mut memory_position = 0;
    let mut heap = BinaryHeap::with_capacity(readers.len() + 1);
    for (source, reader) in readers.iter_mut().enumerate() {
        if let Some(entry) = reader.next()? {
            heap.push(Reverse((entry, source)));
        }
    }
    if let Some(&entry) = memory.first() {
        heap.push(Reverse((entry, memory_source)));
        memory_position = 1;
    }
    while let Some(Reverse((entry, source))) = heap.pop() {
        sink(entry)?;
        let next = if source == memory_source {
            let next = memory.get(memory_position).copied();
            memory_position += 1;
            next
        } else {
            readers[source].next()?
        };
        if let Some(next) = next {
            heap.push(Reverse((next, source)));
        }
    }
    Ok(())
}

/// Streams sorted entries into blocks of a new index file.
struct IndexWriter {
    target: PathBuf,
    file: TempFile,
    writer: BufWriter<File>,
    block_entries: u32,
    pending: Vec<DirectorEntry>,
    block_bytes: Vec<u8>,
    offset: u64,
    entries: u64,
    blocks: u64,
    key_min: i64,
    previous: Option<DirectorEntry>,
    directory: DirectorySink,
}

impl IndexWriter {
    fn create(target: &Path, block_entries: u32) -> Result<IndexWriter> {
        let dir = parent_dir(target);
        let name = target.file_name().map_or_else(
            || "index".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        let (file, handle) = TempFile::create(&dir, &format!(".{name}.tmp-"), "")?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, handle);
        // The header is rewritten at the end, when the counts are known.
        writer
            .write_all(&[0u8; HEADER_LEN])
            .map_err(|source| DirectorError::io(&file.path, "write", source))?;
        let directory = DirectorySink {
            buffer: Vec::new(),
            spill: None,
            crc: 0,
            dir,
        };
        Ok(IndexWriter {
            target: target.to_path_buf(),
            file,
            writer,
            block_entries,
            pending: Vec::with_capacity(block_entries as usize),
            block_bytes: Vec::new(),
            offset: HEADER_LEN as u64,
            entries: 0,
            blocks: 0,
            key_min: 0,
            previous: None,
            directory,
        })
    }

    fn push(&mut self, entry: DirectorEntry) -> Result<()> {
        if let Some(previous) = self.previous {
            if previous.object_id == entry.object_id {
                return Err(DirectorError::DuplicateKey {
                    object_id: entry.object_id,
                    first: (previous.chunk_id, previous.sub_chunk_id),
                    second: (entry.chunk_id, entry.sub_chunk_id),
                });
            }
            if previous.object_id > entry.object_id {
                // Runs are sorted when written; only a damaged run gets here.
                return Err(DirectorError::corrupt(
                    &self.target.display().to_string(),
                    "run",
                    format!("spilled entries out of order at key {}", entry.object_id),
                ));
            }
        } else {
            self.key_min = entry.object_id;
        }
        self.previous = Some(entry);
        self.pending.push(entry);
        self.entries += 1;
        if self.pending.len() == self.block_entries as usize {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.block_bytes.clear();
        let entry = encode_block(&self.pending, self.offset, &mut self.block_bytes);
        self.writer
            .write_all(&self.block_bytes)
            .map_err(|source| DirectorError::io(&self.file.path, "write", source))?;
        self.offset += u64::from(entry.len);
        self.blocks += 1;
        self.directory.push(&entry)?;
        self.pending.clear();
        Ok(())
    }

    /// Writes the directory, tail and header, fsyncs and publishes the file.
    fn finish(mut self) -> Result<(u64, u64, u64)> {
        self.flush_block()?;
        let path = self.file.path.clone();
        let io_error = |operation| {
            let path = path.clone();
            move |source| DirectorError::io(path, operation, source)
        };
        let directory_offset = self.offset;
        let directory_crc32c = self.directory.copy_into(&mut self.writer)?;
        let mut tail = Vec::with_capacity(super::layout::TAIL_LEN);
        Tail {
            directory_offset,
            block_count: self.blocks,
            entry_count: self.entries,
            directory_crc32c,
        }
        .encode(&mut tail);
        self.writer.write_all(&tail).map_err(io_error("write"))?;
        let mut file = self
            .writer
            .into_inner()
            .map_err(|error| io_error("write")(error.into_error()))?;
        let header = Header {
            block_entries: self.block_entries,
            entry_count: self.entries,
            key_min: self.key_min,
            key_max: self.previous.map_or(0, |entry| entry.object_id),
        };
        let mut header_bytes = Vec::with_capacity(HEADER_LEN);
        header.encode(&mut header_bytes);
        file.seek(SeekFrom::Start(0)).map_err(io_error("seek"))?;
        file.write_all(&header_bytes).map_err(io_error("write"))?;
        file.sync_all().map_err(io_error("fsync"))?;
        let file_bytes = file.metadata().map_err(io_error("stat"))?.len();
        drop(file);
        self.file.persist(&self.target)?;
        let dir = parent_dir(&self.target);
        File::open(&dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|source| DirectorError::io(&dir, "fsync directory", source))?;
        Ok((self.entries, self.blocks, file_bytes))
    }
}

/// Directory entries: in memory up to [`DIRECTORY_BUFFER`] bytes, then in a
/// temporary file, copied after the blocks at the end.
struct DirectorySink {
    buffer: Vec<u8>,
    spill: Option<(TempFile, BufWriter<File>)>,
    crc: u32,
    dir: PathBuf,
}

impl DirectorySink {
    fn push(&mut self, entry: &DirEntry) -> Result<()> {
        let start = self.buffer.len();
        entry.encode(&mut self.buffer);
        self.crc = crc32c::crc32c_append(self.crc, &self.buffer[start..]);
        if self.buffer.len() >= DIRECTORY_BUFFER {
            if self.spill.is_none() {
                let (file, handle) = TempFile::create(&self.dir, ".skyscan-director-", ".dir")?;
                self.spill = Some((file, BufWriter::with_capacity(WRITE_BUFFER, handle)));
            }
            if let Some((file, writer)) = &mut self.spill {
                writer
                    .write_all(&self.buffer)
                    .map_err(|source| DirectorError::io(&file.path, "write", source))?;
            }
            self.buffer.clear();
        }
        Ok(())
    }

    /// Appends the whole directory to `out`; returns its CRC-32C.
    fn copy_into(&mut self, out: &mut BufWriter<File>) -> Result<u32> {
        if let Some((file, writer)) = self.spill.take() {
            let mut handle = writer
                .into_inner()
                .map_err(|error| DirectorError::io(&file.path, "write", error.into_error()))?;
            handle
                .seek(SeekFrom::Start(0))
                .map_err(|source| DirectorError::io(&file.path, "seek", source))?;
            io::copy(&mut handle, out)
                .map_err(|source| DirectorError::io(&file.path, "copy", source))?;
        }
        out.write_all(&self.buffer)
            .map_err(|source| DirectorError::io(&self.dir, "write", source))?;
        Ok(self.crc)
    }
}
