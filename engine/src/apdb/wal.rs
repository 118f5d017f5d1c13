//! The write-ahead log (SPEC.md part 4 §2–§4): files of CRC-checked records,
//! appended by writers under the APDB's writer lock and made durable by
//! group commit (one `fdatasync` for every record appended before it).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ApdbError, Result};
use super::segment::sync_dir;

/// Magic at the start of every log file.
pub const WAL_MAGIC: [u8; 8] = *b"SKYAPWAL";
/// Log file format version.
pub const WAL_VERSION: u32 = 1;
/// Bytes of a log file header.
pub const WAL_HEADER_LEN: usize = 32;
/// Magic at the start of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"APRC";
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 32;
/// Largest record body: 1 GiB (a whole visit is ~20 MB).
pub const MAX_RECORD_BODY: u32 = 1 << 30;
/// A new log file is started when the current one passes this size.
pub const WAL_FILE_TARGET_BYTES: u64 = 256 << 20;

/// Kinds of records.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// One `store`: the rows of a visit (or of one CCD of it).
    Visit = 1,
    /// One `reassign_dia_sources`.
    Reassign = 2,
    /// Log shipping only: the primary's durable sequence number.
    Head = 3,
}

impl RecordKind {
    /// Parses a kind byte.
    pub fn from_id(id: u8) -> Option<RecordKind> {
        match id {
            1 => Some(RecordKind::Visit),
            2 => Some(RecordKind::Reassign),
            3 => Some(RecordKind::Head),
            _ => None,
        }
    }
}

/// A record read back: kind, sequence number, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Kind.
    pub kind: RecordKind,
    /// Sequence number (1, 2, 3, … across the whole log).
    pub seq: u64,
    /// Body bytes (CRC verified).
    pub body: Vec<u8>,
}

/// Encodes a record (header + body) into `out`.
pub fn encode_record(kind: RecordKind, seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 24]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(body);
}

/// What parsing the next record of a byte buffer found.
#[derive(Debug)]
pub enum Parsed {
    /// A whole, valid record of `len` bytes.
    Record(Record, usize),
    /// Fewer bytes than the record needs (a torn tail, or a stream that has
    /// not delivered the rest yet).
    Incomplete,
    /// Bytes that are not a valid record (bad magic, CRC, kind, length).
    Invalid(String),
}

/// Parses the record at the start of `bytes`.
pub fn parse_record(bytes: &[u8]) -> Parsed {
    if bytes.len() < RECORD_HEADER_LEN {
        return Parsed::Incomplete;
    }
    let header = &bytes[..RECORD_HEADER_LEN];
    if header[..4] != RECORD_MAGIC {
        return Parsed::Invalid("bad record magic".into());
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    if crc32c::crc32c(&header[..24]) != u32_at(24) {
        return Parsed::Invalid("record header checksum mismatch".into());
    }
    if header[5..8] != [0, 0, 0] || u32_at(28) != 0 {
        return Parsed::Invalid("reserved record header bytes are not zero".into());
    }
    let Some(kind) = RecordKind::from_id(header[4]) else {
        return Parsed::Invalid(format!("unknown record kind {}", header[4]));
    };
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&header[8..16]);
    let seq = u64::from_le_bytes(seq);
    let body_len = u32_at(16);
    if body_len > MAX_RECORD_BODY {
        return Parsed::Invalid(format!("record body of {body_len} bytes over the limit"));
    }
    let total = RECORD_HEADER_LEN + body_len as usize;
    if bytes.len() < total {
        return Parsed::Incomplete;
    }
    let body = &bytes[RECORD_HEADER_LEN..total];
    if crc32c::crc32c(body) != u32_at(20) {
        return Parsed::Invalid("record body checksum mismatch".into());
    }
    Parsed::Record(
        Record {
            kind,
            seq,
            body: body.to_vec(),
        },
        total,
    )
}

/// The 32-byte header of a log file whose first record is `first_seq`.
pub fn encode_file_header(first_seq: u64) -> [u8; WAL_HEADER_LEN] {
    let mut h = [0u8; WAL_HEADER_LEN];
    h[..8].copy_from_slice(&WAL_MAGIC);
    h[8..12].copy_from_slice(&WAL_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

fn parse_file_header(h: &[u8], name: &str) -> Result<u64> {
    let corrupt = |m: &str| ApdbError::Corrupt(format!("log file {name}: {m}"));
    if h.len() < WAL_HEADER_LEN {
        return Err(corrupt("shorter than its header"));
    }
    if h[..8] != WAL_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let crc = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if crc32c::crc32c(&h[..28]) != crc {
        return Err(corrupt("header checksum mismatch"));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != WAL_VERSION {
        return Err(ApdbError::Corrupt(format!(
            "log file {name}: version {version} is not supported"
        )));
    }
    if h[12..16] != [0; 4] || h[24..28] != [0; 4] {
        return Err(corrupt("reserved header bytes are not zero"));
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(s))
}

/// Name of the log file whose first record has sequence number `first_seq`.
pub fn wal_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The log files of `dir`, by first sequence number.
pub fn list_wal_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ApdbError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ApdbError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".wal")
            && stem.len() == 20
            && let Ok(first) = stem.parse::<u64>()
        {
            files.push((first, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Everything recovery read from the log: its records in order and where
/// the next record goes.
pub struct Recovered {
    /// Valid records, ascending and consecutive sequence numbers.
    pub records: Vec<Record>,
    /// Sequence number of the next record.
    pub next_seq: u64,
    /// Bytes of a torn tail that were cut off (0 for a clean log).
    pub torn_bytes: u64,
}

/// Reads every log file of `dir`; cuts a torn tail off the last file
/// (truncate + fsync). A bad record in the middle of the log — followed by
/// valid records, which means acknowledged data is damaged — is `Corrupt`.
/// `truncate` false (read-only use) leaves the files untouched.
pub fn recover(dir: &Path, truncate: bool) -> Result<Recovered> {
    let files = list_wal_files(dir)?;
    let mut records = Vec::new();
    let mut next_seq: Option<u64> = None;
    let mut torn_bytes = 0;
    for (index, (first, path)) in files.iter().enumerate() {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| ApdbError::io(format!("reading {name}"), e))?;
        let last_file = index + 1 == files.len();
        if bytes.len() < WAL_HEADER_LEN && last_file {
            // A file created but whose header never reached the disk.
            if truncate {
                std::fs::remove_file(path)
                    .map_err(|e| ApdbError::io(format!("removing {name}"), e))?;
            }
            torn_bytes += bytes.len() as u64;
            continue;
        }
        let header_first = parse_file_header(&bytes, &name)?;
        if header_first != *first {
            return Err(ApdbError::Corrupt(format!(
                "log file {name}: header says first record {header_first}"
            )));
        }
        if let Some(expected) = next_seq
            && expected != *first
        {
            return Err(ApdbError::Corrupt(format!(
                "log file {name} starts at record {first}, expected {expected}: a log file is missing"
            )));
        }
        let mut seq = *first;
        let mut offset = WAL_HEADER_LEN;
        loop {
            if offset == bytes.len() {
                break;
            }
            match parse_record(&bytes[offset..]) {
                Parsed::Record(record, len) if record.seq == seq => {
                    records.push(record);
                    seq += 1;
                    offset += len;
                }
                other => {
                    let why = match other {
                        Parsed::Record(r, _) => {
                            format!("record {} where {seq} was expected", r.seq)
                        }
                        Parsed::Incomplete => "incomplete record".to_string(),
                        Parsed::Invalid(m) => m,
                    };
                    if !last_file || later_valid_record(&bytes[offset + 1..], seq) {
                        return Err(ApdbError::Corrupt(format!(
                            "log file {name} at byte {offset}: {why}, and valid records follow"
                        )));
                    }
                    torn_bytes += (bytes.len() - offset) as u64;
                    if truncate {
                        let file = OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(|e| ApdbError::io(format!("opening {name}"), e))?;
                        file.set_len(offset as u64)
                            .and_then(|()| file.sync_all())
                            .map_err(|e| ApdbError::io(format!("truncating {name}"), e))?;
                    }
                    break;
                }
            }
        }
        next_seq = Some(seq);
    }
    Ok(Recovered {
        records,
        next_seq: next_seq.unwrap_or(1),
        torn_bytes,
    })
}

/// Whether a valid record with sequence number `>= seq` starts anywhere in
/// `bytes` (then a bad record before it is damage, not a torn tail).
fn later_valid_record(bytes: &[u8], seq: u64) -> bool {
    let mut start = 0;
    while let Some(found) = bytes[start..].windows(4).position(|w| w == RECORD_MAGIC) {
        let at = start + found;
        if let Parsed::Record(r, _) = parse_record(&bytes[at..])
            && r.seq >= seq
        {
            return true;
        }
        start = at + 1;
    }
    false
}

/// The appending side of the log. Owned by the APDB's writer lock.
pub struct WalWriter {
    dir: PathBuf,
    file: Arc<File>,
    file_bytes: u64,
    /// Sequence number the next record gets.
    pub next_seq: u64,
    /// Logical position: bytes appended since open, over all files.
    pub written_lsn: u64,
    buffer: Vec<u8>,
}

impl WalWriter {
    /// Starts a new log file for records from `next_seq` on (recovery
    /// leaves the older files as they are; they are read-only from now on).
    pub fn open(dir: &Path, next_seq: u64) -> Result<WalWriter> {
        let (file, file_bytes) = new_file(dir, next_seq)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file,
            file_bytes,
            next_seq,
            written_lsn: 0,
            buffer: Vec::new(),
        })
    }

    /// The file being appended to.
    pub fn current_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Appends one record with the next sequence number (written to the
    /// file, not yet synced). Returns (seq, logical end position).
    pub fn append(&mut self, kind: RecordKind, body: &[u8]) -> Result<(u64, u64)> {
        if body.len() > MAX_RECORD_BODY as usize {
            return Err(ApdbError::Limit(format!(
                "a log record of {} bytes is over the limit of {MAX_RECORD_BODY}",
                body.len()
            )));
        }
        if self.file_bytes >= WAL_FILE_TARGET_BYTES {
            // Roll: the old file is synced whole first, so a sync of the new
            // file makes everything before it durable as well.
            self.file
                .sync_data()
                .map_err(|e| ApdbError::Poisoned(format!("fsync of the log failed: {e}")))?;
            let (file, bytes) = new_file(&self.dir, self.next_seq)?;
            self.file = file;
            self.file_bytes = bytes;
        }
        let seq = self.next_seq;
        self.buffer.clear();
        encode_record(kind, seq, body, &mut self.buffer);
        (&*self.file)
            .write_all(&self.buffer)
            .map_err(|e| ApdbError::Poisoned(format!("writing the log failed: {e}")))?;
        self.next_seq += 1;
        self.file_bytes += self.buffer.len() as u64;
        self.written_lsn += self.buffer.len() as u64;
        Ok((seq, self.written_lsn))
    }
}

fn new_file(dir: &Path, first_seq: u64) -> Result<(Arc<File>, u64)> {
    let path = dir.join(wal_file_name(first_seq));
    let context = || format!("creating log file {}", path.display());
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(&path)
        .map_err(|e| ApdbError::io(context(), e))?;
    file.write_all(&encode_file_header(first_seq))
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_dir(dir))
        .map_err(|e| ApdbError::io(context(), e))?;
    file.seek(SeekFrom::End(0))
        .map_err(|e| ApdbError::io(context(), e))?;
    Ok((Arc::new(file), WAL_HEADER_LEN as u64))
}

/// Reads the records with sequence number `>= from_seq` from the log files
/// of `dir`, at most `max_bytes` of them (at least one record if any), for
/// log shipping. Only records up to `durable_seq` are returned. `Ok(None)`
/// when `from_seq` is older than the oldest kept log file (the follower
/// needs a new base copy).
pub fn read_from(
    dir: &Path,
    from_seq: u64,
    durable_seq: u64,
    max_bytes: usize,
) -> Result<Option<Vec<u8>>> {
    let files = list_wal_files(dir)?;
    let mut out = Vec::new();
    if from_seq > durable_seq {
        return Ok(Some(out));
    }
    let Some(start) = files.iter().rposition(|(first, _)| *first <= from_seq) else {
        return Ok(None);
    };
    // Records before `from_seq` are stepped over by their headers alone
    // (a read of 32 bytes each, no body read, no CRC): a shipment costs
    // the records it sends, not the whole log file before them.
    for (_, path) in &files[start..] {
        let file = match File::open(path) {
            Ok(f) => f,
            // Removed by a checkpoint between the listing and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ApdbError::io(format!("opening {}", path.display()), e)),
        };
        let read_err = |e: std::io::Error| ApdbError::io(format!("reading {}", path.display()), e);
        let file_len = file.metadata().map_err(read_err)?.len();
        let mut offset = WAL_HEADER_LEN as u64;
        while offset + RECORD_HEADER_LEN as u64 <= file_len {
            let mut header = [0u8; RECORD_HEADER_LEN];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, offset)
                .map_err(read_err)?;
            if let Parsed::Invalid(_) = parse_record(&header) {
                break; // a torn or unfinished tail: nothing durable follows
            }
            let seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
            let body_len = u32::from_le_bytes(header[16..20].try_into().unwrap_or_default());
            let total = RECORD_HEADER_LEN as u64 + u64::from(body_len);
            if seq > durable_seq || offset + total > file_len {
                return Ok(Some(out));
            }
            if seq >= from_seq {
                let at = out.len();
                out.resize(at + total as usize, 0);
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut out[at..], offset)
                    .map_err(read_err)?;
                if !matches!(parse_record(&out[at..]), Parsed::Record(..)) {
                    out.truncate(at);
                    return Ok(Some(out));
                }
                if out.len() >= max_bytes {
                    return Ok(Some(out));
                }
            }
            offset += total;
        }
    }
    Ok(Some(out))
}
