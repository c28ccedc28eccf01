//! Group commit: files on local disk are made durable a batch at a time, not one at a time.
//!
//! A writer stages its file (written under `_wxcube/staging/`, not yet synced), hands it over
//! and waits. One committer thread works in rounds; each round:
//! 1. renames into place the files whose data the previous round made durable (creating the
//!    folders that are missing);
//! 2. takes every file that has arrived since;
//! 3. calls `syncfs` once: the names of (1), and the data of (2), are now on the device;
//! 4. tells the writers of (1) their file is durable; the files of (2) are renamed next round.
//!
//! A writer is also told when its file is in place (1), so that it can let the next writer of
//! the same path read it without waiting for (3).
//!
//! One sync per round serves two batches, and while it runs new files queue up for the next:
//! the more writers wait, the fewer syncs each file costs. On a disk where every sync is a
//! synchronous device write, per-file syncs were half the wall time of a run (README,
//! "Performance").
//!
//! Why a power cut cannot lose or tear a file a writer was told is durable: its data reached
//! the device (a sync that began after it was written) before its name was made to point at it,
//! and that name reached the device (the next sync) before the writer was told. A cut before
//! that leaves the old file, or no file, under the final name (a rename is atomic), and perhaps
//! a staged file, which a later run removes (`Dataset::clean_staging`). Only once told does a
//! run count the file as written and, at its end, move the incremental state past it.
//!
//! `syncfs` flushes everything dirty on the file system, these files among it, and asks the
//! device to flush its cache. Where there is no `syncfs` (not Linux), each staged file and each
//! touched folder is synced on its own.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// Files committed together at most; more wait for the next batch.
const MAX_BATCH: usize = 1024;

/// The committer of one output folder.
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

/// A staged file to publish, and the writer waiting for it: told once when the file is in
/// place, once more when its name is durable too.
struct Job {
    staged: PathBuf,
    dest: PathBuf,
    renamed: Option<oneshot::Sender<io::Result<()>>>,
    done: oneshot::Sender<io::Result<()>>,
}

/// A file in place under its final name, not yet known to be durable.
#[must_use = "a published file is not durable until `durable` says so"]
pub struct Published(oneshot::Receiver<io::Result<()>>);

impl Published {
    /// Returns once the file's name is durable too.
    pub async fn durable(self) -> io::Result<()> {
        self.0.await.unwrap_or_else(|_| Err(io::Error::other("the committer stopped before the file was durable")))
    }
}

impl GroupCommit {
    /// Starts the committer thread for the file system that holds `root`. It ends when the
    /// last handle is dropped.
    pub fn start(root: PathBuf) -> io::Result<Self> {
        let (jobs, waiting) = mpsc::channel();
        std::thread::Builder::new().name("wxcube-commit".into()).spawn(move || committer(&root, &waiting))?;
        Ok(Self { jobs })
    }

    /// Publishes `staged` (fully written) as `dest` with the other files waiting; returns once
    /// it is in place under `dest` (its data durable, its name perhaps not yet: see
    /// [`Published::durable`]). On failure the staged file is removed and `dest` is as it was.
    ///
    /// A writer that must exclude others from `dest` until its file is in place can let them in
    /// as soon as this returns: a later writer's file is renamed in a later round, after the
    /// sync that made this name durable, so a power cut keeps the two in order.
    pub async fn publish(&self, staged: PathBuf, dest: PathBuf) -> io::Result<Published> {
        let (renamed, in_place) = oneshot::channel();
        let (done, durable) = oneshot::channel();
        if self.jobs.send(Job { staged: staged.clone(), dest, renamed: Some(renamed), done }).is_err() {
            let _ = fs::remove_file(&staged);
            return Err(io::Error::other("the committer has stopped"));
        }
        in_place
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the committer stopped before the file was in place")))?;
        Ok(Published(durable))
    }
}

fn committer(root: &Path, waiting: &mpsc::Receiver<Job>) {
    // Files whose data is durable, to be renamed into place.
    let mut durable: Vec<Job> = Vec::new();
    loop {
        // Wait for work only when none is under way; the channel closes with the dataset.
        let mut arrived = Vec::new();
        if durable.is_empty() {
            match waiting.recv() {
                Ok(job) => arrived.push(job),
                Err(_) => return,
            }
        }
        arrived.extend(waiting.try_iter().take(MAX_BATCH));
        durable = round(root, std::mem::take(&mut durable), arrived);
    }
}

/// Steps 1–4 of the module's description; returns the files of (2), now durable.
fn round(root: &Path, durable: Vec<Job>, arrived: Vec<Job>) -> Vec<Job> {
    let mut published = Vec::with_capacity(durable.len());
    let mut folders = BTreeSet::new();
    for mut job in durable {
        let renamed = job.renamed.take().expect("a job is renamed once");
        match publish(&job, &mut folders) {
            Ok(()) => {
                let _ = renamed.send(Ok(()));
                published.push(job);
            }
            Err(e) => {
                let _ = fs::remove_file(&job.staged);
                let _ = renamed.send(Err(e));
            }
        }
    }
    let mut to_sync: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
    to_sync.extend(arrived.iter().map(|j| j.staged.as_path()));
    let synced = make_durable(root, &to_sync);
    for job in published {
        let _ = job.done.send(synced.as_ref().map(|_| ()).map_err(copy));
    }
    match synced {
        Ok(()) => arrived,
        Err(e) => {
            for mut job in arrived {
                let _ = fs::remove_file(&job.staged);
                if let Some(renamed) = job.renamed.take() {
                    let _ = renamed.send(Err(copy(&e)));
                }
            }
            Vec::new()
        }
    }
}

/// Renames a staged file into place, making its folder first if it is missing; the folders
/// whose entries changed go into `touched`. Folders are made here, by one thread, rather than
/// by the writers: two threads making folders in one table folder queue for its lock, and on
/// ext4 spin while they wait, burning the CPU the other needs.
fn publish(job: &Job, touched: &mut BTreeSet<PathBuf>) -> io::Result<()> {
    let parent = job.dest.parent().expect("a published file lives in a folder").to_path_buf();
    let rename = || fs::rename(&job.staged, &job.dest);
    rename().or_else(|e| match e.kind() {
        io::ErrorKind::NotFound => create_dirs(&parent, touched).and_then(|()| rename()),
        _ => Err(e),
    })?;
    touched.insert(parent);
    Ok(())
}

/// Creates `dir` and its missing parents; every folder whose entries changed is added to
/// `touched`, to be made durable with the batch.
fn create_dirs(dir: &Path, touched: &mut BTreeSet<PathBuf>) -> io::Result<()> {
    let parent = dir.parent().expect("a data folder lives in the output folder");
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_dirs(parent, touched)?;
            match fs::create_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        // Another writer (this process's or another's) made it first.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    touched.insert(parent.to_path_buf());
    Ok(())
}

/// Makes `paths` (files or folders, all under `root`) durable.
#[cfg(target_os = "linux")]
fn make_durable(root: &Path, _paths: &[&Path]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fs_handle = File::open(root)?;
    // SAFETY: syncfs only reads the descriptor, which stays open for the call.
    if unsafe { libc::syncfs(fs_handle.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn make_durable(_root: &Path, paths: &[&Path]) -> io::Result<()> {
    for path in paths {
        File::open(path)?.sync_all()?;
    }
    Ok(())
}

fn copy(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn files_are_published_into_new_folders_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join("_wxcube/staging");
        fs::create_dir_all(&staging).unwrap();
        let commit = std::sync::Arc::new(GroupCommit::start(tmp.path().to_path_buf()).unwrap());
        let writes: Vec<_> = (0..50)
            .map(|i| {
                let (commit, staging, root) = (commit.clone(), staging.clone(), tmp.path().to_path_buf());
                tokio::spawn(async move {
                    let staged = staging.join(format!("{i}.tmp"));
                    fs::write(&staged, format!("file {i}")).unwrap();
                    let dest = root.join(format!("t/ref_date=2024-03-{:02}/part-00.parquet", i % 7 + 1));
                    commit.publish(staged, dest).await?.durable().await
                })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0, "nothing is left in staging");
        assert_eq!(fs::read_dir(tmp.path().join("t")).unwrap().count(), 7);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_published_fails_alone_and_leaves_no_staged_file() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join("staging");
        fs::create_dir_all(&staging).unwrap();
        let commit = GroupCommit::start(tmp.path().to_path_buf()).unwrap();
        let dest = tmp.path().join("t/part-00.parquet");
        fs::write(staging.join("1"), b"old").unwrap();
        let published = commit.publish(staging.join("1"), dest.clone()).await.unwrap();
        // In place for every reader as soon as `publish` returns, before it is known durable.
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        published.durable().await.unwrap();
        // A file where a folder should be: the partition folder cannot be created.
        fs::write(tmp.path().join("blocked"), b"").unwrap();
        fs::write(staging.join("2"), b"new").unwrap();
        let err = commit.publish(staging.join("2"), tmp.path().join("blocked/x/part-00.parquet")).await;
        assert!(err.is_err());
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
    }
}
