//! Opens the `--output` location as an object store: a local folder or an S3-compatible bucket.
//!
//! Everything after this module reads, lists, writes and deletes through `Arc<dyn ObjectStore>`
//! and a root [`Path`], so local disk and S3 share one code path. Two differences are kept: how a
//! whole file is published on local disk (see [`Output::local_path`] and `write::durable`), and
//! what makes a read–merge–write safe against other writers — a conditional PUT on S3, a lock
//! file on local disk, which has no compare-and-swap (`write::commit`).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::limit::LimitStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use url::Url;

/// A parsed `--output` value, before anything is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl OutputSpec {
    /// Accepts a plain path, a `file://` URL or `s3://bucket/prefix`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("--output is empty: give a folder or an s3://bucket/prefix URL".into());
        }
        if !s.contains("://") {
            return Ok(Self::Local(std::path::PathBuf::from(s)));
        }
        let url = Url::parse(s).map_err(|e| format!("--output '{s}' is not a valid URL ({e})"))?;
        match url.scheme() {
            "file" => url
                .to_file_path()
                .map(Self::Local)
                .map_err(|_| format!("--output '{s}' is not a local file URL: use file:///absolute/path")),
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| format!("--output '{s}' has no bucket: use s3://bucket/prefix"))?;
                if url.password().is_some() || !url.username().is_empty() || url.query().is_some() {
                    return Err(
                        "--output must not carry credentials or options: set AWS_* environment variables instead"
                            .into(),
                    );
                }
                Ok(Self::S3 { bucket: bucket.to_string(), prefix: url.path().trim_matches('/').to_string() })
            }
            other => Err(format!("--output scheme '{other}' is not supported: use a folder, file:// or s3://")),
        }
    }
}

impl std::fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputSpec::Local(p) => write!(f, "{}", p.display()),
            OutputSpec::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Retries of the object store's own requests: enough to ride out a brief outage, short
/// enough that an unreachable endpoint is reported in seconds rather than minutes.
fn store_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Requests of one run to S3 in flight at once, at most (leases aside).
///
/// A run's units write many files at once; unbounded, eighteen months of one account kept about
/// 900 requests open against the test server, each answer came seconds late, and a lease
/// renewal queued behind them came too late to be safe. Against that server 16, 32, 64 and 128
/// gave the same wall time (README, "Storage"); 32 keep a store with tens of milliseconds per
/// request busy and bound how long anything waits behind the run's own traffic.
const S3_REQUESTS_IN_FLIGHT: usize = 32;

/// An opened output location.
#[derive(Clone, Debug)]
pub struct Output {
    /// Data and bookkeeping requests: on S3, at most [`S3_REQUESTS_IN_FLIGHT`] at once.
    pub store: Arc<dyn ObjectStore>,
    /// The same store for leases, outside that bound: a renewal that queued behind the run's
    /// own writes could come too late, and the run would stop writing under a lease it holds.
    pub lease_store: Arc<dyn ObjectStore>,
    /// Prefix of every object of the dataset inside `store`.
    pub root: Path,
    pub spec: OutputSpec,
}

impl Output {
    /// Opens the location if it already exists (a local folder may not yet); creates nothing.
    pub fn open_if_exists(spec: &OutputSpec) -> Result<Option<Self>, String> {
        match spec {
            OutputSpec::Local(dir) if !dir.exists() => Ok(None),
            _ => Self::open(spec).map(Some),
        }
    }

    /// Opens the location; for a local folder, creates it.
    pub fn open(spec: &OutputSpec) -> Result<Self, String> {
        match spec {
            OutputSpec::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create output folder {}: {e}", dir.display()))?;
                // fsync: a run reports files as durable; automatic cleanup: a partition whose
                // last file is removed does not linger as an empty folder.
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("cannot open output folder {}: {e}", dir.display()))?
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                let store: Arc<dyn ObjectStore> = Arc::new(store);
                Ok(Self { lease_store: Arc::clone(&store), store, root: Path::default(), spec: spec.clone() })
            }
            OutputSpec::S3 { bucket, prefix } => {
                // The standard AWS_* variables (endpoint, keys, session token, region,
                // AWS_ALLOW_HTTP, …) configure the store; the URL only names bucket and prefix.
                // Requests are path-style unless AWS_VIRTUAL_HOSTED_STYLE_REQUEST says otherwise,
                // which is what S3-compatible servers expect.
                crate::tls::install_crypto_provider();
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(store_retry());
                if std::env::var_os("AWS_DISABLE_BULK_DELETE").is_none() {
                    // wxcube deletes one object at a time; a plain DeleteObject works on every
                    // S3-compatible store, the bulk DeleteObjects call does not.
                    builder = builder.with_disable_bulk_delete(true);
                }
                let s3 = builder
                    .build()
                    .map_err(|e| format!("cannot open {spec}: {}", crate::text::one_line(&e.to_string())))?;
                Ok(Self {
                    lease_store: Arc::new(s3.clone()),
                    store: Arc::new(LimitStore::new(s3, S3_REQUESTS_IN_FLIGHT)),
                    root: Path::from(prefix.as_str()),
                    spec: spec.clone(),
                })
            }
        }
    }

    /// A full, printable address of `path` in this store, e.g. `s3://lake/x/t/part-00.parquet`.
    pub fn url_of(&self, path: &Path) -> String {
        match &self.spec {
            OutputSpec::Local(dir) => dir.join(path.as_ref()).display().to_string(),
            OutputSpec::S3 { bucket, .. } => format!("s3://{bucket}/{path}"),
        }
    }

    /// Where `path` lives on local disk, for a local output. A local file is written under
    /// `_wxcube/staging/` and renamed into place: object_store's own temporary file would sit in
    /// the partition folder, where Spark reads every file, if a run were killed mid-write.
    pub fn local_path(&self, path: &Path) -> Option<std::path::PathBuf> {
        match &self.spec {
            OutputSpec::Local(dir) => Some(dir.join(path.as_ref())),
            OutputSpec::S3 { .. } => None,
        }
    }

    /// Whether whole files are staged under `_wxcube/staging/` (local disk) before they appear.
    pub fn stage_locally(&self) -> bool {
        matches!(self.spec, OutputSpec::Local(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(OutputSpec::parse("out/x").unwrap(), OutputSpec::Local("out/x".into()));
        assert_eq!(OutputSpec::parse("file:///tmp/x").unwrap(), OutputSpec::Local("/tmp/x".into()));
        assert_eq!(
            OutputSpec::parse("s3://lake/wechat/raw/").unwrap(),
            OutputSpec::S3 { bucket: "lake".into(), prefix: "wechat/raw".into() }
        );
        assert!(OutputSpec::parse("s3://key:secret@lake/x").unwrap_err().contains("AWS_*"));
        assert!(OutputSpec::parse("gs://x/y").unwrap_err().contains("not supported"));
        assert!(OutputSpec::parse("").is_err());
    }
}
