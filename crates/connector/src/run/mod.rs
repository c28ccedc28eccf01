//! The run: plan → extract → normalize → write, window by window, for every account.
//!
//! A *unit* is one (table, window) of the plan, fetched for all of the run's accounts that need
//! it (all of them, or, in incremental runs, those whose state starts at the same day) and then
//! written, date by date. Units run concurrently, but only a few at a time, so memory
//! holds a few windows of all accounts, whatever the range. A failure is confined to its
//! (table, account, window) cell — or to the account or table it concerns — and the rest of the
//! run carries on; the summary lists every failed cell.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use futures::StreamExt;
use tokio::sync::watch;
use url::Url;

use crate::account::{Account, AppId};
use crate::dates::DateRange;
use crate::extract::errors::{CallError, Class, Scope};
use crate::extract::http::ApiClient;
use crate::extract::retry::RetryPolicy;
use crate::extract::{AccountSession, Extractor, Fetched};
use crate::normalize::{self, Counters, Row};
use crate::plan::Window;
use crate::progress::Progress;
use crate::shard::Shard;
use crate::summary::{AccountSummary, FailedCell, RunRecord, Summary, TableSummary};
use crate::write::lease::{Claim, Leases, RunId};
use crate::write::store::{Output, OutputSpec};
use crate::write::{BucketWrite, Dataset, Format, WriteError, Written};
use wxcube_registry::Table;

mod incremental;
mod units;

pub use units::{Prepared, Unit, prepare};

/// (Account, window) pairs held in memory at once, across the units in flight.
const UNIT_ACCOUNTS_IN_FLIGHT: usize = 2048;

/// Which days a run covers.
#[derive(Clone, Copy, Debug)]
pub enum RangeSpec {
    /// `--begin`/`--end`.
    Fixed(DateRange),
    /// `--incremental`: per (account, table), from the day after the state's last complete day
    /// minus `lookback_days`, or from `start` without state, to `end` (by default the latest
    /// complete day).
    Incremental { start: Option<NaiveDate>, lookback_days: u32, end: NaiveDate },
}

/// A fully validated run: nothing here can be a usage error any more.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub tables: Vec<Arc<Table>>,
    pub range: RangeSpec,
    /// The latest complete Beijing day at the run's start.
    pub latest: NaiveDate,
    pub accounts: Vec<Account>,
    /// Requests in flight for one account.
    pub account_concurrency: usize,
    pub shard: Option<Shard>,
    pub dry_run: bool,
    /// Store every answer as received under `_wxcube/raw/`.
    pub keep_raw: bool,
    pub api_base: Url,
    pub timeout: Duration,
    /// Requests in flight, across accounts and tables.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub output: OutputSpec,
    pub buckets: Option<u32>,
    /// `--format`: `None` keeps an existing output's, and writes Parquet to a new one.
    pub format: Option<Format>,
    /// How long a lease outlives its last renewal (`--lease-secs`).
    pub lease: Duration,
    /// How long to wait for another run's lease on the same pairs (`--lease-wait-secs`).
    pub lease_wait: Duration,
}

/// Failures that stop the run before any data request: configuration, not data (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Credentials(String),
    /// Another live run works on the same (account, table) pairs.
    #[error("{0}")]
    LeaseHeld(String),
    /// An incremental run met an (account, table) it has never fetched, with no --start-date.
    #[error("--incremental: {appid} has no state for {table} yet: give --start-date for its first run")]
    NoState { appid: String, table: String },
}

impl From<WriteError> for RunError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::LeaseHeld(why) => RunError::LeaseHeld(why),
            other => RunError::Output(other.to_string()),
        }
    }
}

/// Per-table counters, shared by the units of the table.
#[derive(Default)]
struct TableStats {
    requests: AtomicU64,
    rows: AtomicU64,
    files_written: AtomicU64,
    out_of_window: AtomicU64,
    unknown_codes: AtomicU64,
    /// Undeclared fields the answers carried: name → rows.
    unknown_fields: Mutex<BTreeMap<String, u64>>,
}

/// An account during the run, and what has stopped for it.
struct Live {
    session: AccountSession,
    /// Rows written for this account.
    rows: AtomicU64,
}

impl Live {
    fn skip_reason(&self, table: &Table) -> Option<String> {
        self.session.skip_reason(table)
    }

    /// Stops the account or the table for it, as `scope` says. Returns false when an earlier
    /// failure already did: the same news is then not worth another error line.
    fn stop(&self, scope: Scope, table: &Table, why: &str) -> bool {
        match scope {
            Scope::Account => {
                let mut failed = self.session.failed.lock().unwrap();
                let news = failed.is_none();
                failed.get_or_insert_with(|| format!("skipped, account failed earlier: {why}"));
                news
            }
            Scope::TableForAccount => {
                let mut stopped = self.session.stopped_tables.lock().unwrap();
                let news = !stopped.contains_key(&table.name);
                stopped.entry(table.name.clone()).or_insert_with(|| format!("skipped, table stopped earlier: {why}"));
                news
            }
            Scope::FamilyForAccount => {
                let mut stopped = self.session.stopped_families.lock().unwrap();
                let news = !stopped.contains_key(&table.family);
                stopped
                    .entry(table.family)
                    .or_insert_with(|| format!("skipped, the {} family stopped earlier: {why}", table.family));
                news
            }
            Scope::Cell => true,
        }
    }
}

struct Context {
    extractor: Extractor,
    dataset: Arc<Dataset>,
    leases: Leases,
    accounts: Vec<Live>,
    stats: HashMap<String, TableStats>,
    failures: Mutex<Vec<FailedCell>>,
    /// Set when a write failed even after the store's own retries: the store is down or
    /// refusing, so later windows are not fetched (each would cost API quota for nothing).
    store_failed: Mutex<Option<String>>,
    extracted_at_micros: i64,
    keep_raw: bool,
    progress: Progress,
    rows: AtomicU64,
    /// Undeclared fields already reported in the log.
    unknown_fields_seen: Mutex<BTreeSet<String>>,
    /// Windows whose answer said `is_delay: true`, per (appid, table): written, but not final,
    /// so incremental state stays before them and the next run fetches them again.
    delayed: Mutex<Vec<(AppId, String, DateRange)>>,
}

impl Context {
    /// Records a failed cell and logs it.
    fn fail(&self, table: &Table, appid: &AppId, window: DateRange, error: String) {
        let error = crate::text::one_line(&error);
        tracing::error!(appid = %appid, table = %table, window = %window, "{error}");
        self.record(table, appid, window, error);
    }

    /// Records a cell not attempted because of an earlier failure, already logged once.
    fn skip(&self, table: &Table, appid: &AppId, window: DateRange, why: String) {
        tracing::debug!(appid = %appid, table = %table, window = %window, "{why}");
        self.record(table, appid, window, why);
    }

    fn record(&self, table: &Table, appid: &AppId, window: DateRange, error: String) {
        self.progress.cell_done(self.rows.load(Ordering::Relaxed));
        self.failures.lock().unwrap().push(FailedCell {
            table: table.name.clone(),
            appid: appid.to_string(),
            begin: window.begin().to_string(),
            end: window.end().to_string(),
            error,
        });
    }
}

/// Runs the extraction and returns its summary. Errors are configuration problems found before
/// any data was requested. When `stop` turns true (SIGTERM, Ctrl-C), no new request is sent,
/// writes under way finish, and the summary reports the run as stopped.
pub async fn run(config: RunConfig, stop: watch::Receiver<bool>) -> Result<Summary, RunError> {
    let started = Instant::now();
    let run_id = RunId::new();
    // plan: what the output holds, and the windows to fetch for whom.
    let prepared = prepare(&config).await?;
    let units = prepared.units(&config)?;
    // Credentials, output and leases: everything that can refuse the run before any data.
    let ctx = Arc::new(start(&config, &prepared, &units, stop, &run_id).await?);
    // fetch and write, window by window.
    fetch_and_write(&ctx, &config, &prepared, &units, &run_id).await;
    // state, the run's record, the summary.
    let ctx = Arc::into_inner(ctx).expect("every unit has finished");
    Ok(finish(ctx, &config, &prepared, &units, run_id, started).await)
}

/// Gets every account's token, opens the output and takes the leases: the run's context.
async fn start(
    config: &RunConfig,
    prepared: &Prepared,
    units: &[Unit],
    stop: watch::Receiver<bool>,
    run_id: &RunId,
) -> Result<Context, RunError> {
    let extracted_at_micros = Utc::now().timestamp_micros();
    let api = Arc::new(ApiClient::new(config.api_base.clone(), config.timeout).map_err(RunError::Output)?);
    let extractor = Extractor::new(api, config.retry, config.concurrency, stop);
    // Credentials first: a refused secret must leave no trace, not even an empty output.
    let accounts = preflight(&extractor, &prepared.accounts, config.account_concurrency).await?;
    let output = match &prepared.existing {
        Some(output) => output.clone(),
        None => Output::open(&config.output).map_err(RunError::Output)?,
    };
    let dataset = Arc::new(Dataset::open(output, Some(prepared.buckets), config.format).await?.for_run(run_id));
    dataset.open_tables(&config.tables).await?;
    let claim = claim(config, &dataset, &accounts, run_id);
    let leases = match dataset.format() {
        // Delta tables order their writers by the protocol: no lease is taken.
        Format::Delta => Leases::none(dataset.clone(), claim),
        Format::Parquet => dataset.lease(claim).await?,
    };
    let stats = config.tables.iter().map(|t| (t.name.clone(), TableStats::default())).collect();
    Ok(Context {
        extractor,
        dataset,
        leases,
        accounts,
        stats,
        failures: Mutex::new(Vec::new()),
        store_failed: Mutex::new(None),
        extracted_at_micros,
        keep_raw: config.keep_raw,
        progress: Progress::start(units.iter().map(|u| u.members.len() as u64).sum()),
        rows: AtomicU64::new(0),
        unknown_fields_seen: Mutex::default(),
        delayed: Mutex::default(),
    })
}

/// Runs every unit (fetch a window for its accounts, then write it), a bounded number at once.
async fn fetch_and_write(ctx: &Arc<Context>, config: &RunConfig, prepared: &Prepared, units: &[Unit], run_id: &RunId) {
    // Units in flight: enough that requests keep flowing while other units write (a unit's
    // files wait for a group commit on disk, or S3 round trips), few enough that memory stays
    // bounded — each unit holds one window of its accounts' rows until written. Units that
    // write the same file wait for each other there (see `write::commit`). With few accounts
    // a unit holds little, and most units in flight wait for a group commit: 16 per request
    // slot rather than 4 made one account's six years on disk about 3% faster.
    let in_flight = (UNIT_ACCOUNTS_IN_FLIGHT / prepared.accounts.len().max(1)).clamp(4, 16 * config.concurrency.max(2));
    tracing::info!(run = %run_id, tables = config.tables.len(), accounts = prepared.accounts.len(), requests = units.iter().map(|u| u.members.len()).sum::<usize>(), latest = %config.latest, "starting extraction");
    futures::stream::iter(units.to_vec())
        .map(|unit| tokio::spawn(run_unit(ctx.clone(), unit)))
        .buffer_unordered(in_flight)
        .for_each(|joined| async move {
            if let Err(e) = joined {
                // A panic in a unit is a bug; surface it rather than report a clean run.
                std::panic::resume_unwind(e.into_panic());
            }
        })
        .await;
    ctx.progress.finish();
}

/// What this run leases: its tables, for its accounts, bucket by bucket.
fn claim(config: &RunConfig, dataset: &Dataset, accounts: &[Live], run: &RunId) -> Claim {
    let mut by_bucket: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for live in accounts {
        by_bucket.entry(dataset.bucket_of(&live.session.appid)).or_default().insert(live.session.appid.to_string());
    }
    Claim {
        run: run.clone(),
        command: "extract",
        tables: config.tables.iter().map(|t| t.name.clone()).collect(),
        accounts: by_bucket,
        duration: config.lease,
        wait: config.lease_wait,
    }
}

/// After the last unit: the incremental state, the run's record, the leases given back, and
/// the summary.
async fn finish(
    ctx: Context,
    config: &RunConfig,
    prepared: &Prepared,
    units: &[Unit],
    run_id: RunId,
    started: Instant,
) -> Summary {
    let versions = commit_delta(&ctx, config).await;
    let mut failed_cells = std::mem::take(&mut *ctx.failures.lock().unwrap());
    failed_cells.sort();
    if let RangeSpec::Incremental { .. } = config.range {
        incremental::save_state(&ctx, config, prepared, units, &failed_cells).await;
    }
    let planned = planned_per_table(config, units);
    let mut tables = BTreeMap::new();
    for t in &config.tables {
        let s = &ctx.stats[&t.name];
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        tables.insert(
            t.name.clone(),
            TableSummary {
                planned: planned[&t.name],
                requests: get(&s.requests),
                rows: get(&s.rows),
                files_written: get(&s.files_written),
                failures: failed_cells.iter().filter(|c| c.table == t.name).count() as u64,
                out_of_window_rows: get(&s.out_of_window),
                unknown_codes: get(&s.unknown_codes),
                unknown_fields: s.unknown_fields.lock().unwrap().clone(),
                delta_version: versions.get(&t.name).copied(),
            },
        );
    }
    let per_account = ctx.accounts.iter().map(|l| account_summary(l, &failed_cells)).collect();
    let stopped = ctx.extractor.stopped();
    let mut summary = summary(config, units, tables, per_account, &failed_cells, stopped, started);
    summary.run = Some(run_id.to_string());
    let record = serde_json::to_vec(&RunRecord { summary: &summary, failed_cells: &failed_cells })
        .expect("a run record serialises");
    match ctx.dataset.runs().put(run_id.as_str(), record.into()).await {
        Ok(url) => summary.run_record = Some(url),
        Err(e) => tracing::warn!("cannot keep the run's record (the summary line has the grouped failures): {e}"),
    }
    ctx.leases.release().await;
    summary
}

/// Delta tables: commits what still waits, counts what the run's commits wrote, and fails the
/// cells of a commit that could not be made; returns each table's version.
async fn commit_delta(ctx: &Context, config: &RunConfig) -> BTreeMap<String, u64> {
    let Some(outcomes) = ctx.dataset.flush(&config.tables).await else { return BTreeMap::new() };
    for (table, written) in &outcomes.committed {
        let s = &ctx.stats[table];
        s.files_written.fetch_add(written.files_written, Ordering::Relaxed);
        s.rows.fetch_add(written.rows, Ordering::Relaxed);
    }
    let mut failures = ctx.failures.lock().unwrap();
    for (table, date, accounts, why) in outcomes.failed {
        // Logged once by the commit; one cell per account and day.
        for appid in accounts {
            failures.push(FailedCell {
                table: table.clone(),
                appid,
                begin: date.to_string(),
                end: date.to_string(),
                error: crate::text::one_line(&why),
            });
        }
    }
    outcomes.versions
}

fn account_summary(l: &Live, failed_cells: &[FailedCell]) -> AccountSummary {
    let mine: Vec<&FailedCell> = failed_cells.iter().filter(|c| c.appid == l.session.appid.as_str()).collect();
    AccountSummary {
        appid: l.session.appid.to_string(),
        status: if mine.is_empty() {
            "ok"
        } else if l.rows.load(Ordering::Relaxed) == 0 {
            "failed"
        } else {
            "partial"
        },
        rows: l.rows.load(Ordering::Relaxed),
        failures: mine.len() as u64,
        error: mine
            .iter()
            .find(|c| !c.error.starts_with("skipped") && !c.error.starts_with("not fetched"))
            .or(mine.first())
            .map(|c| c.error.clone()),
    }
}

/// Requests planned per table (windows × their accounts).
fn planned_per_table(config: &RunConfig, units: &[Unit]) -> BTreeMap<String, u64> {
    let mut planned: BTreeMap<String, u64> = config.tables.iter().map(|t| (t.name.clone(), 0)).collect();
    for u in units {
        *planned.get_mut(&u.table.name).expect("unit tables are the run's") += u.members.len() as u64;
    }
    planned
}

fn summary(
    config: &RunConfig,
    units: &[Unit],
    tables: BTreeMap<String, TableSummary>,
    per_account: Vec<AccountSummary>,
    failed_cells: &[FailedCell],
    stopped: bool,
    started: Instant,
) -> Summary {
    let failures = failed_cells.len() as u64;
    let period_days = |name: &str| wxcube_registry::find(name).map_or(1, |t| t.period.longest_days());
    let (failed, failed_groups_omitted) = crate::summary::group_failures(failed_cells, period_days);
    let (begin, end) = match config.range {
        RangeSpec::Fixed(r) => (r.begin().to_string(), r.end().to_string()),
        RangeSpec::Incremental { end, .. } => {
            let first = units.iter().map(|u| u.window.range.begin()).min();
            (first.map_or_else(|| "none".to_string(), |d| d.to_string()), end.to_string())
        }
    };
    Summary {
        wxcube: env!("CARGO_PKG_VERSION"),
        status: if stopped {
            "stopped"
        } else if failures == 0 {
            "ok"
        } else {
            "partial"
        },
        stopped,
        dry_run: config.dry_run,
        output: config.output.to_string(),
        begin,
        end,
        shard: config.shard.map(|s| s.to_string()),
        accounts: per_account.len(),
        requests: tables.values().map(|t| t.requests).sum(),
        rows: tables.values().map(|t| t.rows).sum(),
        files_written: tables.values().map(|t| t.files_written).sum(),
        failures,
        elapsed_ms: started.elapsed().as_millis() as u64,
        peak_rss_kb: crate::summary::peak_rss_kb(),
        tables,
        per_account,
        failed,
        failed_groups_omitted,
        run: None,
        run_record: None,
    }
}

/// Plans without calling anything: what `--dry-run` prints.
pub async fn dry_run(config: &RunConfig) -> Result<(Vec<Unit>, Summary), RunError> {
    let prepared = prepare(config).await?;
    let units = prepared.units(config)?;
    let planned = planned_per_table(config, &units);
    let tables = planned.into_iter().map(|(t, planned)| (t, TableSummary { planned, ..Default::default() })).collect();
    let per_account = prepared
        .accounts
        .iter()
        .map(|a| AccountSummary { appid: a.appid.to_string(), status: "ok", rows: 0, failures: 0, error: None })
        .collect();
    let summary = summary(config, &units, tables, per_account, &[], false, Instant::now());
    Ok((units, summary))
}

/// Gets every account's token before any data request. An account whose credentials are
/// refused fails as a whole; if every account is refused, the run is a configuration error.
async fn preflight(extractor: &Extractor, accounts: &[Account], per_account: usize) -> Result<Vec<Live>, RunError> {
    let live: Vec<Live> = accounts
        .iter()
        .map(|a| Live { session: extractor.session(a.clone(), per_account), rows: AtomicU64::new(0) })
        .collect();
    let results = futures::future::join_all(live.iter().map(|l| l.session.tokens.get())).await;
    let mut refused = 0;
    for (l, result) in live.iter().zip(results) {
        if let Err(e) = result {
            if matches!(&e, CallError::Api(_)) && matches!(e.class(), Class::Permanent(_)) {
                refused += 1;
            }
            *l.session.failed.lock().unwrap() = Some(format!("access token for {}: {e}", l.session.appid));
        }
    }
    if !live.is_empty() && refused == live.len() {
        let reasons: Vec<String> = live.iter().filter_map(|l| l.session.failed.lock().unwrap().clone()).collect();
        return Err(RunError::Credentials(reasons.join("; ")));
    }
    for l in &live {
        if let Some(why) = l.session.failed.lock().unwrap().as_ref() {
            tracing::error!(appid = %l.session.appid, "{why}");
        }
    }
    Ok(live)
}

/// Fetches one window for its accounts, then writes it.
async fn run_unit(ctx: Arc<Context>, unit: Unit) {
    let Unit { table, window, members } = unit;
    let members: Vec<&Live> = members.iter().map(|&i| &ctx.accounts[i]).collect();
    let store_failed = ctx.store_failed.lock().unwrap().clone();
    let skip = match store_failed {
        Some(why) => Some(format!("skipped, the output store failed earlier: {why}")),
        None if ctx.extractor.stopped() => Some("not fetched: the run was stopped".to_string()),
        None => None,
    };
    if let Some(why) = skip {
        for live in &members {
            ctx.skip(&table, &live.session.appid, window.range, why.clone());
        }
        return;
    }
    let fetches = members.iter().map(|live| {
        let (ctx, table, window) = (&ctx, &table, &window);
        async move {
            let lease = ctx.leases.check(ctx.dataset.bucket_of(&live.session.appid)).err();
            if let Some(why) = lease.or_else(|| live.skip_reason(table)) {
                ctx.skip(table, &live.session.appid, window.range, why);
                return None;
            }
            match fetch_rows(ctx, live, table, window).await {
                Ok(rows) => Some((*live, rows)),
                Err(CellError { why, news: true }) => {
                    ctx.fail(table, &live.session.appid, window.range, why);
                    None
                }
                Err(CellError { why, news: false }) => {
                    ctx.skip(table, &live.session.appid, window.range, why);
                    None
                }
            }
        }
    });
    let fetched: Vec<(&Live, Vec<Row>)> = futures::future::join_all(fetches).await.into_iter().flatten().collect();
    if fetched.is_empty() {
        return;
    }
    let written = write_window(&ctx, &table, &window, &fetched).await;
    for (live, rows) in fetched.iter().filter(|(l, _)| written.contains(&l.session.appid)) {
        live.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        let total = ctx.rows.fetch_add(rows.len() as u64, Ordering::Relaxed) + rows.len() as u64;
        ctx.progress.cell_done(total);
    }
}

/// Writes one fetched window, all its dates at once (each waits for a group commit on local
/// disk, or a round trip on S3: one after another they would add up); returns the accounts
/// whose cell is now written whole. Every other account's cell has been failed with the reason.
async fn write_window(ctx: &Context, table: &Table, window: &Window, fetched: &[(&Live, Vec<Row>)]) -> BTreeSet<AppId> {
    let stats = &ctx.stats[&table.name];
    let mut accounts: BTreeSet<AppId> = BTreeSet::new();
    for (live, _) in fetched {
        // A bucket whose lease this run lost is not written any more.
        match ctx.leases.check(ctx.dataset.bucket_of(&live.session.appid)) {
            Ok(()) => accounts.insert(live.session.appid.clone()),
            Err(why) => {
                ctx.fail(table, &live.session.appid, window.range, why);
                false
            }
        };
    }
    if accounts.is_empty() {
        return accounts;
    }
    // Every period the window asked for is replaced, rows or not; so is any other in-window
    // date the API chose to send.
    let mut by_date: BTreeMap<NaiveDate, Vec<(&str, &Row)>> = window.periods.iter().map(|d| (*d, Vec::new())).collect();
    for (live, rows) in fetched.iter().filter(|(l, _)| accounts.contains(&l.session.appid)) {
        for row in rows {
            by_date.entry(row.ref_date).or_default().push((live.session.appid.as_str(), row));
        }
    }
    let writes = by_date.iter().map(|(date, rows)| {
        let batch = normalize::to_batch(table, rows, ctx.extracted_at_micros);
        let accounts = &accounts;
        async move { ctx.dataset.files().replace(table, *date, accounts, &batch).await }
    });
    let results: Vec<BucketWrite> = futures::future::join_all(writes).await.into_iter().flatten().collect();
    let mut failed: BTreeMap<u32, String> = BTreeMap::new();
    for BucketWrite { bucket, result } in results {
        match result {
            Ok(Written { files_written, rows }) => {
                stats.files_written.fetch_add(files_written, Ordering::Relaxed);
                stats.rows.fetch_add(rows, Ordering::Relaxed);
            }
            Err(e) if e.is_outage() => {
                // The store is failing: later windows are not fetched, and this one is reported
                // failed (whatever of it was written) so that a re-run rewrites it whole.
                let why = format!("write {}: {e}", table.name);
                ctx.store_failed.lock().unwrap().get_or_insert_with(|| why.clone());
                for appid in &accounts {
                    ctx.fail(table, appid, window.range, why.clone());
                }
                return BTreeSet::new();
            }
            // A file that cannot be merged with fails the cells of its accounts only.
            Err(e) => {
                failed.entry(bucket).or_insert_with(|| format!("write {}: {e}", table.name));
            }
        }
    }
    for (bucket, why) in failed {
        for appid in accounts.clone().iter().filter(|a| ctx.dataset.bucket_of(a) == bucket) {
            ctx.fail(table, appid, window.range, why.clone());
            accounts.remove(appid);
        }
    }
    accounts
}

/// Why a cell failed; `news` is false when an earlier failure of the account (or of the table
/// for it) already said the same, so it is recorded without another error line.
struct CellError {
    why: String,
    news: bool,
}

/// Fetches and decodes one cell.
async fn fetch_rows(ctx: &Context, live: &Live, table: &Table, window: &Window) -> Result<Vec<Row>, CellError> {
    let stats = &ctx.stats[&table.name];
    let fetched = ctx.extractor.fetch_periods(&live.session, table, &window.periods, &stats.requests).await.map_err(
        |failure| {
            let mut why = format!("{}: {}", table.endpoint, failure.error);
            if failure.scope == Scope::FamilyForAccount && !matches!(failure.error, CallError::Skipped { .. }) {
                let set = table.family.permission_set().map(|n| format!(" (permission set {n})")).unwrap_or_default();
                why.push_str(&format!(
                    "; the {} family{set} is not authorised for this account, its other families go on",
                    table.family
                ));
            }
            let news = live.stop(failure.scope, table, &why) && !matches!(failure.error, CallError::Stopped);
            CellError { why, news }
        },
    )?;
    let mut rows = Vec::new();
    for Fetched { range, body } in fetched {
        if ctx.keep_raw {
            ctx.dataset.raw().put(table, &live.session.appid, range, &body).await.map_err(|e| CellError {
                why: format!("{}: keeping the raw answer: {e}", table.endpoint),
                news: true,
            })?;
        }
        let mut counters = Counters::default();
        let decoded = normalize::decode(table, &body, range, &mut counters)
            .map_err(|e| CellError { why: format!("{}: {e}", table.endpoint), news: true })?;
        note_unknown_fields(ctx, table, &counters.unknown_fields);
        rows.extend(decoded);
        if counters.out_of_window > 0 {
            tracing::warn!(appid = %live.session.appid, table = %table, window = %range, rows = counters.out_of_window, "the API sent rows dated outside the window; they were dropped");
        }
        stats.out_of_window.fetch_add(counters.out_of_window, Ordering::Relaxed);
        stats.unknown_codes.fetch_add(counters.unknown_codes, Ordering::Relaxed);
        if counters.delayed {
            tracing::info!(appid = %live.session.appid, table = %table, window = %range, "the API says these figures are not final yet (is_delay): written, and fetched again by the next incremental run");
            ctx.delayed.lock().unwrap().push((live.session.appid.clone(), table.name.clone(), range));
        }
    }
    Ok(rows)
}

/// Counts the fields an answer carried that the table does not declare, and says so once per
/// run and field: wxcube does not write them, and whoever reads the summary should know.
fn note_unknown_fields(ctx: &Context, table: &Table, fields: &[(String, u64)]) {
    if fields.is_empty() {
        return;
    }
    let stats = &ctx.stats[&table.name];
    let mut counts = stats.unknown_fields.lock().unwrap();
    for (name, rows) in fields {
        *counts.entry(name.clone()).or_insert(0) += rows;
        if ctx.unknown_fields_seen.lock().unwrap().insert(name.clone()) {
            tracing::warn!(table = %table, field = %name, "{} answers carry a field no table declares; it is not written (each table's unknown_fields in the summary counts it)", table.endpoint);
        }
    }
}
