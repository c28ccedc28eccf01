//! `wxcube rebuild`: derive the tables again from the raw answers `--keep-raw` stored, without
//! calling the API — after a label or normalization change, or to recover damaged files.
//!
//! Works a week at a time (bounded memory whatever the history): for each table, the stored
//! answers that overlap the week are decoded with the same normalize stage as a run, the newest
//! answer wins for each (account, date) where windows overlap, and each date is written
//! through the same merge-on-write as a run. Files whose rows do not change are left as they
//! are.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::account::AppId;
use crate::dates::DateRange;
use crate::normalize::{self, Counters, Row};
use crate::plan;
use crate::summary::TableSummary;
use crate::write::lease::{Claim, LeaseCheck, Leases, RunId};
use crate::write::raw::RawObject;
use crate::write::store::{Output, OutputSpec};
use crate::write::{BucketWrite, Dataset, Format, WriteError, Written};
use wxcube_registry::Table;

/// Days decoded at once.
const CHUNK_DAYS: u64 = 7;

/// What to rebuild, and how to meet other runs.
pub struct RebuildRequest {
    pub output: OutputSpec,
    pub tables: Vec<Arc<Table>>,
    /// How long the rebuild's lease outlives its last renewal.
    pub lease: Duration,
    /// How long to wait for another run's lease on the same accounts and tables.
    pub lease_wait: Duration,
    /// `--format`: must be the output's, if given.
    pub format: Option<Format>,
}

/// Why a rebuild could not be done, or not finished.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Nothing was attempted: no such output, no raw answers' dataset, another run holds it.
    #[error("{0}")]
    Refused(String),
    /// The output store failed part-way; what was written is whole.
    #[error(transparent)]
    Write(WriteError),
    #[error("writing the report: {0}")]
    Report(#[from] std::io::Error),
}

impl From<WriteError> for RebuildError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::LeaseHeld(why) | WriteError::Settings(why) => RebuildError::Refused(why),
            other => RebuildError::Write(other),
        }
    }
}

/// Rebuilds the tables of `request` and writes a line per table and the JSON summary to `out`;
/// returns the number of raw answers or files that could not be used (the rest is written).
pub async fn rebuild(request: RebuildRequest, out: &mut impl Write) -> Result<u64, RebuildError> {
    let started = Instant::now();
    let RebuildRequest { output: spec, tables, lease, lease_wait, format } = request;
    let Some(output) = Output::open_if_exists(&spec).map_err(RebuildError::Refused)? else {
        return Err(RebuildError::Refused(format!(
            "{spec} does not exist: rebuild works on an output written with --keep-raw"
        )));
    };
    if Dataset::read_settings(&output).await?.is_none() {
        return Err(RebuildError::Refused(format!("{spec} is not a wxcube output (no _wxcube/dataset.json)")));
    }
    let run = RunId::new();
    let dataset = Arc::new(Dataset::open(output, None, format).await?.for_run(&run));
    dataset.open_tables(&tables).await?;
    // A rebuild rewrites the files of every account with stored answers: it leases them like a
    // run, so a scheduled run of the same accounts and tables is not fetching them meanwhile.
    let mut accounts: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for table in &tables {
        for appid in dataset.raw().accounts(table).await? {
            accounts.entry(dataset.bucket_of(&appid)).or_default().insert(appid.to_string());
        }
    }
    let claim = Claim {
        run,
        command: "rebuild",
        tables: tables.iter().map(|t| t.name.clone()).collect(),
        accounts,
        duration: lease,
        wait: lease_wait,
    };
    let leases = match dataset.format() {
        // Delta tables order their writers by the protocol: no lease is taken.
        Format::Delta => Leases::none(dataset.clone(), claim),
        Format::Parquet => dataset.lease(claim).await?,
    };
    let extracted_at = Utc::now().timestamp_micros();
    let mut summary = BTreeMap::new();
    let mut failures = 0u64;
    // The tables are rebuilt side by side: each has its own files, and their writes together
    // fill the group commits of a local output (see `write::group_commit`).
    let checker = leases.checker();
    let rebuilt = futures::future::join_all(tables.iter().map(|table| {
        let (dataset, checker) = (&dataset, &checker);
        async move {
            let objects = dataset.raw().list(table).await?;
            let (figures, failed) = rebuild_table(dataset, checker, table, &objects, extracted_at).await?;
            Ok::<_, WriteError>((figures, failed, objects.len()))
        }
    }))
    .await;
    // Delta tables: what still waits is committed; rows and files count once committed.
    let commits = dataset.flush(&tables).await.unwrap_or_default();
    let mut outcome = Ok(());
    for (table, result) in tables.iter().zip(rebuilt) {
        let (mut figures, mut failed, answers) = match result {
            Ok(done) => done,
            Err(e) => {
                outcome = outcome.and(Err(e));
                continue;
            }
        };
        if let Some(written) = commits.committed.get(&table.name) {
            add(&mut figures, *written);
        }
        failed +=
            commits.failed.iter().filter(|(t, ..)| *t == table.name).map(|(_, _, a, _)| a.len() as u64).sum::<u64>();
        figures.delta_version = commits.versions.get(&table.name).copied();
        writeln!(
            out,
            "  {:<24} {:>7} rows  {:>5} file(s) written  from {answers} raw answer(s)",
            table.name, figures.rows, figures.files_written
        )?;
        failures += failed;
        summary.insert(table.name.clone(), figures);
    }
    leases.release().await;
    outcome?;
    let line = serde_json::json!({
        "wxcube": env!("CARGO_PKG_VERSION"),
        "command": "rebuild",
        "status": if failures == 0 { "ok" } else { "partial" },
        "output": spec.to_string(),
        "rows": summary.values().map(|t: &TableSummary| t.rows).sum::<u64>(),
        "files_written": summary.values().map(|t| t.files_written).sum::<u64>(),
        "failures": failures,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "peak_rss_kb": crate::summary::peak_rss_kb(),
        "tables": summary,
    });
    writeln!(out, "{line}")?;
    Ok(failures)
}

/// Raw answers fetched and decoded at once, and dates written at once: both are CPU-bound
/// (decompress, parse; sort, encode), so they run as separate tasks on every core.
const PARALLEL: usize = 8;

/// What one stored answer gave: the periods it covered and its rows, or why it is unusable.
type Decoded = Result<(Vec<NaiveDate>, Vec<Row>), String>;

/// Rebuilds one table; returns its figures and the number of answers and files that could not
/// be used (a bad bucket file fails its accounts' dates, the rebuild goes on).
///
/// Chunk by chunk: the answers overlapping the chunk are decoded in parallel (results kept in
/// the answers' order, so the newest still wins), then the chunk's dates are handed to writer
/// tasks that run while the next chunk is decoded. At most two chunks are held at once.
async fn rebuild_table(
    dataset: &Arc<Dataset>,
    leases: &LeaseCheck,
    table: &Arc<Table>,
    objects: &[RawObject],
    extracted_at: i64,
) -> Result<(TableSummary, u64), WriteError> {
    let mut figures = TableSummary::default();
    let mut failed = 0;
    let (Some(first), Some(last)) =
        (objects.iter().map(|o| o.range.begin()).min(), objects.iter().map(|o| o.range.end()).max())
    else {
        return Ok((figures, 0));
    };
    let mut writing: Vec<JoinHandle<Result<(Written, u64), WriteError>>> = Vec::new();
    let mut start = first;
    while start <= last {
        let chunk = DateRange::new(start, (start + Days::new(CHUNK_DAYS - 1)).min(last)).expect("start <= last");
        let (cells, unusable) = read_chunk(dataset, table, objects, chunk).await?;
        failed += unusable;
        // The previous chunk's writes end before this chunk's start: memory stays at two chunks.
        for written in futures::future::join_all(writing.drain(..)).await {
            let (written, bad) = written.expect("a write task panicked")?;
            add(&mut figures, written);
            failed += bad;
        }
        writing = write_chunk(dataset, leases, table, cells, extracted_at);
        start = chunk.end() + Days::new(1);
    }
    for written in futures::future::join_all(writing).await {
        let (written, bad) = written.expect("a write task panicked")?;
        add(&mut figures, written);
        failed += bad;
    }
    Ok((figures, failed))
}

/// (date, appid) → rows of one chunk of days.
type Cells = BTreeMap<NaiveDate, BTreeMap<AppId, Vec<Row>>>;

/// The stored answers overlapping `chunk`, decoded in parallel, as cells (the newest answer
/// wins where windows overlap); and how many answers could not be used.
async fn read_chunk(
    dataset: &Arc<Dataset>,
    table: &Arc<Table>,
    objects: &[RawObject],
    chunk: DateRange,
) -> Result<(Cells, u64), WriteError> {
    let overlapping: Vec<&RawObject> = objects.iter().filter(|o| o.range.intersect(&chunk).is_some()).collect();
    let decoded: Vec<Result<Decoded, WriteError>> = futures::stream::iter(overlapping.iter().map(|&object| {
        let (dataset, table, object) = (Arc::clone(dataset), Arc::clone(table), object.clone());
        tokio::spawn(async move {
            let body = dataset.raw().get(&object).await?;
            Ok(decode_answer(&table, &object, &body, chunk))
        })
    }))
    .buffered(PARALLEL)
    .map(|joined| joined.expect("a decode task panicked"))
    .collect()
    .await;
    let mut cells = Cells::new();
    let mut unusable = 0;
    // In the answers' order, oldest first, so that the newest is inserted last and wins.
    for (object, result) in overlapping.iter().zip(decoded) {
        let (periods, rows) = match result? {
            Ok(found) => found,
            Err(e) => {
                // Reported once, by the chunk where the answer starts.
                if object.range.begin() >= chunk.begin() {
                    tracing::error!(path = %object.path, "cannot use this raw answer: {e}");
                    unusable += 1;
                }
                continue;
            }
        };
        // The periods the answer covered, rows or not: a newer empty answer empties them.
        for day in periods {
            cells.entry(day).or_default().insert(object.appid.clone(), Vec::new());
        }
        let mut mine: BTreeMap<NaiveDate, Vec<Row>> = BTreeMap::new();
        for row in rows {
            mine.entry(row.ref_date).or_default().push(row);
        }
        for (day, rows) in mine {
            cells.entry(day).or_default().insert(object.appid.clone(), rows);
        }
    }
    Ok((cells, unusable))
}

/// Writes a chunk's dates as tasks, at most [`PARALLEL`] at once; each says what it wrote and
/// how many of its files could not be merged with.
fn write_chunk(
    dataset: &Arc<Dataset>,
    leases: &LeaseCheck,
    table: &Arc<Table>,
    cells: Cells,
    extracted_at: i64,
) -> Vec<JoinHandle<Result<(Written, u64), WriteError>>> {
    let limit = Arc::new(Semaphore::new(PARALLEL));
    cells
        .into_iter()
        .map(|(day, accounts)| {
            let (dataset, table, leases, limit) =
                (Arc::clone(dataset), Arc::clone(table), leases.clone(), Arc::clone(&limit));
            tokio::spawn(async move {
                let _slot = limit.acquire_owned().await.expect("the semaphore is never closed");
                write_day(&dataset, &leases, &table, day, accounts, extracted_at).await
            })
        })
        .collect()
}

/// Writes one date of the table for the accounts whose lease this rebuild still holds.
async fn write_day(
    dataset: &Dataset,
    leases: &LeaseCheck,
    table: &Table,
    day: NaiveDate,
    mut accounts: BTreeMap<AppId, Vec<Row>>,
    extracted_at: i64,
) -> Result<(Written, u64), WriteError> {
    let mut bad = 0;
    accounts.retain(|appid, _| match leases.check(dataset.bucket_of(appid)) {
        Ok(()) => true,
        Err(why) => {
            tracing::error!(appid = %appid, table = %table, date = %day, "{why}");
            bad += 1;
            false
        }
    });
    let pairs: Vec<(&str, &Row)> =
        accounts.iter().flat_map(|(a, rows)| rows.iter().map(move |r| (a.as_str(), r))).collect();
    let batch = normalize::to_batch(table, &pairs, extracted_at);
    let who: BTreeSet<AppId> = accounts.keys().cloned().collect();
    let mut written = Written::default();
    for BucketWrite { result, .. } in dataset.files().replace(table, day, &who, &batch).await {
        match result {
            Ok(w) => written += w,
            Err(e) if e.is_outage() => return Err(e),
            Err(e) => {
                tracing::error!(table = %table, date = %day, "{e}");
                bad += 1;
            }
        }
    }
    Ok((written, bad))
}

/// Decodes one stored answer for `chunk`: the periods it covered inside the chunk, and its rows
/// dated inside the chunk.
fn decode_answer(table: &Table, object: &RawObject, body: &[u8], chunk: DateRange) -> Decoded {
    let rows = normalize::decode(table, body, object.range, &mut Counters::default()).map_err(|e| e.to_string())?;
    let periods = plan::period_starts(table.period, object.range, NaiveDate::MAX)
        .into_iter()
        .filter(|d| chunk.contains(*d))
        .collect();
    Ok((periods, rows.into_iter().filter(|r| chunk.contains(r.ref_date)).collect()))
}

fn add(figures: &mut TableSummary, written: Written) {
    figures.rows += written.rows;
    figures.files_written += written.files_written;
}
