//! Exclusive locks on local files (`flock`): what guards a read–merge–write on local disk
//! (`write::commit`) and tells that a run is alive (`write::lease`). The kernel drops a lock
//! when its process dies, however it dies, so a killed writer never blocks the others.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Opens (creating it and its folders if need be) the lock file `path` and takes an exclusive
/// `flock` on it, waiting for any other holder; dropping the file releases it. The kernel
/// releases it too when the process dies, whatever the way.
pub fn lock_exclusive(path: &Path) -> io::Result<File> {
    let file = open(path)?;
    file.lock()?;
    Ok(file)
}

/// Opens the lock file, creating it (and its folder, the first time) if need be.
fn open(path: &Path) -> io::Result<File> {
    let open = || fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path.parent().expect("a lock file lives in a folder"))?;
            open()
        }
        opened => opened,
    }
}

/// Like [`lock_exclusive`], but gives up at once: `Ok(None)` while another holds the lock.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<File>> {
    let file = open(path)?;
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
}
