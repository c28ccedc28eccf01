//! The Delta transaction log: its actions, and the table state they add up to.
//!
//! A Delta table's truth is `<table>/_delta_log/`: version N is the file `N.json` (twenty
//! digits), one action per line, and a checkpoint `N.checkpoint.parquet` holds the state at N
//! so that readers need not replay every commit before it. wxcube writes the actions its
//! commits need (protocol, metaData, add, remove, txn, commitInfo) and reads every action a
//! table at reader version 1 / writer version 2 can hold; other actions (cdc, domainMetadata)
//! do not change which files are live and are skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The protocol wxcube writes: no table features, so every Delta reader opens its tables.
pub const READER_VERSION: i32 = 1;
pub const WRITER_VERSION: i32 = 2;

/// A data file added to the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// Relative to the table's folder, URL-encoded (wxcube's names need no escaping).
    pub path: String,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

/// A data file no longer in the table (kept on storage for time travel).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    pub path: String,
    #[serde(default)]
    pub deletion_timestamp: Option<i64>,
    pub data_change: bool,
    #[serde(default)]
    pub extended_file_metadata: Option<bool>,
    #[serde(default)]
    pub partition_values: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub size: Option<i64>,
}

/// The latest commit of one application (a wxcube run): what makes a commit exactly-once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    pub app_id: String,
    pub version: i64,
    #[serde(default)]
    pub last_updated: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Format {
    pub provider: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub format: Format,
    pub schema_string: String,
    pub partition_columns: Vec<String>,
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    #[serde(default)]
    pub created_time: Option<i64>,
}

/// One line of a commit file: exactly one of these is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Action {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "commitInfo")]
    pub commit_info: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "metaData")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<Txn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Remove>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Add>,
}

/// A commit file's bytes: one JSON action per line.
pub fn encode_commit(actions: &[Action]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in actions {
        serde_json::to_writer(&mut out, a).expect("actions serialise");
        out.push(b'\n');
    }
    out
}

pub fn decode_commit(bytes: &[u8]) -> Result<Vec<Action>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Action>(l).map_err(|e| format!("unreadable action ({e})")))
        .collect()
}

/// Where a file belongs: its partition's date and, from its name (`part-<BB>-…`), the bucket
/// of accounts it holds (`None`: a file another writer named, e.g. a compaction's).
pub type FileKey = (NaiveDate, Option<u32>);

/// The table at one version: its protocol, metadata, live files and applications' commits.
#[derive(Clone, Debug, Default)]
pub struct TableState {
    /// `None`: no commit yet, the table does not exist.
    pub version: Option<u64>,
    pub protocol: Option<Protocol>,
    pub metadata: Option<Metadata>,
    pub files: BTreeMap<String, Add>,
    /// Removed files, kept in checkpoints until their retention ends (a reader's VACUUM
    /// needs them).
    pub tombstones: BTreeMap<String, Remove>,
    pub txns: HashMap<String, Txn>,
    by_key: BTreeMap<FileKey, BTreeSet<String>>,
}

impl TableState {
    /// Applies one version's actions.
    pub fn apply(&mut self, version: u64, actions: Vec<Action>) -> Result<(), String> {
        for a in actions {
            if let Some(p) = a.protocol {
                self.protocol = Some(p);
            }
            if let Some(m) = a.metadata {
                self.metadata = Some(m);
            }
            if let Some(t) = a.txn {
                self.txns.insert(t.app_id.clone(), t);
            }
            if let Some(r) = a.remove {
                self.forget(&r.path);
                self.tombstones.insert(r.path.clone(), r);
            }
            if let Some(add) = a.add {
                let key = file_key(&add)?;
                self.forget(&add.path);
                self.tombstones.remove(&add.path);
                self.by_key.entry(key).or_default().insert(add.path.clone());
                self.files.insert(add.path.clone(), add);
            }
        }
        self.version = Some(version);
        Ok(())
    }

    fn forget(&mut self, path: &str) {
        if let Some(old) = self.files.remove(path)
            && let Ok(key) = file_key(&old)
            && let Some(set) = self.by_key.get_mut(&key)
        {
            set.remove(path);
            if set.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// The live files holding bucket `bucket` of `date`. With one bucket, files named by
    /// another writer hold it too; with more, such a file cannot be told apart: an error.
    pub fn files_of(&self, date: NaiveDate, bucket: u32, buckets: u32) -> Result<BTreeSet<String>, String> {
        let mut found = self.by_key.get(&(date, Some(bucket))).cloned().unwrap_or_default();
        if let Some(foreign) = self.by_key.get(&(date, None)) {
            if buckets > 1 {
                return Err(format!(
                    "{} in ref_date={date} was not written by wxcube, so its accounts' bucket is unknown",
                    foreign.first().expect("sets in by_key are not empty")
                ));
            }
            found.extend(foreign.iter().cloned());
        }
        Ok(found)
    }

    /// The version of `app_id`'s latest commit, if it has one.
    pub fn txn_version(&self, app_id: &str) -> Option<i64> {
        self.txns.get(app_id).map(|t| t.version)
    }
}

/// A file's partition date and bucket.
fn file_key(add: &Add) -> Result<FileKey, String> {
    let date = add
        .partition_values
        .get("ref_date")
        .and_then(|v| v.as_deref())
        .ok_or_else(|| format!("{}: no ref_date partition value", add.path))?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| format!("{}: ref_date {date:?}", add.path))?;
    Ok((date, bucket_in_name(&add.path)))
}

/// The name of a data file wxcube writes: `part-07_wxcube-<run>-<n>.parquet` holds bucket 7.
/// The marker tells wxcube's files from other writers' (Spark's `part-00001-<uuid>…`).
pub fn data_file_name(bucket: u32, run: &str, n: u64) -> String {
    format!("part-{bucket:02}_wxcube-{run}-{n}.parquet")
}

/// `ref_date=…/part-07_wxcube-<run>-<n>.parquet` → 7.
fn bucket_in_name(path: &str) -> Option<u32> {
    let name = path.rsplit('/').next()?;
    let rest = name.strip_prefix("part-")?;
    let (digits, _) = rest.split_once("_wxcube-")?;
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The name of version `v`'s commit file.
pub fn commit_name(v: u64) -> String {
    format!("{v:020}.json")
}

pub fn checkpoint_name(v: u64) -> String {
    format!("{v:020}.checkpoint.parquet")
}

/// A commit or checkpoint file name's version (`None`: another file of the log).
pub fn version_of(name: &str) -> Option<(u64, bool)> {
    let (digits, rest) = name.split_at_checked(20)?;
    let v = digits.parse().ok()?;
    match rest {
        ".json" => Some((v, false)),
        ".checkpoint.parquet" => Some((v, true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str, date: &str) -> Action {
        Action {
            add: Some(Add {
                path: path.into(),
                partition_values: BTreeMap::from([("ref_date".into(), Some(date.into()))]),
                size: 1,
                modification_time: 0,
                data_change: true,
                stats: None,
            }),
            ..Default::default()
        }
    }

    fn remove(path: &str) -> Action {
        let r = Remove {
            path: path.into(),
            deletion_timestamp: Some(1),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
        };
        Action { remove: Some(r), ..Default::default() }
    }

    #[test]
    fn a_replaced_file_leaves_the_state_and_becomes_a_tombstone() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut s = TableState::default();
        s.apply(0, vec![add("ref_date=2024-03-01/part-00_wxcube-r1-1.parquet", "2024-03-01")]).unwrap();
        s.apply(
            1,
            vec![
                remove("ref_date=2024-03-01/part-00_wxcube-r1-1.parquet"),
                add("ref_date=2024-03-01/part-00_wxcube-r2-1.parquet", "2024-03-01"),
            ],
        )
        .unwrap();
        assert_eq!(s.version, Some(1));
        assert_eq!(
            s.files_of(d, 0, 1).unwrap(),
            BTreeSet::from(["ref_date=2024-03-01/part-00_wxcube-r2-1.parquet".to_string()])
        );
        assert!(s.tombstones.contains_key("ref_date=2024-03-01/part-00_wxcube-r1-1.parquet"));
    }

    #[test]
    fn files_another_writer_named_belong_to_the_only_bucket() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut s = TableState::default();
        s.apply(0, vec![add("ref_date=2024-03-01/compacted.parquet", "2024-03-01")]).unwrap();
        assert_eq!(s.files_of(d, 0, 1).unwrap().len(), 1);
        assert!(s.files_of(d, 0, 4).unwrap_err().contains("not written by wxcube"));
    }

    #[test]
    fn names() {
        assert_eq!(bucket_in_name(&format!("ref_date=2024-03-01/{}", data_file_name(7, "r-1", 3))), Some(7));
        assert_eq!(bucket_in_name("ref_date=2024-03-01/part-00001-uuid-c000.snappy.parquet"), None);
        assert_eq!(bucket_in_name("x/part-7-a.parquet"), None);
        assert_eq!(version_of("00000000000000000010.json"), Some((10, false)));
        assert_eq!(version_of("00000000000000000010.checkpoint.parquet"), Some((10, true)));
        assert_eq!(version_of("_last_checkpoint"), None);
        let line = encode_commit(&[add("a", "2024-03-01")]);
        assert_eq!(decode_commit(&line).unwrap()[0].add.as_ref().unwrap().path, "a");
    }
}
