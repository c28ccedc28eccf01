//! Killed runs: SIGKILL at random moments never leaves a half-written file where a reader
//! looks, and a re-run completes the output; SIGTERM stops cleanly with a summary.

use std::time::Duration;

use crate::kill::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_on_local_disk_never_leaves_a_torn_file() {
    let sim = slow_simulator().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().to_str().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let length = run_length(&sim, &[], scratch.path().to_str().unwrap()).await;
    let mut mid_run = 0;
    for _ in 0..KILLS {
        mid_run += usize::from(run_and_kill(output, &sim, &[], length, 1, &[]).await);
        assert_local_output_readable(out.path());
    }
    assert!(mid_run >= KILLS / 2, "only {mid_run} kills landed mid-run");
    let (base, id) = (sim.base_url(), appid(1));
    wxcube(&args(output, &base, &id), &[("WECHAT_SECRET", &secret(1))]).await.assert_ok();
    for t in &default_tables() {
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1], BEGIN, END), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_with_a_summary() {
    let sim = slow_simulator().await;
    let out = tempfile::tempdir().unwrap();
    let (base, id) = (sim.base_url(), appid(1));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxcube"))
        .args(args(out.path().to_str().unwrap(), &base, &id))
        .env("WECHAT_SECRET", secret(1))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let done =
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("stops promptly").unwrap();
    let run = Run {
        code: done.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
    };
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    assert_eq!(summary["status"], "stopped");
    assert!(summary["failures"].as_u64().unwrap() > 0, "unfinished cells are listed");
    assert!(run.stderr.contains("SIGTERM received"), "{}", run.stderr);
    assert_local_output_readable(out.path());
    // What the stopped run did not fetch, the next run fills.
    let again = wxcube(&args(out.path().to_str().unwrap(), &base, &id), &[("WECHAT_SECRET", &secret(1))]).await;
    again.assert_ok();
    for t in &default_tables() {
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1], BEGIN, END), "{t}");
    }
}
