//! File-system helpers of the catalog: the writer lock, bounded reads,
//! fsync of files and directories.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{CatalogError, Result};

/// An exclusive `flock(2)` on the database's `LOCK` file, held until drop.
/// `flock` locks belong to the open file description, so a second lock
/// attempt conflicts whether it comes from another process or this one.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock without waiting; [`CatalogError::Busy`] if another holds it.
    pub(crate) fn try_acquire(path: &Path) -> Result<WriterLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| CatalogError::io(path, "open lock file", e))?;
        lock_exclusive_nonblocking(&file).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                CatalogError::Busy {
                    path: path.to_path_buf(),
                }
            } else {
                CatalogError::io(path, "lock", e)
            }
        })?;
        Ok(WriterLock { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive_nonblocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor number, which `file` keeps open
    // for the duration of the call; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock_exclusive_nonblocking(_file: &File) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the catalog writer lock needs flock (Unix)",
    ))
}

/// Reads a whole file, refusing one longer than `max_bytes` before reading it.
pub(crate) fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| CatalogError::io(path, "open", e))?;
    let len = file
        .metadata()
        .map_err(|e| CatalogError::io(path, "stat", e))?
        .len();
    if len > max_bytes {
        return Err(CatalogError::corrupt(
            path,
            format!("{len} bytes, over the limit of {max_bytes} for this file"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CatalogError::io(path, "read", e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(CatalogError::corrupt(
            path,
            format!("grew over the limit of {max_bytes} bytes while read"),
        ));
    }
    Ok(bytes)
}

/// fsyncs a directory, so that the names created, renamed or removed in it are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| CatalogError::io(path, "fsync directory", e))
}

/// fsyncs a file's contents.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| CatalogError::io(path, "fsync", e))
}

/// Creates `path` (truncating), writes `bytes` in two parts with `between`
/// called after the first (so crash tests can stop a write half way), and
/// fsyncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8], between: impl FnOnce()) -> Result<()> {
    let mut file = File::create(path).map_err(|e| CatalogError::io(path, "create", e))?;
    let (first, second) = bytes.split_at(bytes.len() / 2);
    file.write_all(first)
        .and_then(|()| file.flush())
        .map_err(|e| CatalogError::io(path, "write", e))?;
    between();
    file.write_all(second)
        .map_err(|e| CatalogError::io(path, "write", e))?;
    file.sync_all()
        .map_err(|e| CatalogError::io(path, "fsync", e))
}

/// Renames `from` to `to` (replacing `to`).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| CatalogError::io(to, "rename", e))
}

/// Creates `path` and its missing parents, fsyncing each directory whose
/// entries changed, so the new directory survives a crash.
pub(crate) fn create_dir_durable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cursor = Some(path);
    while let Some(dir) = cursor {
        if dir.as_os_str().is_empty() || dir.is_dir() {
            break;
        }
        missing.push(dir.to_path_buf());
        cursor = dir.parent();
    }
    for dir in missing.iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CatalogError::io(dir, "create directory", e)),
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes a file or a directory tree; a missing path is not an error.
pub(crate) fn remove_all(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CatalogError::io(path, "remove", e)),
    }
}

/// The entries of a directory as (name, path); a missing directory has none.
pub(crate) fn list_dir(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CatalogError::io(path, "list directory", e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CatalogError::io(path, "list directory", e))?;
        // Names that are not UTF-8 are not ours: cleanup leaves them alone.
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}
