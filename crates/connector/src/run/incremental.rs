//! Incremental state after a run: how far each (account, table) is now complete.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use super::units::{Prepared, Unit};
use super::{Context, RunConfig};
use crate::plan;
use crate::summary::FailedCell;

/// Records, per (account, table) of the run, the last day up to which every cell is written
/// and final: the end of the run, or the day before its first failed window, before the first
/// window the API called not final (`is_delay`), or before the first period that has not ended
/// yet — never past a gap, and never back from what an earlier run recorded.
/// Written after all data is durable.
pub(super) async fn save_state(
    ctx: &Context,
    config: &RunConfig,
    prepared: &Prepared,
    units: &[Unit],
    failed: &[FailedCell],
) {
    let mut by_bucket: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, live) in ctx.accounts.iter().enumerate() {
        by_bucket.entry(ctx.dataset.bucket_of(&live.session.appid)).or_default().push(i);
    }
    let delayed = ctx.delayed.lock().unwrap().clone();
    for (bucket, members) in by_bucket {
        // (appid, table, since if new, through): this run's progress, applied to the state as
        // it is when written, so that another run's progress in the same bucket is kept.
        let mut progress: Vec<(&str, &str, NaiveDate, NaiveDate)> = Vec::new();
        for i in members {
            let appid = ctx.accounts[i].session.appid.as_str();
            for table in &config.tables {
                let Ok(Some(range)) = prepared.range_of(config, &prepared.accounts[i], table) else { continue };
                let mut through = range.end();
                // A week or month that has not ended yet is still to come.
                let all_starts = plan::period_starts(table.period, range, NaiveDate::MAX);
                let ended = plan::period_starts(table.period, range, config.latest);
                if let Some(first_open) = all_starts.iter().find(|d| !ended.contains(d)) {
                    through = through.min(*first_open - Days::new(1));
                }
                for cell in failed.iter().filter(|c| c.appid == appid && c.table == table.name) {
                    let begin = crate::dates::parse_date(&cell.begin).expect("cells carry dates");
                    through = through.min(begin - Days::new(1));
                }
                for (_, _, window) in delayed.iter().filter(|(a, t, _)| a.as_str() == appid && *t == table.name) {
                    through = through.min(window.begin() - Days::new(1));
                }
                let planned = units.iter().any(|u| u.table.name == table.name && u.members.contains(&i));
                if !planned && through >= range.begin() {
                    // Nothing was due (e.g. no week has ended since): the range is complete.
                    through = through.max(range.begin() - Days::new(1));
                }
                progress.push((appid, table.name.as_str(), range.begin(), through));
            }
        }
        let apply = |state: &mut crate::write::state::BucketState| {
            for &(appid, table, begin, through) in &progress {
                let previous = state.get(appid, table);
                let since = previous.map_or(begin, |p| p.since.0);
                if previous.is_none_or(|p| through > p.through.0) {
                    state.set(appid, table, since, through.max(since - Days::new(1)));
                }
            }
        };
        if let Err(e) = ctx.dataset.state().update(bucket, apply).await {
            tracing::error!(bucket, "cannot save the incremental state: {e}; the next run repeats this one's work");
        }
    }
}
