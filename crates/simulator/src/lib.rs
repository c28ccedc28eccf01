//! `wxcube simulate`: a faithful, deterministic stand-in for `https://api.weixin.qq.com`.
//!
//! A crate of its own, which knows nothing of the connector but the table registry: it is the
//! independent party the connector is tested against, with its own calendar ([`calendar`]) and
//! its own idea of what an answer holds ([`data`]).
//!
//! Map of the crate:
//! - [`server`] (re-exported: [`Simulator`], [`SimConfig`], [`Clock`]) — the HTTP routes;
//! - [`data`] — the figures: what any request of any account answers (the tests' ground truth);
//! - [`calendar`] — Beijing days, the 08:00 publication rule, runs of days;
//! - `tokens`, `platform` — access, component and authorizer tokens, as the real service issues
//!   and retires them;
//! - [`faults`], `inject`, `broken` — misbehaviour on demand, and the broken answers it sends;
//! - [`accounts`] — the public demo credentials; [`stats`] — what the simulator was asked.
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
//!
//! Routes, on loopback:
//! - `POST /cgi-bin/stable_token` and `GET /cgi-bin/token`: an account's access token from its
//!   appid and secret (`tokens.rs` tells how each kind is renewed and retired);
//! - `POST /cgi-bin/component/api_component_token`: the token of a third-party platform, from
//!   `{"component_appid","component_appsecret","component_verify_ticket"}`;
//! - `POST /cgi-bin/component/api_authorizer_token?component_access_token=…`: an account's
//!   access token for that platform, from `{"component_appid","authorizer_appid",
//!   "authorizer_refresh_token"}`. The answer carries a **new** refresh token and the one sent
//!   stops working at once (61023), as on the real service: a client must persist it.
//!   [`RunningSimulator::authorizer_refresh_token`] tells which one is current;
//! - `POST /datacube/{endpoint}?access_token=…`: every endpoint of the registry, with any
//!   account token (stable, classic or authorizer);
//! - `POST /cgi-bin/openapi/quota/get?access_token=…` with `{"cgi_path":"/datacube/…"}`: the
//!   account's `daily_limit`, `used` and `remain` for that endpoint today (Beijing);
//! - `GET|DELETE /_sim/stats`, `GET|POST /_sim/faults`: see [`stats`] and [`faults`].
//!
//! Demo credentials ([`accounts`]): account `i` is `wxdemo` + `i` in twelve digits (secret
//! `demosecret` + `i` in 22 digits; first authorizer refresh token `refreshtoken@@@demo` + `i`
//! in twelve digits); every account has authorised the demo platform `wxcomponent0000001`,
//! secret `componentsecret00000000000000001`, whose verify ticket
//! ([`accounts::demo_verify_ticket`]) never expires. Error codes of the platform endpoints
//! are chosen and explained in `platform.rs`. [`RunningSimulator::issued_tokens`] lists every
//! token handed out (refresh tokens included) and [`RunningSimulator::issued_secrets`] adds
//! the static credentials clients presented, for tests that look for leaks.
//!
//! It also misbehaves on demand, the way the real service and the network in front of it do —
//! errcodes -1, 45009, 45011, 48001, 42001 and 40001, HTTP 5xx pages, broken, huge or absurd
//! bodies, dropped connections, bad rows, latency, narrower spans; lost `api_authorizer_token`
//! answers and refresh tokens another client exchanged first — by rate or by count, from
//! flags or at run time ([`faults`] tells which and why).

pub mod accounts;
mod broken;
pub mod calendar;
pub mod data;
pub mod families;
#[cfg(test)]
mod fault_tests;
pub mod faults;
mod inject;
mod platform;
mod rng;
pub mod server;
pub mod stats;
#[cfg(test)]
mod testing;
mod tokens;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;

pub use faults::{FaultKind, Faults, InvalidFaults, Trigger};
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
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = calendar::parse_day)]
    pub today: Option<NaiveDate>,
    /// Number of demo accounts: wxdemo000000000001 (secret demosecret0…01) and up, each
    /// authorised to the demo third-party platform wxcomponent0000001.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub accounts: u32,
    /// Lifetime of a new access token, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
    /// Lifetime of a new component token (the demo platform's), in seconds; default: as
    /// --token-ttl-secs.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub component_token_ttl_secs: Option<u64>,
    /// Enforces a shorter (or longer) span for a table than the registry's, as newer API pages
    /// document for some, e.g. `--max-span getupstreammsgweek=1`. Repeatable.
    #[arg(long = "max-span", value_name = "TABLE=DAYS", value_parser = parse_max_span)]
    pub max_span: Vec<(String, u32)>,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Fault flags of `wxcube simulate`; they apply on top of `--faults-json`.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Faults")]
pub struct FaultArgs {
    /// Injects a fault into datacube answers: KIND=RATE strikes each request with that
    /// probability (0 to 1), KIND=xN the next N requests. Repeatable. Kinds: busy, http_5xx,
    /// bad_json, drop, huge, deep, absurd, out_of_window, unknown_code, negative_count,
    /// non_integer_count; and for api_authorizer_token calls: authorizer_lost (served, then
    /// the connection is cut), authorizer_busy (errcode -1), refresh_used_elsewhere (another
    /// client exchanged the refresh token first: 61023).
    #[arg(long = "fault", value_name = "KIND=RATE|KIND=xN", value_parser = faults::parse_fault_flag)]
    pub fault: Vec<(FaultKind, faults::TriggerSpec)>,
    /// Delays every datacube answer by this many milliseconds.
    #[arg(long, value_name = "MS", value_parser = whole("a whole number of milliseconds", "250"))]
    pub latency_ms: Option<u64>,
    /// Adds up to this many milliseconds more, drawn per request.
    #[arg(long, value_name = "MS", value_parser = whole("a whole number of milliseconds", "50"))]
    pub latency_jitter_ms: Option<u64>,
    /// Delays every api_authorizer_token answer by this many milliseconds.
    #[arg(long, value_name = "MS", value_parser = whole("a whole number of milliseconds", "500"))]
    pub authorizer_latency_ms: Option<u64>,
    /// Each access token answers 42001 (expired) after serving N datacube calls.
    #[arg(long, value_name = "N", value_parser = whole("a whole number of calls", "10"))]
    pub token_expires_after: Option<u64>,
    /// One current token per account for all token endpoints: a newer token makes older ones
    /// answer 40001 (not latest) after SECS seconds; 0 for at once.
    #[arg(long, value_name = "SECS", value_parser = whole("a whole number of seconds", "0"))]
    pub token_overlap_secs: Option<u64>,
    /// Datacube calls allowed per account and endpoint per day; then 45009.
    #[arg(long, value_name = "N", value_parser = whole("a whole number of calls", "100"))]
    pub daily_quota: Option<u64>,
    /// Datacube calls allowed per account per wall-clock minute; then 45011.
    #[arg(long, value_name = "N", value_parser = whole("a whole number of calls", "20"))]
    pub per_minute_limit: Option<u64>,
    /// Answers this account's datacube calls with 48001 (api unauthorized). Repeatable.
    #[arg(long, value_name = "APPID", value_parser = parse_appid)]
    pub unauthorized: Vec<String>,
    /// Answers this account's calls to one family's endpoints with 48001, as for a third-party
    /// platform without that family's permission set: FAMILY=APPID (message, user, article,
    /// interface). Repeatable.
    #[arg(long, value_name = "FAMILY=APPID", value_parser = parse_family_appid)]
    pub unauthorized_family: Vec<(String, String)>,
    /// Seeds the random draws of fault rates and latency jitter.
    #[arg(long, value_name = "N", value_parser = whole("a whole number", "42"))]
    pub fault_seed: Option<u64>,
    /// A whole faults object, as `GET /_sim/faults` shows it, e.g. '{"busy":{"rate":0.1}}'.
    #[arg(long, value_name = "JSON", value_parser = |s: &str| faults::parse_faults_json(s).map(Box::new))]
    pub faults_json: Option<Box<Faults>>,
}

/// `FAMILY=APPID`, for `--unauthorized-family`.
fn parse_family_appid(s: &str) -> Result<(String, String), String> {
    let (family, appid) =
        s.split_once('=').ok_or_else(|| format!("'{s}' is not FAMILY=APPID, e.g. user=wxdemo000000000002"))?;
    if !wxcube_registry::Family::ALL.iter().any(|f| f.name() == family) {
        return Err(format!("unknown family '{family}': use message, user, article or interface"));
    }
    Ok((family.to_string(), parse_appid(appid)?))
}

impl FaultArgs {
    /// `--faults-json` (or no faults), then each fault flag on top.
    pub fn faults(&self) -> Result<Faults, InvalidFaults> {
        let mut faults = self.faults_json.as_deref().cloned().unwrap_or_default();
        for &(kind, spec) in &self.fault {
            faults.apply(kind, spec);
        }
        let set = |field: &mut u64, flag: Option<u64>| *field = flag.unwrap_or(*field);
        set(&mut faults.latency_ms, self.latency_ms);
        set(&mut faults.latency_jitter_ms, self.latency_jitter_ms);
        set(&mut faults.authorizer_latency_ms, self.authorizer_latency_ms);
        set(&mut faults.seed, self.fault_seed);
        faults.token_expires_after = self.token_expires_after.or(faults.token_expires_after);
        faults.token_overlap_secs = self.token_overlap_secs.or(faults.token_overlap_secs);
        faults.daily_quota = self.daily_quota.or(faults.daily_quota);
        faults.per_minute_limit = self.per_minute_limit.or(faults.per_minute_limit);
        faults.unauthorized.extend(self.unauthorized.iter().cloned());
        for (family, appid) in &self.unauthorized_family {
            faults.unauthorized_families.entry(family.clone()).or_default().push(appid.clone());
        }
        faults.validated()
    }
}

impl SimulateArgs {
    /// The simulator the flags describe; fails only when the fault flags contradict each other
    /// (each flag's value is checked as it is parsed).
    pub fn config(&self) -> Result<SimConfig, InvalidFaults> {
        Ok(SimConfig {
            addr: SocketAddr::new(self.host, self.port),
            accounts: self.accounts as usize,
            clock: self.today.map_or(Clock::System, Clock::noon_on),
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            component_token_ttl: self.component_token_ttl_secs.map(Duration::from_secs),
            max_span_days: self.max_span.iter().cloned().collect::<BTreeMap<_, _>>(),
            faults: self.faults.faults()?,
            ..SimConfig::default()
        })
    }
}

/// An IP address, or `localhost`.
fn parse_host(s: &str) -> Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.parse().map_err(|_| format!("'{s}' is not an IP address: use e.g. 127.0.0.1 or ::1"))
}

/// A parser of non-negative integers whose error says what is expected and gives an example.
fn whole(what: &'static str, example: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s: &str| s.trim().parse().map_err(|_| format!("'{s}' is not {what}: write e.g. {example}"))
}

fn parse_appid(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("'{s}' is not an appid: name the account, e.g. {}", accounts::demo_appid(2)));
    }
    Ok(s.to_string())
}

fn parse_max_span(s: &str) -> Result<(String, u32), String> {
    let usage = || format!("'{s}' is not TABLE=DAYS, e.g. getupstreammsgweek=1");
    let (table, days) = s.split_once('=').ok_or_else(usage)?;
    let days: u32 = days.trim().parse().map_err(|_| usage())?;
    let table = wxcube_registry::find(table.trim())
        .ok_or_else(|| format!("'{}' is not a table: see `wxcube tables`", table.trim()))?;
    if days == 0 {
        return Err(usage());
    }
    Ok((table.name.clone(), days))
}

/// Serves until Ctrl-C or SIGTERM. The first and only line on stdout is
/// `listening on http://HOST:PORT`, flushed at once: scripts and tests read the port from it.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = args.config()?;
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
        "simulator ready; demo appids run from {} to {}, all authorised to the demo platform {}",
        accounts::demo_appid(1),
        accounts::demo_appid(config.accounts),
        accounts::demo_component_appid()
    );
    if config.faults != Faults::default() {
        tracing::info!(faults = %serde_json::to_string(&config.faults)?, "injecting faults; see GET /_sim/faults");
    }
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
        let defaults = parse(&[]).unwrap().config().unwrap();
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
            "--component-token-ttl-secs",
            "5",
            "--max-span",
            "getupstreammsgweek=1",
            "--max-span",
            "upstream_msg_dist_month=15",
        ])
        .unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.addr.port(), 8080);
        assert_eq!(parse(&["--host", "localhost"]).unwrap().host.to_string(), "127.0.0.1");
        assert_eq!(config.clock, Clock::noon_on(calendar::parse_day("2024-03-12").unwrap()));
        assert_eq!(config.accounts, 1000);
        assert_eq!(config.token_ttl, Duration::from_secs(60));
        assert_eq!((config.component_token_ttl, defaults.component_token_ttl), (Some(Duration::from_secs(5)), None));
        assert_eq!(
            config.max_span_days,
            BTreeMap::from([("upstream_msg_week".to_string(), 1), ("upstream_msg_dist_month".to_string(), 15)])
        );
        assert_eq!(defaults.faults, Faults::default());
    }

    #[test]
    fn fault_flags_build_the_faults() {
        let faults = |args: &[&str]| parse(args).unwrap().config().unwrap().faults;
        let all = faults(&[
            "--fault",
            "busy=0.2",
            "--fault",
            "drop=x3",
            "--fault",
            "busy=x1",
            "--fault",
            "non_integer_count=1",
            "--latency-ms",
            "20",
            "--latency-jitter-ms",
            "5",
            "--token-expires-after",
            "4",
            "--token-overlap-secs",
            "0",
            "--daily-quota",
            "10",
            "--per-minute-limit",
            "6",
            "--unauthorized",
            "wxdemo000000000002",
            "--unauthorized",
            "wxdemo000000000003",
            "--unauthorized-family",
            "user=wxdemo000000000004",
            "--fault-seed",
            "42",
            "--fault",
            "authorizer_lost=x1",
            "--authorizer-latency-ms",
            "300",
        ]);
        let expected = Faults {
            busy: Trigger { rate: 0.2, count: 1 },
            drop: Trigger::count(3),
            non_integer_count: Trigger::always(),
            latency_ms: 20,
            latency_jitter_ms: 5,
            token_expires_after: Some(4),
            token_overlap_secs: Some(0),
            daily_quota: Some(10),
            per_minute_limit: Some(6),
            unauthorized: vec!["wxdemo000000000002".into(), "wxdemo000000000003".into()],
            unauthorized_families: BTreeMap::from([("user".to_string(), vec!["wxdemo000000000004".to_string()])]),
            seed: 42,
            authorizer_lost: Trigger::count(1),
            authorizer_latency_ms: 300,
            ..Faults::default()
        };
        assert_eq!(all, expected);
        // Flags apply on top of --faults-json.
        let json = r#"{"busy":{"rate":0.5},"http_5xx":{"count":2},"max_span_days":{"getupstreammsgweek":1},"seed":1}"#;
        let mixed = faults(&["--faults-json", json, "--fault", "busy=0.1", "--unauthorized", "wxdemo000000000001"]);
        assert_eq!((mixed.busy, mixed.http_5xx, mixed.seed), (Trigger::rate(0.1), Trigger::count(2), 1));
        assert_eq!(mixed.max_span_days, BTreeMap::from([("upstream_msg_week".to_string(), 1)]));
        assert_eq!(mixed.unauthorized, ["wxdemo000000000001"]);
    }

    #[test]
    fn bad_fault_flags_are_refused_in_one_line() {
        for (bad, hint) in [
            (&["--fault", "busy"][..], "KIND=RATE or KIND=xN"),
            (&["--fault", "busy=1.5"], "busy=x3"),
            (&["--fault", "slow=0.1"], "not a fault: use one of busy"),
            (&["--fault", "drop=x"], "not a count"),
            (&["--latency-ms", "5s"], "'5s' is not a whole number of milliseconds: write e.g. 250"),
            (&["--daily-quota=-1"], "'-1' is not a whole number of calls"),
            (&["--unauthorized", ""], "not an appid"),
            (&["--unauthorized-family", "wxdemo000000000001"], "is not FAMILY=APPID"),
            (&["--unauthorized-family", "users=wxdemo000000000001"], "unknown family 'users'"),
            (&["--faults-json", "{\"busy\":2}"], "not a faults object"),
            (&["--faults-json", "{\"busy\":{\"rate\":7}}"], "not a probability"),
        ] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted")).to_string();
            assert!(e.contains(hint), "{bad:?}: {e}");
            assert_eq!(e.trim_end().lines().next().map(|l| l.contains(hint)), Some(true), "{bad:?}: {e}");
        }
        // Each rate is fine alone, but a request gets one envelope fault at most.
        let crowded = parse(&["--fault", "busy=0.6", "--fault", "http_5xx=0.6"]).unwrap();
        assert!(crowded.config().unwrap_err().to_string().contains("add up to"));
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
