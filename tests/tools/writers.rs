//! Writers that meet, on S3 (moto): the scenarios of `scenarios.rs`.

#[allow(unused_imports)]
use std::time::Duration;

use crate::scenarios::*;
#[allow(unused_imports)]
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_over_accounts_on_different_days_lose_no_row_on_s3() {
    incremental_runs_over_accounts_on_different_days(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_other_accounts_share_every_file_on_s3() {
    runs_of_other_accounts_share_every_file(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_the_same_accounts_started_at_once_one_works_on_s3() {
    runs_of_the_same_accounts(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_lease_is_taken_over_by_exactly_one_run_on_s3() {
    a_stale_lease_is_taken_over_by_one_run(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_holding_its_lease_is_taken_over_on_s3() {
    a_run_killed_holding_its_lease(true).await;
}

/// A run that stalls (SIGSTOP) past its lease on S3 loses it to another run; when it wakes it
/// stops writing, says so, and reports its unwritten cells failed; the other run's rows stand.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_loses_its_lease_stops_writing_and_says_so() {
    let (target, sim) = (Target::new(true).await, sim(5).await);
    let flags = ["--begin", BEGIN, "--end", END, "--lease-secs", "10"];
    let cmd = target.command(&sim, "extract", &[1, 2, 3], &flags);
    let (stalled, log) = cmd.start().await;
    let pid = stalled.id().unwrap().to_string();
    signal("-STOP", &pid);
    tokio::time::sleep(Duration::from_secs(13)).await;
    let other = cmd.run().await;
    other.assert_ok();
    signal("-CONT", &pid);
    let stalled = stalled.wait_with_output().await.unwrap();
    let stderr = log.await.unwrap();
    assert_eq!(stalled.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lease on bucket 00"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(String::from_utf8_lossy(&stalled.stdout).lines().last().unwrap().as_bytes()).unwrap();
    assert_eq!(summary["status"], "partial");
    assert!(summary["failed"][0]["error"].as_str().unwrap().contains("lease"), "{summary}");
    target.assert_rows(&[1, 2, 3], BEGIN, END).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_while_an_extract_writes_the_same_partitions_on_s3() {
    rebuild_meets_extract(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_bucket_file_fails_its_cells_and_the_run_goes_on_on_s3() {
    bad_bucket_files(true).await;
}
