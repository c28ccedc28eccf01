//! Each run's record, `_wxcube/runs/<run>.json`: its summary and every failed cell, for
//! whoever needs more than the summary line's grouped view (which stays small whatever fails).

use bytes::Bytes;

use super::{Dataset, WriteError, layout};

impl Dataset {
    /// Stores a run's record; returns its address.
    pub async fn put_run_record(&self, run: &str, record: Bytes) -> Result<String, WriteError> {
        let path = layout::run_record_path(&self.output.root, run);
        self.put_atomic(&path, record).await?;
        Ok(self.output.url_of(&path))
    }
}
