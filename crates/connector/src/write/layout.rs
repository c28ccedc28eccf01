//! Where every object lives. The single source of the output layout:
//!
//! ```text
//! <output>/<table>/ref_date=YYYY-MM-DD/part-<BB>.parquet   data, one file per bucket
//! <output>/_wxcube/dataset.json                              settings fixed at first write
//! <output>/_wxcube/staging/…                                 local disk only: files being written
//! <output>/_wxcube/state/bucket-<BB>.json                    incremental state (write::state)
//! <output>/_wxcube/locks/bucket-<BB>.json                    leases (write::lease)
//! <output>/_wxcube/locks/runs/<run>.lock                     local disk: held by a live run
//! <output>/_wxcube/locks/files/<NNNN>.lock                   local disk: read–merge–write locks
//! <output>/_wxcube/runs/<run>.json                           each run's record, every failed cell
//! <output>/_wxcube/raw/<table>/<appid>/<begin>_<end>.json.zst   --keep-raw answers (write::raw)
//! ```
//!
//! Readers (DuckDB's `hive_partitioning`, Spark's partition discovery) take `ref_date` from the
//! path; names starting with `_` are bookkeeping and skipped by both.

use chrono::NaiveDate;
use object_store::path::Path;

use crate::account::AppId;

/// Bookkeeping folder, beside the tables.
pub const META_DIR: &str = "_wxcube";

/// A 64-bit FNV-1a hash: tiny, documented, and the same on every platform and release, which
/// the bucket of an account must be forever (a changed hash would scatter rows across files).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bucket an account's rows always go to.
pub fn bucket_of(appid: &AppId, buckets: u32) -> u32 {
    (stable_hash(appid.as_str().as_bytes()) % u64::from(buckets)) as u32
}

/// The partition folder of one table and date, e.g. `out/upstream_msg/ref_date=2024-03-01`.
pub fn partition_dir(root: &Path, table: &str, date: NaiveDate) -> Path {
    root.clone().join(table).join(format!("ref_date={date}"))
}

/// The data file of one bucket: `<root>/<table>/ref_date=2024-03-01/part-07.parquet`.
/// Bucket numbers are zero-padded to at least two digits so names sort in bucket order.
pub fn data_path(root: &Path, table: &str, date: NaiveDate, bucket: u32) -> Path {
    partition_dir(root, table, date).join(format!("part-{bucket:02}.parquet"))
}

pub fn settings_path(root: &Path) -> Path {
    root.clone().join(META_DIR).join("dataset.json")
}

pub fn staging_dir(root: &Path) -> Path {
    root.clone().join(META_DIR).join("staging")
}

/// Folders files are staged in, taken in turn. Creating a file, and renaming one out, lock
/// the folder: with one folder, the writers and the committer would queue for it (and on ext4
/// spin waiting, burning the CPU they wait for).
pub const STAGING_FOLDERS: u64 = 16;

/// The staging folder of the `n`th file staged.
pub fn staging_folder(root: &Path, n: u64) -> Path {
    staging_dir(root).join(format!("{:02}", n % STAGING_FOLDERS))
}

/// The lease object of one bucket: who is working on which of its accounts.
pub fn lease_path(root: &Path, bucket: u32) -> Path {
    root.clone().join(META_DIR).join("locks").join(format!("bucket-{bucket:02}.json"))
}

/// The lock file a run holds for its whole life (local disk): its lease holders are alive
/// while it is locked.
pub fn run_lock_path(root: &Path, run: &str) -> Path {
    root.clone().join(META_DIR).join("locks").join("runs").join(format!("{run}.lock"))
}

/// The lock files that guard read–merge–write of local files (see `write::commit`).
pub fn file_locks_dir(root: &Path) -> Path {
    root.clone().join(META_DIR).join("locks").join("files")
}

/// Each run's full record: its summary with every failed cell.
pub fn run_record_path(root: &Path, run: &str) -> Path {
    root.clone().join(META_DIR).join("runs").join(format!("{run}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(stable_hash(b""), 0xcbf29ce484222325);
        assert_eq!(stable_hash(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn paths() {
        let root = Path::from("lake/wechat");
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(
            data_path(&root, "upstream_msg", d, 7).as_ref(),
            "lake/wechat/upstream_msg/ref_date=2024-03-01/part-07.parquet"
        );
        assert_eq!(data_path(&Path::default(), "t", d, 123).as_ref(), "t/ref_date=2024-03-01/part-123.parquet");
        assert_eq!(settings_path(&root).as_ref(), "lake/wechat/_wxcube/dataset.json");
    }

    #[test]
    fn buckets_spread_and_stay_put() {
        let ids: Vec<AppId> = (0..1000).map(|i| AppId::parse(&format!("wx{i:016x}")).unwrap()).collect();
        let mut counts = [0u32; 16];
        for id in &ids {
            counts[bucket_of(id, 16) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 30), "{counts:?}");
        assert_eq!(
            bucket_of(&AppId::parse("wxdemo000000000001").unwrap(), 16),
            bucket_of(&AppId::parse("wxdemo000000000001").unwrap(), 16)
        );
    }
}
