//! Killed runs on S3: SIGKILL at random moments never leaves a half-written object, and a
//! re-run completes the output.

use object_store::ObjectStoreExt;

use crate::kill::*;
use crate::moto::Moto;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_on_s3_never_leaves_a_torn_object() {
    let (moto, sim) = (Moto::start().await, slow_simulator().await);
    let env = moto.env(&moto.endpoint);
    let store = moto.store();
    let length = run_length(&sim, &env, "s3://lake/crash-length").await;
    // A killed run's lease on S3 lapses only after --lease-secs: the kills take turns among a
    // few accounts, so each run meets a lapsed lease, or waits it out (--lease-wait-secs).
    // Ten seconds, not less: on a loaded machine a renewal (a read and a conditional write on
    // moto) can take seconds, and a run that cannot renew in time stops writing.
    let lease = ["--lease-secs", "10", "--lease-wait-secs", "30"];
    let mut mid_run = 0;
    for i in 0..KILLS {
        mid_run += usize::from(run_and_kill("s3://lake/crash", &sim, &env, length, i % ACCOUNTS + 1, &lease).await);
        for key in moto.keys("crash").await {
            assert!(key.starts_with("crash/_wxcube/") || key.ends_with(".parquet"), "unexpected object {key}");
            if key.ends_with(".parquet") {
                let bytes =
                    store.get(&object_store::path::Path::from(key.as_str())).await.unwrap().bytes().await.unwrap();
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes);
                assert!(reader.is_ok(), "{key} is not a complete Parquet file");
            }
        }
    }
    assert!(mid_run >= KILLS / 2, "only {mid_run} kills landed mid-run");
    let base = sim.base_url();
    for i in 1..=ACCOUNTS {
        let (id, key) = (appid(i), secret(i));
        let envs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (*k, v.as_str())).chain([("WECHAT_SECRET", key.as_str())]).collect();
        wxcube(&[&args("s3://lake/crash", &base, &id)[..], &lease].concat(), &envs).await.assert_ok();
    }
    let local = tempfile::tempdir().unwrap();
    // Compare through the same reader as local output: copy the objects down.
    for key in moto.keys("crash").await {
        let bytes = store.get(&object_store::path::Path::from(key.as_str())).await.unwrap().bytes().await.unwrap();
        let path = local.path().join(key.trim_start_matches("crash/"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let accounts: Vec<usize> = (1..=ACCOUNTS).collect();
    for t in &default_tables() {
        assert_eq!(table_rows(local.path(), t), expected_rows(t, &accounts, BEGIN, END), "{t}");
    }
    assert_eq!(moto.dangling_uploads().await, 0);
}
