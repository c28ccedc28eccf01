//! Which (table, window) units a run fetches, for which accounts.
//!
//! Reads what the output already holds (settings, incremental state) without creating
//! anything, applies `--shard`, and groups accounts that start on the same day, so that a
//! thousand accounts on the same schedule share one plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Days;

use super::{RangeSpec, RunConfig, RunError};
use crate::account::Account;
use crate::dates::DateRange;
use crate::plan::{self, Window};
use crate::write::state::BucketState;
use crate::write::store::Output;
use crate::write::{Dataset, Settings};
use wxcube_registry::Table;

/// One (table, window) to fetch for some of the run's accounts, then write.
#[derive(Clone, Debug)]
pub struct Unit {
    pub table: Arc<Table>,
    pub window: Window,
    /// Indices into the run's accounts.
    pub members: Vec<usize>,
}

/// What is known before any request: the run's accounts (after `--shard`), the bucket count,
/// the output if it exists, and the incremental state of the run's buckets.
pub struct Prepared {
    pub accounts: Vec<Account>,
    pub buckets: u32,
    pub(super) existing: Option<Output>,
    states: BTreeMap<u32, BucketState>,
}

/// Reads what the output already holds (nothing is created) and applies `--shard`.
pub async fn prepare(config: &RunConfig) -> Result<Prepared, RunError> {
    let existing = Output::open_if_exists(&config.output).map_err(RunError::Output)?;
    let settings: Option<Settings> = match &existing {
        Some(output) => Dataset::read_settings(output).await.map_err(|e| RunError::Output(e.to_string()))?,
        None => None,
    };
    let buckets = match (&settings, config.buckets) {
        (Some(s), Some(b)) if s.buckets != b => {
            return Err(RunError::Output(format!(
                "{} was written with --buckets {}, not {b}: use --buckets {} or a new output",
                config.output, s.buckets, s.buckets
            )));
        }
        (Some(s), _) => s.buckets,
        // A new output: one file per partition, unless the run is a shard of N, which needs N
        // buckets so that the shards never share a file.
        (None, b) => b.unwrap_or_else(|| config.shard.map_or(crate::write::DEFAULT_BUCKETS, |s| s.count)),
    };
    if let (Some(s), Some(f)) = (&settings, config.format)
        && s.format != f
    {
        return Err(RunError::Output(format!(
            "{} holds {} tables, not {f}: use --format {} or a new output",
            config.output, s.format, s.format
        )));
    }
    let accounts: Vec<Account> = match config.shard {
        Some(shard) if shard.count > buckets => {
            return Err(RunError::Output(format!(
                "--shard {shard}: at most {buckets} shards for an output with {buckets} buckets"
            )));
        }
        Some(shard) => config.accounts.iter().filter(|a| shard.owns(&a.appid, buckets)).cloned().collect(),
        None => config.accounts.clone(),
    };
    let mut states = BTreeMap::new();
    if let (RangeSpec::Incremental { .. }, Some(output)) = (config.range, &existing)
        && settings.is_some()
    {
        let reader =
            Dataset::open(output.clone(), Some(buckets), None).await.map_err(|e| RunError::Output(e.to_string()))?;
        for a in &accounts {
            let bucket = crate::write::layout::bucket_of(&a.appid, buckets);
            if let std::collections::btree_map::Entry::Vacant(e) = states.entry(bucket) {
                e.insert(reader.state().load(bucket).await.map_err(|e| RunError::Output(e.to_string()))?);
            }
        }
    }
    Ok(Prepared { accounts, buckets, existing, states })
}

impl Prepared {
    /// The day each (account, table) starts from, and the range it covers.
    pub(super) fn range_of(
        &self,
        config: &RunConfig,
        account: &Account,
        table: &Table,
    ) -> Result<Option<DateRange>, RunError> {
        match config.range {
            RangeSpec::Fixed(range) => Ok(Some(range)),
            RangeSpec::Incremental { start, lookback_days, end } => {
                let bucket = crate::write::layout::bucket_of(&account.appid, self.buckets);
                let done = self.states.get(&bucket).and_then(|s| s.get(account.appid.as_str(), &table.name));
                // A table whose figures keep changing (an article's running totals) is fetched
                // again over its own look-back, if that is longer.
                let lookback = u64::from(lookback_days.max(table.lookback_days));
                let begin = match (done, start) {
                    (Some(p), _) => (p.through.0 + Days::new(1) - Days::new(lookback)).max(p.since.0),
                    (None, Some(start)) => start,
                    (None, None) => {
                        return Err(RunError::NoState { appid: account.appid.to_string(), table: table.name.clone() });
                    }
                };
                // Not clamped to the table's own floor: the planner skips the days before it,
                // and the state then records them as done (there is nothing to fetch there).
                Ok(DateRange::new(begin.max(crate::dates::DATA_FLOOR), end))
            }
        }
    }

    /// The run's units: per table, the accounts that start on the same day share windows.
    pub fn units(&self, config: &RunConfig) -> Result<Vec<Unit>, RunError> {
        let mut units = Vec::new();
        for table in &config.tables {
            let mut groups: BTreeMap<DateRange, Vec<usize>> = BTreeMap::new();
            for (i, account) in self.accounts.iter().enumerate() {
                if let Some(range) = self.range_of(config, account, table)? {
                    groups.entry(range).or_default().push(i);
                }
            }
            for (range, members) in groups {
                for window in plan::plan_table(table, range, config.latest) {
                    units.push(Unit { table: table.clone(), window, members: members.clone() });
                }
            }
        }
        Ok(units)
    }
}
