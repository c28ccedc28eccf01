//! write: Arrow batches → Hive-style date partitions of Parquet, through `object_store`.
//!
//! Takes, per (table, date), the rows a run fetched and the accounts they were fetched for;
//! writes `<table>/ref_date=<date>/part-<BB>.parquet`, one file per bucket of accounts.
//!
//! Guarantees:
//! - **Atomic objects**: every data file appears whole or not at all (see
//!   `Dataset::put_atomic`); a failed or killed run leaves earlier files intact.
//! - **Merge on write**: a bucket file holds many accounts. Writing it keeps the rows of
//!   accounts outside the run as they were and replaces the rows of the run's accounts by what
//!   the API returned this time, so a re-run neither duplicates nor leaves stale rows.
//! - **Deterministic content**: rows are sorted by (appid, row key); the same rows give the same
//!   file content apart from `extracted_at`.
//! - **Empty cells**: a fetched date with no rows writes nothing; a bucket file left without
//!   rows is removed.
//! - **Bounded files**: files per partition are bounded by the bucket count `B`, fixed when the
//!   dataset is first written and recorded in `_wxcube/dataset.json`.

mod durable;
pub mod layout;
pub mod lock;
pub mod raw;
pub mod state;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch};
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
use crate::registry::Table;
use store::Output;

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
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Store { path: String, source: object_store::Error },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Settings(String),
}

/// What one replace did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub files_written: u64,
    pub files_removed: u64,
    /// Rows of the run's accounts now in the files.
    pub rows: u64,
}

pub struct Dataset {
    output: Output,
    settings: Settings,
    unique: AtomicU64,
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
        Self::check(output, &settings, None)?;
        Ok(Some(settings))
    }

    /// Refuses settings this run cannot work with.
    fn check(output: &Output, settings: &Settings, buckets: Option<u32>) -> Result<(), WriteError> {
        if settings.format_version != 1 || settings.bucket_hash != "fnv1a64" {
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
        Ok(())
    }

    /// Opens the dataset, recording its settings on first use. `buckets` is the run's request
    /// (`None`: whatever the dataset has, or the default for a new one); a dataset written with
    /// another bucket count is refused, since its accounts' rows live in other files.
    pub async fn open(output: Output, buckets: Option<u32>) -> Result<Self, WriteError> {
        let path = layout::settings_path(&output.root);
        let wanted =
            Settings { format_version: 1, buckets: buckets.unwrap_or(DEFAULT_BUCKETS), bucket_hash: "fnv1a64".into() };
        let settings = match Self::read_settings(&output).await? {
            Some(settings) => settings,
            None => {
                let body = serde_json::to_vec_pretty(&wanted).expect("settings serialise");
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match output.store.put_opts(&path, PutPayload::from(body), opts).await {
                    Ok(_) => wanted.clone(),
                    // Another run created it first: read theirs.
                    Err(object_store::Error::AlreadyExists { .. }) => {
                        return Box::pin(Self::open(output, buckets)).await;
                    }
                    Err(source) => return Err(WriteError::Store { path: output.url_of(&path), source }),
                }
            }
        };
        Self::check(&output, &settings, buckets)?;
        let dataset = Self { output, settings, unique: AtomicU64::new(0) };
        dataset.clean_staging().await;
        Ok(dataset)
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
            if let Err(e) = self.output.store.delete(&path).await {
                tracing::warn!(path = %path, error = %e, "cannot remove a stale staging file");
            }
        }
    }

    pub(crate) fn store_err(&self, path: &Path, source: object_store::Error) -> WriteError {
        WriteError::Store { path: self.output.url_of(path), source }
    }

    pub fn bucket_of(&self, appid: &AppId) -> u32 {
        layout::bucket_of(appid, self.settings.buckets)
    }

    /// Replaces the rows of `accounts` on `date` of `table` by `rows` (which must hold only
    /// rows of those accounts, all dated `date`), bucket file by bucket file.
    pub async fn replace(
        &self,
        table: &Table,
        date: NaiveDate,
        accounts: &BTreeSet<AppId>,
        rows: &RecordBatch,
    ) -> Result<Written, WriteError> {
        let mut by_bucket: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
        for a in accounts {
            by_bucket.entry(self.bucket_of(a)).or_default().insert(a.as_str());
        }
        // Bucket files are independent: write several at once, so the store's latency (an fsync
        // on disk, a round trip on S3) overlaps instead of adding up.
        let mut writes = Vec::with_capacity(by_bucket.len());
        for (bucket, members) in &by_bucket {
            let new_rows = select_accounts(table, rows, |a| members.contains(a));
            writes.push(self.replace_bucket(table, date, *bucket, members, new_rows));
        }
        let results: Vec<Result<Written, WriteError>> =
            futures::stream::iter(writes).buffer_unordered(PARALLEL_WRITES).collect().await;
        let mut total = Written::default();
        for w in results {
            let w = w?;
            total.files_written += w.files_written;
            total.files_removed += w.files_removed;
            total.rows += w.rows;
        }
        Ok(total)
    }

    async fn replace_bucket(
        &self,
        table: &Table,
        date: NaiveDate,
        bucket: u32,
        members: &BTreeSet<&str>,
        new_rows: RecordBatch,
    ) -> Result<Written, WriteError> {
        let store = &self.output.store;
        let path = layout::data_path(&self.output.root, &table.name, date, bucket);
        let existing = match store.get(&path).await {
            Ok(found) => Some(found.bytes().await.map_err(|source| self.store_err(&path, source))?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(source) => return Err(self.store_err(&path, source)),
        };
        if existing.is_none() && new_rows.num_rows() == 0 {
            return Ok(Written::default());
        }
        let mut parts = vec![];
        let rows = new_rows.num_rows() as u64;
        if let Some(bytes) = &existing {
            let old = read_parquet(table, bytes.clone())
                .map_err(|message| WriteError::File { path: self.output.url_of(&path), message })?;
            if same_values(table, &select_accounts(table, &old, |a| members.contains(a)), &new_rows) {
                // Nothing changed: the file stays as it is, byte for byte (and its rows keep the
                // extracted_at of when these values were first fetched).
                return Ok(Written { files_written: 0, files_removed: 0, rows });
            }
            parts.push(select_accounts(table, &old, |a| !members.contains(a)));
        }
        parts.push(new_rows);
        let merged = concat_batches(&table.schema(), &parts).expect("batches share the table schema");
        if merged.num_rows() == 0 {
            store.delete(&path).await.map_err(|source| self.store_err(&path, source))?;
            return Ok(Written { files_written: 0, files_removed: 1, rows });
        }
        let bytes = encode_parquet(table, &sort_rows(table, &merged))
            .map_err(|message| WriteError::File { path: self.output.url_of(&path), message })?;
        self.put_atomic(&path, bytes).await?;
        Ok(Written { files_written: 1, files_removed: 0, rows })
    }

    /// Makes `bytes` the whole content of `path`, at once. On S3 a put is atomic on its own;
    /// on local disk the file is written under `_wxcube/staging/`, made durable and renamed
    /// into place ([`durable::publish`]), in one blocking task.
    pub(crate) async fn put_atomic(&self, path: &Path, bytes: Bytes) -> Result<(), WriteError> {
        let Some(dest) = self.output.local_path(path) else {
            let store = &self.output.store;
            store.put(path, PutPayload::from(bytes)).await.map_err(|source| self.store_err(path, source))?;
            return Ok(());
        };
        let n = self.unique.fetch_add(1, Ordering::Relaxed);
        let staged_path = layout::staging_dir(&self.output.root).join(format!("{}-{n}.tmp", std::process::id()));
        let staged = self.output.local_path(&staged_path).expect("a local output");
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(staged.parent().expect("the staging folder"))?;
            durable::publish(&staged, &dest, &bytes)
        })
        .await
        .expect("a file write panicked")
        .map_err(|e| WriteError::File { path: self.output.url_of(path), message: e.to_string() })
    }
}

/// The rows of `batch` whose appid passes `keep`.
fn select_accounts(table: &Table, batch: &RecordBatch, keep: impl Fn(&str) -> bool) -> RecordBatch {
    let appids =
        batch.column(table.appid_column()).as_any().downcast_ref::<StringArray>().expect("appid is a string column");
    let mask: BooleanArray = appids.iter().map(|a| Some(a.is_some_and(&keep))).collect();
    filter_record_batch(batch, &mask).expect("mask has the batch's length")
}

/// Whether two batches hold the same rows, ignoring order and `extracted_at`.
fn same_values(table: &Table, a: &RecordBatch, b: &RecordBatch) -> bool {
    if a.num_rows() != b.num_rows() {
        return false;
    }
    let values: Vec<usize> =
        (0..table.columns.len()).filter(|&i| table.columns[i].source != crate::registry::Source::ExtractedAt).collect();
    let project = |batch: &RecordBatch| sort_rows(table, batch).project(&values).expect("indices are the table's");
    project(a) == project(b)
}

/// Sorts by appid, then the table's row key.
fn sort_rows(table: &Table, batch: &RecordBatch) -> RecordBatch {
    let keys: Vec<SortColumn> = std::iter::once(table.appid_column())
        .chain(table.row_key.iter().copied())
        .map(|i| SortColumn { values: batch.column(i).clone(), options: None })
        .collect();
    let indices = lexsort_to_indices(&keys, None).expect("sort keys are primitive or string columns");
    take_record_batch(batch, &indices).expect("indices come from the batch")
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        // The parquet crate writes uncompressed by default; ZSTD is read by every engine.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid level")))
        .set_created_by(concat!("wxcube ", env!("CARGO_PKG_VERSION")).to_string())
        .build()
}

/// Encodes one batch as a Parquet file.
pub fn encode_parquet(table: &Table, batch: &RecordBatch) -> Result<Bytes, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut writer =
        ArrowWriter::try_new(&mut buf, table.schema(), Some(writer_properties())).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// Reads a whole Parquet file, which must have the table's schema.
pub fn read_parquet(table: &Table, bytes: Bytes) -> Result<RecordBatch, String> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| format!("not a readable Parquet file ({e})"))?;
    if builder.schema().fields() != table.schema().fields() {
        return Err(format!(
            "existing file has a different schema than table {} declares: move it away or write to a new output",
            table.name
        ));
    }
    let batches = builder
        .build()
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("corrupt Parquet file ({e})"))?;
    concat_batches(&table.schema(), &batches).map_err(|e| e.to_string())
}
