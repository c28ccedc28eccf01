//! A moto S3 server for the tests, and reading wxcube's objects back from it.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wxcube_connector::account::AppId;
use wxcube_connector::schema::ArrowSchema;
use wxcube_connector::write::layout;
use wxcube_registry as registry;

use crate::support::*;

/// A moto S3 server on a free loopback port, with IAM authentication enforced after set-up;
/// killed when dropped, also when a test fails.
pub struct Moto {
    _child: tokio::process::Child,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

pub const BUCKET: &str = "lake";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    pub async fn start() -> Moto {
        // moto's server, with its conditional writes made atomic as S3's are (see the script).
        let serve = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_serve.py");
        let port = free_port();
        let mut child = tokio::process::Command::new(python())
            .args([serve, "127.0.0.1", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .env("MOTO_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{serve}: {e} (run the suite with scripts/test.sh, which installs moto)"));
        let endpoint = format!("http://127.0.0.1:{port}");
        // moto imports for seconds; on a machine busy with other tests (a JVM, another moto),
        // for more than ten. A minute, unless it exits first.
        let mut listening = false;
        for _ in 0..1200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                listening = true;
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{serve} exited with {status} before it listened on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(listening, "{serve} did not listen on port {port} within a minute");
        let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_setup.py");
        let out = tokio::process::Command::new(python()).args([setup, &endpoint, BUCKET]).output().await.unwrap();
        assert!(out.status.success(), "moto set-up: {}", String::from_utf8_lossy(&out.stderr));
        let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Moto {
            _child: child,
            endpoint,
            key_id: keys["access_key_id"].as_str().unwrap().into(),
            secret: keys["secret_access_key"].as_str().unwrap().into(),
        }
    }

    /// The AWS_* environment for wxcube, pointing at `endpoint` (the server or a proxy).
    pub fn env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", endpoint.to_string()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        wxcube_connector::tls::install_crypto_provider();
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_bucket_name(BUCKET)
                .with_access_key_id(&self.key_id)
                .with_secret_access_key(&self.secret)
                .with_region("us-east-1")
                .build()
                .unwrap(),
        )
    }

    /// Every object key under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store()
            .list(Some(&Path::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Multipart uploads begun and never completed nor aborted.
    pub async fn dangling_uploads(&self) -> usize {
        let out = tokio::process::Command::new(python())
            .arg("-c")
            .arg(format!(
                "import boto3; c = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}'); print(len(c.list_multipart_uploads(Bucket='{BUCKET}').get('Uploads', [])))",
                self.endpoint, self.key_id, self.secret
            ))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

/// The rows of every data object of `table` under `prefix`, checking each key and schema.
pub async fn s3_rows(moto: &Moto, prefix: &str, table: &registry::Table, buckets: u32) -> Vec<Key> {
    let store = moto.store();
    let mut rows = Vec::new();
    for key in moto.keys(&format!("{prefix}/{}", table.name)).await {
        let bytes = store.get(&Path::from(key.as_str())).await.unwrap().bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(reader.schema().as_ref(), table.schema().as_ref(), "{key}");
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let batch = arrow::compute::concat_batches(&table.schema(), &batches).unwrap();
        let date = d(key.split("ref_date=").nth(1).unwrap().split('/').next().unwrap());
        let found = batch_rows(table, &batch, date);
        // The key is exactly the layout's path for each row's account.
        for (appid, ..) in &found {
            let bucket = layout::bucket_of(&AppId::parse(appid).unwrap(), buckets);
            assert_eq!(key, layout::data_path(&Path::from(prefix), &table.name, date, bucket).to_string());
        }
        rows.extend(found);
    }
    rows.sort();
    rows
}
