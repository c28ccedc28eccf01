//! Publishing a whole file on local disk, durably, with the fewest fsyncs.
//!
//! object_store's local store makes a file durable too, but it fsyncs every directory it
//! touches: writing a file under `_wxcube/staging/` and renaming it into a new partition costs
//! six fsyncs there (the file, the staging folder twice, the new folder and its parent, the
//! partition). Only three carry anything a reader needs after a crash: the file's data, the
//! entry of a folder that did not exist, and the partition's entry for the file. On a disk
//! where each fsync is a synchronous write, those extra fsyncs were a sixth of a run's CPU
//! (README, "Performance"). Reads and listings still go through object_store. The lock files
//! that guard a read–merge–write (`write::commit`) are taken here too.
//!
//! The order is what makes a crash safe: the staged file's data is on disk before it is renamed
//! into place, so a reader never sees a half-written file under a final name; a staged file a
//! crash leaves behind is removed by a later run (`Dataset::clean_staging`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `staged` (a fresh name in the staging folder, which exists), makes it
/// durable, and renames it to `dest`, creating `dest`'s missing folders.
pub fn publish(staged: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = write_synced(staged, bytes).and_then(|()| {
        let parent = dest.parent().expect("a data file lives in a folder");
        create_dirs_durably(parent)?;
        fs::rename(staged, dest)?;
        sync_dir(parent)
    });
    if result.is_err() {
        let _ = fs::remove_file(staged);
    }
    result
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `dir` and any missing parents; each new folder's entry is made durable by syncing
/// the folder that holds it.
fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        missing.push(at.to_path_buf());
        at = match at.parent() {
            Some(p) => p,
            None => break,
        };
    }
    for new in missing.iter().rev() {
        match fs::create_dir(new) {
            Ok(()) => sync_dir(new.parent().expect("a created folder has a parent"))?,
            // Another writer of the same partition (another bucket's file) made it first.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens (creating it and its folders if need be) the lock file `path` and takes an exclusive
/// `flock` on it, waiting for any other holder; dropping the file releases it. The kernel
/// releases it too when the process dies, whatever the way.
pub fn lock_exclusive(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)?;
    file.lock()?;
    Ok(file)
}

/// Like [`lock_exclusive`], but gives up at once: `Ok(None)` while another holds the lock.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<File>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_into_new_folders_and_replaces_whole_files() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join("_wxcube/staging");
        fs::create_dir_all(&staging).unwrap();
        let dest = tmp.path().join("t/ref_date=2024-03-01/part-00.parquet");
        publish(&staging.join("1"), &dest, b"first").unwrap();
        publish(&staging.join("2"), &dest, b"second").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"second");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0, "nothing is left in staging");
    }

    #[test]
    fn a_file_lock_excludes_every_other_holder_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("locks/0001.lock");
        let held = lock_exclusive(&path).unwrap();
        // A second open file description, as another process would have, is refused…
        assert!(try_lock_exclusive(&path).unwrap().is_none());
        drop(held);
        // …until the holder lets go.
        assert!(try_lock_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn a_failed_publish_leaves_the_old_file_and_no_staged_file() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join("staging");
        fs::create_dir_all(&staging).unwrap();
        let dest = tmp.path().join("t/part-00.parquet");
        publish(&staging.join("1"), &dest, b"old").unwrap();
        // A file where a folder should be: the partition folder cannot be created.
        fs::write(tmp.path().join("blocked"), b"").unwrap();
        let err = publish(&staging.join("2"), &tmp.path().join("blocked/x/part-00.parquet"), b"new");
        assert!(err.is_err());
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
    }
}
