//! The table's log on storage: reading it into a [`TableState`] (from the latest checkpoint,
//! then every commit after it), and writing checkpoints.

use bytes::Bytes;
use object_store::path::Path;
use serde_json::json;

use super::log::{self, TableState};
use super::{bad_table, checkpoint, table_dir};
use crate::write::{Dataset, WriteError};
use wxcube_registry::Table;

/// Reads the log from its last checkpoint into `state` (which must be empty).
pub(super) async fn load(ds: &Dataset, table: &Table, state: &mut TableState) -> Result<(), WriteError> {
    let log_dir = table_dir(ds, table).join("_delta_log");
    let mut checkpoint = match ds.get_if_exists(&log_dir.clone().join("_last_checkpoint")).await? {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| v["version"].as_u64()),
        None => None,
    };
    if checkpoint.is_none() && ds.get_if_exists(&log_dir.clone().join(log::commit_name(0))).await?.is_none() {
        // No version 0: a new table, or one whose early commits were cleaned up after a
        // checkpoint whose pointer is missing.
        checkpoint = latest_checkpoint(ds, &log_dir).await?;
    }
    if let Some(v) = checkpoint {
        let path = log_dir.clone().join(log::checkpoint_name(v));
        let bytes = ds
            .get_if_exists(&path)
            .await?
            .ok_or_else(|| bad_table(ds, table, &format!("checkpoint {v} is missing")))?;
        let actions = checkpoint::decode(bytes).map_err(|e| bad_table(ds, table, &e))?;
        state.apply(v, actions).map_err(|e| bad_table(ds, table, &e))?;
    }
    refresh(ds, table, state).await
}

async fn latest_checkpoint(ds: &Dataset, log_dir: &Path) -> Result<Option<u64>, WriteError> {
    use futures::TryStreamExt;
    let listed: Vec<_> =
        ds.output.store.list(Some(log_dir)).try_collect().await.map_err(|source| ds.store_err(log_dir, source))?;
    Ok(listed
        .iter()
        .filter_map(|o| log::version_of(o.location.filename()?))
        .filter(|(_, is_checkpoint)| *is_checkpoint)
        .map(|(v, _)| v)
        .max())
}

/// Applies the versions committed after `state`'s.
pub(super) async fn refresh(ds: &Dataset, table: &Table, state: &mut TableState) -> Result<(), WriteError> {
    let log_dir = table_dir(ds, table).join("_delta_log");
    loop {
        let next = state.version.map_or(0, |v| v + 1);
        let Some(bytes) = ds.get_if_exists(&log_dir.clone().join(log::commit_name(next))).await? else { return Ok(()) };
        let actions = log::decode_commit(&bytes).map_err(|e| bad_table(ds, table, &format!("version {next}: {e}")))?;
        state.apply(next, actions).map_err(|e| bad_table(ds, table, &e))?;
    }
}

/// Writes a checkpoint of `state` and points `_last_checkpoint` at it. A failure costs readers
/// time, never data: it is logged, and the next interval tries again.
pub(super) async fn write_checkpoint(ds: &Dataset, table: &Table, state: &TableState) {
    let version = state.version.expect("a committed state");
    let log_dir = table_dir(ds, table).join("_delta_log");
    let result = async {
        let (bytes, size) = checkpoint::encode(state, chrono::Utc::now().timestamp_millis())
            .map_err(|message| WriteError::Io { path: table.name.clone(), message })?;
        let path = log_dir.clone().join(log::checkpoint_name(version));
        ds.put_atomic(&path, bytes).await?;
        let pointer = json!({"version": version, "size": size}).to_string();
        ds.put_atomic(&log_dir.clone().join("_last_checkpoint"), Bytes::from(pointer)).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(table = %table, version, "cannot write a checkpoint (readers replay more of the log): {e}");
    }
}
