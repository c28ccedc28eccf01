//! Group commit: files on local disk are made durable a batch at a time, not one at a time.
//!
//! A writer stages its file (written under `_wxcube/staging/`, not yet synced), hands it over
//! and waits. One committer thread takes every file waiting and, for the whole batch:
//! 1. makes the staged files' data durable (one `syncfs` of the output's file system);
//! 2. creates the folders that are missing and renames every staged file into place;
//! 3. makes the new names and folders durable (a second `syncfs`);
//! 4. tells each writer its file is durable.
//!
//! While a batch syncs, new files queue up and form the next one: the more writers wait, the
//! fewer syncs each file costs. On a disk where every sync is a synchronous device write, per-
//! file syncs were half the wall time of a run (README, "Performance").
//!
//! Why a power cut cannot lose or tear a file a writer was told is durable: its data reached
//! the device (1) before its name was made to point at it (2), and that name reached the
//! device (3) before the writer was told (4). A cut before (3) leaves the old file, or no file,
//! under the final name (a rename is atomic), and perhaps a staged file, which a later run
//! removes (`Dataset::clean_staging`). Only after (4) does a run count the file as written and,
//! at its end, move the incremental state past it.
//!
//! `syncfs` flushes everything dirty on the file system, this batch's files among it, and asks
//! the device to flush its cache. Where there is no `syncfs` (not Linux), each staged file and
//! each touched folder is synced on its own, as before.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Files committed together at most; more wait for the next batch.
const MAX_BATCH: usize = 1024;

/// How long a batch waits for more files once it has its first. Writers are many (units in
/// flight, the bucket files of each date), so a few milliseconds gather several of them into
/// one sync; a writer alone waits that much longer for its file.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Folders known to exist, remembered so that publishing a file does not look its folder up
/// again; forgotten when there are more than this.
const KNOWN_FOLDERS: usize = 4096;

/// The committer of one output folder.
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

/// A staged file to publish, and the writer waiting for it.
struct Job {
    staged: PathBuf,
    dest: PathBuf,
    done: tokio::sync::oneshot::Sender<io::Result<()>>,
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
    /// both its data and its name are durable. On failure the staged file is removed and `dest`
    /// is as it was.
    pub async fn publish(&self, staged: PathBuf, dest: PathBuf) -> io::Result<()> {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.jobs.send(Job { staged: staged.clone(), dest, done }).is_err() {
            let _ = fs::remove_file(&staged);
            return Err(io::Error::other("the committer has stopped"));
        }
        wait.await.unwrap_or_else(|_| Err(io::Error::other("the committer stopped before the file was durable")))
    }
}

fn committer(root: &Path, waiting: &mpsc::Receiver<Job>) {
    let mut known = BTreeSet::new();
    while let Ok(first) = waiting.recv() {
        let mut batch = vec![first];
        let until = std::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            match waiting.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if known.len() > KNOWN_FOLDERS {
            known.clear();
        }
        commit(root, batch, &mut known);
    }
}

/// Steps 1–4 of the module's description for one batch. `known`: folders known to exist.
fn commit(root: &Path, batch: Vec<Job>, known: &mut BTreeSet<PathBuf>) {
    let staged: Vec<&Path> = batch.iter().map(|j| j.staged.as_path()).collect();
    if let Err(e) = make_durable(root, &staged) {
        for job in batch {
            let _ = fs::remove_file(&job.staged);
            let _ = job.done.send(Err(copy(&e)));
        }
        return;
    }
    let mut published = Vec::with_capacity(batch.len());
    let mut folders = BTreeSet::new();
    for job in batch {
        let parent = job.dest.parent().expect("a published file lives in a folder").to_path_buf();
        let rename = || fs::rename(&job.staged, &job.dest);
        let result = if known.contains(&parent) {
            // Someone may have removed the folder since: then it is made again.
            rename().or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => create_dirs(&parent, &mut folders).and_then(|()| rename()),
                _ => Err(e),
            })
        } else {
            create_dirs(&parent, &mut folders).and_then(|()| rename())
        };
        match result {
            Ok(()) => {
                known.insert(parent.clone());
                folders.insert(parent);
                published.push(job);
            }
            Err(e) => {
                let _ = fs::remove_file(&job.staged);
                let _ = job.done.send(Err(e));
            }
        }
    }
    let folders: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
    let result = make_durable(root, &folders);
    for job in published {
        let _ = job.done.send(result.as_ref().map(|_| ()).map_err(copy));
    }
}

/// Creates `dir` and its missing parents; every folder whose entries changed is added to
/// `touched`, to be made durable with the batch.
fn create_dirs(dir: &Path, touched: &mut BTreeSet<PathBuf>) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, touched)?;
        touched.insert(parent.to_path_buf());
    }
    match fs::create_dir(dir) {
        // Another writer (this process's or another's) made it first.
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
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
                    commit.publish(staged, dest).await
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
        commit.publish(staging.join("1"), dest.clone()).await.unwrap();
        // A file where a folder should be: the partition folder cannot be created.
        fs::write(tmp.path().join("blocked"), b"").unwrap();
        fs::write(staging.join("2"), b"new").unwrap();
        let err = commit.publish(staging.join("2"), tmp.path().join("blocked/x/part-00.parquet")).await;
        assert!(err.is_err());
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
    }
}
