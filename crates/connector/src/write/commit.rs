//! Read–modify–write of one object that other writers may meet: the only way wxcube replaces a
//! data file, a state file or a lease.
//!
//! Tasks of one run, shards, two scheduler runs and a rebuild can all reach the same object.
//! Whatever their timing, no write may replace a version its writer did not read: otherwise
//! the last writer silently drops what the other merged in. [`Dataset::update`] reads the
//! object, asks the caller what it should become, and writes that only if nobody wrote in
//! between; a lost race reads again and decides again. It never overwrites blindly.
//!
//! - **Within a process**, tasks take an async mutex per object path ([`PathLocks`]), so they
//!   wait for each other instead of racing.
//! - **On S3**, the write is conditional on the version read: `PutMode::Update` with the ETag
//!   (`If-Match`), or `PutMode::Create` (`If-None-Match: *`) when there was none. AWS S3, MinIO
//!   and the moto server of the tests all honour both. A precondition failure means another
//!   writer won: read again, decide again.
//! - **On local disk**, a store without compare-and-swap, each object path hashes to one of
//!   [`LOCAL_STRIPES`] lock files under `_wxcube/locks/files/`; an exclusive `flock` on it is
//!   held from the read to the rename that publishes the new version. The kernel drops the
//!   lock when its process dies, even by SIGKILL, so a killed writer never blocks the others.
//!   Two paths may share a stripe: they then wait for each other, which costs time, never rows.
//!   (Readers take no lock: a rename is atomic, so they see the old file or the new one.)
//!
//! The caller's decision must depend only on what it is given: after a lost race it is asked
//! again with the newer content.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Dataset, WriteError, file_lock, layout};

/// Lock files of a local output: enough that unrelated files rarely share one, few enough to
/// stay a small fixed set whatever the size of the output.
pub const LOCAL_STRIPES: u64 = 1024;

/// Lost races on one object before giving up. Each lost race means another writer succeeded,
/// so this is only reached under a storm of writers of the same file.
const MAX_RACES: u32 = 64;

/// What an object should become, and what the caller wants back.
pub enum Decision<T> {
    /// Leave it as it is.
    Keep(T),
    /// Replace it (or create it) with these bytes.
    Put(Bytes, T),
}

impl Dataset {
    /// Reads `path` (`None`: absent), lets `decide` say what it becomes, and writes that unless
    /// another writer got there first, in which case it reads and decides again.
    pub(crate) async fn update<T>(
        &self,
        path: &Path,
        mut decide: impl FnMut(Option<&Bytes>) -> Result<Decision<T>, WriteError>,
    ) -> Result<T, WriteError> {
        let _mine = self.path_locks.lock(path.as_ref()).await;
        match self.output.local_path(path) {
            Some(_) => {
                let (_held, current) = self.lock_and_read(path).await?;
                match decide(current.as_ref())? {
                    Decision::Keep(out) => Ok(out),
                    Decision::Put(bytes, out) => {
                        self.put_atomic(path, bytes).await?;
                        Ok(out)
                    }
                }
            }
            None => self.update_remote(path, decide).await,
        }
    }

    /// The compare-and-swap loop of a store that has conditional writes (S3).
    async fn update_remote<T>(
        &self,
        path: &Path,
        mut decide: impl FnMut(Option<&Bytes>) -> Result<Decision<T>, WriteError>,
    ) -> Result<T, WriteError> {
        let store = &self.output.store;
        for race in 0..MAX_RACES {
            let (current, version) = match store.get(path).await {
                Ok(found) => {
                    let version =
                        UpdateVersion { e_tag: found.meta.e_tag.clone(), version: found.meta.version.clone() };
                    let bytes = found.bytes().await.map_err(|source| self.store_err(path, source))?;
                    (Some(bytes), Some(version))
                }
                Err(object_store::Error::NotFound { .. }) => (None, None),
                Err(source) => return Err(self.store_err(path, source)),
            };
            let (bytes, out) = match decide(current.as_ref())? {
                Decision::Keep(out) => return Ok(out),
                Decision::Put(bytes, out) => (bytes, out),
            };
            let mode = version.map_or(PutMode::Create, PutMode::Update);
            let opts = PutOptions { mode, ..Default::default() };
            match store.put_opts(path, PutPayload::from(bytes), opts).await {
                Ok(_) => return Ok(out),
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    tracing::debug!(path = %path, race, "another writer replaced the object first; reading it again");
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=10 * u64::from(race + 1)))).await;
                }
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Err(WriteError::Settings(format!(
                        "{} does not support conditional writes (If-Match / If-None-Match), which wxcube needs so that writers that meet never lose rows: use a store that does (AWS S3, MinIO, …)",
                        self.output.spec
                    )));
                }
                Err(source) => return Err(self.store_err(path, source)),
            }
        }
        Err(WriteError::Io {
            path: self.output.url_of(path),
            message: format!("lost {MAX_RACES} races in a row to other writers of this object; re-run to fill it"),
        })
    }

    /// Takes the exclusive lock of the stripe `path` hashes to (local disk only), then reads
    /// the file (`None`: absent). The lock is released when the returned file is dropped.
    ///
    /// Both are done here rather than on a blocking thread, since they take microseconds and a
    /// hand-over to another thread costs more on a busy machine; only a lock another process
    /// holds is waited for on a blocking thread.
    async fn lock_and_read(&self, path: &Path) -> Result<(std::fs::File, Option<Bytes>), WriteError> {
        let stripe = layout::stable_hash(path.as_ref().as_bytes()) % LOCAL_STRIPES;
        let lock_path = layout::file_locks_dir(&self.output.root).join(format!("{stripe:04}.lock"));
        let lock_file = self.output.local_path(&lock_path).expect("a local output");
        let io_err =
            |at: &Path, e: std::io::Error| WriteError::Io { path: self.output.url_of(at), message: e.to_string() };
        let held = match file_lock::try_lock_exclusive(&lock_file).map_err(|e| io_err(&lock_path, e))? {
            Some(held) => held,
            None => tokio::task::spawn_blocking(move || file_lock::lock_exclusive(&lock_file))
                .await
                .expect("taking a file lock panicked")
                .map_err(|e| io_err(&lock_path, e))?,
        };
        let data_file = self.output.local_path(path).expect("a local output");
        match std::fs::read(&data_file) {
            Ok(bytes) => Ok((held, Some(Bytes::from(bytes)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((held, None)),
            Err(e) => Err(io_err(path, e)),
        }
    }
}

/// One async mutex per object path, for the tasks of one process. Entries live as long as
/// someone holds or waits for them; the map is pruned as it grows.
#[derive(Default)]
pub struct PathLocks {
    map: std::sync::Mutex<PathLockMap>,
}

#[derive(Default)]
struct PathLockMap {
    locks: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    prune_at: usize,
}

impl PathLocks {
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut map = self.map.lock().unwrap();
            if map.locks.len() >= map.prune_at {
                map.locks.retain(|_, m| m.strong_count() > 0);
                map.prune_at = (2 * map.locks.len()).max(256);
            }
            match map.locks.get(key).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    map.locks.insert(key.to_string(), Arc::downgrade(&m));
                    m
                }
            }
        };
        mutex.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_task_per_path_at_a_time() {
        let locks = Arc::new(PathLocks::default());
        let inside = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (locks, inside) = (locks.clone(), inside.clone());
                tokio::spawn(async move {
                    let _g = locks.lock(if i % 2 == 0 { "a" } else { "b" }).await;
                    let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert!(now < 2, "two tasks of one path at once");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Nobody holds a lock any more: the next growth prunes every entry.
        assert!(locks.map.lock().unwrap().locks.values().all(|m| m.strong_count() == 0));
    }
}
