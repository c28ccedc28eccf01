//! `pip install wxcube`: scripts/test.sh builds the wheel once with maturin (pyproject.toml),
//! installs it with pip into a fresh virtualenv and sets `WXCUBE_INSTALLED` to that
//! virtualenv's `bin`. These tests run the installed command, not the one cargo built; the
//! Airflow DAG's test runs it from PATH.

use std::path::PathBuf;

use crate::support::*;

fn installed_wxcube() -> PathBuf {
    let bin =
        PathBuf::from(installed("WXCUBE_INSTALLED", "the wheel of wxcube into a fresh virtualenv")).join("wxcube");
    assert!(bin.is_file(), "{} is not there: the wheel did not install the binary", bin.display());
    bin
}

async fn run(args: &[&str]) -> Run {
    let out =
        tokio::process::Command::new(installed_wxcube()).args(args).env_remove("RUST_LOG").output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The commit of this checkout, as git names it (the tests run from a clone).
fn head_commit() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    assert!(out.status.success(), "the tests run from a git checkout");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn the_installed_wxcube_names_its_version_and_commit() {
    let run = run(&["--version"]).await;
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("wxcube {} ({})", env!("CARGO_PKG_VERSION"), head_commit()));
}

#[tokio::test]
async fn the_installed_wxcube_runs_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let run = run(&["demo", "--output", out.to_str().unwrap(), "--days", "7", "--accounts", "2"]).await;
    run.assert_ok();
    let summary = run.summary();
    assert_eq!(summary["status"], "ok", "{summary}");
    assert!(summary["rows"].as_u64().unwrap() > 0, "{summary}");
    assert!(out.join("upstream_msg").is_dir());
}
