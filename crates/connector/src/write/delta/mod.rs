//! `--format delta`: each table a Delta table at `<output>/<table>/`, partitioned by `ref_date`.
//!
//! The data files are the Parquet output's (same schema, no `ref_date` column: its value is in
//! the log), one per (date, bucket of accounts) as there. What differs is how a file becomes
//! part of the table: not by its name, but by a commit to the table's log.
//!
//! **Replacing cells.** A unit's rows for (table, date, bucket) are merged with the live file
//! of that bucket exactly as the Parquet output merges ([`merge`](super::merge)): rows of other
//! accounts kept, the run's accounts' rows replaced, nothing written when nothing changed. The
//! result is written under a new name (`part-<BB>_wxcube-<run>-<n>.parquet`) and waits, with
//! the file it replaces, for the table's next commit. Readers see neither until then.
//!
//! **Commits.** A commit removes the replaced files and adds the new ones in one version, so a
//! reader at any version sees every cell whole, once. Commits are made when
//! [`COMMIT_FILES`] files wait, when the oldest has waited [`COMMIT_AFTER`], and at the end of
//! the run: a six-year backfill makes a few commits per table, not one per request. Every
//! [`CHECKPOINT_INTERVAL`](schema::CHECKPOINT_INTERVAL) versions a checkpoint is written.
//!
//! **Writers that meet** (shards, two schedulers, a rebuild) commit optimistically: version
//! N+1 is written only if nobody has written it (`PutMode::Create`: `If-None-Match` on S3, a
//! no-clobber link on local disk). A writer that loses reads the versions it missed; a file
//! whose bucket they replaced is merged again onto theirs, the others are committed as they are
//! at the next version. No lease is taken: the protocol orders the writers.
//!
//! **Exactly once.** Each commit carries a `txn` action: application `wxcube-<run>`, version
//! the run's commit count for the table. A commit whose answer was lost (a timeout on S3) is
//! recognised by that action in the log, not committed twice.

mod checkpoint;
pub mod log;
mod replay;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::json;

use super::merge::{self, Merged};
use super::{Dataset, WriteError, Written, encode_parquet, read_parquet};
use crate::schema::ArrowSchema;
use log::{Action, Add, Metadata, Protocol, Remove, TableState, Txn};
use replay::{load, refresh, write_checkpoint};
use wxcube_registry::Table;

/// Files waiting for a commit that make one: big enough that a backfill's log stays short,
/// small enough that a commit's JSON stays a few hundred kilobytes.
pub const COMMIT_FILES: usize = 1000;

/// How long a written file waits for its commit at most while the run goes on: what a killed
/// run loses (its files stay unreferenced, a re-run writes them again).
pub const COMMIT_AFTER: Duration = Duration::from_secs(30);

/// Lost races for one commit before giving up: each means another writer committed.
const MAX_RACES: u32 = 64;

/// Commit writes that went unanswered before giving up (see `write::commit`).
const MAX_UNANSWERED: u32 = 4;

/// Writer features of tables wxcube can write without breaking them.
const KNOWN_WRITER_FEATURES: &[&str] = &["appendOnly", "invariants"];

/// The Delta tables of one run.
pub struct DeltaTables {
    app_id: String,
    run: String,
    tables: Mutex<HashMap<String, Arc<TableWriter>>>,
    unique: AtomicU64,
    outcomes: Mutex<Outcomes>,
}

/// What the run's commits did, collected for the summary.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Per table: files added and rows of the run's accounts committed.
    pub committed: BTreeMap<String, Written>,
    /// Cells whose files could not be committed: (table, date, accounts, why).
    pub failed: Vec<(String, NaiveDate, BTreeSet<String>, String)>,
    /// Per table: its version when the run ended (what a reader opens now).
    pub versions: BTreeMap<String, u64>,
}

/// One table's writer: its log as last read, and the files waiting for a commit.
#[derive(Default)]
struct TableWriter {
    state: tokio::sync::Mutex<Option<TableState>>,
    waiting: Mutex<Waiting>,
    /// Held while committing; its value is the run's last `txn` version for the table.
    committing: tokio::sync::Mutex<i64>,
}

#[derive(Default)]
struct Waiting {
    entries: Vec<Entry>,
    /// (date, bucket) → the newest uncommitted content (`None`: no file), for a later write of
    /// the same bucket in this run to merge onto.
    newest: HashMap<(NaiveDate, u32), Option<String>>,
    since: Option<Instant>,
}

/// A bucket file's replacement waiting for its commit.
#[derive(Clone, Debug)]
struct Entry {
    date: NaiveDate,
    bucket: u32,
    /// The new file (relative to the table), or `None` when its accounts have no rows left.
    new: Option<NewFile>,
    /// The files its content was merged from: what the commit removes, if still live.
    merged_from: BTreeSet<String>,
    members: BTreeSet<String>,
    /// Rows of the run's accounts in it.
    rows: u64,
}

/// The entries of one commit, and the files around them.
struct Batch {
    entries: Vec<Entry>,
    /// Files no commit will name: removed after the commit.
    orphans: Vec<String>,
    /// Files a commit attempt named: never removed, since an unanswered attempt may land.
    tried: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct NewFile {
    path: String,
    size: i64,
    rows: usize,
}

impl DeltaTables {
    pub fn new(run: &str) -> Self {
        Self {
            app_id: format!("wxcube-{run}"),
            run: run.to_string(),
            tables: Mutex::default(),
            unique: AtomicU64::new(0),
            outcomes: Mutex::default(),
        }
    }

    fn writer(&self, table: &Table) -> Arc<TableWriter> {
        self.tables.lock().unwrap().entry(table.name.clone()).or_default().clone()
    }

    /// Replaces the rows of `members` (all of bucket `bucket`) on `date` by `new_rows`: the
    /// merged file is written and waits for a commit. The rows count once committed.
    pub async fn replace_bucket(
        &self,
        ds: &Dataset,
        table: &Table,
        date: NaiveDate,
        bucket: u32,
        members: &BTreeSet<&str>,
        new_rows: RecordBatch,
    ) -> Result<Written, WriteError> {
        let writer = self.writer(table);
        let _mine = ds.path_locks.lock(&format!("delta/{}/{date}/{bucket}", table.name)).await;
        let newest = writer.waiting.lock().unwrap().newest.get(&(date, bucket)).cloned();
        let base: BTreeSet<String> = match newest {
            Some(newest) => newest.into_iter().collect(),
            None => {
                let mut state = writer.state.lock().await;
                let state = self.loaded(ds, table, &mut state).await?;
                state.files_of(date, bucket, ds.settings.buckets).map_err(|e| bad_table(ds, table, &e))?
            }
        };
        let old = read_files(ds, table, date, &base).await?;
        let rows = new_rows.num_rows() as u64;
        let merged = match merge::merge(table, old.as_ref(), members, &new_rows) {
            Merged::Unchanged => return Ok(Written { files_written: 0, rows }),
            Merged::Rows(merged) => merged,
        };
        let new = match merged.num_rows() {
            0 => None,
            _ => Some(self.write_file(ds, table, date, bucket, &merged).await?),
        };
        let entry = Entry {
            date,
            bucket,
            new: new.clone(),
            merged_from: base,
            members: members.iter().map(|m| m.to_string()).collect(),
            rows,
        };
        let due = {
            let mut waiting = writer.waiting.lock().unwrap();
            waiting.newest.insert((date, bucket), new.map(|n| n.path));
            waiting.entries.push(entry);
            let since = *waiting.since.get_or_insert_with(Instant::now);
            waiting.entries.len() >= COMMIT_FILES || since.elapsed() >= COMMIT_AFTER
        };
        drop(_mine);
        // A commit already under way takes these files next time.
        if due && let Ok(mut seq) = writer.committing.try_lock() {
            self.commit(ds, table, &writer, &mut seq).await;
        }
        Ok(Written::default())
    }

    /// Reads each table's log, refusing one wxcube would damage (see `check_table`): before
    /// the run asks the API for anything.
    pub async fn open_tables(&self, ds: &Dataset, tables: &[Arc<Table>]) -> Result<(), WriteError> {
        for table in tables {
            let writer = self.writer(table);
            let mut state = writer.state.lock().await;
            self.loaded(ds, table, &mut state).await?;
        }
        Ok(())
    }

    /// Commits every waiting file of every table; returns what the run's commits did.
    pub async fn flush(&self, ds: &Dataset, tables: &[Arc<Table>]) -> Outcomes {
        for table in tables {
            let writer = self.writer(table);
            let mut seq = writer.committing.lock().await;
            self.commit(ds, table, &writer, &mut seq).await;
            // The table's version now, other writers' commits included, also for a table the
            // run did not change.
            let mut state = writer.state.lock().await;
            if let Ok(state) = self.loaded(ds, table, &mut state).await
                && refresh(ds, table, state).await.is_ok()
                && let Some(v) = state.version
            {
                self.outcomes.lock().unwrap().versions.insert(table.name.clone(), v);
            }
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }

    /// The table's state, read from its log the first time.
    async fn loaded<'s>(
        &self,
        ds: &Dataset,
        table: &Table,
        state: &'s mut Option<TableState>,
    ) -> Result<&'s mut TableState, WriteError> {
        if state.is_none() {
            let mut read = TableState::default();
            load(ds, table, &mut read).await?;
            check_table(ds, table, &read)?;
            *state = Some(read);
        }
        Ok(state.as_mut().expect("loaded above"))
    }

    async fn write_file(
        &self,
        ds: &Dataset,
        table: &Table,
        date: NaiveDate,
        bucket: u32,
        rows: &RecordBatch,
    ) -> Result<NewFile, WriteError> {
        let n = self.unique.fetch_add(1, Ordering::Relaxed);
        let rel = format!("ref_date={date}/{}", log::data_file_name(bucket, &self.run, n));
        let path = under(&table_dir(ds, table), &rel);
        let bytes =
            encode_parquet(table, rows).map_err(|message| WriteError::Io { path: ds.output.url_of(&path), message })?;
        let size = bytes.len() as i64;
        // Durable before any commit names it (local disk: the group commit's sync).
        ds.put_atomic(&path, bytes).await?;
        Ok(NewFile { path: rel, size, rows: rows.num_rows() })
    }

    /// Commits the table's waiting files (`seq`: the run's txn version, held locked).
    async fn commit(&self, ds: &Dataset, table: &Table, writer: &TableWriter, seq: &mut i64) {
        let batch = {
            let mut waiting = writer.waiting.lock().unwrap();
            waiting.since = None;
            std::mem::take(&mut waiting.entries)
        };
        if batch.is_empty() {
            return;
        }
        let (entries, orphans) = newest_per_bucket(batch);
        let mut batch = Batch { entries, orphans, tried: BTreeSet::new() };
        *seq += 1;
        let result = self.commit_entries(ds, table, writer, *seq, &mut batch).await;
        let Batch { entries, mut orphans, tried } = batch;
        {
            // The bucket contents this batch made (or failed to make) are the log's now.
            let mut waiting = writer.waiting.lock().unwrap();
            for e in &entries {
                let key = (e.date, e.bucket);
                if waiting.newest.get(&key) == Some(&e.new.as_ref().map(|n| n.path.clone())) {
                    waiting.newest.remove(&key);
                }
            }
        }
        match result {
            Ok(version) => {
                let mut outcomes = self.outcomes.lock().unwrap();
                let w = outcomes.committed.entry(table.name.clone()).or_default();
                for e in &entries {
                    *w += Written { files_written: u64::from(e.new.is_some()), rows: e.rows };
                }
                outcomes.versions.insert(table.name.clone(), version);
            }
            Err(e) => {
                let why = format!("commit to the Delta table {}: {e}", table.name);
                tracing::error!(table = %table, "{why}");
                let mut outcomes = self.outcomes.lock().unwrap();
                for entry in &entries {
                    outcomes.failed.push((table.name.clone(), entry.date, entry.members.clone(), why.clone()));
                    orphans.extend(entry.new.as_ref().map(|n| n.path.clone()));
                }
            }
        }
        // Files no version names: superseded within the run, merged again, or never committed.
        for rel in orphans.into_iter().filter(|rel| !tried.contains(rel)) {
            let path = under(&table_dir(ds, table), &rel);
            if let Err(e) = ds.output.store.delete(&path).await {
                tracing::debug!(path = %path, error = %e, "cannot remove an uncommitted file");
            }
        }
    }

    /// The commit loop: read what other writers committed, merge again where they replaced
    /// the same bucket, write the next version unless someone did; returns the version made.
    async fn commit_entries(
        &self,
        ds: &Dataset,
        table: &Table,
        writer: &TableWriter,
        seq: i64,
        batch: &mut Batch,
    ) -> Result<u64, WriteError> {
        let Batch { entries, orphans, tried } = batch;
        let mut guard = writer.state.lock().await;
        let state = self.loaded(ds, table, &mut guard).await?;
        let log_dir = table_dir(ds, table).join("_delta_log");
        let mut unanswered = 0;
        for race in 0..MAX_RACES {
            refresh(ds, table, state).await?;
            check_table(ds, table, state)?;
            if state.txn_version(&self.app_id).is_some_and(|v| v >= seq) {
                // An unanswered write landed after all.
                return Ok(state.version.expect("a txn is in a version"));
            }
            // Buckets another writer replaced since this run read them: merge onto theirs.
            let mut kept = Vec::with_capacity(entries.len());
            for entry in entries.drain(..) {
                let live = state
                    .files_of(entry.date, entry.bucket, ds.settings.buckets)
                    .map_err(|e| bad_table(ds, table, &e))?;
                if live == entry.merged_from {
                    kept.push(entry);
                } else if let Some(again) = self.merge_again(ds, table, entry, live, orphans).await? {
                    kept.push(again);
                }
            }
            *entries = kept;
            if entries.is_empty() {
                return Ok(state.version.unwrap_or(0));
            }
            let version = state.version.map_or(0, |v| v + 1);
            let actions = self.actions(table, state, entries, seq);
            let path = log_dir.clone().join(log::commit_name(version));
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            tried.extend(entries.iter().filter_map(|e| e.new.as_ref().map(|n| n.path.clone())));
            match ds.output.store.put_opts(&path, PutPayload::from(log::encode_commit(&actions)), opts).await {
                Ok(_) => {
                    state.apply(version, actions).map_err(|e| bad_table(ds, table, &e))?;
                    if version > 0 && version % schema::CHECKPOINT_INTERVAL == 0 {
                        write_checkpoint(ds, table, state).await;
                    }
                    return Ok(version);
                }
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    tracing::debug!(table = %table, version, race, "another writer committed this version first; reading it");
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=10 * u64::from(race + 1)))).await;
                }
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Err(WriteError::Settings(format!(
                        "{} does not support conditional writes (If-None-Match), which Delta commits need: use a store that does (AWS S3, MinIO, …)",
                        ds.output.spec
                    )));
                }
                Err(source) if unanswered < MAX_UNANSWERED && super::commit::went_unanswered(&source) => {
                    unanswered += 1;
                    tracing::info!(table = %table, version, "a commit went unanswered; reading the log to see whether it landed");
                    tokio::time::sleep(Duration::from_millis(200 << unanswered)).await;
                }
                Err(source) => return Err(ds.store_err(&path, source)),
            }
        }
        Err(WriteError::Io {
            path: ds.output.url_of(&log_dir),
            message: format!("lost {MAX_RACES} races in a row to other writers of this table; re-run to fill it"),
        })
    }

    /// Merges an entry's accounts onto the bucket's files as another writer left them.
    async fn merge_again(
        &self,
        ds: &Dataset,
        table: &Table,
        entry: Entry,
        live: BTreeSet<String>,
        orphans: &mut Vec<String>,
    ) -> Result<Option<Entry>, WriteError> {
        let members: BTreeSet<&str> = entry.members.iter().map(String::as_str).collect();
        let mine = match &entry.new {
            Some(new) => {
                let rows = read_files(ds, table, entry.date, &BTreeSet::from([new.path.clone()])).await?;
                merge::select_accounts(table, &rows.expect("one file read"), |a| members.contains(a))
            }
            None => RecordBatch::new_empty(table.schema()),
        };
        orphans.extend(entry.new.as_ref().map(|n| n.path.clone()));
        let theirs = read_files(ds, table, entry.date, &live).await?;
        let merged = match merge::merge(table, theirs.as_ref(), &members, &mine) {
            Merged::Unchanged => return Ok(None),
            Merged::Rows(merged) => merged,
        };
        let new = match merged.num_rows() {
            0 => None,
            _ => Some(self.write_file(ds, table, entry.date, entry.bucket, &merged).await?),
        };
        Ok(Some(Entry { new, merged_from: live, ..entry }))
    }

    /// The actions of one commit: (for a new table) protocol and metadata, the run's txn, the
    /// replaced files removed and the new ones added.
    fn actions(&self, table: &Table, state: &TableState, entries: &[Entry], seq: i64) -> Vec<Action> {
        let now = chrono::Utc::now().timestamp_millis();
        let removed: Vec<&Add> =
            entries.iter().flat_map(|e| e.merged_from.iter()).filter_map(|p| state.files.get(p)).collect();
        let added = entries.iter().filter(|e| e.new.is_some()).count();
        let mut actions = vec![Action {
            commit_info: Some(json!({
                "timestamp": now,
                "operation": "WRITE",
                "operationParameters": {"mode": "Overwrite", "partitionBy": "[\"ref_date\"]"},
                "engineInfo": concat!("wxcube ", env!("CARGO_PKG_VERSION")),
                "isBlindAppend": false,
                "operationMetrics": {"numAddedFiles": added.to_string(), "numRemovedFiles": removed.len().to_string()},
            })),
            ..Default::default()
        }];
        if state.version.is_none() {
            actions.push(Action {
                protocol: Some(Protocol {
                    min_reader_version: log::READER_VERSION,
                    min_writer_version: log::WRITER_VERSION,
                    reader_features: None,
                    writer_features: None,
                }),
                ..Default::default()
            });
            actions.push(Action { metadata: Some(new_metadata(table, now)), ..Default::default() });
        }
        actions.push(Action {
            txn: Some(Txn { app_id: self.app_id.clone(), version: seq, last_updated: Some(now) }),
            ..Default::default()
        });
        for old in removed {
            actions.push(Action {
                remove: Some(Remove {
                    path: old.path.clone(),
                    deletion_timestamp: Some(now),
                    data_change: true,
                    extended_file_metadata: Some(true),
                    partition_values: Some(old.partition_values.clone()),
                    size: Some(old.size),
                }),
                ..Default::default()
            });
        }
        for e in entries {
            if let Some(new) = &e.new {
                actions.push(Action {
                    add: Some(Add {
                        path: new.path.clone(),
                        partition_values: BTreeMap::from([(
                            schema::PARTITION_COLUMN.to_string(),
                            Some(e.date.to_string()),
                        )]),
                        size: new.size,
                        modification_time: now,
                        data_change: true,
                        stats: Some(json!({"numRecords": new.rows}).to_string()),
                    }),
                    ..Default::default()
                });
            }
        }
        actions
    }
}

/// Keeps the newest replacement of each bucket; the files of earlier ones (merged into the
/// newest) are returned to be removed. An earlier replacement's sources become the newest's.
fn newest_per_bucket(batch: Vec<Entry>) -> (Vec<Entry>, Vec<String>) {
    let mut newest: BTreeMap<(NaiveDate, u32), Entry> = BTreeMap::new();
    let mut orphans = Vec::new();
    for entry in batch {
        match newest.remove(&(entry.date, entry.bucket)) {
            None => {
                newest.insert((entry.date, entry.bucket), entry);
            }
            Some(before) => {
                // `entry` was merged from `before`'s file: it replaces what `before` replaced.
                let mut merged_from: BTreeSet<String> = entry.merged_from.clone();
                if let Some(file) = &before.new {
                    merged_from.remove(&file.path);
                    orphans.push(file.path.clone());
                }
                merged_from.extend(before.merged_from.iter().cloned());
                let members = before.members.union(&entry.members).cloned().collect();
                let rows = before.rows + entry.rows;
                newest.insert((entry.date, entry.bucket), Entry { merged_from, members, rows, ..entry });
            }
        }
    }
    (newest.into_values().collect(), orphans)
}

fn new_metadata(table: &Table, now: i64) -> Metadata {
    Metadata {
        id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
        name: Some(table.name.clone()),
        description: Some(table.description.clone()),
        format: log::Format { provider: "parquet".into(), options: BTreeMap::new() },
        schema_string: schema::schema_string(table),
        partition_columns: vec![schema::PARTITION_COLUMN.into()],
        configuration: schema::configuration(table),
        created_time: Some(now),
    }
}

/// `<output>/<table>`.
pub(super) fn table_dir(ds: &Dataset, table: &Table) -> Path {
    ds.output.root.clone().join(table.name.as_str())
}

/// A file of the table, from its path in the log (`ref_date=…/part-….parquet`).
fn under(dir: &Path, rel: &str) -> Path {
    rel.split('/').fold(dir.clone(), |p, part| p.join(part))
}

pub(super) fn bad_table(ds: &Dataset, table: &Table, problem: &str) -> WriteError {
    WriteError::Settings(format!(
        "the Delta table {}: {problem}: repair it with a Delta tool or write to a new output",
        ds.output.url_of(&table_dir(ds, table))
    ))
}

/// Refuses a table wxcube would damage by writing: one that needs a newer protocol than it
/// implements, or has another schema.
fn check_table(ds: &Dataset, table: &Table, state: &TableState) -> Result<(), WriteError> {
    let Some(version) = state.version else { return Ok(()) };
    let (Some(protocol), Some(metadata)) = (&state.protocol, &state.metadata) else {
        return Err(bad_table(ds, table, &format!("version {version} has no protocol or metaData")));
    };
    let unknown: Vec<&String> =
        protocol.writer_features.iter().flatten().filter(|f| !KNOWN_WRITER_FEATURES.contains(&f.as_str())).collect();
    if protocol.min_reader_version > 3
        || protocol.min_writer_version > 7
        || !unknown.is_empty()
        || (protocol.min_writer_version > log::WRITER_VERSION && protocol.min_writer_version < 7)
    {
        return Err(WriteError::Settings(format!(
            "the Delta table {} needs Delta writer version {} (features {:?}), which wxcube does not implement: write to a new output",
            ds.output.url_of(&table_dir(ds, table)),
            protocol.min_writer_version,
            unknown
        )));
    }
    if metadata.configuration.get("delta.appendOnly").is_some_and(|v| v == "true") {
        return Err(bad_table(ds, table, "it is append-only (delta.appendOnly), and wxcube replaces cells"));
    }
    if !schema::same_schema(&metadata.schema_string, &schema::schema_string(table))
        || metadata.partition_columns != [schema::PARTITION_COLUMN]
    {
        return Err(WriteError::Settings(format!(
            "the Delta table {} has another schema than wxcube's table {}: write to a new output",
            ds.output.url_of(&table_dir(ds, table)),
            table.name
        )));
    }
    Ok(())
}

/// Reads and concatenates the given files of one partition (`None`: no file).
async fn read_files(
    ds: &Dataset,
    table: &Table,
    date: NaiveDate,
    files: &BTreeSet<String>,
) -> Result<Option<RecordBatch>, WriteError> {
    let mut batches = Vec::with_capacity(files.len());
    for rel in files {
        let path = under(&table_dir(ds, table), rel);
        let Some(bytes) = ds.get_if_exists(&path).await? else {
            return Err(WriteError::BadFile {
                path: ds.output.url_of(&path),
                message: format!(
                    "the Delta log names this file but it is gone (vacuumed too early?); its cells on {date} were not written"
                ),
            });
        };
        let batch = read_parquet(table, bytes)
            .map_err(|message| WriteError::BadFile { path: ds.output.url_of(&path), message })?;
        batches.push(batch);
    }
    Ok(match batches.len() {
        0 => None,
        1 => batches.pop(),
        _ => Some(concat_batches(&table.schema(), &batches).expect("files share the table schema")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Cell, Row, to_batch};
    use crate::write::commit::tests::AnswerLost;
    use crate::write::lease::RunId;
    use crate::write::store::{Output, OutputSpec};
    use crate::write::{Dataset, Format};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use std::sync::atomic::AtomicU32;

    fn upstream_msg() -> Arc<Table> {
        wxcube_registry::tables().iter().find(|t| t.name == "upstream_msg").unwrap().clone()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
    }

    /// One row (msg_type 1, `count` messages) for each of `accounts`.
    fn rows(accounts: &[&str], count: i64) -> RecordBatch {
        let typed: Vec<(&str, Row)> = accounts
            .iter()
            .map(|&a| {
                (a, Row { ref_date: day(), values: vec![Cell::Int(1), Cell::Int(1), Cell::Int(count)], delayed: false })
            })
            .collect();
        let pairs: Vec<(&str, &Row)> = typed.iter().map(|(a, r)| (*a, r)).collect();
        to_batch(&upstream_msg(), &pairs, 1)
    }

    async fn dataset(store: Arc<dyn ObjectStore>) -> Dataset {
        let spec = OutputSpec::S3 { bucket: "lake".into(), prefix: "out".into() };
        let output = Output { lease_store: Arc::clone(&store), store, root: Path::from("out"), spec };
        Dataset::open(output, None, Some(Format::Delta)).await.unwrap().for_run(&RunId::new())
    }

    async fn replace(ds: &Dataset, accounts: &[&str], count: i64) {
        let who = accounts.iter().map(|a| crate::account::AppId::parse(a).unwrap()).collect();
        for w in ds.files().replace(&upstream_msg(), day(), &who, &rows(accounts, count)).await {
            w.result.unwrap();
        }
    }

    /// Every live row of the table, as (appid, msg_count), read through a fresh log replay.
    async fn live_rows(ds: &Dataset) -> Vec<(String, i64)> {
        let table = upstream_msg();
        let mut state = TableState::default();
        load(ds, &table, &mut state).await.unwrap();
        let files: BTreeSet<String> = state.files.keys().cloned().collect();
        let Some(batch) = read_files(ds, &table, day(), &files).await.unwrap() else { return Vec::new() };
        let ids = batch.column(0).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        let counts =
            batch.column_by_name("msg_count").unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
        let mut out: Vec<(String, i64)> =
            (0..batch.num_rows()).map(|i| (ids.value(i).to_string(), counts.value(i))).collect();
        out.sort();
        out
    }

    async fn versions(store: &dyn ObjectStore) -> Vec<String> {
        use futures::TryStreamExt;
        let mut names: Vec<String> = store
            .list(Some(&Path::from("out/upstream_msg/_delta_log")))
            .map_ok(|m| m.location.filename().unwrap().to_string())
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_delta_dataset_is_one_a_wxcube_without_delta_refuses() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        dataset(store.clone()).await;
        let settings = store.get(&Path::from("out/_wxcube/dataset.json")).await.unwrap().bytes().await.unwrap();
        let settings: serde_json::Value = serde_json::from_slice(&settings).unwrap();
        // Releases before Delta output accept format_version 1 only.
        assert_eq!((settings["format_version"].as_u64(), settings["format"].as_str()), (Some(2), Some("delta")));
    }

    #[tokio::test]
    async fn a_commit_whose_answer_is_lost_lands_once() {
        let victim = Path::from(format!("out/upstream_msg/_delta_log/{}", log::commit_name(0)));
        let store =
            Arc::new(AnswerLost { inner: InMemory::new(), victim, losses: AtomicU32::new(1), refuse_instead: false });
        let ds = dataset(store.clone()).await;
        replace(&ds, &["wxa"], 5).await;
        let outcomes = ds.flush(&[upstream_msg()]).await.unwrap();
        assert!(outcomes.failed.is_empty(), "{:?}", outcomes.failed);
        assert_eq!(outcomes.versions["upstream_msg"], 0);
        assert_eq!(versions(store.as_ref()).await, [log::commit_name(0)], "committed once, as version 0");
        assert_eq!(live_rows(&ds).await, [("wxa".to_string(), 5)]);
    }

    #[tokio::test]
    async fn a_writer_that_loses_the_race_merges_onto_the_winner() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (slow, fast) = (dataset(store.clone()).await, dataset(store.clone()).await);
        // Both read the bucket while the table is empty; `fast` commits first.
        replace(&slow, &["wxa"], 5).await;
        replace(&fast, &["wxa", "wxb"], 5).await;
        assert_eq!(fast.flush(&[upstream_msg()]).await.unwrap().versions["upstream_msg"], 0);
        let outcomes = slow.flush(&[upstream_msg()]).await.unwrap();
        // wxa's rows are the same as the winner's: nothing left to commit, and no row doubled.
        assert!(outcomes.failed.is_empty());
        assert_eq!(live_rows(&slow).await, [("wxa".to_string(), 5), ("wxb".to_string(), 5)]);
        // A writer whose rows differ replaces its account's rows in the winner's file.
        let late = dataset(store.clone()).await;
        let other = dataset(store.clone()).await;
        replace(&late, &["wxa"], 7).await;
        replace(&other, &["wxc"], 1).await;
        other.flush(&[upstream_msg()]).await.unwrap();
        assert_eq!(late.flush(&[upstream_msg()]).await.unwrap().versions["upstream_msg"], 2);
        assert_eq!(live_rows(&late).await, [("wxa".to_string(), 7), ("wxb".to_string(), 5), ("wxc".to_string(), 1)]);
        // One file per bucket and date stays live.
        let mut state = TableState::default();
        load(&late, &upstream_msg(), &mut state).await.unwrap();
        assert_eq!(state.files.len(), 1);
    }

    #[tokio::test]
    async fn a_run_that_changes_nothing_makes_no_version() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let first = dataset(store.clone()).await;
        replace(&first, &["wxa"], 5).await;
        first.flush(&[upstream_msg()]).await.unwrap();
        let again = dataset(store.clone()).await;
        replace(&again, &["wxa"], 5).await;
        assert_eq!(again.flush(&[upstream_msg()]).await.unwrap().versions["upstream_msg"], 0);
        assert_eq!(versions(store.as_ref()).await, [log::commit_name(0)]);
    }

    #[tokio::test]
    async fn every_tenth_version_is_checkpointed_and_read_back() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for count in 0..11 {
            let ds = dataset(store.clone()).await;
            replace(&ds, &["wxa"], count).await;
            assert_eq!(ds.flush(&[upstream_msg()]).await.unwrap().versions["upstream_msg"], count as u64);
        }
        let names = versions(store.as_ref()).await;
        assert!(names.contains(&log::checkpoint_name(10)), "{names:?}");
        assert!(names.contains(&"_last_checkpoint".to_string()));
        // The commits before the checkpoint gone (as a log clean-up leaves it): the table reads
        // from the checkpoint.
        for v in 0..=10 {
            store.delete(&Path::from(format!("out/upstream_msg/_delta_log/{}", log::commit_name(v)))).await.unwrap();
        }
        let ds = dataset(store.clone()).await;
        assert_eq!(live_rows(&ds).await, [("wxa".to_string(), 10)]);
    }

    fn entry(bucket: u32, new: &str, from: &[&str], member: &str) -> Entry {
        Entry {
            date: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            bucket,
            new: Some(NewFile { path: new.into(), size: 1, rows: 1 }),
            merged_from: from.iter().map(|s| s.to_string()).collect(),
            members: BTreeSet::from([member.to_string()]),
            rows: 1,
        }
    }

    #[test]
    fn a_bucket_written_twice_before_its_commit_replaces_the_committed_file_once() {
        let (kept, orphans) = newest_per_bucket(vec![
            entry(0, "n1", &["old"], "wxa"),
            entry(1, "m1", &[], "wxc"),
            entry(0, "n2", &["n1"], "wxb"),
        ]);
        assert_eq!(kept.len(), 2);
        let b0 = kept.iter().find(|e| e.bucket == 0).unwrap();
        assert_eq!(b0.new.as_ref().unwrap().path, "n2");
        assert_eq!(b0.merged_from, BTreeSet::from(["old".to_string()]));
        assert_eq!(b0.members.len(), 2);
        assert_eq!(orphans, ["n1"]);
    }
}
