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
//!   Two paths may share a stripe: writers of them in two processes then wait for each other,
//!   which costs time, never rows; within a process, tasks share the stripe's lock
//!   ([`StripeLocks`]).
//!   (Readers take no lock: a rename is atomic, so they see the old file or the new one.)
//!
//! The caller's decision must depend only on what it is given: after a lost race it is asked
//! again with the newer content. That is also what makes an unanswered conditional write safe
//! to repeat. A write that timed out or lost its connection may or may not have landed, and the
//! object store does not retry it (its retry could meet its own first attempt as a precondition
//! failure). wxcube reads the object again and decides again: every decision (a merge, a
//! lease change) gives the same result whether or not the first attempt landed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Dataset, WriteError, file_lock, layout};

/// Lock files of a local output: enough that unrelated files rarely share one, few enough to
/// stay a small fixed set whatever the size of the output.
pub const LOCAL_STRIPES: u64 = 1024;

/// Lost races on one object before giving up. Each lost race means another writer succeeded,
/// so this is only reached under a storm of writers of the same file.
const MAX_RACES: u32 = 64;

/// Conditional writes that went unanswered (timeout, lost connection) before giving up: as
/// many as the object store's own retries of a request that is safe to repeat.
const MAX_UNANSWERED: u32 = 4;

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
        decide: impl FnMut(Option<&Bytes>) -> Result<Decision<T>, WriteError>,
    ) -> Result<T, WriteError> {
        self.update_through(&self.output.store, path, decide).await
    }

    /// [`Self::update`] of a lease, through the store's requests that do not queue behind the
    /// run's own writes ([`super::store::Output::lease_store`]).
    pub(crate) async fn update_lease<T>(
        &self,
        path: &Path,
        decide: impl FnMut(Option<&Bytes>) -> Result<Decision<T>, WriteError>,
    ) -> Result<T, WriteError> {
        self.update_through(&self.output.lease_store, path, decide).await
    }

    async fn update_through<T>(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        mut decide: impl FnMut(Option<&Bytes>) -> Result<Decision<T>, WriteError>,
    ) -> Result<T, WriteError> {
        if self.output.local_path(path).is_none() {
            let _mine = self.path_locks.lock(path.as_ref()).await;
            return self.update_remote(store, path, decide).await;
        }
        let (in_place, out) = {
            let _mine = self.path_locks.lock(path.as_ref()).await;
            let (_held, current) = self.lock_and_read(path).await?;
            match decide(current.as_ref())? {
                Decision::Keep(out) => return Ok(out),
                Decision::Put(bytes, out) => (self.put_in_place(path, bytes).await?, out),
            }
        };
        // The new file is in place: the next writer of the path may read it now, while this one
        // waits for it to be durable (see `group_commit`).
        in_place.durable().await?;
        Ok(out)
    }

    /// The compare-and-swap loop of a store that has conditional writes (S3).
    async fn update_remote<T>(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        mut decide: impl FnMut(Option<&Bytes>) -> Result<Decision<T>, WriteError>,
    ) -> Result<T, WriteError> {
        let mut unanswered = 0;
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
                Err(source) if unanswered < MAX_UNANSWERED && went_unanswered(&source) => {
                    unanswered += 1;
                    tracing::info!(path = %path, error = %crate::text::one_line(&source.to_string()), "a conditional write went unanswered; reading the object again to see whether it landed");
                    tokio::time::sleep(Duration::from_millis(200 << unanswered)).await;
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
    /// the file (`None`: absent). The lock is released once the returned hold, and every other
    /// hold of the stripe in this process, is dropped ([`StripeLocks`]).
    ///
    /// Both are done here rather than on a blocking thread, since they take microseconds and a
    /// hand-over to another thread costs more on a busy machine; only a lock another process
    /// holds is waited for on a blocking thread.
    async fn lock_and_read(&self, path: &Path) -> Result<(Arc<StripeHold>, Option<Bytes>), WriteError> {
        let stripe = layout::stable_hash(path.as_ref().as_bytes()) % LOCAL_STRIPES;
        let lock_path = layout::file_locks_dir(&self.output.root).join(format!("{stripe:04}.lock"));
        let lock_file = self.output.local_path(&lock_path).expect("a local output");
        let io_err =
            |at: &Path, e: std::io::Error| WriteError::Io { path: self.output.url_of(at), message: e.to_string() };
        let held = self.stripe_locks.hold(stripe, lock_file).await.map_err(|e| io_err(&lock_path, e))?;
        let data_file = self.output.local_path(path).expect("a local output");
        match std::fs::read(&data_file) {
            Ok(bytes) => Ok((held, Some(Bytes::from(bytes)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((held, None)),
            Err(e) => Err(io_err(path, e)),
        }
    }
}

/// Whether a write failed in transit (timed out, or its connection was lost or never made), so
/// that it may or may not have been applied; as opposed to an answer that refused it.
pub(crate) fn went_unanswered(error: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Timeout | HttpErrorKind::Interrupted | HttpErrorKind::Connect | HttpErrorKind::Request
            );
        }
        source = e.source();
    }
    false
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

/// The stripe locks this process holds (local disk), shared by its tasks.
///
/// A stripe's `flock` keeps other processes out of every path of the stripe; within the
/// process, [`PathLocks`] already keeps tasks of one path apart. So the process takes a
/// stripe's lock once for all its tasks in that stripe, and lets go when the last is done:
/// tasks writing unrelated files that happen to share a stripe do not wait for each other, and
/// the lock file is opened once per hold rather than once per write.
#[derive(Default)]
pub struct StripeLocks {
    map: std::sync::Mutex<HashMap<u64, Weak<StripeHold>>>,
}

/// One stripe's lock, held (once taken) for as long as a task of this process needs it.
#[derive(Default)]
pub struct StripeHold {
    file: tokio::sync::OnceCell<std::fs::File>,
}

impl StripeLocks {
    /// Joins this process's hold of `stripe`, taking its lock file `lock_file` if nobody here
    /// holds it yet (waiting, on a blocking thread, for another process that does).
    pub async fn hold(&self, stripe: u64, lock_file: std::path::PathBuf) -> std::io::Result<Arc<StripeHold>> {
        let hold = {
            // At most one entry per stripe: the map needs no pruning.
            let mut map = self.map.lock().unwrap();
            match map.get(&stripe).and_then(Weak::upgrade) {
                Some(hold) => hold,
                None => {
                    let hold = Arc::new(StripeHold::default());
                    map.insert(stripe, Arc::downgrade(&hold));
                    hold
                }
            }
        };
        hold.file
            .get_or_try_init(|| async move {
                match file_lock::try_lock_exclusive(&lock_file)? {
                    Some(file) => Ok(file),
                    None => tokio::task::spawn_blocking(move || file_lock::lock_exclusive(&lock_file))
                        .await
                        .expect("taking a file lock panicked"),
                }
            })
            .await?;
        Ok(hold)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::write::Output;
    use crate::write::store::OutputSpec;
    use futures::stream::BoxStream;
    use object_store::client::{HttpError, HttpErrorKind};
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
        PutResult,
    };
    use std::sync::atomic::{AtomicU32, Ordering};

    /// An S3-like store (conditional writes, ETags) whose conditional writes of `victim` are
    /// applied and then answered with a lost connection, `losses` times: what a client sees
    /// when a server applies a write and the answer never arrives.
    #[derive(Debug)]
    pub(crate) struct AnswerLost {
        pub inner: InMemory,
        pub victim: Path,
        pub losses: AtomicU32,
        pub refuse_instead: bool,
    }

    impl std::fmt::Display for AnswerLost {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "AnswerLost")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for AnswerLost {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            let conditional = !matches!(opts.mode, PutMode::Overwrite);
            if conditional && location == &self.victim && self.losses.load(Ordering::SeqCst) > 0 {
                self.losses.fetch_sub(1, Ordering::SeqCst);
                let source: Box<dyn std::error::Error + Send + Sync> = if self.refuse_instead {
                    "403 Forbidden".into()
                } else {
                    self.inner.put_opts(location, payload, opts).await?;
                    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
                    Box::new(HttpError::new(HttpErrorKind::Interrupted, reset))
                };
                return Err(object_store::Error::Generic { store: "AnswerLost", source });
            }
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// A dataset on an [`AnswerLost`] store whose `out/members.txt` holds `initial`, if given.
    async fn dataset_over(initial: Option<&'static str>, losses: u32, refuse_instead: bool) -> (Dataset, Path) {
        let victim = Path::from("out/members.txt");
        let inner = InMemory::new();
        if let Some(text) = initial {
            inner.put(&victim, PutPayload::from(text)).await.unwrap();
        }
        let store = AnswerLost { inner, victim: victim.clone(), losses: AtomicU32::new(losses), refuse_instead };
        let spec = OutputSpec::S3 { bucket: "lake".into(), prefix: "out".into() };
        let store: Arc<dyn ObjectStore> = Arc::new(store);
        let output = Output { lease_store: Arc::clone(&store), store, root: Path::from("out"), spec };
        (Dataset::open(output, None, None).await.unwrap(), victim)
    }

    /// Adds `member` to a set of lines: the same result whether or not it is already there, as
    /// every real decision (a merge, a lease change) is.
    fn add(member: &str) -> impl FnMut(Option<&Bytes>) -> Result<Decision<()>, WriteError> + '_ {
        move |current| {
            let text = current.map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or_default();
            let mut members: std::collections::BTreeSet<&str> = text.lines().collect();
            members.insert(member);
            let joined: Vec<&str> = members.into_iter().collect();
            Ok(Decision::Put(Bytes::from(joined.join("\n")), ()))
        }
    }

    async fn members(dataset: &Dataset, path: &Path) -> String {
        let found = dataset.output.store.get(path).await.unwrap();
        String::from_utf8(found.bytes().await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_conditional_write_whose_answer_is_lost_is_decided_again_and_lands_once() {
        // An update (If-Match) and then every repeat but the last land and lose their answers.
        let (dataset, victim) = dataset_over(Some("a"), MAX_UNANSWERED, false).await;
        dataset.update(&victim, add("b")).await.unwrap();
        assert_eq!(members(&dataset, &victim).await, "a\nb");
        // A creation (If-None-Match) whose answer is lost: the repeat finds it created.
        let (dataset, victim) = dataset_over(None, 1, false).await;
        dataset.update(&victim, add("a")).await.unwrap();
        assert_eq!(members(&dataset, &victim).await, "a");
    }

    #[tokio::test]
    async fn answers_lost_past_the_limit_are_an_error_naming_the_object() {
        let (dataset, victim) = dataset_over(None, MAX_UNANSWERED + 1, false).await;
        let err = dataset.update(&victim, add("a")).await.unwrap_err().to_string();
        assert!(err.contains("s3://lake/out/members.txt"), "{err}");
        // Every attempt landed: the object holds the member once.
        assert_eq!(members(&dataset, &victim).await, "a");
    }

    #[tokio::test]
    async fn a_refused_write_is_not_repeated() {
        let (dataset, victim) = dataset_over(None, 1, true).await;
        let err = dataset.update(&victim, add("a")).await.unwrap_err().to_string();
        assert!(err.contains("403"), "{err}");
        assert!(dataset.output.store.get(&victim).await.is_err(), "a refused write was repeated");
    }

    #[tokio::test]
    async fn tasks_share_a_stripe_lock_that_keeps_other_processes_out_until_the_last_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let lock_file = tmp.path().join("locks/0007.lock");
        let locks = StripeLocks::default();
        let first = locks.hold(7, lock_file.clone()).await.unwrap();
        // A second task of this process, writing another path of the stripe, does not wait…
        let second =
            tokio::time::timeout(Duration::from_secs(5), locks.hold(7, lock_file.clone())).await.unwrap().unwrap();
        // …while another process (another open file description) is kept out…
        assert!(file_lock::try_lock_exclusive(&lock_file).unwrap().is_none());
        drop(first);
        assert!(file_lock::try_lock_exclusive(&lock_file).unwrap().is_none(), "let go while a task still holds it");
        // …until the last task lets go.
        drop(second);
        let other = file_lock::try_lock_exclusive(&lock_file).unwrap().expect("released with the last hold");
        // And this process waits for the other one in turn.
        let waiting = tokio::spawn({
            let lock_file = lock_file.clone();
            async move { StripeLocks::default().hold(7, lock_file).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "took a stripe another process holds");
        drop(other);
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap().unwrap();
    }

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
