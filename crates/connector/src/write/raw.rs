//! Raw landing (`--keep-raw`): every API answer as received, zstd-compressed, so the tables can
//! be derived again without calling the API (`wxcube rebuild`).
//!
//! ```text
//! <output>/_wxcube/raw/<table>/<appid>/<begin>_<end>.json.zst
//! ```
//!
//! The key names everything a rebuild needs; the object's modification time says which answer
//! is newer where two windows overlap (an incremental run's look-back re-fetches late days).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::{Dataset, WriteError, layout};
use crate::account::AppId;
use crate::dates::{DateRange, parse_date};
use wxcube_registry::Table;

/// One stored answer.
#[derive(Clone, Debug)]
pub struct RawObject {
    pub path: Path,
    pub appid: AppId,
    pub range: DateRange,
    pub fetched_at: DateTime<Utc>,
}

fn table_dir(root: &Path, table: &Table) -> Path {
    root.clone().join(layout::META_DIR).join("raw").join(table.name.as_str())
}

fn raw_path(root: &Path, table: &Table, appid: &AppId, range: DateRange) -> Path {
    table_dir(root, table).join(appid.as_str()).join(format!("{}_{}.json.zst", range.begin(), range.end()))
}

/// The answers `--keep-raw` stores.
pub struct RawAnswers<'a>(pub(super) &'a Dataset);

impl RawAnswers<'_> {
    /// Stores one answer, compressed.
    pub async fn put(&self, table: &Table, appid: &AppId, range: DateRange, body: &[u8]) -> Result<(), WriteError> {
        let path = raw_path(&self.0.output.root, table, appid, range);
        let compressed = compress(body)
            .map_err(|e| WriteError::Io { path: self.0.output.url_of(&path), message: format!("compressing: {e}") })?;
        self.0.put_atomic(&path, Bytes::from(compressed)).await
    }

    /// Every stored answer of `table`, oldest first.
    pub async fn list(&self, table: &Table) -> Result<Vec<RawObject>, WriteError> {
        let dir = table_dir(&self.0.output.root, table);
        let metas: Vec<_> = self
            .0
            .output
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| self.0.store_err(&dir, source))?;
        let mut objects = Vec::new();
        for meta in metas {
            match parse_key(&dir, &meta.location) {
                Some((appid, range)) => {
                    objects.push(RawObject { path: meta.location, appid, range, fetched_at: meta.last_modified })
                }
                None => tracing::warn!(path = %meta.location, "not a raw answer of wxcube's; skipped"),
            }
        }
        objects.sort_by_key(|o| (o.fetched_at, o.path.to_string()));
        Ok(objects)
    }

    /// The accounts that have stored answers of `table`.
    pub async fn accounts(&self, table: &Table) -> Result<Vec<AppId>, WriteError> {
        let dir = table_dir(&self.0.output.root, table);
        let listed = self
            .0
            .output
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| self.0.store_err(&dir, source))?;
        Ok(listed.common_prefixes.iter().filter_map(|p| AppId::parse(p.filename()?).ok()).collect())
    }

    /// One stored answer, decompressed: the body exactly as the API sent it.
    pub async fn get(&self, object: &RawObject) -> Result<Bytes, WriteError> {
        let compressed = self
            .0
            .output
            .store
            .get(&object.path)
            .await
            .map_err(|source| self.0.store_err(&object.path, source))?
            .bytes()
            .await
            .map_err(|source| self.0.store_err(&object.path, source))?;
        let body = decompress(&compressed).map_err(|e| WriteError::BadFile {
            path: self.0.output.url_of(&object.path),
            message: format!("decompressing: {e}"),
        })?;
        Ok(Bytes::from(body))
    }
}

// One zstd context per thread, not one per answer: creating a context probes the CPU (cpuid),
// which traps to the hypervisor on virtual machines and cost more than compressing an answer.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::stream::raw::Decoder<'static>>> = const { std::cell::RefCell::new(None) };
}

fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|c| {
        let compressor = match c {
            Some(c) => c,
            None => c.insert(zstd::bulk::Compressor::new(3)?),
        };
        compressor.compress(body)
    })
}

/// Decompresses a whole stored answer (whose size the frame may not state).
fn decompress(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    DECOMPRESSOR.with_borrow_mut(|d| {
        let decoder = match d {
            Some(d) => d,
            None => d.insert(zstd::stream::raw::Decoder::new()?),
        };
        decoder.reinit()?;
        let mut out = Vec::with_capacity(compressed.len() * 8);
        let mut input = InBuffer::around(compressed);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let mut output = OutBuffer::around(&mut chunk[..]);
            let hint = decoder.run(&mut input, &mut output)?;
            let written = output.pos();
            out.extend_from_slice(&chunk[..written]);
            if hint == 0 && written < chunk.len() {
                break;
            }
            if input.pos() == compressed.len() && written == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated zstd frame"));
            }
        }
        Ok(out)
    })
}

/// `<dir>/<appid>/<begin>_<end>.json.zst` → (appid, range).
fn parse_key(dir: &Path, path: &Path) -> Option<(AppId, DateRange)> {
    let mut parts = path.prefix_match(dir)?;
    let appid = AppId::parse(parts.next()?.as_ref()).ok()?;
    let name = parts.next()?;
    let (begin, end) = name.as_ref().strip_suffix(".json.zst")?.split_once('_')?;
    let range = DateRange::new(parse_date(begin).ok()?, parse_date(end).ok()?)?;
    parts.next().is_none().then_some((appid, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let t = wxcube_registry::find("upstream_msg").unwrap();
        let root = Path::from("lake");
        let appid = AppId::parse("wxa").unwrap();
        let range = DateRange::new(parse_date("2024-03-01").unwrap(), parse_date("2024-03-07").unwrap()).unwrap();
        let path = raw_path(&root, t, &appid, range);
        assert_eq!(path.as_ref(), "lake/_wxcube/raw/upstream_msg/wxa/2024-03-01_2024-03-07.json.zst");
        assert_eq!(parse_key(&table_dir(&root, t), &path), Some((appid, range)));
        assert_eq!(parse_key(&table_dir(&root, t), &Path::from("lake/_wxcube/raw/upstream_msg/wxa/notes.txt")), None);
    }

    #[test]
    fn answers_round_trip_through_the_reused_contexts() {
        for body in [&b""[..], b"{\"list\":[]}", &vec![b'x'; 300_000]] {
            let compressed = compress(body).unwrap();
            assert_eq!(zstd::stream::decode_all(&compressed[..]).unwrap(), body, "readable by any zstd");
            assert_eq!(decompress(&compressed).unwrap(), body);
        }
        let truncated = &compress(&vec![b'y'; 100_000]).unwrap()[..20];
        assert!(decompress(truncated).is_err());
    }
}
