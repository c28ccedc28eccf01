//! Incremental state: how far each (account, table) is known complete.
//!
//! One small JSON object per bucket, `_wxcube/state/bucket-BB.json`, in the same store as the
//! data: stateless workers share it, and shards (which own disjoint buckets) never write the
//! same state object, though unsharded runs of other accounts in the same bucket may. It is
//! written only at the end of a run, after the data it describes is durable; a run killed
//! before that simply repeats its work next time. Writing it is a read–modify–write (see
//! `commit`): a run applies its own progress to the state as it finds it, so two runs that
//! finish at once both keep theirs.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::commit::Decision;
use super::{Dataset, WriteError, layout};

/// appid → table → progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketState {
    pub format_version: u32,
    pub accounts: BTreeMap<String, BTreeMap<String, Progress>>,
}

/// How far one (account, table) has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The first day ever asked for (`--start-date`): look-backs never reach before it.
    pub since: NaiveDateString,
    /// Every cell from `since` up to this day is written (the day before `since`: none yet).
    pub through: NaiveDateString,
}

/// A date kept as `YYYY-MM-DD` text in the state file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NaiveDateString(pub NaiveDate);

impl Serialize for NaiveDateString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for NaiveDateString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::dates::parse_date(&s).map(NaiveDateString).map_err(serde::de::Error::custom)
    }
}

impl BucketState {
    pub fn get(&self, appid: &str, table: &str) -> Option<Progress> {
        self.accounts.get(appid)?.get(table).copied()
    }

    pub fn set(&mut self, appid: &str, table: &str, since: NaiveDate, through: NaiveDate) {
        let progress = Progress { since: NaiveDateString(since), through: NaiveDateString(through) };
        self.accounts.entry(appid.to_string()).or_default().insert(table.to_string(), progress);
    }
}

pub fn state_path(root: &Path, bucket: u32) -> Path {
    root.clone().join(layout::META_DIR).join("state").join(format!("bucket-{bucket:02}.json"))
}

/// The dataset's incremental state, one object per bucket.
pub struct StateFiles<'a>(pub(super) &'a Dataset);

impl StateFiles<'_> {
    /// The state of one bucket; empty if none was written yet.
    pub async fn load(&self, bucket: u32) -> Result<BucketState, WriteError> {
        let path = state_path(&self.0.output.root, bucket);
        match self.0.get_if_exists(&path).await? {
            Some(bytes) => self.parse_state(&path, &bytes),
            None => Ok(BucketState::empty()),
        }
    }

    /// Applies `progress` to the bucket's state as it is in the store now, and writes it back
    /// unless another writer changed it meanwhile (then again, on the newer state).
    pub async fn update(&self, bucket: u32, progress: impl Fn(&mut BucketState)) -> Result<(), WriteError> {
        let path = state_path(&self.0.output.root, bucket);
        self.0
            .update(&path, |existing| {
                let mut state = match existing {
                    Some(bytes) => self.parse_state(&path, bytes)?,
                    None => BucketState::empty(),
                };
                let before = state.clone();
                progress(&mut state);
                if state == before {
                    return Ok(Decision::Keep(()));
                }
                Ok(Decision::Put(serde_json::to_vec_pretty(&state).expect("state serialises").into(), ()))
            })
            .await
    }

    fn parse_state(&self, path: &Path, bytes: &[u8]) -> Result<BucketState, WriteError> {
        serde_json::from_slice(bytes).map_err(|e| WriteError::BadFile {
            path: self.0.output.url_of(path),
            message: format!("unreadable state ({e}): remove it to start again from --start-date"),
        })
    }
}

impl BucketState {
    fn empty() -> Self {
        BucketState { format_version: 1, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_as_plain_dates() {
        let mut s = BucketState { format_version: 1, ..Default::default() };
        let (a, b) = (NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        s.set("wxa", "upstream_msg", a, b);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"format_version":1,"accounts":{"wxa":{"upstream_msg":{"since":"2024-01-01","through":"2024-03-01"}}}}"#
        );
        assert_eq!(serde_json::from_str::<BucketState>(&text).unwrap(), s);
        assert_eq!(s.get("wxa", "upstream_msg").unwrap().through.0, b);
        assert_eq!(s.get("wxb", "upstream_msg"), None);
    }
}
