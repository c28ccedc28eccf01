//! `wxcube simulate`: a faithful, deterministic stand-in for `https://api.weixin.qq.com`.
//!
//! It serves the token endpoints and every datacube endpoint of the registry on loopback, with
//! the real service's answers, error codes and checks, for a set of demo accounts whose
//! credentials are public (see [`accounts`]). Its figures are made up but consistent — a day is
//! the sum of its hours, a week of its days, a distribution matches its messages — and the same
//! in every process, so a test can compute what a run must have written by calling [`data`]
//! directly. `wxcube demo` and the integration tests start it in-process with
//! [`Simulator::start`]; `wxcube simulate` serves it until interrupted, for trying a client
//! against it by hand. `GET /_sim/stats` tells what it was asked, so tests can prove a run made
//! exactly its planned requests (or, with `--dry-run`, none).

pub mod accounts;
pub mod data;
pub mod faults;
mod rng;
mod server;
pub mod stats;
mod tokens;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::dates;

pub use faults::Faults;
pub use server::{Clock, RunningSimulator, SimConfig, Simulator};
pub use stats::SimStats;

/// Flags of `wxcube simulate`.
#[derive(Clone, Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on. Keep it on loopback: the simulator gives tokens to anyone who
    /// knows the public demo credentials.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one. The address is printed on stdout.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Pins the simulated Beijing date (the time of day is then 12:00 Beijing); default: now.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = dates::parse_date)]
    pub today: Option<NaiveDate>,
    /// Number of demo accounts: wxdemo000000000001 (secret demosecret0…01) and up.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub accounts: u32,
    /// Lifetime of a new access token, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
    /// Enforces a shorter (or longer) span for a table than the registry's, as newer API pages
    /// document for some, e.g. `--max-span getupstreammsgweek=1`. Repeatable.
    #[arg(long = "max-span", value_name = "TABLE=DAYS", value_parser = parse_max_span)]
    pub max_span: Vec<(String, u32)>,
}

impl SimulateArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            addr: SocketAddr::new(self.host, self.port),
            accounts: self.accounts as usize,
            clock: self.today.map_or(Clock::System, Clock::noon_on),
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            max_span_days: self.max_span.iter().cloned().collect::<BTreeMap<_, _>>(),
            ..SimConfig::default()
        }
    }
}

/// An IP address, or `localhost`.
fn parse_host(s: &str) -> Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.parse().map_err(|_| format!("'{s}' is not an IP address: use e.g. 127.0.0.1 or ::1"))
}

fn parse_max_span(s: &str) -> Result<(String, u32), String> {
    let usage = || format!("'{s}' is not TABLE=DAYS, e.g. getupstreammsgweek=1");
    let (table, days) = s.split_once('=').ok_or_else(usage)?;
    let days: u32 = days.trim().parse().map_err(|_| usage())?;
    let table = crate::registry::find(table.trim())
        .ok_or_else(|| format!("'{}' is not a table: see `wxcube tables`", table.trim()))?;
    if days == 0 {
        return Err(usage());
    }
    Ok((table.name.clone(), days))
}

/// Serves until Ctrl-C or SIGTERM. The first and only line on stdout is
/// `listening on http://HOST:PORT`, flushed at once: scripts and tests read the port from it.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = args.config();
    let sim = Simulator::start(config.clone()).await.with_context(|| format!("cannot listen on {}", config.addr))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", sim.base_url())?;
        out.flush()?;
    }
    tracing::info!(
        url = %sim.base_url(),
        accounts = config.accounts,
        today = %args.today.map_or_else(|| "now".to_string(), |d| d.to_string()),
        "simulator ready; demo appids run from {} to {}",
        accounts::demo_appid(1),
        accounts::demo_appid(config.accounts)
    );
    shutdown_signal().await;
    tracing::info!("simulator stopping");
    sim.shutdown().await.context("simulator failed")?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot watch for SIGTERM ({e}); stop with Ctrl-C"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_build_the_config() {
        let defaults = parse(&[]).unwrap().config();
        assert_eq!(defaults.addr.to_string(), "127.0.0.1:0");
        assert_eq!((defaults.accounts, defaults.clock, defaults.token_ttl.as_secs()), (3, Clock::System, 7200));
        let args = parse(&[
            "--port",
            "8080",
            "--today",
            "2024-03-12",
            "--accounts",
            "1000",
            "--token-ttl-secs",
            "60",
            "--max-span",
            "getupstreammsgweek=1",
            "--max-span",
            "upstream_msg_dist_month=15",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.addr.port(), 8080);
        assert_eq!(parse(&["--host", "localhost"]).unwrap().host.to_string(), "127.0.0.1");
        assert_eq!(config.clock, Clock::noon_on(dates::parse_date("2024-03-12").unwrap()));
        assert_eq!(config.accounts, 1000);
        assert_eq!(config.token_ttl, Duration::from_secs(60));
        assert_eq!(
            config.max_span_days,
            BTreeMap::from([("upstream_msg_week".to_string(), 1), ("upstream_msg_dist_month".to_string(), 15)])
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        for bad in [
            &["--today", "2024-3-12"][..],
            &["--accounts", "0"],
            &["--token-ttl-secs", "0"],
            &["--max-span", "getupstreammsgweek"],
            &["--max-span", "nope=1"],
            &["--max-span", "upstream_msg=0"],
            &["--host", "example.com"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
