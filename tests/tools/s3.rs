//! S3-compatible storage: the same guarantees as local disk, on a real S3 server (moto) on
//! loopback, and clear failures when the store is unreachable, missing, refusing or failing.

use std::time::Duration;

use wxcube_connector::write::DEFAULT_BUCKETS;
use wxcube_registry as registry;

use crate::moto::{BUCKET, Moto, free_port, s3_rows};
use crate::support::*;

/// `wxcube extract` into `s3://lake/<prefix>` with the given AWS environment.
async fn extract_s3(
    sim: &wxcube_simulator::RunningSimulator,
    prefix: &str,
    env: &[(&'static str, String)],
    i: usize,
    extra: &[&str],
) -> Run {
    let url = format!("s3://{BUCKET}/{prefix}");
    let (base, id, key) = (sim.base_url(), appid(i), secret(i));
    let mut args = vec!["extract", "--output", &url, "--api-base", &base, "--appid", &id];
    args.extend_from_slice(extra);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(("WECHAT_SECRET", &key));
    wxcube(&args, &envs).await
}

/// A moto server with a proxy in front, and the AWS environment that points wxcube at the proxy.
async fn moto_behind_proxy() -> (Moto, crate::proxy::Proxy, Vec<(&'static str, String)>) {
    let moto = Moto::start().await;
    let upstream: std::net::SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = crate::proxy::Proxy::start(upstream).await;
    let env = moto.env(&proxy.url);
    (moto, proxy, env)
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_output_has_the_layout_and_the_rows() {
    let (moto, sim) = (Moto::start().await, simulator().await);
    let env = moto.env(&moto.endpoint);
    let flags = ["--begin", "2024-02-01", "--end", "2024-03-31"];
    extract_s3(&sim, "wechat/raw", &env, 1, &flags).await.assert_ok();
    extract_s3(&sim, "wechat/raw", &env, 2, &flags).await.assert_ok();
    let keys = moto.keys("wechat/raw").await;
    assert!(keys.contains(&"wechat/raw/_wxcube/dataset.json".to_string()), "{keys:?}");
    for k in &keys {
        assert!(k.starts_with("wechat/raw/_wxcube/") || k.ends_with(".parquet"), "unexpected object {k}");
    }
    for t in &default_tables() {
        assert_eq!(
            s3_rows(&moto, "wechat/raw", t, DEFAULT_BUCKETS).await,
            expected_rows(t, &[1, 2], "2024-02-01", "2024-03-31"),
            "{t}"
        );
    }
    // Idempotent: the same run again leaves the same objects and rows (and a record of itself).
    let not_runs = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter().filter(|k| !k.starts_with("wechat/raw/_wxcube/runs/")).collect()
    };
    extract_s3(&sim, "wechat/raw", &env, 1, &flags).await.assert_ok();
    assert_eq!(not_runs(moto.keys("wechat/raw").await), not_runs(keys));
    for t in &default_tables() {
        assert_eq!(
            s3_rows(&moto, "wechat/raw", t, DEFAULT_BUCKETS).await,
            expected_rows(t, &[1, 2], "2024-02-01", "2024-03-31"),
            "{t}"
        );
    }
    assert_eq!(moto.dangling_uploads().await, 0);
}

/// Asserts a storage failure: exit `code`, one error line naming `needle`, no credential.
fn assert_storage_error(run: &Run, code: i32, needle: &str, moto: &Moto) {
    assert_eq!(run.code, code, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(errors[0].contains(needle), "{:?} should name {needle:?}", errors[0]);
    assert!(!run.all_output().contains(&moto.secret), "the S3 secret leaked");
    assert!(!run.all_output().contains(&secret(1)), "the app secret leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_failures_are_one_clear_line() {
    let (moto, sim) = (Moto::start().await, simulator().await);
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-02", "--tables", "upstream_msg"];

    let closed = format!("http://127.0.0.1:{}", free_port());
    let run = extract_s3(&sim, "x", &moto.env(&closed), 1, &flags).await;
    assert_storage_error(&run, 2, "s3://lake/x", &moto);

    let run = extract_s3(&sim, "x", &moto.env(&moto.endpoint), 1, &flags).await;
    run.assert_ok();
    let missing = {
        let (base, id, key) = (sim.base_url(), appid(1), secret(1));
        let env = moto.env(&moto.endpoint);
        let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        envs.push(("WECHAT_SECRET", &key));
        let args =
            [&["extract", "--output", "s3://no-such-bucket/x", "--api-base", &base, "--appid", &id][..], &flags[..]]
                .concat();
        wxcube(&args, &envs).await
    };
    assert_storage_error(&missing, 2, "s3://no-such-bucket/x", &moto);

    let mut wrong = moto.env(&moto.endpoint);
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-right-secret-key-123".into()));
    let run = extract_s3(&sim, "y", &wrong, 1, &flags).await;
    assert_storage_error(&run, 2, "s3://lake/y", &moto);
    assert!(!run.all_output().contains("not-the-right-secret-key-123"));
    assert!(moto.keys("y").await.is_empty(), "nothing written with refused credentials");
}

/// A run keeps its lease through its own traffic. One account's eighteen months is thousands of
/// requests to the store; sent all at once, they queued for seconds at the server, a lease
/// renewal queued behind them, and the run stopped writing under a lease it still held. Every
/// request but the lease's goes through a bound of 32 in flight, so a renewal waits behind at
/// most those; the proxy counts the connections open at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_run_keeps_its_lease_through_its_own_traffic() {
    let ((moto, proxy, env), sim) = (moto_behind_proxy().await, simulator().await);
    let (begin, end) = ("2022-10-01", "2024-03-31");
    let run = extract_s3(&sim, "long", &env, 1, &["--begin", begin, "--end", end, "--lease-secs", "10"]).await;
    run.assert_ok();
    assert_eq!(run.summary()["status"], "ok");
    // 32 requests and the lease's, and connections whose request is over but whose close has
    // not reached the proxy yet: 43 at most on a loaded machine, about 900 without the bound.
    assert!(proxy.peak_connections() <= 64, "{} connections open at once", proxy.peak_connections());
    for t in &default_tables() {
        assert_eq!(s3_rows(&moto, "long", t, DEFAULT_BUCKETS).await, expected_rows(t, &[1], begin, end), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_failing_mid_run_leaves_complete_files_and_a_rerun_fills_the_rest() {
    let ((moto, proxy, env), sim) = (moto_behind_proxy().await, simulator().await);
    let table = registry::find("upstream_msg_hour").unwrap();
    let flags = [
        "--begin",
        "2023-10-01",
        "--end",
        "2024-03-31",
        "--tables",
        "upstream_msg_hour",
        "--concurrency",
        "2",
        "--max-retries",
        "1",
        // The run cannot give its lease back while the store is cut off: a short lease, which
        // the re-run below waits out.
        "--lease-secs",
        "20",
        "--lease-wait-secs",
        "60",
    ];
    let run = {
        let sim_url = sim.base_url();
        let env = env.clone();
        tokio::spawn(async move {
            let (id, key) = (appid(1), secret(1));
            let mut args = vec!["extract", "--output", "s3://lake/mid", "--api-base", &sim_url, "--appid", &id];
            args.extend_from_slice(&flags);
            let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            envs.push(("WECHAT_SECRET", &key));
            wxcube(&args, &envs).await
        })
    };
    // Let some files land, then cut the store off.
    let mut landed = 0;
    for _ in 0..400 {
        landed = moto.keys("mid/upstream_msg_hour").await.len();
        if landed >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(landed >= 10, "the run wrote files before the cut");
    proxy.set_broken(true);
    let run = run.await.unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    let failed = summary["failed"].as_array().unwrap();
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|c| c["error"].as_str().unwrap().contains("s3://lake/mid/")), "{failed:?}");
    assert!(!run.all_output().contains(&moto.secret));

    // What was written is complete: every object reads back, with exactly its day's rows.
    let written = s3_rows(&moto, "mid", table, DEFAULT_BUCKETS).await;
    assert!(!written.is_empty());
    let days: std::collections::BTreeSet<_> = written.iter().map(|r| r.1).collect();
    let want: Vec<Key> =
        expected_rows(table, &[1], "2023-10-01", "2024-03-31").into_iter().filter(|r| days.contains(&r.1)).collect();
    assert_eq!(written, want);

    // Healed, the same command fills the rest.
    proxy.set_broken(false);
    let (sim_url, id, key) = (sim.base_url(), appid(1), secret(1));
    let mut args = vec!["extract", "--output", "s3://lake/mid", "--api-base", &sim_url, "--appid", &id];
    args.extend_from_slice(&flags);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(("WECHAT_SECRET", &key));
    wxcube(&args, &envs).await.assert_ok();
    assert_eq!(
        s3_rows(&moto, "mid", table, DEFAULT_BUCKETS).await,
        expected_rows(table, &[1], "2023-10-01", "2024-03-31")
    );
    assert_eq!(moto.dangling_uploads().await, 0);
}
