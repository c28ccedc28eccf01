//! Writers that meet, on local disk: the scenarios of `scenarios.rs`.

#[allow(unused_imports)]
use std::time::Duration;

use crate::scenarios::*;
#[allow(unused_imports)]
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_over_accounts_on_different_days_lose_no_row_on_local_disk() {
    incremental_runs_over_accounts_on_different_days(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_other_accounts_share_every_file_on_local_disk() {
    runs_of_other_accounts_share_every_file(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_the_same_accounts_started_at_once_one_works_on_local_disk() {
    runs_of_the_same_accounts(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_lease_is_taken_over_by_exactly_one_run_on_local_disk() {
    a_stale_lease_is_taken_over_by_one_run(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_holding_its_lease_is_taken_over_on_local_disk() {
    a_run_killed_holding_its_lease(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_while_an_extract_writes_the_same_partitions_on_local_disk() {
    rebuild_meets_extract(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_bucket_file_fails_its_cells_and_the_run_goes_on_on_local_disk() {
    bad_bucket_files(false).await;
}
