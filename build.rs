//! Build script of the `wxcube` binary: the commit `wxcube --version` names, and compressed
//! debug sections in Linux release builds.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = commit().unwrap_or_else(|| "commit unknown".to_string());
    println!("cargo:rustc-env=WXCUBE_VERSION={} ({commit})", env!("CARGO_PKG_VERSION"));
    println!("cargo:rerun-if-env-changed=WXCUBE_COMMIT");
    // A new commit moves HEAD or the branch it names (loose or packed).
    for git_file in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(git_file).exists() {
            println!("cargo:rerun-if-changed={git_file}");
        }
    }
    println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    // The line tables that let a panic's backtrace name file and line take three times the
    // space of the code uncompressed; the standard library's backtraces read zlib-compressed
    // sections, and the binary shrinks from 153 MB to 56 MB (README, "Install").
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var("PROFILE").is_ok_and(|p| p == "release") {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}

/// The commit the source comes from: `WXCUBE_COMMIT` if a packager sets it, the checkout's
/// HEAD, or the one `cargo package` recorded (a crate installed from crates.io).
fn commit() -> Option<String> {
    if let Ok(commit) = std::env::var("WXCUBE_COMMIT") {
        return Some(commit);
    }
    let git = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok();
    if let Some(out) = git.filter(|o| o.status.success() && Path::new(".git").exists()) {
        return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let vcs = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let sha = vcs.split("\"sha1\"").nth(1)?.split('"').nth(1)?;
    Some(sha.chars().take(12).collect())
}
