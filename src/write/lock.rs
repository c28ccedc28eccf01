//! Bucket leases: two runs must not write the same bucket files at once (their merges would
//! overwrite each other), so a run takes a lease object per bucket it writes,
//! `_wxcube/locks/bucket-BB.json`, created only if absent (conditional PUT where the store has
//! it). Shards own disjoint buckets and never meet here.
//!
//! A lease names its holder and expires five minutes after its last renewal (renewed every
//! minute). A lease left by a killed run is taken over once it has expired, or at once when it
//! names a process of this machine that no longer exists.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{Dataset, WriteError, layout};

const LEASE: Duration = Duration::from_secs(300);
const RENEW_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Lease {
    host: String,
    pid: u32,
    since: DateTime<Utc>,
    expires: DateTime<Utc>,
}

impl Lease {
    fn mine(since: DateTime<Utc>) -> Self {
        let expires = Utc::now() + LEASE;
        Lease { host: hostname(), pid: std::process::id(), since, expires }
    }

    /// Whether its holder is certainly gone.
    fn stale(&self) -> bool {
        self.expires < Utc::now()
            || (self.host == hostname() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn lock_path(root: &Path, bucket: u32) -> Path {
    root.clone().join(layout::META_DIR).join("locks").join(format!("bucket-{bucket:02}.json"))
}

/// Leases held by this run; released when dropped (best effort) or by [`Leases::release`].
pub struct Leases {
    store: Arc<dyn ObjectStore>,
    paths: Vec<Path>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Leases {
    pub async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        for path in std::mem::take(&mut self.paths) {
            if let Err(e) = self.store.delete(&path).await {
                tracing::warn!(path = %path, "cannot release a bucket lease: {e}");
            }
        }
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

impl Dataset {
    /// Takes a lease on every bucket in `buckets`, or none: a bucket held by another live run
    /// is refused with a message naming the holder and the way out. On a store without
    /// conditional writes, runs are not guarded and a warning says so.
    pub async fn lease_buckets(&self, buckets: &BTreeSet<u32>) -> Result<Leases, WriteError> {
        let store = self.output.store.clone();
        let since = Utc::now();
        let mut held = Leases { store: store.clone(), paths: Vec::new(), renewer: None };
        for &bucket in buckets {
            let path = lock_path(&self.output.root, bucket);
            match self.take(&path, since).await {
                Ok(true) => held.paths.push(path),
                Ok(false) => {
                    tracing::warn!(
                        "{} cannot create objects only-if-absent: concurrent runs are not detected",
                        self.output.spec
                    );
                    break;
                }
                Err(e) => {
                    held.release().await;
                    return Err(e);
                }
            }
        }
        let (paths, renew_store) = (held.paths.clone(), store.clone());
        held.renewer = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let body = serde_json::to_vec(&Lease::mine(since)).expect("a lease serialises");
                for path in &paths {
                    if let Err(e) = renew_store.put(path, PutPayload::from(body.clone())).await {
                        tracing::warn!(path = %path, "cannot renew a bucket lease: {e}");
                    }
                }
            }
        }));
        Ok(held)
    }

    /// Creates the lease object; `Ok(false)` when the store cannot create only-if-absent.
    async fn take(&self, path: &Path, since: DateTime<Utc>) -> Result<bool, WriteError> {
        let store = &self.output.store;
        for _ in 0..2 {
            let body = serde_json::to_vec(&Lease::mine(since)).expect("a lease serialises");
            let create = PutOptions { mode: PutMode::Create, ..Default::default() };
            match store.put_opts(path, PutPayload::from(body), create).await {
                Ok(_) => return Ok(true),
                Err(object_store::Error::NotImplemented { .. }) => return Ok(false),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(source) => return Err(self.store_err(path, source)),
            }
            let existing = match store.get(path).await {
                Ok(found) => found.bytes().await.map_err(|source| self.store_err(path, source))?,
                Err(object_store::Error::NotFound { .. }) => continue, // released meanwhile
                Err(source) => return Err(self.store_err(path, source)),
            };
            match serde_json::from_slice::<Lease>(&existing) {
                Ok(lease) if !lease.stale() => {
                    return Err(WriteError::Settings(format!(
                        "another run (pid {} on {}, since {}) is writing the same buckets of {}: wait for it; if it died, its lease lapses at {} or remove {}",
                        lease.pid,
                        lease.host,
                        lease.since.format("%Y-%m-%d %H:%M:%S UTC"),
                        self.output.spec,
                        lease.expires.format("%Y-%m-%d %H:%M:%S UTC"),
                        self.output.url_of(path)
                    )));
                }
                _ => {
                    tracing::warn!(path = %path, "taking over a bucket lease left by a run that is gone");
                    store.delete(path).await.map_err(|source| self.store_err(path, source))?;
                }
            }
        }
        Err(WriteError::Settings(format!(
            "cannot take the lease {}: another run keeps taking it",
            self.output.url_of(path)
        )))
    }
}
