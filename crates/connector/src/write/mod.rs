//! write: Arrow batches → Hive-style date partitions of Parquet, through `object_store`; with
//! `--format delta`, the same files committed to a Delta table's log ([`delta`]).
//!
//! Takes, per (table, date), the rows a run fetched and the accounts they were fetched for;
//! writes `<table>/ref_date=<date>/part-<BB>.parquet`, one file per bucket of accounts.
//!
//! Guarantees:
//! - **Atomic objects**: every data file appears whole or not at all (see
//!   `Dataset::put_atomic`); a failed or killed run leaves earlier files intact.
//! - **Merge on write**: a bucket file holds many accounts. Writing it keeps the rows of
//!   accounts outside the run as they were and replaces the rows of the run's accounts by what
//!   the API returned this time, so a re-run neither duplicates nor leaves stale rows
//!   ([`merge`]).
//! - **Writers that meet lose nothing**: every replace is a read–merge–write that fails if
//!   another writer got there first, then reads and merges again ([`commit`]).
//! - **Deterministic content**: rows are sorted by (appid, row key); the same rows give the same
//!   file content, and an account whose values did not change keeps its `extracted_at`.
//! - **Empty cells**: a fetched date with no rows writes nothing; a bucket file left without
//!   rows is kept with none (a delete cannot be conditional, see `replace_bucket`).
//! - **Bounded files**: files per partition are bounded by the bucket count `B`, fixed when the
//!   dataset is first written and recorded in `_wxcube/dataset.json`.

mod commit;
pub mod delta;
mod file_lock;
mod group_commit;
pub mod layout;
pub mod lease;
mod merge;
pub mod raw;
pub mod runs;
pub mod state;
pub mod store;

use crate::schema::ArrowSchema;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;
use bytes::Bytes;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::account::AppId;
use commit::{Decision, PathLocks, StripeLocks};
use group_commit::GroupCommit;
use merge::Merged;
use store::Output;
use wxcube_registry::Table;

/// Bucket files of one date written at the same time.
const PARALLEL_WRITES: usize = 8;

/// Default number of buckets (files per partition) of an output not written by shards: one
/// file per partition is what readers scan fastest (README, "Performance").
pub const DEFAULT_BUCKETS: u32 = 1;

/// Settings fixed when a dataset is first written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub format_version: u32,
    pub buckets: u32,
    pub bucket_hash: String,
    /// How the tables are kept (datasets from before `--format` are Parquet).
    #[serde(default)]
    pub format: Format,
}

/// How a dataset's tables are kept: Hive-partitioned Parquet folders, or Delta tables of the
/// same files ([`delta`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Parquet,
    Delta,
}

impl Format {
    /// The settings' `format_version`: 2 for Delta, so that a wxcube from before Delta output,
    /// which knows only 1, refuses the dataset instead of writing Parquet files into its tables.
    fn version(self) -> u32 {
        match self {
            Format::Parquet => 1,
            Format::Delta => 2,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Parquet => "parquet",
            Format::Delta => "delta",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed or refused, after its own retries: an outage, not one file's fault.
    #[error("{path}: {source}{}", credentials_hint(.source))]
    Store { path: String, source: object_store::Error },
    /// Reading or writing a local file failed (disk full, permissions): an outage too.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// A file at a path wxcube owns holds something it cannot merge with (not Parquet, another
    /// schema, unreadable JSON): the cells that need it fail, the rest of the run goes on.
    #[error("{path}: {message}")]
    BadFile { path: String, message: String },
    /// The output's settings forbid the run (another bucket count, a newer format, a store
    /// without conditional writes): nothing can be written.
    #[error("{0}")]
    Settings(String),
    /// Another live run holds a lease on the same (account, table) pairs.
    #[error("{0}")]
    LeaseHeld(String),
}

/// The fix, when a store request failed because no credentials could be had: with none in the
/// environment, the S3 client asks the instance metadata service (`/latest/api/token`,
/// `/latest/meta-data/…`), and its failure names only that endpoint, not what is missing.
fn credentials_hint(source: &object_store::Error) -> &'static str {
    let message = source.to_string();
    if message.contains("/latest/api/token") || message.contains("/latest/meta-data/") {
        " (no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
         AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or run where instance metadata serves them)"
    } else {
        ""
    }
}

impl WriteError {
    /// Whether the store itself is failing, so that further writes are pointless.
    pub fn is_outage(&self) -> bool {
        matches!(self, WriteError::Store { .. } | WriteError::Io { .. } | WriteError::Settings(_))
    }
}

/// What one replace did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub files_written: u64,
    /// Rows of the run's accounts now in the files.
    pub rows: u64,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, o: Self) {
        self.files_written += o.files_written;
        self.rows += o.rows;
    }
}

/// The outcome of replacing one bucket file: which accounts it was for, and how it went.
pub struct BucketWrite {
    pub bucket: u32,
    pub result: Result<Written, WriteError>,
}

pub struct Dataset {
    output: Output,
    settings: Settings,
    unique: AtomicU64,
    /// Tasks of this process writing the same object wait for each other (see `commit`).
    path_locks: PathLocks,
    /// Local disk: the stripe locks this process holds (see `commit`).
    stripe_locks: StripeLocks,
    /// Local disk: makes files durable a batch at a time (see `group_commit`).
    group_commit: Option<GroupCommit>,
    /// `--format delta`: the run's Delta tables (see [`Dataset::for_run`]).
    delta: Option<delta::DeltaTables>,
}

impl Dataset {
    /// The settings recorded in an existing dataset, if any.
    pub async fn read_settings(output: &Output) -> Result<Option<Settings>, WriteError> {
        let path = layout::settings_path(&output.root);
        let store_err = |source| WriteError::Store { path: output.url_of(&path), source };
        let bytes = match output.store.get(&path).await {
            Ok(found) => found.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(store_err(source)),
        };
        let settings = serde_json::from_slice::<Settings>(&bytes).map_err(|e| {
            WriteError::Settings(format!(
                "{} is unreadable ({e}): restore it or write to a new output",
                output.url_of(&path)
            ))
        })?;
        Self::check(output, &settings, None, None)?;
        Ok(Some(settings))
    }

    /// Refuses settings this run cannot work with.
    fn check(
        output: &Output,
        settings: &Settings,
        buckets: Option<u32>,
        format: Option<Format>,
    ) -> Result<(), WriteError> {
        if settings.format_version != settings.format.version() || settings.bucket_hash != "fnv1a64" {
            return Err(WriteError::Settings(format!("{} was written by a newer wxcube: upgrade wxcube", output.spec)));
        }
        if let Some(b) = buckets
            && b != settings.buckets
        {
            return Err(WriteError::Settings(format!(
                "{} was written with --buckets {}, not {b}: use --buckets {} or a new output",
                output.spec, settings.buckets, settings.buckets
            )));
        }
        if let Some(f) = format
            && f != settings.format
        {
            return Err(WriteError::Settings(format!(
                "{} holds {} tables, not {f}: use --format {} or a new output",
                output.spec, settings.format, settings.format
            )));
        }
        Ok(())
    }

    /// Opens the dataset, recording its settings on first use. `buckets` is the run's request
    /// (`None`: whatever the dataset has, or the default for a new one); a dataset written with
    /// another bucket count is refused, since its accounts' rows live in other files.
    /// `format` likewise: a dataset's tables stay in the format they were first written in.
    pub async fn open(output: Output, buckets: Option<u32>, format: Option<Format>) -> Result<Self, WriteError> {
        let path = layout::settings_path(&output.root);
        let wanted = Settings {
            format_version: format.unwrap_or_default().version(),
            buckets: buckets.unwrap_or(DEFAULT_BUCKETS),
            bucket_hash: "fnv1a64".into(),
            format: format.unwrap_or_default(),
        };
        let settings = match Self::read_settings(&output).await? {
            Some(settings) => settings,
            None => {
                let body = serde_json::to_vec_pretty(&wanted).expect("settings serialise");
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match output.store.put_opts(&path, PutPayload::from(body), opts).await {
                    Ok(_) => wanted.clone(),
                    // Another run created it first: read theirs.
                    Err(object_store::Error::AlreadyExists { .. }) => {
                        return Box::pin(Self::open(output, buckets, format)).await;
                    }
                    Err(source) => return Err(WriteError::Store { path: output.url_of(&path), source }),
                }
            }
        };
        Self::check(&output, &settings, buckets, format)?;
        let group_commit = match &output.spec {
            store::OutputSpec::Local(dir) => {
                let staging = output.local_path(&layout::staging_dir(&output.root)).expect("a local output");
                let io_err =
                    |e: std::io::Error| WriteError::Io { path: staging.display().to_string(), message: e.to_string() };
                for n in 0..layout::STAGING_FOLDERS {
                    let folder = layout::staging_folder(&output.root, n);
                    std::fs::create_dir_all(output.local_path(&folder).expect("a local output")).map_err(io_err)?;
                }
                Some(GroupCommit::start(dir.clone()).map_err(io_err)?)
            }
            store::OutputSpec::S3 { .. } => None,
        };
        let dataset = Self {
            output,
            settings,
            unique: AtomicU64::new(0),
            path_locks: PathLocks::default(),
            stripe_locks: StripeLocks::default(),
            group_commit,
            delta: None,
        };
        dataset.clean_staging().await;
        Ok(dataset)
    }

    /// Readies the dataset for the writes of run `run`: for Delta tables, the commits that
    /// name it ([`delta`]).
    pub fn for_run(mut self, run: &lease::RunId) -> Self {
        if self.settings.format == Format::Delta {
            self.delta = Some(delta::DeltaTables::new(run.as_str()));
        }
        self
    }

    pub fn format(&self) -> Format {
        self.settings.format
    }

    /// Delta tables: reads their logs, refusing a table wxcube would damage (Parquet: nothing
    /// to read).
    pub async fn open_tables(&self, tables: &[std::sync::Arc<Table>]) -> Result<(), WriteError> {
        match &self.delta {
            Some(delta) => delta.open_tables(self, tables).await,
            None => Ok(()),
        }
    }

    /// Delta tables: commits every file still waiting, and says what the run's commits did
    /// (`None` for Parquet, whose files are in place once written).
    pub async fn flush(&self, tables: &[std::sync::Arc<Table>]) -> Option<delta::Outcomes> {
        match &self.delta {
            Some(delta) => Some(delta.flush(self, tables).await),
            None => None,
        }
    }

    /// Removes staging files a killed run left behind (readers never see them, but they take
    /// space). Only files older than an hour: a younger one may belong to a run still going.
    async fn clean_staging(&self) {
        if !self.output.stage_locally() {
            return;
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::hours(1);
        let dir = layout::staging_dir(&self.output.root);
        let stale: Vec<Path> = match self.output.store.list(Some(&dir)).try_collect::<Vec<_>>().await {
            Ok(objects) => objects.into_iter().filter(|o| o.last_modified < cutoff).map(|o| o.location).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the staging folder");
                return;
            }
        };
        for path in stale {
            // Removed by hand, not by the store: its clean-up of emptied folders could pull the
            // staging folder from under another run about to stage a file there.
            let file = self.output.local_path(&path).expect("a local output");
            if let Err(e) = std::fs::remove_file(&file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path, error = %e, "cannot remove a stale staging file");
            }
        }
    }

    pub(crate) fn store_err(&self, path: &Path, source: object_store::Error) -> WriteError {
        WriteError::Store { path: self.output.url_of(path), source }
    }

    /// The whole object at `path` (`None`: there is none).
    pub(crate) async fn get_if_exists(&self, path: &Path) -> Result<Option<Bytes>, WriteError> {
        match self.output.store.get(path).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(|source| self.store_err(path, source))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.store_err(path, source)),
        }
    }

    pub fn bucket_of(&self, appid: &AppId) -> u32 {
        layout::bucket_of(appid, self.settings.buckets)
    }

    /// The data files: `<table>/ref_date=…/part-BB.parquet`.
    pub fn files(&self) -> DataFiles<'_> {
        DataFiles(self)
    }

    /// The incremental state, one object per bucket (see [`state`]).
    pub fn state(&self) -> state::StateFiles<'_> {
        state::StateFiles(self)
    }

    /// The answers `--keep-raw` stores (see [`raw`]).
    pub fn raw(&self) -> raw::RawAnswers<'_> {
        raw::RawAnswers(self)
    }

    /// Each run's record (see [`runs`]).
    pub fn runs(&self) -> runs::RunRecords<'_> {
        runs::RunRecords(self)
    }

    /// Makes `bytes` the whole content of `path`, at once and durably. On S3 a put is atomic
    /// and durable on its own; on local disk the file is written under `_wxcube/staging/`, then
    /// made durable and renamed into place with the other files waiting ([`group_commit`]).
    pub(crate) async fn put_atomic(&self, path: &Path, bytes: Bytes) -> Result<(), WriteError> {
        self.put_in_place(path, bytes).await?.durable().await
    }

    /// Like [`Dataset::put_atomic`], but returns as soon as `path` holds `bytes` for every
    /// reader; the file is durable once the returned [`InPlace`] says so.
    pub(crate) async fn put_in_place(&self, path: &Path, bytes: Bytes) -> Result<InPlace, WriteError> {
        let (Some(dest), Some(group)) = (self.output.local_path(path), &self.group_commit) else {
            let store = &self.output.store;
            store.put(path, PutPayload::from(bytes)).await.map_err(|source| self.store_err(path, source))?;
            return Ok(InPlace(None));
        };
        let io_err = |e: std::io::Error| WriteError::Io { path: self.output.url_of(path), message: e.to_string() };
        let n = self.unique.fetch_add(1, Ordering::Relaxed);
        let staged_path = layout::staging_folder(&self.output.root, n).join(format!("{}-{n}.tmp", std::process::id()));
        let staged = self.output.local_path(&staged_path).expect("a local output");
        // Written here, not on a blocking thread: a file of a few kilobytes goes to the page cache
        // in microseconds, less than handing it to another thread costs. The sync that can
        // take long is the committer's.
        std::fs::write(&staged, &bytes)
            .or_else(|e| {
                // The staging folder is made when the dataset is opened; someone removed it.
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e);
                }
                std::fs::create_dir_all(staged.parent().expect("the staging folder"))?;
                std::fs::write(&staged, &bytes)
            })
            .map_err(io_err)?;
        let published = group.publish(staged, dest).await.map_err(io_err)?;
        Ok(InPlace(Some((published, self.output.url_of(path)))))
    }
}

/// A file every reader sees, whose durability may still be on its way: on local disk, the
/// group commit's answer, and the file's address for an error.
#[must_use = "a file is not durable until `durable` says so"]
pub(crate) struct InPlace(Option<(group_commit::Published, String)>);

impl InPlace {
    /// Returns once the file survives a power cut.
    pub(crate) async fn durable(self) -> Result<(), WriteError> {
        match self.0 {
            None => Ok(()),
            Some((published, path)) => {
                published.durable().await.map_err(|e| WriteError::Io { path, message: e.to_string() })
            }
        }
    }
}

/// The dataset's data files: one per (table, date, bucket).
pub struct DataFiles<'a>(&'a Dataset);

impl DataFiles<'_> {
    /// Replaces the rows of `accounts` on `date` of `table` by `rows` (which must hold only
    /// rows of those accounts, all dated `date`), bucket file by bucket file; says how each
    /// bucket went, so that a bad file fails only the accounts it holds.
    pub async fn replace(
        &self,
        table: &Table,
        date: NaiveDate,
        accounts: &BTreeSet<AppId>,
        rows: &RecordBatch,
    ) -> Vec<BucketWrite> {
        let mut by_bucket: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
        for a in accounts {
            by_bucket.entry(self.0.bucket_of(a)).or_default().insert(a.as_str());
        }
        // Bucket files are independent: write several at once, so the store's latency (an fsync
        // on disk, a round trip on S3) overlaps instead of adding up.
        let mut writes = Vec::with_capacity(by_bucket.len());
        for (&bucket, members) in &by_bucket {
            let new_rows = merge::select_accounts(table, rows, |a| members.contains(a));
            writes.push(async move {
                BucketWrite { bucket, result: self.replace_bucket(table, date, bucket, members, new_rows).await }
            });
        }
        futures::stream::iter(writes).buffer_unordered(PARALLEL_WRITES).collect().await
    }

    /// Read, merge and write one bucket file as one conditional update (see `commit`): a
    /// writer that meets another re-reads and re-merges, it never overwrites.
    async fn replace_bucket(
        &self,
        table: &Table,
        date: NaiveDate,
        bucket: u32,
        members: &BTreeSet<&str>,
        new_rows: RecordBatch,
    ) -> Result<Written, WriteError> {
        if let Some(delta) = &self.0.delta {
            return delta.replace_bucket(self.0, table, date, bucket, members, new_rows).await;
        }
        let path = layout::data_path(&self.0.output.root, &table.name, date, bucket);
        let rows = new_rows.num_rows() as u64;
        self.0
            .update(&path, |existing| {
                let old = existing.map(|bytes| read_parquet(table, bytes.clone())).transpose().map_err(|message| {
                    WriteError::BadFile { path: self.0.output.url_of(&path), message: bad_file_fix(&message, date) }
                })?;
                match merge::merge(table, old.as_ref(), members, &new_rows) {
                    // Nothing changed: the file stays as it is, byte for byte.
                    Merged::Unchanged => Ok(Decision::Keep(Written { files_written: 0, rows })),
                    // A file left without rows is kept, empty, rather than deleted: a delete cannot be
                    // made conditional on the version read (object_store has no conditional delete),
                    // and an unconditional one could remove rows another writer has just merged in.
                    Merged::Rows(merged) => {
                        let bytes = encode_parquet(table, &merged)
                            .map_err(|message| WriteError::Io { path: self.0.output.url_of(&path), message })?;
                        Ok(Decision::Put(bytes, Written { files_written: 1, rows }))
                    }
                }
            })
            .await
    }
}

/// What to do about a bucket file wxcube cannot merge with.
fn bad_file_fix(problem: &str, date: NaiveDate) -> String {
    format!(
        "{problem}; its cells were not written: move the file away and re-run over {date} (every account of the file is fetched again), or restore it"
    )
}

/// Files with fewer rows are written uncompressed. The parquet crate builds a ZSTD compressor
/// and decompressor for every column chunk it writes, each probing the CPU (`cpuid`, which
/// traps to the hypervisor on virtual machines): for the small files of one account's day that
/// was half of wxcube's CPU, for files that ZSTD made no smaller, since their pages are a few
/// dictionary-encoded bytes. From about a thousand rows on (a day of twenty accounts' hour
/// table), ZSTD saves a quarter of the size and costs little per row (README, "Performance").
pub const COMPRESS_FROM_ROWS: usize = 1024;

fn writer_properties(rows: usize) -> WriterProperties {
    let compression = if rows >= COMPRESS_FROM_ROWS {
        Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid level"))
    } else {
        Compression::UNCOMPRESSED
    };
    WriterProperties::builder()
        // Set explicitly for large files: the parquet crate writes uncompressed by default.
        .set_compression(compression)
        .set_created_by(concat!("wxcube ", env!("CARGO_PKG_VERSION")).to_string())
        .build()
}

/// Encodes one batch as a Parquet file.
pub fn encode_parquet(table: &Table, batch: &RecordBatch) -> Result<Bytes, String> {
    let mut buf = Vec::with_capacity(4096);
    let properties = writer_properties(batch.num_rows());
    let mut writer = ArrowWriter::try_new(&mut buf, table.schema(), Some(properties)).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// Reads a whole Parquet file, which must have the table's schema.
pub fn read_parquet(table: &Table, bytes: Bytes) -> Result<RecordBatch, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| format!("not a readable Parquet file ({})", crate::text::one_line(&e.to_string())))?;
    if builder.schema().fields() != table.schema().fields() {
        return Err(format!("the file has another schema than table {} declares", table.name));
    }
    let batches = builder
        .build()
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("corrupt Parquet file ({})", crate::text::one_line(&e.to_string())))?;
    concat_batches(&table.schema(), &batches).map_err(|e| e.to_string())
}
