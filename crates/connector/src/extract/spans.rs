//! What the server really accepts as a window span, learnt during a run.
//!
//! The documentation disagrees with itself on three spans. The registry starts from the
//! larger values; when the server answers 61501 (date range error), extract halves the window
//! (down to one day) and this memory makes every later window of that table fit what worked,
//! so the run pays for the discovery once.
//!
//! Until a table has had one answer that was not 61501, its requests go one at a time (a
//! *probe*): otherwise every window in flight would discover the same refusal on its own, each
//! costing requests against the account's quota.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct SpanMemory {
    tables: Mutex<HashMap<String, Learnt>>,
    /// Tables whose span has been confirmed by an answer.
    confirmed: Mutex<HashMap<String, bool>>,
    probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Clone, Copy)]
struct Learnt {
    /// The narrowest window (days) the server refused.
    refused: u32,
    /// The widest window (days) narrower than `refused` that worked; 0 until one has.
    worked: u32,
}

impl SpanMemory {
    /// Waits for the right to probe `table`, unless its span is already confirmed (`None`).
    /// Hold the guard until the first answer.
    pub async fn probe(&self, table: &str) -> Option<OwnedMutexGuard<()>> {
        if self.is_confirmed(table) {
            return None;
        }
        let lock = self.probes.lock().unwrap().entry(table.to_string()).or_default().clone();
        let guard = lock.lock_owned().await;
        (!self.is_confirmed(table)).then_some(guard)
    }

    /// An answer other than 61501 came back for `table`: its windows may go out in parallel.
    pub fn confirm(&self, table: &str) {
        self.confirmed.lock().unwrap().insert(table.to_string(), true);
    }

    fn is_confirmed(&self, table: &str) -> bool {
        self.confirmed.lock().unwrap().contains_key(table)
    }

    /// The span to plan `table`'s next windows with, if the server has refused wider ones.
    pub fn limit(&self, table: &str) -> Option<u32> {
        let tables = self.tables.lock().unwrap();
        tables.get(table).map(|l| if l.worked > 0 { l.worked } else { l.refused.saturating_sub(1).max(1) })
    }

    /// The server refused a window of `days` days with 61501.
    pub fn refused(&self, table: &str, days: u32) {
        let mut tables = self.tables.lock().unwrap();
        let l = tables.entry(table.to_string()).or_insert(Learnt { refused: days, worked: 0 });
        l.refused = l.refused.min(days);
        if l.worked >= l.refused {
            l.worked = 0;
        }
    }

    /// A window of `days` days worked. Returns true when this is news worth a warning: the
    /// first (or a wider) span known to work below one that was refused.
    pub fn worked(&self, table: &str, days: u32) -> bool {
        let mut tables = self.tables.lock().unwrap();
        match tables.get_mut(table) {
            Some(l) if days < l.refused && days > l.worked => {
                l.worked = days;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_one_at_a_time_until_confirmed() {
        let m = Arc::new(SpanMemory::default());
        let first = m.probe("t").await.expect("the first request probes");
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { m.probe("t").await.is_none() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a second request waits for the probe");
        m.confirm("t");
        drop(first);
        assert!(waiter.await.unwrap(), "after confirmation nobody probes");
        assert!(m.probe("t").await.is_none());
        assert!(m.probe("other").await.is_some());
    }

    #[test]
    fn learns_the_narrower_span() {
        let m = SpanMemory::default();
        assert_eq!(m.limit("t"), None);
        assert!(!m.worked("t", 30), "nothing refused yet: nothing to learn");
        m.refused("t", 29);
        assert_eq!(m.limit("t"), Some(28));
        m.refused("t", 15);
        assert_eq!(m.limit("t"), Some(14));
        assert!(m.worked("t", 1));
        assert!(!m.worked("t", 1), "already known");
        assert_eq!(m.limit("t"), Some(1));
        assert!(m.worked("t", 8));
        assert_eq!(m.limit("t"), Some(8));
        assert!(!m.worked("t", 15), "15 was refused");
        assert_eq!(m.limit("other"), None);
    }
}
