//! `--shard I/N`: N parallel tasks that never write the same file.
//!
//! An account's rows always live in bucket `fnv1a64(appid) mod B`; shard `I` of `N` takes the
//! accounts whose bucket ≡ I (mod N). Every bucket — hence every file — belongs to exactly one
//! shard, and every account to exactly one shard, for any N ≤ B.

use std::fmt;
use std::str::FromStr;

use crate::account::AppId;
use crate::write::layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("'{s}' is not a shard: write I/N with 0 <= I < N, e.g. --shard 0/4");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let (index, count): (u32, u32) =
            (i.trim().parse().map_err(|_| usage())?, n.trim().parse().map_err(|_| usage())?);
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether bucket `bucket` belongs to this shard.
    pub fn owns_bucket(&self, bucket: u32) -> bool {
        bucket % self.count == self.index
    }

    /// Whether `appid` belongs to this shard of a dataset with `buckets` buckets.
    pub fn owns(&self, appid: &AppId, buckets: u32) -> bool {
        self.owns_bucket(layout::bucket_of(appid, buckets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn parses() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2", ""] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("--shard 0/4"), "{bad}");
        }
    }

    /// For N = 1..8 (and B = 16): every account in exactly one shard, and no bucket — so no
    /// file — shared by two shards.
    #[test]
    fn shards_cover_every_account_once_and_never_share_a_file() {
        let accounts: Vec<AppId> = (0..5000).map(|i| AppId::parse(&format!("wx{i:016x}")).unwrap()).collect();
        for n in 1..=8 {
            let shards: Vec<Shard> = (0..n).map(|index| Shard { index, count: n }).collect();
            for a in &accounts {
                assert_eq!(shards.iter().filter(|s| s.owns(a, 16)).count(), 1, "{a} with N = {n}");
            }
            let buckets: Vec<BTreeSet<u32>> = shards
                .iter()
                .map(|s| accounts.iter().filter(|a| s.owns(a, 16)).map(|a| layout::bucket_of(a, 16)).collect())
                .collect();
            for (i, a) in buckets.iter().enumerate() {
                for b in &buckets[i + 1..] {
                    assert!(a.is_disjoint(b), "N = {n}: two shards write the same bucket files");
                }
            }
            assert_eq!(buckets.iter().map(BTreeSet::len).sum::<usize>(), 16, "N = {n}: every bucket has an owner");
        }
    }
}
