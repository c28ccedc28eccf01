//! Leases: a run that would fetch the same (account, table) pairs as another live run is turned
//! away before it spends API quota on them.
//!
//! No row depends on a lease: every file is replaced by a conditional update (see `commit`),
//! so writers that meet never lose each other's rows. A lease only says "someone is already
//! doing this": two scheduler runs of the same job that overlap, or a rebuild started while a
//! run writes the same accounts and tables.
//!
//! One lease object per bucket, `_wxcube/locks/bucket-BB.json`, lists its live holders: for
//! each, the run, its host and process, the tables and accounts it works on, and when its claim
//! lapses. Every change to it (take, renew, release, take over) is a conditional update, so
//! two runs that meet cannot both think they hold the same pair. A holder is gone when its
//! claim has lapsed (`--lease-secs` after its last renewal; renewals come every fifth of
//! that), or, on local disk, at once when its process is: each run holds an exclusive `flock`
//! on `_wxcube/locks/runs/<run>.lock` for its life, which the kernel drops when the process
//! dies, on this host or any other that shares the folder.
//!
//! A run whose claim was taken over (it stalled past its lapse time, or could not renew it
//! in time) stops writing those buckets, says so, and reports their cells failed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::commit::Decision;
use super::{Dataset, WriteError, file_lock, layout};

/// How long a claim lasts after its last renewal, unless `--lease-secs` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// One run's identity: in lease holders, the run's lock file and its record under
/// `_wxcube/runs/`. Sorts by start time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunId(String);

impl RunId {
    pub fn new() -> Self {
        let started = Utc::now().format("%Y%m%dT%H%M%SZ");
        Self(format!("{started}-{}-{:04x}", std::process::id(), fastrand::u16(..)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a run asks to hold.
pub struct Claim {
    pub run: RunId,
    /// `extract` or `rebuild`, for the message a refused run prints.
    pub command: &'static str,
    pub tables: BTreeSet<String>,
    /// The run's accounts, by bucket.
    pub accounts: BTreeMap<u32, BTreeSet<String>>,
    pub duration: Duration,
    /// How long to wait for another run to give up the same pairs before refusing.
    pub wait: Duration,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    format_version: u32,
    holders: Vec<Holder>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Holder {
    run: String,
    command: String,
    host: String,
    pid: u32,
    since: DateTime<Utc>,
    expires: DateTime<Utc>,
    tables: BTreeSet<String>,
    accounts: BTreeSet<String>,
}

/// How a bucket's lease stands for this run.
struct Standing {
    /// Writing is safe until then: the last renewal's start plus the lease, less a margin
    /// for clocks that disagree.
    held_until: Instant,
    lost: Option<String>,
    /// Whether the run has said that it stopped writing because `held_until` passed.
    overdue_told: bool,
}

/// The leases a run holds; renewed in the background until [`Leases::release`].
pub struct Leases {
    dataset: Arc<Dataset>,
    claim: Arc<Claim>,
    standing: Arc<Mutex<HashMap<u32, Standing>>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    /// The run's own lock file (local disk): held while the run lives.
    _alive: Option<std::fs::File>,
}

/// A handle to tell whether a bucket is still this run's to write, for tasks of the run.
#[derive(Clone)]
pub struct LeaseCheck(Arc<Mutex<HashMap<u32, Standing>>>);

impl LeaseCheck {
    /// Why this run must not write bucket `bucket` any more, if it must not.
    /// The first refusal of a bucket is logged: the cells it fails are reported, not logged.
    pub fn check(&self, bucket: u32) -> Result<(), String> {
        let mut standing = self.0.lock().unwrap();
        let Some(s) = standing.get_mut(&bucket) else { return Ok(()) };
        if let Some(why) = &s.lost {
            return Err(why.clone());
        }
        if Instant::now() > s.held_until {
            let why = format!(
                "this run could not renew its lease on bucket {bucket:02} in time, so another run may have taken over: it stopped writing there; re-run to fill these cells"
            );
            if !s.overdue_told {
                s.overdue_told = true;
                tracing::error!(bucket, "{why}");
            }
            return Err(why);
        }
        Ok(())
    }
}

impl Leases {
    /// Leases that hold nothing and refuse nothing: for Delta tables, whose writers the
    /// protocol orders (`write::delta`).
    pub fn none(dataset: Arc<Dataset>, claim: Claim) -> Self {
        Self { dataset, claim: Arc::new(claim), standing: Arc::default(), renewer: None, _alive: None }
    }

    /// Why this run must not write bucket `bucket` any more, if it must not.
    pub fn check(&self, bucket: u32) -> Result<(), String> {
        self.checker().check(bucket)
    }

    pub fn checker(&self) -> LeaseCheck {
        LeaseCheck(Arc::clone(&self.standing))
    }

    /// Gives every claim back (what another run should not wait for), then the run's lock.
    pub async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let held: Vec<u32> =
            self.standing.lock().unwrap().iter().filter(|(_, s)| s.lost.is_none()).map(|(b, _)| *b).collect();
        for bucket in held {
            let path = layout::lease_path(&self.dataset.output.root, bucket);
            let run = self.claim.run.as_str();
            let result = self
                .dataset
                .update_lease(&path, |existing| {
                    let mut file = self.dataset.parse_lease(&path, existing);
                    let before = file.holders.len();
                    file.holders.retain(|h| h.run != run);
                    Ok(if file.holders.len() == before {
                        Decision::Keep(())
                    } else {
                        Decision::Put(lease_bytes(&file), ())
                    })
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(bucket, "cannot release the lease (it lapses on its own): {e}");
            }
        }
        if self._alive.take().is_some() {
            let lock = layout::run_lock_path(&self.dataset.output.root, self.claim.run.as_str());
            if let Some(file) = self.dataset.output.local_path(&lock) {
                let _ = std::fs::remove_file(file);
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
    /// Takes the claim in every bucket it names, or none: a bucket where another live run
    /// holds one of the same (account, table) pairs refuses it with a message naming that run.
    pub async fn lease(self: &Arc<Self>, claim: Claim) -> Result<Leases, WriteError> {
        let alive = match self.output.local_path(&layout::run_lock_path(&self.output.root, claim.run.as_str())) {
            Some(file) => Some(
                tokio::task::spawn_blocking(move || file_lock::lock_exclusive(&file))
                    .await
                    .expect("taking a file lock panicked")
                    .map_err(|e| WriteError::Io { path: self.output.spec.to_string(), message: e.to_string() })?,
            ),
            None => None,
        };
        let claim = Arc::new(claim);
        let mut leases = Leases {
            dataset: Arc::clone(self),
            claim: Arc::clone(&claim),
            standing: Arc::default(),
            renewer: None,
            _alive: alive,
        };
        let deadline = Instant::now() + claim.wait;
        for (&bucket, accounts) in &claim.accounts {
            let started = loop {
                let started = Instant::now();
                match self.take(&claim, bucket, accounts).await {
                    Ok(()) => break started,
                    Err(WriteError::LeaseHeld(why)) if started < deadline => {
                        tracing::info!(bucket, "waiting for the lease (--lease-wait): {why}");
                        tokio::time::sleep((deadline - started).min(Duration::from_secs(1))).await;
                    }
                    Err(e) => {
                        leases.release().await;
                        return Err(e);
                    }
                }
            };
            let standing =
                Standing { held_until: held_until(started, claim.duration), lost: None, overdue_told: false };
            leases.standing.lock().unwrap().insert(bucket, standing);
        }
        leases.renewer = Some(tokio::spawn(renew_forever(Arc::clone(self), claim, Arc::clone(&leases.standing))));
        Ok(leases)
    }

    async fn take(&self, claim: &Claim, bucket: u32, accounts: &BTreeSet<String>) -> Result<(), WriteError> {
        let path = layout::lease_path(&self.output.root, bucket);
        self.update_lease(&path, |existing| {
            let mut file = self.parse_lease(&path, existing);
            self.forget_gone(&mut file, &path);
            file.holders.retain(|h| h.run != claim.run.as_str());
            if let Some(other) =
                file.holders.iter().find(|h| !h.tables.is_disjoint(&claim.tables) && !h.accounts.is_disjoint(accounts))
            {
                return Err(WriteError::LeaseHeld(self.refusal(other, accounts)));
            }
            let now = Utc::now();
            file.holders.push(Holder {
                run: claim.run.to_string(),
                command: claim.command.to_string(),
                host: hostname(),
                pid: std::process::id(),
                since: now,
                expires: now + claim.duration,
                tables: claim.tables.clone(),
                accounts: accounts.clone(),
            });
            Ok(Decision::Put(lease_bytes(&file), ()))
        })
        .await
    }

    /// Renews this run's claim in one bucket; `Ok(false)` if it is no longer there (another
    /// run judged it lapsed and took over).
    async fn renew(&self, claim: &Claim, bucket: u32) -> Result<bool, WriteError> {
        let path = layout::lease_path(&self.output.root, bucket);
        self.update_lease(&path, |existing| {
            let mut file = self.parse_lease(&path, existing);
            let Some(mine) = file.holders.iter_mut().find(|h| h.run == claim.run.as_str()) else {
                return Ok(Decision::Keep(false));
            };
            mine.expires = Utc::now() + claim.duration;
            self.forget_gone(&mut file, &path);
            Ok(Decision::Put(lease_bytes(&file), true))
        })
        .await
    }

    /// Drops holders that are gone: lapsed, or (local disk) whose process no longer holds its
    /// run lock.
    fn forget_gone(&self, file: &mut LeaseFile, path: &Path) {
        let now = Utc::now();
        file.holders.retain(|h| {
            let alive = h.expires >= now && self.process_alive(&h.run);
            if !alive {
                tracing::warn!(lease = %path, run = %h.run, pid = h.pid, host = %h.host, "taking over a lease its run left: it is gone");
            }
            alive
        });
    }

    /// Whether the run `run` still holds its lock file. Only local disk can tell; elsewhere a
    /// run lives until its claim lapses.
    fn process_alive(&self, run: &str) -> bool {
        let Some(file) = self.output.local_path(&layout::run_lock_path(&self.output.root, run)) else { return true };
        if !file.exists() {
            return false;
        }
        match file_lock::try_lock_exclusive(&file) {
            Ok(Some(_free)) => {
                // Nobody holds it: its run is gone. The file goes too.
                let _ = std::fs::remove_file(&file);
                false
            }
            Ok(None) => true,
            Err(e) => {
                tracing::debug!(path = %file.display(), "cannot check a run's lock: {e}");
                true
            }
        }
    }

    fn parse_lease(&self, path: &Path, existing: Option<&bytes::Bytes>) -> LeaseFile {
        let Some(bytes) = existing else { return LeaseFile { format_version: 2, holders: vec![] } };
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            // A lease is only a guard: an unreadable one (or one of an older wxcube) is replaced.
            tracing::warn!(lease = %path, "replacing an unreadable lease: {e}");
            LeaseFile { format_version: 2, holders: vec![] }
        })
    }

    fn refusal(&self, other: &Holder, accounts: &BTreeSet<String>) -> String {
        let shared: Vec<&String> = other.accounts.intersection(accounts).collect();
        let lapse = if self.output.stage_locally() {
            "if it was killed, its lease went with its process: try again".to_string()
        } else {
            format!("if it was killed, its lease lapses at {}", other.expires.format("%Y-%m-%d %H:%M:%S UTC"))
        };
        format!(
            "another run ({} pid {} on {}, run {}, since {}) is working on {} of the same accounts (first {}) and tables of {}: wait for it to finish; {lapse}",
            other.command,
            other.pid,
            other.host,
            other.run,
            other.since.format("%Y-%m-%d %H:%M:%S UTC"),
            shared.len(),
            shared.first().map_or("?", |a| a.as_str()),
            self.output.spec,
        )
    }
}

/// Renews every claim every fifth of the lease, until aborted. A claim found gone is lost for
/// good; a renewal the store refuses is tried again next time, and [`Leases::check`] stops the
/// writes once the claim may have lapsed.
async fn renew_forever(dataset: Arc<Dataset>, claim: Arc<Claim>, standing: Arc<Mutex<HashMap<u32, Standing>>>) {
    loop {
        tokio::time::sleep(claim.duration / 5).await;
        let buckets: Vec<u32> =
            standing.lock().unwrap().iter().filter(|(_, s)| s.lost.is_none()).map(|(b, _)| *b).collect();
        for bucket in buckets {
            let started = Instant::now();
            let result = dataset.renew(&claim, bucket).await;
            let took = started.elapsed();
            if took > claim.duration / 5 {
                tracing::warn!(
                    bucket,
                    took_ms = took.as_millis() as u64,
                    "renewing the lease took more than a fifth of --lease-secs: the store is slow to answer; if it stays slow, a longer --lease-secs keeps the run from stopping"
                );
            } else {
                tracing::debug!(bucket, took_ms = took.as_millis() as u64, "renewed the lease");
            }
            let mut standing = standing.lock().unwrap();
            let s = standing.get_mut(&bucket).expect("a held bucket");
            match result {
                Ok(true) => {
                    s.held_until = held_until(started, claim.duration);
                    s.overdue_told = false;
                }
                Ok(false) => {
                    let why = format!(
                        "this run's lease on bucket {bucket:02} was taken over by another run (this one stalled past its lease): it stopped writing there; re-run to fill these cells"
                    );
                    tracing::error!(bucket, "{why}");
                    s.lost = Some(why);
                }
                Err(e) => tracing::warn!(bucket, "cannot renew the lease, trying again shortly: {e}"),
            }
        }
    }
}

/// Until when a claim renewed at `started` is safe to write under: its lapse time less a
/// fifth, for clocks of other hosts that run ahead.
fn held_until(started: Instant, lease: Duration) -> Instant {
    started + lease - lease / 5
}

fn lease_bytes(file: &LeaseFile) -> bytes::Bytes {
    let file = LeaseFile { format_version: 2, holders: file.holders.clone() };
    serde_json::to_vec_pretty(&file).expect("a lease serialises").into()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
