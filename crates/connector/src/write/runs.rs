//! Each run's record, `_wxcube/runs/<run>.json`: its summary and every failed cell, for
//! whoever needs more than the summary line's grouped view (which stays small whatever fails).

use bytes::Bytes;

use super::{Dataset, WriteError, layout};

/// Each run's record, `_wxcube/runs/<run>.json`.
pub struct RunRecords<'a>(pub(super) &'a Dataset);

impl RunRecords<'_> {
    /// Stores a run's record; returns its address.
    pub async fn put(&self, run: &str, record: Bytes) -> Result<String, WriteError> {
        let path = layout::run_record_path(&self.0.output.root, run);
        self.0.put_atomic(&path, record).await?;
        Ok(self.0.output.url_of(&path))
    }
}
